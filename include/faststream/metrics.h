/*
 * faststream/metrics.h - a Prometheus client: counters, gauges, histograms
 * and info metrics, with or without labels, in registries.
 *
 * This part of faststream knows nothing of brokers; a C program can use it
 * (with faststream/exposition.h and faststream/http.h) on its own by linking
 * faststream-metrics.
 *
 * Families and children. Every metric is a family with zero or more label
 * names. A child is one label-value combination; its handle (fs_counter *,
 * fs_gauge *, fs_histogram *) stays valid until the family's registry is
 * freed, so callers may keep it and update it with no lookup at all. Looking
 * a child up by values (fs_*_family_labels) takes no lock and allocates
 * nothing once the child exists. A family without labels has exactly one
 * child; fs_counter_new() and friends create such a family and return that
 * child directly.
 *
 * Label keys. Code that looks up children of several families by the same
 * label values (a middleware updating five metrics per message) can hash the
 * values once into an fs_label_key and look up every family with it
 * (fs_*_family_labels_key); fs_label_key_extend adds one more value (a
 * status) without hashing the others again. A key lookup finds exactly the
 * child fs_*_family_labels finds for the same values.
 *
 * Cardinality. A family holds at most its series limit of label sets (none
 * by default; see fs_registry_set_series_limit). Past it, looking up a new
 * label set returns the family's overflow child, whose every label value is
 * "__overflow__" (that label set is reserved: looking it up always returns
 * the overflow child): the updates of all such label sets add up there, memory
 * stays flat, a warning is logged once per family (through the log
 * callback), and every scrape shows how many updates were redirected in the
 * counter family metrics_series_overflow_updates_total{metric="NAME"}.
 *
 * Label values. A value may hold any bytes but NUL. The expositions are
 * UTF-8, so a byte that is not part of valid UTF-8 is shown as U+FFFD
 * followed by its two hex digits (uppercase; "a\xfe" shows as "a\uFFFDFE"),
 * and a U+FFFD in the value itself as two U+FFFD: distinct values always
 * show distinct, and valid UTF-8 without U+FFFD shows unchanged.
 *
 * Threads. Every update is thread-safe and lock-free. Registration, removal
 * and clearing take a per-family lock; they never block updates.
 *
 * Ownership. A metric belongs to the registry it is created in and is freed
 * with it. Passing NULL as the registry means the default registry, which
 * lives until the process exits.
 *
 * Errors. Creation returns FS_EINVAL for invalid names, reserved labels or
 * wrong counts, FS_ECONFLICT when the name is registered with another type,
 * help, label set or buckets; fs_last_error() says exactly what.
 * Re-registering a name with the same definition returns the existing family.
 */
#ifndef FASTSTREAM_METRICS_H
#define FASTSTREAM_METRICS_H

#include "faststream/common.h"

#include <stdbool.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct fs_registry fs_registry;

typedef struct fs_counter_family fs_counter_family;
typedef struct fs_gauge_family fs_gauge_family;
typedef struct fs_histogram_family fs_histogram_family;

typedef struct fs_counter fs_counter;
typedef struct fs_gauge fs_gauge;
typedef struct fs_histogram fs_histogram;

/** The type of a metric family, as exposed in # TYPE lines. */
typedef enum fs_metric_type {
    FS_METRIC_COUNTER = 0,
    FS_METRIC_GAUGE = 1,
    FS_METRIC_HISTOGRAM = 2,
    FS_METRIC_INFO = 3,
    FS_METRIC_UNTYPED = 4,
} fs_metric_type;

/* ------------------------------------------------------------------------ */
/* Registries                                                               */

/**
 * The process-wide default registry (created on first use, with the process
 * collector registered, never freed). NULL only if it cannot be allocated.
 */
FS_API fs_registry *fs_registry_default(void);

/** Create an empty registry. */
FS_API int fs_registry_new(fs_registry **out);

/**
 * Free a registry with every metric and collector in it (collectors' free_user
 * is called). NULL and the default registry are ignored. No other thread may
 * use the registry or handles into it any more.
 */
FS_API void fs_registry_free(fs_registry *reg);

/**
 * Remove the family or collector called `name` from the exposition. Handles
 * to its children stay valid (updates become invisible) until the registry
 * is freed. FS_ENOTFOUND when nothing has that name.
 */
FS_API int fs_registry_unregister(fs_registry *reg, const char *name);

/** True when a family or collector called `name` is registered. */
FS_API bool fs_registry_contains(fs_registry *reg, const char *name);

/** A family's series limit that follows its registry's default (the initial setting). */
#define FS_SERIES_LIMIT_REGISTRY ((size_t)-1)

/**
 * The default series limit of the families of `reg` (NULL: the default
 * registry): the most label sets each of them creates, beyond which updates
 * go to its overflow child. 0 (the initial value) means no limit. It applies
 * at once to every family that has no limit of its own, also to families
 * registered earlier; label sets that exist stay. FS_EINVAL for
 * FS_SERIES_LIMIT_REGISTRY.
 */
FS_API int fs_registry_set_series_limit(fs_registry *reg, size_t limit);

/** The default series limit of `reg` (NULL: the default registry). */
FS_API size_t fs_registry_series_limit(fs_registry *reg);

/* ------------------------------------------------------------------------ */
/* Label keys: label values hashed once, for lookups in several families.   */

/** Most values a label key holds: the most label names a family may have. */
#define FS_LABEL_KEY_MAX 32

/** Bytes of label values (each with its NUL) a key also holds as one copy. */
#define FS_LABEL_KEY_BYTES 256

/**
 * Label values with their lengths and hash, ready for lookups. Fixed size,
 * meant for the stack (no allocation, nothing to free). The fields are
 * private: set them only through fs_label_key_init and fs_label_key_extend.
 * A key points at the caller's strings: they must stay alive and unchanged
 * while the key is used. Lookups only read a key, so threads may share one.
 * A key whose init or extend failed makes every lookup with it fail (NULL),
 * until it is initialised again.
 */
typedef struct fs_label_key {
    /* All private. */
    uint64_t state;                       /* the hash state after `count` values */
    uint64_t hash;                        /* the finished hash */
    uint32_t count;                       /* values held; UINT32_MAX: unusable */
    uint32_t packed_len;                  /* bytes in `packed`; 0: they did not fit */
    uint32_t lens[FS_LABEL_KEY_MAX];      /* length of each value */
    const char *values[FS_LABEL_KEY_MAX]; /* the caller's strings */
    char packed[FS_LABEL_KEY_BYTES];      /* a copy, "v1\0v2\0...", compared at once */
} fs_label_key;

/**
 * Make `k` hold `values[0..count)` (count <= FS_LABEL_KEY_MAX; `values` may
 * be NULL when count is 0). Each value is any NUL-terminated string, as for
 * fs_*_family_labels. FS_EINVAL on a NULL key or value, or too many values.
 */
FS_API int fs_label_key_init(fs_label_key *k, size_t count, const char *const *values);

/**
 * Make `dst` hold the values of `base` followed by `value`, hashing only
 * `value` (the others are not read again). `dst` may be `base` itself.
 * FS_EINVAL on a NULL argument, an unusable `base`, or a `base` already
 * holding FS_LABEL_KEY_MAX values; `dst` is then unusable.
 */
FS_API int fs_label_key_extend(fs_label_key *dst, const fs_label_key *base, const char *value);

/* ------------------------------------------------------------------------ */
/* Counters: monotonically increasing values.                               */

/**
 * Create (or find, when an identical one exists) a counter family.
 * `name` is the exposed name; a trailing "_total" is accepted and kept for
 * the sample, and the OpenMetrics family name drops it. `label_names` holds
 * `label_count` (at most 32) valid, distinct, non-reserved label names.
 * FS_ESTATE when called from a collector callback.
 */
FS_API int fs_counter_family_new(fs_registry *reg, const char *name, const char *help,
                                 size_t label_count, const char *const *label_names,
                                 fs_counter_family **out);

/**
 * The child for `values` (exactly label_count strings), created on first
 * use. Returns NULL (and sets fs_last_error) on a NULL family or value.
 * Lock-free and allocation-free when the child exists. Values may hold any
 * bytes (see "Label values" above). Past the family's series limit, a new
 * label set gets the overflow child.
 */
FS_API fs_counter *fs_counter_family_labels(fs_counter_family *fam, const char *const *values);

/**
 * The child for the values held by `key`: the same child
 * fs_counter_family_labels returns for those values, created on first use.
 * Returns NULL (and sets fs_last_error) on a NULL argument, an unusable key,
 * or a key holding another number of values than the family has labels.
 * Lock-free and allocation-free when the child exists; the values are not
 * hashed again.
 */
FS_API fs_counter *fs_counter_family_labels_key(fs_counter_family *fam, const fs_label_key *key);

/**
 * Remove one child from the exposition. FS_ENOTFOUND when absent, FS_EINVAL
 * for a family without labels. Handles to it stay valid (their updates are
 * no longer exposed); a later lookup of the same values creates a new child.
 * Memory of removed children is reclaimed when the registry is freed.
 */
FS_API int fs_counter_family_remove(fs_counter_family *fam, const char *const *values);

/** Remove every child from the exposition. */
FS_API void fs_counter_family_clear(fs_counter_family *fam);

/**
 * Set the most label sets this family creates (0: no limit;
 * FS_SERIES_LIMIT_REGISTRY: its registry's default, the initial setting).
 * See "Cardinality" above. Label sets that exist stay. FS_EINVAL for a NULL
 * or unlabelled family.
 */
FS_API int fs_counter_family_set_series_limit(fs_counter_family *fam, size_t limit);

/** Create (or find) an unlabelled counter and return its single child. */
FS_API int fs_counter_new(fs_registry *reg, const char *name, const char *help, fs_counter **out);

/** Add 1. */
FS_API void fs_counter_inc(fs_counter *c);

/** Add `v`; a negative or NaN `v` is refused with FS_EINVAL. */
FS_API int fs_counter_add(fs_counter *c, double v);

/** The current value. */
FS_API double fs_counter_value(const fs_counter *c);

/* ------------------------------------------------------------------------ */
/* Gauges: values that go up and down.                                      */

FS_API int fs_gauge_family_new(fs_registry *reg, const char *name, const char *help,
                               size_t label_count, const char *const *label_names,
                               fs_gauge_family **out);
FS_API fs_gauge *fs_gauge_family_labels(fs_gauge_family *fam, const char *const *values);
/** The child for the values held by `key`, as fs_counter_family_labels_key. */
FS_API fs_gauge *fs_gauge_family_labels_key(fs_gauge_family *fam, const fs_label_key *key);
FS_API int fs_gauge_family_remove(fs_gauge_family *fam, const char *const *values);
FS_API void fs_gauge_family_clear(fs_gauge_family *fam);
/** As fs_counter_family_set_series_limit. */
FS_API int fs_gauge_family_set_series_limit(fs_gauge_family *fam, size_t limit);
FS_API int fs_gauge_new(fs_registry *reg, const char *name, const char *help, fs_gauge **out);

FS_API void fs_gauge_inc(fs_gauge *g);
FS_API void fs_gauge_dec(fs_gauge *g);
FS_API void fs_gauge_add(fs_gauge *g, double v);
FS_API void fs_gauge_sub(fs_gauge *g, double v);
FS_API void fs_gauge_set(fs_gauge *g, double v);
/** Set to the current wall-clock time in seconds since the Unix epoch. */
FS_API void fs_gauge_set_to_current_time(fs_gauge *g);
FS_API double fs_gauge_value(const fs_gauge *g);

/* ------------------------------------------------------------------------ */
/* Histograms: observations counted in cumulative buckets.                  */

/** The Prometheus default buckets: .005 .01 .025 .05 .075 .1 .25 .5 .75 1 2.5 5 7.5 10. */
FS_API extern const double FS_DEFAULT_BUCKETS[];
#define FS_DEFAULT_BUCKETS_COUNT 14

/**
 * Fill `out[0..count)` with start, start+width, ... FS_EINVAL on count 0,
 * width <= 0, or bounds that overflow or stop increasing (rounding).
 */
FS_API int fs_buckets_linear(double start, double width, size_t count, double *out);

/**
 * Fill `out[0..count)` with start, start*factor, ... FS_EINVAL on start <= 0,
 * factor <= 1, or bounds that overflow (become infinite) or stop increasing.
 */
FS_API int fs_buckets_exponential(double start, double factor, size_t count, double *out);

/**
 * Create (or find) a histogram family. `buckets` are the finite upper bounds
 * in strictly increasing order (a trailing +Inf is accepted and ignored);
 * `bucket_count` 0 means FS_DEFAULT_BUCKETS. The label name "le" is refused.
 */
FS_API int fs_histogram_family_new(fs_registry *reg, const char *name, const char *help,
                                   size_t label_count, const char *const *label_names,
                                   const double *buckets, size_t bucket_count,
                                   fs_histogram_family **out);
FS_API fs_histogram *fs_histogram_family_labels(fs_histogram_family *fam,
                                                const char *const *values);
/** The child for the values held by `key`, as fs_counter_family_labels_key. */
FS_API fs_histogram *fs_histogram_family_labels_key(fs_histogram_family *fam,
                                                    const fs_label_key *key);
FS_API int fs_histogram_family_remove(fs_histogram_family *fam, const char *const *values);
FS_API void fs_histogram_family_clear(fs_histogram_family *fam);
/** As fs_counter_family_set_series_limit. */
FS_API int fs_histogram_family_set_series_limit(fs_histogram_family *fam, size_t limit);
FS_API int fs_histogram_new(fs_registry *reg, const char *name, const char *help,
                            const double *buckets, size_t bucket_count, fs_histogram **out);

/** Record one observation. */
FS_API void fs_histogram_observe(fs_histogram *h, double v);

/**
 * Record observations counted elsewhere: counts[i] observations in bucket i
 * (per bucket, not cumulative: bucket i holds the values above bound i - 1 up
 * to bound i, counts[n] those above the last bound, n being the number of
 * finite bounds) and `sum`, their sum. For instrumentation that tallies in
 * its own memory and brings a histogram up to date now and then (the
 * Prometheus middleware does so when scraped). `count_len` must be n + 1
 * (see fs_histogram_family_bounds). A scrape sees all of it or none.
 */
FS_API int fs_histogram_add(fs_histogram *h, const uint64_t *counts, size_t count_len, double sum);

/**
 * The finite upper bounds of a histogram family's buckets, ascending (a
 * given +Inf removed), their number in *count; NULL (and 0) for NULL.
 */
FS_API const double *fs_histogram_family_bounds(const fs_histogram_family *fam, size_t *count);

/** Totals, for tests and tools: observation count and sum. */
FS_API uint64_t fs_histogram_count(const fs_histogram *h);
FS_API double fs_histogram_sum(const fs_histogram *h);

/* ------------------------------------------------------------------------ */
/* Info: constant key-value metadata, exposed as NAME_info{...} 1.          */

/**
 * Register an info metric. `name` is given without the "_info" suffix.
 * The labels are fixed at creation. Registering the same name, help, label
 * names and values again is a no-op; other values are FS_ECONFLICT.
 */
FS_API int fs_info_new(fs_registry *reg, const char *name, const char *help, size_t label_count,
                       const char *const *label_names, const char *const *label_values);

/* ------------------------------------------------------------------------ */
/* Custom collectors: samples produced at scrape time.                      */

/** Handed to a collector while a scrape runs. */
typedef struct fs_collect_ctx fs_collect_ctx;

/**
 * A collector callback. It declares families with fs_collect_family() and
 * adds their samples with fs_collect_sample(); it returns FS_OK, or an error
 * status to drop everything it produced in this scrape (the failure is logged).
 * A failing fs_collect_* call also drops the collector's output. Collectors
 * run during fs_registry_render, in name order, possibly from several threads
 * at once, before any registered metric is read: a collector may also bring
 * registered metrics up to date (update them, create their children), as the
 * Prometheus middleware does with its per-thread tallies. Collectors must not
 * register or unregister metrics (FS_ESTATE).
 * Their families are merged into the exposition in name order; a family name
 * that a registered metric exposes is refused (FS_ECONFLICT).
 */
typedef int (*fs_collect_fn)(fs_collect_ctx *ctx, void *user);

/** Begin a family (counter, gauge or untyped) in the collector's output. */
FS_API int fs_collect_family(fs_collect_ctx *ctx, const char *name, const char *help,
                             fs_metric_type type);

/**
 * Add a sample to the family begun last. For a counter family the sample is
 * named NAME_total when `name` lacks that suffix. `label_count` may be 0.
 */
FS_API int fs_collect_sample(fs_collect_ctx *ctx, size_t label_count,
                             const char *const *label_names, const char *const *label_values,
                             double value);

/**
 * Register a collector under `name` (used by fs_registry_unregister).
 * `free_user`, if given, is called with `user` when the collector is removed
 * or the registry freed (not when this call fails). FS_ECONFLICT when a
 * collector or metric already has that name.
 */
FS_API int fs_registry_add_collector(fs_registry *reg, const char *name, fs_collect_fn fn,
                                     void *user, void (*free_user)(void *user));

/**
 * Register the process collector ("process"): process_cpu_seconds_total,
 * process_resident_memory_bytes, process_virtual_memory_bytes,
 * process_start_time_seconds, process_open_fds, process_max_fds, read from
 * /proc at scrape time. The default registry has it from the start.
 */
FS_API int fs_process_collector_register(fs_registry *reg);

/* ------------------------------------------------------------------------ */
/* Validation helpers (also used internally).                               */

/** True for a valid metric name: [a-zA-Z_:][a-zA-Z0-9_:]*. */
FS_API bool fs_metric_name_valid(const char *name);

/** True for a valid label name: [a-zA-Z_][a-zA-Z0-9_]* not starting with "__". */
FS_API bool fs_label_name_valid(const char *name);

#ifdef __cplusplus
}
#endif

#endif /* FASTSTREAM_METRICS_H */
