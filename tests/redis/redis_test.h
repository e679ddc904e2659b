/*
 * Helpers for the Redis integration tests: a direct hiredis connection to
 * inspect and prepare the server, unique key names, and a handler that
 * records what it received. Header-only; include after cmocka.h.
 */
#ifndef FS_TEST_REDIS_H
#define FS_TEST_REDIS_H

#include "faststream/faststream.h"
#include "faststream/redis.h"

#include <hiredis/hiredis.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/* The shared server (scripts/services.sh). */
static inline int rt_port(void)
{
    const char *p = getenv("FS_REDIS_PORT");
    return p && *p ? atoi(p) : 6379;
}

static inline void rt_url(char *buf, size_t n, int port)
{
    snprintf(buf, n, "redis://127.0.0.1:%d/0", port);
}

static inline redisContext *rt_connect_port(int port)
{
    struct timeval tv = {5, 0};
    redisContext *c = redisConnectWithTimeout("127.0.0.1", port, tv);
    if (!c || c->err)
        fail_msg("cannot reach redis-server on 127.0.0.1:%d (scripts/services.sh start): %s", port,
                 c ? c->errstr : "out of memory");
    redisSetTimeout(c, tv);
    return c;
}

static inline redisContext *rt_connect(void)
{
    return rt_connect_port(rt_port());
}

/* A key name private to this process and test. */
static inline void rt_key(char *buf, size_t n, const char *what)
{
    snprintf(buf, n, "fstest:%ld:%s", (long)getpid(), what);
}

/* Run a command (printf-style hiredis format) and return its reply; fail on I/O errors. */
static inline redisReply *rt_vcmd(redisContext *c, const char *fmt, va_list ap)
{
    redisReply *r = redisvCommand(c, fmt, ap);
    if (!r)
        fail_msg("redis command '%s' failed: %s", fmt, c->errstr);
    return r;
}

static inline redisReply *rt_cmd(redisContext *c, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    redisReply *r = rt_vcmd(c, fmt, ap);
    va_end(ap);
    return r;
}

/* Run a command that answers an integer. */
static inline long long rt_int(redisContext *c, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    redisReply *r = rt_vcmd(c, fmt, ap);
    va_end(ap);
    if (r->type != REDIS_REPLY_INTEGER)
        fail_msg("redis command '%s': not an integer (%s)", fmt,
                 r->type == REDIS_REPLY_ERROR ? r->str : "?");
    long long v = r->integer;
    freeReplyObject(r);
    return v;
}

/* Run a command that must not fail. */
static inline void rt_ok(redisContext *c, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    redisReply *r = rt_vcmd(c, fmt, ap);
    va_end(ap);
    if (r->type == REDIS_REPLY_ERROR)
        fail_msg("redis command '%s': %s", fmt, r->str);
    freeReplyObject(r);
}

/* Number of pending entries of a stream group (XPENDING summary). */
static inline long long rt_pending(redisContext *c, const char *stream, const char *group)
{
    redisReply *r = rt_cmd(c, "XPENDING %s %s", stream, group);
    if (r->type != REDIS_REPLY_ARRAY || r->elements < 1 ||
        r->element[0]->type != REDIS_REPLY_INTEGER)
        fail_msg("XPENDING %s %s: unexpected reply", stream, group);
    long long n = r->element[0]->integer;
    freeReplyObject(r);
    return n;
}

static inline void rt_sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

/* Wait until `cond(arg)` holds, up to `ms`. */
static inline bool rt_wait(bool (*cond)(void *), void *arg, int ms)
{
    for (int waited = 0; waited < ms; waited += 5) {
        if (cond(arg))
            return true;
        rt_sleep_ms(5);
    }
    return cond(arg);
}

/* ------------------------------------------------------------------------ */
/* A recording handler                                                      */

#define RT_MAX 4096

typedef struct rt_log {
    pthread_mutex_t mu;
    fs_message *msgs[RT_MAX]; /* copies */
    size_t n;
    size_t batches;      /* handler calls */
    size_t max_batch;    /* largest batch seen */
    fs_outcome outcome;  /* what the handler returns */
    int nack_first;      /* nack the first delivery of each message (by body) */
    char nacked[64][64]; /* bodies nacked once */
    size_t nacked_n;
    int settle_explicit; /* 1 ack, 2 nack, 3 reject inside the handler */
} rt_log;

static inline void rt_log_init(rt_log *l)
{
    memset(l, 0, sizeof *l);
    pthread_mutex_init(&l->mu, NULL);
}

static inline void rt_log_free(rt_log *l)
{
    for (size_t i = 0; i < l->n; i++)
        fs_message_free(l->msgs[i]);
    pthread_mutex_destroy(&l->mu);
}

static inline size_t rt_log_count(rt_log *l)
{
    pthread_mutex_lock(&l->mu);
    size_t n = l->n;
    pthread_mutex_unlock(&l->mu);
    return n;
}

static inline fs_outcome rt_record(fs_message *msg, void *user)
{
    rt_log *l = user;
    size_t count = fs_message_count(msg);
    fs_outcome o = l->outcome;
    pthread_mutex_lock(&l->mu);
    l->batches++;
    if (count > l->max_batch)
        l->max_batch = count;
    for (size_t i = 0; i < count && l->n < RT_MAX; i++) {
        fs_message *m = fs_message_at(msg, i);
        l->msgs[l->n++] = fs_message_copy(m);
        if (l->nack_first) {
            char body[64];
            size_t bl = fs_message_body_len(m) < 63 ? fs_message_body_len(m) : 63;
            memcpy(body, fs_message_body(m), bl);
            body[bl] = 0;
            bool seen = false;
            for (size_t k = 0; k < l->nacked_n; k++)
                seen = seen || strcmp(l->nacked[k], body) == 0;
            if (!seen && l->nacked_n < 64) {
                strcpy(l->nacked[l->nacked_n++], body);
                o = FS_OUTCOME_NACK;
            }
        }
    }
    pthread_mutex_unlock(&l->mu);
    if (l->settle_explicit == 1)
        fs_message_ack(msg);
    else if (l->settle_explicit == 2)
        fs_message_nack(msg);
    else if (l->settle_explicit == 3)
        fs_message_reject(msg);
    if (o == FS_OUTCOME_ERROR)
        return fs_message_fail(msg, "ValueError", "test failure");
    return o;
}

typedef struct rt_until {
    rt_log *log;
    size_t n;
} rt_until;

static inline bool rt_has_n(void *arg)
{
    rt_until *u = arg;
    return rt_log_count(u->log) >= u->n;
}

/* Wait until the log holds at least n messages. */
static inline bool rt_wait_n(rt_log *l, size_t n, int ms)
{
    rt_until u = {l, n};
    return rt_wait(rt_has_n, &u, ms);
}

/* The i-th recorded body as a string (test bodies are text). */
static inline const char *rt_body(rt_log *l, size_t i, char *buf, size_t cap)
{
    pthread_mutex_lock(&l->mu);
    fs_message *m = l->msgs[i];
    size_t n = fs_message_body_len(m) < cap - 1 ? fs_message_body_len(m) : cap - 1;
    memcpy(buf, fs_message_body(m), n);
    buf[n] = 0;
    pthread_mutex_unlock(&l->mu);
    return buf;
}

/* True when some recorded message has body `body`. */
static inline size_t rt_count_body(rt_log *l, const char *body)
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

/* A broker on the shared server. */
static inline fs_broker *rt_broker(void)
{
    char url[64];
    rt_url(url, sizeof url, rt_port());
    fs_broker *b = NULL;
    if (fs_broker_new(url, NULL, &b) < 0)
        fail_msg("fs_broker_new(%s): %s", url, fs_last_error());
    return b;
}

/* Subscribe `l` to `source` with redis options `ro` (may be NULL). */
static inline fs_subscriber *rt_subscribe(fs_broker *b, const char *source,
                                          const fs_redis_subscriber_options *ro, rt_log *l,
                                          fs_ack_policy policy, unsigned concurrency, size_t batch)
{
    fs_subscriber_options so = FS_SUBSCRIBER_OPTIONS_INIT;
    so.broker_options = ro;
    so.ack_policy = policy;
    so.concurrency = concurrency;
    so.batch_size = batch;
    so.batch_timeout_ms = 200;
    fs_subscriber *sub = NULL;
    if (fs_subscribe(b, source, rt_record, l, &so, &sub) < 0)
        fail_msg("fs_subscribe(%s): %s", source, fs_last_error());
    return sub;
}

#endif
