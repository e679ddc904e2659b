/* Gauges: one atomic double per child, on the line lookups do not read. */
#include "metrics_internal.h"

/* Updates of an overflow child are counted as redirected. */
static inline void count_redirect(fs_gauge *g)
{
    if (FS_UNLIKELY(atomic_load_explicit(&g->hdr.owner, memory_order_relaxed) == FS_TOKEN_NEVER))
        atomic_fetch_add_explicit(&g->hdr.fam->redirected, 1, memory_order_relaxed);
}

int fs_gauge_family_new(fs_registry *reg, const char *name, const char *help, size_t label_count,
                        const char *const *label_names, fs_gauge_family **out)
{
    fs_family *f = NULL;
    int rc = fs__family_new_simple(reg, FS_METRIC_GAUGE, name, help, label_count, label_names, NULL,
                                   0, out ? &f : NULL);
    if (out)
        *out = (fs_gauge_family *)f;
    return rc;
}

fs_gauge *fs_gauge_family_labels(fs_gauge_family *fam, const char *const *values)
{
    return (fs_gauge *)fs__family_labels(fam ? &fam->f : NULL, values);
}

fs_gauge *fs_gauge_family_labels_key(fs_gauge_family *fam, const fs_label_key *key)
{
    return (fs_gauge *)fs__family_labels_key(fam ? &fam->f : NULL, key);
}

int fs_gauge_family_remove(fs_gauge_family *fam, const char *const *values)
{
    return fs__family_remove(fam ? &fam->f : NULL, values);
}

void fs_gauge_family_clear(fs_gauge_family *fam)
{
    fs__family_clear(fam ? &fam->f : NULL);
}

int fs_gauge_family_set_series_limit(fs_gauge_family *fam, size_t limit)
{
    return fs__family_set_limit(fam ? &fam->f : NULL, limit);
}

int fs_gauge_new(fs_registry *reg, const char *name, const char *help, fs_gauge **out)
{
    FS_CHECK_ARG(out, "fs_gauge_new: out is NULL");
    fs_gauge_family *fam;
    int rc = fs_gauge_family_new(reg, name, help, 0, NULL, &fam);
    *out = rc == FS_OK ? (fs_gauge *)fam->f.single : NULL;
    return rc;
}

void fs_gauge_add(fs_gauge *g, double v)
{
    if (FS_UNLIKELY(!g))
        return;
    count_redirect(g);
    fs__atomic_add_double(&g->bits, v);
}

void fs_gauge_inc(fs_gauge *g)
{
    fs_gauge_add(g, 1.0);
}

void fs_gauge_dec(fs_gauge *g)
{
    fs_gauge_add(g, -1.0);
}

void fs_gauge_sub(fs_gauge *g, double v)
{
    fs_gauge_add(g, -v);
}

void fs_gauge_set(fs_gauge *g, double v)
{
    if (FS_UNLIKELY(!g))
        return;
    count_redirect(g);
    atomic_store_explicit(&g->bits, fs__double_to_bits(v), memory_order_relaxed);
}

void fs_gauge_set_to_current_time(fs_gauge *g)
{
    fs_gauge_set(g, fs__now());
}

double fs_gauge_value(const fs_gauge *g)
{
    return g ? fs__atomic_load_double(&g->bits) : 0;
}
