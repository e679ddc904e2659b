/*
 * kit/str.h - string duplication and small string helpers.
 * Internal (not installed); part of the adapter kit (src/kit).
 */
#ifndef FS_KIT_STR_H
#define FS_KIT_STR_H

#include "kit/compiler.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

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

/* The 8 and the 4 bytes at p (fixed-size loads: single moves, no alignment needed). */
static inline uint64_t fs_kit_load64(const char *p)
{
    uint64_t w;
    memcpy(&w, p, sizeof w);
    return w;
}

static inline uint32_t fs_kit_load32(const char *p)
{
    uint32_t w;
    memcpy(&w, p, sizeof w);
    return w;
}

/* Bytes fs_kit_mem_equal compares inline; longer runs go to memcmp. */
#define FS_KIT_MEM_INLINE 256

/**
 * a[0..n) == b[0..n), n being bytes both have, inline whatever n (meant
 * for n <= FS_KIT_MEM_INLINE): overlapping fixed-size loads, 16 bytes a
 * step beyond 16.
 */
static FS_KIT_ALWAYS_INLINE bool fs_kit_mem_equal_short(const void *pa, const void *pb, size_t n)
{
    const char *a = pa, *b = pb;
    if (n > 16) {
        uint64_t d = 0;
        for (size_t i = 0; i + 16 < n; i += 16)
            d |= (fs_kit_load64(a + i) ^ fs_kit_load64(b + i)) |
                 (fs_kit_load64(a + i + 8) ^ fs_kit_load64(b + i + 8));
        d |= (fs_kit_load64(a + n - 16) ^ fs_kit_load64(b + n - 16)) |
             (fs_kit_load64(a + n - 8) ^ fs_kit_load64(b + n - 8));
        return d == 0;
    }
    if (n >= 8)
        return ((fs_kit_load64(a) ^ fs_kit_load64(b)) |
                (fs_kit_load64(a + n - 8) ^ fs_kit_load64(b + n - 8))) == 0;
    if (n >= 4)
        return ((fs_kit_load32(a) ^ fs_kit_load32(b)) |
                (fs_kit_load32(a + n - 4) ^ fs_kit_load32(b + n - 4))) == 0;
    for (size_t i = 0; i < n; i++)
        if (a[i] != b[i])
            return false;
    return true;
}

/** a[0..n) == b[0..n), n being bytes both have: inline up to FS_KIT_MEM_INLINE, memcmp beyond. */
static FS_KIT_ALWAYS_INLINE bool fs_kit_mem_equal(const void *a, const void *b, size_t n)
{
    if (FS_UNLIKELY(n > FS_KIT_MEM_INLINE))
        return memcmp(a, b, n) == 0;
    return fs_kit_mem_equal_short(a, b, n);
}

#endif
