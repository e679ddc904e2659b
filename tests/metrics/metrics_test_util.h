/* Helpers shared by the metrics tests: render a registry and read samples back. */
#ifndef FS_METRICS_TEST_UTIL_H
#define FS_METRICS_TEST_UTIL_H

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "faststream/exposition.h"

/* Render `reg` into a malloc'd string (the caller frees it). */
static inline char *render(fs_registry *reg, fs_format format)
{
    fs_buffer b = {0};
    assert_int_equal(fs_registry_render(reg, format, &b), FS_OK);
    assert_non_null(b.data);
    assert_int_equal(strlen(b.data), b.len);
    return b.data;
}

/* The line of `text` that starts with `series` followed by a space, or NULL. */
static inline const char *find_series(const char *text, const char *series)
{
    size_t n = strlen(series);
    for (const char *p = text; p && *p;) {
        if (strncmp(p, series, n) == 0 && p[n] == ' ')
            return p;
        p = strchr(p, '\n');
        if (p)
            p++;
    }
    return NULL;
}

/* The value of sample `series` (e.g. `x_total{a="b"}`) in `text`; fails the test if absent. */
static inline double sample_value(const char *text, const char *series)
{
    const char *line = find_series(text, series);
    if (!line)
        fail_msg("no sample %s in:\n%s", series, text);
    return strtod(line + strlen(series) + 1, NULL);
}

static inline bool has_series(const char *text, const char *series)
{
    return find_series(text, series) != NULL;
}

/* Bytes of heap in use: the sanitizers' allocator's count, or malloc's own. */
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
size_t __sanitizer_get_current_allocated_bytes(void); /* its header may be absent */
static inline size_t heap_in_use(void)
{
    return __sanitizer_get_current_allocated_bytes();
}
#else
#include <malloc.h>
static inline size_t heap_in_use(void)
{
    struct mallinfo2 mi = mallinfo2();
    return mi.uordblks + mi.hblkhd;
}
#endif

#endif
