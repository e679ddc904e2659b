/*
 * The Prometheus middleware: FastStream's metric schema (docs/semantics.md) for
 * every received and published message, through the broker-independent
 * middleware chain. This file: options, the families, creating and adding
 * the middleware. prometheus_hooks.c has the hooks, prometheus_cache.c the
 * combination cache (see prometheus_internal.h for the hot path).
 */
#include "prometheus_internal.h"

#include "middleware/backlog.h"

const double FS_PROMETHEUS_SIZE_BUCKETS[FS_PROMETHEUS_SIZE_BUCKETS_COUNT] = {
    16.0, 64.0, 256.0, 1024.0, 4096.0, 16384.0, 65536.0, 262144.0, 1048576.0, 4194304.0, 16777216.0,
};

static const char *const RESERVED[] = {"app_name", "broker",         "handler", "destination",
                                       "status",   "exception_type", "le"};

/* ------------------------------------------------------------------------ */
/* Setup                                                                    */

static void state_free(void *p)
{
    prom_state *st = p;
    if (!st)
        return;
    fs__backlog_remove(st->backlog);
    fs__prom_fold_stop(st); /* the last counts into the families */
    fs__prom_cache_clear(&st->recv);
    fs__prom_cache_clear(&st->pub);
    for (size_t i = 0; i < st->ncustom; i++)
        free(st->custom[i].value);
    free(st->app_name);
    free(st);
}

static int check_labels(const fs_prometheus_options *o)
{
    FS_CHECK_ARG(o->label_count == 0 || o->labels,
                 "prometheus middleware: label_count is %zu but labels is NULL", o->label_count);
    FS_CHECK_ARG(o->label_count <= FS_PROMETHEUS_MAX_LABELS,
                 "prometheus middleware: %zu custom labels given, at most %d are allowed",
                 o->label_count, FS_PROMETHEUS_MAX_LABELS);
    for (size_t i = 0; i < o->label_count; i++) {
        const fs_prometheus_label *l = &o->labels[i];
        FS_CHECK_ARG(l->name, "prometheus middleware: custom label %zu has no name", i);
        for (size_t r = 0; r < sizeof RESERVED / sizeof RESERVED[0]; r++)
            FS_CHECK_ARG(strcmp(l->name, RESERVED[r]) != 0,
                         "prometheus middleware: custom label name '%s' is reserved (the standard "
                         "labels are app_name, broker, handler, destination, status, "
                         "exception_type, and le is reserved for histogram buckets)",
                         l->name);
        FS_CHECK_ARG(fs_label_name_valid(l->name),
                     "prometheus middleware: custom label name '%s' is not a valid Prometheus "
                     "label name ([a-zA-Z_][a-zA-Z0-9_]*, not starting with '__')",
                     l->name);
        for (size_t j = 0; j < i; j++)
            FS_CHECK_ARG(strcmp(l->name, o->labels[j].name) != 0,
                         "prometheus middleware: custom label '%s' is given twice", l->name);
        FS_CHECK_ARG((l->value != NULL) != (l->fn != NULL),
                     "prometheus middleware: custom label '%s' needs exactly one of a static "
                     "value and a function",
                     l->name);
    }
    return FS_OK;
}

/* One family to register: which kind, its name suffix and help, its extra label. */
typedef struct family_def {
    fs_metric_type type;
    const char *suffix;
    const char *help;
    const char *extra; /* the 4th standard label, or NULL */
    int buckets;       /* histograms: 1 = size buckets, 0 = default */
    size_t offset;     /* where the family pointer goes in prom_state */
} family_def;

#define FAM(field) offsetof(prom_state, field)
static const family_def FAMILIES[] = {
    {FS_METRIC_COUNTER, "received_messages_total",
     "Count of received messages by broker and handler", NULL, 0, FAM(received)},
    {FS_METRIC_HISTOGRAM, "received_messages_size_bytes",
     "Histogram of received messages size in bytes by broker and handler", NULL, 1, FAM(size)},
    {FS_METRIC_GAUGE, "received_messages_in_process",
     "Gauge of received messages in process by broker and handler", NULL, 0, FAM(in_process)},
    {FS_METRIC_COUNTER, "received_processed_messages_total",
     "Count of received processed messages by broker, handler and status", "status", 0,
     FAM(processed)},
    {FS_METRIC_HISTOGRAM, "received_processed_messages_duration_seconds",
     "Histogram of received processed messages duration in seconds by broker and handler", NULL, 0,
     FAM(duration)},
    {FS_METRIC_COUNTER, "received_processed_messages_exceptions_total",
     "Count of received processed messages exceptions by broker, handler and exception_type",
     "exception_type", 0, FAM(exceptions)},
    {FS_METRIC_COUNTER, "published_messages_total",
     "Count of published messages by destination and status", "status", 0, FAM(published)},
    {FS_METRIC_HISTOGRAM, "published_messages_duration_seconds",
     "Histogram of published messages duration in seconds by broker and destination", NULL, 0,
     FAM(pub_duration)},
    {FS_METRIC_COUNTER, "published_messages_exceptions_total",
     "Count of published messages exceptions by broker, destination and exception_type",
     "exception_type", 0, FAM(pub_exceptions)},
};
#define NFAMILIES (sizeof FAMILIES / sizeof FAMILIES[0])

static int register_families(prom_state *st, fs_registry *reg, const char *prefix,
                             const fs_prometheus_options *o)
{
    const double *sb = o->size_buckets ? o->size_buckets : FS_PROMETHEUS_SIZE_BUCKETS;
    size_t nsb = o->size_buckets ? o->size_bucket_count : FS_PROMETHEUS_SIZE_BUCKETS_COUNT;
    FS_CHECK_ARG(!o->size_buckets || o->size_bucket_count > 0,
                 "prometheus middleware: size_buckets given with size_bucket_count 0");
    bool created[NFAMILIES] = {false};
    char names[NFAMILIES][256];
    int rc = FS_OK;
    size_t i;
    for (i = 0; i < NFAMILIES; i++) {
        const family_def *d = &FAMILIES[i];
        int n = snprintf(names[i], sizeof names[i], "%s_%s", prefix, d->suffix);
        if (n < 0 || (size_t)n >= sizeof names[i]) {
            rc = fs__error(FS_EINVAL, "prometheus middleware: metrics prefix '%s' is too long",
                           prefix);
            break;
        }
        const char *labels[MAX_VALUES];
        size_t nl = 0;
        labels[nl++] = "app_name";
        labels[nl++] = "broker";
        labels[nl++] = strncmp(d->suffix, "published", 9) == 0 ? "destination" : "handler";
        if (d->extra)
            labels[nl++] = d->extra;
        for (size_t j = 0; j < o->label_count; j++)
            labels[nl++] = o->labels[j].name;
        bool existed = fs_registry_contains(reg, names[i]);
        void **slot = (void **)((char *)st + d->offset);
        switch (d->type) {
        case FS_METRIC_COUNTER:
            rc = fs_counter_family_new(reg, names[i], d->help, nl, labels,
                                       (fs_counter_family **)slot);
            break;
        case FS_METRIC_GAUGE:
            rc = fs_gauge_family_new(reg, names[i], d->help, nl, labels, (fs_gauge_family **)slot);
            break;
        default:
            rc = fs_histogram_family_new(reg, names[i], d->help, nl, labels, d->buckets ? sb : NULL,
                                         d->buckets ? nsb : 0, (fs_histogram_family **)slot);
            break;
        }
        if (rc != FS_OK) {
            rc = fs__error(rc, "prometheus middleware: cannot register '%s': %s", names[i],
                           fs_last_error());
            break;
        }
        created[i] = !existed;
        /* The series limit (the families have labels: it cannot fail). */
        size_t limit = o->series_limit ? o->series_limit : FS_PROMETHEUS_SERIES_LIMIT;
        if (d->type == FS_METRIC_COUNTER)
            fs_counter_family_set_series_limit(*(fs_counter_family **)slot, limit);
        else if (d->type == FS_METRIC_GAUGE)
            fs_gauge_family_set_series_limit(*(fs_gauge_family **)slot, limit);
        else
            fs_histogram_family_set_series_limit(*(fs_histogram_family **)slot, limit);
    }
    if (rc != FS_OK) {
        /* Leave the registry as it was: drop what this call added. */
        for (size_t k = 0; k < i; k++)
            if (created[k])
                fs_registry_unregister(reg, names[k]);
    }
    return rc;
}

int fs_prometheus_middleware_new(const fs_prometheus_options *opts, fs_middleware *out)
{
    FS_CHECK_ARG(out, "fs_prometheus_middleware_new: out is NULL");
    memset(out, 0, sizeof *out);
    fs_prometheus_options defaults = FS_PROMETHEUS_OPTIONS_INIT;
    const fs_prometheus_options *o = opts ? opts : &defaults;
    const char *prefix = o->prefix ? o->prefix : "faststream";
    FS_CHECK_ARG(fs_metric_name_valid(prefix),
                 "prometheus middleware: metrics prefix '%s' is not a valid metric name", prefix);
    int rc = check_labels(o);
    if (rc != FS_OK)
        return rc;
    fs_kit_ticks_init(); /* the durations' clock, chosen before any hook runs */

    prom_state *st = calloc(1, sizeof *st);
    if (!st)
        return fs__error(FS_ENOMEM, "prometheus middleware: out of memory");
    st->id = atomic_fetch_add(&fs__prom_next_state_id, 1);
    st->app_name = fs_kit_strdup(o->app_name ? o->app_name : prefix);
    if (!st->app_name) {
        state_free(st);
        return fs__error(FS_ENOMEM, "prometheus middleware: out of memory");
    }
    st->ncustom = o->label_count;
    for (size_t i = 0; i < o->label_count; i++) {
        const fs_prometheus_label *l = &o->labels[i];
        st->custom[i].fn = l->fn;
        st->custom[i].user = l->user;
        if (l->fn) {
            st->ndyn++;
        } else if (!(st->custom[i].value = fs_kit_strdup(l->value))) {
            state_free(st);
            return fs__error(FS_ENOMEM, "prometheus middleware: out of memory");
        }
    }
    fs_registry *reg = o->registry ? o->registry : fs_registry_default();
    st->reg = reg;
    rc = register_families(st, reg, prefix, o);
    if (rc == FS_OK)
        rc = fs__prom_tally_setup(st);
    if (rc != FS_OK) {
        state_free(st);
        return rc;
    }
    out->name = "prometheus";
    bool tsc = fs_kit_ticks_are_tsc();
    out->consume = tsc ? fs__prom_consume : fs__prom_consume_mono;
    out->publish = tsc ? fs__prom_publish : fs__prom_publish_mono;
    out->publish_result = fs__prom_result;
    out->unique_key = "prometheus";
    out->scratch_size = st->ndyn ? sizeof(scratch) + st->ndyn * sizeof(char *) : 0;
    out->state = st;
    out->free_state = state_free;
    return FS_OK;
}

void fs_prometheus_middleware_release(fs_middleware *mw)
{
    if (mw && (mw->consume == fs__prom_consume || mw->consume == fs__prom_consume_mono)) {
        state_free(mw->state);
        memset(mw, 0, sizeof *mw);
    }
}

int fs_broker_add_prometheus(fs_broker *broker, const fs_prometheus_options *opts)
{
    FS_CHECK_ARG(broker, "fs_broker_add_prometheus: broker is NULL");
    FS_CHECK_ARG(!opts || (opts->backlog_timeout_ms >= 0 && opts->backlog_cache_ms >= 0),
                 "fs_broker_add_prometheus: negative backlog_timeout_ms or backlog_cache_ms");
    fs_middleware mw;
    int rc = fs_prometheus_middleware_new(opts, &mw);
    if (rc != FS_OK)
        return rc;
    if (opts && opts->backlog) {
        prom_state *st = mw.state;
        rc = fs__backlog_add(opts->registry ? opts->registry : fs_registry_default(),
                             opts->prefix ? opts->prefix : "faststream", st->app_name, broker,
                             opts->backlog_timeout_ms ? opts->backlog_timeout_ms : 250,
                             opts->backlog_cache_ms ? opts->backlog_cache_ms : 1000, &st->backlog);
        if (rc != FS_OK) {
            fs_prometheus_middleware_release(&mw);
            return rc;
        }
    }
    rc = fs_broker_add_middleware(broker, &mw);
    if (rc != FS_OK)
        fs_prometheus_middleware_release(&mw);
    return rc;
}
