/*
 * Helpers for the Redis integration tests: a direct hiredis connection to
 * inspect and prepare the server, unique key names, a broker and a
 * subscription on the shared server; the recording handler, waits and
 * sleeps are tests/support/record.h's (ts_*). Header-only; include after
 * cmocka.h.
 */
#ifndef FS_TEST_REDIS_H
#define FS_TEST_REDIS_H

#include "faststream/faststream.h"
#include "faststream/redis.h"
#include "support/port.h"
#include "support/record.h"

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
    return port_env("FS_REDIS_PORT", 6379);
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
                                          const fs_redis_subscriber_options *ro, ts_log *l,
                                          fs_ack_policy policy, unsigned concurrency, size_t batch)
{
    fs_subscriber_options so = FS_SUBSCRIBER_OPTIONS_INIT;
    so.broker_options = ro;
    so.ack_policy = policy;
    so.concurrency = concurrency;
    so.batch_size = batch;
    so.batch_timeout_ms = 200;
    fs_subscriber *sub = NULL;
    if (fs_subscribe(b, source, ts_record, l, &so, &sub) < 0)
        fail_msg("fs_subscribe(%s): %s", source, fs_last_error());
    return sub;
}

#endif
