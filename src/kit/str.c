/* kit/str.c - see str.h. */
#include "kit/str.h"

#include <stdlib.h>
#include <string.h>

char *fs_kit_strdup(const char *s)
{
    return s ? fs_kit_strndup(s, strlen(s)) : NULL;
}

char *fs_kit_strdup_opt(const char *s, bool *oom)
{
    char *d = fs_kit_strdup(s);
    if (s && !d)
        *oom = true;
    return d;
}

char *fs_kit_strndup(const char *s, size_t n)
{
    char *d = malloc(n + 1);
    if (d) {
        if (n)
            memcpy(d, s, n);
        d[n] = '\0';
    }
    return d;
}
