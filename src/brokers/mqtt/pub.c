/*
 * MQTT publishing: QoS, retain, expiry, MQTT 5 properties, and waiting for
 * the PUBACK / PUBCOMP of QoS 1 and 2. See internal.h.
 */
#include "internal.h"

#include <errno.h>
#include <mqtt_protocol.h>
#include <string.h>
#include <time.h>

static inline void awaited_set(mq_broker *b, int mid, bool on)
{
    uint64_t bit = (uint64_t)1 << ((unsigned)mid % 64);
    if (on)
        atomic_fetch_or_explicit(&b->awaited[(unsigned)mid / 64 % 1024], bit, memory_order_release);
    else
        atomic_fetch_and_explicit(&b->awaited[(unsigned)mid / 64 % 1024], ~bit,
                                  memory_order_release);
}

/*
 * Whether a publish may wait for `mid`: one is marking its id (it registered
 * before its publish call, so before its PUBACK can come), or the id is
 * marked. Read in this order: seeing the count down means seeing the mark.
 */
static inline bool awaited(mq_broker *b, int mid)
{
    if (atomic_load_explicit(&b->pub.registering, memory_order_seq_cst))
        return true;
    uint64_t word =
        atomic_load_explicit(&b->awaited[(unsigned)mid / 64 % 1024], memory_order_acquire);
    return (word >> ((unsigned)mid % 64)) & 1u;
}

/* The network thread got the PUBACK/PUBCOMP of `mid` (QoS 0: the packet was written). */
void fs__mq_on_publish(mq_conn *c, int mid, int reason)
{
    if (atomic_load_explicit(&c->nwaiters, memory_order_acquire) == 0)
        return; /* nobody waits */
    if (c == &c->b->pub && !awaited(c->b, mid))
        return; /* a QoS 0 packet written while a QoS 1/2 publish waits */
    pthread_mutex_lock(&c->mu);
    for (mq_wait *w = c->waiters; w; w = w->next) {
        if (w->mid == mid && !w->done) {
            w->done = true;
            w->reason = reason;
            pthread_cond_broadcast(&c->cv);
            break;
        }
    }
    pthread_mutex_unlock(&c->mu);
}

static void unlink_waiter(mq_conn *c, mq_wait *w)
{
    for (mq_wait **p = &c->waiters; *p; p = &(*p)->next) {
        if (*p == w) {
            *p = w->next;
            return;
        }
    }
}

/* libmosquitto refused a publish: say why in our words when the topic is the cause. */
static int publish_error(int mrc, const char *topic)
{
    const char *why = mrc == MOSQ_ERR_INVAL || mrc == MOSQ_ERR_MALFORMED_UTF8
                          ? fs__mq_topic_problem(topic)
                          : NULL;
    if (why)
        return fs_adapter_error(FS_EINVAL, "mqtt: cannot publish to '%s': %s", topic, why);
    if (mrc == MOSQ_ERR_MALFORMED_UTF8)
        return fs_adapter_error(FS_EINVAL, "mqtt: cannot publish to '%s': not UTF-8", topic);
    return fs__mq_error(mrc, "publish");
}

static int check_options(const fs_mqtt_publish_options *po, const char *destination)
{
    if (po && (po->qos < 0 || po->qos > 2))
        return fs_adapter_error(FS_EINVAL, "mqtt: publish to %s: QoS %d (0, 1 or 2)", destination,
                                po->qos);
    return FS_OK;
}

/* Why a message cannot be published (the hot path only tests; this words it). */
static __attribute__((noinline, cold)) int
refuse_message(const fs_envelope *e, const fs_mqtt_publish_options *po, const char *topic)
{
    int rc = check_options(po, topic);
    if (rc)
        return rc;
    if (!e->body && e->body_len)
        return fs_adapter_error(FS_EINVAL, "mqtt: publish: NULL body with length %zu", e->body_len);
    return fs_adapter_error(FS_EINVAL, "mqtt: publish: body of %zu bytes (at most %u)", e->body_len,
                            (unsigned)MQTT_MAX_PAYLOAD);
}

/* Whether an MQTT 5 publish carries properties (most carry none: nothing to build or free). */
static inline bool has_props(const fs_envelope *e, const fs_mqtt_publish_options *po)
{
    return e->header_count || po->expiry_s || (e->content_type && *e->content_type) ||
           (e->reply_to && *e->reply_to) || (e->correlation_id && *e->correlation_id);
}

/* The properties of a message that has some (MQTT 5), or why it cannot go (3.1.1 headers). */
static __attribute__((noinline)) int message_props(const mq_broker *b, const fs_envelope *e,
                                                   const fs_mqtt_publish_options *po,
                                                   mosquitto_property **props)
{
    if (b->version == FS_MQTT_V5)
        return fs__mq_props_build(e, po->expiry_s, props);
    if (e->header_count)
        return fs_adapter_error(FS_EUNSUPPORTED,
                                "mqtt: MQTT 3.1.1 does not support message headers; use MQTT 5");
    return FS_OK; /* nothing else of it travels in 3.1.1 */
}

/* The publishing connection is closed or down (counted in when `m`): say which. */
static __attribute__((noinline, cold)) int
connection_unusable(mq_conn *c, struct mosquitto *m, mosquitto_property *props, const char *topic)
{
    if (m)
        fs__mq_conn_leave(c);
    if (props)
        mosquitto_property_free_all(&props);
    return fs_adapter_error(m ? FS_EIO : FS_ECLOSED, "mqtt: publish to %s: %s", topic,
                            m ? "the connection is down" : "not connected");
}

/*
 * QoS 1/2 (apart, so that the QoS 0 path stays small): publish and wait
 * for the PUBACK / PUBCOMP. Consumes `props`; leaves the connection.
 */
static __attribute__((noinline)) int publish_wait(mq_broker *b, mq_conn *c, struct mosquitto *m,
                                                  const char *topic, const fs_envelope *e,
                                                  const fs_mqtt_publish_options *po,
                                                  mosquitto_property *props)
{
    int mrc;
    /* c->mu is held across the call so that on_publish finds the waiter. */
    mq_wait w = {0, false, 0, NULL};
    atomic_fetch_add_explicit(&c->registering, 1, memory_order_seq_cst);
    pthread_mutex_lock(&c->mu);
    atomic_fetch_add_explicit(&c->nwaiters, 1, memory_order_acq_rel);
    mrc = mosquitto_publish_v5(m, &w.mid, topic, (int)e->body_len, e->body, po->qos, po->retain,
                               props);
    if (props)
        mosquitto_property_free_all(&props);
    if (mrc) {
        atomic_fetch_sub_explicit(&c->nwaiters, 1, memory_order_acq_rel);
        atomic_fetch_sub_explicit(&c->registering, 1, memory_order_seq_cst);
        pthread_mutex_unlock(&c->mu);
        fs__mq_conn_leave(c);
        return publish_error(mrc, topic);
    }
    w.next = c->waiters;
    c->waiters = &w;
    awaited_set(b, w.mid, true);
    atomic_fetch_sub_explicit(&c->registering, 1, memory_order_seq_cst);
    struct timespec dl;
    fs__mq_deadline(&dl, b->publish_timeout_ms);
    while (!w.done)
        if (pthread_cond_timedwait(&c->cv, &c->mu, &dl) == ETIMEDOUT)
            break;
    unlink_waiter(c, &w);
    awaited_set(b, w.mid, false);
    atomic_fetch_sub_explicit(&c->nwaiters, 1, memory_order_acq_rel);
    pthread_mutex_unlock(&c->mu);
    fs__mq_conn_leave(c);
    if (!w.done)
        return fs_adapter_error(FS_ETIMEDOUT, "mqtt: publish to %s: no %s within %d ms", topic,
                                po->qos == 1 ? "PUBACK" : "PUBCOMP", b->publish_timeout_ms);
    if (w.reason < 0)
        return fs_adapter_error(FS_ECLOSED, "mqtt: publish to %s: connection closed", topic);
    /* 0 success, 16 no matching subscribers: both fine. */
    if (w.reason >= 0x80)
        return fs_adapter_error(FS_EBROKER, "mqtt: publish to %s refused: %s (%d)", topic,
                                mosquitto_reason_string(w.reason), w.reason);
    return FS_OK;
}

static inline int publish_one(mq_broker *b, const char *topic, const fs_envelope *e)
{
    static const fs_mqtt_publish_options defaults = FS_MQTT_PUBLISH_OPTIONS_INIT;
    const fs_mqtt_publish_options *po = e->broker_options ? e->broker_options : &defaults;
    if ((unsigned)po->qos > 2 || e->body_len > MQTT_MAX_PAYLOAD || (!e->body && e->body_len))
        return refuse_message(e, po, topic);
    mosquitto_property *props = NULL;
    int rc;
    if (has_props(e, po) && (rc = message_props(b, e, po, &props)))
        return rc;
    mq_conn *c = &b->pub;
    if (atomic_load_explicit(&c->thread_gone, memory_order_relaxed))
        fs__mq_conn_revive(c);
    struct mosquitto *m = fs__mq_conn_enter(c);
    if (!m || atomic_load_explicit(&c->state, memory_order_relaxed) != MQ_UP)
        return connection_unusable(c, m, props, topic);
    if (po->qos) /* apart: wait for the confirmation */
        return publish_wait(b, c, m, topic, e, po, props);
    /* QoS 0: no confirmation to wait for, no lock */
    int mrc = mosquitto_publish_v5(m, NULL, topic, (int)e->body_len, e->body, 0, po->retain, props);
    fs__mq_conn_leave(c);
    if (props)
        mosquitto_property_free_all(&props);
    return mrc ? publish_error(mrc, topic) : FS_OK;
}

/* The core checks its arguments; these are the adapter's own callers' (request on 3.1.1). */
static __attribute__((noinline, cold)) int bad_publish(const char *destination)
{
    if (!destination || !*destination)
        return fs_adapter_error(FS_EINVAL, "mqtt: cannot publish to '%s': empty topic",
                                destination ? destination : "(null)");
    return fs_adapter_error(FS_EINVAL, "mqtt: publish needs messages");
}

/* Several messages: no batches in MQTT, one by one (apart: the single message stays lean). */
static __attribute__((noinline)) int publish_many(mq_broker *b, const char *destination,
                                                  const fs_envelope *msgs, size_t count)
{
    int rc = FS_OK;
    for (size_t i = 0; !rc && i < count; i++)
        rc = publish_one(b, destination, &msgs[i]);
    return rc;
}

int fs__mq_publish(void *impl, void *dest, const char *destination, const fs_envelope *msgs,
                   size_t count, const char **error_type)
{
    (void)dest;
    int rc;
    /* Wildcards, length and UTF-8 are libmosquitto's to check (publish_error words it). */
    if (!destination || !*destination || !msgs || !count)
        rc = bad_publish(destination);
    else if (count == 1)
        rc = publish_one(impl, destination, msgs);
    else
        rc = publish_many(impl, destination, msgs, count);
    if (rc)
        *error_type = fs__mq_error_type(rc);
    return rc;
}

int fs__mq_prepare_destination(void *impl, const char *destination, const void *options,
                               void **dest_out)
{
    (void)impl;
    *dest_out = NULL;
    const char *why = fs__mq_topic_problem(destination);
    if (why)
        return fs_adapter_error(FS_EINVAL, "mqtt: cannot publish to '%s': %s",
                                destination ? destination : "(null)", why);
    return check_options(options, destination);
}

/*
 * Request/reply on MQTT 3.1.1, as FastStream does it (ZmqttProducerV311.request):
 * nothing carries a correlation, so the caller names the reply topic
 * (reply_to); subscribe to it (its own connection, QoS 1), publish, and the
 * first message there is the reply. Without reply_to: FeatureNotSupported.
 */
int fs__mq_request_311(void *impl, const char *destination, const fs_envelope *msg, int timeout_ms,
                       fs_message **reply, const char **error_type)
{
    mq_broker *b = impl;
    *reply = NULL;
    if (!msg || !msg->reply_to || !*msg->reply_to) {
        *error_type = "FeatureNotSupportedException";
        return fs_adapter_error(FS_EUNSUPPORTED,
                                "mqtt: MQTT 3.1.1 request() requires an explicit reply_to topic");
    }
    fs_mqtt_subscriber_options so = FS_MQTT_SUBSCRIBER_OPTIONS_INIT;
    so.qos = 1;
    fs_subscribe_spec spec;
    memset(&spec, 0, sizeof spec);
    spec.source = msg->reply_to;
    spec.broker_options = &so;
    spec.ack_policy = FS_ACK_POLICY_ACK;
    spec.concurrency = 1;
    spec.reply_inbox = true; /* its own numbering, a clean session, left alone by stop */
    void *sub = NULL;
    int rc = fs__mq_subscribe(b, &spec, &sub);
    if (!rc)
        rc = fs__mq_sub_start(b, sub);
    if (!rc) {
        fs_envelope e = *msg;
        e.reply_to = NULL; /* nothing to carry it in 3.1.1 */
        const char *etype = NULL;
        rc = fs__mq_publish(b, NULL, destination, &e, 1, &etype);
        if (rc)
            *error_type = etype;
    }
    fs_message *m = NULL;
    if (!rc) {
        rc = fs__mq_fetch(b, sub, 0, timeout_ms, &m);
        if (rc == FS_ETIMEDOUT)
            rc = fs_adapter_error(FS_ETIMEDOUT, "mqtt: no reply on %s within %d ms", msg->reply_to,
                                  timeout_ms);
    }
    if (m) {
        fs_envelope got = FS_ENVELOPE_INIT;
        got.body = m->body;
        got.body_len = m->body_len;
        *reply = fs_message_new_copy(&got, m->source);
        fs__mq_settle(b, m, &(fs_settle_args){FS_SETTLE_ACKED, 0, NULL});
        m->release(m);
        if (!*reply)
            rc = fs_adapter_error(FS_ENOMEM, "mqtt: out of memory copying the reply");
    }
    if (sub)
        fs__mq_unsubscribe(b, sub);
    if (rc && !*error_type)
        *error_type = fs__mq_error_type(rc);
    return rc;
}
