/*
 * Publishing with publisher confirms through the pool of publishing
 * channels (each in confirm mode, its confirms pipelined across callers and
 * tracked in its own ring by delivery tag), basic.return of mandatory
 * messages, a channel closed by the server, and request/reply through
 * direct reply-to.
 */
#include "internal.h"

#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#define NPOS ((size_t)-1)
#define DIRECT_REPLY_TO "amq.rabbitmq.reply-to"

const char *fs__rmq_status_type(int status)
{
    switch (status) {
    case FS_ETIMEDOUT:
        return "TimeoutError";
    case FS_EINVAL:
        return "ValueError";
    case FS_ECLOSED:
        return "ConnectionClosed";
    case FS_ENOMEM:
        return "MemoryError";
    case FS_ENOTFOUND:
        return "ChannelNotFoundEntity";
    case FS_EBROKER:
        return "ChannelClosed";
    default:
        return "ConnectionError";
    }
}

/* ------------------------------------------------------------------------ */
/* The pool of publishing channels and their confirm rings (owner)          */

int fs__rmq_pub_init(rconn *c, unsigned n)
{
    c->pubs = calloc(n, sizeof *c->pubs);
    if (!c->pubs)
        return fs_adapter_error(FS_ENOMEM, "rabbitmq: out of memory");
    c->npub = n;
    c->pub_due_ns = UINT64_MAX;
    for (unsigned i = 0; i < n; i++) {
        c->pubs[i].ch = (amqp_channel_t)(RMQ_CH_PUB0 + i);
        c->pubs[i].next_tag = c->pubs[i].low = 1;
    }
    return FS_OK;
}

void fs__rmq_pub_free(rconn *c)
{
    for (unsigned i = 0; i < c->npub; i++)
        free(c->pubs[i].ring);
    free(c->pubs);
    c->pubs = NULL;
    c->npub = 0;
}

rpch *fs__rmq_pub_by_channel(rconn *c, amqp_channel_t ch)
{
    unsigned i = (unsigned)ch - RMQ_CH_PUB0;
    return ch >= RMQ_CH_PUB0 && i < c->npub ? &c->pubs[i] : NULL;
}

static int open_one(rconn *c, rpch *pc, char *err, size_t n)
{
    int rc = fs__rmq_channel_open(c, pc->ch, err, n);
    if (rc)
        return rc;
    amqp_confirm_select(c->st, pc->ch);
    if ((rc = fs__rmq_rpc_error(c, pc->ch, "confirm.select", err, n)))
        return rc;
    pc->open = true;
    pc->next_tag = pc->low = 1; /* a new channel numbers its messages from 1 */
    pc->ret_active = false;
    pc->err_logged = false;
    return FS_OK;
}

int fs__rmq_pub_open_all(rconn *c, char *err, size_t n)
{
    for (unsigned i = 0; i < c->npub; i++) {
        c->pubs[i].open = false;
        int rc = open_one(c, &c->pubs[i], err, n);
        if (rc)
            return rc;
    }
    return FS_OK;
}

void fs__rmq_pub_reopen(rconn *c)
{
    for (unsigned i = 0; i < c->npub && c->st && atomic_load(&c->up); i++) {
        rpch *pc = &c->pubs[i];
        if (pc->open)
            continue;
        char err[320];
        if (open_one(c, pc, err, sizeof err) && !pc->err_logged) {
            fs_adapter_log(FS_LOG_ERROR, RMQ,
                           "cannot reopen publishing channel %u: %s (retrying every second)",
                           (unsigned)pc->ch, err + strlen(RMQ ": "));
            pc->err_logged = true;
        }
    }
}

static int ring_insert(rpch *pc, uint64_t tag, rpub *p, size_t index)
{
    if (tag - pc->low >= pc->ring_cap) {
        size_t cap = pc->ring_cap ? pc->ring_cap * 2 : 1024;
        while (tag - pc->low >= cap)
            cap *= 2;
        rpend *r = calloc(cap, sizeof *r);
        if (!r)
            return FS_ENOMEM;
        for (size_t i = 0; i < pc->ring_cap; i++)
            if (pc->ring[i].tag)
                r[pc->ring[i].tag & (cap - 1)] = pc->ring[i];
        free(pc->ring);
        pc->ring = r;
        pc->ring_cap = cap;
    }
    rpend *e = &pc->ring[tag & (pc->ring_cap - 1)];
    e->tag = tag;
    e->p = p;
    e->index = index;
    e->returned = false;
    return FS_OK;
}

static void pub_done(rpub *p)
{
    if (--p->left == 0)
        fs__rmq_done_post(&p->done);
}

/* Confirm one tag: ok (basic.ack) or not (basic.nack). */
static void confirm_one(rpch *pc, uint64_t tag, bool ok)
{
    if (!pc->ring_cap)
        return;
    rpend *e = &pc->ring[tag & (pc->ring_cap - 1)];
    if (e->tag != tag)
        return;
    rpub *p = e->p;
    e->tag = 0;
    if (!p)
        return;
    if (!p->rc && !ok) {
        p->rc = FS_EBROKER;
        p->etype = "MessageNacked";
        snprintf(p->err, sizeof p->err,
                 "rabbitmq: publish to '%.*s' (exchange '%.*s'): the server nacked message %zu",
                 (int)p->routing_key.len, (char *)p->routing_key.bytes, (int)p->exchange.len,
                 (char *)p->exchange.bytes, e->index);
    } else if (!p->rc && e->returned) {
        p->rc = FS_ENOTFOUND;
        p->etype = "MessageReturned";
        snprintf(p->err, sizeof p->err,
                 "rabbitmq: publish to '%.*s' (exchange '%.*s'): unroutable, returned by the "
                 "server (mandatory: no queue is bound for it)",
                 (int)p->routing_key.len, (char *)p->routing_key.bytes, (int)p->exchange.len,
                 (char *)p->exchange.bytes);
    }
    pub_done(p);
}

static void advance_low(rpch *pc)
{
    while (pc->low < pc->next_tag && pc->ring[pc->low & (pc->ring_cap - 1)].tag != pc->low)
        pc->low++;
}

static void confirm(rpch *pc, uint64_t tag, bool multiple, bool ok)
{
    if (multiple) {
        for (uint64_t t = pc->low; t <= tag && t < pc->next_tag; t++)
            confirm_one(pc, t, ok);
    } else {
        confirm_one(pc, tag, ok);
    }
    if (pc->ring_cap)
        advance_low(pc);
}

/* Fail every publish in flight on one channel; `how` fills the error of each (once). */
static void fail_channel(rpch *pc, void (*how)(rpub *p, const void *arg), const void *arg)
{
    for (uint64_t t = pc->low; t < pc->next_tag && pc->ring_cap; t++) {
        rpend *e = &pc->ring[t & (pc->ring_cap - 1)];
        if (e->tag != t)
            continue;
        e->tag = 0;
        if (e->p) {
            if (!e->p->rc)
                how(e->p, arg);
            pub_done(e->p);
        }
    }
    pc->low = pc->next_tag = 1;
}

typedef struct fail_arg {
    int rc;
    const char *etype, *err;
} fail_arg;

static void fail_plain(rpub *p, const void *arg)
{
    const fail_arg *a = arg;
    p->rc = a->rc;
    p->etype = a->etype;
    snprintf(p->err, sizeof p->err, "%.250s", a->err);
}

void fs__rmq_pub_fail_all(rconn *c, int rc, const char *etype, const char *err)
{
    fail_arg a = {rc, etype, err};
    for (unsigned i = 0; i < c->npub; i++)
        fail_channel(&c->pubs[i], fail_plain, &a);
}

/* The server's text names the exchange of p ("... no exchange 'X' in vhost ..."). */
static bool names_exchange(const char *text, amqp_bytes_t ex)
{
    if (!ex.len)
        return false; /* the default exchange is never missing */
    for (const char *q = strstr(text, "exchange '"); q; q = strstr(q + 1, "exchange '")) {
        q += strlen("exchange '");
        if (!strncmp(q, (const char *)ex.bytes, ex.len) && q[ex.len] == '\'')
            return true;
    }
    return false;
}

typedef struct closed_arg {
    int code;
    unsigned ch;
    const char *text;
    bool culprit_known; /* some publish in flight is named by the text */
} closed_arg;

static void fail_closed(rpub *p, const void *arg)
{
    const closed_arg *a = arg;
    if (!a->culprit_known || names_exchange(a->text, p->exchange)) {
        p->rc = a->code == 404 ? FS_ENOTFOUND : FS_EBROKER;
        p->etype = fs__rmq_code_type(a->code);
        snprintf(p->err, sizeof p->err,
                 "rabbitmq: publish to '%.*s' (exchange '%.*s'): channel %u closed by the "
                 "server: %d %.100s",
                 (int)(p->routing_key.len > 40 ? 40 : p->routing_key.len),
                 (char *)p->routing_key.bytes, (int)(p->exchange.len > 40 ? 40 : p->exchange.len),
                 (char *)p->exchange.bytes, a->ch, a->code, a->text);
    } else { /* in flight on the same channel when another publish closed it */
        p->rc = FS_EBROKER;
        p->etype = "ChannelClosed";
        snprintf(p->err, sizeof p->err,
                 "rabbitmq: publish to '%.*s': publishing channel %u was closed by the server "
                 "before the confirm, because of another publish on it (%d %.60s); the "
                 "message may not have been routed",
                 (int)(p->routing_key.len > 40 ? 40 : p->routing_key.len),
                 (char *)p->routing_key.bytes, a->ch, a->code, a->text);
    }
}

void fs__rmq_pub_closed(rconn *c, rpch *pc, int code, const char *text)
{
    closed_arg a = {code, pc->ch, text, false};
    for (uint64_t t = pc->low; t < pc->next_tag && pc->ring_cap && !a.culprit_known; t++) {
        rpend *e = &pc->ring[t & (pc->ring_cap - 1)];
        if (e->tag == t && e->p && names_exchange(text, e->p->exchange))
            a.culprit_known = true;
    }
    pc->open = false;
    fail_channel(pc, fail_closed, &a);
    fs__rmq_pub_reopen(c); /* this channel alone; the others go on */
}

void fs__rmq_pub_timeouts(rconn *c, uint64_t now, uint64_t *next_due)
{
    /* Deadlines only grow along a ring: nothing to look at before the earliest. */
    if (now < c->pub_due_ns) {
        if (c->pub_due_ns < *next_due)
            *next_due = c->pub_due_ns;
        goto requests;
    }
    c->pub_due_ns = UINT64_MAX;
    for (unsigned i = 0; i < c->npub; i++) {
        rpch *pc = &c->pubs[i];
        if (!pc->ring_cap || pc->low >= pc->next_tag)
            continue;
        rpend *e = &pc->ring[pc->low & (pc->ring_cap - 1)];
        if (e->tag != pc->low || !e->p)
            continue;
        if (e->p->deadline_ns <= now) {
            char msg[200];
            snprintf(msg, sizeof msg, "rabbitmq: no publisher confirm within %d ms",
                     c->b->confirm_timeout_ms);
            fail_arg a = {FS_ETIMEDOUT, "TimeoutError", msg};
            uint64_t keep = pc->next_tag;
            fail_channel(pc, fail_plain, &a);
            pc->low = pc->next_tag = keep; /* the channel goes on with its numbering */
        } else {
            if (e->p->deadline_ns < c->pub_due_ns)
                c->pub_due_ns = e->p->deadline_ns;
            if (e->p->deadline_ns < *next_due)
                *next_due = e->p->deadline_ns;
        }
    }
requests:
    for (rcall **pp = &c->waiting; *pp;) {
        rcall *w = *pp;
        if (w->deadline_ns <= now) {
            *pp = w->next_wait;
            w->rc = FS_ETIMEDOUT;
            w->etype = "TimeoutError";
            snprintf(w->err, sizeof w->err, "rabbitmq: no reply to the request within the timeout");
            fs__rmq_done_post(&w->done);
        } else {
            if (w->deadline_ns < *next_due)
                *next_due = w->deadline_ns;
            pp = &w->next_wait;
        }
    }
}

/* ------------------------------------------------------------------------ */
/* Publishing (owner)                                                       */

/*
 * Write the frames of a publish on the TCP socket (rabbitmq-c writes whole
 * frames, so the stream is between frames here); a failure leaves the
 * connection unusable (a frame may be cut): the owner reconnects.
 */
static int write_all(rconn *c, const char *p, size_t n)
{
    while (n) {
        /* syscall(): send() is a cancellation point (see fs__rmq_post) */
        long w = syscall(SYS_sendto, c->fd, p, n, MSG_NOSIGNAL, NULL, 0);
        if (w > 0) {
            p += w;
            n -= (size_t)w;
            continue;
        }
        if (w < 0 && errno == EINTR)
            continue;
        if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            struct pollfd pf = {c->fd, POLLOUT, 0};
            int r = poll(&pf, 1, c->b->confirm_timeout_ms);
            if (r > 0 || (r < 0 && errno == EINTR))
                continue;
            if (r)
                snprintf(c->last_error, sizeof c->last_error, "poll: %s", strerror(errno));
            else
                snprintf(c->last_error, sizeof c->last_error,
                         "the socket stayed full for %d ms (the server reads nothing)",
                         c->b->confirm_timeout_ms);
        } else {
            snprintf(c->last_error, sizeof c->last_error, "send: %s",
                     w < 0 ? strerror(errno) : "nothing written");
        }
        atomic_store(&c->up, false);
        return FS_EIO;
    }
    return FS_OK;
}

static int send_one(rconn *c, amqp_channel_t ch, amqp_bytes_t exchange, amqp_bytes_t rk,
                    bool mandatory, const fs_envelope *e, const fs_rabbitmq_publish_options *po,
                    const char *reply_to, char cid[37], int64_t now_s)
{
    int rc = fs_kit_grow((void **)&c->tbl, &c->tbl_cap, e->header_count + 1, sizeof *c->tbl);
    if (rc)
        return rc;
    amqp_basic_properties_t props;
    if ((rc = fs__rmq_props_encode(e, po, &props, c->tbl, cid, now_s)))
        return rc;
    if (reply_to) {
        props._flags |= AMQP_BASIC_REPLY_TO_FLAG;
        props.reply_to = amqp_cstring_bytes(reply_to);
    }
    amqp_bytes_t body = {e->body_len, (void *)e->body};
    /* TCP, and a body that is cheap to copy (larger ones go out from the
     * caller's memory through rabbitmq-c; the buffer stays small) */
    if (!c->b->tls && e->body_len <= RMQ_FRAMES_BODY_MAX &&
        !fs__rmq_publish_frames(&c->frames, ch, exchange, rk, mandatory, &props, body,
                                (size_t)amqp_get_frame_max(c->st)))
        return write_all(c, c->frames.data, c->frames.len);
    int s = amqp_basic_publish(c->st, ch, exchange, rk, mandatory, 0, &props, body);
    if (s) {
        snprintf(c->last_error, sizeof c->last_error, "%s", amqp_error_string2(s));
        atomic_store(&c->up, false);
        return FS_EIO;
    }
    return FS_OK;
}

/* The caller's channel, or the next open one while it is closed. */
static rpch *pick(rconn *c, unsigned pref)
{
    for (unsigned k = 0; k < c->npub; k++) {
        rpch *pc = &c->pubs[(pref + k) % c->npub];
        if (pc->open)
            return pc;
    }
    return NULL;
}

void fs__rmq_pub_run(rconn *c, rpub *p)
{
    rpch *pc = c->st ? pick(c, p->pref) : NULL;
    if (!pc) {
        p->rc = FS_EIO;
        p->etype = "ConnectionError";
        if (c->st)
            snprintf(p->err, sizeof p->err,
                     "rabbitmq: publish to '%.*s': no publishing channel is open (the server "
                     "closed them; reopening)",
                     (int)p->routing_key.len, (char *)p->routing_key.bytes);
        else
            snprintf(p->err, sizeof p->err, "rabbitmq: not connected to %s:%d%s%.200s", c->b->host,
                     c->b->port, c->last_error[0] ? ": " : "", c->last_error);
        fs__rmq_done_post(&p->done);
        return;
    }
    p->left = 1;                         /* held while sending */
    int64_t now_s = (int64_t)time(NULL); /* the timestamp property of the whole batch */
    p->deadline_ns = c->now_ns + (uint64_t)c->b->confirm_timeout_ms * 1000000ull;
    if (p->confirm && p->deadline_ns < c->pub_due_ns)
        c->pub_due_ns = p->deadline_ns;
    for (size_t i = 0; i < p->count; i++) {
        const fs_envelope *e = &p->msgs[i];
        const fs_rabbitmq_publish_options *po = e->broker_options ? e->broker_options : p->po;
        char cid[37];
        int rc =
            send_one(c, pc->ch, p->exchange, p->routing_key, p->mandatory, e, po, NULL, cid, now_s);
        if (rc) {
            p->rc = rc;
            p->etype = rc == FS_EINVAL ? "ValueError" : "ConnectionError";
            snprintf(p->err, sizeof p->err, "rabbitmq: publish to '%.*s': %.180s",
                     (int)p->routing_key.len, (char *)p->routing_key.bytes,
                     rc == FS_EINVAL ? "invalid message" : c->last_error);
            break;
        }
        uint64_t tag = pc->next_tag++;
        bool wait = p->confirm;
        if (ring_insert(pc, tag, wait ? p : NULL, i)) {
            wait = false; /* out of memory: not waiting for this confirm */
        }
        if (wait)
            p->left++;
    }
    pub_done(p);
}

static bool bytes_is(amqp_bytes_t b, const char *s)
{
    return b.len == strlen(s) && (!b.len || memcmp(b.bytes, s, b.len) == 0);
}

void fs__rmq_pub_frame(rconn *c, rpch *pc, const amqp_frame_t *f)
{
    (void)c;
    if (f->frame_type == AMQP_FRAME_METHOD) {
        switch (f->payload.method.id) {
        case AMQP_BASIC_ACK_METHOD: {
            amqp_basic_ack_t *a = f->payload.method.decoded;
            confirm(pc, a->delivery_tag, a->multiple, true);
            break;
        }
        case AMQP_BASIC_NACK_METHOD: {
            amqp_basic_nack_t *a = f->payload.method.decoded;
            confirm(pc, a->delivery_tag, a->multiple, false);
            break;
        }
        case AMQP_BASIC_RETURN_METHOD: {
            amqp_basic_return_t *r = f->payload.method.decoded;
            pc->ret_active = true;
            snprintf(pc->ret_exchange, sizeof pc->ret_exchange, "%.*s", (int)r->exchange.len,
                     (char *)r->exchange.bytes);
            snprintf(pc->ret_rk, sizeof pc->ret_rk, "%.*s", (int)r->routing_key.len,
                     (char *)r->routing_key.bytes);
            pc->ret_has_cid = false;
            break;
        }
        default:
            break;
        }
        return;
    }
    if (!pc->ret_active)
        return;
    bool finished = false;
    if (f->frame_type == AMQP_FRAME_HEADER) {
        const amqp_basic_properties_t *p = f->payload.properties.decoded;
        if (p->_flags & AMQP_BASIC_CORRELATION_ID_FLAG) {
            pc->ret_has_cid = true;
            snprintf(pc->ret_cid, sizeof pc->ret_cid, "%.*s", (int)p->correlation_id.len,
                     (char *)p->correlation_id.bytes);
        }
        pc->ret_left = (size_t)f->payload.properties.body_size;
        finished = pc->ret_left == 0;
    } else if (f->frame_type == AMQP_FRAME_BODY) {
        size_t n = f->payload.body_fragment.len;
        pc->ret_left = n >= pc->ret_left ? 0 : pc->ret_left - n;
        finished = pc->ret_left == 0;
    }
    if (!finished)
        return;
    pc->ret_active = false;
    /* The oldest unconfirmed message to that exchange and key (with that correlation id). */
    for (uint64_t t = pc->low; t < pc->next_tag && pc->ring_cap; t++) {
        rpend *e = &pc->ring[t & (pc->ring_cap - 1)];
        if (e->tag != t || !e->p || e->returned)
            continue;
        rpub *p = e->p;
        if (!bytes_is(p->exchange, pc->ret_exchange) || !bytes_is(p->routing_key, pc->ret_rk))
            continue;
        const char *cid = p->msgs[e->index].correlation_id;
        if (cid && pc->ret_has_cid && strcmp(cid, pc->ret_cid) != 0)
            continue;
        e->returned = true;
        break;
    }
}

/* ------------------------------------------------------------------------ */
/* The publish op                                                           */

/*
 * Each publishing thread keeps to one channel of the pool: thread n (in the
 * order threads first publish) to channel n % size, so up to `size`
 * threads never share one.
 */
static unsigned thread_ordinal(void)
{
    static atomic_uint next;
    static _Thread_local unsigned mine; /* 0: not yet */
    if (!mine)
        mine = atomic_fetch_add_explicit(&next, 1, memory_order_relaxed) + 1;
    return mine - 1;
}

int fs__rmq_publish(void *impl, void *dest, const char *destination, const fs_envelope *msgs,
                    size_t count, const char **etype)
{
    rmq_broker *b = impl;
    (void)dest;
    if (!destination || !msgs || !count) {
        *etype = "ValueError";
        return fs_adapter_error(FS_EINVAL, "rabbitmq: publish needs a routing key and messages");
    }
    rconn *c = &b->conn;
    if (!c->thread_started || atomic_load(&b->closed)) {
        *etype = "ConnectionClosed";
        return fs_adapter_error(FS_ECLOSED, "rabbitmq: publish to '%s': not connected",
                                destination);
    }
    const fs_rabbitmq_publish_options *po = msgs[0].broker_options;
    rpub p;
    p.cmd.kind = CMD_PUBLISH;
    p.msgs = msgs;
    p.count = count;
    p.po = po;
    p.rc = FS_OK;
    p.etype = NULL;
    p.err[0] = '\0';
    fs__rmq_target(destination, po, &p.exchange, &p.routing_key);
    p.mandatory = !(po && po->not_mandatory);
    p.confirm = !(po && po->no_confirm);
    p.pref = thread_ordinal() % b->pub_channels;
    fs__rmq_done_init(&p.done);
    if (fs__rmq_borrow(c)) {
        /* The owner sleeps: send and read the confirm on this thread (no
         * hand-off); what takes longer is the owner's again. */
        fs__rmq_pub_run(c, &p);
        fs__rmq_give_back(c, !fs__rmq_borrow_wait(c, &p.done));
    } else {
        fs__rmq_post(c, &p.cmd);
    }
    fs__rmq_done_wait(&p.done);
    if (p.rc) {
        *etype = p.etype ? p.etype : fs__rmq_status_type(p.rc);
        return fs_adapter_error(p.rc, "%s", p.err);
    }
    return FS_OK;
}

/* ------------------------------------------------------------------------ */
/* Request / reply through direct reply-to                                  */

int fs__rmq_rpc_setup(rconn *c, char *err, size_t n)
{
    int rc;
    if (!c->rpc_open) {
        if ((rc = fs__rmq_channel_open(c, RMQ_CH_RPC, err, n)))
            return rc;
        c->rpc_open = true;
    }
    amqp_basic_consume(c->st, RMQ_CH_RPC, amqp_cstring_bytes(DIRECT_REPLY_TO), amqp_empty_bytes, 0,
                       1, 0, amqp_empty_table);
    return fs__rmq_rpc_error(c, RMQ_CH_RPC, "consuming from " DIRECT_REPLY_TO, err, n);
}

void fs__rmq_rpc_fail_all(rconn *c, int rc, const char *err)
{
    while (c->waiting) {
        rcall *w = c->waiting;
        c->waiting = w->next_wait;
        w->rc = rc;
        w->etype = fs__rmq_status_type(rc);
        snprintf(w->err, sizeof w->err, "%.300s", err);
        fs__rmq_done_post(&w->done);
    }
}

typedef struct req_in {
    const char *destination;
    const fs_envelope *msg;
    int timeout_ms;
} req_in;

static int request_call(rconn *c, rcall *call)
{
    const req_in *in = call->in;
    call->async = false;
    if (!c->st || !c->rpc_open) {
        snprintf(call->err, sizeof call->err, "rabbitmq: request to '%s': not connected",
                 in->destination);
        call->etype = "ConnectionError";
        return FS_EIO;
    }
    const fs_rabbitmq_publish_options *po = in->msg->broker_options;
    amqp_bytes_t ex, rk;
    fs__rmq_target(in->destination, po, &ex, &rk); /* as fs__rmq_destination_label says */
    char cid[37];
    fs_envelope e = *in->msg;
    if (!e.correlation_id) {
        fs__rmq_uuid4(cid);
        e.correlation_id = cid;
    }
    snprintf(call->corr, sizeof call->corr, "%s", e.correlation_id);
    int rc =
        send_one(c, RMQ_CH_RPC, ex, rk, true, &e, po, DIRECT_REPLY_TO, cid, (int64_t)time(NULL));
    if (rc) {
        snprintf(call->err, sizeof call->err, "rabbitmq: request to '%.100s': %.180s",
                 in->destination, rc == FS_EINVAL ? "invalid message" : c->last_error);
        call->etype = rc == FS_EINVAL ? "ValueError" : "ConnectionError";
        return rc;
    }
    call->deadline_ns = fs_kit_now_ns() + (uint64_t)in->timeout_ms * 1000000ull;
    call->next_wait = c->waiting;
    c->waiting = call;
    call->async = true;
    return FS_OK;
}

static rcall *take_waiting(rconn *c, const char *corr)
{
    for (rcall **pp = &c->waiting; *pp; pp = &(*pp)->next_wait)
        if (strcmp((*pp)->corr, corr) == 0) {
            rcall *w = *pp;
            *pp = w->next_wait;
            return w;
        }
    return NULL;
}

static void reply_done(rconn *c)
{
    c->rep_active = false;
    fs__rmq_decoded *d = &c->rep_dec;
    char *base = c->rep_buf.data;
    if (d->correlation_id == NPOS)
        return;
    rcall *w = take_waiting(c, base + d->correlation_id);
    if (!w)
        return;                   /* late: its request timed out */
    if (c->rep_body_at == NPOS) { /* returned: nobody consumes the destination */
        w->rc = FS_ENOTFOUND;
        w->etype = "MessageReturned";
        snprintf(w->err, sizeof w->err,
                 "rabbitmq: request: unroutable, returned by the server (no queue bound)");
        fs__rmq_done_post(&w->done);
        return;
    }
    fs_header hs[64];
    size_t nh = d->header_count < 64 ? d->header_count : 64;
    for (size_t i = 0; i < nh; i++) {
        hs[i].name = base + d->hdr_off[3 * i];
        hs[i].value = base + d->hdr_off[3 * i + 1];
        hs[i].value_len = d->hdr_off[3 * i + 2];
    }
    fs_envelope env = FS_ENVELOPE_INIT;
    env.body = base + c->rep_body_at;
    env.body_len = c->rep_body_size;
    env.headers = nh ? hs : NULL;
    env.header_count = nh;
    env.content_type = d->content_type != NPOS ? base + d->content_type : NULL;
    env.correlation_id = base + d->correlation_id;
    env.message_id = d->message_id != NPOS ? base + d->message_id : NULL;
    w->reply = fs_message_new_copy(&env, DIRECT_REPLY_TO);
    w->rc = w->reply ? FS_OK : FS_ENOMEM;
    if (!w->reply)
        snprintf(w->err, sizeof w->err, "rabbitmq: out of memory copying a reply");
    fs__rmq_done_post(&w->done);
}

void fs__rmq_rpc_frame(rconn *c, const amqp_frame_t *f)
{
    if (f->frame_type == AMQP_FRAME_METHOD) {
        uint32_t id = f->payload.method.id;
        if (id == AMQP_BASIC_DELIVER_METHOD || id == AMQP_BASIC_RETURN_METHOD) {
            c->rep_active = true;
            c->rep_buf.len = 0;
            c->rep_body_at = id == AMQP_BASIC_RETURN_METHOD ? NPOS : 0;
        }
        return;
    }
    if (!c->rep_active)
        return;
    if (f->frame_type == AMQP_FRAME_HEADER) {
        bool returned = c->rep_body_at == NPOS;
        if (fs__rmq_props_decode(f->payload.properties.decoded, &c->rep_buf, &c->rep_dec)) {
            c->rep_active = false;
            return;
        }
        c->rep_body_size = (size_t)f->payload.properties.body_size;
        if (fs_kit_buf_reserve(&c->rep_buf, c->rep_body_size + 1)) {
            c->rep_active = false;
            return;
        }
        c->rep_body_at = returned ? NPOS : c->rep_buf.len;
        c->rep_left = c->rep_body_size;
    } else if (f->frame_type == AMQP_FRAME_BODY) {
        size_t n = f->payload.body_fragment.len;
        if (n > c->rep_left)
            n = c->rep_left;
        if (c->rep_body_at != NPOS)
            fs__rmq_buf_put(&c->rep_buf, f->payload.body_fragment.bytes, n);
        c->rep_left -= n;
    } else {
        return;
    }
    if (c->rep_left == 0)
        reply_done(c);
}

int fs__rmq_request(void *impl, const char *destination, const fs_envelope *msg, int timeout_ms,
                    fs_message **reply, const char **etype)
{
    rmq_broker *b = impl;
    *reply = NULL;
    if (!destination || !*destination || !msg) {
        *etype = "ValueError";
        return fs_adapter_error(FS_EINVAL, "rabbitmq: request needs a destination and a message");
    }
    req_in in = {destination, msg, timeout_ms > 0 ? timeout_ms : 30000};
    rcall call;
    call.in = &in;
    call.reply = NULL;
    call.async = false;
    int rc = fs__rmq_call(b, request_call, &call);
    if (rc < 0) {
        *etype = call.etype ? call.etype : fs__rmq_status_type(rc);
        if (rc == FS_ETIMEDOUT)
            fs_adapter_error(rc, "rabbitmq: no reply to the request on '%s' within %d ms",
                             destination, in.timeout_ms);
        return rc;
    }
    *reply = call.reply;
    return FS_OK;
}
