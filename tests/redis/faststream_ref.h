/*
 * FastStream's Redis message layouts, written and read here straight from
 * their definition (faststream/redis/parser/binary.py), independently of the
 * library's codec. Header-only, for the Redis tests. Include after cmocka.h.
 */
#ifndef FS_TEST_FASTSTREAM_REF_H
#define FS_TEST_FASTSTREAM_REF_H

#include <stdint.h>
#include <string.h>

typedef struct ref_bytes {
    unsigned char d[4096];
    size_t n;
} ref_bytes;

static inline void ref_raw(ref_bytes *b, const void *p, size_t n)
{
    assert_true(b->n + n <= sizeof b->d);
    memcpy(b->d + b->n, p, n);
    b->n += n;
}

static inline void ref_u16(ref_bytes *b, unsigned v)
{
    unsigned char x[2] = {(unsigned char)(v >> 8), (unsigned char)v};
    ref_raw(b, x, 2);
}

static inline void ref_u32(ref_bytes *b, uint32_t v)
{
    unsigned char x[4] = {(unsigned char)(v >> 24), (unsigned char)(v >> 16),
                          (unsigned char)(v >> 8), (unsigned char)v};
    ref_raw(b, x, 4);
}

static inline void ref_str(ref_bytes *b, const char *s)
{
    ref_u16(b, (unsigned)strlen(s));
    ref_raw(b, s, strlen(s));
}

/*
 * BinaryMessageFormatV1.encode: identity header, version 1, headers_start,
 * data_start, header count, (key, value)*, data. `pairs` is a NULL-terminated
 * list key, value, key, value...
 */
static inline void ref_binary(ref_bytes *b, const char *const *pairs, const void *data, size_t len)
{
    size_t count = 0, hlen = 0;
    for (const char *const *p = pairs; *p; p += 2) {
        count++;
        hlen += 4 + strlen(p[0]) + strlen(p[1]);
    }
    b->n = 0;
    ref_raw(b,
            "\x89"
            "BIN\x0d\x0a\x1a\x0a",
            8);
    ref_u16(b, 1);
    ref_u32(b, 18);
    ref_u32(b, (uint32_t)(2 + 18 + hlen));
    ref_u16(b, (unsigned)count);
    for (const char *const *p = pairs; *p; p += 2) {
        ref_str(b, p[0]);
        ref_str(b, p[1]);
    }
    ref_raw(b, data, len);
}

/* A message parsed by BinaryMessageFormatV1.parse's rules. */
typedef struct ref_msg {
    char keys[16][64], values[16][256];
    size_t count;
    const unsigned char *data;
    size_t data_len;
} ref_msg;

static inline unsigned ref_get16(const unsigned char *p)
{
    return (unsigned)p[0] << 8 | p[1];
}

static inline uint32_t ref_get32(const unsigned char *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static inline void ref_parse(const void *buf, size_t len, ref_msg *m)
{
    const unsigned char *p = buf;
    assert_true(len >= 18);
    assert_memory_equal(p,
                        "\x89"
                        "BIN\r\n\x1a\n",
                        8);
    assert_int_equal(ref_get16(p + 8), 1);
    size_t off = ref_get32(p + 10), data_start = ref_get32(p + 14);
    m->count = ref_get16(p + off);
    assert_true(m->count <= 16);
    off += 2;
    for (size_t i = 0; i < m->count; i++) {
        size_t kl = ref_get16(p + off);
        assert_true(kl < 64 && off + 2 + kl <= len);
        memcpy(m->keys[i], p + off + 2, kl);
        m->keys[i][kl] = 0;
        off += 2 + kl;
        size_t vl = ref_get16(p + off);
        assert_true(vl < 256 && off + 2 + vl <= len);
        memcpy(m->values[i], p + off + 2, vl);
        m->values[i][vl] = 0;
        off += 2 + vl;
    }
    assert_int_equal(off, data_start); /* headers end where the data begins */
    m->data = p + data_start;
    m->data_len = len - data_start;
}

/* The value of header `key` in a parsed message, or NULL. */
static inline const char *ref_header(const ref_msg *m, const char *key)
{
    for (size_t i = 0; i < m->count; i++)
        if (strcmp(m->keys[i], key) == 0)
            return m->values[i];
    return NULL;
}

#endif
