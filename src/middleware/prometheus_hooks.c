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
 * hit by content, else entry_lookup. A cached entry that becomes the last hit
 * takes the label's id (0: none), so that the next message with that id
 * skips the compare.
 */
static entry *find_entry(prom_state *st, cache *c, fill_fn fill, last_hit *last, const char *broker,
                         const char *name, uint64_t id, const char **keys, entry *local)
{
    entry *e = last_hit_get(st, last, broker, name, keys + 2);
    if (e)
        return e;
    e = entry_lookup(st, c, fill, last, broker, name, keys, local);
    if (e && e == last->e && st->ndyn == 0)
        last->dest_id = id;
    return e;
}

/* Steps 1-8 of docs/semantics.md for one received unit, with its entry `e`. */
static inline __attribute__((always_inline)) fs_outcome
consume_record(prom_state *st, fs_consume_ctx *ctx, entry *e)
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
    fs_counter *pc = status_child(st, e, st->processed, status, FS__PROM_RECV_STATUS[status]);
    if (pc)
        counter_add_count(pc, count);
    return o;
}

/* fs__prom_consume with dynamic labels, or when the last hit is not the entry. */
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
    entry *e = find_entry(st, &st->recv, fs__prom_fill_recv, &fs__prom_last_recv, ctx->broker_name,
                          name, ctx->handler_id, keys, &local);
    if (!e) {
        /* The metrics library refused (out of memory): never lose the message. */
        fs__log(FS_LOG_ERROR, "prometheus", "cannot record metrics: %s", fs_last_error());
        return fs_consume_next(ctx);
    }
    return consume_record(st, ctx, e);
}

fs_outcome fs__prom_consume(fs_consume_ctx *ctx)
{
    prom_state *st = ctx->state;
    if (FS_LIKELY(st->ndyn == 0)) {
        entry *e = fast_hit(st, &fs__prom_last_recv, ctx->broker_name,
                            ctx->handler ? ctx->handler : "", ctx->handler_id);
        if (FS_LIKELY(e != NULL))
            return consume_record(st, ctx, e);
    }
    return consume_slow(st, ctx);
}

/* Steps 2-4 of the publish side of docs/semantics.md, with the entry `e`. */
static inline void publish_count(prom_state *st, entry *e, size_t count, int rc,
                                 const char *error_type, double elapsed)
{
    if (rc < 0) /* 2 */
        count_exception(st, st->pub_exceptions, e->keys, error_type);
    fs_histogram_observe(e->fixed[0], elapsed); /* 3 */
    int status = rc < 0 ? ST_PUB_ERROR : ST_SUCCESS;
    fs_counter *pc = status_child(st, e, st->published, status, FS__PROM_PUB_STATUS[status]);
    if (pc)
        counter_add_count(pc, count); /* 4 */
}

/* Steps 1-4 of the publish side of docs/semantics.md, with the entry `e`. */
static inline __attribute__((always_inline)) int publish_record(prom_state *st, fs_publish_ctx *ctx,
                                                                entry *e)
{
    uint64_t t0 = fs_kit_ticks(); /* 1 */
    int rc = fs_publish_next(ctx);
    if (rc > 0) /* FS_PENDING: counted when the adapter reports the result (fs__prom_result) */
        return rc;
    publish_count(st, e, ctx->count, rc, ctx->error_type, fs_kit_ticks_seconds(t0, fs_kit_ticks()));
    return rc;
}

/* fs__prom_publish with dynamic labels, or when the last hit is not the entry. */
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
    entry *e = find_entry(st, &st->pub, fs__prom_fill_pub, &fs__prom_last_pub, ctx->broker_name,
                          name, ctx->destination_id, keys, &local);
    if (!e) {
        fs__log(FS_LOG_ERROR, "prometheus", "cannot record metrics: %s", fs_last_error());
        return fs_publish_next(ctx);
    }
    return publish_record(st, ctx, e);
}

int fs__prom_publish(fs_publish_ctx *ctx)
{
    if (ctx->is_reply)
        return fs_publish_next(ctx);
    prom_state *st = ctx->state;
    if (FS_LIKELY(st->ndyn == 0)) {
        entry *e = fast_hit(st, &fs__prom_last_pub, ctx->broker_name,
                            ctx->destination ? ctx->destination : "", ctx->destination_id);
        if (FS_LIKELY(e != NULL))
            return publish_record(st, ctx, e);
    }
    return publish_slow(st, ctx);
}

/* A late publish result (the adapter's publish returned FS_PENDING). */
void fs__prom_result(const fs_publish_result_ctx *ctx)
{
    prom_state *st = ctx->state;
    const char *keys[2 + FS_PROMETHEUS_MAX_LABELS];
    if (st->ndyn)
        fs__prom_compute_dynamic(st, NULL, keys + 2);
    entry local;
    /* the reporting thread (a client's delivery-report thread) keeps its own last hit */
    entry *e = find_entry(st, &st->pub, fs__prom_fill_pub, &fs__prom_last_pub, ctx->broker_name,
                          ctx->destination, 0, keys, &local);
    if (!e) {
        fs__log(FS_LOG_ERROR, "prometheus", "cannot record metrics: %s", fs_last_error());
        return;
    }
    publish_count(st, e, ctx->count, ctx->status, ctx->error_type, ctx->elapsed_s);
}
