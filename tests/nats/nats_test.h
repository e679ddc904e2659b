/*
 * Helpers for the NATS integration tests: the server's URL from the
 * environment, a raw nats.c connection to inspect JetStream state, names
 * private to this process, streams, and a subscription of the recording
 * handler; the handler, waits and sleeps are tests/support/record.h's
 * (ts_*). Header-only; include after cmocka.h.
 */
#ifndef FS_TEST_NATS_H
#define FS_TEST_NATS_H

#include "faststream/faststream.h"
#include "faststream/nats.h"
#include "support/port.h"
#include "support/record.h"

#include <nats/nats.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* The shared server (scripts/services.sh start nats). */
static inline int nt_port(void)
{
    return port_env("FS_NATS_PORT", 14222);
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
    fs_envelope env;
    ts_envelope(&env, body, &po);
    env.message_id = msg_id;
    if (fs_publish(b, subject, &env) != FS_OK)
        fail_msg("JetStream publish to %s: %s", subject, fs_last_error());
}

/* Subscribe the recording handler `l` to `source` (so may be NULL). */
static inline fs_subscriber *nt_subscribe(fs_broker *b, const char *source, ts_log *l,
                                          const fs_subscriber_options *so)
{
    fs_subscriber *sub = NULL;
    if (fs_subscribe(b, source, ts_record, l, so, &sub) != FS_OK)
        fail_msg("subscribe %s: %s", source, fs_last_error());
    return sub;
}

#endif
