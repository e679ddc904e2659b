/*
 * Helpers for the MQTT integration tests: the server's URL and ports, the
 * test CA's files, unique topic names, a raw libmosquitto client to put
 * messages on the server and read what it delivers, and a recording
 * handler (sleeping and polling: support/record.h). Header-only; include
 * after cmocka.h.
 */
#ifndef FS_TEST_MQTT_H
#define FS_TEST_MQTT_H

#include "faststream/faststream.h"
#include "faststream/mqtt.h"
#include "support/record.h"

#include <mosquitto.h>
#include <mqtt_protocol.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static inline int mt_port(void)
{
    const char *p = getenv("FS_MQTT_PORT");
    return p && *p ? atoi(p) : 11883;
}

static inline int mt_tls_port(void)
{
    const char *p = getenv("FS_MQTT_TLS_PORT");
    return p && *p ? atoi(p) : 11884;
}

/* Where scripts/services.sh keeps the test CA. */
static inline void mt_cert(char *buf, size_t n, const char *file)
{
    const char *d = getenv("FS_SERVICES_DIR");
    if (d && *d)
        snprintf(buf, n, "%s/mqtt/certs/%s", d, file);
    else
        snprintf(buf, n, "%s/faststream-services-%d/mqtt/certs/%s",
                 getenv("TMPDIR") && *getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp", (int)getuid(),
                 file);
}

/* "mqtt://127.0.0.1:PORT" plus `query` (may be NULL or start with '?'). */
static inline void mt_url(char *buf, size_t n, const char *query)
{
    snprintf(buf, n, "mqtt://127.0.0.1:%d%s", mt_port(), query ? query : "");
}

/* A topic private to this process and test. */
static inline void mt_topic(char *buf, size_t n, const char *what)
{
    static _Atomic unsigned seq;
    snprintf(buf, n, "fstest/%ld/%u/%s", (long)getpid(), atomic_fetch_add(&seq, 1), what);
}

static inline fs_broker *mt_broker(const char *query)
{
    char url[256];
    mt_url(url, sizeof url, query);
    fs_broker *b = NULL;
    if (fs_broker_new(url, NULL, &b) != FS_OK)
        fail_msg("fs_broker_new(%s): %s", url, fs_last_error());
    return b;
}

/* ------------------------------------------------------------------------ */
/* A raw libmosquitto client                                                */

#define MT_MAX 256

typedef struct mt_msg {
    char topic[256];
    char body[256];
    int len, qos;
    bool retain;
    char content_type[128], response_topic[256], correlation[128];
    char props[512]; /* user properties "k=v;k=v;" */
    uint32_t expiry; /* message expiry interval (raw client) */
} mt_msg;

typedef struct mt_raw {
    struct mosquitto *m;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    atomic_int connected, subacks, pubacks;
    int last_reason;
    mt_msg got[MT_MAX];
    int n;
} mt_raw;

static inline void mt_raw_on_connect(struct mosquitto *m, void *u, int rc, int f,
                                     const mosquitto_property *p)
{
    (void)m, (void)f, (void)p;
    atomic_store(&((mt_raw *)u)->connected, rc == 0 ? 1 : -1);
}

static inline void mt_raw_on_subscribe(struct mosquitto *m, void *u, int mid, int n, const int *q,
                                       const mosquitto_property *p)
{
    (void)m, (void)mid, (void)n, (void)q, (void)p;
    atomic_fetch_add(&((mt_raw *)u)->subacks, 1);
}

static inline void mt_raw_on_publish(struct mosquitto *m, void *u, int mid, int reason,
                                     const mosquitto_property *p)
{
    (void)m, (void)mid, (void)p;
    mt_raw *r = u;
    r->last_reason = reason;
    atomic_fetch_add(&r->pubacks, 1);
}

static inline void mt_raw_on_message(struct mosquitto *m, void *u,
                                     const struct mosquitto_message *msg,
                                     const mosquitto_property *props)
{
    (void)m;
    mt_raw *r = u;
    pthread_mutex_lock(&r->mu);
    if (r->n < MT_MAX) {
        mt_msg *g = &r->got[r->n++];
        memset(g, 0, sizeof *g);
        snprintf(g->topic, sizeof g->topic, "%s", msg->topic);
        g->len = msg->payloadlen;
        memcpy(g->body, msg->payload, (size_t)(msg->payloadlen < 255 ? msg->payloadlen : 255));
        g->qos = msg->qos;
        g->retain = msg->retain;
        for (const mosquitto_property *p = props; p; p = mosquitto_property_next(p)) {
            int id = mosquitto_property_identifier(p);
            char *s = NULL, *k = NULL, *v = NULL;
            void *bin = NULL;
            uint16_t blen = 0;
            if (id == MQTT_PROP_CONTENT_TYPE && mosquitto_property_read_string(p, id, &s, false))
                snprintf(g->content_type, sizeof g->content_type, "%s", s);
            if (id == MQTT_PROP_RESPONSE_TOPIC && mosquitto_property_read_string(p, id, &s, false))
                snprintf(g->response_topic, sizeof g->response_topic, "%s", s);
            if (id == MQTT_PROP_CORRELATION_DATA &&
                mosquitto_property_read_binary(p, id, &bin, &blen, false))
                snprintf(g->correlation, sizeof g->correlation, "%.*s", (int)blen, (char *)bin);
            if (id == MQTT_PROP_MESSAGE_EXPIRY_INTERVAL)
                mosquitto_property_read_int32(p, id, &g->expiry, false);
            if (id == MQTT_PROP_USER_PROPERTY &&
                mosquitto_property_read_string_pair(p, id, &k, &v, false)) {
                size_t o = strlen(g->props);
                snprintf(g->props + o, sizeof g->props - o, "%s=%s;", k, v);
            }
            free(s);
            free(k);
            free(v);
            free(bin);
        }
    }
    pthread_cond_broadcast(&r->cv);
    pthread_mutex_unlock(&r->mu);
}

static inline void mt_wait_int(atomic_int *v, int want, int ms)
{
    for (int i = 0; i < ms / 5 && atomic_load(v) < want; i++)
        ts_sleep_ms(5);
}

/* A raw MQTT 5 client (v311: 3.1.1), connected; subscribed to `filter` (QoS 1) unless NULL. */
static inline mt_raw *mt_raw_new(const char *filter, bool v311)
{
    mt_raw *r = calloc(1, sizeof *r);
    pthread_mutex_init(&r->mu, NULL);
    pthread_cond_init(&r->cv, NULL);
    r->m = mosquitto_new(NULL, true, r);
    mosquitto_int_option(r->m, MOSQ_OPT_PROTOCOL_VERSION,
                         v311 ? MQTT_PROTOCOL_V311 : MQTT_PROTOCOL_V5);
    mosquitto_connect_v5_callback_set(r->m, mt_raw_on_connect);
    mosquitto_subscribe_v5_callback_set(r->m, mt_raw_on_subscribe);
    mosquitto_publish_v5_callback_set(r->m, mt_raw_on_publish);
    mosquitto_message_v5_callback_set(r->m, mt_raw_on_message);
    if (mosquitto_connect(r->m, "127.0.0.1", mt_port(), 30) != MOSQ_ERR_SUCCESS)
        fail_msg("raw client: cannot connect to 127.0.0.1:%d (scripts/services.sh start mqtt)",
                 mt_port());
    mosquitto_loop_start(r->m);
    mt_wait_int(&r->connected, 1, 5000);
    assert_int_equal(atomic_load(&r->connected), 1);
    if (filter) {
        mosquitto_subscribe_v5(r->m, NULL, filter, 1, 0, NULL);
        mt_wait_int(&r->subacks, 1, 5000);
        assert_int_equal(atomic_load(&r->subacks), 1);
    }
    return r;
}

/* Publish from the raw client at QoS 1 or 2, waiting for the PUBACK / PUBCOMP. `props` may be NULL.
 */
static inline void mt_raw_publish_qos(mt_raw *r, const char *topic, const char *body,
                                      const mosquitto_property *props, bool retain, int qos)
{
    int before = atomic_load(&r->pubacks);
    assert_int_equal(
        mosquitto_publish_v5(r->m, NULL, topic, (int)strlen(body), body, qos, retain, props),
        MOSQ_ERR_SUCCESS);
    mt_wait_int(&r->pubacks, before + 1, 5000);
    assert_int_equal(atomic_load(&r->pubacks), before + 1);
}

/* Publish from the raw client (QoS 1, waits for the PUBACK). `props` may be NULL. */
static inline void mt_raw_publish(mt_raw *r, const char *topic, const char *body,
                                  const mosquitto_property *props, bool retain)
{
    mt_raw_publish_qos(r, topic, body, props, retain, 1);
}

/* Wait until the raw client got `n` messages (up to ms); returns how many it has. */
static inline int mt_raw_wait(mt_raw *r, int n, int ms)
{
    for (int i = 0; i < ms / 5; i++) {
        pthread_mutex_lock(&r->mu);
        int have = r->n;
        pthread_mutex_unlock(&r->mu);
        if (have >= n)
            return have;
        ts_sleep_ms(5);
    }
    pthread_mutex_lock(&r->mu);
    int have = r->n;
    pthread_mutex_unlock(&r->mu);
    return have;
}

static inline void mt_raw_free(mt_raw *r)
{
    mosquitto_disconnect(r->m);
    mosquitto_loop_stop(r->m, false);
    mosquitto_destroy(r->m);
    pthread_cond_destroy(&r->cv);
    pthread_mutex_destroy(&r->mu);
    free(r);
}

/* ------------------------------------------------------------------------ */
/* A recording handler                                                      */

typedef struct mt_rec {
    pthread_mutex_t mu;
    int n;
    mt_msg got[MT_MAX];
    atomic_int running, max_running;
    int sleep_ms;
    fs_outcome outcome;
} mt_rec;

static inline void mt_rec_init(mt_rec *r)
{
    memset(r, 0, sizeof *r);
    pthread_mutex_init(&r->mu, NULL);
}

static inline fs_outcome mt_rec_handler(fs_message *m, void *user)
{
    mt_rec *r = user;
    int now = atomic_fetch_add(&r->running, 1) + 1;
    int max = atomic_load(&r->max_running);
    while (now > max && !atomic_compare_exchange_weak(&r->max_running, &max, now))
        ;
    if (r->sleep_ms)
        ts_sleep_ms(r->sleep_ms);
    pthread_mutex_lock(&r->mu);
    if (r->n < MT_MAX) {
        mt_msg *g = &r->got[r->n];
        memset(g, 0, sizeof *g);
        snprintf(g->topic, sizeof g->topic, "%s", fs_message_source(m));
        g->len = (int)fs_message_body_len(m);
        snprintf(g->body, sizeof g->body, "%.*s", g->len, (const char *)fs_message_body(m));
        const fs_mqtt_message_info *info = fs_message_raw(m);
        g->qos = info->qos;
        g->retain = info->retain;
        const char *s;
        if ((s = fs_message_content_type(m)))
            snprintf(g->content_type, sizeof g->content_type, "%s", s);
        if ((s = fs_message_reply_to(m)))
            snprintf(g->response_topic, sizeof g->response_topic, "%s", s);
        if ((s = fs_message_correlation_id(m)))
            snprintf(g->correlation, sizeof g->correlation, "%s", s);
        for (size_t i = 0; i < fs_message_header_count(m); i++) {
            const fs_header *h = fs_message_header_at(m, i);
            size_t o = strlen(g->props);
            snprintf(g->props + o, sizeof g->props - o, "%s=%s;", h->name, h->value);
        }
        r->n++;
    }
    pthread_mutex_unlock(&r->mu);
    atomic_fetch_sub(&r->running, 1);
    return r->outcome;
}

static inline int mt_rec_count(mt_rec *r)
{
    pthread_mutex_lock(&r->mu);
    int n = r->n;
    pthread_mutex_unlock(&r->mu);
    return n;
}

static inline int mt_rec_wait(mt_rec *r, int n, int ms)
{
    for (int i = 0; i < ms / 5 && mt_rec_count(r) < n; i++)
        ts_sleep_ms(5);
    return mt_rec_count(r);
}

/* ------------------------------------------------------------------------ */
/* Ours: publish and subscribe at a QoS                                     */

/* Publish `body` from ours at `qos` (QoS > 0 waits for the PUBACK / PUBCOMP); the status. */
static inline int mt_publish(fs_broker *b, const char *topic, const char *body, int qos,
                             bool retain)
{
    fs_mqtt_publish_options po = FS_MQTT_PUBLISH_OPTIONS_INIT;
    po.qos = qos;
    po.retain = retain;
    fs_envelope e = FS_ENVELOPE_INIT;
    e.body = body;
    e.body_len = strlen(body);
    e.broker_options = &po;
    return fs_publish(b, topic, &e);
}

/* Subscribe `rec` to `source` at `qos` (`shared`: a $share group, or NULL); fails the test. */
static inline fs_subscriber *mt_subscribe(fs_broker *b, const char *source, mt_rec *rec, int qos,
                                          unsigned concurrency, const char *shared)
{
    fs_mqtt_subscriber_options mo = FS_MQTT_SUBSCRIBER_OPTIONS_INIT;
    mo.qos = qos;
    mo.shared = shared;
    fs_subscriber_options so = FS_SUBSCRIBER_OPTIONS_INIT;
    so.broker_options = &mo;
    so.concurrency = concurrency;
    fs_subscriber *s = NULL;
    if (fs_subscribe(b, source, mt_rec_handler, rec, &so, &s) != FS_OK)
        fail_msg("fs_subscribe(%s): %s", source, fs_last_error());
    return s;
}

#endif
