/* The Prometheus middleware: the consume, publish and publish-result hooks (docs/semantics.md). */
#include "prometheus_internal.h"

/* ------------------------------------------------------------------------ */
/* Hooks                                                                    */

/*
 * Durations are taken with the kit's interval clock (kit/ticks.h): one
 * time-stamp-counter read where the kernel trusts the TSC, CLOCK_MONOTONIC
 * otherwise; fs_broker_add_prometheus chose the source before any hook ran.
 */

static void count_exception(const prom_state *st, fs_counter_family *fam, const char *const *keys,
                            const char *type)
{
    const char *vals[MAX_VALUES];
    fs__prom_build_values(st, keys[0], keys[1], type && *type ? type : "Error", keys + 2, vals);
    fs_counter *c = fs_counter_family_labels(fam, vals);
    if (c)
        fs_counter_inc(c);
}

/* The exception of a failed handler: keys NULL for the message's broker and handler. */
static __attribute__((noinline)) void consume_exception(const fs_consume_ctx *ctx,
                                                        const char *const *keys)
{
    const char *own[2] = {ctx->broker_name ? ctx->broker_name : "",
                          ctx->handler ? ctx->handler : ""};
    const prom_state *st = ctx->state;
    count_exception(st, st->exceptions, keys ? keys : own, ctx->error_type);
}

/* The exception of a failed publish: keys NULL for the publish's broker and destination. */
static __attribute__((noinline)) void publish_exception(const fs_publish_ctx *ctx,
                                                        const char *const *keys)
{
    const char *own[2] = {ctx->broker_name ? ctx->broker_name : "",
                          ctx->destination ? ctx->destination : ""};
    const prom_state *st = ctx->state;
    count_exception(st, st->pub_exceptions, keys ? keys : own, ctx->error_type);
}

/*
 * The entry for (broker, name, dyn...) when the thread's last hit is not it:
 * the hash table's, or (the table full around that hash) `local` filled
 * with children looked up now. NULL when the metrics library refused.
 * `keys` has room for the keys and holds the dynamic values from keys[2].
 */
static entry *entry_lookup(prom_state *st, cache *c, fill_fn fill, last_hit *last,
                           const char *broker, const char *name, const char **keys, entry *local)
{
    keys[0] = broker ? broker : "";
    keys[1] = name;
    entry *e = fs__prom_cache_get(st, c, fill, last, broker, 2 + st->ndyn, keys);
    if (e)
        return e;
    if (!fill(st, local, keys))
        return NULL;
    local->keys = keys;
    local->nkeys = 2 + st->ndyn;
    return local;
}

/*
 * The entry for (broker, name, dyn...) off the fast path: the thread's last
 * hit by content, else entry_lookup. *tally is the thread's tally for it
 * (NULL: count in the children); a cached entry with a tally takes the
 * label's id (0: none), so that the next message with that id goes the fast
 * path.
 */
static entry *find_entry(prom_state *st, cache *c, fill_fn fill, last_hit *last, const char *broker,
                         const char *name, uint64_t id, const char **keys, entry *local,
                         _Atomic uint64_t **tally)
{
    *tally = NULL;
    entry *e = last_hit_get(st, last, broker, name, keys + 2);
    if (!e)
        e = entry_lookup(st, c, fill, last, broker, name, keys, local);
    if (!e || e != last->e)
        return e; /* the stack entry: no tally */
    if (!last->tally)
        last->tally = fs__prom_tally_get(c, e);
    bool fast = st->ndyn == 0 && last->tally;
    last->dest_id = fast && id ? id : LAST_NO_ID;
    last->named = fast ? broker : NULL;
    *tally = last->tally;
    return e;
}

/* Ticks from t0 to t1 (0 if t1 is earlier). */
static inline uint64_t ticks_between(uint64_t t0, uint64_t t1)
{
    return FS_LIKELY(t1 >= t0) ? t1 - t0 : 0;
}

/*
 * Steps 1-8 of docs/semantics.md for one received unit, counted in the
 * thread's tally t. `keys` are the entry's (NULL: the message's broker and
 * handler, on the fast path), for an exception. After the handler, the
 * state and count are read from ctx again (fs_consume_next restores them),
 * which keeps fewer values alive across the call. `tsc`: the clock source
 * (each hook is compiled for both; the middleware installs the right one).
 */
static inline __attribute__((always_inline)) void consume_finished(fs_consume_ctx *ctx,
                                                                   _Atomic uint64_t *t, uint64_t d)
{
    const prom_state *st = ctx->state;
    int status = (int)fs_consume_status_code(ctx);
    uint64_t seq = fs_kit_seqlock_begin(t);
    fs_kit_seqlock_add(&t[T_BUCKETS + int_bucket(&st->recv.dur_lt, d)], 1); /* 6 */
    fs_kit_seqlock_add(&t[T_DUR_SUM], d);
    fs_kit_seqlock_add(&t[T_STATUS + status], ctx->count); /* 7, 8 */
    fs_kit_seqlock_end(t, seq);
}

/* Steps 5-8 for a failed handler (out of line: the success path makes no call after the chain). */
static __attribute__((noinline)) fs_outcome consume_failed(fs_consume_ctx *ctx, _Atomic uint64_t *t,
                                                           const char *const *keys, uint64_t d)
{
    consume_exception(ctx, keys); /* 5 */
    consume_finished(ctx, t, d);
    return FS_OUTCOME_ERROR;
}

static inline __attribute__((always_inline)) fs_outcome
consume_tally(fs_consume_ctx *ctx, _Atomic uint64_t *t, const char *const *keys, bool tsc)
{
    const prom_state *st = ctx->state;
    uint64_t seq = fs_kit_seqlock_begin(t);
    fs_kit_seqlock_add(&t[T_RECEIVED], ctx->count); /* 1, 3 */
    fs_kit_seqlock_add(&t[st->recv.size_at + int_bucket(&st->recv.size_lt, ctx->size)], 1); /* 2 */
    fs_kit_seqlock_add(&t[T_SIZE_SUM], ctx->size);
    fs_kit_seqlock_end(t, seq);
    uint64_t t0 = fs_kit_ticks_from(tsc);
    fs_outcome o = fs_consume_next(ctx); /* 4 */
    uint64_t d = ticks_between(t0, fs_kit_ticks_from(tsc));
    if (FS_UNLIKELY(o == FS_OUTCOME_ERROR))
        return consume_failed(ctx, t, keys, d);
    consume_finished(ctx, t, d);
    return o;
}

/* Steps 1-8 of docs/semantics.md for one received unit, counted in e's children. */
static fs_outcome consume_record(prom_state *st, fs_consume_ctx *ctx, entry *e)
{
    const size_t count = ctx->count;
    const double dcount = (double)count;

    counter_add_count(e->fixed[0], count);                /* 1 */
    fs_histogram_observe(e->fixed[1], (double)ctx->size); /* 2 */
    fs_gauge_add(e->fixed[2], dcount);                    /* 3 */
    uint64_t t0 = fs_kit_ticks();
    fs_outcome o = fs_consume_next(ctx); /* 4 */
    double elapsed = fs_kit_ticks_seconds(t0, fs_kit_ticks());
    if (o == FS_OUTCOME_ERROR) /* 5 */
        count_exception(st, st->exceptions, e->keys, ctx->error_type);
    fs_histogram_observe(e->fixed[3], elapsed);    /* 6 */
    fs_gauge_add(e->fixed[2], -dcount);            /* 7 */
    int status = (int)fs_consume_status_code(ctx); /* 8: ST_* is in the same order */
    fs_counter *pc = status_child(st, e, st->processed, status,
                                  fs_received_status_name((fs_received_status)status));
    if (pc)
        counter_add_count(pc, count);
    return o;
}

/* fs__prom_consume off the fast path: dynamic labels, another entry, no tally yet. */
static __attribute__((noinline)) fs_outcome consume_slow(prom_state *st, fs_consume_ctx *ctx)
{
    const char *name = ctx->handler ? ctx->handler : "";
    const char *keys[2 + FS_PROMETHEUS_MAX_LABELS];
    if (st->ndyn) {
        fs__prom_compute_dynamic(st, ctx->message, keys + 2);
        scratch *s = ctx->scratch;
        if (s) {
            memcpy(s->dyn, keys + 2, st->ndyn * sizeof(char *));
            s->valid = 1;
        }
    }
    entry local;
    _Atomic uint64_t *t;
    entry *e = find_entry(st, &st->recv, fs__prom_fill_recv, &fs__prom_last_recv, ctx->broker_name,
                          name, ctx->handler_id, keys, &local, &t);
    if (!e) {
        /* The metrics library refused (out of memory): never lose the message. */
        fs__log(FS_LOG_ERROR, "prometheus", "cannot record metrics: %s", fs_last_error());
        return fs_consume_next(ctx);
    }
    return t ? consume_tally(ctx, t, e->keys, fs_kit_ticks_are_tsc()) : consume_record(st, ctx, e);
}

/*
 * Whether a message without the label id of the thread's last entry still
 * goes the fast path: a subscription whose messages carry their own names
 * (no id) when the name is the last entry's. Out of line: the hooks' id
 * path stays short.
 */
static __attribute__((noinline)) bool consume_named(const fs_consume_ctx *ctx)
{
    return ctx->handler_id == 0 && named_tally(ctx->state, &fs__prom_last_recv, ctx->broker_name,
                                               ctx->handler, ctx->handler_len);
}

/* The consume hook for each clock source (the middleware installs the one of its clock). */
static inline __attribute__((always_inline)) fs_outcome consume_hook(fs_consume_ctx *ctx, bool tsc)
{
    const last_hit *last = &fs__prom_last_recv;
    if (FS_LIKELY(is_fast(last, ctx->handler_id)) || consume_named(ctx))
        return consume_tally(ctx, last->tally, NULL, tsc);
    return consume_slow(ctx->state, ctx);
}

fs_outcome fs__prom_consume(fs_consume_ctx *ctx)
{
    return consume_hook(ctx, true);
}

fs_outcome fs__prom_consume_mono(fs_consume_ctx *ctx)
{
    return consume_hook(ctx, false);
}

/* Steps 3-4 of the publish side of docs/semantics.md: `d` ticks, in tally t. */
static inline __attribute__((always_inline)) void
publish_tally_count(const prom_state *st, _Atomic uint64_t *t, size_t count, int status, uint64_t d)
{
    uint64_t seq = fs_kit_seqlock_begin(t);
    fs_kit_seqlock_add(&t[T_BUCKETS + int_bucket(&st->pub.dur_lt, d)], 1); /* 3 */
    fs_kit_seqlock_add(&t[T_DUR_SUM], d);
    fs_kit_seqlock_add(&t[T_STATUS + status], count); /* 4 */
    fs_kit_seqlock_end(t, seq);
}

/* A publish in tally t that failed (rc < 0) or is pending (rc > 0: counted on its result). */
static __attribute__((noinline)) int publish_not_ok(fs_publish_ctx *ctx, _Atomic uint64_t *t,
                                                    const char *const *keys, int rc, uint64_t d)
{
    if (rc > 0)
        return rc;
    publish_exception(ctx, keys); /* 2 */
    publish_tally_count(ctx->state, t, ctx->count, ST_PUB_ERROR, d);
    return rc;
}

/*
 * Steps 1-4 of the publish side of docs/semantics.md, in tally t. `keys` as
 * for consume_tally.
 */
static inline __attribute__((always_inline)) int
publish_tally(fs_publish_ctx *ctx, _Atomic uint64_t *t, const char *const *keys, bool tsc)
{
    uint64_t t0 = fs_kit_ticks_from(tsc); /* 1 */
    int rc = fs_publish_next(ctx);
    uint64_t d = ticks_between(t0, fs_kit_ticks_from(tsc));
    if (FS_UNLIKELY(rc != FS_OK))
        return publish_not_ok(ctx, t, keys, rc, d);
    publish_tally_count(ctx->state, t, ctx->count, ST_SUCCESS, d);
    return FS_OK;
}

/* Steps 3-4 of the publish side of docs/semantics.md, in e's children. */
static void publish_count(const prom_state *st, entry *e, size_t count, int rc, double elapsed)
{
    fs_histogram_observe(e->fixed[0], elapsed); /* 3 */
    int status = rc < 0 ? ST_PUB_ERROR : ST_SUCCESS;
    fs_counter *pc = status_child(st, e, st->published, status, FS__PROM_PUB_STATUS[status]);
    if (pc)
        counter_add_count(pc, count); /* 4 */
}

/* Steps 1-4 of the publish side of docs/semantics.md, in e's children. */
static int publish_record(fs_publish_ctx *ctx, entry *e)
{
    uint64_t t0 = fs_kit_ticks(); /* 1 */
    int rc = fs_publish_next(ctx);
    if (rc > 0) /* FS_PENDING: counted when the adapter reports the result (fs__prom_result) */
        return rc;
    double elapsed = fs_kit_ticks_seconds(t0, fs_kit_ticks());
    if (FS_UNLIKELY(rc < 0)) /* 2 */
        publish_exception(ctx, e->keys);
    publish_count(ctx->state, e, ctx->count, rc, elapsed);
    return rc;
}

/* fs__prom_publish off the fast path: dynamic labels, another entry, no label id. */
static __attribute__((noinline)) int publish_slow(prom_state *st, fs_publish_ctx *ctx)
{
    const char *name = ctx->destination ? ctx->destination : "";
    const char *keys[2 + FS_PROMETHEUS_MAX_LABELS];
    if (st->ndyn) {
        const scratch *s = ctx->scratch;
        if (s && s->valid)
            memcpy(keys + 2, s->dyn, st->ndyn * sizeof(char *));
        else
            fs__prom_compute_dynamic(st, ctx->current, keys + 2);
    }
    entry local;
    _Atomic uint64_t *t;
    entry *e = find_entry(st, &st->pub, fs__prom_fill_pub, &fs__prom_last_pub, ctx->broker_name,
                          name, ctx->destination_id, keys, &local, &t);
    if (!e) {
        fs__log(FS_LOG_ERROR, "prometheus", "cannot record metrics: %s", fs_last_error());
        return fs_publish_next(ctx);
    }
    return t ? publish_tally(ctx, t, e->keys, fs_kit_ticks_are_tsc()) : publish_record(ctx, e);
}

/* As consume_named: a publish by name (no id) to the last entry's destination. */
static __attribute__((noinline)) bool publish_named(const fs_publish_ctx *ctx)
{
    return ctx->destination_id == 0 && !ctx->is_reply &&
           named_tally(ctx->state, &fs__prom_last_pub, ctx->broker_name, ctx->destination, 0);
}

/* The publish hook for each clock source (the middleware installs the one of its clock). */
static inline __attribute__((always_inline)) int publish_hook(fs_publish_ctx *ctx, bool tsc)
{
    const last_hit *last = &fs__prom_last_pub;
    if (FS_LIKELY(is_fast(last, ctx->destination_id) && !ctx->is_reply) || publish_named(ctx))
        return publish_tally(ctx, last->tally, NULL, tsc);
    if (ctx->is_reply) /* replies are not counted */
        return fs_publish_next(ctx);
    return publish_slow(ctx->state, ctx);
}

int fs__prom_publish(fs_publish_ctx *ctx)
{
    return publish_hook(ctx, true);
}

int fs__prom_publish_mono(fs_publish_ctx *ctx)
{
    return publish_hook(ctx, false);
}

/* A late result in tally t: its duration from seconds to ticks. */
static void result_tally(const fs_publish_result_ctx *ctx, _Atomic uint64_t *t)
{
    const prom_state *st = ctx->state;
    double ticks = ctx->elapsed_s > 0 ? ctx->elapsed_s * st->ticks_per_s : 0; /* (NaN: 0) */
    publish_tally_count(st, t, ctx->count, ctx->status < 0 ? ST_PUB_ERROR : ST_SUCCESS,
                        ticks < 9.2e18 ? (uint64_t)ticks : UINT64_C(9200000000000000000));
}

/*
 * A late publish result (the adapter's publish returned FS_PENDING), on the
 * thread that reports it (a client's delivery-report thread), which keeps
 * its own last hit: usually the destination of the result before.
 */
void fs__prom_result(const fs_publish_result_ctx *ctx)
{
    prom_state *st = ctx->state;
    if (FS_LIKELY(ctx->status >= 0 &&
                  named_tally(st, &fs__prom_last_pub, ctx->broker_name, ctx->destination, 0))) {
        result_tally(ctx, fs__prom_last_pub.tally);
        return;
    }
    const char *keys[2 + FS_PROMETHEUS_MAX_LABELS];
    if (st->ndyn)
        fs__prom_compute_dynamic(st, NULL, keys + 2);
    entry local;
    _Atomic uint64_t *t;
    entry *e = find_entry(st, &st->pub, fs__prom_fill_pub, &fs__prom_last_pub, ctx->broker_name,
                          ctx->destination, 0, keys, &local, &t);
    if (!e) {
        fs__log(FS_LOG_ERROR, "prometheus", "cannot record metrics: %s", fs_last_error());
        return;
    }
    if (ctx->status < 0) /* 2 */
        count_exception(st, st->pub_exceptions, e->keys, ctx->error_type);
    if (t)
        result_tally(ctx, t);
    else
        publish_count(st, e, ctx->count, ctx->status, ctx->elapsed_s);
}
