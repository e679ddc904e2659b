/* Gauges: one atomic double per child, on its own cache line. */
#include "metrics_internal.h"

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
