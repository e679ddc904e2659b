/*
 * The publishing side of the core: the publish middleware chain, publisher
 * objects and request/reply built on publish + a reply-inbox subscription.
 */
#include "core/core.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static _Thread_local const char *last_publish_error_type FS_TLS_MODEL;

const char *fs_last_publish_error_type(void)
{
    return last_publish_error_type;
}

/* ------------------------------------------------------------------------ */
/* The chain                                                                */

/* A native request (FS_CAP_NATIVE_REQUEST) running as the innermost step of the chain. */
typedef struct native_request {
    int timeout_ms;
    fs_message **reply;
} native_request;

/*
 * The destination label of a publish that has none cached: the adapter's
 * (into buf, FS_DESTINATION_LABEL_MAX bytes), or the destination name.
 */
static int label_of(fs_broker *b, void *dest, const char *destination, const void *options,
                    char *buf, const char **label)
{
    *label = destination;
    if (!b->ops->destination_label)
        return FS_OK;
    const char *l = NULL;
    buf[0] = '\0';
    int rc = b->ops->destination_label(b->impl, dest, destination, options, buf,
                                       FS_DESTINATION_LABEL_MAX, &l);
    if (rc < 0)
        return rc;
    buf[FS_DESTINATION_LABEL_MAX - 1] = '\0';
    if (l)
        *label = l;
    return FS_OK;
}

static int publish_inner(fs_publish_ctx *ctx, const char **error_type)
{
    fs_broker *b = ctx->broker;
    int rc = fs__broker_ensure_connected(b);
    if (rc < 0) {
        *error_type = rc == FS_ECLOSED ? "BrokerClosed" : "ConnectionError";
        return rc;
    }
    *error_type = NULL;
    /* ctx->destination is the label: the adapter publishes to the name */
    const native_request *nr = ctx->core_[2];
    if (nr) {
        rc = b->ops->request(b->impl, ctx->destination_name, ctx->messages, nr->timeout_ms,
                             nr->reply, error_type);
        return rc < 0 ? rc : FS_OK;
    }
    rc = b->ops->publish(b->impl, ctx->core_[0], ctx->destination_name, ctx->messages, ctx->count,
                         error_type);
    return rc > 0 ? FS_PENDING : rc;
}

/*
 * A hook called fs_publish_next a second time: the messages must not be
 * published (and counted) twice. Return the first call's status, unchanged
 * in ctx with its error type.
 */
static int publish_next_again(fs_publish_ctx *ctx, size_t i)
{
    fs_broker *b = ctx->broker;
    const char *name = fs__chain_caller(b, b->publish_chain, i);
    int status = ctx->status;
    fs__error(FS_ESTATE,
              "middleware %s called fs_publish_next twice for one publish to %s; "
              "the second call returned the first one's status",
              name, ctx->destination);
    fs__log(FS_LOG_WARN, "core", "%s", fs_last_error());
    return status;
}

/*
 * Run hook `mw` as level i of the chain (ctx->state and scratch are its own
 * while it runs): its status (FS_PENDING for any positive one), its error
 * type in ctx ("Error" when a failure named none).
 */
static inline int run_level(fs_publish_ctx *ctx, const fs__mw *mw, size_t i)
{
    unsigned char *base = ctx->core_[1];
    ctx->index_ = i + 1;
    ctx->state = mw->state;
    ctx->scratch = (base && mw->scratch_size) ? base + mw->scratch_off : NULL;
    ctx->error_type = NULL;
    int rc = mw->publish(ctx);
    if (FS_UNLIKELY(rc < 0)) {
        if (!ctx->error_type)
            ctx->error_type = "Error";
        return rc;
    }
    ctx->error_type = NULL;
    return rc > 0 ? FS_PENDING : FS_OK;
}

int fs_publish_next(fs_publish_ctx *ctx)
{
    if (!ctx || !ctx->broker)
        return fs__error(FS_EINVAL, "fs_publish_next: not a context handed to a publish hook");
    fs_broker *b = ctx->broker;
    size_t i = ctx->index_;
    if (i & FS__CHAIN_DONE)
        return publish_next_again(ctx, i & ~FS__CHAIN_DONE);
    int rc;
    if (i < b->publish_count) {
        void *saved_state = ctx->state, *saved_scratch = ctx->scratch;
        rc = run_level(ctx, &b->mws[b->publish_chain[i]], i);
        ctx->state = saved_state;
        ctx->scratch = saved_scratch;
    } else {
        const char *etype = NULL;
        ctx->index_ = i + 1;
        rc = publish_inner(ctx, &etype);
        if (rc > 0)
            rc = FS_PENDING;
        ctx->error_type = rc < 0 ? (etype ? etype : "Error") : NULL;
    }
    ctx->status = rc;
    ctx->index_ = i | FS__CHAIN_DONE;
    return rc;
}

/*
 * The chain from its first level, for the core's own call: the first hook
 * is called directly (there is nothing of the caller's to save in ctx), the
 * further levels through fs_publish_next.
 */
static inline int run_chain(fs_broker *b, fs_publish_ctx *ctx)
{
    if (!b->publish_count)
        return fs_publish_next(ctx);
    return run_level(ctx, &b->mws[b->publish_chain[0]], 0);
}

/* Envelopes copied on the stack to give them the handled message's correlation id. */
#define FS__INHERIT_MAX 16

static int publish_run(fs_broker *b, void *dest, const char *destination, const char *label,
                       uint64_t label_id, const fs_envelope *msgs, size_t count, bool is_reply,
                       native_request *native)
{
    char label_buf[FS_DESTINATION_LABEL_MAX];
    if (!label) {
        int rc = label_of(b, dest, destination, msgs[0].broker_options, label_buf, &label);
        if (rc < 0)
            return rc;
    }
    fs__frame *f = fs__current_frame;
    fs_envelope local[FS__INHERIT_MAX];
    fs_envelope *heap = NULL;
    if (f && f->unit && !is_reply) {
        /* A publish made inside a handler carries the handled message's correlation id. */
        size_t missing = 0;
        for (size_t i = 0; i < count; i++)
            missing += !msgs[i].correlation_id;
        if (missing) {
            fs_envelope *v = local;
            if (count > FS__INHERIT_MAX && !(v = heap = malloc(count * sizeof *v)))
                return fs__error(FS_ENOMEM, "out of memory publishing %zu messages", count);
            const char *cid = fs_message_correlation_id(f->unit);
            for (size_t i = 0; i < count; i++) {
                v[i] = msgs[i];
                if (!v[i].correlation_id)
                    v[i].correlation_id = cid;
            }
            msgs = v;
        }
    }
    fs_publish_ctx ctx;
    ctx.broker = b;
    ctx.broker_name = b->ops->name;
    ctx.destination = label;
    ctx.destination_name = destination;
    ctx.destination_id = label_id;
    ctx.messages = msgs;
    ctx.count = count;
    ctx.is_reply = is_reply;
    ctx.current = f ? f->unit : NULL;
    ctx.state = NULL;
    ctx.scratch = NULL;
    ctx.status = FS_OK;
    ctx.error_type = NULL;
    ctx.core_[0] = dest;
    ctx.core_[1] = (f && f->broker == b) ? f->scratch : NULL;
    ctx.core_[2] = native;
    ctx.index_ = 0;
    int rc = run_chain(b, &ctx);
    free(heap);
    last_publish_error_type = rc < 0 ? ctx.error_type : NULL;
    return rc > 0 ? FS_OK : rc; /* FS_PENDING: accepted */
}

int fs__publish_run(fs_broker *b, void *dest, const char *destination, const char *label,
                    const fs_envelope *msgs, size_t count, bool is_reply)
{
    return publish_run(b, dest, destination, label, 0, msgs, count, is_reply, NULL);
}

int fs__publish_run_id(fs_broker *b, void *dest, const char *destination, const char *label,
                       uint64_t label_id, const fs_envelope *msgs, size_t count, bool is_reply)
{
    return publish_run(b, dest, destination, label, label ? label_id : 0, msgs, count, is_reply,
                       NULL);
}

void fs_adapter_publish_result(fs_broker *b, const char *destination, size_t count, int status,
                               const char *error_type, double elapsed_s)
{
    if (!b)
        return;
    fs_publish_result_ctx ctx;
    ctx.broker = b;
    ctx.broker_name = b->ops->name;
    ctx.destination = destination ? destination : "";
    ctx.count = count;
    ctx.status = status > 0 ? FS_OK : status;
    ctx.error_type = status < 0 ? (error_type ? error_type : "Error") : NULL;
    ctx.elapsed_s = elapsed_s;
    /* The chain is fixed once the broker started, and pending publishes exist only then. */
    for (size_t i = 0; i < b->mw_count; i++) {
        if (!b->mws[i].publish_result)
            continue;
        ctx.state = b->mws[i].state;
        b->mws[i].publish_result(&ctx);
    }
}

int fs__check_envelopes(const char *fn, const fs_envelope *msgs, size_t count)
{
    for (size_t i = 0; i < count; i++) {
        FS_CHECK_ARG(msgs[i].body || msgs[i].body_len == 0,
                     "%s: message %zu has a NULL body with length %zu", fn, i, msgs[i].body_len);
        FS_CHECK_ARG(msgs[i].headers || msgs[i].header_count == 0,
                     "%s: message %zu has NULL headers with count %zu", fn, i,
                     msgs[i].header_count);
        for (size_t h = 0; h < msgs[i].header_count; h++)
            FS_CHECK_ARG(msgs[i].headers[h].name && msgs[i].headers[h].value,
                         "%s: message %zu header %zu has a NULL name or value", fn, i, h);
    }
    return FS_OK;
}

static int check_publish(const char *fn, fs_broker *b, const char *destination,
                         const fs_envelope *msgs, size_t count)
{
    last_publish_error_type = NULL;
    FS_CHECK_ARG(b, "%s: broker is NULL", fn);
    FS_CHECK_ARG(destination && *destination, "%s: destination is NULL or empty", fn);
    FS_CHECK_ARG(msgs, "%s: message is NULL", fn);
    FS_CHECK_ARG(count > 0, "%s: count is 0", fn);
    return fs__check_envelopes(fn, msgs, count);
}

int fs_publish(fs_broker *b, const char *destination, const fs_envelope *msg)
{
    int rc = check_publish("fs_publish", b, destination, msg, 1);
    if (rc < 0)
        return rc;
    return fs__publish_run(b, NULL, destination, NULL, msg, 1, false);
}

int fs_publish_bytes(fs_broker *b, const char *destination, const void *body, size_t len)
{
    fs_envelope env = FS_ENVELOPE_INIT;
    env.body = body;
    env.body_len = len;
    int rc = check_publish("fs_publish_bytes", b, destination, &env, 1);
    if (rc < 0)
        return rc;
    return fs__publish_run(b, NULL, destination, NULL, &env, 1, false);
}

int fs_publish_batch(fs_broker *b, const char *destination, const fs_envelope *msgs, size_t count)
{
    int rc = check_publish("fs_publish_batch", b, destination, msgs, count);
    if (rc < 0)
        return rc;
    return fs__publish_run(b, NULL, destination, NULL, msgs, count, false);
}

/* ------------------------------------------------------------------------ */
/* Request / reply                                                          */

static void *inbox_main(void *arg)
{
    fs_broker *b = arg;
    const fs_broker_ops *ops = b->ops;
    while (!atomic_load_explicit(&b->req_quit, memory_order_acquire)) {
        fs_message *m = NULL;
        int rc = ops->fetch(b->impl, b->req_sub, 0, 100, &m);
        if (rc == FS_ETIMEDOUT || (rc == FS_OK && !m))
            continue;
        if (rc < 0) {
            fs_kit_sleep_ms(rc == FS_ECLOSED ? 20 : 100);
            continue;
        }
        fs__message_bind(m, b, NULL, b->req_sub, NULL, b->req_no_ack ? FS__MSG_WIRE_DONE : 0u,
                         FS_SETTLE_NONE, 0);
        fs_message *copy = fs_message_copy(m);
        const char *corr = m->correlation_id;
        bool delivered = false;
        if (copy && corr) {
            pthread_mutex_lock(&b->req_lock);
            for (fs__waiter *w = b->waiters; w; w = w->next) {
                if (!w->reply && strcmp(w->corr, corr) == 0) {
                    w->reply = copy;
                    delivered = true;
                    pthread_cond_broadcast(&b->req_cond);
                    break;
                }
            }
            pthread_mutex_unlock(&b->req_lock);
        }
        if (!copy)
            fs__log(FS_LOG_WARN, "core", "broker %s: lost the reply with correlation id %s: %s",
                    ops->name, corr ? corr : "(none)", fs_last_error());
        else if (!delivered)
            fs__log(FS_LOG_DEBUG, "core", "broker %s: dropped a reply with correlation id %s",
                    ops->name, corr ? corr : "(none)");
        if (!delivered)
            fs_message_free(copy);
        fs__settle(m, FS_SETTLE_ACKED);
        m->release(m);
    }
    return NULL;
}

/* Create the reply inbox and its thread on first use (req_lock held). */
static int inbox_ensure(fs_broker *b)
{
    if (b->req_ready)
        return FS_OK;
    static _Atomic uint64_t inbox_counter;
    snprintf(b->req_inbox, sizeof b->req_inbox, "faststream.inbox.%ld.%llu.%llx", (long)getpid(),
             (unsigned long long)atomic_fetch_add(&inbox_counter, 1),
             (unsigned long long)(fs_kit_now_ns() ^ (uintptr_t)b));
    fs_subscribe_spec spec;
    memset(&spec, 0, sizeof spec);
    spec.source = b->req_inbox;
    spec.ack_policy = FS_ACK_POLICY_ACK;
    spec.concurrency = 1;
    spec.reply_inbox = true;
    spec.redelivery.delay_ms = 100;
    spec.redelivery.max_delay_ms = 10000;
    fs__spec_outputs_init(b, &spec);
    int rc = b->ops->subscribe(b->impl, &spec, &b->req_sub);
    if (rc < 0)
        return rc;
    b->req_no_ack = spec.no_ack;
    if (b->ops->subscription_start) {
        rc = b->ops->subscription_start(b->impl, b->req_sub);
        if (rc < 0)
            goto fail;
    }
    atomic_store(&b->req_quit, false);
    int err = pthread_create(&b->req_thread, NULL, inbox_main, b);
    if (err) {
        rc = fs__error(FS_ENOMEM, "cannot start the reply inbox thread: %s", strerror(err));
        goto fail;
    }
    b->req_ready = true;
    return FS_OK;
fail:
    if (b->ops->unsubscribe)
        b->ops->unsubscribe(b->impl, b->req_sub);
    b->req_sub = NULL;
    return rc;
}

void fs__request_shutdown(fs_broker *b)
{
    pthread_mutex_lock(&b->req_lock);
    bool ready = b->req_ready;
    b->req_ready = false;
    /* Requests still waiting would wait for a reply that cannot come. */
    for (fs__waiter *w = b->waiters; w; w = w->next)
        w->closed = true;
    pthread_cond_broadcast(&b->req_cond);
    pthread_mutex_unlock(&b->req_lock);
    if (!ready)
        return;
    atomic_store(&b->req_quit, true);
    pthread_join(b->req_thread, NULL);
    if (b->ops->unsubscribe)
        b->ops->unsubscribe(b->impl, b->req_sub);
    b->req_sub = NULL;
}

static int do_request(fs_broker *b, void *dest, const char *destination, const char *label,
                      const fs_envelope *msg, int timeout_ms, fs_message **reply)
{
    if (b->ops->caps & FS_CAP_NATIVE_REQUEST) {
        /*
         * Through the publish chain like any publish, as FastStream's
         * _basic_request runs producer.request inside each middleware's
         * publish_scope: the request counts as one publish, the reply nowhere.
         */
        native_request nr = {timeout_ms, reply};
        return publish_run(b, dest, destination, label, 0, msg, 1, false, &nr);
    }
    int rc = fs__broker_ensure_connected(b);
    if (rc < 0)
        return rc;
    fs__waiter w;
    memset(&w, 0, sizeof w);
    if (msg->correlation_id) {
        FS_CHECK_ARG(strlen(msg->correlation_id) < sizeof w.corr,
                     "fs_request: correlation id longer than %zu bytes", sizeof w.corr - 1);
        strcpy(w.corr, msg->correlation_id);
    } else {
        snprintf(w.corr, sizeof w.corr, "%llx-%llx",
                 (unsigned long long)atomic_fetch_add(&b->req_seq, 1) + 1,
                 (unsigned long long)(fs_kit_now_ns() ^ ((uintptr_t)&w >> 4)));
    }
    pthread_mutex_lock(&b->req_lock);
    rc = inbox_ensure(b);
    if (rc < 0) {
        pthread_mutex_unlock(&b->req_lock);
        return rc;
    }
    w.next = b->waiters;
    b->waiters = &w;
    pthread_mutex_unlock(&b->req_lock);

    fs_envelope env = *msg;
    env.correlation_id = w.corr;
    env.reply_to = b->req_inbox;
    rc = fs__publish_run(b, dest, destination, label, &env, 1, false);

    struct timespec deadline = fs_kit_deadline_ts(timeout_ms);
    pthread_mutex_lock(&b->req_lock);
    while (rc >= 0 && !w.reply && !w.closed) {
        if (timeout_ms < 0)
            pthread_cond_wait(&b->req_cond, &b->req_lock);
        else if (pthread_cond_timedwait(&b->req_cond, &b->req_lock, &deadline) != 0)
            break;
    }
    for (fs__waiter **pp = &b->waiters; *pp; pp = &(*pp)->next) {
        if (*pp == &w) {
            *pp = w.next;
            break;
        }
    }
    pthread_mutex_unlock(&b->req_lock);
    if (rc < 0) {
        fs_message_free(w.reply);
        return rc;
    }
    if (!w.reply && w.closed)
        return fs__error(FS_ECLOSED, "broker %s was closed while the request on '%s' waited",
                         b->ops->name, destination);
    if (!w.reply)
        return fs__error(FS_ETIMEDOUT, "no reply to the request on '%s' within %d ms", destination,
                         timeout_ms);
    *reply = w.reply;
    return FS_OK;
}

int fs_request(fs_broker *b, const char *destination, const fs_envelope *msg, int timeout_ms,
               fs_message **reply)
{
    FS_CHECK_ARG(reply, "fs_request: reply is NULL");
    *reply = NULL;
    int rc = check_publish("fs_request", b, destination, msg, 1);
    if (rc < 0)
        return rc;
    return do_request(b, NULL, destination, NULL, msg, timeout_ms, reply);
}

/* ------------------------------------------------------------------------ */
/* Publisher objects                                                        */

/*
 * The publisher's destination label, once (ops->destination_label for its
 * broker_options), kept for every publish with those options.
 */
static int publisher_label(struct fs_publisher *p)
{
    char buf[FS_DESTINATION_LABEL_MAX];
    const char *label;
    int rc = label_of(p->broker, p->dest, p->destination, p->broker_options, buf, &label);
    if (rc < 0)
        return rc;
    p->label = p->destination;
    p->label_id = fs__label_id_new();
    if (label != p->destination && strcmp(label, p->destination) != 0) {
        if (!(p->label_copy = fs_kit_strdup(label)))
            return fs__error(FS_ENOMEM, "out of memory creating a publisher");
        p->label = p->label_copy;
    }
    return FS_OK;
}

int fs_publisher_new(fs_broker *b, const char *destination, const fs_publisher_options *opts,
                     fs_publisher **out)
{
    FS_CHECK_ARG(out, "fs_publisher_new: out is NULL");
    *out = NULL;
    FS_CHECK_ARG(b, "fs_publisher_new: broker is NULL");
    FS_CHECK_ARG(destination && *destination, "fs_publisher_new: destination is NULL or empty");
    struct fs_publisher *p = calloc(1, sizeof *p);
    if (!p)
        return fs__error(FS_ENOMEM, "out of memory creating a publisher");
    p->broker = b;
    p->destination = fs_kit_strdup(destination);
    if (opts) {
        p->broker_options = opts->broker_options;
        if (opts->reply_to)
            p->reply_to = fs_kit_strdup(opts->reply_to);
    }
    if (!p->destination || (opts && opts->reply_to && !p->reply_to)) {
        fs__publisher_destroy(p);
        return fs__error(FS_ENOMEM, "out of memory creating a publisher");
    }
    pthread_mutex_lock(&b->lock);
    int rc = FS_OK;
    if (b->closed)
        rc = fs__error(FS_ECLOSED, "fs_publisher_new: broker %s is closed", b->ops->name);
    else if (b->ops->prepare_destination)
        rc = b->ops->prepare_destination(b->impl, p->destination, p->broker_options, &p->dest);
    if (rc >= 0)
        rc = publisher_label(p);
    if (rc >= 0) {
        p->next = b->pubs;
        b->pubs = p;
    }
    pthread_mutex_unlock(&b->lock);
    if (rc < 0) {
        fs__publisher_destroy(p);
        return rc;
    }
    *out = p;
    return FS_OK;
}

/*
 * The kept label when the publish uses the publisher's options or the
 * adapter's labels do not depend on options (no destination_label op: the
 * label is the destination), else NULL (made per publish).
 */
static const char *label_for(const fs_publisher *pub, const void *options)
{
    return !options || options == pub->broker_options || !pub->broker->ops->destination_label
               ? pub->label
               : NULL;
}

const char *fs_publisher_destination(const fs_publisher *pub)
{
    return pub ? pub->destination : NULL;
}

/* Apply the publisher's defaults to one envelope. */
static void with_defaults(const fs_publisher *pub, const fs_envelope *in, fs_envelope *out)
{
    *out = *in;
    if (!out->broker_options)
        out->broker_options = pub->broker_options;
    if (!out->reply_to)
        out->reply_to = pub->reply_to;
}

int fs_publisher_publish(fs_publisher *pub, const fs_envelope *msg)
{
    FS_CHECK_ARG(pub, "fs_publisher_publish: publisher is NULL");
    int rc = check_publish("fs_publisher_publish", pub->broker, pub->destination, msg, 1);
    if (rc < 0)
        return rc;
    fs_envelope env;
    with_defaults(pub, msg, &env);
    return fs__publish_run_id(pub->broker, pub->dest, pub->destination,
                              label_for(pub, env.broker_options), pub->label_id, &env, 1, false);
}

int fs_publisher_publish_bytes(fs_publisher *pub, const void *body, size_t len)
{
    fs_envelope env = FS_ENVELOPE_INIT;
    env.body = body;
    env.body_len = len;
    return fs_publisher_publish(pub, &env);
}

int fs_publisher_publish_batch(fs_publisher *pub, const fs_envelope *msgs, size_t count)
{
    FS_CHECK_ARG(pub, "fs_publisher_publish_batch: publisher is NULL");
    int rc =
        check_publish("fs_publisher_publish_batch", pub->broker, pub->destination, msgs, count);
    if (rc < 0)
        return rc;
    const char *label = label_for(pub, msgs[0].broker_options);
    if (!pub->broker_options && !pub->reply_to)
        return fs__publish_run_id(pub->broker, pub->dest, pub->destination, label, pub->label_id,
                                  msgs, count, false);
    /* The envelopes with the defaults applied: on the stack for usual batch sizes. */
    fs_envelope local[32];
    fs_envelope *copy = count <= sizeof local / sizeof local[0]
                            ? local
                            : calloc(count, sizeof *copy); /* calloc: count * size checked */
    if (!copy)
        return fs__error(FS_ENOMEM, "out of memory for a batch of %zu", count);
    for (size_t i = 0; i < count; i++)
        with_defaults(pub, &msgs[i], &copy[i]);
    rc = fs__publish_run_id(pub->broker, pub->dest, pub->destination, label, pub->label_id, copy,
                            count, false);
    if (copy != local)
        free(copy);
    return rc;
}

int fs_publisher_request(fs_publisher *pub, const fs_envelope *msg, int timeout_ms,
                         fs_message **reply)
{
    FS_CHECK_ARG(reply, "fs_publisher_request: reply is NULL");
    *reply = NULL;
    FS_CHECK_ARG(pub, "fs_publisher_request: publisher is NULL");
    int rc = check_publish("fs_publisher_request", pub->broker, pub->destination, msg, 1);
    if (rc < 0)
        return rc;
    fs_envelope env = *msg;
    if (!env.broker_options)
        env.broker_options = pub->broker_options;
    return do_request(pub->broker, pub->dest, pub->destination, label_for(pub, env.broker_options),
                      &env, timeout_ms, reply);
}

void fs_publisher_free(fs_publisher *pub)
{
    if (!pub)
        return;
    fs_broker *b = pub->broker;
    pthread_mutex_lock(&b->lock);
    for (struct fs_publisher **pp = &b->pubs; *pp; pp = &(*pp)->next) {
        if (*pp == pub) {
            *pp = pub->next;
            break;
        }
    }
    pthread_mutex_unlock(&b->lock);
    fs__publisher_destroy(pub);
}

void fs__publisher_destroy(struct fs_publisher *p)
{
    fs_broker *b = p->broker;
    if (p->dest && b->ops->release_destination)
        b->ops->release_destination(b->impl, p->dest);
    free(p->destination);
    free(p->label_copy);
    free(p->reply_to);
    free(p);
}
