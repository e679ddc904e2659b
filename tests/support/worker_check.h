/*
 * Checks made on a worker thread (a handler, a hook, a helper thread).
 * A cmocka assert there would longjmp across the library's frames on the
 * wrong thread and crash instead of reporting, so a worker records its
 * first failed check with WORKER_CHECK(cond) and the test thread reports it
 * with assert_worker_checks() once the work is done. Include after cmocka.h.
 */
#ifndef FS_TEST_WORKER_CHECK_H
#define FS_TEST_WORKER_CHECK_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>

static atomic_bool worker_check_taken;
static _Atomic(const char *) worker_check_failed;
static char worker_check_text[512];

static inline void worker_check_record(const char *expr, const char *file, int line)
{
    if (atomic_exchange(&worker_check_taken, true))
        return; /* the first failure is the one to read */
    snprintf(worker_check_text, sizeof worker_check_text, "%s:%d: %s", file, line, expr);
    atomic_store(&worker_check_failed, worker_check_text);
}

/* Record `cond` failing (never asserts: safe on any thread). */
#define WORKER_CHECK(cond) ((cond) ? (void)0 : worker_check_record(#cond, __FILE__, __LINE__))

/* On the test thread: fail the test with the first check a worker saw fail, and reset. */
static inline void assert_worker_checks(void)
{
    const char *failed = atomic_exchange(&worker_check_failed, NULL);
    atomic_store(&worker_check_taken, false);
    if (failed)
        fail_msg("a check failed on a worker thread: %s", failed);
}

#endif
