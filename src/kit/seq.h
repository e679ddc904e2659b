/*
 * kit/seq.h - an ordered-completion tracker: sequence numbers assigned at
 * hand-out, marked done in any order, and the contiguous watermark. Kafka
 * keeps one per partition (commit the offset after the last contiguous done
 * message; wait for the in-flight ones of a revoked partition), MQTT one per
 * connection (acknowledge in arrival order). Internal (not installed); part
 * of the adapter kit (src/kit). Thread-safe (a mutex); no allocation once
 * the window is large enough.
 *
 *     uint64_t seq;
 *     fs_kit_seq_next(&t, offset, &seq);        // at hand-out, in order
 *     ...
 *     uint64_t last;
 *     if (fs_kit_seq_done(&t, seq, &last))      // at release, any order
 *         commit(last + 1);                     // every tag up to `last` is done
 */
#ifndef FS_KIT_SEQ_H
#define FS_KIT_SEQ_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct fs_kit_seq {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    uint64_t next; /* the next sequence number to hand out */
    uint64_t low;  /* every sequence number below it is done */
    uint64_t *tags;
    unsigned char *done;
    size_t cap; /* a power of two: entries low..next-1 live at index seq & (cap - 1) */
} fs_kit_seq;

/** Set up a tracker starting at sequence number 0. FS_OK or FS_ENOMEM. */
int fs_kit_seq_init(fs_kit_seq *t, size_t initial_window);

void fs_kit_seq_destroy(fs_kit_seq *t);

/**
 * Hand out the next sequence number, remembering `tag` with it (an offset,
 * a packet id). The window grows when needed (FS_ENOMEM if it cannot).
 */
int fs_kit_seq_next(fs_kit_seq *t, uint64_t tag, uint64_t *seq);

/**
 * Mark `seq` done. Returns true when the watermark moved; *last_tag (may
 * be NULL) is then the tag of the highest sequence number below which
 * everything is done. A seq that is unknown or already done is ignored.
 */
bool fs_kit_seq_done(fs_kit_seq *t, uint64_t seq, uint64_t *last_tag);

/** The watermark: every sequence number below it is done. */
uint64_t fs_kit_seq_watermark(fs_kit_seq *t);

/** Handed out and not done yet. */
size_t fs_kit_seq_outstanding(fs_kit_seq *t);

/**
 * Wait until everything handed out so far is done, up to timeout_ms (< 0:
 * forever). FS_OK or FS_ETIMEDOUT.
 */
int fs_kit_seq_wait(fs_kit_seq *t, int timeout_ms);

/** Forget everything outstanding (after a revoke): the watermark jumps to next. */
void fs_kit_seq_reset(fs_kit_seq *t);

#endif
