/*
 * Helpers shared by the core tests.
 */
#ifndef FS_CORE_TEST_H
#define FS_CORE_TEST_H

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "faststream/faststream.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* Generous: only reached when something is broken. Never a timing assertion. */
#define WAIT_MS 20000

static inline void test_sleep_ms(unsigned ms)
{
    struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

/* Assert an FS_OK status and print fs_last_error() otherwise. */
#define CHECK_OK(expr)                                                                             \
    do {                                                                                           \
        int check_rc_ = (expr);                                                                    \
        if (check_rc_ != FS_OK)                                                                    \
            fail_msg("%s returned %d (%s): %s", #expr, check_rc_, fs_strerror(check_rc_),          \
                     fs_last_error());                                                             \
    } while (0)

/* Assert a specific status and that an error message was recorded. */
#define CHECK_ERR(expr, code)                                                                      \
    do {                                                                                           \
        fs_clear_error();                                                                          \
        int check_rc_ = (expr);                                                                    \
        if (check_rc_ != (code))                                                                   \
            fail_msg("%s returned %d, expected %d (%s)", #expr, check_rc_, (int)(code),            \
                     fs_last_error());                                                             \
        assert_true(fs_last_error()[0] != '\0');                                                   \
    } while (0)

static inline fs_broker *memory_broker(size_t capacity, bool record)
{
    fs_memory_options o = FS_MEMORY_OPTIONS_INIT;
    o.capacity = capacity;
    o.record_published = record;
    fs_broker *b = NULL;
    CHECK_OK(fs_memory_broker_new(&o, &b));
    return b;
}

static inline void publish_str(fs_broker *b, const char *dest, const char *body)
{
    CHECK_OK(fs_publish_bytes(b, dest, body, strlen(body)));
}

/* A handler that does nothing (the ack policy settles). */
static inline fs_outcome noop(fs_message *m, void *user)
{
    (void)m;
    (void)user;
    return FS_OUTCOME_OK;
}

/* Quiet the library's log lines below ERROR during tests. */
static inline void quiet_logs(void)
{
    fs_set_log_level(FS_LOG_OFF);
}

#endif
