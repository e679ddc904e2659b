/*
 * Redis codec: the index of repeated header keys (a keyed hash, linear
 * decoding and encoding of many headers). See wire.h.
 */
#include "wire.h"

#include "faststream/adapter.h"
#include "kit/buffer.h"
#include "kit/clock.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

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
void fs__redis_kv_reset(fs__redis_scratch *s)
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
            s->index_key[0] = fs_kit_now_ns();
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
fs__redis_kv *fs__redis_kv_find(fs__redis_scratch *s, size_t count, const char *k, size_t kl)
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
int fs__redis_kv_set(fs__redis_scratch *s, size_t *count, const char *k, size_t kl, const char *v,
                     size_t vl)
{
    if (!s->index_mask) {
        fs__redis_kv *e = fs__redis_kv_find(s, *count, k, kl);
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
