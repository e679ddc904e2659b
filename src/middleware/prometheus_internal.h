/*
 * The Prometheus middleware's internals, shared by prometheus.c (setup),
 * prometheus_cache.c (label values, the combination cache) and
 * prometheus_hooks.c (the consume, publish and publish-result hooks).
 * Not installed.
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
#ifndef FS_PROMETHEUS_INTERNAL_H
#define FS_PROMETHEUS_INTERNAL_H

#include "faststream/prometheus.h"

#include "common/internal.h"
#include "kit/clock.h"
#include "kit/str.h"
#include "kit/ticks.h"

#include <math.h>
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
    struct fs__backlog_entry *backlog; /* the backlog family's entry for this broker, or NULL */
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
    /* e's name has this id (fs_publish_ctx.destination_id, fs_consume_ctx.handler_id); 0: none */
    uint64_t dest_id;
} last_hit;

/* prometheus_hooks.c */
fs_outcome fs__prom_consume(fs_consume_ctx *ctx);
int fs__prom_publish(fs_publish_ctx *ctx);
void fs__prom_result(const fs_publish_result_ctx *ctx);

/* prometheus_cache.c: label values and the combination cache */
extern const char *const FS__PROM_RECV_STATUS[ST_RECV_COUNT];
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
__attribute__((noinline)) fs_counter *fs__prom_status_child_slow(const prom_state *st, entry *e,
                                                                 fs_counter_family *fam, int status,
                                                                 const char *status_name);

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
 * The fast path of both hooks (no dynamic labels): the thread's last hit if
 * it is the entry for (broker, name), recognised by the label's id when it has
 * one (a kept label: fs_publish_ctx.destination_id, fs_consume_ctx.handler_id),
 * else by content; a content hit takes the id for next time. NULL otherwise.
 */
static inline entry *fast_hit(const prom_state *st, last_hit *last, const char *broker_ptr,
                              const char *name, uint64_t id)
{
    if (id && last->dest_id == id && last->state_id == st->id && last->broker == broker_ptr)
        return last->e;
    entry *e = last_hit_get(st, last, broker_ptr, name, NULL);
    if (e)
        last->dest_id = id;
    return e;
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
