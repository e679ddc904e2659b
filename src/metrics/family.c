/*
 * Label families: children looked up by label values through a lock-free
 * hash table (table.h); creation, removal, clearing and the render order
 * under the family mutex. Children are appended to a pending list in O(1)
 * and sorted into the render order when a scrape takes a snapshot, so
 * creation costs the same at any size and rendering stays deterministic.
 * Past the family's limit new label sets share one overflow child. Nothing
 * a reader may hold is freed before the registry (see metrics_internal.h).
 */
#include "table.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>

static int value_too_long(const fs_family *fam, size_t i)
{
    return fs__error(FS_EINVAL, "label value %zu ('%s') of metric '%s' is too long (4 GiB or more)",
                     i, fam->label_names[i], fam->name);
}

static int check_values(fs_family *fam, const char *const *values)
{
    FS_CHECK_ARG(values, "label values for metric '%s' are NULL (it has %zu labels)", fam->name,
                 fam->label_count);
    for (size_t i = 0; i < fam->label_count; i++)
        FS_CHECK_ARG(values[i], "label value %zu ('%s') of metric '%s' is NULL", i,
                     fam->label_names[i], fam->name);
    return FS_OK;
}

/* ------------------------------------------------------------------------ */
/* Creation under the lock                                                  */

static void retire_table(fs_family *fam, fs_table *t)
{
    t->retired_next = fam->retired_tables;
    fam->retired_tables = t;
}

static bool is_dead(const fs_child *c)
{
    return atomic_load_explicit(&((fs_child *)c)->flags, memory_order_relaxed) & FS_CHILD_DEAD;
}

static void insert_live(fs_child *c, void *t)
{
    if (!is_dead(c) && c != c->fam->single)
        fs__table_insert(t, c);
}

/* A fresh table for `live` children (and room to grow), holding the live ones. */
static int table_rebuild(fs_family *fam, size_t live)
{
    size_t cap = 16;
    while (cap < 2 * (live + 1))
        cap *= 2;
    fs_table *t = fs__table_new(cap);
    if (!t)
        return fs__error(FS_ENOMEM, "out of memory growing the children of metric '%s'", fam->name);
    fs__children_each(fam, insert_live, t);
    fs_table *old = atomic_load_explicit(&fam->table, memory_order_relaxed);
    atomic_store_explicit(&fam->table, t, memory_order_release);
    if (old)
        retire_table(fam, old);
    return FS_OK;
}

/* A new child for the values of k (absent from the table), published. */
static fs_child *insert_new(fs_family *fam, const fs_label_key *k)
{
    fs_child **p = fs__array_grow(fam->pending, &fam->cappending, fam->npending + 1, sizeof *p, 16);
    if (!p) {
        fs__error(FS_ENOMEM, "out of memory adding a child to metric '%s'", fam->name);
        return NULL;
    }
    fam->pending = p;
    fs_table *t = atomic_load_explicit(&fam->table, memory_order_relaxed);
    if ((t->used + 1) * 2 > t->mask + 1) {
        if (table_rebuild(fam, atomic_load_explicit(&fam->nlive, memory_order_relaxed) + 1) !=
            FS_OK)
            return NULL;
        t = atomic_load_explicit(&fam->table, memory_order_relaxed);
    }
    fs_child *c = fs__child_create(fam, k->values, k->lens, k->hash);
    if (!c) {
        fs__error(FS_ENOMEM, "out of memory creating a child of metric '%s'", fam->name);
        return NULL;
    }
    fam->pending[fam->npending++] = c;
    fs__table_insert(t, c);
    return c;
}

/* The overflow child, made on first need. Under the lock. */
static fs_child *overflow_child(fs_family *fam)
{
    fs_child *o = atomic_load_explicit(&fam->overflow, memory_order_relaxed);
    if (o)
        return o;
    const char *values[FS_MAX_LABELS];
    for (size_t i = 0; i < fam->label_count; i++)
        values[i] = FS_OVERFLOW_VALUE;
    fs_label_key k;
    fs__key_fill(&k, fam->label_count, values);
    /* No other child has those values (labels_slow sends them here). */
    if (!(o = insert_new(fam, &k)))
        return NULL;
    /* Every update of it is counted: no thread ever owns it, nor has cells in it. */
    atomic_store_explicit(&o->owner, FS_TOKEN_NEVER, memory_order_relaxed);
    atomic_fetch_or_explicit(&o->flags, FS_CHILD_OVERFLOW, memory_order_relaxed);
    atomic_store_explicit(&fam->overflow, o, memory_order_release);
    return o;
}

/* Whether k holds FS_OVERFLOW_VALUE for every label (the overflow child's values). */
static bool is_overflow_key(const fs_family *fam, const fs_label_key *k)
{
    size_t n = strlen(FS_OVERFLOW_VALUE);
    for (size_t i = 0; i < fam->label_count; i++)
        if (k->lens[i] != n || memcmp(k->values[i], FS_OVERFLOW_VALUE, n) != 0)
            return false;
    return true;
}

static void warn_limit(fs_family *fam, size_t limit)
{
    if (!atomic_load_explicit(&fam->warned, memory_order_relaxed) &&
        !atomic_exchange(&fam->warned, true))
        fs__log(FS_LOG_WARN, "metrics",
                "metric '%s' reached its limit of %zu label sets: the updates of further label "
                "sets go to its overflow series (every label \"" FS_OVERFLOW_VALUE "\"); "
                "metrics_series_overflow_updates_total counts them",
                fam->name, limit);
}

/* Create the child under the lock (another thread may have won the race). */
static fs_child *labels_slow(fs_family *fam, const fs_label_key *k)
{
    size_t limit = fs__family_limit(fam);
    if (limit && atomic_load_explicit(&fam->nlive, memory_order_relaxed) >= limit) {
        fs_child *o = atomic_load_explicit(&fam->overflow, memory_order_acquire);
        if (o) { /* past the limit: no lock (unless the label set was made meanwhile) */
            fs_child *c =
                fs__key_find(atomic_load_explicit(&fam->table, memory_order_acquire), k, NULL);
            if (c)
                return c;
            warn_limit(fam, limit);
            return o;
        }
    }
    pthread_mutex_lock(&fam->lock);
    fs_table *t = atomic_load_explicit(&fam->table, memory_order_relaxed);
    fs_child *c = fs__table_find_key(t, k, NULL);
    bool over = false;
    if (!c) {
        if (is_overflow_key(fam, k)) {
            c = overflow_child(fam); /* those values are the overflow child's, always */
        } else if (limit && atomic_load_explicit(&fam->nlive, memory_order_relaxed) >= limit) {
            c = overflow_child(fam);
            over = c != NULL;
        } else if ((c = insert_new(fam, k)) != NULL) {
            atomic_fetch_add_explicit(&fam->nlive, 1, memory_order_relaxed);
        }
    }
    pthread_mutex_unlock(&fam->lock);
    if (over)
        warn_limit(fam, limit);
    return c;
}

/* ------------------------------------------------------------------------ */
/* Lookups                                                                  */

fs_child *fs__family_labels(fs_family *fam, const char *const *values)
{
    if (FS_UNLIKELY(!fam)) {
        fs__error(FS_EINVAL, "metric family is NULL");
        return NULL;
    }
    size_t n = fam->label_count;
    if (n == 0 || fam->single)
        return fam->single;
    if (FS_UNLIKELY(!values)) {
        check_values(fam, values);
        return NULL;
    }
    fs_label_key k;
    size_t bad = fs__key_fill(&k, n, values);
    if (FS_UNLIKELY(bad != n)) {
        if (values[bad])
            value_too_long(fam, bad);
        else
            check_values(fam, values);
        return NULL;
    }
    fs_child *c = fs__key_find(atomic_load_explicit(&fam->table, memory_order_acquire), &k, NULL);
    if (FS_LIKELY(c != NULL))
        return c;
    return labels_slow(fam, &k);
}

/* Why key `k` cannot look up children of `fam`. */
static fs_child *key_mismatch(fs_family *fam, const fs_label_key *k)
{
    if (k->count == FS_KEY_UNUSABLE)
        fs__error(FS_EINVAL, "looking up metric '%s' with a label key whose init or extend failed",
                  fam->name);
    else if (k->count < fam->label_count)
        fs__error(FS_EINVAL,
                  "metric '%s' has %zu labels but the label key holds %u values (none for '%s')",
                  fam->name, fam->label_count, (unsigned)k->count, fam->label_names[k->count]);
    else
        fs__error(FS_EINVAL, "metric '%s' has %zu labels but the label key holds %u values",
                  fam->name, fam->label_count, (unsigned)k->count);
    return NULL;
}

/* A key lookup that is not a hit with a packed key: refusals, keys whose
 * values did not fit the packed copy, creation. */
static FS_NOINLINE fs_child *labels_key_slow(fs_family *fam, const fs_label_key *k)
{
    if (!fam || !k) {
        fs__error(FS_EINVAL, "%s is NULL", fam ? "label key" : "metric family");
        return NULL;
    }
    size_t n = fam->label_count;
    if (k->count != n)
        return key_mismatch(fam, k);
    if (n == 0 || fam->single)
        return fam->single;
    fs_child *c =
        fs__table_find_key(atomic_load_explicit(&fam->table, memory_order_acquire), k, NULL);
    if (c)
        return c;
    return labels_slow(fam, k);
}

fs_child *fs__family_labels_key(fs_family *fam, const fs_label_key *k)
{
    /* The hot path, a leaf: an existing child and a packed key (which holds
     * at least one value, so the family has labels and no single child). */
    if (FS_LIKELY(fam && k && k->packed_len != 0 && k->count == fam->label_count && !fam->single)) {
        fs_child *c =
            fs__table_find_packed(atomic_load_explicit(&fam->table, memory_order_acquire), k, NULL);
        if (FS_LIKELY(c != NULL))
            return c;
    }
    return labels_key_slow(fam, k);
}

/* ------------------------------------------------------------------------ */
/* Removal, clearing, the render order                                      */

static int no_labels(fs_family *fam, const char *what)
{
    return fs__error(FS_EINVAL, "metric '%s' has no labels: nothing to %s", fam->name, what);
}

/* Mark c dead (it stays in order or pending until the next snapshot). Under the lock. */
static void kill_child(fs_family *fam, fs_child *c)
{
    atomic_fetch_or_explicit(&c->flags, FS_CHILD_DEAD, memory_order_relaxed);
    fam->ndead++;
    if (c == atomic_load_explicit(&fam->overflow, memory_order_relaxed))
        atomic_store_explicit(&fam->overflow, NULL, memory_order_relaxed);
    else
        atomic_fetch_sub_explicit(&fam->nlive, 1, memory_order_relaxed);
}

int fs__family_remove(fs_family *fam, const char *const *values)
{
    FS_CHECK_ARG(fam, "metric family is NULL");
    if (fam->label_count == 0 || fam->single)
        return no_labels(fam, "remove");
    int rc = check_values(fam, values);
    if (rc != FS_OK)
        return rc;
    fs_label_key k;
    size_t bad = fs__key_fill(&k, fam->label_count, values);
    if (bad != fam->label_count)
        return value_too_long(fam, bad);
    pthread_mutex_lock(&fam->lock);
    fs_table *t = atomic_load_explicit(&fam->table, memory_order_relaxed);
    fs_slot *slot;
    fs_child *c = fs__table_find_key(t, &k, &slot);
    if (!c) {
        pthread_mutex_unlock(&fam->lock);
        return fs__error(FS_ENOTFOUND, "metric '%s' has no child with those label values",
                         fam->name);
    }
    atomic_store_explicit(&slot->child, FS_TOMBSTONE, memory_order_release);
    kill_child(fam, c);
    pthread_mutex_unlock(&fam->lock);
    return FS_OK;
}

static void kill_live(fs_child *c, void *fam)
{
    if (!is_dead(c))
        kill_child(fam, c);
}

void fs__family_clear(fs_family *fam)
{
    if (!fam || fam->label_count == 0 || fam->single)
        return;
    pthread_mutex_lock(&fam->lock);
    /* An empty table first: without it the children must stay reachable. */
    fs_table *t = fs__table_new(16);
    if (!t) {
        pthread_mutex_unlock(&fam->lock);
        fs__log(FS_LOG_ERROR, "metrics", "clearing metric '%s' failed: out of memory", fam->name);
        return;
    }
    fs_table *old = atomic_load_explicit(&fam->table, memory_order_relaxed);
    atomic_store_explicit(&fam->table, t, memory_order_release);
    retire_table(fam, old);
    fs__children_each(fam, kill_live, fam); /* also those a snapshot is sorting */
    pthread_mutex_unlock(&fam->lock);
}

/* Drop the dead from cs[0..n); returns how many are left. */
static size_t compact(fs_child **cs, size_t n)
{
    size_t m = 0;
    for (size_t i = 0; i < n; i++)
        if (!is_dead(cs[i]))
            cs[m++] = cs[i];
    return m;
}

/* Merge `batch` (m children, sorted; the order has room) into the order,
 * dropping the dead. Under the lock. */
static void order_merge(fs_family *fam, fs_child **batch, size_t m)
{
    fam->norder = compact(fam->order, fam->norder);
    fam->npending = compact(fam->pending, fam->npending);
    fam->ndead = 0;
    m = compact(batch, m);
    /* Merge from the back, into the room after the order. */
    size_t n = fam->norder, i = n, j = m, w = n + m;
    while (j > 0) {
        if (i > 0 && fs__child_cmp(&fam->order[i - 1], &batch[j - 1]) > 0)
            fam->order[--w] = fam->order[--i];
        else
            fam->order[--w] = batch[--j];
    }
    fam->norder = n + m;
}

/*
 * The live children in order. A snapshot takes the children created since
 * the last one and sorts them without the family lock (creation goes on
 * meanwhile: a table rebuild or a clear finds them in the arena), then
 * merges them in under it, into room made beforehand (the order only
 * shrinks meanwhile). Snapshots take turns (order_lock), so that none
 * misses what another is sorting.
 */
ssize_t fs__family_snapshot(fs_family *fam, fs_child ***buf, size_t *cap)
{
    pthread_mutex_lock(&fam->order_lock);
    pthread_mutex_lock(&fam->lock);
    size_t m = fam->npending, need = fam->norder + m;
    if (need > fam->caporder) {
        size_t want = need + need / 8 + 8;
        fs_child **p = realloc(fam->order, want * sizeof *p);
        if (!p) {
            pthread_mutex_unlock(&fam->lock);
            pthread_mutex_unlock(&fam->order_lock);
            fs__error(FS_ENOMEM, "out of memory rendering metric '%s'", fam->name);
            return -1;
        }
        fam->order = p;
        fam->caporder = want;
    }
    fs_child **batch = fam->pending;
    fam->pending = NULL;
    fam->npending = fam->cappending = 0;
    pthread_mutex_unlock(&fam->lock);
    if (m > 1)
        qsort(batch, m, sizeof *batch, fs__child_cmp); /* the dead leave at the merge */
    pthread_mutex_lock(&fam->lock);
    if (m || fam->ndead)
        order_merge(fam, batch, m);
    ssize_t n = (ssize_t)fam->norder;
    if ((size_t)n > *cap) {
        size_t want = (size_t)n + (size_t)n / 2 + 8;
        fs_child **p = realloc(*buf, want * sizeof *p);
        if (p) {
            *buf = p;
            *cap = want;
        } else {
            fs__error(FS_ENOMEM, "out of memory rendering metric '%s'", fam->name);
            n = -1;
        }
    }
    if (n > 0)
        memcpy(*buf, fam->order, (size_t)n * sizeof(fs_child *));
    pthread_mutex_unlock(&fam->lock);
    pthread_mutex_unlock(&fam->order_lock);
    free(batch);
    return n;
}

/* ------------------------------------------------------------------------ */
/* The limit                                                                */

size_t fs__family_limit(const fs_family *fam)
{
    size_t l = atomic_load_explicit(&((fs_family *)fam)->limit, memory_order_relaxed);
    if (l == FS_LIMIT_FROM_REGISTRY)
        l = atomic_load_explicit(&fam->reg->series_limit, memory_order_relaxed);
    return l;
}

int fs__family_set_limit(fs_family *fam, size_t limit)
{
    FS_CHECK_ARG(fam, "setting a series limit: metric family is NULL");
    if (fam->label_count == 0 || fam->single)
        return no_labels(fam, "limit");
    atomic_store_explicit(&fam->limit, limit, memory_order_relaxed);
    return FS_OK;
}

size_t fs__bsearch(size_t n, int (*cmp)(const void *ctx, size_t i, const void *key),
                   const void *ctx, const void *key, bool *found)
{
    size_t lo = 0, hi = n;
    *found = false;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int r = cmp(ctx, mid, key);
        if (r == 0) {
            *found = true;
            return mid;
        }
        if (r < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

/* ------------------------------------------------------------------------ */
/* Creation and release                                                     */

void fs__family_free(fs_family *fam)
{
    if (!fam)
        return;
    pthread_mutex_destroy(&fam->lock);
    pthread_mutex_destroy(&fam->order_lock);
    fs__children_release(fam);
    fs__arena_free(&fam->children);
    fs__arena_free(&fam->strings);
    free(fam->order);
    free(fam->pending);
    free(atomic_load_explicit(&fam->table, memory_order_relaxed));
    for (fs_table *t = fam->retired_tables, *next; t; t = next) {
        next = t->retired_next;
        free(t);
    }
    for (size_t i = 0; i < fam->label_count; i++)
        free(fam->label_names ? fam->label_names[i] : NULL);
    free(fam->label_names);
    for (size_t i = 0; fam->le_text && i <= fam->nbuckets; i++)
        free(fam->le_text[i]);
    for (size_t i = 0; fam->le_om && i <= fam->nbuckets; i++) /* NULL when its calloc failed */
        free(fam->le_om[i]);
    free(fam->le_text);
    free(fam->le_om);
    free(fam->le_text_len);
    free(fam->le_om_len);
    free(fam->buckets);
    free(fam->name);
    free(fam->help);
    free(fam->help_text);
    free(fam->help_om);
    free(fam);
}

static char *dup_n(const char *s, size_t n)
{
    char *p = malloc(n + 1);
    if (p) {
        memcpy(p, s, n);
        p[n] = '\0';
    }
    return p;
}

/* `le="..."} ` for each bound and +Inf, in both formats. */
static int make_le(fs_family *fam)
{
    size_t n = fam->nbuckets + 1;
    fam->le_text = calloc(n, sizeof(char *));
    fam->le_om = calloc(n, sizeof(char *));
    fam->le_text_len = calloc(n, sizeof(size_t));
    fam->le_om_len = calloc(n, sizeof(size_t));
    if (!fam->le_text || !fam->le_om || !fam->le_text_len || !fam->le_om_len)
        return FS_ENOMEM;
    for (size_t i = 0; i < n; i++) {
        double b = i < fam->nbuckets ? fam->buckets[i] : (double)INFINITY;
        for (int om = 0; om < 2; om++) {
            char num[FS_NUM_MAX], tmp[FS_NUM_MAX + 16];
            fs__format_le(num, b, om);
            int len = snprintf(tmp, sizeof tmp, "le=\"%s\"} ", num);
            char *s = dup_n(tmp, (size_t)len);
            if (!s)
                return FS_ENOMEM;
            (om ? fam->le_om : fam->le_text)[i] = s;
            (om ? fam->le_om_len : fam->le_text_len)[i] = (size_t)len;
        }
    }
    return FS_OK;
}

/* The base name: counters drop a trailing _total. */
static size_t base_len(const fs_family_def *def)
{
    size_t n = strlen(def->name);
    if (def->type == FS_METRIC_COUNTER && n > 6 && strcmp(def->name + n - 6, "_total") == 0)
        return n - 6;
    return n;
}

int fs__family_new(fs_registry *reg, const fs_family_def *def, fs_family **out)
{
    fs_family *fam = aligned_alloc(FS_CACHE_LINE, sizeof *fam); /* sizeof: a multiple of it */
    if (fam)
        memset(fam, 0, sizeof *fam);
    if (!fam)
        return fs__error(FS_ENOMEM, "out of memory creating metric '%s'", def->name);
    pthread_mutex_init(&fam->lock, NULL);
    pthread_mutex_init(&fam->order_lock, NULL);
    fam->reg = reg;
    fam->type = def->type;
    fam->name_len = base_len(def);
    fam->name = dup_n(def->name, fam->name_len);
    fam->help = dup_n(def->help, strlen(def->help));
    fam->help_text = fs__escape(def->help, strlen(def->help), false, NULL);
    fam->help_om = fs__escape(def->help, strlen(def->help), true, NULL);
    fam->label_count = def->label_count;
    atomic_init(&fam->limit, FS_LIMIT_FROM_REGISTRY);
    if (!fam->name || !fam->help || !fam->help_text || !fam->help_om)
        goto oom;
    if (def->label_count) {
        fam->label_names = calloc(def->label_count, sizeof(char *));
        if (!fam->label_names)
            goto oom;
        for (size_t i = 0; i < def->label_count; i++) {
            fam->label_names[i] = dup_n(def->label_names[i], strlen(def->label_names[i]));
            if (!fam->label_names[i])
                goto oom;
        }
    }
    if (def->type == FS_METRIC_HISTOGRAM) {
        fam->nbuckets = def->nbuckets;
        fam->buckets = malloc(FS_BOUNDS_BYTES(def->nbuckets));
        if (!fam->buckets)
            goto oom;
        memcpy(fam->buckets, def->buckets, def->nbuckets * sizeof(double));
        fam->buckets[def->nbuckets] = (double)INFINITY;
        fs__bucket_index(fam->buckets, fam->nbuckets,
                         (uint32_t *)(void *)(fam->buckets + def->nbuckets + 1));
        if (make_le(fam) != FS_OK)
            goto oom;
    }
    fam->child_size = fs__child_size(fam);
    fs_table *t = fs__table_new(16);
    if (!t)
        goto oom;
    atomic_store_explicit(&fam->table, t, memory_order_relaxed);
    if (def->label_count == 0 || def->type == FS_METRIC_INFO) {
        fs_label_key k;
        const char *const *values = def->type == FS_METRIC_INFO ? def->info_values : NULL;
        size_t bad = fs__key_fill(&k, def->label_count, values);
        if (bad != def->label_count) {
            value_too_long(fam, bad);
            goto fail;
        }
        fam->order = malloc(sizeof *fam->order);
        fs_child *c = fam->order ? fs__child_create(fam, k.values, k.lens, k.hash) : NULL;
        if (!c)
            goto oom;
        fam->caporder = 1;
        fam->order[0] = c;
        fam->norder = 1;
        fam->single = c;
    }
    *out = fam;
    return FS_OK;
oom:
    fs__family_free(fam);
    return fs__error(FS_ENOMEM, "out of memory creating metric '%s'", def->name);
fail:
    fs__family_free(fam);
    return FS_EINVAL; /* value_too_long said why */
}

int fs__family_new_simple(fs_registry *reg, fs_metric_type type, const char *name, const char *help,
                          size_t label_count, const char *const *label_names, const double *buckets,
                          size_t nbuckets, fs_family **out)
{
    FS_CHECK_ARG(out, "creating metric '%s': out is NULL", name ? name : "(null)");
    *out = NULL;
    fs_family_def def = {.type = type,
                         .name = name,
                         .help = help,
                         .label_count = label_count,
                         .label_names = label_names,
                         .buckets = buckets,
                         .nbuckets = nbuckets};
    return fs__family_register(reg, &def, out);
}
