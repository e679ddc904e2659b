/*
 * FastStream's Redis message formats (see wire.h for the layouts): the
 * binary format, the order of headers, decoding values and stream entries.
 * The JSON envelope is in json.c, the repeated-key index in wire_index.c.
 */
#include "wire.h"

#include "faststream/adapter.h"
#include "kit/check.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define U16_MAX 65535u

/* ------------------------------------------------------------------------ */
/* Scratch                                                                  */

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
/* Encoding                                                                 */

static bool key_is(const fs__redis_kv *h, const char *name)
{
    size_t n = strlen(name);
    return h->key_len == n && memcmp(h->key, name, n) == 0;
}

/*
 * Deduplicate the user's headers into the scratch's kv: a repeated key
 * keeps its first place and takes its last value (fs__redis_kv_set: linear time).
 */
int fs__redis_dedup_headers(const fs__redis_envelope *env, fs__redis_scratch *s, size_t *count)
{
    fs__redis_kv_reset(s);
    *count = 0;
    for (size_t i = 0; i < env->header_count; i++) {
        const fs__redis_kv *h = &env->headers[i];
        if (!h->key && h->key_len)
            return fs_adapter_error(FS_EINVAL, "redis: header key is NULL");
        int rc = fs__redis_kv_set(s, count, h->key, h->key_len, h->value, h->value_len);
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
 * are kv[0..count) of `s`, deduplicated by fs__redis_dedup_headers.
 */
int fs__redis_walk_headers(const fs__redis_envelope *env, fs__redis_scratch *s, size_t count,
                           fs__redis_header_fn fn, void *ctx)
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
        const fs__redis_kv *o = fs__redis_kv_find(s, count, std_names[n], nl);
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
int fs__redis_check_header(const char *k, size_t kl, const char *v, size_t vl, bool binary)
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
    int rc = fs__redis_check_header(k, kl, v, vl, true);
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
    int rc = fs__redis_dedup_headers(env, s, &count);
    if (rc || (rc = fs__redis_walk_headers(env, s, count, bin_measure, &size)))
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
    fs__redis_walk_headers(env, s, count, bin_write, out);
    put_raw(out, env->body, env->body_len);
    out->data[out->len] = '\0';
    return FS_OK;
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
        return fs__redis_encode_json(env, scratch, out);
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
    fs__redis_kv_reset(s);
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
        int rc = fs__redis_kv_set(s, &count, str[0], str_len[0], str[1], str_len[1]);
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

int fs__redis_decode(const char *data, size_t len, fs__redis_scratch *scratch,
                     fs__redis_decoded *out)
{
    FS_CHECK_ARG(scratch && out && (data || !len), "redis: decode needs data and scratch");
    if (!data)
        data = "";
    int rc = decode_binary(data, len, scratch, out);
    if (rc)
        return rc < 0 ? rc : FS_OK;
    rc = fs__redis_decode_json(data, len, scratch, out);
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
            rc = fs__redis_json_put_string(j, f->key, f->key_len);
        if (!rc)
            rc = fs_kit_buf_put(j, ":", 1);
        if (!rc)
            rc = fs__redis_json_put_string(j, f->value, f->value_len);
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
