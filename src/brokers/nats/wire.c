/*
 * FastStream's NATS headers on nats.c messages, both ways (see wire.h).
 */
#include "wire.h"

#include <stdlib.h>
#include <string.h>

void fs__nats_hdrs_free(fs__nats_hdrs *h)
{
    free(h->items);
    h->items = NULL;
    h->cap = 0;
}

static int nomem(void)
{
    return fs_adapter_error(FS_ENOMEM, "nats: out of memory");
}

int fs__nats_decode(natsMsg *msg, bool js, fs__nats_hdrs *h, fs_message *m)
{
    m->body = natsMsg_GetData(msg);
    m->body_len = (size_t)natsMsg_GetDataLength(msg);
    if (!m->body)
        m->body = "";
    m->source = natsMsg_GetSubject(msg);
    m->headers = NULL;
    m->header_count = 0;
    if (!js) {
        const char *reply = natsMsg_GetReply(msg);
        m->reply_to = reply && *reply ? reply : NULL;
    }
    const char **keys = NULL;
    int count = 0;
    natsStatus s = natsMsgHeader_Keys(msg, &keys, &count);
    if (s == NATS_NOT_FOUND || count <= 0) {
        free(keys);
        return FS_OK;
    }
    if (s != NATS_OK)
        return fs_adapter_error(FS_EPROTOCOL, "nats: unreadable headers on %s: %s", m->source,
                                natsStatus_GetText(s));
    if ((size_t)count > h->cap) {
        size_t cap = h->cap ? h->cap : 8;
        while (cap < (size_t)count)
            cap *= 2;
        fs_header *items = realloc(h->items, cap * sizeof *items);
        if (!items) {
            free(keys);
            return nomem();
        }
        h->items = items;
        h->cap = cap;
    }
    const char *msg_id = NULL;
    size_t n = 0;
    for (int i = 0; i < count; i++) {
        const char *v = NULL;
        if (natsMsgHeader_Get(msg, keys[i], &v) != NATS_OK || !v)
            v = "";
        h->items[n] = (fs_header){0};
        h->items[n].name = keys[i];
        h->items[n].value = v;
        n++;
        const char *k = keys[i];
        if (strcmp(k, FS__NATS_H_CONTENT_TYPE) == 0)
            m->content_type = *v ? v : NULL;
        else if (strcmp(k, FS__NATS_H_CORRELATION_ID) == 0)
            m->correlation_id = v;
        else if (strcmp(k, FS__NATS_H_MESSAGE_ID) == 0)
            m->message_id = v;
        else if (strcmp(k, FS__NATS_H_MSG_ID) == 0)
            msg_id = v;
        else if (js && strcmp(k, FS__NATS_H_REPLY_TO) == 0)
            m->reply_to = *v ? v : NULL;
    }
    free(keys); /* the strings belong to msg */
    if (!m->message_id)
        m->message_id = msg_id;
    m->headers = h->items;
    m->header_count = n;
    return FS_OK;
}

/* NATS header names: printable ASCII without ':'; values: no CR or LF. */
static int check_header(const char *name, const char *value, size_t i)
{
    FS__NATS_CHECK(*name, "nats: header %zu has an empty name", i);
    for (const unsigned char *p = (const unsigned char *)name; *p; p++)
        FS__NATS_CHECK(*p > ' ' && *p < 127 && *p != ':',
                       "nats: header name '%s' has a character NATS cannot carry (0x%02x)", name,
                       *p);
    FS__NATS_CHECK(!strpbrk(value, "\r\n"), "nats: header '%s' has a CR or LF in its value", name);
    return FS_OK;
}

static int set_header(natsMsg *m, const char *name, const char *value, size_t i)
{
    int rc = check_header(name, value, i);
    if (rc)
        return rc;
    natsStatus s = natsMsgHeader_Add(m, name, value);
    if (s == NATS_NO_MEMORY)
        return nomem();
    if (s != NATS_OK)
        return fs_adapter_error(FS_EINVAL, "nats: header '%s': %s", name, natsStatus_GetText(s));
    return FS_OK;
}

int fs__nats_encode(const char *subject, const char *reply, const fs_envelope *env, bool js,
                    natsMsg **out)
{
    *out = NULL;
    FS__NATS_CHECK(env->body_len <= (size_t)INT32_MAX, "nats: body of %zu bytes is too large",
                   env->body_len);
    natsMsg *m = NULL;
    natsStatus s = natsMsg_Create(&m, subject, reply, (const char *)env->body, (int)env->body_len);
    if (s != NATS_OK)
        return s == NATS_NO_MEMORY
                   ? nomem()
                   : fs_adapter_error(FS_EINVAL, "nats: cannot make a message for %s: %s", subject,
                                      natsStatus_GetText(s));
    /* FastStream always writes content-type ("" when none). */
    int rc = set_header(m, FS__NATS_H_CONTENT_TYPE, env->content_type ? env->content_type : "", 0);
    if (!rc && env->correlation_id)
        rc = set_header(m, FS__NATS_H_CORRELATION_ID, env->correlation_id, 0);
    if (!rc && js && env->reply_to && *env->reply_to)
        rc = set_header(m, FS__NATS_H_REPLY_TO, env->reply_to, 0);
    if (!rc && js && env->message_id)
        rc = set_header(m, FS__NATS_H_MSG_ID, env->message_id, 0);
    for (size_t i = 0; i < env->header_count && !rc; i++)
        rc = set_header(m, env->headers[i].name, env->headers[i].value, i);
    if (rc) {
        natsMsg_Destroy(m);
        return rc;
    }
    *out = m;
    return FS_OK;
}

int fs__nats_check_subject(const char *subject, bool wildcards, const char *what)
{
    FS__NATS_CHECK(subject && *subject, "nats: %s: empty subject", what);
    const char *tok = subject;
    for (const char *p = subject;; p++) {
        if (*p == '.' || !*p) {
            size_t len = (size_t)(p - tok);
            FS__NATS_CHECK(len > 0, "nats: %s: subject '%s' has an empty token", what, subject);
            if (len == 1 && (*tok == '*' || *tok == '>')) {
                FS__NATS_CHECK(wildcards, "nats: %s: subject '%s' has a wildcard", what, subject);
                FS__NATS_CHECK(*tok != '>' || !*p, "nats: %s: '>' must be the last token of '%s'",
                               what, subject);
            }
            if (!*p)
                break;
            tok = p + 1;
            continue;
        }
        FS__NATS_CHECK((unsigned char)*p > ' ' && *p != 127,
                       "nats: %s: subject '%s' has whitespace or a control character", what,
                       subject);
    }
    return FS_OK;
}

bool fs__nats_js_meta(const char *reply, uint32_t *delivered, int64_t *timestamp_ms)
{
    if (!reply || strncmp(reply, "$JS.ACK.", 8) != 0)
        return false;
    const char *tok[12];
    size_t len[12];
    int n = 0;
    const char *p = reply + 8;
    while (n < 12) {
        const char *dot = strchr(p, '.');
        tok[n] = p;
        len[n] = dot ? (size_t)(dot - p) : strlen(p);
        n++;
        if (!dot)
            break;
        p = dot + 1;
    }
    /* 7 tokens after "$JS.ACK.": stream consumer delivered sseq cseq tm pending;
     * 9 or more: domain account-hash stream consumer delivered sseq cseq tm pending [random]. */
    int base = n == 7 ? 2 : n >= 9 ? 4 : -1;
    if (base < 0)
        return false;
    uint64_t vals[2] = {0, 0};
    const int idx[2] = {base, base + 3};
    for (int k = 0; k < 2; k++) {
        const char *t = tok[idx[k]];
        if (!len[idx[k]] || len[idx[k]] > 19)
            return false;
        for (size_t i = 0; i < len[idx[k]]; i++) {
            if (t[i] < '0' || t[i] > '9')
                return false;
            vals[k] = vals[k] * 10 + (uint64_t)(t[i] - '0');
        }
    }
    *delivered = vals[0] > UINT32_MAX ? UINT32_MAX : (uint32_t)vals[0];
    *timestamp_ms = (int64_t)(vals[1] / 1000000u);
    return true;
}
