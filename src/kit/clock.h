/*
 * kit/clock.h - the one monotonic clock: now, deadlines, sleeping.
 * Internal (not installed); part of the adapter kit (src/kit).
 */
#ifndef FS_KIT_CLOCK_H
#define FS_KIT_CLOCK_H

#include <pthread.h>
#include <stdint.h>
#include <time.h>

/** CLOCK_MONOTONIC in nanoseconds (inline: it is on hot paths). */
static inline uint64_t fs_kit_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/** CLOCK_MONOTONIC in milliseconds. */
static inline uint64_t fs_kit_now_ms(void)
{
    return fs_kit_now_ns() / 1000000u;
}

/** The fs_kit_now_ns() time `ms` milliseconds from now (now for ms <= 0). */
uint64_t fs_kit_deadline_ns(int64_t ms);

/** Milliseconds left until `deadline_ns` (fs_kit_now_ns clock), rounded up; 0 once it passed. */
int fs_kit_ms_left(uint64_t deadline_ns);

/**
 * The CLOCK_MONOTONIC time `ms` milliseconds from now (now for ms <= 0),
 * for pthread_cond_timedwait on a condition variable set to that clock
 * (fs_kit_cond_init_monotonic).
 */
struct timespec fs_kit_deadline_ts(int ms);

/** The CLOCK_MONOTONIC timespec of an fs_kit_now_ns() time. */
struct timespec fs_kit_ts_at_ns(uint64_t at_ns);

/** Initialise `cv` to time its waits on CLOCK_MONOTONIC (for the deadlines above). */
void fs_kit_cond_init_monotonic(pthread_cond_t *cv);

/** Sleep `ms` milliseconds (resumed after signals). */
void fs_kit_sleep_ms(unsigned ms);

/** CLOCK_REALTIME in milliseconds since the epoch (message timestamps). */
int64_t fs_kit_wall_ms(void);

#endif
