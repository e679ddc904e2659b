/* kit/clock.c - see clock.h. */
#include "kit/clock.h"

#include <errno.h>
#include <limits.h>

uint64_t fs_kit_deadline_ns(int64_t ms)
{
    return fs_kit_now_ns() + (ms > 0 ? (uint64_t)ms * 1000000u : 0);
}

int fs_kit_ms_left(uint64_t deadline_ns)
{
    uint64_t now = fs_kit_now_ns();
    if (now >= deadline_ns)
        return 0;
    uint64_t left = (deadline_ns - now + 999999u) / 1000000u;
    return left > INT_MAX ? INT_MAX : (int)left;
}

struct timespec fs_kit_ts_at_ns(uint64_t at_ns)
{
    struct timespec ts = {(time_t)(at_ns / 1000000000u), (long)(at_ns % 1000000000u)};
    return ts;
}

struct timespec fs_kit_deadline_ts(int ms)
{
    return fs_kit_ts_at_ns(fs_kit_deadline_ns(ms));
}

void fs_kit_cond_init_monotonic(pthread_cond_t *cv)
{
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(cv, &ca);
    pthread_condattr_destroy(&ca);
}

void fs_kit_sleep_ms(unsigned ms)
{
    struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
    }
}

int64_t fs_kit_wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}
