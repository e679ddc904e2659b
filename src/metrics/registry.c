/*
 * Registries: families sorted by name, custom collectors, registration with
 * deduplication and conflict reports, the default registry and the clock.
 */
#include "metrics_internal.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

_Thread_local bool fs__in_collect;

/* ------------------------------------------------------------------------ */
/* Clock                                                                    */

static _Atomic(double (*)(void)) time_source;

void fs__metrics_set_time_source(double (*fn)(void))
{
    atomic_store(&time_source, fn);
}

double fs__now(void)
{
    double (*fn)(void) = atomic_load_explicit(&time_source, memory_order_relaxed);
    if (fn)
        return fn();
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* ------------------------------------------------------------------------ */
/* Creation, the default registry, release                                 */

int fs_registry_new(fs_registry **out)
{
    FS_CHECK_ARG(out, "fs_registry_new: out is NULL");
    *out = NULL;
    fs_registry *reg = calloc(1, sizeof *reg);
    if (!reg)
        return fs__error(FS_ENOMEM, "out of memory creating a registry");
    if (pthread_rwlock_init(&reg->lock, NULL) != 0) {
        free(reg);
        return fs__error(FS_ENOMEM, "cannot create a registry lock");
    }
    *out = reg;
    return FS_OK;
}

static fs_registry *default_registry;
static pthread_once_t default_once = PTHREAD_ONCE_INIT;

static void default_init(void)
{
    fs_registry *reg;
    if (fs_registry_new(&reg) != FS_OK)
        return;
    reg->is_default = true;
    if (fs_process_collector_register(reg) != FS_OK)
        fs__log(FS_LOG_WARN, "metrics", "default registry without the process collector: %s",
                fs_last_error());
    default_registry = reg;
}

fs_registry *fs_registry_default(void)
{
    pthread_once(&default_once, default_init);
    if (!default_registry)
        fs__error(FS_ENOMEM, "cannot create the default registry");
    return default_registry;
}

fs_registry *fs__registry_resolve(fs_registry *reg)
{
    return reg ? reg : fs_registry_default();
}

static void collector_free(fs_collector *c)
{
    if (!c)
        return;
    if (c->free_user)
        c->free_user(c->user);
    free(c->name);
    free(c);
}

void fs_registry_free(fs_registry *reg)
{
    if (!reg || reg->is_default)
        return;
    for (size_t i = 0; i < reg->ncollectors; i++)
        collector_free(reg->collectors[i]);
    free(reg->collectors);
    for (size_t i = 0; i < reg->nfamilies; i++)
        fs__family_free(reg->families[i]);
    free(reg->families);
    for (fs_family *f = reg->retired_families, *next; f; f = next) {
        next = f->retired_next;
        fs__family_free(f);
    }
    pthread_rwlock_destroy(&reg->lock);
    free(reg);
}

int fs_registry_set_series_limit(fs_registry *reg, size_t limit)
{
    reg = fs__registry_resolve(reg);
    if (!reg)
        return FS_ENOMEM;
    FS_CHECK_ARG(limit != FS_SERIES_LIMIT_REGISTRY,
                 "fs_registry_set_series_limit: FS_SERIES_LIMIT_REGISTRY is a family's setting");
    atomic_store_explicit(&reg->series_limit, limit, memory_order_relaxed);
    return FS_OK;
}

size_t fs_registry_series_limit(fs_registry *reg)
{
    reg = fs__registry_resolve(reg);
    return reg ? atomic_load_explicit(&reg->series_limit, memory_order_relaxed) : 0;
}

/* ------------------------------------------------------------------------ */
/* Lookup                                                                   */

typedef struct name_key {
    const char *name;
    size_t len;
} name_key;

static int family_cmp(const void *ctx, size_t i, const void *key)
{
    const fs_family *f = ((const fs_registry *)ctx)->families[i];
    const name_key *k = key;
    size_t m = f->name_len < k->len ? f->name_len : k->len;
    int r = memcmp(f->name, k->name, m);
    if (r == 0)
        r = f->name_len < k->len ? -1 : f->name_len > k->len ? 1 : 0;
    return r;
}

/* Index of the family with base name `name[0..n)` or where it would go. */
static size_t family_pos(fs_registry *reg, const char *name, size_t n, bool *found)
{
    name_key k = {name, n};
    return fs__bsearch(reg->nfamilies, family_cmp, reg, &k, found);
}

static fs_collector *find_collector(fs_registry *reg, const char *name, size_t *pos)
{
    for (size_t i = 0; i < reg->ncollectors; i++)
        if (strcmp(reg->collectors[i]->name, name) == 0) {
            if (pos)
                *pos = i;
            return reg->collectors[i];
        }
    return NULL;
}

/* The family `name` designates: its base name, or a counter's NAME_total,
 * or an info metric's NAME_info. Under the lock. */
static fs_family *find_family(fs_registry *reg, const char *name, size_t *pos)
{
    size_t n = strlen(name);
    bool found;
    size_t i = family_pos(reg, name, n, &found);
    if (!found && n > 6 && strcmp(name + n - 6, "_total") == 0) {
        i = family_pos(reg, name, n - 6, &found);
        found = found && reg->families[i]->type == FS_METRIC_COUNTER;
    }
    if (!found && n > 5 && strcmp(name + n - 5, "_info") == 0) {
        i = family_pos(reg, name, n - 5, &found);
        found = found && reg->families[i]->type == FS_METRIC_INFO;
    }
    if (!found)
        return NULL;
    if (pos)
        *pos = i;
    return reg->families[i];
}

bool fs_registry_contains(fs_registry *reg, const char *name)
{
    reg = fs__registry_resolve(reg);
    if (!reg || !name)
        return false;
    pthread_rwlock_rdlock(&reg->lock);
    bool yes = find_family(reg, name, NULL) || find_collector(reg, name, NULL);
    pthread_rwlock_unlock(&reg->lock);
    return yes;
}

int fs_registry_unregister(fs_registry *reg, const char *name)
{
    reg = fs__registry_resolve(reg);
    if (!reg)
        return FS_ENOMEM;
    FS_CHECK_ARG(name, "fs_registry_unregister: name is NULL");
    if (fs__in_collect)
        return fs__error(FS_ESTATE, "cannot unregister '%s' from a collector callback", name);
    pthread_rwlock_wrlock(&reg->lock);
    size_t pos;
    fs_family *fam = find_family(reg, name, &pos);
    if (fam) {
        memmove(reg->families + pos, reg->families + pos + 1,
                (reg->nfamilies - pos - 1) * sizeof(fs_family *));
        reg->nfamilies--;
        fam->retired_next = reg->retired_families;
        reg->retired_families = fam;
        pthread_rwlock_unlock(&reg->lock);
        return FS_OK;
    }
    fs_collector *col = find_collector(reg, name, &pos);
    if (col) {
        memmove(reg->collectors + pos, reg->collectors + pos + 1,
                (reg->ncollectors - pos - 1) * sizeof(fs_collector *));
        reg->ncollectors--;
    }
    /* No scrape holds the collector once we had the write lock. */
    pthread_rwlock_unlock(&reg->lock);
    if (!col)
        return fs__error(FS_ENOTFOUND, "no metric or collector called '%s' is registered", name);
    collector_free(col);
    return FS_OK;
}

/* ------------------------------------------------------------------------ */
/* Registration                                                             */

/* Sample and family names a family of `type` exposes, as suffixes of its base name. */
static const char *const *type_suffixes(fs_metric_type type)
{
    static const char *const counter[] = {"", "_total", "_created", NULL};
    static const char *const histogram[] = {"", "_bucket", "_sum", "_count", "_created", NULL};
    static const char *const info[] = {"", "_info", NULL};
    static const char *const plain[] = {"", NULL};
    switch (type) {
    case FS_METRIC_COUNTER:
        return counter;
    case FS_METRIC_HISTOGRAM:
        return histogram;
    case FS_METRIC_INFO:
        return info;
    default:
        return plain;
    }
}

static bool concat_eq(const char *a, size_t al, const char *sa, const char *b, size_t bl,
                      const char *sb)
{
    size_t sal = strlen(sa), sbl = strlen(sb);
    if (al + sal != bl + sbl)
        return false;
    for (size_t i = 0; i < al + sal; i++) {
        char ca = i < al ? a[i] : sa[i - al];
        char cb = i < bl ? b[i] : sb[i - bl];
        if (ca != cb)
            return false;
    }
    return true;
}

/* A name both families would expose, or NULL. */
static const char *collision(const char *base, size_t n, fs_metric_type type, const fs_family *f,
                             const char **their_suffix)
{
    for (const char *const *sa = type_suffixes(type); *sa; sa++)
        for (const char *const *sb = type_suffixes(f->type); *sb; sb++)
            if (concat_eq(base, n, *sa, f->name, f->name_len, *sb)) {
                *their_suffix = *sb;
                return *sa;
            }
    return NULL;
}

/* "(a,b)" into buf (label names, or bucket bounds when `names` is NULL),
 * truncated with "...)" when it does not fit. */
static const char *list_items(char *buf, size_t size, size_t n, const char *const *names,
                              const double *bounds)
{
    size_t len = 1;
    buf[0] = '(';
    for (size_t i = 0; i < n && len < size; i++) {
        char num[FS_NUM_MAX];
        if (!names)
            fs__format_le(num, bounds[i], false);
        len +=
            (size_t)snprintf(buf + len, size - len, "%s%s", i ? "," : "", names ? names[i] : num);
    }
    if (len + 2 >= size)
        strcpy(buf + size - 5, "...)");
    else
        strcpy(buf + len, ")");
    return buf;
}

static bool same_labels(const fs_family *f, size_t n, const char *const *names)
{
    if (f->label_count != n)
        return false;
    for (size_t i = 0; i < n; i++)
        if (strcmp(f->label_names[i], names[i]) != 0)
            return false;
    return true;
}

/* "a counter", "an info"... */
static const char *a_type(fs_metric_type t)
{
    switch (t) {
    case FS_METRIC_COUNTER:
        return "a counter";
    case FS_METRIC_GAUGE:
        return "a gauge";
    case FS_METRIC_HISTOGRAM:
        return "a histogram";
    case FS_METRIC_INFO:
        return "an info";
    default:
        return "an untyped metric";
    }
}

/* Check that `def` matches the registered `f`; FS_ECONFLICT saying what differs. */
static int check_same(const fs_family *f, const fs_family_def *def)
{
    char a[256], b[256];
    if (f->type != def->type)
        return fs__error(FS_ECONFLICT, "metric '%s' already registered as %s, not %s", def->name,
                         a_type(f->type), a_type(def->type));
    if (strcmp(f->help, def->help) != 0)
        return fs__error(FS_ECONFLICT,
                         "metric '%s' already registered with help \"%s\", not \"%s\"", def->name,
                         f->help, def->help);
    if (!same_labels(f, def->label_count, def->label_names))
        return fs__error(
            FS_ECONFLICT, "metric '%s' already registered with labels %s, not %s", def->name,
            list_items(a, sizeof a, f->label_count, (const char *const *)f->label_names, NULL),
            list_items(b, sizeof b, def->label_count, def->label_names, NULL));
    if (def->type == FS_METRIC_HISTOGRAM &&
        (f->nbuckets != def->nbuckets ||
         memcmp(f->buckets, def->buckets, def->nbuckets * sizeof(double)) != 0))
        return fs__error(FS_ECONFLICT, "histogram '%s' already registered with buckets %s, not %s",
                         def->name, list_items(a, sizeof a, f->nbuckets, NULL, f->buckets),
                         list_items(b, sizeof b, def->nbuckets, NULL, def->buckets));
    if (def->type == FS_METRIC_INFO) {
        const char *p = f->single->values;
        for (size_t i = 0; i < def->label_count; i++) {
            if (strcmp(p, def->info_values[i]) != 0)
                return fs__error(FS_ECONFLICT,
                                 "info metric '%s' already registered with %s=\"%s\", not \"%s\"",
                                 def->name, f->label_names[i], p, def->info_values[i]);
            p += strlen(p) + 1;
        }
    }
    return FS_OK;
}

int fs__registry_check_collision(fs_registry *reg, const char *name, size_t n, fs_metric_type type)
{
    for (size_t i = 0; i < reg->nfamilies; i++) {
        const fs_family *f = reg->families[i];
        const char *theirs;
        if (collision(name, n, type, f, &theirs))
            return fs__error(FS_ECONFLICT,
                             "metric '%s' (%s) would expose '%.*s%s', which %s '%s' already "
                             "exposes",
                             name, a_type(type), (int)f->name_len, f->name, theirs,
                             fs__type_name(f->type), f->name);
    }
    return FS_OK;
}

static int validate_def(const fs_family_def *def)
{
    int rc = fs__check_metric_name(def->name);
    if (rc != FS_OK)
        return rc;
    FS_CHECK_ARG(def->help, "help of metric '%s' is NULL", def->name);
    rc = fs__check_label_names(def->name, def->type, def->label_count, def->label_names);
    if (rc != FS_OK)
        return rc;
    if (def->type == FS_METRIC_INFO) {
        FS_CHECK_ARG(def->label_count == 0 || def->info_values,
                     "label values of info metric '%s' are NULL", def->name);
        for (size_t i = 0; i < def->label_count; i++)
            FS_CHECK_ARG(def->info_values[i], "label value %zu ('%s') of info metric '%s' is NULL",
                         i, def->label_names[i], def->name);
    }
    if (def->type == FS_METRIC_HISTOGRAM) {
        for (size_t i = 0; i < def->nbuckets; i++) {
            double v = def->buckets[i];
            FS_CHECK_ARG(!isnan(v), "bucket %zu of histogram '%s' is NaN", i, def->name);
            FS_CHECK_ARG(!isinf(v),
                         "bucket %zu of histogram '%s' is infinite: only a last +Inf "
                         "is accepted (and implied)",
                         i, def->name);
            FS_CHECK_ARG(i == 0 || v > def->buckets[i - 1],
                         "buckets of histogram '%s' must be strictly increasing: bucket %zu (%g) "
                         "follows %g",
                         def->name, i, v, def->buckets[i - 1]);
        }
    }
    return FS_OK;
}

int fs__family_register(fs_registry *reg, const fs_family_def *def, fs_family **out)
{
    reg = fs__registry_resolve(reg);
    if (!reg)
        return FS_ENOMEM;
    int rc = validate_def(def);
    if (rc != FS_OK)
        return rc;
    if (fs__in_collect)
        return fs__error(FS_ESTATE, "cannot register metric '%s' from a collector callback",
                         def->name);
    size_t n = strlen(def->name);
    if (def->type == FS_METRIC_COUNTER && n > 6 && strcmp(def->name + n - 6, "_total") == 0)
        n -= 6;

    pthread_rwlock_wrlock(&reg->lock);
    bool found;
    size_t pos = family_pos(reg, def->name, n, &found);
    if (found) {
        fs_family *f = reg->families[pos];
        rc = check_same(f, def);
        if (rc == FS_OK)
            *out = f;
        goto out;
    }
    rc = fs__registry_check_collision(reg, def->name, n, def->type);
    if (rc != FS_OK)
        goto out;
    for (size_t i = 0; i < reg->ncollectors; i++)
        if (strlen(reg->collectors[i]->name) == n &&
            memcmp(reg->collectors[i]->name, def->name, n) == 0) {
            rc = fs__error(FS_ECONFLICT, "metric '%s': a collector called '%.*s' is registered",
                           def->name, (int)n, def->name);
            goto out;
        }
    fs_family **grown =
        fs__array_grow(reg->families, &reg->capfamilies, reg->nfamilies + 1, sizeof *grown, 16);
    if (!grown) {
        rc = fs__error(FS_ENOMEM, "out of memory registering metric '%s'", def->name);
        goto out;
    }
    reg->families = grown;
    fs_family *fam;
    rc = fs__family_new(reg, def, &fam);
    if (rc != FS_OK)
        goto out;
    memmove(reg->families + pos + 1, reg->families + pos,
            (reg->nfamilies - pos) * sizeof(fs_family *));
    reg->families[pos] = fam;
    reg->nfamilies++;
    *out = fam;
out:
    pthread_rwlock_unlock(&reg->lock);
    return rc;
}

/* ------------------------------------------------------------------------ */
/* Collectors                                                               */

int fs_registry_add_collector(fs_registry *reg, const char *name, fs_collect_fn fn, void *user,
                              void (*free_user)(void *user))
{
    reg = fs__registry_resolve(reg);
    if (!reg)
        return FS_ENOMEM;
    FS_CHECK_ARG(name && *name, "collector name is NULL or empty");
    FS_CHECK_ARG(fn, "collector '%s' has no callback", name);
    if (fs__in_collect)
        return fs__error(FS_ESTATE, "cannot add collector '%s' from a collector callback", name);
    fs_collector *c = calloc(1, sizeof *c);
    char *dup = strdup(name);
    if (!c || !dup) {
        free(c);
        free(dup);
        return fs__error(FS_ENOMEM, "out of memory adding collector '%s'", name);
    }
    c->name = dup;
    c->fn = fn;
    c->user = user;
    c->free_user = free_user;
    int rc = FS_OK;
    pthread_rwlock_wrlock(&reg->lock);
    if (find_collector(reg, name, NULL)) {
        rc = fs__error(FS_ECONFLICT, "a collector called '%s' is already registered", name);
    } else if (find_family(reg, name, NULL)) {
        rc = fs__error(FS_ECONFLICT, "collector '%s': a metric called '%s' is registered", name,
                       name);
    } else {
        fs_collector **p = fs__array_grow(reg->collectors, &reg->capcollectors,
                                          reg->ncollectors + 1, sizeof *p, 4);
        if (p)
            reg->collectors = p;
        else
            rc = fs__error(FS_ENOMEM, "out of memory adding collector '%s'", name);
    }
    if (rc == FS_OK) {
        size_t pos = 0;
        while (pos < reg->ncollectors && strcmp(reg->collectors[pos]->name, name) < 0)
            pos++;
        memmove(reg->collectors + pos + 1, reg->collectors + pos,
                (reg->ncollectors - pos) * sizeof(fs_collector *));
        reg->collectors[pos] = c;
        reg->ncollectors++;
    }
    pthread_rwlock_unlock(&reg->lock);
    if (rc != FS_OK) {
        free(c->name);
        free(c);
    }
    return rc;
}
