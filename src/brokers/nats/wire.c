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

/* A header name character (printable ASCII but ':'). */
static bool name_char(unsigned char c)
{
    return c > ' ' && c < 127 && c != ':';
}

/*
 * nats.c 3.4.1 misreads an empty header value ("content-type: \r\n", which
 * FastStream writes when there is no content type): it skips the line end
 * and takes the NEXT line, "correlation_id: abc", as the value. Such a value
 * ("name:" or "name: value", the name made of header-name characters) is split
 * back, in place, into the empty value and the header it swallowed.
 */
static char *swallowed_header(const char *value)
{
    const unsigned char *p = (const unsigned char *)value;
    while (name_char(*p))
        p++;
    if (p == (const unsigned char *)value || *p != ':' || (p[1] && p[1] != ' '))
        return NULL;
    return (char *)p;
}

static void add_meta(fs_message *m, const char *k, const char *v, bool js, const char **msg_id)
{
    if (strcmp(k, FS__NATS_H_CONTENT_TYPE) == 0)
        m->content_type = *v ? v : NULL;
    else if (strcmp(k, FS__NATS_H_CORRELATION_ID) == 0)
        m->correlation_id = v;
    else if (strcmp(k, FS__NATS_H_MESSAGE_ID) == 0)
        m->message_id = v;
    else if (strcmp(k, FS__NATS_H_MSG_ID) == 0)
        *msg_id = v;
    else if (js && strcmp(k, FS__NATS_H_REPLY_TO) == 0)
        m->reply_to = *v ? v : NULL;
}

static fs_header header_of(const char *name, const char *value)
{
    fs_header h = {0};
    h.name = name;
    h.value = value;
    return h;
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
    if (s != NATS_OK || count <= 0) {
        /* No headers, or a block nats.c cannot read (an empty last value): the body still goes. */
        free(keys);
        return FS_OK;
    }
    size_t need = (size_t)count * 2; /* each may hide one swallowed header */
    if (need > h->cap) {
        size_t cap = h->cap ? h->cap : 8;
        while (cap < need)
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
        char *colon = swallowed_header(v);
        if (colon) {
            char *name = (char *)v;
            *colon = '\0';
            const char *value = colon[1] ? colon + 2 : colon + 1;
            h->items[n++] = header_of(keys[i], "");
            add_meta(m, keys[i], "", js, &msg_id);
            h->items[n++] = header_of(name, value);
            add_meta(m, name, value, js, &msg_id);
            continue;
        }
        h->items[n++] = header_of(keys[i], v);
        add_meta(m, keys[i], v, js, &msg_id);
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
    FS_CHECK_ARG(*name, "nats: header %zu has an empty name", i);
    for (const unsigned char *p = (const unsigned char *)name; *p; p++)
        FS_CHECK_ARG(*p > ' ' && *p < 127 && *p != ':',
                     "nats: header name '%s' has a character NATS cannot carry (0x%02x)", name, *p);
    FS_CHECK_ARG(!strpbrk(value, "\r\n"), "nats: header '%s' has a CR or LF in its value", name);
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
    FS_CHECK_ARG(env->body_len <= (size_t)INT32_MAX, "nats: body of %zu bytes is too large",
                 env->body_len);
    natsMsg *m = NULL;
    natsStatus s = natsMsg_Create(&m, subject, reply, (const char *)env->body, (int)env->body_len);
    if (s != NATS_OK)
        return s == NATS_NO_MEMORY
                   ? nomem()
                   : fs_adapter_error(FS_EINVAL, "nats: cannot make a message for %s: %s", subject,
                                      natsStatus_GetText(s));
    /*
     * FastStream writes content-type "" when there is none; nats.c 3.4.1
     * cannot read an empty value (see swallowed_header), so it is left out
     * (FastStream reads a missing one as "").
     */
    int rc = FS_OK;
    /* User headers first: ours after them keep an empty user value from being the last. */
    for (size_t i = 0; i < env->header_count && !rc; i++)
        rc = set_header(m, env->headers[i].name, env->headers[i].value, i);
    if (!rc && env->content_type && *env->content_type)
        rc = set_header(m, FS__NATS_H_CONTENT_TYPE, env->content_type, 0);
    if (!rc && env->correlation_id)
        rc = set_header(m, FS__NATS_H_CORRELATION_ID, env->correlation_id, 0);
    if (!rc && js && env->reply_to && *env->reply_to)
        rc = set_header(m, FS__NATS_H_REPLY_TO, env->reply_to, 0);
    if (!rc && js && env->message_id)
        rc = set_header(m, FS__NATS_H_MSG_ID, env->message_id, 0);
    if (rc) {
        natsMsg_Destroy(m);
        return rc;
    }
    *out = m;
    return FS_OK;
}

int fs__nats_check_subject(const char *subject, bool wildcards, const char *what)
{
    FS_CHECK_ARG(subject && *subject, "nats: %s: empty subject", what);
    const char *tok = subject;
    for (const char *p = subject;; p++) {
        if (*p == '.' || !*p) {
            size_t len = (size_t)(p - tok);
            FS_CHECK_ARG(len > 0, "nats: %s: subject '%s' has an empty token", what, subject);
            if (len == 1 && (*tok == '*' || *tok == '>')) {
                FS_CHECK_ARG(wildcards, "nats: %s: subject '%s' has a wildcard", what, subject);
                FS_CHECK_ARG(*tok != '>' || !*p, "nats: %s: '>' must be the last token of '%s'",
                             what, subject);
            }
            if (!*p)
                break;
            tok = p + 1;
            continue;
        }
        FS_CHECK_ARG((unsigned char)*p > ' ' && *p != 127,
                     "nats: %s: subject '%s' has whitespace or a control character", what, subject);
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
