/*
 * The Prometheus middleware's internals, shared by prometheus.c (setup),
 * prometheus_cache.c (label values, the combination cache),
 * prometheus_tally.c (per-thread tallies and their folding into the
 * families) and prometheus_hooks.c (the consume, publish and publish-result
 * hooks). Not installed.
 *
 * Hot path. Each (broker, handler-or-destination, dynamic label values)
 * combination gets an entry holding the metric children it updates; the
 * entries live in a fixed-size open-addressing table whose slots are filled
 * once with a compare-and-swap and never change afterwards, so a lookup is
 * one hash of the key strings, a few atomic loads and string compares: no
 * lock, no allocation. Each thread remembers its last entry, and the label
 * ids of the core (a publisher's, a fixed-source subscription's) recognise
 * it without comparing strings.
 *
 * A message is not counted in the children directly: each thread counts
 * in its own tally for the entry (one per thread slot, kit/slot.h): the
 * received count, the size and duration buckets and sums (bytes and clock
 * ticks, integers), the count per status, with plain stores under one
 * sequence pair per update. A collector registered with the families folds
 * the tallies into the children when the registry is rendered (collectors
 * run before any metric is read), so a scrape sees every message counted up
 * to then, exactly; the in-process gauge is the received count minus the
 * processed ones. Children are looked up once per entry (status children on
 * the first message with that status) and exist from the first message on,
 * as in FastStream. Without a tally (a thread beyond the slots, a tally or
 * a table slot that could not be allocated), the message updates the
 * children themselves, as the metrics library allows from any thread.
 */
#ifndef FS_PROMETHEUS_INTERNAL_H
#define FS_PROMETHEUS_INTERNAL_H

#include "faststream/prometheus.h"

#include "common/internal.h"
#include "kit/clock.h"
#include "kit/seqlock.h"
#include "kit/slot.h"
#include "kit/str.h"
#include "kit/ticks.h"

#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* Received statuses (docs/semantics.md) and publish statuses. */
/* (ST_ACKED... in the order of fs_received_status: fs_consume_status_code indexes status[]) */
enum {
    ST_ACKED = FS_RECEIVED_ACKED,
    ST_NACKED = FS_RECEIVED_NACKED,
    ST_REJECTED = FS_RECEIVED_REJECTED,
    ST_SKIPPED = FS_RECEIVED_SKIPPED,
    ST_ERROR = FS_RECEIVED_ERROR,
    ST_RECV_COUNT
};
enum { ST_SUCCESS, ST_PUB_ERROR, ST_PUB_COUNT };

#define CACHE_SLOTS 1024u /* power of two */
#define CACHE_PROBES 32u

/*
 * The words of a tally, a seqlocked block (kit/seqlock.h) its thread writes
 * alone: the sequence pair, the received count, the
 * count per status (ST_* of its side), the size sum in bytes, the duration
 * sum in ticks, then the duration buckets and (receive side) the size
 * buckets, +Inf included (per bucket, not cumulative).
 */
enum {
    T_BEGUN = FS_KIT_SEQ_BEGUN,
    T_DONE = FS_KIT_SEQ_DONE,
    T_RECEIVED,
    T_STATUS,
    T_SIZE_SUM = T_STATUS + ST_RECV_COUNT,
    T_DUR_SUM,
    T_BUCKETS
};

/*
 * Bucket bounds for integer values: value v falls in the first bucket i
 * with v < lt[i]; lt[n] is UINT64_MAX, the +Inf bucket, for any v below it
 * (the hooks' values, sizes and tick counts, never reach it).
 */
typedef struct int_bounds {
    uint64_t *lt; /* n + 1 */
    uint32_t n;   /* finite bounds */
} int_bounds;

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
    size_t name_len;   /* strlen(keys[1]) */
    void *fixed[4];
    _Atomic(fs_counter *) status[ST_RECV_COUNT];
    /* the tallies, by thread slot - 1 (each written by the slot's holder alone), or NULL */
    _Atomic(_Atomic uint64_t *) tally[FS_KIT_MAX_SLOTS];
    uint64_t *folded; /* the totals already folded into the children (under fold_lock) */
    _Alignas(const char *) char data[]; /* the keys array, then the key strings */
} entry;

typedef struct cache {
    _Atomic(entry *) slots[CACHE_SLOTS];
    uint32_t size_at, words; /* the tally layout of this side (durations at T_BUCKETS) */
    int_bounds size_lt;      /* the size buckets in bytes (receive side) */
    int_bounds dur_lt;       /* the duration buckets in ticks */
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
    struct fs__backlog_entry *backlog; /* the backlog family's entry for this broker, or NULL */

    double tick_s;      /* seconds per tick */
    double ticks_per_s; /* its inverse */
    uint64_t *fold_buf; /* the fold's scratch: 2 x the larger side's words */
    fs_registry *reg;   /* where the families and the fold collector are */
    char fold_name[48]; /* the fold collector's name, "" until registered */
    pthread_mutex_t fold_lock;
    bool fold_lock_ok;
} prom_state;

/* The per-message scratch area: the dynamic label values of the message. */
typedef struct scratch {
    uintptr_t valid;
    const char *dyn[];
} scratch;

typedef bool (*fill_fn)(const prom_state *st, entry *e, const char *const *keys);
#define MAX_VALUES (4 + FS_PROMETHEUS_MAX_LABELS)

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
    /*
     * e's name has this id (fs_publish_ctx.destination_id,
     * fs_consume_ctx.handler_id) and the thread has a tally for e: the fast
     * path. LAST_NO_ID otherwise (no label id is 0 or UINT64_MAX).
     */
    uint64_t dest_id;
    _Atomic uint64_t *tally; /* this thread's tally for e, or NULL (count in the children) */
    /* `broker` when the fast path by name may take e (a tally, no dynamic labels), else NULL */
    const char *named;
} last_hit;
#define LAST_NO_ID UINT64_MAX

/* prometheus_hooks.c: the hooks for ticks that are TSC cycles, and for CLOCK_MONOTONIC ticks */
fs_outcome fs__prom_consume(fs_consume_ctx *ctx);
int fs__prom_publish(fs_publish_ctx *ctx);
fs_outcome fs__prom_consume_mono(fs_consume_ctx *ctx);
int fs__prom_publish_mono(fs_publish_ctx *ctx);
void fs__prom_result(const fs_publish_result_ctx *ctx);

/* prometheus_cache.c: label values and the combination cache */
extern const char *const FS__PROM_PUB_STATUS[ST_PUB_COUNT];
extern _Thread_local last_hit fs__prom_last_recv FS_TLS_MODEL, fs__prom_last_pub FS_TLS_MODEL;
extern atomic_uint_fast64_t fs__prom_next_state_id;
/* The dynamic values for `msg` (NULL: a publish outside any handler). */
void fs__prom_compute_dynamic(const prom_state *st, const fs_message *msg, const char **out);
/* The label values of a family: app_name, broker, name, [extra], custom... */
void fs__prom_build_values(const prom_state *st, const char *broker, const char *name,
                           const char *extra, const char *const *dyn, const char **out);
bool fs__prom_fill_recv(const prom_state *st, entry *e, const char *const *keys);
bool fs__prom_fill_pub(const prom_state *st, entry *e, const char *const *keys);
/* The cached entry for keys[0..n), made and filled on first use; NULL when the table is full there.
 */
entry *fs__prom_cache_get(const prom_state *st, cache *c, fill_fn fill, last_hit *last,
                          const char *broker_ptr, size_t n, const char *const *keys);
void fs__prom_cache_clear(cache *c);
/* Look the status child of `e` up (first time for that status) and keep it. */
__attribute__((noinline)) fs_counter *fs__prom_status_child_slow(const prom_state *st, entry *e,
                                                                 fs_counter_family *fam, int status,
                                                                 const char *status_name);

/* prometheus_tally.c */
/* The calling thread's tally for e (allocated on first use), NULL without one. */
_Atomic uint64_t *fs__prom_tally_get(const cache *c, entry *e);
/* Integer bounds for the histograms and the fold collector; fs__prom_fold_stop undoes it. */
int fs__prom_tally_setup(prom_state *st);
/* Unregister the fold collector, then fold what is left (no hook runs any more). */
void fs__prom_fold_stop(prom_state *st);

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

/*
 * The fast path of both hooks: the thread's last entry has a tally and was
 * found with this label id (fs_publish_ctx.destination_id,
 * fs_consume_ctx.handler_id: 0 for none; each of them belongs to one
 * publisher or subscription of one broker, whose middleware state is fixed,
 * and is never reused, so the id alone stands for the state, the broker and
 * the name). The entry's keys are then the broker and handler or
 * destination of the message (there are no dynamic labels).
 */
static inline bool is_fast(const last_hit *last, uint64_t id)
{
    return last->dest_id == id;
}

/*
 * The fast path without a label id (fs_publish by name, a subscription whose
 * messages carry their own names): whether the
 * thread's tally for its last entry is that of (broker, name), the
 * broker compared by pointer (an adapter's constant name) and the name by
 * content (it may be a buffer the caller rewrites); `len` is its length,
 * or 0 when not known.
 */
static inline bool named_tally(const prom_state *st, const last_hit *last, const char *broker,
                               const char *name, size_t len)
{
    if (last->named != broker || last->state_id != st->id || !name)
        return false;
    size_t n = len ? len : strlen(name);
    const entry *e = last->e;
    return n == e->name_len && fs_kit_mem_equal(name, e->keys[1], n);
}

/*
 * The bucket of integer value v (below UINT64_MAX; lt[n] = UINT64_MAX ends
 * the scan). A linear scan: most values of a histogram fall in its first
 * buckets (a message far past them, a slow handler, takes a few more).
 */
static inline uint32_t int_bucket(const int_bounds *b, uint64_t v)
{
    const uint64_t *lt = b->lt;
    uint32_t i = 0;
    while (v >= lt[i])
        i++;
    return i;
}

/* The status child of `e`, looked up once and kept. */
static inline fs_counter *status_child(const prom_state *st, entry *e, fs_counter_family *fam,
                                       int status, const char *status_name)
{
    fs_counter *c = atomic_load_explicit(&e->status[status], memory_order_acquire);
    if (FS_LIKELY(c != NULL))
        return c;
    return fs__prom_status_child_slow(st, e, fam, status, status_name);
}

/* counter += count; a single message takes the increment (no checks, no conversion). */
static inline void counter_add_count(fs_counter *c, size_t count)
{
    if (FS_LIKELY(count == 1))
        fs_counter_inc(c);
    else
        fs_counter_add(c, (double)count);
}

#endif
