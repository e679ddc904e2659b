/*
 * The Prometheus middleware: FastStream's metric schema (METRICS.md) for
 * every received and published message, through the broker-independent
 * middleware chain.
 *
 * Hot path. Each (broker, handler-or-destination, dynamic label values)
 * combination gets an entry holding the metric children it updates; the
 * entries live in a fixed-size open-addressing table whose slots are filled
 * once with a compare-and-swap and never change afterwards, so a lookup is
 * one hash of the key strings, a few atomic loads and string compares: no
 * lock, no allocation. The status children are filled in lazily (so that
 * only the statuses that happened appear in the exposition, as in
 * FastStream). When the table is full, children are looked up by label
 * values in the metrics library (also lock-free) on every message.
 */
#include "faststream/prometheus.h"

#include "common/internal.h"
#include "kit/clock.h"
#include "kit/str.h"

#include <math.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

const double FS_PROMETHEUS_SIZE_BUCKETS[FS_PROMETHEUS_SIZE_BUCKETS_COUNT] = {
    16.0, 64.0, 256.0, 1024.0, 4096.0, 16384.0, 65536.0, 262144.0, 1048576.0, 4194304.0, 16777216.0,
};

/* Received statuses (METRICS.md step 8) and publish statuses. */
enum { ST_ACKED, ST_NACKED, ST_REJECTED, ST_SKIPPED, ST_ERROR, ST_RECV_COUNT };
static const char *const RECV_STATUS[ST_RECV_COUNT] = {"acked", "nacked", "rejected", "skipped",
                                                       "error"};
enum { ST_SUCCESS, ST_PUB_ERROR, ST_PUB_COUNT };
static const char *const PUB_STATUS[ST_PUB_COUNT] = {"success", "error"};

static const char *const RESERVED[] = {"app_name", "broker",         "handler", "destination",
                                       "status",   "exception_type", "le"};

#define CACHE_SLOTS 1024u /* power of two */
#define CACHE_PROBES 32u

/*
 * One cached combination. For the receive side: fixed[0..3] are
 * received_total, size, in_process and duration, status[] the processed
 * children by status. For the publish side: fixed[0] is the duration
 * histogram, status[] published_total by status.
 */
typedef struct entry {
    uint64_t hash;
    size_t nkeys;
    const char **keys; /* broker, name, dynamic values... (point into data) */
    void *fixed[4];
    _Atomic(fs_counter *) status[ST_RECV_COUNT];
    _Alignas(const char *) char data[]; /* the keys array, then the key strings */
} entry;

typedef struct cache {
    _Atomic(entry *) slots[CACHE_SLOTS];
} cache;

typedef struct custom_label {
    char *value; /* static value, or NULL */
    fs_prometheus_label_fn fn;
    void *user;
} custom_label;

typedef struct prom_state {
    uint64_t id; /* unique per state, for the per-thread last-hit check */
    char *app_name;
    size_t ncustom, ndyn;
    custom_label custom[FS_PROMETHEUS_MAX_LABELS];

    fs_counter_family *received;
    fs_histogram_family *size;
    fs_gauge_family *in_process;
    fs_counter_family *processed;
    fs_histogram_family *duration;
    fs_counter_family *exceptions;
    fs_counter_family *published;
    fs_histogram_family *pub_duration;
    fs_counter_family *pub_exceptions;

    cache recv;
    cache pub;
} prom_state;

/* The per-message scratch area: the dynamic label values of the message. */
typedef struct scratch {
    uintptr_t valid;
    const char *dyn[];
} scratch;

/* ------------------------------------------------------------------------ */
/* Label values                                                             */

/* The dynamic values for `msg` (NULL: a publish outside any handler). */
static void compute_dynamic(const prom_state *st, const fs_message *msg, const char **out)
{
    size_t j = 0;
    for (size_t i = 0; i < st->ncustom; i++) {
        if (st->custom[i].fn) {
            const char *v = st->custom[i].fn(msg, st->custom[i].user);
            out[j++] = v ? v : "";
        }
    }
}

/*
 * Fill `vals` with app_name, broker, name, [extra], custom values... as the
 * families want them; `extra` NULL leaves it out.
 */
static void build_values(const prom_state *st, const char *broker, const char *name,
                         const char *extra, const char *const *dyn, const char **vals)
{
    size_t n = 0, j = 0;
    vals[n++] = st->app_name;
    vals[n++] = broker;
    vals[n++] = name;
    if (extra)
        vals[n++] = extra;
    for (size_t i = 0; i < st->ncustom; i++)
        vals[n++] = st->custom[i].fn ? dyn[j++] : st->custom[i].value;
}

#define MAX_VALUES (4 + FS_PROMETHEUS_MAX_LABELS)

/* ------------------------------------------------------------------------ */
/* The combination cache                                                    */

static uint64_t hash_keys(size_t n, const char *const *keys)
{
    uint64_t h = 0xcbf29ce484222325ull; /* FNV-1a, with a separator per key */
    for (size_t i = 0; i < n; i++) {
        for (const unsigned char *p = (const unsigned char *)keys[i]; *p; p++)
            h = (h ^ *p) * 0x100000001b3ull;
        h = (h ^ 0xffu) * 0x100000001b3ull;
    }
    return h;
}

static bool keys_equal(const entry *e, size_t n, const char *const *keys)
{
    for (size_t i = 0; i < n; i++)
        if (strcmp(e->keys[i], keys[i]) != 0)
            return false;
    return true;
}

static bool entry_matches(const entry *e, uint64_t hash, size_t n, const char *const *keys)
{
    return e->hash == hash && keys_equal(e, n, keys);
}

/*
 * Each thread remembers the entry it used last on each side: a worker
 * usually handles one source and a publisher publishes to one destination,
 * so most messages skip hashing altogether. The state id (never reused)
 * guards against a freed state whose address came back.
 *
 * `broker` is the broker-name pointer the hit was made with. A broker's
 * name is its adapter's constant string, the same pointer on every message
 * of a state, so pointer equality stands for the string compare there (a
 * different pointer falls back to the full check). The handler or
 * destination is always compared by content: it may live in the message's
 * own memory, which the next message reuses at the same address with
 * another name.
 */
typedef struct last_hit {
    uint64_t state_id;
    entry *e;
    const char *broker;
} last_hit;

static _Thread_local last_hit last_recv FS_TLS_MODEL, last_pub FS_TLS_MODEL;
static atomic_uint_fast64_t next_state_id = 1;

/* Fill the children of a receive-side entry by label values. */
static bool fill_recv(const prom_state *st, entry *e, const char *const *keys)
{
    const char *vals[MAX_VALUES];
    build_values(st, keys[0], keys[1], NULL, keys + 2, vals);
    e->fixed[0] = fs_counter_family_labels(st->received, vals);
    e->fixed[1] = fs_histogram_family_labels(st->size, vals);
    e->fixed[2] = fs_gauge_family_labels(st->in_process, vals);
    e->fixed[3] = fs_histogram_family_labels(st->duration, vals);
    for (int i = 0; i < ST_RECV_COUNT; i++)
        atomic_init(&e->status[i], NULL);
    return e->fixed[0] && e->fixed[1] && e->fixed[2] && e->fixed[3];
}

static bool fill_pub(const prom_state *st, entry *e, const char *const *keys)
{
    const char *vals[MAX_VALUES];
    build_values(st, keys[0], keys[1], NULL, keys + 2, vals);
    e->fixed[0] = fs_histogram_family_labels(st->pub_duration, vals);
    e->fixed[1] = e->fixed[2] = e->fixed[3] = NULL;
    for (int i = 0; i < ST_RECV_COUNT; i++)
        atomic_init(&e->status[i], NULL);
    return e->fixed[0] != NULL;
}

typedef bool (*fill_fn)(const prom_state *st, entry *e, const char *const *keys);

static entry *entry_new(const prom_state *st, fill_fn fill, uint64_t hash, size_t n,
                        const char *const *keys)
{
    size_t len = n * sizeof(char *);
    for (size_t i = 0; i < n; i++)
        len += strlen(keys[i]) + 1;
    entry *e = malloc(sizeof(entry) + len);
    if (!e) {
        fs__error(FS_ENOMEM, "prometheus middleware: out of memory");
        return NULL;
    }
    const char **kp = (const char **)(void *)e->data;
    e->hash = hash;
    e->nkeys = n;
    e->keys = kp;
    char *p = e->data + n * sizeof(char *);
    for (size_t i = 0; i < n; i++) {
        size_t l = strlen(keys[i]) + 1;
        memcpy(p, keys[i], l);
        kp[i] = p;
        p += l;
    }
    if (!fill(st, e, keys)) {
        free(e);
        return NULL;
    }
    return e;
}

/*
 * The cached entry for `keys`, creating it on first sight; NULL when the
 * table is full around that hash (the caller then fills a stack entry).
 */
static entry *cache_find(const prom_state *st, cache *c, fill_fn fill, size_t n,
                         const char *const *keys)
{
    uint64_t hash = hash_keys(n, keys);
    entry *mine = NULL;
    for (uint32_t i = 0; i < CACHE_PROBES; i++) {
        _Atomic(entry *) *slot = &c->slots[(hash + i) & (CACHE_SLOTS - 1)];
        entry *e = atomic_load_explicit(slot, memory_order_acquire);
        if (e) {
            if (entry_matches(e, hash, n, keys)) {
                free(mine);
                return e;
            }
            continue;
        }
        if (!mine) {
            mine = entry_new(st, fill, hash, n, keys);
            if (!mine)
                return NULL;
        }
        entry *expected = NULL;
        if (atomic_compare_exchange_strong_explicit(slot, &expected, mine, memory_order_acq_rel,
                                                    memory_order_acquire))
            return mine;
        if (entry_matches(expected, hash, n, keys)) {
            free(mine);
            return expected;
        }
    }
    free(mine);
    return NULL;
}

/*
 * The thread's last hit if it is the entry for (broker, name, dyn...):
 * the same state, the same broker-name pointer and equal other keys
 * (compared by content). NULL otherwise.
 */
static inline entry *last_hit_get(const prom_state *st, const last_hit *last,
                                  const char *broker_ptr, const char *name, const char *const *dyn)
{
    if (last->state_id != st->id || last->broker != broker_ptr)
        return NULL;
    entry *e = last->e;
    if (strcmp(e->keys[1], name) != 0)
        return NULL;
    for (size_t i = 0; i < st->ndyn; i++)
        if (strcmp(e->keys[2 + i], dyn[i]) != 0)
            return NULL;
    return e;
}

/* cache_find, remembered as the calling thread's last hit. */
static entry *cache_get(const prom_state *st, cache *c, fill_fn fill, last_hit *last,
                        const char *broker_ptr, size_t n, const char *const *keys)
{
    entry *e = cache_find(st, c, fill, n, keys);
    if (e) {
        last->state_id = st->id;
        last->e = e;
        last->broker = broker_ptr;
    }
    return e;
}

static void cache_clear(cache *c)
{
    for (uint32_t i = 0; i < CACHE_SLOTS; i++)
        free(atomic_load_explicit(&c->slots[i], memory_order_relaxed));
}

/* Look the status child of `e` up (first time for that status) and keep it. */
static __attribute__((noinline)) fs_counter *status_child_slow(const prom_state *st, entry *e,
                                                               fs_counter_family *fam, int status,
                                                               const char *status_name)
{
    const char *vals[MAX_VALUES];
    build_values(st, e->keys[0], e->keys[1], status_name, e->keys + 2, vals);
    fs_counter *c = fs_counter_family_labels(fam, vals);
    if (c)
        atomic_store_explicit(&e->status[status], c, memory_order_release);
    return c;
}

/* The status child of `e`, looked up once and kept. */
static inline fs_counter *status_child(const prom_state *st, entry *e, fs_counter_family *fam,
                                       int status, const char *status_name)
{
    fs_counter *c = atomic_load_explicit(&e->status[status], memory_order_acquire);
    if (FS_LIKELY(c != NULL))
        return c;
    return status_child_slow(st, e, fam, status, status_name);
}

/* counter += count; a single message takes the increment (no checks, no conversion). */
static inline void counter_add_count(fs_counter *c, size_t count)
{
    if (FS_LIKELY(count == 1))
        fs_counter_inc(c);
    else
        fs_counter_add(c, (double)count);
}

/* ------------------------------------------------------------------------ */
/* Hooks                                                                    */

/* The monotonic clock in nanoseconds. */
static inline int64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* Seconds between two now_ns() readings. */
static inline double seconds_between(int64_t t0, int64_t t1)
{
    return (double)(t1 - t0) * 1e-9;
}

static void count_exception(const prom_state *st, fs_counter_family *fam, const char *const *keys,
                            const char *type)
{
    const char *vals[MAX_VALUES];
    build_values(st, keys[0], keys[1], type && *type ? type : "Error", keys + 2, vals);
    fs_counter *c = fs_counter_family_labels(fam, vals);
    if (c)
        fs_counter_inc(c);
}

/* Received status (METRICS.md step 8), as the core decides it (fs_consume_status). */
static inline int recv_status(const fs_consume_ctx *ctx)
{
    switch (fs_consume_status(ctx)[0]) {
    case 'n':
        return ST_NACKED;
    case 'r':
        return ST_REJECTED;
    case 's':
        return ST_SKIPPED;
    case 'e':
        return ST_ERROR;
    default:
        return ST_ACKED;
    }
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
    entry *e = cache_get(st, c, fill, last, broker, 2 + st->ndyn, keys);
    if (e)
        return e;
    if (!fill(st, local, keys))
        return NULL;
    local->keys = keys;
    local->nkeys = 2 + st->ndyn;
    return local;
}

/* Steps 1-8 of METRICS.md for one received unit, with its entry `e`. */
static inline __attribute__((always_inline)) fs_outcome
consume_record(prom_state *st, fs_consume_ctx *ctx, entry *e)
{
    const size_t count = ctx->count;
    const double dcount = (double)count;

    counter_add_count(e->fixed[0], count);                /* 1 */
    fs_histogram_observe(e->fixed[1], (double)ctx->size); /* 2 */
    fs_gauge_add(e->fixed[2], dcount);                    /* 3 */
    int64_t t0 = now_ns();
    fs_outcome o = fs_consume_next(ctx); /* 4 */
    double elapsed = seconds_between(t0, now_ns());
    if (o == FS_OUTCOME_ERROR) /* 5 */
        count_exception(st, st->exceptions, e->keys, ctx->error_type);
    fs_histogram_observe(e->fixed[3], elapsed); /* 6 */
    fs_gauge_add(e->fixed[2], -dcount);         /* 7 */
    int status = recv_status(ctx);              /* 8 */
    fs_counter *pc = status_child(st, e, st->processed, status, RECV_STATUS[status]);
    if (pc)
        counter_add_count(pc, count);
    return o;
}

/* prom_consume with dynamic labels, or when the last hit is not the entry. */
static __attribute__((noinline)) fs_outcome consume_slow(prom_state *st, fs_consume_ctx *ctx)
{
    const char *name = ctx->handler ? ctx->handler : "";
    const char *keys[2 + FS_PROMETHEUS_MAX_LABELS];
    if (st->ndyn) {
        compute_dynamic(st, ctx->message, keys + 2);
        scratch *s = ctx->scratch;
        if (s) {
            memcpy(s->dyn, keys + 2, st->ndyn * sizeof(char *));
            s->valid = 1;
        }
    }
    entry local;
    entry *e = last_hit_get(st, &last_recv, ctx->broker_name, name, keys + 2);
    if (!e)
        e = entry_lookup(st, &st->recv, fill_recv, &last_recv, ctx->broker_name, name, keys,
                         &local);
    if (!e) {
        /* The metrics library refused (out of memory): never lose the message. */
        fs__log(FS_LOG_ERROR, "prometheus", "cannot record metrics: %s", fs_last_error());
        return fs_consume_next(ctx);
    }
    return consume_record(st, ctx, e);
}

static fs_outcome prom_consume(fs_consume_ctx *ctx)
{
    prom_state *st = ctx->state;
    if (FS_LIKELY(st->ndyn == 0)) {
        entry *e =
            last_hit_get(st, &last_recv, ctx->broker_name, ctx->handler ? ctx->handler : "", NULL);
        if (FS_LIKELY(e != NULL))
            return consume_record(st, ctx, e);
    }
    return consume_slow(st, ctx);
}

/* Steps 2-4 of the publish side of METRICS.md, with the entry `e`. */
static inline void publish_count(prom_state *st, entry *e, size_t count, int rc,
                                 const char *error_type, double elapsed)
{
    if (rc < 0) /* 2 */
        count_exception(st, st->pub_exceptions, e->keys, error_type);
    fs_histogram_observe(e->fixed[0], elapsed); /* 3 */
    int status = rc < 0 ? ST_PUB_ERROR : ST_SUCCESS;
    fs_counter *pc = status_child(st, e, st->published, status, PUB_STATUS[status]);
    if (pc)
        counter_add_count(pc, count); /* 4 */
}

/* Steps 1-4 of the publish side of METRICS.md, with the entry `e`. */
static inline __attribute__((always_inline)) int publish_record(prom_state *st, fs_publish_ctx *ctx,
                                                                entry *e)
{
    int64_t t0 = now_ns(); /* 1 */
    int rc = fs_publish_next(ctx);
    if (rc > 0) /* FS_PENDING: counted when the adapter reports the result (prom_result) */
        return rc;
    publish_count(st, e, ctx->count, rc, ctx->error_type, seconds_between(t0, now_ns()));
    return rc;
}

/* prom_publish with dynamic labels, or when the last hit is not the entry. */
static __attribute__((noinline)) int publish_slow(prom_state *st, fs_publish_ctx *ctx)
{
    const char *name = ctx->destination ? ctx->destination : "";
    const char *keys[2 + FS_PROMETHEUS_MAX_LABELS];
    if (st->ndyn) {
        const scratch *s = ctx->scratch;
        if (s && s->valid)
            memcpy(keys + 2, s->dyn, st->ndyn * sizeof(char *));
        else
            compute_dynamic(st, ctx->current, keys + 2);
    }
    entry local;
    entry *e = last_hit_get(st, &last_pub, ctx->broker_name, name, keys + 2);
    if (!e)
        e = entry_lookup(st, &st->pub, fill_pub, &last_pub, ctx->broker_name, name, keys, &local);
    if (!e) {
        fs__log(FS_LOG_ERROR, "prometheus", "cannot record metrics: %s", fs_last_error());
        return fs_publish_next(ctx);
    }
    return publish_record(st, ctx, e);
}

static int prom_publish(fs_publish_ctx *ctx)
{
    if (ctx->is_reply)
        return fs_publish_next(ctx);
    prom_state *st = ctx->state;
    if (FS_LIKELY(st->ndyn == 0)) {
        entry *e = last_hit_get(st, &last_pub, ctx->broker_name,
                                ctx->destination ? ctx->destination : "", NULL);
        if (FS_LIKELY(e != NULL))
            return publish_record(st, ctx, e);
    }
    return publish_slow(st, ctx);
}

/* A late publish result (the adapter's publish returned FS_PENDING). */
static void prom_result(const fs_publish_result_ctx *ctx)
{
    prom_state *st = ctx->state;
    const char *keys[2 + FS_PROMETHEUS_MAX_LABELS];
    if (st->ndyn)
        compute_dynamic(st, NULL, keys + 2);
    entry local;
    entry *e = entry_lookup(st, &st->pub, fill_pub, &last_pub, ctx->broker_name, ctx->destination,
                            keys, &local);
    if (!e) {
        fs__log(FS_LOG_ERROR, "prometheus", "cannot record metrics: %s", fs_last_error());
        return;
    }
    publish_count(st, e, ctx->count, ctx->status, ctx->error_type, ctx->elapsed_s);
}

/* ------------------------------------------------------------------------ */
/* Setup                                                                    */

static void state_free(void *p)
{
    prom_state *st = p;
    if (!st)
        return;
    cache_clear(&st->recv);
    cache_clear(&st->pub);
    for (size_t i = 0; i < st->ncustom; i++)
        free(st->custom[i].value);
    free(st->app_name);
    free(st);
}

static int check_labels(const fs_prometheus_options *o)
{
    FS_CHECK_ARG(o->label_count == 0 || o->labels,
                 "prometheus middleware: label_count is %zu but labels is NULL", o->label_count);
    FS_CHECK_ARG(o->label_count <= FS_PROMETHEUS_MAX_LABELS,
                 "prometheus middleware: %zu custom labels given, at most %d are allowed",
                 o->label_count, FS_PROMETHEUS_MAX_LABELS);
    for (size_t i = 0; i < o->label_count; i++) {
        const fs_prometheus_label *l = &o->labels[i];
        FS_CHECK_ARG(l->name, "prometheus middleware: custom label %zu has no name", i);
        for (size_t r = 0; r < sizeof RESERVED / sizeof RESERVED[0]; r++)
            FS_CHECK_ARG(strcmp(l->name, RESERVED[r]) != 0,
                         "prometheus middleware: custom label name '%s' is reserved (the standard "
                         "labels are app_name, broker, handler, destination, status, "
                         "exception_type, and le is reserved for histogram buckets)",
                         l->name);
        FS_CHECK_ARG(fs_label_name_valid(l->name),
                     "prometheus middleware: custom label name '%s' is not a valid Prometheus "
                     "label name ([a-zA-Z_][a-zA-Z0-9_]*, not starting with '__')",
                     l->name);
        for (size_t j = 0; j < i; j++)
            FS_CHECK_ARG(strcmp(l->name, o->labels[j].name) != 0,
                         "prometheus middleware: custom label '%s' is given twice", l->name);
        FS_CHECK_ARG((l->value != NULL) != (l->fn != NULL),
                     "prometheus middleware: custom label '%s' needs exactly one of a static "
                     "value and a function",
                     l->name);
    }
    return FS_OK;
}

/* One family to register: which kind, its name suffix and help, its extra label. */
typedef struct family_def {
    fs_metric_type type;
    const char *suffix;
    const char *help;
    const char *extra; /* the 4th standard label, or NULL */
    int buckets;       /* histograms: 1 = size buckets, 0 = default */
    size_t offset;     /* where the family pointer goes in prom_state */
} family_def;

#define FAM(field) offsetof(prom_state, field)
static const family_def FAMILIES[] = {
    {FS_METRIC_COUNTER, "received_messages_total",
     "Count of received messages by broker and handler", NULL, 0, FAM(received)},
    {FS_METRIC_HISTOGRAM, "received_messages_size_bytes",
     "Histogram of received messages size in bytes by broker and handler", NULL, 1, FAM(size)},
    {FS_METRIC_GAUGE, "received_messages_in_process",
     "Gauge of received messages in process by broker and handler", NULL, 0, FAM(in_process)},
    {FS_METRIC_COUNTER, "received_processed_messages_total",
     "Count of received processed messages by broker, handler and status", "status", 0,
     FAM(processed)},
    {FS_METRIC_HISTOGRAM, "received_processed_messages_duration_seconds",
     "Histogram of received processed messages duration in seconds by broker and handler", NULL, 0,
     FAM(duration)},
    {FS_METRIC_COUNTER, "received_processed_messages_exceptions_total",
     "Count of received processed messages exceptions by broker, handler and exception_type",
     "exception_type", 0, FAM(exceptions)},
    {FS_METRIC_COUNTER, "published_messages_total",
     "Count of published messages by destination and status", "status", 0, FAM(published)},
    {FS_METRIC_HISTOGRAM, "published_messages_duration_seconds",
     "Histogram of published messages duration in seconds by broker and destination", NULL, 0,
     FAM(pub_duration)},
    {FS_METRIC_COUNTER, "published_messages_exceptions_total",
     "Count of published messages exceptions by broker, destination and exception_type",
     "exception_type", 0, FAM(pub_exceptions)},
};
#define NFAMILIES (sizeof FAMILIES / sizeof FAMILIES[0])

static int register_families(prom_state *st, fs_registry *reg, const char *prefix,
                             const fs_prometheus_options *o)
{
    const double *sb = o->size_buckets ? o->size_buckets : FS_PROMETHEUS_SIZE_BUCKETS;
    size_t nsb = o->size_buckets ? o->size_bucket_count : FS_PROMETHEUS_SIZE_BUCKETS_COUNT;
    FS_CHECK_ARG(!o->size_buckets || o->size_bucket_count > 0,
                 "prometheus middleware: size_buckets given with size_bucket_count 0");
    bool created[NFAMILIES] = {false};
    char names[NFAMILIES][256];
    int rc = FS_OK;
    size_t i;
    for (i = 0; i < NFAMILIES; i++) {
        const family_def *d = &FAMILIES[i];
        int n = snprintf(names[i], sizeof names[i], "%s_%s", prefix, d->suffix);
        if (n < 0 || (size_t)n >= sizeof names[i]) {
            rc = fs__error(FS_EINVAL, "prometheus middleware: metrics prefix '%s' is too long",
                           prefix);
            break;
        }
        const char *labels[MAX_VALUES];
        size_t nl = 0;
        labels[nl++] = "app_name";
        labels[nl++] = "broker";
        labels[nl++] = strncmp(d->suffix, "published", 9) == 0 ? "destination" : "handler";
        if (d->extra)
            labels[nl++] = d->extra;
        for (size_t j = 0; j < o->label_count; j++)
            labels[nl++] = o->labels[j].name;
        bool existed = fs_registry_contains(reg, names[i]);
        void **slot = (void **)((char *)st + d->offset);
        switch (d->type) {
        case FS_METRIC_COUNTER:
            rc = fs_counter_family_new(reg, names[i], d->help, nl, labels,
                                       (fs_counter_family **)slot);
            break;
        case FS_METRIC_GAUGE:
            rc = fs_gauge_family_new(reg, names[i], d->help, nl, labels, (fs_gauge_family **)slot);
            break;
        default:
            rc = fs_histogram_family_new(reg, names[i], d->help, nl, labels, d->buckets ? sb : NULL,
                                         d->buckets ? nsb : 0, (fs_histogram_family **)slot);
            break;
        }
        if (rc != FS_OK) {
            rc = fs__error(rc, "prometheus middleware: cannot register '%s': %s", names[i],
                           fs_last_error());
            break;
        }
        created[i] = !existed;
    }
    if (rc != FS_OK) {
        /* Leave the registry as it was: drop what this call added. */
        for (size_t k = 0; k < i; k++)
            if (created[k])
                fs_registry_unregister(reg, names[k]);
    }
    return rc;
}

int fs_prometheus_middleware_new(const fs_prometheus_options *opts, fs_middleware *out)
{
    FS_CHECK_ARG(out, "fs_prometheus_middleware_new: out is NULL");
    memset(out, 0, sizeof *out);
    fs_prometheus_options defaults = FS_PROMETHEUS_OPTIONS_INIT;
    const fs_prometheus_options *o = opts ? opts : &defaults;
    const char *prefix = o->prefix ? o->prefix : "faststream";
    FS_CHECK_ARG(fs_metric_name_valid(prefix),
                 "prometheus middleware: metrics prefix '%s' is not a valid metric name", prefix);
    int rc = check_labels(o);
    if (rc != FS_OK)
        return rc;

    prom_state *st = calloc(1, sizeof *st);
    if (!st)
        return fs__error(FS_ENOMEM, "prometheus middleware: out of memory");
    st->id = atomic_fetch_add(&next_state_id, 1);
    st->app_name = fs_kit_strdup(o->app_name ? o->app_name : prefix);
    if (!st->app_name) {
        state_free(st);
        return fs__error(FS_ENOMEM, "prometheus middleware: out of memory");
    }
    st->ncustom = o->label_count;
    for (size_t i = 0; i < o->label_count; i++) {
        const fs_prometheus_label *l = &o->labels[i];
        st->custom[i].fn = l->fn;
        st->custom[i].user = l->user;
        if (l->fn) {
            st->ndyn++;
        } else if (!(st->custom[i].value = fs_kit_strdup(l->value))) {
            state_free(st);
            return fs__error(FS_ENOMEM, "prometheus middleware: out of memory");
        }
    }
    fs_registry *reg = o->registry ? o->registry : fs_registry_default();
    rc = register_families(st, reg, prefix, o);
    if (rc != FS_OK) {
        state_free(st);
        return rc;
    }
    out->name = "prometheus";
    out->consume = prom_consume;
    out->publish = prom_publish;
    out->publish_result = prom_result;
    out->unique_key = "prometheus";
    out->scratch_size = st->ndyn ? sizeof(scratch) + st->ndyn * sizeof(char *) : 0;
    out->state = st;
    out->free_state = state_free;
    return FS_OK;
}

void fs_prometheus_middleware_release(fs_middleware *mw)
{
    if (mw && mw->consume == prom_consume) {
        state_free(mw->state);
        memset(mw, 0, sizeof *mw);
    }
}

int fs_broker_add_prometheus(fs_broker *broker, const fs_prometheus_options *opts)
{
    FS_CHECK_ARG(broker, "fs_broker_add_prometheus: broker is NULL");
    fs_middleware mw;
    int rc = fs_prometheus_middleware_new(opts, &mw);
    if (rc != FS_OK)
        return rc;
    rc = fs_broker_add_middleware(broker, &mw);
    if (rc != FS_OK)
        fs_prometheus_middleware_release(&mw);
    return rc;
}
