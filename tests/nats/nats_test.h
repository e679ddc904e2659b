/*
 * Helpers for the NATS integration tests: the server's URL from the
 * environment, a raw nats.c connection to inspect JetStream state, names
 * private to this process, and a handler that records what it received.
 * Header-only; include after cmocka.h.
 */
#ifndef FS_TEST_NATS_H
#define FS_TEST_NATS_H

#include "faststream/faststream.h"
#include "faststream/nats.h"

#include <nats/nats.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/* The shared server (scripts/services.sh start nats). */
static inline int nt_port(void)
{
    const char *p = getenv("FS_NATS_PORT");
    return p && *p ? atoi(p) : 14222;
}

static inline void nt_url_port(char *buf, size_t n, int port)
{
    snprintf(buf, n, "nats://127.0.0.1:%d", port);
}

static inline void nt_url(char *buf, size_t n)
{
    nt_url_port(buf, n, nt_port());
}

static inline fs_broker *nt_broker(void)
{
    char url[64];
    nt_url(url, sizeof url);
    fs_broker *b = NULL;
    if (fs_broker_new(url, NULL, &b) != FS_OK)
        fail_msg("fs_broker_new(%s): %s", url, fs_last_error());
    return b;
}

/* A raw nats.c connection with its JetStream context. */
typedef struct nt_raw {
    natsConnection *nc;
    jsCtx *js;
} nt_raw;

static inline nt_raw nt_raw_connect_port(int port)
{
    char url[64];
    nt_url_port(url, sizeof url, port);
    nt_raw r = {0};
    natsStatus s = natsConnection_ConnectTo(&r.nc, url);
    if (s != NATS_OK)
        fail_msg("cannot reach nats-server at %s (scripts/services.sh start nats): %s", url,
                 natsStatus_GetText(s));
    if (natsConnection_JetStream(&r.js, r.nc, NULL) != NATS_OK)
        fail_msg("no JetStream context");
    return r;
}

static inline nt_raw nt_raw_connect(void)
{
    return nt_raw_connect_port(nt_port());
}

static inline void nt_raw_close(nt_raw *r)
{
    jsCtx_Destroy(r->js);
    natsConnection_Destroy(r->nc);
    r->js = NULL;
    r->nc = NULL;
}

/* A name private to this process and test: "PREFIX_PID_WHAT" with '.' kept out. */
static inline void nt_name(char *buf, size_t n, const char *what)
{
    snprintf(buf, n, "T%ld_%s", (long)getpid(), what);
}

/* The consumer's counts as the server has them (fails the test when there is none). */
static inline jsConsumerInfo *nt_consumer_info(nt_raw *r, const char *stream, const char *consumer)
{
    jsConsumerInfo *ci = NULL;
    jsErrCode jerr = 0;
    natsStatus s = js_GetConsumerInfo(&ci, r->js, stream, consumer, NULL, &jerr);
    if (s != NATS_OK)
        fail_msg("consumer info %s/%s: %s (%d)", stream, consumer, natsStatus_GetText(s),
                 (int)jerr);
    return ci;
}

static inline uint64_t nt_stream_msgs(nt_raw *r, const char *stream)
{
    jsStreamInfo *si = NULL;
    jsErrCode jerr = 0;
    if (js_GetStreamInfo(&si, r->js, stream, NULL, &jerr) != NATS_OK)
        fail_msg("stream info %s: %d", stream, (int)jerr);
    uint64_t n = si->State.Msgs;
    jsStreamInfo_Destroy(si);
    return n;
}

static inline void nt_sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

static inline double nt_now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Declare a file stream NAME capturing SUBJECT (deleted first: a fresh one). */
static inline void nt_stream(fs_broker *b, const char *name, const char *subject)
{
    fs_nats_delete_stream(b, name);
    const char *subjects[] = {subject};
    fs_nats_stream_config sc = FS_NATS_STREAM_CONFIG_INIT;
    sc.name = name;
    sc.subjects = subjects;
    sc.subject_count = 1;
    if (fs_nats_declare_stream(b, &sc) != FS_OK)
        fail_msg("declare stream %s: %s", name, fs_last_error());
}

static inline void nt_js_publish(fs_broker *b, const char *stream, const char *subject,
                                 const char *body, const char *msg_id)
{
    fs_nats_publish_options po = FS_NATS_PUBLISH_OPTIONS_INIT;
    po.stream = stream;
    fs_envelope env = FS_ENVELOPE_INIT;
    env.body = body;
    env.body_len = strlen(body);
    env.message_id = msg_id;
    env.broker_options = &po;
    if (fs_publish(b, subject, &env) != FS_OK)
        fail_msg("JetStream publish to %s: %s", subject, fs_last_error());
}

/* What a recording handler saw. */
#define NT_MAX 4096
typedef struct nt_log {
    pthread_mutex_t mu;
    size_t count;
    char sources[NT_MAX][64];
    char bodies[NT_MAX][64];
    char corr[NT_MAX][48];
    char ctype[NT_MAX][48];
    char tenant[NT_MAX][16];
    fs_outcome outcome; /* what the handler returns */
    int sleep_ms;       /* how long it takes */
    _Atomic int calls;
} nt_log;

static inline nt_log *nt_log_new(void)
{
    nt_log *l = calloc(1, sizeof *l);
    pthread_mutex_init(&l->mu, NULL);
    l->outcome = FS_OUTCOME_OK;
    return l;
}

static inline void nt_log_free(void *p)
{
    nt_log *l = p;
    pthread_mutex_destroy(&l->mu);
    free(l);
}

static inline size_t nt_log_count(nt_log *l)
{
    pthread_mutex_lock(&l->mu);
    size_t n = l->count;
    pthread_mutex_unlock(&l->mu);
    return n;
}

static inline void nt_copy(char *dst, size_t n, const char *src, size_t len)
{
    if (!src)
        src = "", len = 0;
    if (len >= n)
        len = n - 1;
    memcpy(dst, src, len);
    dst[len] = '\0';
}

static inline fs_outcome nt_record(fs_message *msg, void *user)
{
    nt_log *l = user;
    atomic_fetch_add(&l->calls, 1);
    if (l->sleep_ms)
        nt_sleep_ms(l->sleep_ms);
    pthread_mutex_lock(&l->mu);
    for (size_t i = 0, n = fs_message_count(msg); i < n && l->count < NT_MAX; i++) {
        fs_message *m = fs_message_is_batch(msg) ? fs_message_at(msg, i) : msg;
        size_t k = l->count++;
        const char *src = fs_message_source(m);
        nt_copy(l->sources[k], sizeof l->sources[k], src, strlen(src));
        nt_copy(l->bodies[k], sizeof l->bodies[k], fs_message_body(m), fs_message_body_len(m));
        const char *c = fs_message_correlation_id(m), *t = fs_message_content_type(m),
                   *x = fs_message_header(m, "x-tenant");
        nt_copy(l->corr[k], sizeof l->corr[k], c, c ? strlen(c) : 0);
        nt_copy(l->ctype[k], sizeof l->ctype[k], t, t ? strlen(t) : 0);
        nt_copy(l->tenant[k], sizeof l->tenant[k], x, x ? strlen(x) : 0);
    }
    pthread_mutex_unlock(&l->mu);
    return l->outcome;
}

/* Wait until the log holds n entries (or fail after ms). */
static inline void nt_wait_count(nt_log *l, size_t n, int ms)
{
    double end = nt_now_s() + ms / 1000.0;
    while (nt_log_count(l) < n && nt_now_s() < end)
        nt_sleep_ms(5);
    if (nt_log_count(l) < n)
        fail_msg("got %zu messages, wanted %zu within %d ms", nt_log_count(l), n, ms);
}

static inline fs_subscriber *nt_subscribe(fs_broker *b, const char *source, nt_log *l,
                                          const fs_subscriber_options *so)
{
    fs_subscriber *sub = NULL;
    if (fs_subscribe(b, source, nt_record, l, so, &sub) != FS_OK)
        fail_msg("subscribe %s: %s", source, fs_last_error());
    return sub;
}

#endif
