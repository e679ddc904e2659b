/*
 * kit/str.h - string duplication and small string helpers.
 * Internal (not installed); part of the adapter kit (src/kit).
 */
#ifndef FS_KIT_STR_H
#define FS_KIT_STR_H

#include <stdbool.h>
#include <stddef.h>

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

#endif
