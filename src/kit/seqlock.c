/* kit/seqlock.c - reading a seqlocked block whole (see seqlock.h). */
#include "kit/seqlock.h"

#include <sched.h>

bool fs_kit_seqlock_read(const _Atomic uint64_t *cw, uint32_t from, uint32_t n, uint64_t *snap)
{
    _Atomic uint64_t *w = (_Atomic uint64_t *)cw;
    if (atomic_load_explicit(&w[FS_KIT_SEQ_BEGUN], memory_order_acquire) == 0)
        return false; /* never written */
    for (unsigned tries = 0;; tries++) {
        uint64_t done = atomic_load_explicit(&w[FS_KIT_SEQ_DONE], memory_order_acquire);
        uint64_t begun = atomic_load_explicit(&w[FS_KIT_SEQ_BEGUN], memory_order_acquire);
        if (begun == done) {
            /* acquire: begun is read again after the data */
            for (uint32_t i = 0; i < n; i++)
                snap[i] = atomic_load_explicit(&w[from + i], memory_order_acquire);
            if (atomic_load_explicit(&w[FS_KIT_SEQ_BEGUN], memory_order_relaxed) == begun)
                return true;
        }
        if (tries >= 16)
            sched_yield(); /* a writer is in the middle of an update: let it finish */
    }
}
