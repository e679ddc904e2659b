/*
 * Consuming: subscriptions, the delivery records (assembled by the owner
 * from basic.deliver + content frames), fetch for the workers, and
 * settlement (recorded by the worker, sent by the owner at release).
 */
#include "internal.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define NPOS ((size_t)-1)

rsub *fs__rmq_sub_by_channel(rmq_broker *b, amqp_channel_t ch)
{
    rsub *found = NULL;
    pthread_mutex_lock(&b->mu);
    for (rsub *s = b->subs; s; s = s->next)
        if (s->ch == ch) {
            found = s;
            break;
        }
    pthread_mutex_unlock(&b->mu);
    return found;
}

/* ------------------------------------------------------------------------ */
/* Subscribing                                                              */

int fs__rmq_subscribe(void *impl, fs_subscribe_spec *spec, void **sub_out)
{
    rmq_broker *b = impl;
    static const fs_rabbitmq_subscriber_options defaults = FS_RABBITMQ_SUBSCRIBER_OPTIONS_INIT;
    const fs_rabbitmq_subscriber_options *o = spec->broker_options;
    if (!o)
        o = &defaults;
    if (!spec->source || !*spec->source)
        return fs_adapter_error(FS_EINVAL, "rabbitmq: subscribe: empty queue name");
    rsub *s = calloc(1, sizeof *s);
    if (!s)
        return fs_adapter_error(FS_ENOMEM, "rabbitmq: out of memory");
    fs_rabbitmq_queue q = o->queue;
    if (spec->reply_inbox) {
        q.exclusive = true;
        q.auto_delete = true;
    }
    int rc = fs__rmq_topo_copy(&s->topo, &o->exchange, &q, spec->source);
    if (rc) {
        free(s);
        return rc;
    }
    s->b = b;
    s->queue = (char *)s->topo.q.name;
    s->concurrency = spec->concurrency ? spec->concurrency : 1;
    s->prefetch = o->prefetch ? o->prefetch : b->prefetch;
    if (!s->prefetch) { /* batches: the core gathers them with fetch */
        size_t per = spec->batch_size ? spec->batch_size * 2 : 4;
        s->prefetch = (unsigned)(s->concurrency * per < 10 ? 10 : s->concurrency * per);
    }
    s->no_ack = spec->ack_policy == FS_ACK_POLICY_ACK_FIRST;
    s->reply_inbox = spec->reply_inbox;
    spec->no_ack = s->no_ack;
    if ((rc = fs_kit_queue_init(&s->q, 1))) {
        fs__rmq_topo_free(&s->topo);
        free(s);
        return rc;
    }
    fs_kit_pool_init(&s->pool, sizeof(rrec));
    pthread_mutex_lock(&b->mu);
    /* the lowest channel number free from RMQ_CH_SUB0 on */
    amqp_channel_t ch = RMQ_CH_SUB0;
    for (bool again = true; again;) {
        again = false;
        for (rsub *t = b->subs; t; t = t->next)
            if (t->ch == ch) {
                ch++;
                again = true;
            }
    }
    s->ch = ch;
    s->next = b->subs;
    b->subs = s;
    pthread_mutex_unlock(&b->mu);
    *sub_out = s;
    return FS_OK;
}

/* Owner: open the channel, declare, basic.qos, basic.consume. */
int fs__rmq_sub_consume(rconn *c, rsub *s, char *err, size_t n)
{
    int rc;
    if (!c->st) {
        snprintf(err, n, "rabbitmq: not connected");
        return FS_EIO;
    }
    if (!s->ch_open) {
        if ((rc = fs__rmq_channel_open(c, s->ch, err, n)))
            return rc;
        s->ch_open = true;
    }
    if ((rc = fs__rmq_topo_declare(c, s->ch, &s->topo, err, n)))
        return rc;
    if (!s->no_ack) {
        amqp_basic_qos(c->st, s->ch, 0, (uint16_t)(s->prefetch > 65535 ? 65535 : s->prefetch), 0);
        if ((rc = fs__rmq_rpc_error(c, s->ch, "basic.qos", err, n)))
            return rc;
    }
    amqp_basic_consume_ok_t *ok =
        amqp_basic_consume(c->st, s->ch, amqp_cstring_bytes(s->queue), amqp_empty_bytes, 0,
                           s->no_ack, s->topo.q.exclusive && s->reply_inbox, amqp_empty_table);
    char what[300];
    snprintf(what, sizeof what, "consuming from queue '%s'", s->queue);
    if ((rc = fs__rmq_rpc_error(c, s->ch, what, err, n)))
        return rc;
    snprintf(s->ctag, sizeof s->ctag, "%.*s", ok ? (int)ok->consumer_tag.len : 0,
             ok ? (char *)ok->consumer_tag.bytes : "");
    s->active = true;
    return FS_OK;
}

static int start_call(rconn *c, rcall *call)
{
    rsub *s = call->arg;
    s->want = true;
    if (s->active || !c->st)
        return FS_OK;
    int rc = fs__rmq_sub_consume(c, s, call->err, sizeof call->err);
    if (rc)
        s->want = false;
    return rc;
}

int fs__rmq_sub_start(void *impl, void *sub)
{
    rmq_broker *b = impl;
    rsub *s = sub;
    atomic_store(&s->stopping, false);
    fs_kit_queue_open(&s->q);
    rcall call;
    call.arg = s;
    call.async = false;
    return fs__rmq_call(b, start_call, &call);
}

static int stop_call(rconn *c, rcall *call)
{
    rsub *s = call->arg;
    s->want = false;
    if (s->active && c->st) {
        amqp_basic_cancel(c->st, s->ch, amqp_cstring_bytes(s->ctag));
        fs__rmq_rpc_error(c, s->ch, "basic.cancel", call->err, sizeof call->err);
    }
    s->active = false;
    return FS_OK;
}

int fs__rmq_sub_stop(rmq_broker *b, rsub *s)
{
    atomic_store(&s->stopping, true);
    fs_kit_queue_close(&s->q); /* wakes the waiting workers */
    if (!b->conn.thread_started)
        return FS_OK;
    rcall call;
    call.arg = s;
    call.async = false;
    return fs__rmq_call(b, stop_call, &call);
}

/* What a pooled record owns (the pool frees the record). */
static void rec_fini(void *rec)
{
    rrec *r = rec;
    fs_kit_buf_free(&r->arena);
    free(r->hdrs);
}

static rrec *rec_of(fs_kit_qnode *n)
{
    return (rrec *)(void *)((char *)n - offsetof(rrec, qn));
}

/* Take every queued delivery; each goes to `fn` (NULL: back to the pool). */
static void drain_queue(rconn *c, rsub *s, void (*fn)(rconn *, rsub *, rrec *))
{
    fs_kit_qnode *n = fs_kit_queue_drain(&s->q, NULL);
    while (n) {
        fs_kit_qnode *next = n->next;
        rrec *r = rec_of(n);
        if (fn)
            fn(c, s, r);
        fs_kit_pool_put(&s->pool, r);
        n = next;
    }
}

/* Owner: forget the subscription (the core released every message of it). */
static int remove_call(rconn *c, rcall *call)
{
    rsub *s = call->arg;
    rmq_broker *b = c->b;
    for (rrec **pp = &c->delayed; *pp;) { /* nacks still waiting: send them now */
        rrec *r = *pp;
        if (r->sub == s) {
            *pp = r->next;
            r->delay_done = true;
            fs__rmq_sub_release(c, r);
        } else {
            pp = &r->next;
        }
    }
    if (s->ch_open && c->st) {
        amqp_channel_close(c->st, s->ch, AMQP_REPLY_SUCCESS);
        s->ch_open = false;
    }
    pthread_mutex_lock(&b->mu);
    for (rsub **pp = &b->subs; *pp; pp = &(*pp)->next)
        if (*pp == s) {
            *pp = s->next;
            break;
        }
    pthread_mutex_unlock(&b->mu);
    return FS_OK;
}

void fs__rmq_unsubscribe(void *impl, void *sub)
{
    rmq_broker *b = impl;
    rsub *s = sub;
    if (b->conn.thread_started) {
        fs__rmq_sub_stop(b, s);
        rcall call;
        call.arg = s;
        call.async = false;
        fs__rmq_call(b, remove_call, &call);
    } else {
        pthread_mutex_lock(&b->mu);
        for (rsub **pp = &b->subs; *pp; pp = &(*pp)->next)
            if (*pp == s) {
                *pp = s->next;
                break;
            }
        pthread_mutex_unlock(&b->mu);
    }
    drain_queue(NULL, s, NULL);
    fs_kit_pool_put(&s->pool, s->filling);
    fs_kit_pool_destroy(&s->pool, rec_fini);
    fs_kit_queue_destroy(&s->q);
    fs__rmq_topo_free(&s->topo);
    free(s->dec.hdr_off);
    for (rlabel *l = s->labels, *next; l; l = next) {
        next = l->next;
        free(l);
    }
    free(s);
}

static void give_back(rconn *c, rsub *s, rrec *q)
{
    if (c->st && s->ch_open && q->gen == s->gen && !s->no_ack)
        amqp_basic_nack(c->st, s->ch, q->tag, 0, 1);
}

/* Owner: give the deliveries nobody fetched back to the server (basic.nack, requeue). */
static int giveback_call(rconn *c, rcall *call)
{
    drain_queue(c, call->arg, give_back);
    return FS_OK;
}

void fs__rmq_sub_giveback(rmq_broker *b, rsub *s)
{
    if (!b->conn.thread_started)
        return;
    rcall call;
    call.arg = s;
    call.async = false;
    fs__rmq_call(b, giveback_call, &call);
}

/* Owner: the connection or the channel is gone. */
void fs__rmq_sub_conn_lost(rsub *s)
{
    s->active = false;
    s->ch_open = false;
    s->gen++;
    fs_kit_pool_put(&s->pool, s->filling);
    s->filling = NULL;
    /* Deliveries not handed out yet: the server redelivers them. */
    drain_queue(NULL, s, NULL);
}

/* ------------------------------------------------------------------------ */
/* Deliveries (owner)                                                       */

static uint64_t hash_bytes(const void *p, size_t n)
{
    const unsigned char *s = p;
    uint64_t h = 1469598103934665603ull;
    for (size_t i = 0; i < n; i++)
        h = (h ^ s[i]) * 1099511628211ull;
    return h ? h : 1;
}

static void rec_release(fs_message *m);

/*
 * The kept label of delivery dv (the owner thread's): the last one used
 * when it matches (the usual case: a queue's deliveries share their
 * exchange and routing key), else another kept one, else a new one while
 * fewer than RMQ_LABELS are kept. NULL: the label goes in the record.
 */
static const rlabel *label_of(rsub *s, const amqp_basic_deliver_t *dv)
{
    size_t ex = dv->exchange.len, rk = dv->routing_key.len, pre = ex ? ex + 1 : 8;
    rlabel **pp = &s->labels;
    for (rlabel *l; (l = *pp); pp = &l->next) {
        if (l->ex_len == ex && l->rk_len == rk &&
            (!ex || !memcmp(l->str, dv->exchange.bytes, ex)) &&
            !memcmp(l->str + pre, dv->routing_key.bytes, rk)) {
            if (pp != &s->labels) { /* to the front: the next delivery likely has it too */
                *pp = l->next;
                l->next = s->labels;
                s->labels = l;
            }
            return l;
        }
    }
    if (s->nlabels >= RMQ_LABELS)
        return NULL;
    rlabel *l = malloc(sizeof *l + pre + rk + 1);
    if (!l)
        return NULL; /* the record's arena then */
    memcpy(l->str, ex ? dv->exchange.bytes : "default", ex ? ex : 7);
    l->str[pre - 1] = '.';
    if (rk)
        memcpy(l->str + pre, dv->routing_key.bytes, rk);
    l->str[pre + rk] = '\0';
    l->id = fs_adapter_label_id();
    l->ex_len = ex;
    l->rk_len = rk;
    l->len = pre + rk;
    l->next = s->labels;
    s->labels = l;
    s->nlabels++;
    return l;
}

static void complete(rsub *s, rrec *r, fs__rmq_decoded *d)
{
    char *base = r->arena.data;
    size_t src = (size_t)(uintptr_t)r->m.adapter_data; /* see the basic.deliver frame */
    fs_message *m = &r->m;
    fs_message_init(m);
    m->body = base + r->body_at;
    m->body_len = r->body_size;
    m->content_type = d->content_type != NPOS ? base + d->content_type : NULL;
    m->correlation_id = d->correlation_id != NPOS ? base + d->correlation_id : NULL;
    m->message_id = d->message_id != NPOS ? base + d->message_id : NULL;
    m->reply_to = d->reply_to != NPOS ? base + d->reply_to : NULL;
    for (size_t i = 0; i < d->header_count; i++) {
        r->hdrs[i].name = base + d->hdr_off[3 * i];
        r->hdrs[i].value = base + d->hdr_off[3 * i + 1];
        r->hdrs[i].value_len = d->hdr_off[3 * i + 2];
    }
    m->headers = d->header_count ? r->hdrs : NULL;
    m->header_count = d->header_count;
    r->info.exchange = base + (size_t)(uintptr_t)r->info.exchange;
    r->info.routing_key = base + (size_t)(uintptr_t)r->info.routing_key;
    if (r->label) {
        m->source = r->label->str;
        m->source_len = r->label->len;
        m->source_id = r->label->id;
    } else {
        m->source = base + src;
        m->source_len = r->src_len;
    }
    r->info.queue = s->queue;
    r->info.timestamp = d->timestamp_s;
    m->raw = &r->info;
    m->release = rec_release;
    m->adapter_data = r;
    /* Deliveries so far: quorum queues count them; for classic queues we do, by message id
     * (by body when there is none: equal bodies then share a count). */
    if (!r->msgid_hash)
        r->msgid_hash = hash_bytes(m->body, m->body_len);
    if (d->x_delivery_count >= 0) {
        r->delivery_count = (uint32_t)d->x_delivery_count + 1;
    } else if (!r->info.redelivered) {
        r->delivery_count = 1;
    } else {
        r->delivery_count = 2;
        if (r->msgid_hash) {
            size_t slot = r->msgid_hash % RMQ_DCOUNT_SLOTS;
            if (s->dcount[slot].h == r->msgid_hash)
                r->delivery_count = s->dcount[slot].n + 1;
        }
    }
    m->delivery_count = r->delivery_count;
    m->timestamp_ms = d->timestamp_s * 1000;
    r->settle = FS_SETTLE_NONE;
    r->delay_ms = 0;
    r->delay_done = false;
    r->next = NULL;
    r->qn.msg = m;
    fs_kit_queue_push(&s->q, 0, &r->qn);
}

int fs__rmq_sub_frame(rconn *c, rsub *s, const amqp_frame_t *f)
{
    (void)c;
    fs__rmq_decoded *d = &s->dec;
    if (f->frame_type == AMQP_FRAME_METHOD) {
        if (f->payload.method.id == AMQP_BASIC_DELIVER_METHOD) {
            amqp_basic_deliver_t *dv = f->payload.method.decoded;
            rrec *r = s->filling;
            if (!r && !(r = fs_kit_pool_get(&s->pool)))
                return FS_ENOMEM;
            r->sub = s;
            r->tag = dv->delivery_tag;
            r->gen = s->gen;
            r->arena.len = 0;
            memset(&r->info, 0, sizeof r->info);
            r->info.delivery_tag = dv->delivery_tag;
            r->info.redelivered = dv->redelivered;
            size_t ex = fs__rmq_buf_str(&r->arena, dv->exchange.bytes, dv->exchange.len);
            size_t rk = fs__rmq_buf_str(&r->arena, dv->routing_key.bytes, dv->routing_key.len);
            /* handler label: "{exchange or 'default'}.{routing_key}", kept or in the arena */
            size_t src = 0;
            r->label = label_of(s, dv);
            if (!r->label) {
                src = fs__rmq_buf_put(&r->arena, dv->exchange.len ? dv->exchange.bytes : "default",
                                      dv->exchange.len ? dv->exchange.len : 7);
                if (src != NPOS && fs__rmq_buf_put(&r->arena, ".", 1) != NPOS)
                    fs__rmq_buf_str(&r->arena, dv->routing_key.bytes, dv->routing_key.len);
            }
            r->info.exchange = (const char *)(uintptr_t)ex;
            r->info.routing_key = (const char *)(uintptr_t)rk;
            r->m.adapter_data = (void *)(uintptr_t)src;
            r->src_len = (dv->exchange.len ? dv->exchange.len : 7) + 1 + dv->routing_key.len;
            r->body_size = 0;
            r->body_at = 0;
            s->filling = r;
            if (ex == NPOS || rk == NPOS || src == NPOS)
                return FS_ENOMEM;
        } else if (f->payload.method.id == AMQP_BASIC_CANCEL_METHOD) {
            fs_adapter_log(FS_LOG_WARN, RMQ,
                           "the server cancelled the consumer of queue '%s' (deleted?); "
                           "consuming again later",
                           s->queue);
            s->active = false;
        }
        return FS_OK;
    }
    rrec *r = s->filling;
    if (!r)
        return FS_OK;
    if (f->frame_type == AMQP_FRAME_HEADER) {
        const amqp_basic_properties_t *p = f->payload.properties.decoded;
        int rc = fs__rmq_props_decode(p, &r->arena, d);
        if (!rc)
            rc = fs_kit_grow((void **)&r->hdrs, &r->hdr_cap, d->header_count + 1, sizeof *r->hdrs);
        r->msgid_hash = d->message_id != NPOS ? hash_bytes(r->arena.data + d->message_id,
                                                           strlen(r->arena.data + d->message_id))
                                              : 0;
        r->info.priority = (p->_flags & AMQP_BASIC_PRIORITY_FLAG) ? p->priority : 0;
        r->info.delivery_mode = (p->_flags & AMQP_BASIC_DELIVERY_MODE_FLAG) ? p->delivery_mode : 0;
        r->body_size = (size_t)f->payload.properties.body_size;
        if (!rc)
            rc = fs_kit_buf_reserve(&r->arena, r->body_size + 1);
        if (rc) {
            s->filling = NULL; /* dropped: never acked, the server redelivers it later */
            fs_kit_pool_put(&s->pool, r);
            fs_adapter_log(FS_LOG_ERROR, RMQ, "out of memory reading a delivery from '%s'",
                           s->queue);
            return rc;
        }
        r->body_at = r->arena.len;
        if (r->body_size == 0) {
            r->arena.data[r->arena.len] = '\0';
            s->filling = NULL;
            complete(s, r, d);
        }
        return FS_OK;
    }
    if (f->frame_type == AMQP_FRAME_BODY) {
        amqp_bytes_t frag = f->payload.body_fragment;
        size_t room = r->body_at + r->body_size - r->arena.len;
        size_t take = frag.len < room ? frag.len : room;
        memcpy(r->arena.data + r->arena.len, frag.bytes, take);
        r->arena.len += take;
        if (r->arena.len == r->body_at + r->body_size) {
            r->arena.data[r->arena.len] = '\0';
            s->filling = NULL;
            complete(s, r, d);
        }
    }
    return FS_OK;
}

/* ------------------------------------------------------------------------ */
/* Workers                                                                  */

int fs__rmq_fetch(void *impl, void *sub, int timeout_ms, fs_message **out)
{
    (void)impl;
    rsub *s = sub;
    if (atomic_load_explicit(&s->stopping, memory_order_acquire))
        return FS_ECLOSED; /* stopped: no more handler calls */
    fs_message *m;
    int rc = fs_kit_queue_pop(&s->q, 0, timeout_ms, &m);
    if (rc)
        return rc; /* FS_ETIMEDOUT, or FS_ECLOSED when stopped */
    if (atomic_load_explicit(&s->stopping, memory_order_acquire)) {
        /* stopped meanwhile: it stays queued, given back to the server */
        fs_kit_queue_push_front(&s->q, 0, &((rrec *)m->adapter_data)->qn);
        return FS_ECLOSED;
    }
    *out = m;
    return FS_OK;
}

int fs__rmq_settle_op(rrec *r, int op, unsigned delay_ms)
{
    r->settle = op;
    r->delay_ms = delay_ms;
    return FS_OK;
}

static void rec_release(fs_message *m)
{
    rrec *r = m->adapter_data;
    r->cmd.kind = CMD_RELEASE;
    fs__rmq_post(&r->sub->b->conn, &r->cmd);
}

/* Owner: send the recorded settlement (unless its channel died) and recycle. */
void fs__rmq_sub_release(rconn *c, rrec *r)
{
    rsub *s = r->sub;
    bool live = c->st && s->ch_open && r->gen == s->gen && !s->no_ack;
    if (live && r->settle == FS_SETTLE_NACKED && r->delay_ms && !r->delay_done) {
        r->due_ns = fs_kit_now_ns() + (uint64_t)r->delay_ms * 1000000ull;
        r->next = c->delayed;
        c->delayed = r;
        return;
    }
    if (live) {
        size_t slot = r->msgid_hash % RMQ_DCOUNT_SLOTS;
        switch (r->settle) {
        case FS_SETTLE_ACKED:
            amqp_basic_ack(c->st, s->ch, r->tag, 0);
            break;
        case FS_SETTLE_NACKED:
            if (r->msgid_hash) {
                s->dcount[slot].h = r->msgid_hash;
                s->dcount[slot].n = r->delivery_count;
            }
            amqp_basic_nack(c->st, s->ch, r->tag, 0, 1);
            break;
        case FS_SETTLE_REJECTED:
            amqp_basic_reject(c->st, s->ch, r->tag, 0);
            break;
        default:
            break; /* unsettled: stays with the server until the channel closes */
        }
        if (r->settle == FS_SETTLE_ACKED || r->settle == FS_SETTLE_REJECTED) {
            if (r->msgid_hash && s->dcount[slot].h == r->msgid_hash)
                s->dcount[slot].h = 0;
        }
    }
    fs_kit_pool_put(&s->pool, r);
}

void fs__rmq_delayed_run(rconn *c, uint64_t now, uint64_t *next_due)
{
    for (rrec **pp = &c->delayed; *pp;) {
        rrec *r = *pp;
        if (r->due_ns <= now) {
            *pp = r->next;
            r->delay_done = true;
            fs__rmq_sub_release(c, r);
        } else {
            if (r->due_ns < *next_due)
                *next_due = r->due_ns;
            pp = &r->next;
        }
    }
}
