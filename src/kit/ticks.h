/*
 * kit/ticks.h - a cheap interval clock for durations on hot paths.
 * Internal (not installed); part of the adapter kit (src/kit).
 *
 * On x86 where the kernel itself keeps time with the CPU's time-stamp
 * counter (clocksource "tsc": invariant and synchronised across CPUs), a
 * tick is one TSC cycle, read with one instruction instead of a
 * clock_gettime call, and converted to seconds with a rate measured once
 * against CLOCK_MONOTONIC. Everywhere else a tick is a CLOCK_MONOTONIC
 * nanosecond. Ticks measure intervals only: they are no time of day.
 *
 * Call fs_kit_ticks_init() (idempotent, thread-safe; it measures the rate
 * for about 2 ms the first time) before the first fs_kit_ticks() whose
 * difference you take: the source never changes after it returned.
 */
#ifndef FS_KIT_TICKS_H
#define FS_KIT_TICKS_H

#include "kit/clock.h"
#include "kit/compiler.h"

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#if defined(__x86_64__) || defined(__i386__)
#include <x86intrin.h>
#define FS_KIT_HAVE_TSC 1
#else
#define FS_KIT_HAVE_TSC 0
#endif

extern atomic_int fs__kit_ticks_tsc FS_KIT_HIDDEN;   /* 1: ticks are TSC cycles */
extern _Atomic double fs__kit_ticks_s FS_KIT_HIDDEN; /* seconds per tick */

/** Choose the source and measure its rate (once per library). */
FS_KIT_HIDDEN void fs_kit_ticks_init(void);

/** CLOCK_MONOTONIC nanoseconds, out of line (keeps the TSC callers' code small). */
FS_KIT_HIDDEN uint64_t fs__kit_ticks_monotonic(void);

/** Now, in ticks. */
static inline uint64_t fs_kit_ticks(void)
{
#if FS_KIT_HAVE_TSC
    if (FS_LIKELY(atomic_load_explicit(&fs__kit_ticks_tsc, memory_order_relaxed)))
        return __rdtsc();
    return fs__kit_ticks_monotonic();
#else
    return fs_kit_now_ns();
#endif
}

/** True when ticks are TSC cycles (fixed once fs_kit_ticks_init() returned). */
static inline bool fs_kit_ticks_are_tsc(void)
{
    return atomic_load_explicit(&fs__kit_ticks_tsc, memory_order_relaxed) != 0;
}

/**
 * Now, in ticks, for a caller compiled for one source (tsc: the value
 * fs_kit_ticks_are_tsc() gave): no test of the source on each read.
 */
static inline uint64_t fs_kit_ticks_from(bool tsc)
{
#if FS_KIT_HAVE_TSC
    if (tsc)
        return __rdtsc();
    return fs__kit_ticks_monotonic();
#else
    (void)tsc;
    return fs_kit_now_ns();
#endif
}

/** Seconds from tick t0 to tick t1 (0 if t1 is earlier). */
static inline double fs_kit_ticks_seconds(uint64_t t0, uint64_t t1)
{
    if (FS_UNLIKELY(t1 < t0))
        return 0.0;
    return (double)(t1 - t0) * atomic_load_explicit(&fs__kit_ticks_s, memory_order_relaxed);
}

#endif
