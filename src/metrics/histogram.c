/*
 * Histograms: per-shard bucket counts (not cumulative) and sum, written under
 * a per-shard sequence (begun, done) that lets a reader take each shard
 * whole without ever blocking a writer. _count is derived at scrape time as
 * the total of the bucket counts, so the +Inf bucket always equals _count and
 * the sum belongs to the same observations, even in a scrape taken during
 * updates.
 */
#include "metrics_internal.h"

#include <math.h>

const double FS_DEFAULT_BUCKETS[FS_DEFAULT_BUCKETS_COUNT] = {
    0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0};

/* Bound i of a helper's output: finite and above the one before. */
static int check_bound(const double *out, size_t i, const char *fn)
{
    FS_CHECK_ARG(isfinite(out[i]), "%s: bound %zu overflows (it would be infinite)", fn, i);
    FS_CHECK_ARG(i == 0 || out[i] > out[i - 1],
                 "%s: bound %zu does not exceed bound %zu (rounding): the bounds must increase", fn,
                 i, i - 1);
    return FS_OK;
}

int fs_buckets_linear(double start, double width, size_t count, double *out)
{
    FS_CHECK_ARG(out, "fs_buckets_linear: out is NULL");
    FS_CHECK_ARG(count > 0, "fs_buckets_linear: count must be at least 1");
    FS_CHECK_ARG(isfinite(start), "fs_buckets_linear: start must be finite");
    FS_CHECK_ARG(width > 0 && isfinite(width), "fs_buckets_linear: width must be > 0, not %g",
                 width);
    for (size_t i = 0; i < count; i++) {
        out[i] = start + (double)i * width;
        int rc = check_bound(out, i, "fs_buckets_linear");
        if (rc != FS_OK)
            return rc;
    }
    return FS_OK;
}

int fs_buckets_exponential(double start, double factor, size_t count, double *out)
{
    FS_CHECK_ARG(out, "fs_buckets_exponential: out is NULL");
    FS_CHECK_ARG(count > 0, "fs_buckets_exponential: count must be at least 1");
    FS_CHECK_ARG(start > 0 && isfinite(start), "fs_buckets_exponential: start must be > 0, not %g",
                 start);
    FS_CHECK_ARG(factor > 1 && isfinite(factor),
                 "fs_buckets_exponential: factor must be > 1, not %g", factor);
    double v = start;
    for (size_t i = 0; i < count; i++) {
        out[i] = v;
        int rc = check_bound(out, i, "fs_buckets_exponential");
        if (rc != FS_OK)
            return rc;
        v *= factor;
    }
    return FS_OK;
}

int fs_histogram_family_new(fs_registry *reg, const char *name, const char *help,
                            size_t label_count, const char *const *label_names,
                            const double *buckets, size_t bucket_count, fs_histogram_family **out)
{
    FS_CHECK_ARG(out, "fs_histogram_family_new: out is NULL");
    *out = NULL;
    FS_CHECK_ARG(bucket_count == 0 || buckets, "buckets of histogram '%s' are NULL (count %zu)",
                 name ? name : "(null)", bucket_count);
    if (bucket_count == 0) {
        buckets = FS_DEFAULT_BUCKETS;
        bucket_count = FS_DEFAULT_BUCKETS_COUNT;
    } else if (isinf(buckets[bucket_count - 1]) && buckets[bucket_count - 1] > 0) {
        bucket_count--; /* the implied +Inf, given explicitly */
    }
    fs_family *f = NULL;
    int rc = fs__family_new_simple(reg, FS_METRIC_HISTOGRAM, name, help, label_count, label_names,
                                   buckets, bucket_count, &f);
    *out = (fs_histogram_family *)f;
    return rc;
}

fs_histogram *fs_histogram_family_labels(fs_histogram_family *fam, const char *const *values)
{
    return (fs_histogram *)fs__family_labels(fam ? &fam->f : NULL, values);
}

fs_histogram *fs_histogram_family_labels_key(fs_histogram_family *fam, const fs_label_key *key)
{
    return (fs_histogram *)fs__family_labels_key(fam ? &fam->f : NULL, key);
}

int fs_histogram_family_remove(fs_histogram_family *fam, const char *const *values)
{
    return fs__family_remove(fam ? &fam->f : NULL, values);
}

void fs_histogram_family_clear(fs_histogram_family *fam)
{
    fs__family_clear(fam ? &fam->f : NULL);
}

int fs_histogram_family_set_series_limit(fs_histogram_family *fam, size_t limit)
{
    return fs__family_set_limit(fam ? &fam->f : NULL, limit);
}

int fs_histogram_new(fs_registry *reg, const char *name, const char *help, const double *buckets,
                     size_t bucket_count, fs_histogram **out)
{
    FS_CHECK_ARG(out, "fs_histogram_new: out is NULL");
    fs_histogram_family *fam;
    int rc = fs_histogram_family_new(reg, name, help, 0, NULL, buckets, bucket_count, &fam);
    *out = rc == FS_OK ? (fs_histogram *)fam->f.single : NULL;
    return rc;
}

/* The first k in [lo, hi) with v <= b[k], or hi (a binary search). */
static FS_ALWAYS_INLINE uint32_t search_bucket(const double *b, uint32_t lo, uint32_t hi, double v)
{
    while (lo < hi) {
        uint32_t mid = lo + (hi - lo) / 2;
        if (v <= b[mid])
            hi = mid;
        else
            lo = mid + 1;
    }
    return lo;
}

/*
 * Index of the first bound >= v, or nb (the +Inf bucket; also for NaN). The
 * binade index after the bounds (fs__bucket_index) gives, from v's exponent
 * bits, the range of buckets v can fall in; a few bounds at most are then
 * compared one by one (a dozen buckets spread over as many binades as the
 * default ones: one or two).
 */
static FS_ALWAYS_INLINE uint32_t find_bucket(const double *b, uint32_t nb, double v)
{
    /* the first bounds one by one: where most observations of a histogram fall */
    if (nb >= 3) {
        if (v <= b[0])
            return 0;
        if (v <= b[1])
            return 1;
        if (v <= b[2])
            return 2;
    }
    uint64_t bits = fs__double_to_bits(v);
    if (FS_UNLIKELY(bits >> 63))
        return search_bucket(b, 0, nb, v); /* negative (or -0, -NaN) */
    const uint32_t *index = (const uint32_t *)(const void *)(b + nb + 1);
    uint32_t i = index[bits >> 52], end = index[(bits >> 52) + 1];
    if (FS_UNLIKELY(end - i > 4))
        return search_bucket(b, i, end, v);
    while (i < end && !(v <= b[i]))
        i++;
    return i;
}

void fs__bucket_index(const double *b, size_t nb, uint32_t *index)
{
    size_t k = 0;
    for (uint32_t p = 0; p < FS_BINADES; p++) {
        /* the least value of binade p: 0 (p = 0, subnormals), 2^(p - 1023), +Inf */
        double lo = p == 0 ? 0.0 : p < 0x7FF ? ldexp(1.0, (int)p - 1023) : (double)INFINITY;
        while (k < nb && b[k] < lo)
            k++;
        index[p] = (uint32_t)k;
    }
    index[FS_BINADES] = (uint32_t)nb; /* the end of the +Inf/NaN binade */
}

/* Shards are seqlocked blocks (kit/seqlock.h): begun and done, then the data. */

/* One observation in a shard only the calling thread writes. */
static FS_ALWAYS_INLINE void shard_observe(_Atomic uint64_t *w, uint32_t i, uint32_t nb, double v)
{
    uint64_t seq = fs_kit_seqlock_begin(w);
    fs_kit_seqlock_add(&w[FS_H_BUCKETS + i], 1);
    _Atomic uint64_t *s = &w[FS_H_BUCKETS + nb + 1];
    fs_kit_seqlock_set(s, fs__double_to_bits(fs__atomic_load_double(s) + v));
    fs_kit_seqlock_end(w, seq);
}

/* sum += v on a shard several threads write. */
static void shared_add_sum(_Atomic uint64_t *s, double v)
{
    uint64_t old = atomic_load_explicit(s, memory_order_relaxed);
    while (!atomic_compare_exchange_weak_explicit(s, &old,
                                                  fs__double_to_bits(fs__bits_to_double(old) + v),
                                                  memory_order_release, memory_order_relaxed)) {
    }
}

/* The shard the calling thread writes alone, or NULL: the shared one. */
static _Atomic uint64_t *own_shard(fs_histogram *h)
{
    bool own;
    _Atomic uint64_t *w = fs__child_cell(&h->hdr, (size_t)h->stride * 8, &own);
    return own ? h->words : w;
}

/* An observation by a thread that does not own the child. */
static FS_NOINLINE void observe_slow(fs_histogram *h, uint32_t i, double v)
{
    _Atomic uint64_t *w = own_shard(h);
    if (w) {
        shard_observe(w, i, h->nb, v);
        return;
    }
    w = h->words + h->stride; /* the shared shard: several writers */
    fs_kit_seqlock_begin_shared(w);
    atomic_fetch_add_explicit(&w[FS_H_BUCKETS + i], 1, memory_order_release);
    shared_add_sum(&w[FS_H_BUCKETS + h->nb + 1], v);
    fs_kit_seqlock_end_shared(w);
}

int fs_histogram_add(fs_histogram *h, const uint64_t *counts, size_t count_len, double sum)
{
    FS_CHECK_ARG(h, "fs_histogram_add: histogram is NULL");
    FS_CHECK_ARG(counts, "fs_histogram_add: counts is NULL");
    FS_CHECK_ARG(count_len == (size_t)h->nb + 1,
                 "fs_histogram_add: %zu counts given for a histogram of %u buckets (%u bounds and "
                 "+Inf)",
                 count_len, h->nb + 1, h->nb);
    _Atomic uint64_t *w = own_shard(h); /* (counts an overflow child's update) */
    bool shared = w == NULL;
    uint64_t seq = 0;
    if (shared) {
        w = h->words + h->stride;
        fs_kit_seqlock_begin_shared(w);
    } else {
        seq = fs_kit_seqlock_begin(w);
    }
    /* fetch_add on the own shard as well: one path, and this is no hot path */
    for (uint32_t i = 0; i <= h->nb; i++)
        if (counts[i])
            atomic_fetch_add_explicit(&w[FS_H_BUCKETS + i], counts[i], memory_order_release);
    shared_add_sum(&w[FS_H_BUCKETS + h->nb + 1], sum);
    if (shared)
        fs_kit_seqlock_end_shared(w);
    else
        fs_kit_seqlock_end(w, seq);
    return FS_OK;
}

const double *fs_histogram_family_bounds(const fs_histogram_family *fam, size_t *count)
{
    if (count)
        *count = fam ? fam->f.nbuckets : 0;
    return fam ? fam->f.buckets : NULL;
}

void fs_histogram_observe(fs_histogram *h, double v)
{
    if (FS_UNLIKELY(!h))
        return;
    uint32_t i = find_bucket(h->bounds, h->nb, v);
    uint32_t t = fs_kit_tls_slot;
    uint32_t owner = atomic_load_explicit(&h->hdr.owner, memory_order_relaxed);
    if (FS_LIKELY(owner == t)) {
        shard_observe(h->words, i, h->nb, v);
        return;
    }
    /* another exclusive thread, once the child has its shards (an overflow
     * child never has any: each of its updates is counted on the slow path) */
    _Atomic uint64_t *arr = atomic_load_explicit(&h->hdr.shards, memory_order_acquire);
    if (arr && t - 1 < FS_MAX_SHARDS) {
        shard_observe(arr + (size_t)(t - 1) * h->stride, i, h->nb, v);
        return;
    }
    observe_slow(h, i, v);
}

void fs__histogram_read_shard(const _Atomic uint64_t *w, uint32_t nb, uint64_t *snap,
                              uint64_t *counts, double *sum)
{
    if (!fs_kit_seqlock_read(w, FS_H_BUCKETS, nb + 2, snap)) /* the buckets, then the sum */
        return;
    for (uint32_t i = 0; i <= nb; i++)
        counts[i] += snap[i];
    *sum += fs__bits_to_double(snap[nb + 1]);
}

void fs__histogram_read(const struct fs_histogram *h, uint64_t *snap, uint64_t *counts, double *sum)
{
    memset(counts, 0, ((size_t)h->nb + 1) * sizeof *counts);
    *sum = 0;
    fs__histogram_read_shard(h->words, h->nb, snap, counts, sum);
    fs__histogram_read_shard(h->words + h->stride, h->nb, snap, counts, sum);
    const _Atomic uint64_t *arr =
        atomic_load_explicit(&((fs_child *)&h->hdr)->shards, memory_order_acquire);
    if (arr)
        for (uint32_t i = 0, k = fs_kit_slot_count(); i < k; i++)
            fs__histogram_read_shard(arr + (size_t)i * h->stride, h->nb, snap, counts, sum);
}

/* The observations counted in shard w: its buckets' total. */
static uint64_t shard_count(const _Atomic uint64_t *w, uint32_t nb)
{
    uint64_t n = 0;
    for (uint32_t i = 0; i <= nb; i++)
        n += atomic_load_explicit((_Atomic uint64_t *)&w[FS_H_BUCKETS + i], memory_order_relaxed);
    return n;
}

/* Totals for tests and tools: the observations (the buckets' total, as _count), and the sums. */
uint64_t fs_histogram_count(const fs_histogram *h)
{
    if (!h)
        return 0;
    uint64_t n = shard_count(h->words, h->nb) + shard_count(h->words + h->stride, h->nb);
    const _Atomic uint64_t *arr =
        atomic_load_explicit(&((fs_child *)&h->hdr)->shards, memory_order_acquire);
    if (arr)
        for (uint32_t i = 0, k = fs_kit_slot_count(); i < k; i++)
            n += shard_count(arr + (size_t)i * h->stride, h->nb);
    return n;
}

double fs_histogram_sum(const fs_histogram *h)
{
    if (!h)
        return 0;
    uint32_t sum_at = FS_H_BUCKETS + h->nb + 1;
    double sum = fs__atomic_load_double(&h->words[sum_at]) +
                 fs__atomic_load_double(&h->words[h->stride + sum_at]);
    const _Atomic uint64_t *arr =
        atomic_load_explicit(&((fs_child *)&h->hdr)->shards, memory_order_acquire);
    if (arr)
        for (uint32_t i = 0, k = fs_kit_slot_count(); i < k; i++)
            sum += fs__atomic_load_double(&arr[(size_t)i * h->stride + sum_at]);
    return sum;
}
