/*
 * Counters. Integer amounts go to a uint64, others to a separate double,
 * like the Go client's valInt/valBits. The owner's cell takes plain relaxed
 * stores; other threads use their exclusive cells or the shared one (see
 * metrics_internal.h).
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

int fs_counter_family_set_series_limit(fs_counter_family *fam, size_t limit)
{
    return fs__family_set_limit(fam ? &fam->f : NULL, limit);
}

int fs_counter_new(fs_registry *reg, const char *name, const char *help, fs_counter **out)
{
    FS_CHECK_ARG(out, "fs_counter_new: out is NULL");
    fs_counter_family *fam;
    int rc = fs_counter_family_new(reg, name, help, 0, NULL, &fam);
    *out = rc == FS_OK ? (fs_counter *)fam->f.single : NULL;
    return rc;
}

/* An update by a thread that does not own the child. */
static FS_NOINLINE void add_slow(fs_counter *c, uint64_t n, double f)
{
    bool own;
    fs_counter_cell *cell = fs__child_cell(&c->hdr, sizeof(fs_counter_shard), &own);
    if (own)
        cell = &c->own;
    if (cell) {
        if (n)
            atomic_store_explicit(&cell->n,
                                  atomic_load_explicit(&cell->n, memory_order_relaxed) + n,
                                  memory_order_relaxed);
        else
            atomic_store_explicit(&cell->fbits,
                                  fs__double_to_bits(fs__atomic_load_double(&cell->fbits) + f),
                                  memory_order_relaxed);
    } else if (n) {
        atomic_fetch_add_explicit(&c->shared.n, n, memory_order_relaxed);
    } else {
        fs__atomic_add_double(&c->shared.fbits, f);
    }
}

/* The cell the calling thread writes with plain stores, or NULL (the slow path). */
static FS_ALWAYS_INLINE fs_counter_cell *plain_cell(fs_counter *c)
{
    uint32_t t = fs_kit_tls_slot;
    uint32_t owner = atomic_load_explicit(&c->hdr.owner, memory_order_relaxed);
    if (FS_LIKELY(owner == t))
        return &c->own;
    /* another exclusive thread, once the child has its shards (an overflow
     * child never has any: each of its updates is counted on the slow path) */
    fs_counter_shard *arr = atomic_load_explicit(&c->hdr.shards, memory_order_acquire);
    if (arr && t - 1 < FS_MAX_SHARDS)
        return &arr[t - 1].cell;
    return NULL;
}

static FS_ALWAYS_INLINE void cell_inc(fs_counter_cell *cell)
{
    atomic_store_explicit(&cell->n, atomic_load_explicit(&cell->n, memory_order_relaxed) + 1,
                          memory_order_relaxed);
}

/* Each path ends in its own increment and return: no jump back to a shared
 * tail, as taken branches bound the rate of increments. */
void fs_counter_inc(fs_counter *c)
{
    if (FS_UNLIKELY(!c))
        return;
    uint32_t t = fs_kit_tls_slot;
    if (FS_LIKELY(atomic_load_explicit(&c->hdr.owner, memory_order_relaxed) == t)) {
        cell_inc(&c->own);
        return;
    }
    fs_counter_shard *arr = atomic_load_explicit(&c->hdr.shards, memory_order_acquire);
    if (FS_LIKELY(arr && t - 1 < FS_MAX_SHARDS)) {
        cell_inc(&arr[t - 1].cell);
        return;
    }
    add_slow(c, 1, 0);
}

/* Why `v` cannot be added (NaN or negative). */
static FS_NOINLINE int refuse(const fs_counter *c, double v)
{
    FS_CHECK_ARG(!isnan(v), "counter '%s': cannot add NaN", c->hdr.fam->name);
    return fs__error(FS_EINVAL, "counter '%s' cannot decrease: refusing to add %g",
                     c->hdr.fam->name, v);
}

int fs_counter_add(fs_counter *c, double v)
{
    FS_CHECK_ARG(c, "fs_counter_add: counter is NULL");
    if (FS_UNLIKELY(!(v >= 0)))
        return refuse(c, v);
    fs_counter_cell *cell = plain_cell(c);
    /* Whole amounts below 2^53 stay exact in the integer part. */
    if (v < 9007199254740992.0 && v == (double)(int64_t)v) {
        uint64_t n = (uint64_t)(int64_t)v;
        if (FS_LIKELY(cell != NULL))
            atomic_store_explicit(&cell->n,
                                  atomic_load_explicit(&cell->n, memory_order_relaxed) + n,
                                  memory_order_relaxed);
        else
            add_slow(c, n, 0);
    } else if (FS_LIKELY(cell != NULL)) {
        atomic_store_explicit(&cell->fbits,
                              fs__double_to_bits(fs__atomic_load_double(&cell->fbits) + v),
                              memory_order_relaxed);
    } else {
        add_slow(c, 0, v);
    }
    return FS_OK;
}

static void cell_total(const fs_counter_cell *cell, uint64_t *n, double *f)
{
    *n += atomic_load_explicit((_Atomic uint64_t *)&cell->n, memory_order_relaxed);
    *f += fs__atomic_load_double(&cell->fbits);
}

double fs__counter_total(const struct fs_counter *c)
{
    uint64_t n = 0;
    double f = 0;
    cell_total(&c->own, &n, &f);
    cell_total(&c->shared, &n, &f);
    const fs_counter_shard *arr =
        atomic_load_explicit(&((fs_child *)&c->hdr)->shards, memory_order_acquire);
    if (arr)
        for (uint32_t i = 0, k = fs_kit_slot_count(); i < k; i++)
            cell_total(&arr[i].cell, &n, &f);
    return (double)n + f;
}

double fs_counter_value(const fs_counter *c)
{
    return c ? fs__counter_total(c) : 0;
}
