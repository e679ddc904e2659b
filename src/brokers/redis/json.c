/*
 * Redis codec: FastStream's JSON envelope, written and read (a small
 * strict JSON reader). See wire.h.
 */
#include "wire.h"

#include "faststream/adapter.h"
#include "kit/check.h"
#include "kit/str.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define JSON_MAX_DEPTH 512

/* Append `s` as a JSON string literal (quotes included). `s` is valid UTF-8. */
int fs__redis_json_put_string(fs_kit_buf *b, const char *s, size_t n)
{
    static const char hex[] = "0123456789abcdef";
    if (n > (SIZE_MAX - 2) / 6)
        return fs_adapter_error(FS_ENOMEM,
                                "redis: a %zu-byte string is too large to escape as JSON", n);
    int rc = fs_kit_buf_reserve(b, n * 6 + 2); /* worst case: every byte \u00XX */
    if (rc)
        return rc;
    char *o = b->data + b->len;
    *o++ = '"';
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        switch (c) {
        case '"':
            *o++ = '\\';
            *o++ = '"';
            break;
        case '\\':
            *o++ = '\\';
            *o++ = '\\';
            break;
        case '\n':
            *o++ = '\\';
            *o++ = 'n';
            break;
        case '\r':
            *o++ = '\\';
            *o++ = 'r';
            break;
        case '\t':
            *o++ = '\\';
            *o++ = 't';
            break;
        case '\b':
            *o++ = '\\';
            *o++ = 'b';
            break;
        case '\f':
            *o++ = '\\';
            *o++ = 'f';
            break;
        default:
            if (c < 0x20) {
                memcpy(o, "\\u00", 4);
                o[4] = hex[c >> 4];
                o[5] = hex[c & 15];
                o += 6;
            } else {
                *o++ = (char)c;
            }
        }
    }
    *o++ = '"';
    b->len = (size_t)(o - b->data);
    b->data[b->len] = '\0';
    return FS_OK;
}

struct json_ctx {
    fs_kit_buf *b;
    bool first;
};

static int json_header(void *ctx, const char *k, size_t kl, const char *v, size_t vl)
{
    struct json_ctx *j = ctx;
    int rc = fs__redis_check_header(k, kl, v, vl, false);
    if (rc)
        return rc;
    if (!j->first && (rc = fs_kit_buf_put(j->b, ",", 1)))
        return rc;
    j->first = false;
    if ((rc = fs__redis_json_put_string(j->b, k, kl)) || (rc = fs_kit_buf_put(j->b, ":", 1)))
        return rc;
    return fs__redis_json_put_string(j->b, v, vl);
}

int fs__redis_encode_json(const fs__redis_envelope *env, fs__redis_scratch *s, fs_kit_buf *out)
{
    if (!fs_kit_utf8_valid(env->body, env->body_len))
        return fs_adapter_error(FS_EINVAL, "redis: the JSON format needs a UTF-8 body; "
                                           "use the binary format for binary data");
    size_t start = out->len, count;
    int rc = fs__redis_dedup_headers(env, s, &count);
    if (rc)
        return rc;
    if ((rc = fs_kit_buf_put(out, "{\"data\":", 8)) ||
        (rc = fs__redis_json_put_string(out, env->body, env->body_len)) ||
        (rc = fs_kit_buf_put(out, ",\"headers\":{", 12)))
        goto fail;
    struct json_ctx j = {out, true};
    if ((rc = fs__redis_walk_headers(env, s, count, json_header, &j)) ||
        (rc = fs_kit_buf_put(out, "}}", 2)))
        goto fail;
    return FS_OK;
fail:
    out->len = start;
    return rc;
}

/* A small strict JSON reader over [p, end). */
typedef struct jreader {
    const char *p, *end;
    fs_kit_buf *out; /* unescaped strings go here; capacity reserved up front */
    int depth;
} jreader;

static void jws(jreader *r)
{
    while (r->p < r->end && (*r->p == ' ' || *r->p == '\t' || *r->p == '\n' || *r->p == '\r'))
        r->p++;
}

static bool read_u4(jreader *r, unsigned *cp)
{
    if (r->end - r->p < 4)
        return false;
    unsigned v = 0;
    for (int i = 0; i < 4; i++) {
        int h = fs_kit_hexval(r->p[i]);
        if (h < 0)
            return false;
        v = (v << 4) | (unsigned)h;
    }
    r->p += 4;
    *cp = v;
    return true;
}

/*
 * Read a string at r->p (on the opening quote). Without escapes the result
 * points into the input; with escapes it is unescaped into r->out, whose
 * capacity was reserved so that it never moves. Lone surrogates are refused
 * (FastStream's str.encode() would fail on them).
 */
static bool jstring(jreader *r, const char **s, size_t *n)
{
    r->p++; /* opening quote */
    const char *start = r->p;
    while (r->p < r->end && *r->p != '"' && *r->p != '\\') {
        if ((unsigned char)*r->p < 0x20)
            return false;
        r->p++;
    }
    if (r->p >= r->end)
        return false;
    if (*r->p == '"') {
        if (!fs_kit_utf8_valid(start, (size_t)(r->p - start)))
            return false;
        *s = start;
        *n = (size_t)(r->p - start);
        r->p++;
        return true;
    }
    /* Escapes: copy the plain prefix, then unescape the rest. */
    fs_kit_buf *o = r->out;
    char *dst0 = o->data + o->len, *d = dst0;
    memcpy(d, start, (size_t)(r->p - start));
    d += r->p - start;
    while (r->p < r->end && *r->p != '"') {
        unsigned char c = (unsigned char)*r->p;
        if (c < 0x20)
            return false;
        if (c != '\\') {
            *d++ = (char)c;
            r->p++;
            continue;
        }
        if (++r->p >= r->end)
            return false;
        char e = *r->p++;
        switch (e) {
        case '"':
            *d++ = '"';
            break;
        case '\\':
            *d++ = '\\';
            break;
        case '/':
            *d++ = '/';
            break;
        case 'b':
            *d++ = '\b';
            break;
        case 'f':
            *d++ = '\f';
            break;
        case 'n':
            *d++ = '\n';
            break;
        case 'r':
            *d++ = '\r';
            break;
        case 't':
            *d++ = '\t';
            break;
        case 'u': {
            unsigned cp;
            if (!read_u4(r, &cp))
                return false;
            if (cp >= 0xDC00 && cp <= 0xDFFF)
                return false;
            if (cp >= 0xD800 && cp <= 0xDBFF) {
                unsigned lo;
                if (r->end - r->p < 6 || r->p[0] != '\\' || r->p[1] != 'u')
                    return false;
                r->p += 2;
                if (!read_u4(r, &lo) || lo < 0xDC00 || lo > 0xDFFF)
                    return false;
                cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
            }
            if (cp < 0x80) {
                *d++ = (char)cp;
            } else if (cp < 0x800) {
                *d++ = (char)(0xC0 | (cp >> 6));
                *d++ = (char)(0x80 | (cp & 0x3F));
            } else if (cp < 0x10000) {
                *d++ = (char)(0xE0 | (cp >> 12));
                *d++ = (char)(0x80 | ((cp >> 6) & 0x3F));
                *d++ = (char)(0x80 | (cp & 0x3F));
            } else {
                *d++ = (char)(0xF0 | (cp >> 18));
                *d++ = (char)(0x80 | ((cp >> 12) & 0x3F));
                *d++ = (char)(0x80 | ((cp >> 6) & 0x3F));
                *d++ = (char)(0x80 | (cp & 0x3F));
            }
            break;
        }
        default:
            return false;
        }
    }
    if (r->p >= r->end)
        return false;
    r->p++; /* closing quote */
    if (!fs_kit_utf8_valid(dst0, (size_t)(d - dst0)))
        return false;
    *s = dst0;
    *n = (size_t)(d - dst0);
    o->len += *n;
    return true;
}

static bool jliteral(jreader *r, const char *lit)
{
    size_t n = strlen(lit);
    if ((size_t)(r->end - r->p) < n || memcmp(r->p, lit, n) != 0)
        return false;
    r->p += n;
    return true;
}

static bool jdigits(jreader *r)
{
    const char *s = r->p;
    while (r->p < r->end && *r->p >= '0' && *r->p <= '9')
        r->p++;
    return r->p > s;
}

static bool jnumber(jreader *r)
{
    if (r->p < r->end && *r->p == '-')
        r->p++;
    if (r->p < r->end && *r->p == '0')
        r->p++;
    else if (!jdigits(r))
        return false;
    if (r->p < r->end && *r->p == '.') {
        r->p++;
        if (!jdigits(r))
            return false;
    }
    if (r->p < r->end && (*r->p == 'e' || *r->p == 'E')) {
        r->p++;
        if (r->p < r->end && (*r->p == '+' || *r->p == '-'))
            r->p++;
        if (!jdigits(r))
            return false;
    }
    return true;
}

static bool jvalue(jreader *r);

/* Read an object member's name and the colon after it. */
static bool jkey(jreader *r, const char **k, size_t *kl)
{
    jws(r);
    if (r->p >= r->end || *r->p != '"' || !jstring(r, k, kl))
        return false;
    jws(r);
    if (r->p >= r->end || *r->p != ':')
        return false;
    r->p++;
    jws(r);
    return r->p < r->end;
}

typedef int (*jmember_fn)(jreader *r, const char *k, size_t kl, void *ctx);

/*
 * Walk the object at r->p (on '{'). `member` reads each member's value (r->p
 * on its first character); NULL skips it. 1: well-formed; 0: not; <0: error.
 */
static int jobject(jreader *r, jmember_fn member, void *ctx)
{
    if (++r->depth > JSON_MAX_DEPTH)
        return 0;
    r->p++;
    jws(r);
    if (r->p < r->end && *r->p == '}') {
        r->p++;
        r->depth--;
        return 1;
    }
    for (;;) {
        const char *k;
        size_t kl;
        if (!jkey(r, &k, &kl))
            return 0;
        int rc = member ? member(r, k, kl, ctx) : jvalue(r);
        if (rc <= 0)
            return rc;
        jws(r);
        if (r->p >= r->end)
            return 0;
        if (*r->p == ',') {
            r->p++;
            continue;
        }
        if (*r->p != '}')
            return 0;
        r->p++;
        r->depth--;
        return 1;
    }
}

static bool jarray(jreader *r)
{
    if (++r->depth > JSON_MAX_DEPTH)
        return false;
    r->p++;
    jws(r);
    if (r->p < r->end && *r->p == ']') {
        r->p++;
        r->depth--;
        return true;
    }
    for (;;) {
        if (!jvalue(r))
            return false;
        jws(r);
        if (r->p >= r->end)
            return false;
        if (*r->p == ',') {
            r->p++;
            continue;
        }
        if (*r->p != ']')
            return false;
        r->p++;
        r->depth--;
        return true;
    }
}

/* Skip one value (leading whitespace allowed), validating it. */
static bool jvalue(jreader *r)
{
    jws(r);
    if (r->p >= r->end)
        return false;
    const char *s;
    size_t n;
    switch (*r->p) {
    case '{':
        return jobject(r, NULL, NULL) == 1;
    case '[':
        return jarray(r);
    case '"':
        return jstring(r, &s, &n);
    case 't':
        return jliteral(r, "true");
    case 'f':
        return jliteral(r, "false");
    case 'n':
        return jliteral(r, "null");
    default:
        return jnumber(r);
    }
}

typedef struct envelope_ctx {
    fs__redis_scratch *s;
    const char *body;
    size_t body_len;
    size_t count;
    bool have_data;
} envelope_ctx;

/* One member of "headers": a string value unescaped, any other value as its JSON text. */
static int header_member(jreader *r, const char *k, size_t kl, void *ctx)
{
    envelope_ctx *e = ctx;
    const char *v = r->p;
    size_t vl;
    if (*r->p == '"') {
        if (!jstring(r, &v, &vl))
            return 0;
    } else {
        if (!jvalue(r))
            return 0;
        vl = (size_t)(r->p - v);
    }
    int rc = fs__redis_kv_set(e->s, &e->count, k, kl, v, vl);
    return rc ? rc : 1;
}

/* One member of the envelope. Repeated members: the last wins, as in json.loads. */
static int envelope_member(jreader *r, const char *k, size_t kl, void *ctx)
{
    envelope_ctx *e = ctx;
    if (kl == 4 && memcmp(k, "data", 4) == 0) {
        e->have_data = *r->p == '"';
        if (e->have_data)
            return jstring(r, &e->body, &e->body_len);
        return jvalue(r);
    }
    if (kl == 7 && memcmp(k, "headers", 7) == 0) {
        e->count = 0;
        fs__redis_kv_reset(e->s);
        if (*r->p == '{')
            return jobject(r, header_member, e);
        return jvalue(r); /* not an object: no headers */
    }
    return jvalue(r);
}

/* 1: a JSON object with a string "data" (the envelope); 0: anything else; <0: error. */
int fs__redis_decode_json(const char *data, size_t len, fs__redis_scratch *s,
                          fs__redis_decoded *out)
{
    jreader r = {data, data + len, &s->bytes, 0};
    jws(&r);
    if (r.p >= r.end || *r.p != '{')
        return 0;
    /* Unescaped strings are never longer than their escaped form. */
    s->bytes.len = 0;
    int rc = fs_kit_buf_reserve(&s->bytes, len);
    if (rc)
        return rc;
    envelope_ctx e = {s, NULL, 0, 0, false};
    if ((rc = jobject(&r, envelope_member, &e)) <= 0)
        return rc;
    jws(&r);
    if (r.p != r.end || !e.have_data)
        return 0;
    out->format = FS_REDIS_FORMAT_JSON;
    out->body = e.body;
    out->body_len = e.body_len;
    out->headers = s->kv;
    out->header_count = e.count;
    return 1;
}
