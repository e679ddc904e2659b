/*
 * Label families: children looked up by label values through a lock-free
 * open-addressing hash table; creation, removal, clearing and growth under
 * the family mutex, published with release stores. Nothing a reader may hold
 * is freed before the registry (see metrics_internal.h).
 */
#include "metrics_internal.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>

fs_child fs__tombstone;

/* ------------------------------------------------------------------------ */
/* Hashing and comparing label values                                       */

/* Label values are hashed and packed by fs__key_fill (metrics_internal.h),
 * for lookups by values and by key alike. */
static int value_too_long(const fs_family *fam, size_t i)
{
    return fs__error(FS_EINVAL, "label value %zu ('%s') of metric '%s' is too long (4 GiB or more)",
                     i, fam->label_names[i], fam->name);
}

/*
 * Whether child c holds values (lengths lens, packed length total). With the
 * packed lengths equal, each value matching the child's bytes at p and
 * followed there by the NUL that ends the child's value means equal values;
 * every byte read lies inside the child's packed values.
 */
static FS_ALWAYS_INLINE bool child_matches(const fs_child *c, size_t n, const char *const *values,
                                           const uint32_t *lens, size_t total)
{
    if (c->values_len != total)
        return false;
    const char *p = c->values;
    for (size_t i = 0; i < n; i++) {
        if (!fs__bytes_equal(p, values[i], lens[i]) || p[lens[i]] != '\0')
            return false;
        p += lens[i] + 1;
    }
    return true;
}

/* Compare children by their label values, value by value, bytewise. */
static int child_cmp_values(const fs_child *c, size_t n, const char *const *values)
{
    const char *p = c->values;
    for (size_t i = 0; i < n; i++) {
        int r = strcmp(p, values[i]);
        if (r)
            return r;
        p += c->lens[i] + 1;
    }
    return 0;
}

/* ------------------------------------------------------------------------ */
/* Tables                                                                   */

static fs_table *table_new(size_t cap)
{
    fs_table *t = calloc(1, sizeof *t + cap * sizeof(t->slots[0]));
    if (t)
        t->mask = cap - 1;
    return t;
}

/* Under the family lock. */
static void table_insert(fs_table *t, fs_child *c)
{
    size_t i = c->hash & t->mask;
    for (;;) {
        fs_child *s = atomic_load_explicit(&t->slots[i].child, memory_order_relaxed);
        if (!s || s == FS_TOMBSTONE) {
            if (!s)
                t->used++;
            /* the hash first: a reader that sees the child sees its hash */
            atomic_store_explicit(&t->slots[i].hash, c->hash, memory_order_relaxed);
            atomic_store_explicit(&t->slots[i].child, c, memory_order_release);
            return;
        }
        i = (i + 1) & t->mask;
    }
}

/*
 * The child for values, or NULL; *slot (if given) receives its slot. The
 * child returned is the one that matched: re-reading the slot could yield
 * another child that reused a tombstone in between. A slot's hash may be
 * newer than the child read before it (the child was removed and its slot
 * reused meanwhile): the values, compared after the hash, decide.
 */
static FS_ALWAYS_INLINE fs_child *table_find(fs_table *t, uint64_t hash, size_t n,
                                             const char *const *values, const uint32_t *lens,
                                             size_t total, fs_slot **slot)
{
    size_t i = hash & t->mask;
    for (;;) {
        fs_child *c = atomic_load_explicit(&t->slots[i].child, memory_order_acquire);
        if (!c)
            return NULL;
        if (atomic_load_explicit(&t->slots[i].hash, memory_order_relaxed) == hash &&
            c != FS_TOMBSTONE && child_matches(c, n, values, lens, total)) {
            if (slot)
                *slot = &t->slots[i];
            return c;
        }
        i = (i + 1) & t->mask;
    }
}

/*
 * table_find for a key holding its values packed as children hold theirs
 * ("v1\0v2\0..."): one length and one run of bytes to compare. Values hold
 * no NUL, so equal packings mean equal values.
 */
static FS_ALWAYS_INLINE fs_child *table_find_packed(fs_table *t, const fs_label_key *k,
                                                    fs_slot **slot)
{
    size_t i = k->hash & t->mask;
    for (;;) {
        fs_child *c = atomic_load_explicit(&t->slots[i].child, memory_order_acquire);
        if (!c)
            return NULL;
        if (atomic_load_explicit(&t->slots[i].hash, memory_order_relaxed) == k->hash &&
            c != FS_TOMBSTONE && c->values_len == k->packed_len) {
            const char *v = k->packed_len <= FS_CHILD_INLINE ? c->inline_values : c->values;
            if (fs__bytes_equal_short(v, k->packed, k->packed_len)) {
                if (slot)
                    *slot = &t->slots[i];
                return c;
            }
        }
        i = (i + 1) & t->mask;
    }
}

/* Bytes of the values of a key, packed (each with its NUL). */
static size_t key_total(const fs_label_key *k)
{
    size_t total = 0;
    for (size_t i = 0; i < k->count; i++)
        total += k->lens[i] + (size_t)1;
    return total;
}

/* The child holding the values of key k (of the family's label count), or NULL. */
static FS_ALWAYS_INLINE fs_child *key_find(fs_table *t, const fs_label_key *k, fs_slot **slot)
{
    if (FS_LIKELY(k->packed_len != 0))
        return table_find_packed(t, k, slot);
    return table_find(t, k->hash, k->count, k->values, k->lens, key_total(k), slot);
}

static void retire_table(fs_family *fam, fs_table *t)
{
    t->retired_next = fam->retired_tables;
    fam->retired_tables = t;
}

/* A fresh table sized for `live` children, holding the sorted ones. Under the lock. */
static int table_rebuild(fs_family *fam, size_t live)
{
    size_t cap = 16;
    while (cap < live * 4)
        cap *= 2;
    fs_table *t = table_new(cap);
    if (!t)
        return fs__error(FS_ENOMEM, "out of memory growing the children of metric '%s'", fam->name);
    for (size_t i = 0; i < fam->nsorted; i++)
        table_insert(t, fam->sorted[i]);
    fs_table *old = atomic_load_explicit(&fam->table, memory_order_relaxed);
    atomic_store_explicit(&fam->table, t, memory_order_release);
    if (old)
        retire_table(fam, old);
    return FS_OK;
}

/* ------------------------------------------------------------------------ */
/* Children                                                                 */

static size_t round_up(size_t n, size_t to)
{
    return (n + to - 1) / to * to;
}

fs_child *fs__child_alloc(fs_family *fam)
{
    fs_child *c = NULL;
    size_t size = 0;
    switch (fam->type) {
    case FS_METRIC_COUNTER:
        size = sizeof(struct fs_counter);
        break;
    case FS_METRIC_GAUGE:
        size = sizeof(struct fs_gauge);
        break;
    case FS_METRIC_HISTOGRAM:
        size = sizeof(struct fs_histogram);
        break;
    default:
        size = sizeof(fs_info_child);
        break;
    }
    c = aligned_alloc(FS_CACHE_LINE, round_up(size, FS_CACHE_LINE));
    if (!c)
        return NULL;
    memset(c, 0, size);
    if (fam->type == FS_METRIC_HISTOGRAM) {
        struct fs_histogram *h = (struct fs_histogram *)c;
        h->bounds = fam->buckets;
        h->nb = (uint32_t)fam->nbuckets;
        /* nb + 1 bucket counts and the sum, padded to whole cache lines */
        h->stride = (uint32_t)(round_up((fam->nbuckets + 2) * 8, FS_CACHE_LINE) / 8);
        size_t bytes = (size_t)h->stride * 8 * FS_METRIC_SHARDS;
        h->words = aligned_alloc(FS_CACHE_LINE, bytes);
        if (!h->words) {
            free(c);
            return NULL;
        }
        memset(h->words, 0, bytes);
    }
    return c;
}

void fs__child_free(fs_child *c)
{
    if (!c)
        return;
    if (c->fam && c->fam->type == FS_METRIC_HISTOGRAM)
        free(((struct fs_histogram *)c)->words);
    free(c->strings);
    free(c);
}

/*
 * A new child for values (lengths known), with its label text precomputed.
 * Its strings take one allocation: the lengths, the label text, the
 * _created text and, when they do not fit in the header, the packed values.
 */
static fs_child *child_create(fs_family *fam, const char *const *values, const uint32_t *lens,
                              uint64_t hash)
{
    fs_child *c = fs__child_alloc(fam);
    if (!c)
        return NULL;
    c->fam = fam;
    c->hash = hash;
    c->created = fs__now();
    char created[FS_NUM_MAX];
    size_t ctext = fs__format_double(created, c->created) + 1;
    size_t n = fam->label_count;
    size_t vbytes = 0, lbytes = 0;
    for (size_t i = 0; i < n; i++) {
        vbytes += lens[i] + 1;
        size_t esc = fs__escape_into(NULL, values[i], lens[i], true);
        lbytes += strlen(fam->label_names[i]) + 4 + esc; /* name="esc", */
    }
    bool inline_values = vbytes <= FS_CHILD_INLINE;
    char *block = malloc(n * sizeof(uint32_t) + (inline_values ? 0 : vbytes) + lbytes + 1 + ctext);
    if (!block) {
        fs__child_free(c);
        return NULL;
    }
    c->strings = block;
    uint32_t *l = (uint32_t *)(void *)block;
    char *lab = block + n * sizeof(uint32_t);
    char *created_text = lab + lbytes + 1;
    char *v = inline_values ? c->inline_values : created_text + ctext;
    if (n)
        memcpy(l, lens, n * sizeof(uint32_t));
    c->values_len = vbytes > UINT32_MAX ? UINT32_MAX : (uint32_t)vbytes; /* never a key's */
    c->lens = l;
    c->values = v;
    c->labels = lab;
    for (size_t i = 0; i < n; i++) {
        memcpy(v, values[i], lens[i] + 1);
        v += lens[i] + 1;
        if (i)
            *lab++ = ',';
        size_t nl = strlen(fam->label_names[i]);
        memcpy(lab, fam->label_names[i], nl);
        lab += nl;
        *lab++ = '=';
        *lab++ = '"';
        lab += fs__escape_into(lab, values[i], lens[i], true);
        *lab++ = '"';
    }
    *lab = '\0';
    c->labels_len = (uint32_t)(lab - c->labels);
    c->created_text = memcpy(created_text, created, ctext);
    return c;
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

static int sorted_cmp(const void *ctx, size_t i, const void *key)
{
    const fs_family *fam = ctx;
    return child_cmp_values(fam->sorted[i], fam->label_count, key);
}

/* Position of values in the sorted array (where it is or would go). Under the lock. */
static size_t sorted_pos(fs_family *fam, const char *const *values, bool *found)
{
    return fs__bsearch(fam->nsorted, sorted_cmp, fam, values, found);
}

static int sorted_reserve(fs_family *fam, size_t n)
{
    fs_child **p = fs__array_grow(fam->sorted, &fam->capsorted, n, sizeof *p, 8);
    if (!p)
        return fs__error(FS_ENOMEM, "out of memory adding a child to metric '%s'", fam->name);
    fam->sorted = p;
    return FS_OK;
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

/* Create the child under the lock (another thread may have won the race). */
static fs_child *labels_slow(fs_family *fam, const fs_label_key *k)
{
    pthread_mutex_lock(&fam->lock);
    fs_table *t = atomic_load_explicit(&fam->table, memory_order_relaxed);
    fs_child *c = key_find(t, k, NULL);
    if (c) {
        pthread_mutex_unlock(&fam->lock);
        return c;
    }
    if (sorted_reserve(fam, fam->nsorted + 1) != FS_OK)
        goto out;
    if ((t->used + 1) * 2 > t->mask + 1) {
        if (table_rebuild(fam, fam->nsorted + 1) != FS_OK)
            goto out;
        t = atomic_load_explicit(&fam->table, memory_order_relaxed);
    }
    c = child_create(fam, k->values, k->lens, k->hash);
    if (!c) {
        fs__error(FS_ENOMEM, "out of memory creating a child of metric '%s'", fam->name);
        goto out;
    }
    bool found;
    size_t pos = sorted_pos(fam, k->values, &found);
    memmove(fam->sorted + pos + 1, fam->sorted + pos, (fam->nsorted - pos) * sizeof(fs_child *));
    fam->sorted[pos] = c;
    fam->nsorted++;
    table_insert(t, c);
out:
    pthread_mutex_unlock(&fam->lock);
    return c;
}

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
    fs_child *c = key_find(atomic_load_explicit(&fam->table, memory_order_acquire), &k, NULL);
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
    fs_child *c = key_find(atomic_load_explicit(&fam->table, memory_order_acquire), k, NULL);
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
            table_find_packed(atomic_load_explicit(&fam->table, memory_order_acquire), k, NULL);
        if (FS_LIKELY(c != NULL))
            return c;
    }
    return labels_key_slow(fam, k);
}

static int no_labels(fs_family *fam, const char *what)
{
    return fs__error(FS_EINVAL, "metric '%s' has no labels: nothing to %s", fam->name, what);
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
    fs_child *c = key_find(t, &k, &slot);
    if (!c) {
        pthread_mutex_unlock(&fam->lock);
        return fs__error(FS_ENOTFOUND, "metric '%s' has no child with those label values",
                         fam->name);
    }
    atomic_store_explicit(&slot->child, FS_TOMBSTONE, memory_order_release);
    bool found;
    size_t pos = sorted_pos(fam, values, &found);
    if (found) {
        memmove(fam->sorted + pos, fam->sorted + pos + 1,
                (fam->nsorted - pos - 1) * sizeof(fs_child *));
        fam->nsorted--;
    }
    c->retired_next = fam->retired_children;
    fam->retired_children = c;
    pthread_mutex_unlock(&fam->lock);
    return FS_OK;
}

void fs__family_clear(fs_family *fam)
{
    if (!fam || fam->label_count == 0 || fam->single)
        return;
    pthread_mutex_lock(&fam->lock);
    size_t keep = fam->nsorted;
    fam->nsorted = 0;
    if (table_rebuild(fam, 0) != FS_OK) {
        /* Without a fresh table the children must stay reachable. */
        fam->nsorted = keep;
        pthread_mutex_unlock(&fam->lock);
        fs__log(FS_LOG_ERROR, "metrics", "clearing metric '%s' failed: out of memory", fam->name);
        return;
    }
    for (size_t i = 0; i < keep; i++) {
        fam->sorted[i]->retired_next = fam->retired_children;
        fam->retired_children = fam->sorted[i];
    }
    pthread_mutex_unlock(&fam->lock);
}

ssize_t fs__family_snapshot(fs_family *fam, fs_child ***buf, size_t *cap)
{
    pthread_mutex_lock(&fam->lock);
    size_t n = fam->nsorted;
    if (n > *cap) {
        size_t want = n + n / 2 + 8;
        fs_child **p = realloc(*buf, want * sizeof *p);
        if (!p) {
            pthread_mutex_unlock(&fam->lock);
            fs__error(FS_ENOMEM, "out of memory rendering metric '%s'", fam->name);
            return -1;
        }
        *buf = p;
        *cap = want;
    }
    if (n)
        memcpy(*buf, fam->sorted, n * sizeof(fs_child *));
    pthread_mutex_unlock(&fam->lock);
    return (ssize_t)n;
}

/* ------------------------------------------------------------------------ */
/* Creation and release                                                     */

void fs__family_free(fs_family *fam)
{
    if (!fam)
        return;
    pthread_mutex_destroy(&fam->lock);
    for (size_t i = 0; i < fam->nsorted; i++)
        fs__child_free(fam->sorted[i]);
    free(fam->sorted);
    for (fs_child *c = fam->retired_children, *next; c; c = next) {
        next = c->retired_next;
        fs__child_free(c);
    }
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
    fs_family *fam = calloc(1, sizeof *fam);
    if (!fam)
        return fs__error(FS_ENOMEM, "out of memory creating metric '%s'", def->name);
    pthread_mutex_init(&fam->lock, NULL);
    fam->reg = reg;
    fam->type = def->type;
    fam->name_len = base_len(def);
    fam->name = dup_n(def->name, fam->name_len);
    fam->help = dup_n(def->help, strlen(def->help));
    fam->help_text = fs__escape(def->help, strlen(def->help), false, NULL);
    fam->help_om = fs__escape(def->help, strlen(def->help), true, NULL);
    fam->label_count = def->label_count;
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
        fam->buckets = malloc((def->nbuckets + 1) * sizeof(double));
        if (!fam->buckets)
            goto oom;
        memcpy(fam->buckets, def->buckets, def->nbuckets * sizeof(double));
        if (make_le(fam) != FS_OK)
            goto oom;
    }
    fs_table *t = table_new(16);
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
        if (sorted_reserve(fam, 1) != FS_OK)
            goto oom;
        fs_child *c = child_create(fam, k.values, k.lens, k.hash);
        if (!c)
            goto oom;
        fam->sorted[0] = c;
        fam->nsorted = 1;
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
