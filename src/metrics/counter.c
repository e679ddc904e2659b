/*
 * Counters. Each child is sharded into per-thread-slot cache lines; integer
 * increments go to an atomic uint64 (one fetch_add), other amounts to a
 * separate double (CAS), like the Go client's valInt/valBits.
 */
#include "metrics_internal.h"

#include <math.h>

int fs_counter_family_new(fs_registry *reg, const char *name, const char *help, size_t label_count,
                          const char *const *label_names, fs_counter_family **out)
{
    fs_family *f = NULL;
    int rc = fs__family_new_simple(reg, FS_METRIC_COUNTER, name, help, label_count, label_names,
                                   NULL, 0, out ? &f : NULL);
    if (out)
        *out = (fs_counter_family *)f;
    return rc;
}

fs_counter *fs_counter_family_labels(fs_counter_family *fam, const char *const *values)
{
    return (fs_counter *)fs__family_labels(fam ? &fam->f : NULL, values);
}

fs_counter *fs_counter_family_labels_key(fs_counter_family *fam, const fs_label_key *key)
{
    return (fs_counter *)fs__family_labels_key(fam ? &fam->f : NULL, key);
}

int fs_counter_family_remove(fs_counter_family *fam, const char *const *values)
{
    return fs__family_remove(fam ? &fam->f : NULL, values);
}

void fs_counter_family_clear(fs_counter_family *fam)
{
    fs__family_clear(fam ? &fam->f : NULL);
}

int fs_counter_new(fs_registry *reg, const char *name, const char *help, fs_counter **out)
{
    FS_CHECK_ARG(out, "fs_counter_new: out is NULL");
    fs_counter_family *fam;
    int rc = fs_counter_family_new(reg, name, help, 0, NULL, &fam);
    *out = rc == FS_OK ? (fs_counter *)fam->f.single : NULL;
    return rc;
}

void fs_counter_inc(fs_counter *c)
{
    if (FS_UNLIKELY(!c))
        return;
    unsigned s = fs__shard();
    fs__cell_add(&c->cells[s].n, 1, s);
}

int fs_counter_add(fs_counter *c, double v)
{
    FS_CHECK_ARG(c, "fs_counter_add: counter is NULL");
    FS_CHECK_ARG(!isnan(v), "counter '%s': cannot add NaN", c->hdr.fam->name);
    FS_CHECK_ARG(v >= 0, "counter '%s' cannot decrease: refusing to add %g", c->hdr.fam->name, v);
    unsigned s = fs__shard();
    fs_counter_cell *cell = &c->cells[s];
    /* Whole amounts below 2^53 stay exact in the integer part. */
    if (v < 9007199254740992.0 && v == (double)(uint64_t)v)
        fs__cell_add(&cell->n, (uint64_t)v, s);
    else
        fs__cell_add_double(&cell->fbits, v, s);
    return FS_OK;
}

double fs_counter_value(const fs_counter *c)
{
    return c ? fs__counter_total(c) : 0;
}
