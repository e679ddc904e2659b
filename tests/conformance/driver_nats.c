/*
 * NATS columns: core subjects (nats-core) and a JetStream durable pull
 * consumer (nats-js). Messages are put and the server's state is read with
 * nats.c on a connection of the driver's own: for JetStream, one memory
 * stream per scenario capturing its subjects (SOURCE and SOURCE.>), and the
 * consumer info of the subscription's durable consumer (NumPending,
 * NumAckPending, NumRedelivered) plus the stream's message count on the
 * source's subject.
 */
#include "conformance.h"

#include "faststream/nats.h"

#include <nats/nats.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static int port(void)
{
    const char *p = getenv("FS_NATS_PORT");
    return p && *p ? atoi(p) : 14222;
}

static void url(char *buf, size_t n)
{
    snprintf(buf, n, "nats://127.0.0.1:%d", port());
}

/* One raw connection for the driver, opened on first use (thread-safe: nats.c). */
static pthread_mutex_t raw_mu = PTHREAD_MUTEX_INITIALIZER;
static natsConnection *raw_nc;
static jsCtx *raw_js;

static jsCtx *raw(natsConnection **nc)
{
    pthread_mutex_lock(&raw_mu);
    if (!raw_nc) {
        char u[64];
        url(u, sizeof u);
        natsOptions *o = NULL;
        natsOptions_Create(&o);
        natsOptions_SetURL(o, u);
        natsOptions_SetTimeout(o, 1000);
        if (natsConnection_Connect(&raw_nc, o) == NATS_OK &&
            natsConnection_JetStream(&raw_js, raw_nc, NULL) != NATS_OK) {
            natsConnection_Destroy(raw_nc);
            raw_nc = NULL;
        }
        natsOptions_Destroy(o);
    }
    if (nc)
        *nc = raw_nc;
    jsCtx *js = raw_js;
    pthread_mutex_unlock(&raw_mu);
    return js;
}

static bool nats_available(char *why, size_t n)
{
    if (raw(NULL))
        return true;
    snprintf(why, n, "no nats-server -js on 127.0.0.1:%d (scripts/services.sh start nats)", port());
    return false;
}

static int nats_broker_new(fs_broker **out)
{
    char u[64];
    url(u, sizeof u);
    return fs_broker_new(u, NULL, out);
}

/* "conf.123.nats-js.ok.4[.out]" -> its scenario's stream "conf_123_nats-js_ok_4". */
static void stream_of(const char *subject, char *buf, size_t n)
{
    snprintf(buf, n, "%s", subject);
    size_t dots = 0;
    for (char *p = buf; *p; p++)
        if (*p == '.' && ++dots == 5) { /* conf . pid . column . scenario . seq */
            *p = '\0';
            break;
        }
    for (char *p = buf; *p; p++)
        if (*p == '.')
            *p = '_';
}

/* The durable consumer of a subject: its name without dots. */
static void durable_of(const char *subject, char *buf, size_t n)
{
    snprintf(buf, n, "%s", subject);
    for (char *p = buf; *p; p++)
        if (*p == '.')
            *p = '_';
}

/* The scenario's stream: SOURCE and everything under it (SOURCE.b, SOURCE.out). */
static void ensure_stream(const char *subject)
{
    jsCtx *js = raw(NULL);
    if (!js)
        return;
    char name[128], base[128], wild[140];
    stream_of(subject, name, sizeof name);
    /* the stream's subjects come from the source's first five tokens */
    snprintf(base, sizeof base, "%s", subject);
    size_t dots = 0;
    for (char *p = base; *p; p++)
        if (*p == '.' && ++dots == 5) {
            *p = '\0';
            break;
        }
    snprintf(wild, sizeof wild, "%s.>", base);
    const char *subjects[] = {base, wild};
    jsStreamConfig sc;
    jsStreamConfig_Init(&sc);
    sc.Name = name;
    sc.Subjects = subjects;
    sc.SubjectsLen = 2;
    sc.Storage = js_MemoryStorage;
    jsStreamInfo *si = NULL;
    js_AddStream(&si, js, &sc, NULL, NULL); /* exists already: fine */
    jsStreamInfo_Destroy(si);
}

static const void *js_sub_options(const char *source, void *scratch)
{
    fs_nats_subscriber_options *o = scratch;
    char *stream = (char *)(o + 1), *durable = stream + 160;
    stream_of(source, stream, 160);
    durable_of(source, durable, 160);
    *o = (fs_nats_subscriber_options)FS_NATS_SUBSCRIBER_OPTIONS_INIT;
    o->stream = stream;
    o->durable = durable;
    return o;
}

static const void *js_pub_options(const char *source, void *scratch)
{
    ensure_stream(source); /* also for a destination nobody subscribes to */
    fs_nats_publish_options *o = scratch;
    char *stream = (char *)(o + 1);
    stream_of(source, stream, 160);
    *o = (fs_nats_publish_options)FS_NATS_PUBLISH_OPTIONS_INIT;
    o->stream = stream;
    return o;
}

static int core_put(fs_broker *b, const char *source, const void *body, size_t len)
{
    (void)b;
    natsConnection *nc;
    if (!raw(&nc))
        return FS_EIO;
    natsStatus s = natsConnection_Publish(nc, source, body, (int)len);
    if (s == NATS_OK)
        s = natsConnection_FlushTimeout(nc, 2000);
    return s == NATS_OK ? FS_OK : FS_EIO;
}

static int js_put(fs_broker *b, const char *source, const void *body, size_t len)
{
    (void)b;
    jsCtx *js = raw(NULL);
    if (!js)
        return FS_EIO;
    jsPubAck *pa = NULL;
    natsStatus s = js_Publish(&pa, js, source, body, (int)len, NULL, NULL);
    jsPubAck_Destroy(pa);
    return s == NATS_OK ? FS_OK : FS_EIO;
}

static uint64_t subject_msgs(jsCtx *js, const char *stream, const char *subject)
{
    jsOptions o;
    jsOptions_Init(&o);
    o.Stream.Info.SubjectsFilter = subject;
    jsStreamInfo *si = NULL;
    uint64_t n = 0;
    if (js_GetStreamInfo(&si, js, stream, &o, NULL) == NATS_OK && si->State.Subjects)
        for (int i = 0; i < si->State.Subjects->Count; i++)
            if (strcmp(si->State.Subjects->List[i].Subject, subject) == 0)
                n = si->State.Subjects->List[i].Msgs;
    jsStreamInfo_Destroy(si);
    return n;
}

/*
 * pending: NumPending + NumAckPending; acked: the source's messages minus
 * those (a +TERM counts as settled, never as pending); redelivered:
 * NumRedelivered. The acks left the broker before (ping: PING/PONG after
 * them); the server applies them asynchronously, so a short settle wait.
 */
static int js_state(fs_broker *b, const char *source, conf_broker_state *out)
{
    jsCtx *js = raw(NULL);
    if (!js)
        return FS_EIO;
    fs_broker_ping(b, 2000);
    char stream[160], durable[160];
    stream_of(source, stream, sizeof stream);
    durable_of(source, durable, sizeof durable);
    jsConsumerInfo *ci = NULL;
    int64_t last_pending = -1;
    for (int i = 0; i < 10; i++) {
        jsConsumerInfo_Destroy(ci);
        ci = NULL;
        if (js_GetConsumerInfo(&ci, js, stream, durable, NULL, NULL) != NATS_OK)
            return FS_EIO;
        int64_t pending = (int64_t)ci->NumPending + ci->NumAckPending;
        if (pending == last_pending)
            break;
        last_pending = pending;
        nanosleep(&(struct timespec){0, 20000000}, NULL);
    }
    uint64_t total = subject_msgs(js, stream, source);
    long pending = (long)(ci->NumPending + (uint64_t)ci->NumAckPending);
    out->pending = pending;
    out->acked = (long)total - pending;
    out->redelivered = (long)ci->NumRedelivered;
    out->dead_lettered = -1;
    jsConsumerInfo_Destroy(ci);
    return FS_OK;
}

/*
 * A JetStream publish to a subject no stream captures (the scenario's stream,
 * made by pub_options, is deleted first): no responders, which nats-py raises
 * as NoStreamResponseError (js/client.py publish), as the adapter does.
 */
static int js_fail_setup(fs_broker *b, const char *dest, const void **opts)
{
    (void)b;
    jsCtx *js = raw(NULL);
    if (!js)
        return FS_EIO;
    char stream[160];
    stream_of(dest, stream, sizeof stream);
    js_DeleteStream(js, stream, NULL, NULL);
    static const fs_nats_publish_options no_stream = {NULL, true, 2000};
    *opts = &no_stream;
    return FS_OK;
}

static void js_cleanup(const char *source)
{
    jsCtx *js = raw(NULL);
    if (!js)
        return;
    char stream[160];
    stream_of(source, stream, sizeof stream);
    js_DeleteStream(js, stream, NULL, NULL);
}

static const conf_driver core_driver = {
    .column = "nats-core",
    .broker_label = "nats",
    .features = CONF_HAS_REQUEST,
    .policy = FS_ACK_POLICY_DEFAULT,
    .available = nats_available,
    .broker_new = nats_broker_new,
    .put = core_put,
};

static const conf_driver js_driver = {
    .column = "nats-js",
    .broker_label = "nats",
    .features = CONF_HAS_BATCH | CONF_HAS_REQUEST | CONF_HAS_REDELIVERY | CONF_HAS_STATE |
                CONF_HAS_DELIVERY_COUNT,
    .policy = FS_ACK_POLICY_DEFAULT,
    .available = nats_available,
    .broker_new = nats_broker_new,
    .prepare = ensure_stream,
    .sub_options = js_sub_options,
    .pub_options = js_pub_options,
    .put = js_put,
    .state = js_state,
    .fail_publish_setup = js_fail_setup,
    .cleanup = js_cleanup,
};

const conf_driver *const conf_drivers_nats[] = {&core_driver, &js_driver, NULL};
