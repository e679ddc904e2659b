/*
 * kit/futex.h - sleeping on a 32-bit word and waking its sleepers (Linux
 * futexes), for hand-offs that take no lock: a waiter registers, reads the
 * word, checks its condition and sleeps only while the word is unchanged; a
 * waker changes the condition, bumps the word and calls the kernel only
 * when someone registered. Internal (not installed); part of the adapter kit.
 */
#ifndef FS_KIT_FUTEX_H
#define FS_KIT_FUTEX_H

#include <errno.h>
#include <linux/futex.h>
#include <stdatomic.h>
#include <stdint.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

/**
 * Sleep while *word == expected, at most timeout_ms (< 0: no limit).
 * 0 when woken (or spuriously), EAGAIN when the word had changed already
 * (no sleep), ETIMEDOUT when the time ran out, EINTR.
 */
static inline int fs_kit_futex_wait(_Atomic uint32_t *word, uint32_t expected, int timeout_ms)
{
    struct timespec ts = {.tv_sec = timeout_ms / 1000,
                          .tv_nsec = (long)(timeout_ms % 1000) * 1000000L};
    if (syscall(SYS_futex, (uint32_t *)word, FUTEX_WAIT_PRIVATE, expected,
                timeout_ms < 0 ? NULL : &ts, NULL, 0) == 0)
        return 0;
    return errno;
}

/** Wake up to `n` sleepers of `word`. */
static inline void fs_kit_futex_wake(_Atomic uint32_t *word, int n)
{
    syscall(SYS_futex, (uint32_t *)word, FUTEX_WAKE_PRIVATE, n, NULL, NULL, 0);
}

/** An event count: sleepers register in `waiters`, wakers bump `seq`. */
typedef struct fs_kit_event {
    _Atomic uint32_t seq;
    _Atomic uint32_t waiters;
} fs_kit_event;

/** Register as a sleeper and return the count to pass to fs_kit_event_wait (check after it). */
static inline uint32_t fs_kit_event_prepare(fs_kit_event *e)
{
    atomic_fetch_add_explicit(&e->waiters, 1, memory_order_seq_cst);
    return atomic_load_explicit(&e->seq, memory_order_seq_cst);
}

/** Sleep unless the count moved since fs_kit_event_prepare (pass cancel: true to skip), then
 * unregister. */
static inline void fs_kit_event_wait(fs_kit_event *e, uint32_t seq, int timeout_ms, int cancel)
{
    if (!cancel)
        fs_kit_futex_wait(&e->seq, seq, timeout_ms);
    atomic_fetch_sub_explicit(&e->waiters, 1, memory_order_relaxed);
}

/** After changing the condition: bump the count, wake `n` sleepers if any registered. */
static inline void fs_kit_event_signal(fs_kit_event *e, int n)
{
    atomic_fetch_add_explicit(&e->seq, 1, memory_order_seq_cst);
    if (atomic_load_explicit(&e->waiters, memory_order_seq_cst))
        fs_kit_futex_wake(&e->seq, n);
}

#endif
