/*
 * kit/seqlock.h - a block of 64-bit words that a reader takes whole without
 * ever blocking its writer. Internal (not installed); part of the adapter
 * kit (src/kit).
 *
 * w[FS_KIT_SEQ_BEGUN] counts the updates begun, w[FS_KIT_SEQ_DONE] those
 * done. One writer at a time: fs_kit_seqlock_begin, then
 * fs_kit_seqlock_add / _set on the data words, then fs_kit_seqlock_end
 * (plain moves on x86). Several writers at once (a shared block):
 * fs_kit_seqlock_begin_shared and _end_shared around atomic
 * read-modify-writes. A reader takes the block when done equals begun
 * before its reads and begun is unchanged after them
 * (fs_kit_seqlock_read). The data is stored with release, after begun: a
 * reader whose acquire load sees it then sees begun changed. No fences
 * (which ThreadSanitizer does not model). The metrics library's histogram
 * shards and the Prometheus middleware's tallies are such blocks.
 */
#ifndef FS_KIT_SEQLOCK_H
#define FS_KIT_SEQLOCK_H

#include "kit/compiler.h"

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#define FS_KIT_SEQ_BEGUN 0
#define FS_KIT_SEQ_DONE 1

/** Begin an update of block w (its only writer now); give the result to fs_kit_seqlock_end. */
static inline uint64_t fs_kit_seqlock_begin(_Atomic uint64_t *w)
{
    uint64_t seq = atomic_load_explicit(&w[FS_KIT_SEQ_DONE], memory_order_relaxed) + 1;
    atomic_store_explicit(&w[FS_KIT_SEQ_BEGUN], seq, memory_order_relaxed);
    return seq;
}

/** Data word `cell` = v, inside an update. */
static inline void fs_kit_seqlock_set(_Atomic uint64_t *cell, uint64_t v)
{
    atomic_store_explicit(cell, v, memory_order_release);
}

/** Data word `cell` += v, inside an update by the block's only writer. */
static inline void fs_kit_seqlock_add(_Atomic uint64_t *cell, uint64_t v)
{
    fs_kit_seqlock_set(cell, atomic_load_explicit(cell, memory_order_relaxed) + v);
}

/** End the update fs_kit_seqlock_begin returned `seq` for. */
static inline void fs_kit_seqlock_end(_Atomic uint64_t *w, uint64_t seq)
{
    atomic_store_explicit(&w[FS_KIT_SEQ_DONE], seq, memory_order_release);
}

/** Begin an update of a block several threads write (atomic read-modify-writes inside). */
static inline void fs_kit_seqlock_begin_shared(_Atomic uint64_t *w)
{
    atomic_fetch_add_explicit(&w[FS_KIT_SEQ_BEGUN], 1, memory_order_relaxed);
}

static inline void fs_kit_seqlock_end_shared(_Atomic uint64_t *w)
{
    atomic_fetch_add_explicit(&w[FS_KIT_SEQ_DONE], 1, memory_order_release);
}

/**
 * Copy the n data words from w[from] into snap[0..n), all of one moment:
 * retried while a writer is inside an update (yielding after a few tries).
 * False, snap untouched, when the block was never written.
 */
FS_KIT_HIDDEN bool fs_kit_seqlock_read(const _Atomic uint64_t *w, uint32_t from, uint32_t n,
                                       uint64_t *snap);

#endif
