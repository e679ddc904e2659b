/*
 * kit/backoff.h - exponential backoff with jitter, for reconnecting.
 * Internal (not installed); part of the adapter kit (src/kit).
 *
 *     fs_kit_backoff bo;
 *     fs_kit_backoff_init(&bo, 100, 5000);
 *     while (connect() < 0)
 *         fs_kit_sleep_ms(fs_kit_backoff_next(&bo));
 *     fs_kit_backoff_reset(&bo);
 */
#ifndef FS_KIT_BACKOFF_H
#define FS_KIT_BACKOFF_H

#include <stdint.h>

typedef struct fs_kit_backoff {
    unsigned min_ms, max_ms;
    unsigned cur_ms; /* 0: the next delay is min_ms */
    uint64_t rng;
} fs_kit_backoff;

/** Delays from min_ms (> 0) doubling up to max_ms (>= min_ms). */
void fs_kit_backoff_init(fs_kit_backoff *b, unsigned min_ms, unsigned max_ms);

/**
 * The next delay: the current step (min_ms, then doubled each call up to
 * max_ms) with "equal jitter" (a uniform value in [step/2, step]), so that
 * many clients reconnecting at once spread out.
 */
unsigned fs_kit_backoff_next(fs_kit_backoff *b);

/** Back to min_ms (after a success). */
void fs_kit_backoff_reset(fs_kit_backoff *b);

/** The step the next call starts from (0 right after init/reset): for logs. */
static inline unsigned fs_kit_backoff_step(const fs_kit_backoff *b)
{
    return b->cur_ms;
}

#endif
