/*
 * MQTT subscriptions: the network thread's message callback, the queue the
 * core's workers fetch from, and the hand-back that lets the PUBACK go out
 * after the handler. See internal.h for the design.
 */
#include "internal.h"

#include "kit/clock.h"

#include <errno.h>
#include <limits.h>
#include <mqtt_protocol.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>

/* ------------------------------------------------------------------------ */
/* Records                                                                  */

/* Free the records made (after the subscription's threads are gone). */
static void rec_free_all(mq_sub *s)
{
    uint32_t made = atomic_load(&s->rec_made);
    for (uint32_t i = 0; i < made && s->recs; i++) {
        if (s->recs[i]) {
            free(s->recs[i]->arena);
            free(s->recs[i]->hdrs);
            free(s->recs[i]);
        }
    }
    free(s->recs);
    free(s->cells);
}

/* Drop a reference: the last one gives the record back to the free ring. */
static void rec_unref(mq_sub *s, mrec *r)
{
    if (atomic_fetch_sub_explicit(&r->refs, 1, memory_order_acq_rel) == 1)
        fs_kit_ring_push(&s->free, r->index); /* never full: one cell per record */
}

static void rec_release(fs_message *m);

/*
 * A record to fill (on a network thread): a free one, else a new one while
 * fewer than rec_cap exist (warming up), else NULL (cannot happen while
 * rec_cap bounds what is in flight; the caller waits).
 */
static mrec *rec_get(mq_sub *s)
{
    uint32_t idx;
    if (fs_kit_ring_pop(&s->free, &idx, true))
        return s->recs[idx];
    uint32_t made = atomic_load_explicit(&s->rec_made, memory_order_relaxed);
    do
        if (made >= s->rec_cap)
            return NULL;
    while (!atomic_compare_exchange_weak_explicit(&s->rec_made, &made, made + 1,
                                                  memory_order_acq_rel, memory_order_relaxed));
    mrec *r = calloc(1, sizeof *r);
    if (r) { /* out of memory: the index stays unused */
        r->index = made;
        /*
         * What stays the same from delivery to delivery is set once: the core
         * never writes a message's public fields and binds its own part at
         * every fetch, so rec_fill sets only what a delivery changes.
         */
        fs_message_init(&r->m);
        r->m.raw = &r->info;
        r->m.release = rec_release;
        r->m.adapter_data = r;
        r->s = s;
        r->info.filter = s->filter;
        s->recs[made] = r;
    }
    return r;
}

/*
 * The core is done with the message: let its acknowledgement go if settle
 * did not already (the network thread waiting on it returns), and drop the
 * core's reference.
 */
static void rec_release(fs_message *m)
{
    mrec *r = m->adapter_data;
    mq_sub *s = r->s;
    if (r->gated) {
        atomic_fetch_or_explicit(&r->flags, MR_DONE, memory_order_release);
        fs_kit_event_signal(&r->lane->ev, INT_MAX);
    }
    rec_unref(s, r);
}

/*
 * ack (and reject, which is an ack in MQTT): the PUBACK may leave now,
 * also while the handler still runs (an explicit fs_message_ack). nack is
 * never called (settle_as NACKED = NONE). No lock: a flag and a wake-up.
 */
int fs__mq_settle(void *impl, fs_message *m, const fs_settle_args *args)
{
    (void)impl;
    (void)args;
    mrec *r = m->adapter_data;
    if (r->gated) {
        atomic_fetch_or_explicit(&r->flags, MR_ACKED, memory_order_release);
        fs_kit_event_signal(&r->lane->ev, INT_MAX);
    }
    return FS_OK;
}

static char *put_str(char **at, const char *src, size_t n)
{
    char *dst = *at;
    if (n)
        memcpy(dst, src, n);
    dst[n] = '\0';
    *at += n + 1;
    return dst;
}

/* The arena bytes the properties need (see props_fill). */
static size_t props_size(const mq_props *p)
{
    size_t need = 0;
    if (p->content_type)
        need += strlen(p->content_type) + 1;
    if (p->response_topic)
        need += strlen(p->response_topic) + 1;
    if (p->correlation)
        need += 3 * (size_t)p->correlation_len + 1;
    for (size_t i = 0; i < p->count; i++)
        need += strlen(p->names[i]) + strlen(p->values[i]) + 2;
    return need;
}

/* Copy the properties into the arena at `at` (room made by rec_fill) and the message. */
static void props_fill(mrec *r, const mq_props *p, char *at)
{
    fs_message *m = &r->m;
    r->info.expiry_s = p->expiry_s;
    if (p->content_type)
        m->content_type = put_str(&at, p->content_type, strlen(p->content_type));
    if (p->response_topic)
        m->reply_to = put_str(&at, p->response_topic, strlen(p->response_topic));
    if (p->correlation) {
        m->correlation_id = at;
        at += fs__mq_utf8_replace(p->correlation, p->correlation_len, at) + 1;
    }
    for (size_t i = 0; i < p->count; i++) {
        r->hdrs[i].name = put_str(&at, p->names[i], strlen(p->names[i]));
        size_t vlen = strlen(p->values[i]);
        r->hdrs[i].value = put_str(&at, p->values[i], vlen);
        r->hdrs[i].value_len = vlen;
    }
    m->headers = p->count ? r->hdrs : NULL;
    m->header_count = p->count;
}

/* Fill a record with a copy of the delivery; `p` is NULL when it carried no properties. */
static int rec_fill(mq_sub *s, mrec *r, const struct mosquitto_message *msg, const mq_props *p)
{
    size_t tlen = strlen(msg->topic), blen = (size_t)msg->payloadlen;
    size_t need = tlen + 1 + blen + 1;
    if (p) {
        if (p->count > r->hdr_cap) {
            fs_header *h = realloc(r->hdrs, p->count * sizeof *h);
            if (!h)
                return FS_ENOMEM;
            r->hdrs = h;
            r->hdr_cap = p->count;
        }
        need += props_size(p);
    }
    if (need > r->arena_cap) {
        char *a = realloc(r->arena, need);
        if (!a)
            return FS_ENOMEM;
        r->arena = a;
        r->arena_cap = need;
    }
    fs_message *m = &r->m;
    char *at = r->arena;
    r->info.topic = put_str(&at, msg->topic, tlen);
    r->info.qos = msg->qos;
    r->info.retain = msg->retain;
    r->info.mid = msg->qos ? msg->mid : 0;
    m->body = put_str(&at, msg->payload, blen);
    m->body_len = blen;
    m->source = r->info.topic;
    if (p || r->had_props) { /* what the properties set, and the last delivery may have */
        r->info.expiry_s = 0;
        m->content_type = m->reply_to = m->correlation_id = NULL;
        m->headers = NULL;
        m->header_count = 0;
        if (p)
            props_fill(r, p, at);
        r->had_props = p != NULL;
    }
    atomic_store_explicit(&r->state, MR_QUEUED, memory_order_relaxed);
    r->gated = s->gate && msg->qos > 0;
    atomic_store_explicit(&r->flags, 0, memory_order_relaxed);
    atomic_store_explicit(&r->refs, r->gated ? 2 : 1, memory_order_relaxed);
    return FS_OK;
}

/* ------------------------------------------------------------------------ */
/* The network thread                                                       */

/*
 * Give up a message without acknowledging it: at QoS > 0 the socket is shut
 * so that the PUBACK libmosquitto queued never leaves; the server keeps the
 * message for the session and sends it again on the next connection.
 */
static void abandon(mq_sub *s, struct mosquitto *m, int qos, const char *why)
{
    if (qos > 0) {
        int fd = mosquitto_socket(m);
        if (fd >= 0)
            shutdown(fd, SHUT_RDWR);
    }
    fs_adapter_log(FS_LOG_DEBUG, MQ_COMPONENT, "%s: message not taken (%s)%s", s->filter, why,
                   qos > 0 ? ": left unacknowledged, connection dropped" : "");
}

/*
 * Wait (on the network thread) until the core settled or released `r`:
 * true then; false when the subscription stopped before a worker took it
 * (marked abandoned: whoever pops it from the queue recycles it; not to be
 * acknowledged).
 */
static bool wait_settled(mq_sub *s, mq_conn *c, mrec *r)
{
    for (;;) {
        uint32_t seq = fs_kit_event_prepare(&c->ev);
        bool done = atomic_load_explicit(&r->flags, memory_order_acquire) != 0;
        bool stopping = atomic_load_explicit(&s->stopping, memory_order_acquire);
        int queued = MR_QUEUED;
        if (!done && stopping &&
            atomic_compare_exchange_strong_explicit(&r->state, &queued, MR_ABANDONED,
                                                    memory_order_acq_rel, memory_order_acquire)) {
            fs_kit_event_wait(&c->ev, seq, 0, 1);
            rec_unref(s, r); /* ours; the queue's goes with the pop */
            return false;
        }
        /* Stopping with the message out: its handler finishes first (the core waits for it). */
        fs_kit_event_wait(&c->ev, seq, stopping ? 50 : 1000, done);
        if (done)
            return true;
    }
}

/*
 * Wait (on the network thread) for room in the queue and a free record;
 * NULL when the subscription stops meanwhile.
 */
static mrec *wait_record(mq_sub *s, mq_conn *c)
{
    mrec *fast; /* the common case: room and a record, without registering as a sleeper */
    if (!atomic_load_explicit(&s->stopping, memory_order_acquire) &&
        atomic_load_explicit(&s->q_len, memory_order_acquire) < s->q_max && (fast = rec_get(s)))
        return fast;
    for (;;) {
        uint32_t seq = fs_kit_event_prepare(&c->ev);
        if (atomic_load_explicit(&s->stopping, memory_order_acquire)) {
            fs_kit_event_wait(&c->ev, seq, 0, 1);
            return NULL;
        }
        mrec *r = NULL;
        bool room = atomic_load_explicit(&s->q_len, memory_order_acquire) < s->q_max;
        if (room && (r = rec_get(s))) {
            fs_kit_event_wait(&c->ev, seq, 0, 1);
            return r;
        }
        /* the workers are behind: push back (fetch signals room; no record: poll) */
        fs_kit_event_wait(&c->ev, seq, room ? 1 : 1000, 0);
    }
}

void fs__mq_on_message(struct mosquitto *m, void *obj, const struct mosquitto_message *msg,
                       const mosquitto_property *props)
{
    mq_conn *c = obj;
    mq_sub *s = c->sub;
    if (fs_adapter_log_enabled(FS_LOG_DEBUG))
        fs_adapter_log(FS_LOG_DEBUG, MQ_COMPONENT, "%s: mid %d on %s (%.*s)", c->client_id,
                       msg->mid, msg->topic, msg->payloadlen < 16 ? msg->payloadlen : 16,
                       (const char *)msg->payload);
    mq_props p; /* the common case has none: nothing to decode, copy or free */
    if (props && fs__mq_props_read(props, &p)) {
        abandon(s, m, msg->qos, "out of memory");
        return;
    }
    mrec *r = wait_record(s, c);
    int rc = r ? rec_fill(s, r, msg, props ? &p : NULL) : FS_OK;
    if (props)
        fs__mq_props_free(&p); /* copied */
    if (!r || rc) {
        if (r) {
            atomic_store_explicit(&r->refs, 1, memory_order_relaxed);
            rec_unref(s, r);
            fs_adapter_log(FS_LOG_ERROR, MQ_COMPONENT, "%s: out of memory for a message",
                           s->filter);
        }
        abandon(s, m, msg->qos, r ? "out of memory" : "stopping");
        return;
    }
    r->lane = c;
    atomic_fetch_add_explicit(&s->q_len, 1, memory_order_relaxed);
    fs_kit_ring_push(&s->queue, r->index); /* never full: one cell per record */
    fs_kit_event_signal(&s->ready, 1);
    if (!r->gated)
        return;
    /* At least once: the PUBACK libmosquitto queued leaves when we return. */
    if (wait_settled(s, c, r))
        rec_unref(s, r); /* acked (the core may still hold it) or released */
    else
        abandon(s, m, msg->qos, "stopping");
}

/* (Re)subscribe on a new connection unless the server kept the session's subscription. */
void fs__mq_sub_on_connect(mq_conn *c)
{
    mq_sub *s = c->sub;
    pthread_mutex_lock(&c->mu);
    bool need = !c->session_present || c->subscribed == 0;
    pthread_mutex_unlock(&c->mu);
    if (!need)
        return;
    int opts = 0;
    if (c->b->version == FS_MQTT_V5) {
        opts |= MQTT_SUB_OPT_SEND_RETAIN_NEW; /* a renewed subscription does not repeat them */
        if (s->no_local)
            opts |= MQTT_SUB_OPT_NO_LOCAL;
    }
    int mid = 0;
    int rc = mosquitto_subscribe_v5(c->m, &mid, s->filter, s->qos, opts, NULL);
    pthread_mutex_lock(&c->mu);
    c->sub_mid = mid;
    if (rc) {
        c->sub_granted = MQTT_RC_UNSPECIFIED;
        pthread_cond_broadcast(&c->cv);
    }
    pthread_mutex_unlock(&c->mu);
    if (rc)
        fs_adapter_log(FS_LOG_ERROR, MQ_COMPONENT, "cannot subscribe to %s: %s", s->filter,
                       mosquitto_strerror(rc));
}

/* ------------------------------------------------------------------------ */
/* Operations                                                               */

int fs__mq_subscribe(void *impl, fs_subscribe_spec *spec, void **sub_out)
{
    mq_broker *b = impl;
    static const fs_mqtt_subscriber_options defaults = FS_MQTT_SUBSCRIBER_OPTIONS_INIT;
    const fs_mqtt_subscriber_options *o = spec->broker_options ? spec->broker_options : &defaults;
    if (o->qos < 0 || o->qos > 2)
        return fs_adapter_error(FS_EINVAL, "mqtt: subscribe to %s: QoS %d (0, 1 or 2)",
                                spec->source, o->qos);
    if (o->shared && (!*o->shared || strpbrk(o->shared, "/+#")))
        return fs_adapter_error(FS_EINVAL,
                                "mqtt: shared group '%s' must be non-empty, "
                                "without '/', '+' or '#'",
                                o->shared);
    if (o->shared && strncmp(spec->source, "$share/", 7) == 0)
        return fs_adapter_error(FS_EINVAL, "mqtt: %s is already a shared subscription",
                                spec->source);
    bool gate = !spec->reply_inbox && o->qos > 0 && spec->ack_policy != FS_ACK_POLICY_ACK_FIRST;
    if (gate && o->qos == 2) /* at most once for the handler: say so (docs/brokers/mqtt.md) */
        fs_adapter_log(FS_LOG_WARN, MQ_COMPONENT,
                       "%s: QoS 2 is acknowledged on receipt (libmosquitto sends PUBREC before "
                       "the handler runs and keeps the message in memory only): a consumer that "
                       "dies mid-handler, or stops, loses it and the messages received behind "
                       "it; subscribe "
                       "at QoS 1 for at least once (PUBACK after the handler), or say ACK_FIRST "
                       "to accept this",
                       spec->source);
    unsigned conc = spec->concurrency ? spec->concurrency : 1;
    unsigned nlanes = gate && conc > 1 ? (conc < MQ_MAX_LANES ? conc : MQ_MAX_LANES) : 1;
    mq_sub *s = calloc(1, sizeof *s);
    mq_conn *lanes = calloc(nlanes, sizeof *lanes);
    char id[300], group[310];
    pthread_mutex_lock(&b->mu);
    unsigned index =
        spec->reply_inbox ? ++b->inbox_seq : ++b->sub_seq; /* inboxes apart: stable ids */
    pthread_mutex_unlock(&b->mu);
    if (o->client_id)
        snprintf(id, sizeof id, "%s", o->client_id);
    else if (spec->reply_inbox)
        snprintf(id, sizeof id, "%s-reply-%u", b->client_id, index);
    else
        snprintf(id, sizeof id, "%s-%u", b->client_id, index);
    /* Lanes share out the messages in a group named after the subscription's client id. */
    bool own_group = nlanes > 1 && !o->shared && strncmp(spec->source, "$share/", 7) != 0;
    snprintf(group, sizeof group, "fs-%s", id);
    for (char *g = group; *g; g++)
        if (*g == '/' || *g == '+' || *g == '#')
            *g = '_';
    const char *share = o->shared ? o->shared : own_group ? group : NULL;
    size_t n = strlen(spec->source) + (share ? strlen(share) + 9 : 1);
    if (s)
        s->filter = malloc(n);
    if (!s || !lanes || !s->filter) {
        if (s)
            free(s->filter);
        free(s);
        free(lanes);
        return fs_adapter_error(FS_ENOMEM, "mqtt: out of memory");
    }
    if (share)
        snprintf(s->filter, n, "$share/%s/%s", share, spec->source);
    else
        memcpy(s->filter, spec->source, n);
    const char *why = fs__mq_filter_problem(s->filter);
    if (why) {
        int rc = fs_adapter_error(FS_EINVAL, "mqtt: cannot subscribe to '%s': %s", s->filter, why);
        free(s->filter);
        free(s);
        free(lanes);
        return rc;
    }
    s->b = b;
    s->index = index;
    s->qos = spec->reply_inbox ? 1 : o->qos;
    s->no_local = o->no_local;
    s->reply_inbox = spec->reply_inbox;
    s->gate = gate;
    s->q_max = conc < 16 ? 32 : 2 * (size_t)conc;
    /*
     * In flight at most: queued, held by the workers (a batch each), waited
     * on by the lanes. Past MQ_MAX_RECORDS (huge batches) the network thread
     * waits for a record, as it waits for room: batches end on their timeout.
     */
    size_t batch = spec->batch_size ? spec->batch_size : 1, cap = s->q_max + conc * batch + nlanes;
    if (cap > MQ_MAX_RECORDS)
        cap = MQ_MAX_RECORDS;
    size_t ring_cap = 1;
    while (ring_cap < cap)
        ring_cap *= 2;
    s->rec_cap = (uint32_t)cap;
    s->recs = calloc(s->rec_cap, sizeof *s->recs);
    s->cells = calloc(2 * ring_cap, sizeof *s->cells);
    if (!s->recs || !s->cells) {
        free(s->recs);
        free(s->cells);
        free(s->filter);
        free(s);
        free(lanes);
        return fs_adapter_error(FS_ENOMEM, "mqtt: out of memory");
    }
    fs_kit_ring_init(&s->queue, s->cells, ring_cap);
    fs_kit_ring_init(&s->free, s->cells + ring_cap, ring_cap);
    /* FastStream's MQTT: nack does nothing (no state), reject is an ack. */
    spec->no_ack = s->qos == 0;
    /* a filter without wildcards, not a shared one given by the user: every message has its topic
     */
    spec->fixed_source = strncmp(spec->source, "$share/", 7) != 0 && !strpbrk(spec->source, "+#");
    spec->settle_as[FS_SETTLE_NACKED] = FS_SETTLE_NONE;
    spec->settle_as[FS_SETTLE_REJECTED] = FS_SETTLE_ACKED;
    /*
     * PUBACKs go out in arrival order without the core's ordered settlement:
     * each connection of a gated subscription has one message out at a time.
     * (Asking for it would cost a fetch timeout per message: the core holds
     * its order lock across a blocking fetch, whose next message waits for
     * this one's acknowledgement.)
     */
    spec->ordered_settle = false;
    s->lanes = lanes;
    s->nlanes = nlanes;
    bool oom = false;
    for (unsigned i = 0; i < nlanes; i++) {
        fs__mq_conn_init(&lanes[i], b, s);
        char lane_id[320];
        if (i)
            snprintf(lane_id, sizeof lane_id, "%s.%u", id, i + 1);
        else
            snprintf(lane_id, sizeof lane_id, "%s", id);
        lanes[i].client_id = strdup(lane_id);
        oom = oom || !lanes[i].client_id;
    }
    pthread_mutex_lock(&b->mu);
    s->next = b->subs;
    b->subs = s;
    pthread_mutex_unlock(&b->mu);
    if (oom) {
        fs__mq_unsubscribe(b, s);
        return fs_adapter_error(FS_ENOMEM, "mqtt: out of memory");
    }
    *sub_out = s;
    return FS_OK;
}

/* Connect one lane and wait for its subscription. */
static int lane_start(mq_sub *s, mq_conn *c)
{
    mq_broker *b = s->b;
    pthread_mutex_lock(&c->mu);
    c->subscribed = 0;
    c->sub_granted = -1;
    pthread_mutex_unlock(&c->mu);
    char *id = strdup(c->client_id);
    if (!id)
        return fs_adapter_error(FS_ENOMEM, "mqtt: out of memory");
    /* The reply inbox is private to this process: never a persistent session. */
    int rc = fs__mq_conn_open(c, id, s->reply_inbox ? true : b->clean_start);
    free(id);
    if (rc)
        return rc;
    struct timespec dl;
    fs__mq_deadline(&dl, b->connect_timeout_ms + 1000);
    pthread_mutex_lock(&c->mu);
    /*
     * Wait for the SUBACK, unless the server kept the session: it may then
     * deliver the session's messages first, and the network thread waits in
     * on_message for workers that start only after this returns.
     */
    while (c->sub_granted < 0 && !c->session_present)
        if (pthread_cond_timedwait(&c->cv, &c->mu, &dl) == ETIMEDOUT)
            break;
    int granted = c->sub_granted;
    bool kept = c->session_present;
    pthread_mutex_unlock(&c->mu);
    if (kept && granted < 0)
        granted = s->qos; /* a refusal is logged when the SUBACK comes */
    if (granted < 0)
        rc = fs_adapter_error(FS_ETIMEDOUT, "mqtt: no SUBACK for %s", s->filter);
    else if (granted >= 0x80)
        rc = fs_adapter_error(FS_EBROKER, "mqtt: subscription to %s refused: %s", s->filter,
                              mosquitto_reason_string(granted));
    if (rc)
        fs__mq_conn_close(c);
    return rc;
}

int fs__mq_sub_start(void *impl, void *sub)
{
    mq_broker *b = impl;
    mq_sub *s = sub;
    if (s->started)
        return FS_OK;
    if (atomic_load(&b->closed))
        return fs_adapter_error(FS_ECLOSED, "mqtt: broker closed");
    atomic_store_explicit(&s->stopping, false, memory_order_seq_cst);
    for (unsigned i = 0; i < s->nlanes; i++) {
        int rc = lane_start(s, &s->lanes[i]);
        if (rc) {
            while (i--)
                fs__mq_conn_close(&s->lanes[i]);
            return rc;
        }
    }
    s->started = true;
    return FS_OK;
}

void fs__mq_sub_stop(mq_sub *s)
{
    atomic_store_explicit(&s->stopping, true, memory_order_seq_cst);
    fs_kit_event_signal(&s->ready, INT_MAX);
    for (unsigned i = 0; i < s->nlanes; i++)
        fs_kit_event_signal(&s->lanes[i].ev, INT_MAX);
}

/* Every worker exited: close the connection, drop what was queued and not taken. */
void fs__mq_sub_stopped(mq_sub *s)
{
    fs__mq_sub_stop(s);
    for (unsigned i = 0; i < s->nlanes; i++)
        fs__mq_conn_close(&s->lanes[i]);
    uint32_t idx; /* what no worker took: QoS 0 / ACK_FIRST, or abandoned by its lane */
    while (fs_kit_ring_pop(&s->queue, &idx, true))
        rec_unref(s, s->recs[idx]);
    atomic_store(&s->q_len, 0);
    s->started = false;
}

void fs__mq_unsubscribe(void *impl, void *sub)
{
    mq_broker *b = impl;
    mq_sub *s = sub;
    fs__mq_sub_stopped(s);
    pthread_mutex_lock(&b->mu);
    for (mq_sub **p = &b->subs; *p; p = &(*p)->next) {
        if (*p == s) {
            *p = s->next;
            break;
        }
    }
    pthread_mutex_unlock(&b->mu);
    for (unsigned i = 0; i < s->nlanes; i++)
        fs__mq_conn_destroy(&s->lanes[i]);
    free(s->lanes);
    rec_free_all(s);
    free(s->filter);
    free(s);
}

/* Take the queue's first record a worker may have (records abandoned by their lane are recycled).
 */
static mrec *try_take(mq_sub *s, bool *room)
{
    uint32_t idx;
    while (fs_kit_ring_pop(&s->queue, &idx, false)) {
        mrec *r = s->recs[idx];
        if (atomic_fetch_sub_explicit(&s->q_len, 1, memory_order_acq_rel) == s->q_max)
            *room = true; /* a network thread may wait for room */
        int queued = MR_QUEUED;
        if (atomic_compare_exchange_strong_explicit(&r->state, &queued, MR_OUT,
                                                    memory_order_acq_rel, memory_order_acquire))
            return r;
        rec_unref(s, r); /* the queue's reference of an abandoned record */
    }
    return NULL;
}

/*
 * A worker stays registered as a sleeper for the whole wait (one count,
 * however often it wakes). The first sleep takes the whole timeout without
 * reading the clock; after a wake without a message (another worker took
 * it) the rest is counted from then, so a fetch may wait up to twice
 * its timeout while messages flow to other workers.
 */
int fs__mq_fetch(void *impl, void *sub, unsigned worker, int timeout_ms, fs_message **out)
{
    (void)impl;
    (void)worker;
    mq_sub *s = sub;
    bool room = false;
    mrec *r = NULL;
    int rc = FS_OK;
    if (atomic_load_explicit(&s->stopping, memory_order_acquire))
        return FS_ECLOSED;
    if (!(r = try_take(s, &room))) {
        atomic_fetch_add_explicit(&s->ready.waiters, 1, memory_order_seq_cst);
        uint64_t deadline = 0;
        int left = timeout_ms;
        bool slept = false;
        for (;;) {
            uint32_t seq = atomic_load_explicit(&s->ready.seq, memory_order_seq_cst);
            if (atomic_load_explicit(&s->stopping, memory_order_acquire)) {
                rc = FS_ECLOSED;
                break;
            }
            if ((r = try_take(s, &room)))
                break;
            if (slept && left > 0) { /* woken for nothing: count the rest from now on */
                if (!deadline)
                    deadline = fs_kit_deadline_ns(timeout_ms);
                left = fs_kit_ms_left(deadline);
            }
            if (left == 0) {
                rc = FS_ETIMEDOUT;
                break;
            }
            int w = fs_kit_futex_wait(&s->ready.seq, seq, left);
            if (w == ETIMEDOUT)
                left = 0;        /* one last look */
            slept = w != EAGAIN; /* EAGAIN: it did not sleep */
        }
        atomic_fetch_sub_explicit(&s->ready.waiters, 1, memory_order_relaxed);
    }
    if (rc == FS_ETIMEDOUT)
        for (unsigned i = 0; i < s->nlanes; i++) /* idle: look after the connections */
            fs__mq_conn_revive(&s->lanes[i]);
    if (rc)
        return rc;
    if (room)
        fs_kit_event_signal(&s->lanes[0].ev, INT_MAX);
    *out = &r->m;
    return FS_OK;
}
