/*
 * tests/support/record.h - what the broker tests share: sleeping, polling
 * for a condition, a URL-refusal check, and a handler that records what it
 * saw (a copy of every message) with the knobs the tests turn: the outcome
 * it returns, a delay, failing the first N calls, nacking the first
 * delivery of each body, settling inside the handler, replying, and the
 * most calls that ran at once. Workers only record; the test thread
 * asserts.
 * Header-only; include after cmocka.h.
 */
#ifndef FS_TEST_SUPPORT_RECORD_H
#define FS_TEST_SUPPORT_RECORD_H

#include "faststream/faststream.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

static inline void ts_sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

/* Seconds on the monotonic clock. */
static inline double ts_now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* `s`, or "" for NULL (a property the message does not have). */
static inline const char *ts_str(const char *s)
{
    return s ? s : "";
}

/* Wait until `cond(arg)` holds, polling every 5 ms, up to `ms`. */
static inline bool ts_wait(bool (*cond)(void *), void *arg, int ms)
{
    for (int waited = 0; waited < ms; waited += 5) {
        if (cond(arg))
            return true;
        ts_sleep_ms(5);
    }
    return cond(arg);
}

/* fs_broker_new(url) refuses with FS_EINVAL, sets *out = NULL and names `want`. */
static inline void ts_expect_url_refused(const char *url, const char *want)
{
    fs_broker *b = (fs_broker *)1;
    int rc = fs_broker_new(url, NULL, &b);
    if (rc != FS_EINVAL)
        fail_msg("%s: %d (%s), want FS_EINVAL", url, rc, fs_last_error());
    assert_null(b);
    if (!strstr(fs_last_error(), want))
        fail_msg("%s: \"%s\" does not name \"%s\"", url, fs_last_error(), want);
}

/* ------------------------------------------------------------------------ */
/* A recording handler                                                      */

#define TS_MAX 4096

typedef enum ts_settle {
    TS_SETTLE_NONE, /* the ack policy settles */
    TS_SETTLE_ACK,
    TS_SETTLE_NACK,
    TS_SETTLE_REJECT,
} ts_settle;

typedef struct ts_log {
    pthread_mutex_t mu;
    fs_message *msgs[TS_MAX]; /* copies, in the order the handler saw them */
    size_t n;
    size_t batches;   /* handler calls */
    size_t max_batch; /* largest batch seen */
    atomic_int calls; /* handler calls begun (read without the lock) */
    atomic_int running, max_running;
    /* knobs, set before the broker starts */
    fs_outcome outcome; /* what the handler returns (ERROR: a ValueError) */
    int sleep_ms;       /* how long each call takes */
    size_t fail_first;  /* the first N calls fail (ValueError) */
    bool nack_first;    /* nack the first delivery of each message (by body) */
    ts_settle settle;   /* settle explicitly inside the handler */
    const char *reply;  /* reply with this body (text/plain) */
    /* called for the i-th recorded message, with mu held: what a copy loses */
    void (*see)(void *user, size_t i, const fs_message *m);
    void *see_user;
    char nacked[64][64]; /* bodies nacked once */
    size_t nacked_n;
} ts_log;

static inline void ts_log_init(ts_log *l)
{
    memset(l, 0, sizeof *l);
    pthread_mutex_init(&l->mu, NULL);
}

static inline void ts_log_free(ts_log *l)
{
    for (size_t i = 0; i < l->n; i++)
        fs_message_free(l->msgs[i]);
    pthread_mutex_destroy(&l->mu);
}

static inline size_t ts_log_count(ts_log *l)
{
    pthread_mutex_lock(&l->mu);
    size_t n = l->n;
    pthread_mutex_unlock(&l->mu);
    return n;
}

/* True the first time `body` is seen (called with l->mu held). */
static inline bool ts_first_delivery(ts_log *l, const fs_message *m)
{
    char body[64];
    size_t bl = fs_message_body_len(m) < 63 ? fs_message_body_len(m) : 63;
    memcpy(body, fs_message_body(m), bl);
    body[bl] = 0;
    for (size_t k = 0; k < l->nacked_n; k++)
        if (strcmp(l->nacked[k], body) == 0)
            return false;
    if (l->nacked_n == 64)
        return false;
    strcpy(l->nacked[l->nacked_n++], body);
    return true;
}

/* The handler: `user` is a ts_log. */
static inline fs_outcome ts_record(fs_message *msg, void *user)
{
    ts_log *l = user;
    atomic_fetch_add(&l->calls, 1);
    int now = atomic_fetch_add(&l->running, 1) + 1;
    int max = atomic_load(&l->max_running);
    while (now > max && !atomic_compare_exchange_weak(&l->max_running, &max, now))
        ;
    if (l->sleep_ms)
        ts_sleep_ms(l->sleep_ms);
    size_t count = fs_message_count(msg);
    fs_outcome o = l->outcome;
    pthread_mutex_lock(&l->mu);
    bool fail = l->batches++ < l->fail_first;
    if (count > l->max_batch)
        l->max_batch = count;
    for (size_t i = 0; i < count && l->n < TS_MAX; i++) {
        fs_message *m = fs_message_at(msg, i);
        if (l->see)
            l->see(l->see_user, l->n, m);
        l->msgs[l->n++] = fs_message_copy(m);
        if (l->nack_first && ts_first_delivery(l, m))
            o = FS_OUTCOME_NACK;
    }
    pthread_mutex_unlock(&l->mu);
    if (l->reply)
        fs_message_reply(msg, l->reply, strlen(l->reply), NULL, 0, "text/plain");
    if (l->settle == TS_SETTLE_ACK)
        fs_message_ack(msg);
    else if (l->settle == TS_SETTLE_NACK)
        fs_message_nack(msg);
    else if (l->settle == TS_SETTLE_REJECT)
        fs_message_reject(msg);
    atomic_fetch_sub(&l->running, 1);
    if (fail || o == FS_OUTCOME_ERROR)
        return fs_message_fail(msg, "ValueError", "test failure");
    return o;
}

typedef struct ts_until {
    ts_log *log;
    size_t n;
} ts_until;

static inline bool ts_has_n(void *arg)
{
    ts_until *u = arg;
    return ts_log_count(u->log) >= u->n;
}

/* Wait until the log holds at least n messages. */
static inline bool ts_wait_n(ts_log *l, size_t n, int ms)
{
    ts_until u = {l, n};
    return ts_wait(ts_has_n, &u, ms);
}

/* Wait until the log holds at least n messages, or fail the test saying so. */
static inline void ts_expect_n(ts_log *l, size_t n, int ms)
{
    if (!ts_wait_n(l, n, ms))
        fail_msg("got %zu messages, wanted %zu within %d ms", ts_log_count(l), n, ms);
}

/* The i-th recorded message (the log keeps it). */
static inline fs_message *ts_msg(ts_log *l, size_t i)
{
    pthread_mutex_lock(&l->mu);
    fs_message *m = i < l->n ? l->msgs[i] : NULL;
    pthread_mutex_unlock(&l->mu);
    if (!m)
        fail_msg("message %zu not recorded (%zu so far)", i, ts_log_count(l));
    return m;
}

/* The i-th recorded body as a string (test bodies are text). */
static inline const char *ts_body(ts_log *l, size_t i, char *buf, size_t cap)
{
    fs_message *m = ts_msg(l, i);
    size_t n = fs_message_body_len(m) < cap - 1 ? fs_message_body_len(m) : cap - 1;
    memcpy(buf, fs_message_body(m), n);
    buf[n] = 0;
    return buf;
}

/* How many recorded messages have body `body`. */
static inline size_t ts_count_body(ts_log *l, const char *body)
{
    size_t hits = 0, len = strlen(body);
    pthread_mutex_lock(&l->mu);
    for (size_t i = 0; i < l->n; i++)
        if (fs_message_body_len(l->msgs[i]) == len &&
            memcmp(fs_message_body(l->msgs[i]), body, len) == 0)
            hits++;
    pthread_mutex_unlock(&l->mu);
    return hits;
}

/* An envelope of `body` (text) with adapter publish options `broker_options`. */
static inline void ts_envelope(fs_envelope *env, const char *body, const void *broker_options)
{
    *env = (fs_envelope)FS_ENVELOPE_INIT;
    env->body = body;
    env->body_len = strlen(body);
    env->broker_options = broker_options;
}

/* Publish `body` (text) to `dest` with adapter publish options `broker_options`. */
static inline int ts_publish_with(fs_broker *b, const char *dest, const char *body,
                                  const void *broker_options)
{
    fs_envelope env;
    ts_envelope(&env, body, broker_options);
    return fs_publish(b, dest, &env);
}

#endif
