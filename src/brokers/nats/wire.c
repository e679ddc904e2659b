/*
 * FastStream's NATS headers on nats.c messages, both ways (see wire.h).
 */
#include "wire.h"
#include "kit/buffer.h"

#include <ctype.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

void fs__nats_hdrs_free(fs__nats_hdrs *h)
{
    free(h->items);
    h->items = NULL;
    h->cap = 0;
    free(h->text);
    h->text = NULL;
    h->text_cap = 0;
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
    if (!strchr(value, ':')) /* the common case, found fast */
        return NULL;
    const unsigned char *p = (const unsigned char *)value;
    while (name_char(*p))
        p++;
    if (p == (const unsigned char *)value || *p != ':' || (p[1] && p[1] != ' '))
        return NULL;
    return (char *)p;
}

/* Our metadata headers, told apart by length first (one compare per header). */
static void add_meta(fs_message *m, const char *k, const char *v, bool js, const char **msg_id)
{
    switch (strlen(k)) {
    case sizeof FS__NATS_H_CONTENT_TYPE - 1:
        if (memcmp(k, FS__NATS_H_CONTENT_TYPE, sizeof FS__NATS_H_CONTENT_TYPE - 1) == 0)
            m->content_type = *v ? v : NULL;
        break;
    case sizeof FS__NATS_H_CORRELATION_ID - 1:
        if (memcmp(k, FS__NATS_H_CORRELATION_ID, sizeof FS__NATS_H_CORRELATION_ID - 1) == 0)
            m->correlation_id = v;
        break;
    case sizeof FS__NATS_H_MESSAGE_ID - 1:
        if (memcmp(k, FS__NATS_H_MESSAGE_ID, sizeof FS__NATS_H_MESSAGE_ID - 1) == 0)
            m->message_id = v;
        break;
    case sizeof FS__NATS_H_MSG_ID - 1:
        if (memcmp(k, FS__NATS_H_MSG_ID, sizeof FS__NATS_H_MSG_ID - 1) == 0)
            *msg_id = v;
        break;
    case sizeof FS__NATS_H_REPLY_TO - 1:
        if (js && memcmp(k, FS__NATS_H_REPLY_TO, sizeof FS__NATS_H_REPLY_TO - 1) == 0)
            m->reply_to = *v ? v : NULL;
        break;
    default:
        break;
    }
}

static fs_header header_of(const char *name, const char *value)
{
    fs_header h = {0};
    h.name = name;
    h.value = value;
    return h;
}

/* Room for `need` headers in h (reused: no allocation once it has grown). */
static int hdrs_reserve(fs__nats_hdrs *h, size_t need)
{
    return fs_kit_grow((void **)&h->items, &h->cap, need, sizeof *h->items);
}

#define HDR_PRE "NATS/1.0"
#define HDR_PRE_LEN (sizeof HDR_PRE - 1)

/*
 * nats.c 3.x keeps a received message in one allocation: subject NUL,
 * reply NUL (when there is one), the header block NUL, the body NUL. Its
 * header API parses that block into a hash table the first time a header is
 * asked for (an allocation per table, per value, and the key listing), and
 * misreads an empty value (above). We read the block where it lies instead,
 * checked on every message: it must fill exactly the bytes between the
 * reply (or subject) and the body, start with "NATS/1.0", end with CRLF
 * CRLF and hold no NUL (nats.c's parser cuts the block with NULs: a message
 * parsed already). Anything else goes through nats.c's API.
 */
const char *fs__nats_raw_headers(natsMsg *msg, size_t *len)
{
    if ((nats_GetVersionNumber() >> 16) != 3) /* the layout above */
        return NULL;
    const char *data = natsMsg_GetData(msg), *subject = natsMsg_GetSubject(msg);
    const char *reply = natsMsg_GetReply(msg);
    if (!data || !subject)
        return NULL;
    const char *start = reply ? reply + strlen(reply) + 1 : subject + strlen(subject) + 1;
    uintptr_t a = (uintptr_t)start, d = (uintptr_t)data;
    if (d < a || d - a < HDR_PRE_LEN + 4 + 1) /* "NATS/1.0" CRLF CRLF NUL */
        return NULL;
    size_t n = (size_t)(d - a) - 1;
    if (data[-1] != '\0' || memcmp(start, HDR_PRE, HDR_PRE_LEN) != 0 ||
        memcmp(data - 5, "\r\n\r\n", 4) != 0 || memchr(start, '\0', n))
        return NULL;
    *len = n;
    return start;
}

/*
 * Cut a copy of the header block (t, n bytes: "NATS/1.0" CRLF, "name:
 * value" CRLF lines, CRLF) into h->items, in wire order, values trimmed of
 * white space as nats.c trims them; an empty value is "". False (nothing
 * decided) for what only nats.c's parser reads: a status on the first line,
 * a folded line, a line without ':' or a bare CR.
 */
static bool split_headers(fs__nats_hdrs *h, char *t, size_t n, size_t *count)
{
    char *end = t + n, *p = t + HDR_PRE_LEN;
    while (p < end && *p == ' ')
        p++;
    if (end - p < 2 || p[0] != '\r' || p[1] != '\n')
        return false;
    p += 2;
    size_t k = 0;
    while (p < end) {
        if (*p == '\r') /* the blank line: the last one */
            break;
        if (isspace((unsigned char)*p))
            return false;
        char *eol = memchr(p, '\r', (size_t)(end - p));
        if (!eol || end - eol < 2 || eol[1] != '\n')
            return false;
        char *colon = memchr(p, ':', (size_t)(eol - p));
        if (!colon)
            return false;
        *colon = '\0';
        char *v = colon + 1, *ve = eol;
        while (v < ve && isspace((unsigned char)*v))
            v++;
        while (ve > v && isspace((unsigned char)ve[-1]))
            ve--;
        *ve = '\0';
        if (k == h->cap && hdrs_reserve(h, k + 1))
            return false;
        h->items[k].name = p;
        h->items[k].value = v;
        h->items[k].value_len = (size_t)(ve - v);
        k++;
        p = eol + 2;
    }
    if (p + 2 != end) /* a blank line before the end */
        return false;
    *count = k;
    return true;
}

/* The received block read in place (see fs__nats_raw_headers); false: use nats.c's API. */
static bool decode_raw(natsMsg *msg, bool js, fs__nats_hdrs *h, fs_message *m)
{
    size_t n;
    const char *raw = fs__nats_raw_headers(msg, &n);
    if (!raw)
        return false;
    if (fs_kit_grow((void **)&h->text, &h->text_cap, n + 1, 1))
        return false;
    memcpy(h->text, raw, n + 1);
    size_t count;
    if (!split_headers(h, h->text, n, &count))
        return false;
    /* Backwards, so that the first of a repeated name wins, as natsMsgHeader_Get has it. */
    const char *msg_id = NULL;
    for (size_t i = count; i-- > 0;)
        add_meta(m, h->items[i].name, h->items[i].value, js, &msg_id);
    if (!m->message_id)
        m->message_id = msg_id;
    m->headers = count ? h->items : NULL;
    m->header_count = count;
    return true;
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
    if (decode_raw(msg, js, h, m))
        return FS_OK;
    const char **keys = NULL;
    int count = 0;
    natsStatus s = natsMsgHeader_Keys(msg, &keys, &count);
    if (s != NATS_OK || count <= 0) {
        /* No headers, or a block nats.c cannot read (an empty last value): the body still goes. */
        free(keys);
        return FS_OK;
    }
    int rc = hdrs_reserve(h, (size_t)count * 2); /* each may hide one swallowed header */
    if (rc) {
        free(keys);
        return rc;
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
        FS_CHECK_ARG(name_char(*p),
                     "nats: header name '%s' has a character NATS cannot carry (0x%02x)", name, *p);
    FS_CHECK_ARG(!strpbrk(value, "\r\n"), "nats: header '%s' has a CR or LF in its value", name);
    return FS_OK;
}

static int add_header(natsMsg *m, const char *name, const char *value, bool unique)
{
    natsStatus s = unique ? natsMsgHeader_Set(m, name, value) : natsMsgHeader_Add(m, name, value);
    if (s == NATS_NO_MEMORY)
        return nomem();
    if (s != NATS_OK)
        return fs_adapter_error(FS_EINVAL, "nats: header '%s': %s", name, natsStatus_GetText(s));
    return FS_OK;
}

/* Our headers for env, in the order they are written. */
typedef struct meta {
    const char *name, *value;
} meta;

#define META_MAX 5

static size_t metas_of(const fs_envelope *env, bool js, const char *stream, meta *out)
{
    /*
     * FastStream writes content-type "" when there is none; nats.c 3.4.1
     * cannot read an empty value (see swallowed_header), so it is left out
     * (FastStream reads a missing one as "").
     */
    size_t n = 0;
    if (env->content_type && *env->content_type)
        out[n++] = (meta){FS__NATS_H_CONTENT_TYPE, env->content_type};
    if (env->correlation_id)
        out[n++] = (meta){FS__NATS_H_CORRELATION_ID, env->correlation_id};
    if (js && env->reply_to && *env->reply_to)
        out[n++] = (meta){FS__NATS_H_REPLY_TO, env->reply_to};
    if (js && env->message_id)
        out[n++] = (meta){FS__NATS_H_MSG_ID, env->message_id};
    if (js && stream && *stream)
        out[n++] = (meta){FS__NATS_H_EXPECTED_STREAM, stream};
    return n;
}

/* Only the value of ours is checked (the names are known). */
static int check_metas(const meta *mt, size_t n)
{
    for (size_t i = 0; i < n; i++)
        FS_CHECK_ARG(!strpbrk(mt[i].value, "\r\n"), "nats: header '%s' has a CR or LF in its value",
                     mt[i].name);
    return FS_OK;
}

/* A user header that one of ours replaces (natsMsgHeader_Set drops every value of its name). */
static bool shadowed(const char *name, const meta *mt, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (strcmp(name, mt[i].name) == 0)
            return true;
    return false;
}

/*
 * nats.c's constructor of a message as it comes off the socket (exported,
 * not in nats.h; this signature from 3.0 to 3.13, the development branch
 * adds a parameter): with `buf` NULL it lays out subject, reply, an
 * uninitialised header block of hdrLen bytes and the body, and nats.c
 * publishes that block as it is (what it does to re-publish a received
 * message). One allocation, where natsMsgHeader_Set builds a hash table
 * with copies of every name and value (about 3,000 instructions and ten
 * allocations for a message with two headers).
 */
natsStatus natsMsg_create(natsMsg **newMsg, const char *subject, int subjLen, const char *reply,
                          int replyLen, const char *buf, int bufLen, int hdrLen);

static bool block_create_known(void)
{
    uint32_t v = nats_GetVersionNumber();
    return v >= 0x030000u && v < 0x030E00u;
}

static char *put_line(char *p, const char *name, const char *value)
{
    size_t n = strlen(name), v = strlen(value);
    memcpy(p, name, n);
    p += n;
    *p++ = ':';
    *p++ = ' ';
    memcpy(p, value, v);
    p += v;
    *p++ = '\r';
    *p++ = '\n';
    return p;
}

/*
 * The message with its header block written by us: the lines nats.c would
 * write, in order (the user's, then ours). *out NULL: not possible here (no
 * headers, another nats.c, an unexpected layout); the caller uses the API.
 * The headers are checked already.
 */
static int encode_block(const char *subject, const char *reply, const fs_envelope *env,
                        const meta *mt, size_t nm, natsMsg **out)
{
    size_t hl = 0;
    for (size_t i = 0; i < env->header_count; i++)
        if (!shadowed(env->headers[i].name, mt, nm))
            hl += strlen(env->headers[i].name) + strlen(env->headers[i].value) + 4;
    for (size_t i = 0; i < nm; i++)
        hl += strlen(mt[i].name) + strlen(mt[i].value) + 4;
    if (!hl || !*subject || !block_create_known())
        return FS_OK;
    hl += HDR_PRE_LEN + 4; /* "NATS/1.0" CRLF ... CRLF */
    FS_CHECK_ARG(hl + env->body_len <= (size_t)INT32_MAX, "nats: message of %zu bytes is too large",
                 hl + env->body_len);
    size_t sl = strlen(subject), rl = reply ? strlen(reply) : 0;
    natsMsg *m = NULL;
    if (natsMsg_create(&m, subject, (int)sl, rl ? reply : NULL, (int)rl, NULL,
                       (int)(hl + env->body_len), (int)hl) != NATS_OK)
        return nomem();
    /* The layout fs__nats_raw_headers reads, checked before writing into it. */
    char *data = (char *)natsMsg_GetData(m);
    const char *start = rl ? natsMsg_GetReply(m) + rl + 1 : natsMsg_GetSubject(m) + sl + 1;
    if (!data || (uintptr_t)data < (uintptr_t)start ||
        (uintptr_t)data - (uintptr_t)start != hl + 1 ||
        natsMsg_GetDataLength(m) != (int)env->body_len) {
        natsMsg_Destroy(m);
        return FS_OK;
    }
    char *p = data - hl - 1;
    memcpy(p, HDR_PRE "\r\n", HDR_PRE_LEN + 2);
    p += HDR_PRE_LEN + 2;
    for (size_t i = 0; i < env->header_count; i++)
        if (!shadowed(env->headers[i].name, mt, nm))
            p = put_line(p, env->headers[i].name, env->headers[i].value);
    for (size_t i = 0; i < nm; i++)
        p = put_line(p, mt[i].name, mt[i].value);
    memcpy(p, "\r\n", 2);
    if (env->body_len)
        memcpy(data, env->body, env->body_len);
    *out = m;
    return FS_OK;
}

static int encode(const char *subject, const char *reply, const fs_envelope *env, bool js,
                  const char *stream, natsMsg **out)
{
    *out = NULL;
    FS_CHECK_ARG(subject && *subject, "nats: cannot make a message without a subject");
    FS_CHECK_ARG(env->body_len <= (size_t)INT32_MAX, "nats: body of %zu bytes is too large",
                 env->body_len);
    if (reply && !*reply)
        reply = NULL;
    meta mt[META_MAX];
    size_t nm = metas_of(env, js, stream, mt);
    int rc = check_metas(mt, nm);
    for (size_t i = 0; i < env->header_count && !rc; i++)
        rc = check_header(env->headers[i].name, env->headers[i].value, i);
    if (rc || (rc = encode_block(subject, reply, env, mt, nm, out)) || *out)
        return rc;
    natsMsg *m = NULL;
    natsStatus s = natsMsg_Create(&m, subject, reply, (const char *)env->body, (int)env->body_len);
    if (s != NATS_OK)
        return s == NATS_NO_MEMORY
                   ? nomem()
                   : fs_adapter_error(FS_EINVAL, "nats: cannot make a message for %s: %s", subject,
                                      natsStatus_GetText(s));
    /* User headers first: ours after them keep an empty user value from being the last. */
    for (size_t i = 0; i < env->header_count && !rc; i++)
        rc = add_header(m, env->headers[i].name, env->headers[i].value, false);
    for (size_t i = 0; i < nm && !rc; i++)
        rc = add_header(m, mt[i].name, mt[i].value, true);
    if (rc) {
        natsMsg_Destroy(m);
        return rc;
    }
    *out = m;
    return FS_OK;
}

int fs__nats_encode(const char *subject, const char *reply, const fs_envelope *env, bool js,
                    natsMsg **out)
{
    return encode(subject, reply, env, js, NULL, out);
}

int fs__nats_encode_js(const char *subject, const fs_envelope *env, const char *stream,
                       natsMsg **out)
{
    return encode(subject, NULL, env, true, stream, out);
}

int fs__nats_check_subject(const char *subject, bool wildcards, const char *what)
{
    FS_CHECK_ARG(subject && *subject, "nats: %s: empty subject", what);
    /* The common case at libc speed: no whitespace, no wildcard, no empty token. */
    size_t len = strlen(subject);
    if (!strpbrk(subject, " \t\r\n\f\v*>") && subject[0] != '.' && subject[len - 1] != '.' &&
        !strstr(subject, ".."))
        return FS_OK;
    const char *tok = subject;
    for (const char *p = subject;; p++) {
        if (*p == '.' || !*p) {
            size_t tlen = (size_t)(p - tok);
            FS_CHECK_ARG(tlen > 0, "nats: %s: subject '%s' has an empty token", what, subject);
            if (tlen == 1 && (*tok == '*' || *tok == '>')) {
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

/* Eight ASCII digits at p (known to be inside the string) as a number, or false. */
static bool digits8(const char *p, uint64_t *out)
{
    uint64_t v;
    memcpy(&v, p, 8);
    uint64_t lo = v - 0x3030303030303030ull, hi = v + 0x4646464646464646ull;
    if ((lo | hi) & 0x8080808080808080ull) /* a byte below '0' or above '9' */
        return false;
    /* little-endian: the first digit is the lowest byte; pairs, quads, then all eight */
    lo = (lo * 10) + (lo >> 8);
    lo = (((lo & 0x000000FF000000FFull) * 0x000F424000000064ull) +
          (((lo >> 16) & 0x000000FF000000FFull) * 0x0000271000000001ull)) >>
         32;
    *out = lo;
    return true;
}

/* Digits at *p up to the next '.', into *out; the position after the dot, or NULL. */
static const char *parse_token(const char *p, uint64_t *out)
{
    const char *dot = strchr(p, '.');
    size_t len = dot ? (size_t)(dot - p) : 0;
    if (!len || len > 19)
        return NULL;
    uint64_t x = 0, chunk;
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
    for (; len >= 8; len -= 8, p += 8) {
        if (!digits8(p, &chunk))
            return NULL;
        x = x * 100000000u + chunk;
    }
#else
    (void)chunk;
    (void)digits8;
#endif
    for (; len; len--, p++) {
        unsigned d = (unsigned)(*p - '0');
        if (d > 9)
            return NULL;
        x = x * 10 + d;
    }
    *out = x;
    return dot + 1;
}

/* Parse "<delivered>.<sseq>.<cseq>.<ns timestamp>." at `p` (the sequences are skipped). */
bool fs__nats_js_meta_tail(const char *p, uint32_t *delivered, int64_t *timestamp_ms)
{
    uint64_t d, tm;
    if (!(p = parse_token(p, &d)))
        return false;
    for (int k = 0; k < 2; k++) { /* stream and consumer sequences */
        const char *dot = strchr(p, '.');
        if (!dot || dot == p)
            return false;
        p = dot + 1;
    }
    if (!parse_token(p, &tm))
        return false;
    *delivered = d > UINT32_MAX ? UINT32_MAX : (uint32_t)d;
    *timestamp_ms = (int64_t)(tm / 1000000u);
    return true;
}

bool fs__nats_js_meta(const char *reply, uint32_t *delivered, int64_t *timestamp_ms)
{
    if (!reply || strncmp(reply, "$JS.ACK.", 8) != 0)
        return false;
    /* Count the tokens after "$JS.ACK.": 7 (stream consumer delivered sseq cseq tm pending)
     * or 9-10 (domain account-hash stream consumer delivered ... pending [random]). */
    const char *p = reply + 8, *dot[12];
    int n = 0;
    for (const char *q = strchr(p, '.'); q && n < 12; q = strchr(q + 1, '.'))
        dot[n++] = q;
    int tokens = n + 1;
    int before = tokens == 7 ? 2 : (tokens == 9 || tokens == 10) ? 4 : -1;
    if (before < 0)
        return false;
    return fs__nats_js_meta_tail(dot[before - 1] + 1, delivered, timestamp_ms);
}
