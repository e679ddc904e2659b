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

static void rec_free_all(mrec *r)
{
    while (r) {
        mrec *next = r->next;
        free(r->arena);
        free(r->hdrs);
        free(r);
        r = next;
    }
}

/* Give a record back to the free list. Holds s->mu. */
static void rec_put(mq_sub *s, mrec *r)
{
    r->next = s->free_list;
    s->free_list = r;
}

/*
 * Drop a reference: the last one recycles the record, onto the stack of
 * returned records (no lock: pushes only; it is emptied at once, so no ABA).
 */
static void rec_unref(mq_sub *s, mrec *r)
{
    if (atomic_fetch_sub_explicit(&r->refs, 1, memory_order_acq_rel) != 1)
        return;
    mrec *top = atomic_load_explicit(&s->returned, memory_order_relaxed);
    do
        r->next = top;
    while (!atomic_compare_exchange_weak_explicit(&s->returned, &top, r, memory_order_release,
                                                  memory_order_relaxed));
}

/* A record to fill: from the free list, else the returned ones, else a new one. Holds s->mu. */
static mrec *rec_get(mq_sub *s)
{
    mrec *r = s->free_list;
    if (!r)
        r = atomic_exchange_explicit(&s->returned, NULL, memory_order_acquire);
    if (r) {
        s->free_list = r->next;
        return r;
    }
    return calloc(1, sizeof *r); /* warming up: the pool grows to what is in flight */
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

static int rec_fill(mq_sub *s, mrec *r, const struct mosquitto_message *msg, const mq_props *p)
{
    size_t tlen = strlen(msg->topic), blen = (size_t)msg->payloadlen;
    size_t need = tlen + 1 + blen + 1;
    if (p->count && p->count > r->hdr_cap) {
        fs_header *h = realloc(r->hdrs, p->count * sizeof *h);
        if (!h)
            return FS_ENOMEM;
        r->hdrs = h;
        r->hdr_cap = p->count;
    }
    if (p->content_type)
        need += strlen(p->content_type) + 1;
    if (p->response_topic)
        need += strlen(p->response_topic) + 1;
    if (p->correlation)
        need += 3 * (size_t)p->correlation_len + 1;
    for (size_t i = 0; i < p->count; i++)
        need += strlen(p->names[i]) + strlen(p->values[i]) + 2;
    if (need > r->arena_cap) {
        char *a = realloc(r->arena, need);
        if (!a)
            return FS_ENOMEM;
        r->arena = a;
        r->arena_cap = need;
    }
    fs_message *m = &r->m;
    fs_message_init(m);
    char *at = r->arena;
    r->info.topic = put_str(&at, msg->topic, tlen);
    r->info.filter = s->filter;
    r->info.qos = msg->qos;
    r->info.retain = msg->retain;
    r->info.mid = msg->qos ? msg->mid : 0;
    r->info.expiry_s = p->expiry_s;
    m->body = put_str(&at, msg->payload, blen);
    m->body_len = blen;
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
    m->source = r->info.topic;
    m->raw = &r->info;
    m->release = rec_release;
    m->adapter_data = r;
    r->s = s;
    r->next = NULL;
    r->state = MR_QUEUED;
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

/* Unlink a record never handed out from the queue. Holds s->mu. */
static void queue_unlink(mq_sub *s, mrec *r)
{
    mrec **pp = &s->q_head, *prev = NULL;
    while (*pp != r) {
        prev = *pp;
        pp = &(*pp)->next;
    }
    *pp = r->next;
    if (s->q_tail == r)
        s->q_tail = prev;
    s->q_len--;
}

/*
 * Wait (on the network thread) until the core settled or released `r`:
 * true then; false when the subscription stopped before a worker took it
 * (it is taken back from the queue and recycled: not to be acknowledged).
 */
static bool wait_settled(mq_sub *s, mq_conn *c, mrec *r)
{
    for (;;) {
        uint32_t seq = fs_kit_event_prepare(&c->ev);
        bool done = atomic_load_explicit(&r->flags, memory_order_acquire) != 0;
        bool stopping = atomic_load_explicit(&s->stopping, memory_order_acquire);
        if (!done && stopping) {
            pthread_mutex_lock(&s->mu);
            bool queued = r->state == MR_QUEUED;
            if (queued) {
                queue_unlink(s, r);
                rec_put(s, r); /* nobody else holds it */
            }
            pthread_mutex_unlock(&s->mu);
            if (queued) {
                fs_kit_event_wait(&c->ev, seq, 0, 1);
                return false;
            }
        }
        /* Stopping with the message out: its handler finishes first (the core waits for it). */
        fs_kit_event_wait(&c->ev, seq, stopping ? 50 : 1000, done);
        if (done)
            return true;
    }
}

/* Wait (on the network thread, holding s->mu) until the queue has room or the subscription stops.
 */
static void wait_room(mq_sub *s, mq_conn *c)
{
    while (!atomic_load_explicit(&s->stopping, memory_order_acquire) && s->q_len >= s->q_max) {
        uint32_t seq = fs_kit_event_prepare(&c->ev);
        pthread_mutex_unlock(&s->mu);
        fs_kit_event_wait(&c->ev, seq, 1000, 0);
        pthread_mutex_lock(&s->mu);
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
    mq_props p;
    if (!props) { /* the common case: nothing to decode, nothing to free */
        memset(&p, 0, sizeof p);
    } else if (fs__mq_props_read(props, &p)) {
        abandon(s, m, msg->qos, "out of memory");
        return;
    }
    /* One critical section: a record from the free list, filled (a copy), queued. */
    pthread_mutex_lock(&s->mu);
    wait_room(s, c); /* the workers are behind: push back */
    bool stopping = atomic_load_explicit(&s->stopping, memory_order_acquire);
    mrec *r = NULL;
    int rc = FS_OK;
    if (!stopping) {
        r = rec_get(s);
        rc = r ? rec_fill(s, r, msg, &p) : FS_ENOMEM;
    }
    if (rc || stopping) {
        if (r)
            rec_put(s, r);
        pthread_mutex_unlock(&s->mu);
        if (props)
            fs__mq_props_free(&p);
        if (rc)
            fs_adapter_log(FS_LOG_ERROR, MQ_COMPONENT, "%s: out of memory for a message",
                           s->filter);
        abandon(s, m, msg->qos, rc ? "out of memory" : "stopping");
        return;
    }
    r->lane = c;
    if (s->q_tail)
        s->q_tail->next = r;
    else
        s->q_head = r;
    s->q_tail = r;
    s->q_len++;
    pthread_mutex_unlock(&s->mu);
    if (props)
        fs__mq_props_free(&p); /* copied */
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
                       "dies mid-handler loses it and the messages received behind it; subscribe "
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
    /* FastStream's MQTT: nack does nothing (no state), reject is an ack. */
    spec->no_ack = s->qos == 0;
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
    pthread_mutex_init(&s->mu, NULL);
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
    pthread_mutex_lock(&s->mu);
    while (s->q_head) { /* never handed out: nobody else holds them */
        mrec *r = s->q_head;
        s->q_head = r->next;
        rec_put(s, r);
    }
    s->q_tail = NULL;
    s->q_len = 0;
    pthread_mutex_unlock(&s->mu);
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
    rec_free_all(s->free_list);
    rec_free_all(atomic_load(&s->returned));
    pthread_mutex_destroy(&s->mu);
    free(s->filter);
    free(s);
}

/* Take the queue's first record. Holds s->mu. */
static mrec *take(mq_sub *s, bool *room)
{
    mrec *r = s->q_head;
    if (!r)
        return NULL;
    s->q_head = r->next;
    if (!s->q_head)
        s->q_tail = NULL;
    *room = s->q_len-- == s->q_max; /* a network thread may wait for room */
    r->state = MR_OUT;
    return r;
}

/* Take the queue's first record unless it looks empty (no lock then). */
static mrec *try_take(mq_sub *s, bool *room)
{
    if (!atomic_load(&s->q_len))
        return NULL;
    pthread_mutex_lock(&s->mu);
    mrec *r = take(s, room);
    pthread_mutex_unlock(&s->mu);
    return r;
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
        for (;;) {
            uint32_t seq = atomic_load_explicit(&s->ready.seq, memory_order_seq_cst);
            if (atomic_load_explicit(&s->stopping, memory_order_acquire)) {
                rc = FS_ECLOSED;
                break;
            }
            if ((r = try_take(s, &room)))
                break;
            if (left == 0) {
                rc = FS_ETIMEDOUT;
                break;
            }
            int w = fs_kit_futex_wait(&s->ready.seq, seq, left);
            if (w == ETIMEDOUT) {
                left = 0;                                /* one last look */
            } else if (w != EAGAIN && timeout_ms >= 0) { /* EAGAIN: it did not sleep */
                if (!deadline)
                    deadline = fs_kit_deadline_ns(timeout_ms);
                left = fs_kit_ms_left(deadline);
            }
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
