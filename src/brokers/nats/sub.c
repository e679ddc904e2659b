/*
 * Subscriptions: core and JetStream push (workers call NextMsg on one
 * synchronous natsSubscription), JetStream pull (leader/followers around
 * Fetch), settlement as publishes on the ack subject, and the keep-alive
 * thread that sends +WPI for deliveries held longer than half the AckWait.
 */
#include "internal.h"
#include "kit/str.h"

#include <errno.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define FETCH_SLICE_MS 500 /* longest one Fetch request waits */
/*
 * A record's touched_ns: 0 free, else the time it was delivered or last got
 * +WPI, SETTLED once acknowledged, BUSY while a +WPI is being sent for it
 * (its natsMsg must not go away meanwhile: release and settle wait).
 */
#define SETTLED UINT64_MAX
#define BUSY (UINT64_MAX - 1)

/* ------------------------------------------------------------------------ */
/* Records                                                                  */

static void rec_release(fs_message *m);

/*
 * Records, without a lock: released ones are pushed on free_stack by any
 * thread; a taker (a worker for its own list, the pull fetcher under mu for
 * free_list) takes the whole stack at once into its list, so there is no
 * ABA problem. Every record ever made is also on the `all` list (never
 * shortened until the subscription is freed), which the keep-alive scans.
 */
static nrec *rec_take(nsub *s, nrec **local)
{
    nrec *r = *local;
    if (!r)
        r = atomic_exchange_explicit(&s->free_stack, NULL, memory_order_acquire);
    if (r) {
        *local = r->next;
        return r;
    }
    r = calloc(1, sizeof *r);
    if (!r)
        return NULL;
    r->sub = s;
    nrec *head = atomic_load_explicit(&s->all, memory_order_relaxed);
    do
        r->all_next = head;
    while (!atomic_compare_exchange_weak_explicit(&s->all, &head, r, memory_order_release,
                                                  memory_order_relaxed));
    return r;
}

/* A record for `worker` (core and push: the workers read concurrently). */
static nrec *rec_get_worker(nsub *s, unsigned worker)
{
    return rec_take(s, &s->worker_free[worker < s->workers ? worker : 0]);
}

static void rec_put(nsub *s, nrec *r)
{
    r->msg = NULL;
    nrec *head = atomic_load_explicit(&s->free_stack, memory_order_relaxed);
    do
        r->next = head;
    while (!atomic_compare_exchange_weak_explicit(&s->free_stack, &head, r, memory_order_release,
                                                  memory_order_relaxed));
}

/* Move touched_ns to `to` from any state but BUSY (waiting that out); the state it left. */
static uint64_t rec_mark(nrec *r, uint64_t to)
{
    uint64_t t = atomic_load_explicit(&r->touched_ns, memory_order_acquire);
    for (;;) {
        if (t == BUSY) {
            sched_yield(); /* a +WPI is being sent for it: a publish, short */
            t = atomic_load_explicit(&r->touched_ns, memory_order_acquire);
            continue;
        }
        if (atomic_compare_exchange_weak_explicit(&r->touched_ns, &t, to, memory_order_acq_rel,
                                                  memory_order_acquire))
            return t;
    }
}

static int ack_publish(nats_broker *b, natsMsg *msg, const char *body);

/* +WPI for a record delivered and not settled (t: its touched_ns seen): FS_OK if sent. */
static int rec_touch(nsub *s, nrec *r, uint64_t t, uint64_t now)
{
    if (t == 0 || t >= BUSY ||
        !atomic_compare_exchange_strong_explicit(&r->touched_ns, &t, BUSY, memory_order_acq_rel,
                                                 memory_order_relaxed))
        return FS_ECLOSED; /* free, settled, being touched, or just released */
    int rc = ack_publish(s->b, r->msg, "+WPI");
    atomic_store_explicit(&r->touched_ns, rc ? t : now, memory_order_release);
    return rc;
}

/* Wrap `msg` in `r` for the core. */
static int rec_fill(nsub *s, nrec *r, natsMsg *msg)
{
    fs_message_init(&r->m);
    r->msg = msg;
    r->sub = s;
    int rc = fs__nats_decode(msg, s->kind != NSUB_CORE, &r->hdrs, &r->m);
    r->m.raw = msg;
    r->m.release = rec_release;
    r->m.adapter_data = r;
    if (s->kind != NSUB_CORE) {
        uint32_t delivered;
        int64_t ts;
        const char *reply = natsMsg_GetReply(msg);
        bool known =
            s->ack_prefix && reply && strncmp(reply, s->ack_prefix, s->ack_prefix_len) == 0;
        if (known ? fs__nats_js_meta_tail(reply + s->ack_prefix_len, &delivered, &ts)
                  : fs__nats_js_meta(reply, &delivered, &ts)) {
            r->m.delivery_count = delivered;
            r->m.timestamp_ms = ts;
        }
        /* delivered: the keep-alive may read r->msg from here on */
        atomic_store_explicit(&r->touched_ns, fs_kit_now_ns(), memory_order_release);
    }
    return rc;
}

static void rec_release(fs_message *m)
{
    nrec *r = m->adapter_data;
    nsub *s = r->sub;
    natsMsg *msg = r->msg;
    if (s->kind != NSUB_CORE)
        rec_mark(r, 0); /* no +WPI for it any more (waits out one being sent) */
    rec_put(s, r);
    natsMsg_Destroy(msg);
}

/* ------------------------------------------------------------------------ */
/* Settlement: publishes on the ack subject                                 */

static int ack_publish(nats_broker *b, natsMsg *msg, const char *body)
{
    const char *reply = natsMsg_GetReply(msg);
    if (!reply || !*reply)
        return FS_OK; /* not a JetStream delivery: nothing to settle */
    int rc;
    natsConnection *nc = fs__nats_conn(b, NULL, &rc);
    if (!nc)
        return rc;
    natsStatus st = natsConnection_PublishString(nc, reply, body);
    return st == NATS_OK ? FS_OK : fs__nats_status(st, "acknowledgement");
}

int fs__nats_settle_one(fs_message *m, fs_settle_state op, unsigned delay_ms)
{
    nrec *r = m->adapter_data;
    if (!r || r->sub->kind == NSUB_CORE)
        return FS_OK;
    char nak[64];
    const char *body = "+ACK";
    if (op == FS_SETTLE_REJECTED) {
        body = "+TERM";
    } else if (op == FS_SETTLE_NACKED) {
        body = "-NAK";
        if (delay_ms) {
            snprintf(nak, sizeof nak, "-NAK {\"delay\": %llu}",
                     (unsigned long long)delay_ms * 1000000ull);
            body = nak;
        }
    }
    /* settled: no more +WPI for it (the keep-alive and in_progress skip it) */
    rec_mark(r, SETTLED);
    return ack_publish(r->sub->b, r->msg, body);
}

int fs__nats_in_progress(fs_message *m)
{
    size_t n = fs_message_count(m);
    int rc = FS_OK;
    for (size_t i = 0; i < n; i++) {
        fs_message *one = n == 1 && !fs_message_is_batch(m) ? m : fs_message_at(m, i);
        nrec *r = one->adapter_data;
        if (!r || r->sub->kind == NSUB_CORE)
            return fs_adapter_error(FS_EUNSUPPORTED, "nats: core NATS has no in-progress");
        uint64_t t = atomic_load_explicit(&r->touched_ns, memory_order_acquire);
        if (t == SETTLED || t == BUSY)
            continue; /* acknowledged already, or the keep-alive is sending one now */
        int one_rc = rec_touch(r->sub, r, t, fs_kit_now_ns());
        if (one_rc == FS_ECLOSED)
            continue;
        if (one_rc && !rc)
            rc = one_rc;
    }
    return rc;
}

/* ------------------------------------------------------------------------ */
/* Keep-alive: +WPI for deliveries held longer than half the AckWait        */

/* Every delivery of s (queued or handed out) held longer than `half`: +WPI. */
static void touch_all(nsub *s, uint64_t now, uint64_t half)
{
    for (nrec *r = atomic_load_explicit(&s->all, memory_order_acquire); r; r = r->all_next) {
        uint64_t t = atomic_load_explicit(&r->touched_ns, memory_order_acquire);
        if (t && t < BUSY && t <= now && now - t >= half)
            rec_touch(s, r, t, now);
    }
}

static void *keepalive_main(void *arg)
{
    nats_broker *b = arg;
    while (!atomic_load(&b->ka_quit)) {
        /* Tick: a quarter of the shortest AckWait, within [20 ms, 1 s]. */
        uint64_t tick_ms = 1000;
        pthread_mutex_lock(&b->mu);
        for (nsub *s = b->subs; s; s = s->next) {
            if (s->kind == NSUB_CORE || !s->ack_wait_ms)
                continue;
            uint64_t q = s->ack_wait_ms / 4;
            if (q < tick_ms)
                tick_ms = q < 20 ? 20 : q;
            uint64_t now = fs_kit_now_ns();
            uint64_t half = (uint64_t)s->ack_wait_ms * 500000u;
            touch_all(s, now, half);
        }
        pthread_mutex_unlock(&b->mu);
        struct timespec ts = fs_kit_deadline_ts((int)tick_ms);
        pthread_mutex_lock(&b->ka_mu);
        if (!atomic_load(&b->ka_quit))
            pthread_cond_timedwait(&b->ka_cv, &b->ka_mu, &ts);
        pthread_mutex_unlock(&b->ka_mu);
    }
    return NULL;
}

static int keepalive_start(nats_broker *b)
{
    pthread_mutex_lock(&b->ka_mu);
    int rc = FS_OK;
    if (!b->ka_running) {
        atomic_store(&b->ka_quit, false);
        int err = pthread_create(&b->ka_thread, NULL, keepalive_main, b);
        if (err)
            rc = fs_adapter_error(FS_ENOMEM, "nats: cannot start the keep-alive thread: %s",
                                  strerror(err));
        else
            b->ka_running = true;
    }
    pthread_mutex_unlock(&b->ka_mu);
    return rc;
}

void fs__nats_keepalive_stop(nats_broker *b)
{
    pthread_mutex_lock(&b->ka_mu);
    bool running = b->ka_running;
    b->ka_running = false;
    atomic_store(&b->ka_quit, true);
    pthread_cond_broadcast(&b->ka_cv);
    pthread_mutex_unlock(&b->ka_mu);
    if (running)
        pthread_join(b->ka_thread, NULL);
}

/* ------------------------------------------------------------------------ */
/* Subscribe / start / stop                                                 */

static void sub_free(nsub *s)
{
    if (!s)
        return;
    for (nrec *r = atomic_load(&s->all), *next; r; r = next) {
        next = r->all_next;
        fs__nats_hdrs_free(&r->hdrs);
        free(r);
    }
    free(s->worker_free);
    if (s->declare) {
        for (size_t i = 0; i < s->declare->subject_count; i++)
            free((char *)s->declare->subjects[i]);
        free((void *)s->declare->subjects);
        free((char *)s->declare->name);
        free(s->declare);
    }
    free(s->subject);
    free(s->queue);
    free(s->stream);
    free(s->durable);
    free(s->consumer);
    free(s->ack_prefix);
    free(s->backoff_ns);
    pthread_mutex_destroy(&s->mu);
    pthread_cond_destroy(&s->cv);
    free(s);
}

static fs_nats_stream_config *copy_stream(const fs_nats_stream_config *c, bool *oom)
{
    fs_nats_stream_config *d = calloc(1, sizeof *d);
    if (!d) {
        *oom = true;
        return NULL;
    }
    *d = *c;
    d->name = fs_kit_strdup_opt(c->name, oom);
    d->subjects = NULL;
    char **subs = c->subject_count ? calloc(c->subject_count, sizeof *subs) : NULL;
    if (c->subject_count && !subs)
        *oom = true;
    for (size_t i = 0; subs && i < c->subject_count; i++)
        subs[i] = fs_kit_strdup_opt(c->subjects[i], oom);
    d->subjects = (const char *const *)subs;
    d->subject_count = subs ? c->subject_count : 0;
    return d;
}

/*
 * JetStream redelivery: MaxDeliver = max_deliveries, and (when bounded) a
 * BackOff of AckWait + the settings' delay for each redelivery of a message
 * left unacknowledged (the server requires MaxDeliver > the BackOff's length,
 * so an unbounded consumer keeps the plain AckWait). A nack's delay goes with
 * the -NAK itself.
 */
static int set_redelivery(nsub *s, const fs_subscribe_spec *spec)
{
    const fs_redelivery *rd = &spec->redelivery;
    s->max_deliver = rd->max_deliveries;
    unsigned n = rd->max_deliveries ? rd->max_deliveries - 1 : 0;
    if (n > 16)
        n = 16;
    if (!n)
        return FS_OK;
    s->backoff_ns = calloc(n, sizeof *s->backoff_ns);
    if (!s->backoff_ns)
        return fs_adapter_error(FS_ENOMEM, "nats: out of memory");
    uint64_t delay = rd->delay_ms ? rd->delay_ms : 100;
    uint64_t cap = rd->max_delay_ms ? rd->max_delay_ms : 10000;
    for (unsigned i = 0; i < n; i++) {
        uint64_t d = delay << (i < 20 ? i : 20);
        if (d > cap)
            d = cap;
        s->backoff_ns[i] = (int64_t)(s->ack_wait_ms + d) * 1000000;
    }
    s->backoff_len = (int)n;
    return FS_OK;
}

/* A subject with a wildcard token ("*" or ">"), whose messages carry other subjects. */
static bool has_wildcard(const char *subject)
{
    for (const char *t = subject; *t;) {
        const char *dot = strchr(t, '.');
        size_t len = dot ? (size_t)(dot - t) : strlen(t);
        if (len == 1 && (*t == '*' || *t == '>'))
            return true;
        if (!dot)
            break;
        t = dot + 1;
    }
    return false;
}

int fs__nats_subscribe(void *impl, fs_subscribe_spec *spec, void **sub_out)
{
    nats_broker *b = impl;
    const fs_nats_subscriber_options *o = spec->broker_options;
    static const fs_nats_subscriber_options defaults = FS_NATS_SUBSCRIBER_OPTIONS_INIT;
    if (!o || spec->reply_inbox)
        o = &defaults;
    int rc = fs__nats_check_subject(spec->source, true, "subscribe");
    if (rc)
        return rc;
    FS_CHECK_ARG(o->kind >= FS_NATS_CONSUMER_DEFAULT && o->kind <= FS_NATS_CONSUMER_PUSH,
                 "nats: subscribe %s: unknown consumer kind %d", spec->source, (int)o->kind);
    FS_CHECK_ARG(o->stream || o->kind == FS_NATS_CONSUMER_DEFAULT,
                 "nats: subscribe %s: a pull or push consumer needs a stream", spec->source);
    FS_CHECK_ARG(o->deliver >= FS_NATS_DELIVER_ALL && o->deliver <= FS_NATS_DELIVER_LAST,
                 "nats: subscribe %s: unknown deliver policy %d", spec->source, (int)o->deliver);
    FS_CHECK_ARG(!o->stream || (*o->stream && !strpbrk(o->stream, ".*> ")),
                 "nats: subscribe %s: bad stream name '%s'", spec->source,
                 o->stream ? o->stream : "");
    FS_CHECK_ARG(!o->durable || (*o->durable && !strpbrk(o->durable, ".*> ")),
                 "nats: subscribe %s: bad durable name '%s'", spec->source,
                 o->durable ? o->durable : "");
    FS_CHECK_ARG(!o->declare_stream || (o->stream && o->declare_stream->name &&
                                        strcmp(o->declare_stream->name, o->stream) == 0),
                 "nats: subscribe %s: declare_stream must be the stream '%s'", spec->source,
                 o->stream ? o->stream : "(none)");
    FS_CHECK_ARG(!o->queue || (*o->queue && !strpbrk(o->queue, " \t\r\n")),
                 "nats: subscribe %s: bad queue group", spec->source);
    nsub *s = calloc(1, sizeof *s);
    if (!s)
        return fs_adapter_error(FS_ENOMEM, "nats: out of memory");
    pthread_mutex_init(&s->mu, NULL);
    fs_kit_cond_init_monotonic(&s->cv);
    s->b = b;
    s->reply_inbox = spec->reply_inbox;
    s->kind = !o->stream ? NSUB_CORE : o->kind == FS_NATS_CONSUMER_PUSH ? NSUB_PUSH : NSUB_PULL;
    bool oom = false;
    s->subject = fs_kit_strdup_opt(spec->source, &oom);
    s->queue = fs_kit_strdup_opt(o->queue, &oom);
    s->stream = fs_kit_strdup_opt(o->stream, &oom);
    s->durable = fs_kit_strdup_opt(o->durable, &oom);
    if (o->declare_stream)
        s->declare = copy_stream(o->declare_stream, &oom);
    s->deliver = o->deliver;
    s->concurrency = spec->concurrency ? spec->concurrency : 1;
    s->workers = s->concurrency;
    s->worker_free = calloc(s->workers, sizeof *s->worker_free);
    if (!s->worker_free) {
        s->workers = 0;
        oom = true;
    }
    s->batch_size = spec->batch_size;
    s->ack_wait_ms = o->ack_wait_ms ? o->ack_wait_ms : 30000;
    s->pull_batch = o->pull_batch      ? o->pull_batch
                    : spec->batch_size ? (unsigned)spec->batch_size
                                       : 64;
    if (s->pull_batch < s->concurrency)
        s->pull_batch = s->concurrency;
    s->max_ack_pending = o->max_ack_pending ? o->max_ack_pending : 1000;
    if (s->max_ack_pending < s->pull_batch)
        s->max_ack_pending = s->pull_batch;
    if (oom) {
        sub_free(s);
        return fs_adapter_error(FS_ENOMEM, "nats: out of memory");
    }
    if (s->kind != NSUB_CORE && (rc = set_redelivery(s, spec))) {
        sub_free(s);
        return rc;
    }
    spec->no_ack = s->kind == NSUB_CORE;
    /* core: every message has the subscribed subject (JetStream: whatever the consumer filters) */
    spec->fixed_source = s->kind == NSUB_CORE && !has_wildcard(spec->source);
    pthread_mutex_lock(&b->mu);
    s->next = b->subs;
    b->subs = s;
    pthread_mutex_unlock(&b->mu);
    *sub_out = s;
    return FS_OK;
}

int fs__nats_sub_start(void *impl, void *sub)
{
    nats_broker *b = impl;
    nsub *s = sub;
    if (s->ns)
        return FS_OK;
    atomic_store(&s->stopping, false);
    if (s->kind != NSUB_CORE) {
        int rc = fs__nats_consumer_ensure(s);
        return rc ? rc : keepalive_start(b);
    }
    int rc;
    natsConnection *nc = fs__nats_conn(b, NULL, &rc);
    if (!nc)
        return rc;
    natsSubscription *ns = NULL;
    natsStatus st = s->queue ? natsConnection_QueueSubscribeSync(&ns, nc, s->subject, s->queue)
                             : natsConnection_SubscribeSync(&ns, nc, s->subject);
    if (st != NATS_OK)
        return fs__nats_status(st, "subscribe");
    /* Bounded by memory, not by nats.c's 65536 messages: a burst is not dropped. */
    natsSubscription_SetPendingLimits(ns, 4 * 1024 * 1024, 1024 * 1024 * 1024);
    st = natsConnection_Flush(nc); /* the server knows the interest when start returns */
    if (st != NATS_OK) {
        natsSubscription_Destroy(ns);
        return fs__nats_status(st, "subscribe (flush)");
    }
    s->ns = ns;
    return FS_OK;
}

/* Give back (-NAK) what was fetched but not handed out (mu held). */
static void give_back_queue(nsub *s)
{
    while (s->q_head) {
        nrec *r = s->q_head;
        s->q_head = r->next;
        natsMsg *msg = r->msg;
        rec_mark(r, 0);
        ack_publish(s->b, msg, "-NAK");
        rec_put(s, r);
        natsMsg_Destroy(msg);
    }
    s->q_tail = NULL;
    s->q_len = 0;
}

void fs__nats_sub_stop(nsub *s)
{
    atomic_store(&s->stopping, true);
    pthread_mutex_lock(&s->mu);
    pthread_cond_broadcast(&s->cv);
    give_back_queue(s);
    pthread_mutex_unlock(&s->mu);
    /*
     * Push: what the server already delivered and no worker took goes back
     * too. Drain first (the server stops delivering here), so that it does
     * not redeliver what we give back into this subscription.
     */
    if (s->kind == NSUB_PUSH && s->ns && natsSubscription_Drain(s->ns) == NATS_OK) {
        natsMsg *m = NULL;
        for (int i = 0; i < 100000 && natsSubscription_NextMsg(&m, s->ns, 1) == NATS_OK; i++) {
            ack_publish(s->b, m, "-NAK");
            natsMsg_Destroy(m);
        }
    }
    /* Wakes NextMsg and Fetch; a bound consumer is not deleted (we created it). */
    if (s->ns)
        natsSubscription_Unsubscribe(s->ns);
}

void fs__nats_sub_stopped(nsub *s)
{
    if (s->ns) {
        natsSubscription_Destroy(s->ns);
        s->ns = NULL;
    }
}

void fs__nats_unsubscribe(void *impl, void *sub)
{
    nats_broker *b = impl;
    nsub *s = sub;
    pthread_mutex_lock(&b->mu);
    for (nsub **pp = &b->subs; *pp; pp = &(*pp)->next) {
        if (*pp == s) {
            *pp = s->next;
            break;
        }
    }
    pthread_mutex_unlock(&b->mu);
    if (s->ns) {
        fs__nats_sub_stop(s);
        fs__nats_sub_stopped(s);
    }
    fs__nats_consumer_forget(s);
    sub_free(s);
}

/* ------------------------------------------------------------------------ */
/* Fetch                                                                    */

/* A fetch error outside stop: logged once per outage, then a pause (no spin). */
static int fetch_trouble(nsub *s, natsStatus st, int timeout_ms)
{
    pthread_mutex_lock(&s->mu);
    bool first = !atomic_exchange(&s->fetch_error_logged, true);
    pthread_mutex_unlock(&s->mu);
    if (first)
        fs_adapter_log(FS_LOG_WARN, FS_NATS_COMPONENT, "subscription %s: %s; retrying", s->subject,
                       natsStatus_GetText(st));
    fs_kit_sleep_ms((unsigned)(timeout_ms < 200 ? (timeout_ms > 0 ? timeout_ms : 0) : 200));
    return fs_adapter_error(FS_ETIMEDOUT, "nats: %s: %s", s->subject, natsStatus_GetText(st));
}

static void fetch_ok(nsub *s)
{
    if (atomic_load_explicit(&s->fetch_error_logged, memory_order_relaxed) &&
        atomic_exchange(&s->fetch_error_logged, false)) {
        fs_adapter_log(FS_LOG_INFO, FS_NATS_COMPONENT, "subscription %s: receiving again",
                       s->subject);
    }
}

/* Core and push: the next message of the synchronous subscription. */
static int next_msg(nsub *s, unsigned worker, int timeout_ms, fs_message **out)
{
    natsSubscription *ns = s->ns;
    if (!ns || atomic_load_explicit(&s->stopping, memory_order_relaxed))
        return FS_ECLOSED;
    natsMsg *msg = NULL;
    natsStatus st = natsSubscription_NextMsg(&msg, ns, timeout_ms < 0 ? 1000000000 : timeout_ms);
    if (st == NATS_TIMEOUT)
        return FS_ETIMEDOUT;
    if (st != NATS_OK) {
        if (atomic_load(&s->stopping))
            return FS_ECLOSED;
        if (st == NATS_SLOW_CONSUMER) { /* messages were dropped: say so, and go on */
            fs_adapter_log(FS_LOG_WARN, FS_NATS_COMPONENT,
                           "subscription %s: slow consumer, messages dropped", s->subject);
            return FS_ETIMEDOUT;
        }
        return fetch_trouble(s, st, timeout_ms);
    }
    nrec *r = rec_get_worker(s, worker);
    if (r)
        fetch_ok(s);
    if (!r) {
        natsMsg_Destroy(msg); /* JetStream redelivers it after the AckWait */
        return fs_adapter_error(FS_ENOMEM, "nats: out of memory");
    }
    rec_fill(s, r, msg);
    *out = &r->m;
    return FS_OK;
}

/* Pull: queue what one Fetch brought (mu held); NAK it back when stopping. */
static void enqueue(nsub *s, natsMsgList *list)
{
    for (int i = 0; i < list->Count; i++) {
        natsMsg *msg = list->Msgs[i];
        list->Msgs[i] = NULL;
        nrec *r = atomic_load(&s->stopping) ? NULL : rec_take(s, &s->free_list);
        if (!r) {
            ack_publish(s->b, msg, "-NAK");
            natsMsg_Destroy(msg);
            continue;
        }
        rec_fill(s, r, msg);
        r->next = NULL;
        if (s->q_tail)
            s->q_tail->next = r;
        else
            s->q_head = r;
        s->q_tail = r;
        s->q_len++;
    }
}

/* Pop up to max queued records into out (mu held); they become in flight. */
static size_t dequeue(nsub *s, fs_message **out, size_t max)
{
    size_t n = 0;
    while (n < max && s->q_head) {
        nrec *r = s->q_head;
        s->q_head = r->next;
        if (!s->q_head)
            s->q_tail = NULL;
        s->q_len--;
        out[n++] = &r->m;
    }
    return n;
}

/*
 * Pull: take up to max messages. The worker that finds nothing queued and
 * nobody fetching fetches (outside the lock) for everyone. With `batch`,
 * a partial batch is completed until batch_timeout_ms after its first one.
 */
static int pull_take(nsub *s, fs_message **out, size_t max, bool batch, unsigned batch_timeout_ms,
                     int timeout_ms, size_t *n)
{
    *n = 0;
    uint64_t start = fs_kit_now_ns();
    uint64_t deadline = timeout_ms < 0 ? UINT64_MAX : start + (uint64_t)timeout_ms * 1000000u;
    uint64_t first_at = 0;
    int rc = FS_OK;
    pthread_mutex_lock(&s->mu);
    for (;;) {
        if (atomic_load(&s->stopping)) {
            rc = *n ? FS_OK : FS_ECLOSED;
            break;
        }
        if (s->q_head) {
            size_t got = dequeue(s, out + *n, max - *n);
            if (got && !*n)
                first_at = fs_kit_now_ns();
            *n += got;
            if (!batch || *n == max)
                break;
            deadline = first_at + (uint64_t)batch_timeout_ms * 1000000u;
        }
        uint64_t now = fs_kit_now_ns();
        if (now >= deadline) {
            rc = *n ? FS_OK : FS_ETIMEDOUT;
            break;
        }
        uint64_t left_ms = (deadline - now + 999999u) / 1000000u;
        if (!s->fetching) {
            s->fetching = true;
            natsSubscription *ns = s->ns;
            int want = (int)(batch ? (s->pull_batch > max - *n ? s->pull_batch : max - *n)
                                   : s->pull_batch);
            pthread_mutex_unlock(&s->mu);
            natsMsgList list = {0};
            jsErrCode jerr = 0;
            int wait = left_ms > FETCH_SLICE_MS ? FETCH_SLICE_MS : (int)left_ms;
            /* nats.c before 3.10 (its #749) writes past its array when more than
             * half of a batch already waits in the subscription (an earlier Fetch's
             * late deliveries, around a reconnect): then take one, served from there */
            int waiting = 0;
            if (ns && natsSubscription_GetPending(ns, &waiting, NULL) == NATS_OK && waiting > 0)
                want = 1;
            natsStatus st = ns ? natsSubscription_Fetch(&list, ns, want, wait, &jerr)
                               : NATS_INVALID_SUBSCRIPTION;
            pthread_mutex_lock(&s->mu);
            s->fetching = false;
            if (st == NATS_OK)
                fetch_ok(s);
            enqueue(s, &list);
            pthread_cond_broadcast(&s->cv);
            pthread_mutex_unlock(&s->mu);
            natsMsgList_Destroy(&list);
            if (st != NATS_OK && st != NATS_TIMEOUT && !atomic_load(&s->stopping)) {
                fetch_trouble(s, st, (int)left_ms);
                pthread_mutex_lock(&s->mu);
                if (!*n) {
                    pthread_mutex_unlock(&s->mu);
                    return FS_ETIMEDOUT;
                }
                continue;
            }
            pthread_mutex_lock(&s->mu);
            continue;
        }
        s->waiting++;
        struct timespec ts = fs_kit_ts_at_ns(deadline);
        pthread_cond_timedwait(&s->cv, &s->mu, &ts);
        s->waiting--;
    }
    pthread_mutex_unlock(&s->mu);
    return rc;
}

int fs__nats_fetch(nsub *s, unsigned worker, int timeout_ms, fs_message **out)
{
    if (s->kind != NSUB_PULL)
        return next_msg(s, worker, timeout_ms, out);
    size_t n = 0;
    return pull_take(s, out, 1, false, 0, timeout_ms, &n);
}

int fs__nats_fetch_batch(nsub *s, unsigned worker, fs_message **out, size_t max,
                         unsigned batch_timeout_ms, int timeout_ms, size_t *n)
{
    *n = 0;
    if (s->kind == NSUB_PULL)
        return pull_take(s, out, max, true, batch_timeout_ms, timeout_ms, n);
    /* Core and push: the first message within timeout_ms, the rest within the batch timeout. */
    int rc = next_msg(s, worker, timeout_ms, &out[0]);
    if (rc)
        return rc;
    *n = 1;
    uint64_t deadline = fs_kit_now_ns() + (uint64_t)batch_timeout_ms * 1000000u;
    while (*n < max) {
        uint64_t now = fs_kit_now_ns();
        if (now >= deadline)
            break;
        int left = (int)((deadline - now) / 1000000u);
        if (left <= 0 || next_msg(s, worker, left, &out[*n]))
            break;
        (*n)++;
    }
    return FS_OK;
}
