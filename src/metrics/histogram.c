/*
 * Histograms: per-shard bucket counts (not cumulative) and sum. The count is
 * derived at scrape time as the total of the bucket counts, so the +Inf
 * bucket always equals _count, even in a scrape taken during updates.
 */
#include "metrics_internal.h"

#include <math.h>

const double FS_DEFAULT_BUCKETS[FS_DEFAULT_BUCKETS_COUNT] = {
    0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0};

int fs_buckets_linear(double start, double width, size_t count, double *out)
{
    FS_CHECK_ARG(out, "fs_buckets_linear: out is NULL");
    FS_CHECK_ARG(count > 0, "fs_buckets_linear: count must be at least 1");
    FS_CHECK_ARG(isfinite(start), "fs_buckets_linear: start must be finite");
    FS_CHECK_ARG(width > 0 && isfinite(width), "fs_buckets_linear: width must be > 0, not %g",
                 width);
    for (size_t i = 0; i < count; i++)
        out[i] = start + (double)i * width;
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

int fs_histogram_new(fs_registry *reg, const char *name, const char *help, const double *buckets,
                     size_t bucket_count, fs_histogram **out)
{
    FS_CHECK_ARG(out, "fs_histogram_new: out is NULL");
    fs_histogram_family *fam;
    int rc = fs_histogram_family_new(reg, name, help, 0, NULL, buckets, bucket_count, &fam);
    *out = rc == FS_OK ? (fs_histogram *)fam->f.single : NULL;
    return rc;
}

/* Index of the first bound >= v, or nb (the +Inf bucket; also for NaN). */
static inline uint32_t find_bucket(const double *b, uint32_t nb, double v)
{
    if (nb <= 16) {
        uint32_t i = 0;
        while (i < nb && !(v <= b[i]))
            i++;
        return i;
    }
    if (!(v <= b[nb - 1]))
        return nb;
    uint32_t lo = 0, hi = nb - 1;
    while (lo < hi) {
        uint32_t mid = (lo + hi) / 2;
        if (v <= b[mid])
            hi = mid;
        else
            lo = mid + 1;
    }
    return lo;
}

void fs_histogram_observe(fs_histogram *h, double v)
{
    if (FS_UNLIKELY(!h))
        return;
    uint32_t i = find_bucket(h->bounds, h->nb, v);
    unsigned s = fs__shard();
    _Atomic uint64_t *w = h->words + (size_t)s * h->stride;
    fs__cell_add(&w[i], 1, s);
    fs__cell_add_double(&w[h->nb + 1], v, s);
}

uint64_t fs_histogram_count(const fs_histogram *h)
{
    if (!h)
        return 0;
    uint64_t n = 0;
    for (int s = 0; s < FS_METRIC_SHARDS; s++) {
        const _Atomic uint64_t *w = h->words + (size_t)s * h->stride;
        for (uint32_t i = 0; i <= h->nb; i++)
            n += atomic_load_explicit((_Atomic uint64_t *)&w[i], memory_order_relaxed);
    }
    return n;
}

double fs_histogram_sum(const fs_histogram *h)
{
    if (!h)
        return 0;
    double sum = 0;
    for (int s = 0; s < FS_METRIC_SHARDS; s++)
        sum += fs__atomic_load_double(h->words + (size_t)s * h->stride + h->nb + 1);
    return sum;
}
