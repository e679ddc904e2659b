/*
 * kit/ring.h - a bounded multi-producer multi-consumer ring of 32-bit values
 * (Dmitry Vyukov's algorithm): one CAS per push or pop, no lock, no
 * allocation. Values are typically slot indices, so that a ring never holds
 * more values than it has cells. Sleeping on an empty ring: kit/futex.h.
 * Internal (not installed); part of the adapter kit (src/kit).
 */
#ifndef FS_KIT_RING_H
#define FS_KIT_RING_H

#include <sched.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct fs_kit_ring_cell {
    _Atomic size_t seq;
    uint32_t val;
} fs_kit_ring_cell;

typedef struct fs_kit_ring {
    _Alignas(64) _Atomic size_t head; /* next position to push */
    _Alignas(64) _Atomic size_t tail; /* next position to pop */
    _Alignas(64) fs_kit_ring_cell *cells;
    size_t mask;
} fs_kit_ring;

/* `cells` has cap (a power of two) entries. */
static inline void fs_kit_ring_init(fs_kit_ring *r, fs_kit_ring_cell *cells, size_t cap)
{
    r->cells = cells;
    r->mask = cap - 1;
    for (size_t i = 0; i < cap; i++)
        atomic_init(&cells[i].seq, i);
    atomic_init(&r->head, 0);
    atomic_init(&r->tail, 0);
}

/*
 * Vyukov's ring reports "full" while a consumer that claimed a cell has not
 * yet released it, and "empty" while a producer that claimed a cell has not
 * yet filled it, even when other cells are ready. Our rings never hold more
 * values than they have cells (every value is one of `cap` slot indices),
 * so a push never meets a truly full ring: it waits for the cell instead of
 * failing (failing would lose the value). A strict pop reports empty only
 * when no producer has claimed the position (used where a false "empty"
 * would be a false "queue full"); a plain pop may report empty early, which
 * costs a consumer nothing (the producer wakes it once its push is done)
 * and keeps it off the producers' cache line while it spins.
 */
static inline void fs_kit_ring_push(fs_kit_ring *r, uint32_t v)
{
    size_t pos = atomic_load_explicit(&r->head, memory_order_relaxed);
    fs_kit_ring_cell *c;
    unsigned spins = 0;
    for (;;) {
        c = &r->cells[pos & r->mask];
        size_t seq = atomic_load_explicit(&c->seq, memory_order_acquire);
        intptr_t diff = (intptr_t)seq - (intptr_t)pos;
        if (diff == 0) {
            if (atomic_compare_exchange_weak_explicit(&r->head, &pos, pos + 1, memory_order_relaxed,
                                                      memory_order_relaxed))
                break;
        } else if (diff < 0) {
            /* the pop of this cell's previous value is completing */
            if (++spins > 64)
                sched_yield();
            pos = atomic_load_explicit(&r->head, memory_order_relaxed);
        } else {
            pos = atomic_load_explicit(&r->head, memory_order_relaxed);
        }
    }
    c->val = v;
    atomic_store_explicit(&c->seq, pos + 1, memory_order_release);
}

static inline bool fs_kit_ring_pop(fs_kit_ring *r, uint32_t *v, bool strict)
{
    size_t pos = atomic_load_explicit(&r->tail, memory_order_relaxed);
    fs_kit_ring_cell *c;
    unsigned spins = 0;
    for (;;) {
        c = &r->cells[pos & r->mask];
        size_t seq = atomic_load_explicit(&c->seq, memory_order_acquire);
        intptr_t diff = (intptr_t)seq - (intptr_t)(pos + 1);
        if (diff == 0) {
            if (atomic_compare_exchange_weak_explicit(&r->tail, &pos, pos + 1, memory_order_relaxed,
                                                      memory_order_relaxed))
                break;
        } else if (diff < 0) {
            if (!strict || atomic_load_explicit(&r->head, memory_order_acquire) == pos)
                return false; /* empty (strict: nobody claimed this position) */
            /* a push claimed it and is filling it */
            if (++spins > 64)
                sched_yield();
            pos = atomic_load_explicit(&r->tail, memory_order_relaxed);
        } else {
            pos = atomic_load_explicit(&r->tail, memory_order_relaxed);
        }
    }
    *v = c->val;
    atomic_store_explicit(&c->seq, pos + r->mask + 1, memory_order_release);
    return true;
}

/* Approximate number of values in the ring. */
static inline size_t fs_kit_ring_size(fs_kit_ring *r)
{
    size_t h = atomic_load_explicit(&r->head, memory_order_acquire);
    size_t t = atomic_load_explicit(&r->tail, memory_order_acquire);
    return h >= t ? h - t : 0;
}

/* ------------------------------------------------------------------------ */

#endif
