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

/** Now, in ticks. */
static inline uint64_t fs_kit_ticks(void)
{
#if FS_KIT_HAVE_TSC
    if (FS_LIKELY(atomic_load_explicit(&fs__kit_ticks_tsc, memory_order_relaxed)))
        return __rdtsc();
#endif
    return fs_kit_now_ns();
}

/** Seconds from tick t0 to tick t1 (0 if t1 is earlier). */
static inline double fs_kit_ticks_seconds(uint64_t t0, uint64_t t1)
{
    if (FS_UNLIKELY(t1 < t0))
        return 0.0;
    return (double)(t1 - t0) * atomic_load_explicit(&fs__kit_ticks_s, memory_order_relaxed);
}

#endif
