/*
 * Small helpers shared by the core, the in-process broker, the middleware
 * and the broker adapters: monotonic time, deadlines, sleeping, strdup,
 * hex digits. Not installed.
 */
#ifndef FS_CORE_UTIL_H
#define FS_CORE_UTIL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

/** CLOCK_MONOTONIC in nanoseconds. */
uint64_t fs__now_ns(void);

/** The fs__now_ns() time `ms` milliseconds from now (now for ms <= 0). */
uint64_t fs__deadline_ns(int64_t ms);

/** Milliseconds left until `deadline_ns` (fs__now_ns clock), rounded up; 0 once it passed. */
int fs__ms_left(uint64_t deadline_ns);

/**
 * The CLOCK_MONOTONIC time `ms` milliseconds from now (now for ms <= 0),
 * for pthread_cond_timedwait on a condition variable set to that clock.
 */
struct timespec fs__deadline_ts(int ms);

/** Sleep `ms` milliseconds (resumed after signals). */
void fs__sleep_ms(unsigned ms);

/** The value of hex digit `c` (either case), or -1 when it is not one. */
static inline int fs__hexval(int c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/** A malloc'ed copy of `s`; NULL for NULL or when out of memory. */
char *fs__strdup(const char *s);

/** One parameter of a URL query string such as "a=1&flag&b=x%20y". */
typedef struct fs__query_param {
    const char *name;
    size_t name_len;
    const char *value; /**< raw (%-escapes kept); NULL when the parameter has no '=' */
    size_t value_len;
} fs__query_param;

/** The parameter at `*p` in a query string, moving `*p` past it; false at the end. */
bool fs__query_next(const char **p, fs__query_param *out);

#endif
