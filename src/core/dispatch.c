/*
 * The consuming side of the core: worker threads that pull messages from
 * the adapter, run the consume middleware chain and the handler, settle
 * per the ack policy and release the message.
 *
 * Hot path (per message): one fetch, a few stores into the message, the
 * chain (plain indirect calls), a plain store to settle, one release and
 * the worker's own handled counter (no read-modify-write shared with other
 * threads). No lock, no allocation.
 */
#include "core/core.h"

#include <stdlib.h>
#include <string.h>

/* How long one fetch may block; stop wakes fetchers earlier through ops->stop. */
#define FS__FETCH_TIMEOUT_MS 500

_Thread_local fs__frame *fs__current_frame FS_TLS_MODEL;

/* ------------------------------------------------------------------------ */
/* The chain                                                                */

static fs_outcome run_handler(fs_consume_ctx *ctx, fs__frame *f)
{
    struct fs_subscriber *sub = f->sub;
    fs_message *unit = ctx->message;
    fs__mcore *c = fs__mc(unit);
    if (sub->policy == FS_ACK_POLICY_ACK_FIRST && !(c->flags & FS__MSG_WIRE_DONE)) {
        /*
         * The broker gets its ack now; the message's state stays as it is
         * (the status still says what the handler does, as FastStream's).
         * Ordered subscriptions ack in order, once the handler returned.
         */
        int rc = FS_OK;
        if (sub->ordered) {
            c->op = FS_SETTLE_ACKED;
            c->flags |= FS__MSG_DEFERRED;
        } else {
            rc = fs__settle_adapter(unit, FS_SETTLE_ACKED);
        }
        c->flags |= FS__MSG_WIRE_DONE;
        if (rc < 0)
            fs__log(FS_LOG_WARN, "core", "subscriber %s: ack before handling failed: %s", sub->name,
                    fs_last_error());
    }
    return sub->handler(unit, sub->user);
}

/*
 * A hook called fs_consume_next a second time: the handler must not run (or
 * the message be settled) twice. Return the first call's outcome, unchanged
 * in ctx.
 */
static fs_outcome consume_next_again(fs_consume_ctx *ctx, size_t i)
{
    fs_broker *b = ctx->broker;
    const char *name = fs__chain_caller(b, b->consume_chain, i);
    fs__error(FS_ESTATE,
              "middleware %s called fs_consume_next twice for one message on %s; "
              "the second call returned the first one's outcome",
              name, ctx->handler);
    fs__log(FS_LOG_WARN, "core", "%s", fs_last_error());
    return ctx->outcome;
}

/*
 * A level's outcome that is FS_OUTCOME_ERROR or no outcome at all: the
 * latter fails the message (InvalidOutcome); a failure gets the error type
 * "Error" when nothing named one.
 */
static __attribute__((noinline)) fs_outcome level_failed(fs_consume_ctx *ctx, fs__frame *f,
                                                         fs_outcome o)
{
    if ((unsigned)o > (unsigned)FS_OUTCOME_ERROR)
        o = fs_message_fail(ctx->message, "InvalidOutcome", "returned outcome %d", (int)o);
    if (o == FS_OUTCOME_ERROR && !f->has_error) {
        memcpy(f->error_type, "Error", sizeof "Error");
        f->error_text[0] = '\0';
        f->has_error = true;
    }
    return o;
}

/* Run hook `mw` as level i of the chain (ctx->state and scratch are its own while it runs). */
static inline fs_outcome run_level(fs_consume_ctx *ctx, fs__frame *f, const fs__mw *mw, size_t i)
{
    ctx->index_ = i + 1;
    ctx->state = mw->state;
    ctx->scratch = mw->scratch_size ? f->scratch + mw->scratch_off : NULL;
    return mw->consume(ctx);
}

fs_outcome fs_consume_next(fs_consume_ctx *ctx)
{
    if (!ctx || !ctx->broker || !ctx->core_[0]) {
        fs__error(FS_EINVAL, "fs_consume_next: not a context handed to a consume hook");
        return FS_OUTCOME_ERROR;
    }
    fs_broker *b = ctx->broker;
    fs__frame *f = ctx->core_[0];
    size_t i = ctx->index_;
    if (i & FS__CHAIN_DONE)
        return consume_next_again(ctx, i & ~FS__CHAIN_DONE);
    fs_outcome o;
    if (i < b->consume_count) {
        void *saved_state = ctx->state, *saved_scratch = ctx->scratch;
        o = run_level(ctx, f, &b->mws[b->consume_chain[i]], i);
        ctx->state = saved_state;
        ctx->scratch = saved_scratch;
    } else {
        ctx->index_ = i + 1;
        o = run_handler(ctx, f);
    }
    if (FS_UNLIKELY((unsigned)o >= (unsigned)FS_OUTCOME_ERROR))
        o = level_failed(ctx, f, o);
    ctx->outcome = o;
    ctx->error_type = o == FS_OUTCOME_ERROR ? f->error_type : NULL;
    ctx->index_ = i | FS__CHAIN_DONE;
    return o;
}

/*
 * The chain from its first level, for the core's own call: the first hook
 * is called directly (there is nothing of the caller's to save in ctx, and
 * nobody reads ctx after it), the further levels through fs_consume_next.
 */
static inline fs_outcome run_chain(fs_broker *b, fs_consume_ctx *ctx, fs__frame *f)
{
    if (!b->consume_count)
        return fs_consume_next(ctx);
    fs_outcome o = run_level(ctx, f, &b->mws[b->consume_chain[0]], 0);
    if (FS_UNLIKELY((unsigned)o >= (unsigned)FS_OUTCOME_ERROR))
        o = level_failed(ctx, f, o);
    return o;
}

/* The statuses line up with the settlement states and outcomes: see fs_consume_status_code. */
_Static_assert(FS_SETTLE_ACKED == 1 && FS_SETTLE_NACKED == 2 && FS_SETTLE_REJECTED == 3 &&
                   FS_RECEIVED_ACKED == 0 && FS_RECEIVED_NACKED == 1 && FS_RECEIVED_REJECTED == 2,
               "a settlement state s is status s - 1");
_Static_assert(FS_OUTCOME_OK == 0 && FS_OUTCOME_ACK == 1 && FS_OUTCOME_NACK == 2 &&
                   FS_OUTCOME_REJECT == 3 && FS_OUTCOME_SKIP == 4 && FS_OUTCOME_ERROR == 5 &&
                   FS_RECEIVED_SKIPPED == 3 && FS_RECEIVED_ERROR == 4,
               "an outcome o > 0 is status o - 1, OK is acked");

fs_received_status fs_consume_status_code(const fs_consume_ctx *ctx)
{
    if (!ctx)
        return FS_RECEIVED_ACKED;
    /* a settlement (acked, nacked, rejected) wins over the outcome */
    unsigned s = ctx->message ? (unsigned)atomic_load_explicit(&fs__mc(ctx->message)->settled,
                                                               memory_order_acquire)
                              : FS_SETTLE_NONE;
    if (s - 1u < 3u)
        return (fs_received_status)(s - 1u);
    unsigned o = (unsigned)ctx->outcome;
    if (o <= (unsigned)FS_OUTCOME_ERROR)
        return (fs_received_status)(o - (o != 0));
    return FS_RECEIVED_ACKED;
}

const char *fs_received_status_name(fs_received_status s)
{
    static const char *const NAMES[] = {"acked", "nacked", "rejected", "skipped", "error"};
    return (unsigned)s < sizeof NAMES / sizeof NAMES[0] ? NAMES[s] : NULL;
}

const char *fs_consume_status(const fs_consume_ctx *ctx)
{
    return fs_received_status_name(fs_consume_status_code(ctx));
}

/* ------------------------------------------------------------------------ */
/* Dispatch of one unit                                                     */

static fs_settle_state policy_settlement(fs_ack_policy policy, fs_outcome o)
{
    switch (o) {
    case FS_OUTCOME_ACK:
        return FS_SETTLE_ACKED;
    case FS_OUTCOME_NACK:
        return FS_SETTLE_NACKED;
    case FS_OUTCOME_REJECT:
        return FS_SETTLE_REJECTED;
    case FS_OUTCOME_SKIP:
        return FS_SETTLE_NONE;
    case FS_OUTCOME_OK:
        return policy == FS_ACK_POLICY_MANUAL ? FS_SETTLE_NONE : FS_SETTLE_ACKED;
    case FS_OUTCOME_ERROR:
        switch (policy) {
        case FS_ACK_POLICY_ACK:
            return FS_SETTLE_ACKED;
        case FS_ACK_POLICY_REJECT_ON_ERROR:
            return FS_SETTLE_REJECTED;
        case FS_ACK_POLICY_NACK_ON_ERROR:
            return FS_SETTLE_NACKED;
        default:
            return FS_SETTLE_NONE;
        }
    }
    return FS_SETTLE_NONE;
}

/* Settle (deferred) and release the unit: the end of its life in the core. */
static inline __attribute__((always_inline)) void finish(fs__frame *f, fs_message *unit)
{
    fs__mcore *c = fs__mc(unit);
    if (c->flags & FS__MSG_DEFERRED) {
        c->flags &= (uint16_t)~FS__MSG_DEFERRED;
        if (fs__settle_adapter(unit, (fs_settle_state)c->op) < 0)
            fs__log(FS_LOG_WARN, "core", "subscriber %s: %s failed: %s", f->sub->name,
                    fs_settle_state_name((fs_settle_state)c->op), fs_last_error());
    }
    if (c->flags & FS__MSG_BATCH) {
        int s = atomic_load_explicit(&c->settled, memory_order_acquire);
        for (size_t i = 0; i < c->count; i++) {
            fs_message *m = c->items[i];
            atomic_store_explicit(&fs__mc(m)->settled, s, memory_order_relaxed);
            fs__mc(m)->frame = NULL;
            m->release(m);
        }
    } else {
        c->frame = NULL;
        unit->release(unit);
    }
}

/*
 * Ordered settlement. Units are numbered in fetch order (worker_main) and
 * finished strictly in that order: order_done is the next number whose turn
 * it is. The worker whose turn it is finishes its unit, publishes the next
 * turn and wakes the worker waiting for it, if one sleeps; nothing on this
 * side takes fetch_mu, so no finished unit waits on another worker's fetch.
 *
 * At most `concurrency` units are numbered and not finished (a worker
 * fetches again only after finishing), so the sleeper for turn s owns slot
 * s & order_mask of order_waiting alone (its size is at least that). The
 * slot holds s and the worker (0: none); a stale value (its worker saw its
 * turn without sleeping) names another turn and is ignored. The store of
 * the turn and the look at the slot on one side, the store of the slot and
 * the look at the turn on the other, are sequentially consistent: one side
 * sees the other, so no wake-up is lost.
 */
#define FS__ORDER_WORKER_BITS 11 /* holds a worker index + 1 */
_Static_assert(FS__MAX_CONCURRENCY < (1u << FS__ORDER_WORKER_BITS), "worker bits too few");

static void order_wait_turn(fs__frame *f, uint64_t seq)
{
    struct fs_subscriber *sub = f->sub;
    if (FS_LIKELY(atomic_load_explicit(&sub->order_done, memory_order_acquire) == seq))
        return;
    _Atomic uint64_t *slot = &sub->order_waiting[seq & sub->order_mask];
    uint64_t me = seq << FS__ORDER_WORKER_BITS | (uint64_t)(f->index + 1);
    atomic_store_explicit(slot, me, memory_order_seq_cst);
    pthread_mutex_lock(&f->turn_mu);
    while (atomic_load_explicit(&sub->order_done, memory_order_seq_cst) != seq)
        pthread_cond_wait(&f->turn_cv, &f->turn_mu);
    pthread_mutex_unlock(&f->turn_mu);
    /* Unless the waker took it: clear the slot (a later turn's sleeper may own it already). */
    atomic_compare_exchange_strong_explicit(slot, &me, 0, memory_order_relaxed,
                                            memory_order_relaxed);
}

static void order_pass_turn(fs__frame *f, uint64_t next)
{
    struct fs_subscriber *sub = f->sub;
    atomic_store_explicit(&sub->order_done, next, memory_order_seq_cst);
    _Atomic uint64_t *slot = &sub->order_waiting[next & sub->order_mask];
    uint64_t v = atomic_load_explicit(slot, memory_order_seq_cst);
    if (FS_LIKELY(v >> FS__ORDER_WORKER_BITS != next)) /* nobody sleeps for this turn */
        return;
    if (!atomic_compare_exchange_strong_explicit(slot, &v, 0, memory_order_relaxed,
                                                 memory_order_relaxed))
        return; /* the sleeper saw its turn and left */
    fs__frame *w = f - f->index + ((v & ((1u << FS__ORDER_WORKER_BITS) - 1)) - 1);
    pthread_mutex_lock(&w->turn_mu);
    pthread_cond_signal(&w->turn_cv);
    pthread_mutex_unlock(&w->turn_mu);
}

static void finish_ordered(fs__frame *f, fs_message *unit)
{
    uint64_t seq = f->seq;
    order_wait_turn(f, seq);
    finish(f, unit);
    order_pass_turn(f, seq + 1);
}

static void dispatch(fs__frame *f, fs_message *unit)
{
    struct fs_subscriber *sub = f->sub;
    fs_broker *b = f->broker;
    fs__mcore *uc = fs__mc(unit);
    size_t count = fs_message_count(unit);

    uc->frame = f;
    f->unit = unit;
    f->has_error = false;
    if (b->scratch_total)
        memset(f->scratch, 0, b->scratch_total);

    fs_consume_ctx ctx;
    ctx.broker = b;
    ctx.broker_name = b->ops->name;
    ctx.subscriber = sub;
    ctx.message = unit;
    ctx.handler = unit->source ? unit->source : sub->source;
    ctx.handler_id = unit->source ? unit->source_id : 0;
    ctx.handler_len = unit->source ? unit->source_len : 0;
    if (sub->handler_id) {
#ifndef NDEBUG
        /* The adapter promised fixed_source: hold it to it in debug builds. */
        if (unit->source && strcmp(unit->source, sub->source) != 0)
            fs__log(FS_LOG_ERROR, "core",
                    "adapter %s: subscription %s declared fixed_source but a message came on %s",
                    b->ops->name, sub->source, unit->source);
        else
#endif
        {
            ctx.handler = sub->source;
            ctx.handler_id = sub->handler_id;
            ctx.handler_len = 0;
        }
    }
    ctx.count = count;
    ctx.size = fs_message_size(unit);
    ctx.state = NULL;
    ctx.scratch = NULL;
    ctx.outcome = FS_OUTCOME_OK;
    ctx.error_type = NULL;
    ctx.core_[0] = f;
    ctx.core_[1] = NULL;
    ctx.core_[2] = NULL;
    ctx.index_ = 0;

    fs__current_frame = f;
    fs_outcome o = run_chain(b, &ctx, f);
    fs__current_frame = NULL;

    if (o == FS_OUTCOME_ERROR && fs__log_enabled(FS_LOG_ERROR))
        fs__log(FS_LOG_ERROR, "core", "handler %s failed on %s: %s%s%s", sub->name, ctx.handler,
                f->error_type, f->error_text[0] ? ": " : "", f->error_text);

    if (fs_message_settled(unit) == FS_SETTLE_NONE) {
        fs_settle_state s = policy_settlement(sub->policy, o);
        if (s == FS_SETTLE_NACKED && !(b->ops->caps & FS_CAP_NACK))
            s = FS_SETTLE_NONE; /* no nack on this broker: released unsettled */
        if (s != FS_SETTLE_NONE && fs__settle_owned(unit, s) < 0)
            fs__log(FS_LOG_WARN, "core", "subscriber %s: %s failed: %s", sub->name,
                    fs_settle_state_name(s), fs_last_error());
    }

    f->unit = NULL;
    if (sub->ordered)
        finish_ordered(f, unit);
    else
        finish(f, unit);
    atomic_store_explicit(&f->handled,
                          atomic_load_explicit(&f->handled, memory_order_relaxed) + count,
                          memory_order_release);
}

static inline void prepare(fs__frame *f, fs_message *m, unsigned flags)
{
    struct fs_subscriber *sub = f->sub;
    fs__message_bind(m, f->broker, sub, sub->adapter_sub, f,
                     flags | (sub->no_ack ? FS__MSG_WIRE_DONE : 0u), sub->presettled, f->index);
}

/* Collect a batch with ops->fetch when the adapter has no fetch_batch. */
static int fetch_batch_by_one(fs__frame *f, size_t *n)
{
    struct fs_subscriber *sub = f->sub;
    const fs_broker_ops *ops = f->broker->ops;
    void *impl = f->broker->impl;
    *n = 0;
    int rc = ops->fetch(impl, sub->adapter_sub, f->index, FS__FETCH_TIMEOUT_MS, &f->items[0]);
    if (rc < 0)
        return rc;
    *n = 1;
    uint64_t deadline = fs_kit_deadline_ns(sub->batch_timeout_ms);
    while (*n < sub->batch_size) {
        int left = fs_kit_ms_left(deadline);
        if (left == 0)
            break;
        rc = ops->fetch(impl, sub->adapter_sub, f->index, left, &f->items[*n]);
        if (rc < 0)
            break;
        (*n)++;
    }
    return FS_OK;
}

/* Take the next batch, built in the frame. */
static __attribute__((noinline)) int fetch_batch_unit(fs__frame *f, fs_message **out)
{
    struct fs_subscriber *sub = f->sub;
    fs_broker *b = f->broker;
    const fs_broker_ops *ops = b->ops;
    fs_message *unit = NULL;
    int rc;
    {
        size_t n = 0;
        if (ops->fetch_batch)
            rc = ops->fetch_batch(b->impl, sub->adapter_sub, f->index, f->items, sub->batch_size,
                                  sub->batch_timeout_ms, FS__FETCH_TIMEOUT_MS, &n);
        else
            rc = fetch_batch_by_one(f, &n);
        if (n > 0) {
            fs_message *batch = &f->batch;
            fs_message_init(batch);
            size_t size = 0;
            for (size_t i = 0; i < n; i++) {
                prepare(f, f->items[i], FS__MSG_CHILD);
                size += f->items[i]->body_len;
            }
            fs__message_bind(batch, b, sub, sub->adapter_sub, NULL,
                             FS__MSG_BATCH | (sub->no_ack ? FS__MSG_WIRE_DONE : 0u),
                             sub->presettled, f->index);
            fs__mcore *bc = fs__mc(batch);
            batch->source = f->items[0]->source;
            batch->source_len = f->items[0]->source_len;
            batch->source_id = f->items[0]->source_id;
            bc->items = f->items;
            bc->count = n;
            bc->size = size;
            unit = batch;
            rc = FS_OK;
        } else if (rc == FS_OK) {
            rc = FS_ETIMEDOUT;
        }
    }
    *out = unit;
    return rc;
}

/* Take the next unit (a message, or a batch built in the frame). */
static inline __attribute__((always_inline)) int fetch_unit(fs__frame *f, fs_message **out)
{
    struct fs_subscriber *sub = f->sub;
    if (FS_UNLIKELY(sub->batch_size != 0))
        return fetch_batch_unit(f, out);
    fs_broker *b = f->broker;
    fs_message *unit = NULL;
    int rc = b->ops->fetch(b->impl, sub->adapter_sub, f->index, FS__FETCH_TIMEOUT_MS, &unit);
    if (FS_LIKELY(rc == FS_OK && unit))
        prepare(f, unit, 0);
    else if (rc == FS_OK)
        rc = FS_ETIMEDOUT;
    *out = unit;
    return rc;
}

static void *worker_main(void *arg)
{
    fs__frame *f = arg;
    struct fs_subscriber *sub = f->sub;
    fs_broker *b = f->broker;
    uint64_t last_error_log = 0;

    while (!atomic_load_explicit(&sub->stop, memory_order_acquire)) {
        fs_message *unit = NULL;
        int rc;
        if (sub->ordered) {
            /*
             * One fetch at a time, numbered before the next one starts: the
             * numbers are the adapter's hand-out order. (Numbering after an
             * unserialised fetch could not be: two fetches may hand out in
             * one order and return in the other.) Settling never takes
             * this lock (finish_ordered).
             */
            pthread_mutex_lock(&sub->fetch_mu);
            rc = fetch_unit(f, &unit);
            if (rc == FS_OK)
                f->seq = sub->order_fetched++;
            pthread_mutex_unlock(&sub->fetch_mu);
        } else {
            rc = fetch_unit(f, &unit);
        }
        if (rc == FS_OK) {
            dispatch(f, unit);
            continue;
        }
        if (rc == FS_ETIMEDOUT)
            continue;
        if (rc == FS_ECLOSED) {
            if (atomic_load_explicit(&sub->stop, memory_order_acquire))
                break;
            fs_kit_sleep_ms(10);
            continue;
        }
        uint64_t now = fs_kit_now_ns();
        if (now - last_error_log > 5000000000ull || last_error_log == 0) {
            fs__log(FS_LOG_ERROR, "core", "subscriber %s: fetch failed (%s): %s; retrying",
                    sub->name, fs_strerror(rc), fs_last_error());
            last_error_log = now;
        }
        fs_kit_sleep_ms(100);
    }

    pthread_mutex_lock(&b->lock);
    b->live_workers--;
    sub->live_workers--;
    pthread_cond_broadcast(&b->cond);
    pthread_mutex_unlock(&b->lock);
    return NULL;
}

/* ------------------------------------------------------------------------ */
/* Worker lifecycle (called with the broker lock held)                      */

/* The sleepers' slots of ordered settlement: a power of two >= concurrency. */
static int order_slots_alloc(struct fs_subscriber *sub)
{
    size_t n = 1;
    while (n < sub->concurrency)
        n <<= 1;
    _Atomic uint64_t *slots = malloc(n * sizeof *slots);
    if (!slots)
        return fs__error(FS_ENOMEM, "out of memory for %u workers", sub->concurrency);
    for (size_t i = 0; i < n; i++)
        atomic_init(&slots[i], 0);
    sub->order_waiting = slots;
    sub->order_mask = n - 1;
    return FS_OK;
}

static int frames_alloc(struct fs_subscriber *sub)
{
    fs_broker *b = sub->broker;
    fs__frame *frames = NULL;
    size_t bytes = sub->concurrency * sizeof *frames;
    if (posix_memalign((void **)&frames, 64, bytes) != 0)
        return fs__error(FS_ENOMEM, "out of memory for %u workers", sub->concurrency);
    memset(frames, 0, bytes);
    atomic_store_explicit(&sub->frames, frames, memory_order_release);
    for (unsigned i = 0; i < sub->concurrency; i++) {
        fs__frame *f = &frames[i];
        f->sub = sub;
        f->broker = b;
        f->index = i;
        if (sub->batch_size) {
            f->items = calloc(sub->batch_size, sizeof *f->items);
            if (!f->items)
                return fs__error(FS_ENOMEM, "out of memory for a batch of %zu", sub->batch_size);
        }
        if (b->scratch_total) {
            void *p = NULL;
            if (posix_memalign(&p, 64, b->scratch_total) != 0)
                return fs__error(FS_ENOMEM, "out of memory for middleware scratch");
            f->scratch = p;
        }
        if (sub->ordered) {
            if (pthread_mutex_init(&f->turn_mu, NULL) != 0)
                return fs__error(FS_ENOMEM, "cannot create a worker's lock");
            if (pthread_cond_init(&f->turn_cv, NULL) != 0) {
                pthread_mutex_destroy(&f->turn_mu);
                return fs__error(FS_ENOMEM, "cannot create a worker's condition");
            }
            f->turn_init = true;
        }
    }
    return sub->ordered ? order_slots_alloc(sub) : FS_OK;
}

void fs__subscriber_free_frames(struct fs_subscriber *sub)
{
    fs__frame *frames = atomic_load(&sub->frames);
    if (!frames)
        return;
    for (unsigned i = 0; i < sub->concurrency; i++) {
        free(frames[i].items);
        free(frames[i].scratch);
        if (frames[i].turn_init) {
            pthread_cond_destroy(&frames[i].turn_cv);
            pthread_mutex_destroy(&frames[i].turn_mu);
        }
    }
    atomic_store(&sub->frames, NULL);
    free(frames);
    free((void *)sub->order_waiting);
    sub->order_waiting = NULL;
}

int fs__subscriber_start_workers(struct fs_subscriber *sub)
{
    fs_broker *b = sub->broker;
    if (sub->workers_started)
        return FS_OK;
    if (!sub->frames) {
        int rc = frames_alloc(sub);
        if (rc < 0) {
            fs__subscriber_free_frames(sub);
            return rc;
        }
    }
    atomic_store(&sub->stop, false);
    fs__frame *frames = atomic_load(&sub->frames);
    for (unsigned i = 0; i < sub->concurrency; i++) {
        fs__frame *f = &frames[i];
        int err = pthread_create(&f->thread, NULL, worker_main, f);
        if (err) {
            atomic_store(&sub->stop, true);
            sub->workers_started = true; /* so that the started ones get joined */
            return fs__error(FS_ENOMEM, "cannot start worker %u of subscriber %s: %s", i, sub->name,
                             strerror(err));
        }
        f->thread_started = true;
        b->live_workers++;
        sub->live_workers++;
    }
    sub->workers_started = true;
    return FS_OK;
}

void fs__subscriber_signal_stop(struct fs_subscriber *sub)
{
    atomic_store_explicit(&sub->stop, true, memory_order_release);
}

void fs__subscriber_join(struct fs_subscriber *sub)
{
    fs__frame *frames = atomic_load(&sub->frames);
    if (!frames)
        return;
    for (unsigned i = 0; i < sub->concurrency; i++) {
        fs__frame *f = &frames[i];
        if (f->thread_started) {
            pthread_join(f->thread, NULL);
            f->thread_started = false;
        }
    }
    sub->workers_started = false;
}

/* ------------------------------------------------------------------------ */
/* Subscriber accessors                                                     */

const char *fs_ack_policy_name(fs_ack_policy policy)
{
    switch (policy) {
    case FS_ACK_POLICY_DEFAULT:
        return "default";
    case FS_ACK_POLICY_ACK_FIRST:
        return "ack_first";
    case FS_ACK_POLICY_ACK:
        return "ack";
    case FS_ACK_POLICY_REJECT_ON_ERROR:
        return "reject_on_error";
    case FS_ACK_POLICY_NACK_ON_ERROR:
        return "nack_on_error";
    case FS_ACK_POLICY_MANUAL:
        return "manual";
    }
    return "unknown";
}

const char *fs_subscriber_source(const fs_subscriber *sub)
{
    return sub ? sub->source : NULL;
}

const char *fs_subscriber_name(const fs_subscriber *sub)
{
    return sub ? sub->name : NULL;
}

fs_ack_policy fs_subscriber_ack_policy(const fs_subscriber *sub)
{
    return sub ? sub->policy : FS_ACK_POLICY_DEFAULT;
}

fs_broker *fs_subscriber_broker(const fs_subscriber *sub)
{
    return sub ? sub->broker : NULL;
}

int fs_subscriber_backlog(const fs_subscriber *sub, int timeout_ms, uint64_t *out)
{
    FS_CHECK_ARG(sub && out, "fs_subscriber_backlog: subscriber and out are required");
    *out = 0;
    const fs_broker_ops *ops = sub->broker->ops;
    if (!(ops->caps & FS_CAP_BACKLOG) || !ops->backlog)
        return fs__error(FS_EUNSUPPORTED, "fs_subscriber_backlog: broker %s cannot tell",
                         ops->name);
    return ops->backlog(sub->broker->impl, sub->adapter_sub, timeout_ms, out);
}

uint64_t fs_subscriber_handled(const fs_subscriber *sub)
{
    if (!sub)
        return 0;
    fs__frame *frames = atomic_load_explicit(&((fs_subscriber *)sub)->frames, memory_order_acquire);
    uint64_t n = 0;
    if (frames)
        for (unsigned i = 0; i < sub->concurrency; i++)
            n += atomic_load_explicit(&frames[i].handled, memory_order_acquire);
    return n;
}

int fs_subscriber_wait_handled(const fs_subscriber *sub, uint64_t n, int timeout_ms)
{
    FS_CHECK_ARG(sub, "fs_subscriber_wait_handled: subscriber is NULL");
    uint64_t deadline = fs_kit_deadline_ns(timeout_ms);
    while (fs_subscriber_handled(sub) < n) {
        if (timeout_ms >= 0 && fs_kit_ms_left(deadline) == 0)
            return fs__error(
                FS_ETIMEDOUT, "subscriber %s handled %llu of %llu messages within %d ms", sub->name,
                (unsigned long long)fs_subscriber_handled(sub), (unsigned long long)n, timeout_ms);
        fs_kit_sleep_ms(1);
    }
    return FS_OK;
}
