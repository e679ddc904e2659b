/*
 * The memory broker's rings: kit/ring.h (a bounded MPMC ring of 32-bit
 * values, Vyukov's algorithm) under the names this adapter uses, plus an
 * event count on a futex (kit/futex.h) so that consumers can sleep when it
 * is empty and producers wake them only when someone sleeps.
 */
#ifndef FS_MEMORY_RING_H
#define FS_MEMORY_RING_H

#include "kit/futex.h"
#include "kit/ring.h"

#include <limits.h>

typedef fs_kit_ring_cell mem_cell;
typedef fs_kit_ring mem_ring;

static inline void mem_ring_init(mem_ring *r, mem_cell *cells, size_t cap)
{
    fs_kit_ring_init(r, cells, cap);
}

static inline void mem_ring_push(mem_ring *r, uint32_t v)
{
    fs_kit_ring_push(r, v);
}

static inline bool mem_ring_pop(mem_ring *r, uint32_t *v, bool strict)
{
    return fs_kit_ring_pop(r, v, strict);
}

static inline size_t mem_ring_size(mem_ring *r)
{
    return fs_kit_ring_size(r);
}

static inline void mem_cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#elif defined(__aarch64__)
    __asm__ __volatile__("yield");
#endif
}

#endif
