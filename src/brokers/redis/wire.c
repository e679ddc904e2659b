/*
 * FastStream's Redis message formats (see wire.h for the layouts).
 */
#include "wire.h"

#include "faststream/adapter.h"
#include "kit/check.h"
#include "kit/clock.h"
#include "kit/str.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

#define JSON_MAX_DEPTH 512
#define U16_MAX 65535u

/* ------------------------------------------------------------------------ */
/* Buffers                                                                  */

void fs__redis_scratch_free(fs__redis_scratch *s)
{
    fs_kit_buf_free(&s->bytes);
    fs_kit_buf_free(&s->json);
    free(s->kv);
    s->kv = NULL;
    s->kv_cap = 0;
    free(s->index);
    s->index = NULL;
    s->index_cap = s->index_mask = 0;
}

const char *fs_redis_format_name(fs_redis_format format)
{
    switch (format) {
    case FS_REDIS_FORMAT_DEFAULT:
        return "default";
    case FS_REDIS_FORMAT_BINARY:
        return "binary";
    case FS_REDIS_FORMAT_JSON:
        return "json";
    case FS_REDIS_FORMAT_RAW:
        return "raw";
    }
    return "unknown";
}

/* ------------------------------------------------------------------------ */
/* UTF-8                                                                    */

/* True when [p, p+n) is all ASCII: whole words, the tail as one last overlapping word. */

/* ------------------------------------------------------------------------ */
/* Repeated header keys (decoding and encoding)                             */

/*
 * Repeated header keys. Up to KV_LINEAR_MAX headers a linear search finds
 * them; beyond, an open-addressing index (linear probing, at most half full)
 * over kv[0..count), keyed by SipHash-1-3 with a random key so that crafted
 * keys cannot make it collide: decoding and encoding stay linear in the
 * header count.
 * The index lives in the scratch and is reused; it only grows.
 */
#define KV_LINEAR_MAX 16
#define KV_INDEX_MIN 64 /* slots when the index is first built (KV_LINEAR_MAX * 4) */

struct fs__redis_kv_slot {
    uint32_t pos;  /* kv position + 1; 0: empty */
    uint32_t hash; /* low bits of the key's hash, to skip most comparisons */
};

#define SIP_ROTL(x, b) (uint64_t)(((x) << (b)) | ((x) >> (64 - (b))))
#define SIP_ROUND                                                                                  \
    do {                                                                                           \
        v0 += v1;                                                                                  \
        v1 = SIP_ROTL(v1, 13);                                                                     \
        v1 ^= v0;                                                                                  \
        v0 = SIP_ROTL(v0, 32);                                                                     \
        v2 += v3;                                                                                  \
        v3 = SIP_ROTL(v3, 16);                                                                     \
        v3 ^= v2;                                                                                  \
        v0 += v3;                                                                                  \
        v3 = SIP_ROTL(v3, 21);                                                                     \
        v3 ^= v0;                                                                                  \
        v2 += v1;                                                                                  \
        v1 = SIP_ROTL(v1, 17);                                                                     \
        v1 ^= v2;                                                                                  \
        v2 = SIP_ROTL(v2, 32);                                                                     \
    } while (0)

/* SipHash-1-3 of [p, p+n) under key k (words in host order: only this process compares them). */
static uint64_t siphash13(const uint64_t k[2], const char *p, size_t n)
{
    uint64_t v0 = 0x736f6d6570736575ull ^ k[0], v1 = 0x646f72616e646f6dull ^ k[1];
    uint64_t v2 = 0x6c7967656e657261ull ^ k[0], v3 = 0x7465646279746573ull ^ k[1];
    uint64_t m, b = (uint64_t)n << 56;
    size_t i = 0;
    for (; n - i >= 8; i += 8) {
        memcpy(&m, p + i, 8);
        v3 ^= m;
        SIP_ROUND;
        v0 ^= m;
    }
    for (size_t j = 0; i + j < n; j++)
        b |= (uint64_t)(unsigned char)p[i + j] << (8 * j);
    v3 ^= b;
    SIP_ROUND;
    v0 ^= b;
    v2 ^= 0xff;
    SIP_ROUND;
    SIP_ROUND;
    SIP_ROUND;
    return v0 ^ v1 ^ v2 ^ v3;
}

static uint32_t kv_hash(const fs__redis_scratch *s, const char *k, size_t kl)
{
    return (uint32_t)siphash13(s->index_key, k, kl);
}

static bool kv_is(const fs__redis_kv *e, const char *k, size_t kl)
{
    return e->key_len == kl && memcmp(e->key, k, kl) == 0;
}

static int kv_reserve(fs__redis_scratch *s, size_t n)
{
    return fs_kit_grow((void **)&s->kv, &s->kv_cap, n, sizeof *s->kv);
}

/* Forget the headers of the previous message (or of an earlier "headers" member). */
static void kv_reset(fs__redis_scratch *s)
{
    s->index_mask = 0;
}

/* The first empty slot for hash h (the index holds no such key). */
static size_t kv_free_slot(const fs__redis_scratch *s, uint32_t h)
{
    size_t i = h & s->index_mask;
    while (s->index[i].pos)
        i = (i + 1) & s->index_mask;
    return i;
}

/* (Re)build the index over kv[0..count) with `slots` slots (a power of two > 2 * count). */
static int kv_index_build(fs__redis_scratch *s, size_t count, size_t slots)
{
    if (!s->index) {
        if (getrandom(s->index_key, sizeof s->index_key, GRND_NONBLOCK) !=
            (ssize_t)sizeof s->index_key) {
            struct timespec ts;
            clock_gettime(CLOCK_MONOTONIC, &ts);
            s->index_key[0] = (uint64_t)ts.tv_nsec ^ ((uint64_t)ts.tv_sec << 32);
            s->index_key[1] = 0x9E3779B97F4A7C15ull ^ (uint64_t)(uintptr_t)s;
        }
    }
    int rc = fs_kit_grow((void **)&s->index, &s->index_cap, slots, sizeof *s->index);
    if (rc)
        return rc;
    memset(s->index, 0, slots * sizeof *s->index);
    s->index_mask = slots - 1;
    for (size_t i = 0; i < count; i++) {
        uint32_t h = kv_hash(s, s->kv[i].key, s->kv[i].key_len);
        s->index[kv_free_slot(s, h)] = (struct fs__redis_kv_slot){(uint32_t)(i + 1), h};
    }
    return FS_OK;
}

/* The slot holding key k (hash h), or the first empty slot after it. */
static size_t kv_probe(const fs__redis_scratch *s, const char *k, size_t kl, uint32_t h)
{
    size_t i = h & s->index_mask;
    while (s->index[i].pos && !(s->index[i].hash == h && kv_is(&s->kv[s->index[i].pos - 1], k, kl)))
        i = (i + 1) & s->index_mask;
    return i;
}

/* The entry of key k in kv[0..count), or NULL. */
static fs__redis_kv *kv_find(fs__redis_scratch *s, size_t count, const char *k, size_t kl)
{
    if (!s->index_mask) {
        for (size_t i = 0; i < count; i++)
            if (kv_is(&s->kv[i], k, kl))
                return &s->kv[i];
        return NULL;
    }
    size_t i = kv_probe(s, k, kl, kv_hash(s, k, kl));
    return s->index[i].pos ? &s->kv[s->index[i].pos - 1] : NULL;
}

/* Set key to value in kv[0..*count): a repeated key keeps its place, last value wins. */
static int kv_set(fs__redis_scratch *s, size_t *count, const char *k, size_t kl, const char *v,
                  size_t vl)
{
    if (!s->index_mask) {
        fs__redis_kv *e = kv_find(s, *count, k, kl);
        if (e) {
            e->value = v;
            e->value_len = vl;
            return FS_OK;
        }
        if (*count < KV_LINEAR_MAX) {
            int rc = kv_reserve(s, *count + 1);
            if (rc)
                return rc;
            s->kv[(*count)++] = (fs__redis_kv){k, kl, v, vl};
            return FS_OK;
        }
        int rc = kv_index_build(s, *count, KV_INDEX_MIN);
        if (rc)
            return rc;
    }
    uint32_t h = kv_hash(s, k, kl);
    size_t i = kv_probe(s, k, kl, h);
    if (s->index[i].pos) {
        fs__redis_kv *e = &s->kv[s->index[i].pos - 1];
        e->value = v;
        e->value_len = vl;
        return FS_OK;
    }
    if (*count >= UINT32_MAX - 1)
        return fs_adapter_error(FS_ENOMEM, "redis: too many headers (%zu)", *count);
    int rc = kv_reserve(s, *count + 1);
    if (rc)
        return rc;
    if (*count + 1 > s->index_mask / 2) { /* keep it at most half full */
        if (s->index_mask > SIZE_MAX / 4)
            return fs_adapter_error(FS_ENOMEM, "redis: header index size overflow");
        if ((rc = kv_index_build(s, *count, (s->index_mask + 1) * 2)))
            return rc;
        i = kv_free_slot(s, h);
    }
    s->kv[*count] = (fs__redis_kv){k, kl, v, vl};
    s->index[i] = (struct fs__redis_kv_slot){(uint32_t)(*count + 1), h};
    (*count)++;
    return FS_OK;
}

/* ------------------------------------------------------------------------ */
/* Encoding                                                                 */

typedef int (*header_fn)(void *ctx, const char *k, size_t kl, const char *v, size_t vl);

static bool key_is(const fs__redis_kv *h, const char *name)
{
    size_t n = strlen(name);
    return h->key_len == n && memcmp(h->key, name, n) == 0;
}

/*
 * Deduplicate the user's headers into the scratch's kv: a repeated key
 * keeps its first place and takes its last value (kv_set: linear time).
 */
static int dedup_headers(const fs__redis_envelope *env, fs__redis_scratch *s, size_t *count)
{
    kv_reset(s);
    *count = 0;
    for (size_t i = 0; i < env->header_count; i++) {
        const fs__redis_kv *h = &env->headers[i];
        if (!h->key && h->key_len)
            return fs_adapter_error(FS_EINVAL, "redis: header key is NULL");
        int rc = kv_set(s, count, h->key, h->key_len, h->value, h->value_len);
        if (rc)
            return rc;
    }
    return FS_OK;
}

/*
 * Walk the headers in the order FastStream's MessageFormat.build produces
 * them: a dict {correlation_id, content-type?, reply_to?} updated with the
 * user's headers (an existing key keeps its place and takes the new value, a
 * new key is appended, a repeated key's last value wins). The user's headers
 * are kv[0..count) of `s`, deduplicated by dedup_headers.
 */
static int walk_headers(const fs__redis_envelope *env, fs__redis_scratch *s, size_t count,
                        header_fn fn, void *ctx)
{
    static const char *const std_names[] = {"correlation_id", "content-type", "reply_to"};
    const char *std_values[3] = {env->correlation_id ? env->correlation_id : "", env->content_type,
                                 env->reply_to};
    bool emitted[3];
    int rc;
    for (int n = 0; n < 3; n++) {
        emitted[n] = n == 0 || (std_values[n] && *std_values[n]);
        if (!emitted[n])
            continue;
        size_t nl = strlen(std_names[n]);
        const fs__redis_kv *o = kv_find(s, count, std_names[n], nl);
        rc = o ? fn(ctx, std_names[n], nl, o->value, o->value_len)
               : fn(ctx, std_names[n], nl, std_values[n], strlen(std_values[n]));
        if (rc)
            return rc;
    }
    for (size_t i = 0; i < count; i++) {
        const fs__redis_kv *h = &s->kv[i];
        bool skip = false;
        for (int n = 0; n < 3 && !skip; n++)
            skip = emitted[n] && key_is(h, std_names[n]);
        if (!skip && (rc = fn(ctx, h->key, h->key_len, h->value, h->value_len)))
            return rc;
    }
    return FS_OK;
}

struct bin_size {
    size_t bytes;
    size_t count;
};

/* A header either format can carry; the binary one also needs 16-bit lengths. */
static int check_header(const char *k, size_t kl, const char *v, size_t vl, bool binary)
{
    if (!k && kl)
        return fs_adapter_error(FS_EINVAL, "redis: header key is NULL");
    if (!v && vl)
        return fs_adapter_error(FS_EINVAL, "redis: header value is NULL");
    if (binary && (kl > U16_MAX || vl > U16_MAX))
        return fs_adapter_error(FS_EINVAL, "redis: header '%.*s' is longer than 65535 bytes",
                                (int)(kl > 64 ? 64 : kl), k);
    if (!fs_kit_utf8_valid(k, kl) || !fs_kit_utf8_valid(v, vl))
        return fs_adapter_error(FS_EINVAL, "redis: header '%.*s' is not valid UTF-8",
                                (int)(kl > 64 ? 64 : kl), k);
    return FS_OK;
}

static int bin_measure(void *ctx, const char *k, size_t kl, const char *v, size_t vl)
{
    struct bin_size *s = ctx;
    int rc = check_header(k, kl, v, vl, true);
    if (rc)
        return rc;
    s->bytes += 4 + kl + vl;
    s->count++;
    return FS_OK;
}

static void put_u16(fs_kit_buf *b, unsigned v)
{
    b->data[b->len++] = (char)((v >> 8) & 0xFF);
    b->data[b->len++] = (char)(v & 0xFF);
}

static void put_u32(fs_kit_buf *b, uint32_t v)
{
    put_u16(b, (unsigned)(v >> 16));
    put_u16(b, (unsigned)(v & 0xFFFF));
}

static void put_raw(fs_kit_buf *b, const void *p, size_t n)
{
    if (n)
        memcpy(b->data + b->len, p, n);
    b->len += n;
}

static int bin_write(void *ctx, const char *k, size_t kl, const char *v, size_t vl)
{
    fs_kit_buf *b = ctx;
    put_u16(b, (unsigned)kl);
    put_raw(b, k, kl);
    put_u16(b, (unsigned)vl);
    put_raw(b, v, vl);
    return FS_OK;
}

static int encode_binary(const fs__redis_envelope *env, fs__redis_scratch *s, fs_kit_buf *out)
{
    struct bin_size size = {0, 0};
    size_t count;
    int rc = dedup_headers(env, s, &count);
    if (rc || (rc = walk_headers(env, s, count, bin_measure, &size)))
        return rc;
    if (size.count > U16_MAX)
        return fs_adapter_error(FS_EINVAL, "redis: %zu headers, the binary format holds 65535",
                                size.count);
    const size_t headers_start = FS__REDIS_BINARY_MAGIC_LEN + 2 + 8;
    const size_t data_start = headers_start + 2 + size.bytes;
    if (data_start > UINT32_MAX)
        return fs_adapter_error(FS_EINVAL, "redis: headers too large for the binary format");
    if (env->body_len > SIZE_MAX - data_start)
        return fs_adapter_error(FS_ENOMEM, "redis: a %zu-byte body is too large", env->body_len);
    if ((rc = fs_kit_buf_reserve(out, data_start + env->body_len)))
        return rc;
    put_raw(out, FS__REDIS_BINARY_MAGIC, FS__REDIS_BINARY_MAGIC_LEN);
    put_u16(out, FS__REDIS_BINARY_VERSION);
    put_u32(out, (uint32_t)headers_start);
    put_u32(out, (uint32_t)data_start);
    put_u16(out, (unsigned)size.count);
    walk_headers(env, s, count, bin_write, out);
    put_raw(out, env->body, env->body_len);
    out->data[out->len] = '\0';
    return FS_OK;
}

/* Append `s` as a JSON string literal (quotes included). `s` is valid UTF-8. */
static int json_put_string(fs_kit_buf *b, const char *s, size_t n)
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
    int rc = check_header(k, kl, v, vl, false);
    if (rc)
        return rc;
    if (!j->first && (rc = fs_kit_buf_put(j->b, ",", 1)))
        return rc;
    j->first = false;
    if ((rc = json_put_string(j->b, k, kl)) || (rc = fs_kit_buf_put(j->b, ":", 1)))
        return rc;
    return json_put_string(j->b, v, vl);
}

static int encode_json(const fs__redis_envelope *env, fs__redis_scratch *s, fs_kit_buf *out)
{
    if (!fs_kit_utf8_valid(env->body, env->body_len))
        return fs_adapter_error(FS_EINVAL, "redis: the JSON format needs a UTF-8 body; "
                                           "use the binary format for binary data");
    size_t start = out->len, count;
    int rc = dedup_headers(env, s, &count);
    if (rc)
        return rc;
    if ((rc = fs_kit_buf_put(out, "{\"data\":", 8)) ||
        (rc = json_put_string(out, env->body, env->body_len)) ||
        (rc = fs_kit_buf_put(out, ",\"headers\":{", 12)))
        goto fail;
    struct json_ctx j = {out, true};
    if ((rc = walk_headers(env, s, count, json_header, &j)) || (rc = fs_kit_buf_put(out, "}}", 2)))
        goto fail;
    return FS_OK;
fail:
    out->len = start;
    return rc;
}

int fs__redis_encode(fs_redis_format format, const fs__redis_envelope *env,
                     fs__redis_scratch *scratch, fs_kit_buf *out)
{
    FS_CHECK_ARG(env && scratch && out, "redis: encode needs an envelope, a scratch and a buffer");
    FS_CHECK_ARG(env->body || !env->body_len, "redis: body is NULL with length %zu", env->body_len);
    FS_CHECK_ARG(env->headers || !env->header_count, "redis: headers are NULL");
    switch (format) {
    case FS_REDIS_FORMAT_DEFAULT:
    case FS_REDIS_FORMAT_BINARY:
        return encode_binary(env, scratch, out);
    case FS_REDIS_FORMAT_JSON:
        return encode_json(env, scratch, out);
    case FS_REDIS_FORMAT_RAW:
        return fs_kit_buf_put(out, env->body, env->body_len);
    }
    return fs_adapter_error(FS_EINVAL, "redis: unknown message format %d", (int)format);
}

/* ------------------------------------------------------------------------ */
/* Decoding                                                                 */

static unsigned get_u16(const unsigned char *p)
{
    return ((unsigned)p[0] << 8) | p[1];
}

static uint32_t get_u32(const unsigned char *p)
{
    return ((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) | ((uint32_t)p[2] << 8) | p[3];
}

/* 1: decoded as binary v1; 0: not binary (or damaged); <0: error. */
static int decode_binary(const char *data, size_t len, fs__redis_scratch *s, fs__redis_decoded *out)
{
    const unsigned char *p = (const unsigned char *)data;
    if (len < FS__REDIS_BINARY_MAGIC_LEN + 10 ||
        memcmp(p, FS__REDIS_BINARY_MAGIC, FS__REDIS_BINARY_MAGIC_LEN) != 0 ||
        get_u16(p + 8) != FS__REDIS_BINARY_VERSION)
        return 0;
    size_t pos = get_u32(p + 10);
    size_t data_start = get_u32(p + 14);
    if (pos > len || len - pos < 2)
        return 0;
    size_t n = get_u16(p + pos), count = 0;
    pos += 2;
    kv_reset(s);
    for (size_t i = 0; i < n; i++) {
        const char *str[2];
        size_t str_len[2];
        for (int j = 0; j < 2; j++) {
            if (len - pos < 2)
                return 0;
            str_len[j] = get_u16(p + pos);
            pos += 2;
            if (len - pos < str_len[j])
                return 0;
            str[j] = data + pos;
            pos += str_len[j];
            if (!fs_kit_utf8_valid(str[j], str_len[j]))
                return 0;
        }
        int rc = kv_set(s, &count, str[0], str_len[0], str[1], str_len[1]);
        if (rc)
            return rc;
    }
    out->format = FS_REDIS_FORMAT_BINARY;
    out->body = data_start < len ? data + data_start : data + len;
    out->body_len = data_start < len ? len - data_start : 0;
    out->headers = s->kv;
    out->header_count = count;
    return 1;
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
    int rc = kv_set(e->s, &e->count, k, kl, v, vl);
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
        kv_reset(e->s);
        if (*r->p == '{')
            return jobject(r, header_member, e);
        return jvalue(r); /* not an object: no headers */
    }
    return jvalue(r);
}

/* 1: a JSON object with a string "data" (the envelope); 0: anything else; <0: error. */
static int decode_json(const char *data, size_t len, fs__redis_scratch *s, fs__redis_decoded *out)
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

int fs__redis_decode(const char *data, size_t len, fs__redis_scratch *scratch,
                     fs__redis_decoded *out)
{
    FS_CHECK_ARG(scratch && out && (data || !len), "redis: decode needs data and scratch");
    if (!data)
        data = "";
    int rc = decode_binary(data, len, scratch, out);
    if (rc)
        return rc < 0 ? rc : FS_OK;
    rc = decode_json(data, len, scratch, out);
    if (rc)
        return rc < 0 ? rc : FS_OK;
    out->format = FS_REDIS_FORMAT_RAW;
    out->body = data;
    out->body_len = len;
    out->headers = NULL;
    out->header_count = 0;
    return FS_OK;
}

int fs__redis_decode_fields(const fs__redis_kv *fields, size_t field_count,
                            fs__redis_scratch *scratch, fs__redis_decoded *out)
{
    FS_CHECK_ARG(scratch && out && (fields || !field_count), "redis: decode needs fields");
    for (size_t i = field_count; i-- > 0;) {
        if (!key_is(&fields[i], FS__REDIS_STREAM_FIELD))
            continue;
        if (fields[i].value_len) /* `data.get(b"__data__") or dump_json(data)` */
            return fs__redis_decode(fields[i].value, fields[i].value_len, scratch, out);
        break;
    }
    /* FastStream: message_format.parse(dump_json(fields)). */
    fs_kit_buf *j = &scratch->json;
    j->len = 0;
    int rc = fs_kit_buf_put(j, "{", 1);
    bool first = true;
    for (size_t i = 0; i < field_count && !rc; i++) {
        const fs__redis_kv *f = &fields[i];
        if (!fs_kit_utf8_valid(f->key, f->key_len) || !fs_kit_utf8_valid(f->value, f->value_len))
            continue; /* not representable as JSON text */
        if (!first)
            rc = fs_kit_buf_put(j, ",", 1);
        first = false;
        if (!rc)
            rc = json_put_string(j, f->key, f->key_len);
        if (!rc)
            rc = fs_kit_buf_put(j, ":", 1);
        if (!rc)
            rc = json_put_string(j, f->value, f->value_len);
    }
    if (!rc)
        rc = fs_kit_buf_put(j, "}", 1);
    if (rc)
        return rc;
    return fs__redis_decode(j->data, j->len, scratch, out);
}

const char *fs__redis_header(const fs__redis_decoded *m, const char *key, size_t *len)
{
    size_t n = strlen(key);
    for (size_t i = 0; i < m->header_count; i++) {
        if (m->headers[i].key_len == n && memcmp(m->headers[i].key, key, n) == 0) {
            if (len)
                *len = m->headers[i].value_len;
            return m->headers[i].value;
        }
    }
    return NULL;
}
