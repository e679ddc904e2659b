/*
 * Small helpers shared by the core: monotonic time, deadlines, sleeping,
 * strdup.
 */
#include "core/util.h"

#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>

uint64_t fs__now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

uint64_t fs__deadline_ns(int64_t ms)
{
    return fs__now_ns() + (ms > 0 ? (uint64_t)ms * 1000000u : 0);
}

int fs__ms_left(uint64_t deadline_ns)
{
    uint64_t now = fs__now_ns();
    if (now >= deadline_ns)
        return 0;
    uint64_t left = (deadline_ns - now + 999999u) / 1000000u;
    return left > INT_MAX ? INT_MAX : (int)left;
}

struct timespec fs__deadline_ts(int ms)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    if (ms > 0) {
        ts.tv_sec += ms / 1000;
        ts.tv_nsec += (long)(ms % 1000) * 1000000L;
        if (ts.tv_nsec >= 1000000000L) {
            ts.tv_sec++;
            ts.tv_nsec -= 1000000000L;
        }
    }
    return ts;
}

void fs__sleep_ms(unsigned ms)
{
    struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
    }
}

char *fs__strdup(const char *s)
{
    if (!s)
        return NULL;
    size_t n = strlen(s) + 1;
    char *d = malloc(n);
    if (d)
        memcpy(d, s, n);
    return d;
}
