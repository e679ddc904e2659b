/*
 * Proving that handlers run in parallel: a barrier only `want` handlers
 * inside at the same time can pass. Each handler calls overlap_enter() and
 * overlap_leave(); once `want` of them have been inside together, every
 * later one passes at once. If that never happens within OVERLAP_WAIT_MS
 * (concurrency forced lower), the barrier breaks (recorded, no later handler
 * waits) and the test, asserting overlap_reached() on its own thread, fails.
 */
#ifndef FS_TEST_OVERLAP_H
#define FS_TEST_OVERLAP_H

#include <stdatomic.h>
#include <stdbool.h>
#include <time.h>

#define OVERLAP_WAIT_MS 5000

typedef struct overlap {
    int want;
    atomic_int inside;
    atomic_int max_inside;
    atomic_bool broken;
} overlap;

static inline void overlap_init(overlap *o, int want)
{
    o->want = want;
    atomic_init(&o->inside, 0);
    atomic_init(&o->max_inside, 0);
    atomic_init(&o->broken, false);
}

static inline void overlap_enter(overlap *o)
{
    int now = atomic_fetch_add(&o->inside, 1) + 1;
    int prev = atomic_load(&o->max_inside);
    while (now > prev && !atomic_compare_exchange_weak(&o->max_inside, &prev, now)) {
    }
    for (int waited = 0; atomic_load(&o->max_inside) < o->want && !atomic_load(&o->broken);
         waited++) {
        if (waited >= OVERLAP_WAIT_MS) {
            atomic_store(&o->broken, true);
            break;
        }
        nanosleep(&(struct timespec){0, 1000000}, NULL);
    }
}

static inline void overlap_leave(overlap *o)
{
    atomic_fetch_sub(&o->inside, 1);
}

/* Exactly `want` handlers were inside at once at some point, never more. */
static inline bool overlap_reached(overlap *o)
{
    return !atomic_load(&o->broken) && atomic_load(&o->max_inside) == o->want;
}

#endif
