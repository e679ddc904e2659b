/*
 * kit/str.h - string duplication and small string helpers.
 * Internal (not installed); part of the adapter kit (src/kit).
 */
#ifndef FS_KIT_STR_H
#define FS_KIT_STR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#ifdef __SSE2__
#include <emmintrin.h>
#endif

/** A malloc'ed copy of `s`; NULL for NULL or when out of memory. */
char *fs_kit_strdup(const char *s);

/** A copy of an optional string: NULL for NULL; out of memory sets *oom (and gives NULL). */
char *fs_kit_strdup_opt(const char *s, bool *oom);

/** A malloc'ed NUL-terminated copy of the n bytes at `s`; NULL when out of memory. */
char *fs_kit_strndup(const char *s, size_t n);

/** The value of hex digit `c` (either case), or -1 when it is not one. */
static inline int fs_kit_hexval(int c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* The xor of the 8 bytes at x and at y. */
static inline uint64_t fs_kit_xor8(const char *x, const char *y)
{
    uint64_t p, q;
    memcpy(&p, x, 8);
    memcpy(&q, y, 8);
    return p ^ q;
}

/**
 * a[0..n) == b[0..n), n being bytes both have: up to 32 bytes with
 * fixed-size (overlapping) loads, inline; memcmp beyond.
 */
static inline bool fs_kit_mem_equal(const void *a, const void *b, size_t n)
{
    const char *x = a, *y = b;
    if (n > 32)
        return memcmp(a, b, n) == 0;
    if (n > 16) {
#ifdef __SSE2__
        __m128i a0 = _mm_loadu_si128((const __m128i *)(const void *)x);
        __m128i b0 = _mm_loadu_si128((const __m128i *)(const void *)y);
        __m128i a1 = _mm_loadu_si128((const __m128i *)(const void *)(x + n - 16));
        __m128i b1 = _mm_loadu_si128((const __m128i *)(const void *)(y + n - 16));
        __m128i eq = _mm_and_si128(_mm_cmpeq_epi8(a0, b0), _mm_cmpeq_epi8(a1, b1));
        return _mm_movemask_epi8(eq) == 0xffff;
#else
        return (fs_kit_xor8(x, y) | fs_kit_xor8(x + 8, y + 8) |
                fs_kit_xor8(x + n - 16, y + n - 16) | fs_kit_xor8(x + n - 8, y + n - 8)) == 0;
#endif
    }
    if (n >= 8)
        return (fs_kit_xor8(x, y) | fs_kit_xor8(x + n - 8, y + n - 8)) == 0;
    if (n >= 4) {
        uint32_t u, v, w, z;
        memcpy(&u, x, 4), memcpy(&v, y, 4), memcpy(&w, x + n - 4, 4), memcpy(&z, y + n - 4, 4);
        return ((u ^ v) | (w ^ z)) == 0;
    }
    for (size_t i = 0; i < n; i++)
        if (x[i] != y[i])
            return false;
    return true;
}

#endif
