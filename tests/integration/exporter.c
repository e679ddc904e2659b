/*
 * fs_test_exporter: builds a realistic registry, serves it and describes
 * what it exported, for the external checks (promtool, Python's parsers, a
 * real Prometheus server) in this directory.
 *
 *   fs_test_exporter EXPECT.json
 *
 * It fills the registry with the FastStream families of METRICS.md and
 * more (labels and help text full of characters that need escaping, info,
 * a custom collector, the process collector, special float values), keeping
 * its own account of every value it set: counters' totals, gauges' values,
 * every observation of every histogram, and the wall-clock window in which
 * each counter and histogram child was created. It writes that account to
 * EXPECT.json, serves the registry on 127.0.0.1 (a free port), prints
 * "PORT <n>" on stdout and serves until stdin reaches EOF; then it stops
 * the server, frees everything and exits 0 (under ASan, leaks fail it).
 *
 * GET /bump (a user route) adds 5 to the "orders" received-messages counter
 * and answers with the counter's new total, as the exporter counts it: the
 * Prometheus check uses it to see a change travel through a live scrape.
 *
 * The account is independent of the library's output: the checking scripts
 * derive the expected samples (cumulative buckets, _sum, _count, _created)
 * from it and compare them with what the parsers read from the endpoint.
 */
#include "faststream/http.h"

#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define MAX_SERIES 128
#define MAX_LABELS 6
#define MAX_OBS 128

typedef enum {
    S_COUNTER,
    S_GAUGE,
    S_HISTOGRAM,
    S_INFO,
    S_COLLECTED_COUNTER,
    S_COLLECTED_GAUGE
} kind;

typedef struct series {
    kind kind;
    const char *name; /* the sample name of a counter (with _total), gauge, info (with _info)
                         or the family name of a histogram */
    const char *help;
    size_t nlabels;
    const char *const *label_names;
    const char *label_values[MAX_LABELS];
    double value;
    double obs[MAX_OBS];
    size_t nobs;
    const double *bounds;
    size_t nbounds;
    double created_lo, created_hi;
    void *handle;
} series;

static series all[MAX_SERIES];
static size_t nseries;

/* The counter /bump adds to; bumps are serialised by bump_lock. */
static series *bumped;
static pthread_mutex_t bump_lock = PTHREAD_MUTEX_INITIALIZER;

static void die(const char *what)
{
    fprintf(stderr, "fs_test_exporter: %s: %s\n", what, fs_last_error());
    exit(2);
}

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static series *new_series(kind k, const char *name, const char *help, size_t n,
                          const char *const *names, const char *const *values)
{
    if (nseries == MAX_SERIES || n > MAX_LABELS) {
        fprintf(stderr, "fs_test_exporter: too many series\n");
        exit(2);
    }
    series *s = &all[nseries++];
    s->kind = k;
    s->name = name;
    s->help = help;
    s->nlabels = n;
    s->label_names = names;
    for (size_t i = 0; i < n; i++)
        s->label_values[i] = values[i];
    return s;
}

static series *counter_child(fs_counter_family *fam, const char *name, const char *help, size_t n,
                             const char *const *names, const char *const *values)
{
    series *s = new_series(S_COUNTER, name, help, n, names, values);
    s->created_lo = now();
    s->handle = fs_counter_family_labels(fam, values);
    s->created_hi = now();
    if (!s->handle)
        die(name);
    return s;
}

static void counter_add(series *s, double v)
{
    if (fs_counter_add(s->handle, v) != FS_OK)
        die("fs_counter_add");
    s->value += v;
}

static series *gauge_child(fs_gauge_family *fam, const char *name, const char *help, size_t n,
                           const char *const *names, const char *const *values)
{
    series *s = new_series(S_GAUGE, name, help, n, names, values);
    s->handle = fs_gauge_family_labels(fam, values);
    if (!s->handle)
        die(name);
    return s;
}

static void gauge_set(series *s, double v)
{
    fs_gauge_set(s->handle, v);
    s->value = v;
}

static series *histogram_child(fs_histogram_family *fam, const char *name, const char *help,
                               size_t n, const char *const *names, const char *const *values,
                               const double *bounds, size_t nbounds)
{
    series *s = new_series(S_HISTOGRAM, name, help, n, names, values);
    s->bounds = bounds;
    s->nbounds = nbounds;
    s->created_lo = now();
    s->handle = fs_histogram_family_labels(fam, values);
    s->created_hi = now();
    if (!s->handle)
        die(name);
    return s;
}

static void observe(series *s, double v)
{
    if (s->nobs == MAX_OBS) {
        fprintf(stderr, "fs_test_exporter: too many observations\n");
        exit(2);
    }
    fs_histogram_observe(s->handle, v);
    s->obs[s->nobs++] = v;
}

/* ------------------------------------------------------------------------ */
/* A custom collector, like a broker's consumer-lag collector.               */

static const char *const lag_labels[] = {"topic", "partition"};
static const char *const lag_values[][2] = {
    {"orders", "0"}, {"orders", "1"}, {"pay\\ments \"eu\"", "0"}};
static const double lag[] = {0, 17, 123456789};

static int collect_lag(fs_collect_ctx *ctx, void *user)
{
    (void)user;
    int rc = fs_collect_family(ctx, "demo_consumer_lag", "Messages not yet consumed, by partition",
                               FS_METRIC_GAUGE);
    for (size_t i = 0; rc == FS_OK && i < 3; i++)
        rc = fs_collect_sample(ctx, 2, lag_labels, lag_values[i], lag[i]);
    if (rc == FS_OK)
        rc = fs_collect_family(ctx, "demo_rebalances_total", "Consumer group rebalances",
                               FS_METRIC_COUNTER);
    if (rc == FS_OK)
        rc = fs_collect_sample(ctx, 0, NULL, NULL, 3);
    return rc;
}

/* ------------------------------------------------------------------------ */

static const double size_buckets[] = {16,    64,     256,     1024,    4096,    16384,
                                      65536, 262144, 1048576, 4194304, 16777216};
static const double duration_buckets[] = {0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25,
                                          0.5,   0.75, 1,     2.5,  5,     7.5, 10};

/* Label values that need every kind of escaping, and then some. */
static const char *const tricky_handlers[] = {
    "orders",
    "in/\"quoted\"\\back\\slash",
    "multi\nline\nhandler",
    "unicode: заказы ✓ 🚀",
    "",
    "trailing backslash\\",
    "{braces}=,comma # not a comment",
};
#define NHANDLERS (sizeof tricky_handlers / sizeof *tricky_handlers)

static void build(fs_registry *reg)
{
    static const char *const recv_l[] = {"app_name", "broker", "handler"};
    static const char *const proc_l[] = {"app_name", "broker", "handler", "status"};
    static const char *const exc_l[] = {"app_name", "broker", "handler", "exception_type"};
    static const char *const pub_l[] = {"app_name", "broker", "destination", "status"};
    static const char *const pubd_l[] = {"app_name", "broker", "destination"};
    static const char *const pube_l[] = {"app_name", "broker", "destination", "exception_type"};

    fs_counter_family *received, *processed, *exceptions, *published, *pub_exceptions;
    fs_histogram_family *sizes, *durations, *pub_durations;
    fs_gauge_family *in_process;
    const char *h;

    h = "Count of received messages by broker and handler";
    if (fs_counter_family_new(reg, "faststream_received_messages_total", h, 3, recv_l, &received))
        die("received");
    const char *hs = "Histogram of received messages size in bytes by broker and handler";
    if (fs_histogram_family_new(reg, "faststream_received_messages_size_bytes", hs, 3, recv_l,
                                size_buckets, 11, &sizes))
        die("sizes");
    const char *hg = "Gauge of received messages in process by broker and handler";
    if (fs_gauge_family_new(reg, "faststream_received_messages_in_process", hg, 3, recv_l,
                            &in_process))
        die("in_process");
    const char *hp = "Count of received processed messages by broker, handler and status";
    if (fs_counter_family_new(reg, "faststream_received_processed_messages_total", hp, 4, proc_l,
                              &processed))
        die("processed");
    const char *hd =
        "Histogram of received processed messages duration in seconds by broker and handler";
    if (fs_histogram_family_new(reg, "faststream_received_processed_messages_duration_seconds", hd,
                                3, recv_l, NULL, 0, &durations))
        die("durations");
    const char *he =
        "Count of received processed messages exceptions by broker, handler and exception_type";
    if (fs_counter_family_new(reg, "faststream_received_processed_messages_exceptions_total", he, 4,
                              exc_l, &exceptions))
        die("exceptions");
    const char *hpub = "Count of published messages by destination and status";
    if (fs_counter_family_new(reg, "faststream_published_messages_total", hpub, 4, pub_l,
                              &published))
        die("published");
    const char *hpd =
        "Histogram of published messages duration in seconds by broker and destination";
    if (fs_histogram_family_new(reg, "faststream_published_messages_duration_seconds", hpd, 3,
                                pubd_l, NULL, 0, &pub_durations))
        die("pub_durations");
    const char *hpe =
        "Count of published messages exceptions by broker, destination and exception_type";
    if (fs_counter_family_new(reg, "faststream_published_messages_exceptions_total", hpe, 4, pube_l,
                              &pub_exceptions))
        die("pub_exceptions");

    /* The "orders" handler of "order-service": the series the Prometheus test queries. */
    const char *orders[] = {"order-service", "memory", "orders"};
    series *rc =
        counter_child(received, "faststream_received_messages_total", h, 3, recv_l, orders);
    bumped = rc;
    series *rs = histogram_child(sizes, "faststream_received_messages_size_bytes", hs, 3, recv_l,
                                 orders, size_buckets, 11);
    series *rd =
        histogram_child(durations, "faststream_received_processed_messages_duration_seconds", hd, 3,
                        recv_l, orders, duration_buckets, 14);
    const char *acked_v[] = {"order-service", "memory", "orders", "acked"};
    const char *error_v[] = {"order-service", "memory", "orders", "error"};
    series *acked = counter_child(processed, "faststream_received_processed_messages_total", hp, 4,
                                  proc_l, acked_v);
    series *errors = counter_child(processed, "faststream_received_processed_messages_total", hp, 4,
                                   proc_l, error_v);
    const char *exc_v[] = {"order-service", "memory", "orders", "ValueError"};
    series *exc = counter_child(
        exceptions, "faststream_received_processed_messages_exceptions_total", he, 4, exc_l, exc_v);
    series *busy =
        gauge_child(in_process, "faststream_received_messages_in_process", hg, 3, recv_l, orders);
    /* 40 messages: sizes and durations spread over the buckets, 3 of them failing. */
    static const double durations_s[] = {0.001, 0.002, 0.004, 0.006, 0.008, 0.009, 0.011, 0.012,
                                         0.015, 0.02,  0.021, 0.022, 0.024, 0.03,  0.035, 0.04,
                                         0.045, 0.049, 0.051, 0.06,  0.065, 0.07,  0.074, 0.08,
                                         0.09,  0.095, 0.12,  0.15,  0.2,   0.24,  0.3,   0.4,
                                         0.45,  0.6,   0.7,   0.8,   0.9,   1.5,   3,     12};
    for (int i = 0; i < 40; i++) {
        gauge_set(busy, busy->value + 1);
        counter_add(rc, 1);
        observe(rs, (double)((i * 977) % 70000));
        observe(rd, durations_s[i]);
        if (i % 13 == 5) {
            counter_add(exc, 1);
            counter_add(errors, 1);
        } else {
            counter_add(acked, 1);
        }
        gauge_set(busy, busy->value - 1);
    }

    /* Every tricky handler, through every received family, with other values. */
    for (size_t i = 1; i < NHANDLERS; i++) {
        const char *v[] = {"faststream", "redis", tricky_handlers[i]};
        series *c = counter_child(received, "faststream_received_messages_total", h, 3, recv_l, v);
        counter_add(c, (double)i * 1000.0 + 0.25);
        series *g =
            gauge_child(in_process, "faststream_received_messages_in_process", hg, 3, recv_l, v);
        gauge_set(g, (double)i);
        series *hz = histogram_child(sizes, "faststream_received_messages_size_bytes", hs, 3,
                                     recv_l, v, size_buckets, 11);
        observe(hz, 16); /* exactly on a bound: counted in le="16" */
        observe(hz, 17);
        observe(hz, 1e9);
        series *d =
            histogram_child(durations, "faststream_received_processed_messages_duration_seconds",
                            hd, 3, recv_l, v, duration_buckets, 14);
        observe(d, 0.1 * (double)i);
        const char *sv[] = {"faststream", "redis", tricky_handlers[i], "skipped"};
        counter_add(counter_child(processed, "faststream_received_processed_messages_total", hp, 4,
                                  proc_l, sv),
                    (double)i);
    }

    /* Publishing. */
    const char *ok_v[] = {"order-service", "memory", "payments.eu", "success"};
    const char *fail_v[] = {"order-service", "memory", "payments.eu", "error"};
    const char *pd_v[] = {"order-service", "memory", "payments.eu"};
    const char *pe_v[] = {"order-service", "memory", "payments.eu", "Timeout"};
    counter_add(
        counter_child(published, "faststream_published_messages_total", hpub, 4, pub_l, ok_v), 97);
    counter_add(
        counter_child(published, "faststream_published_messages_total", hpub, 4, pub_l, fail_v), 3);
    counter_add(counter_child(pub_exceptions, "faststream_published_messages_exceptions_total", hpe,
                              4, pube_l, pe_v),
                3);
    series *pd = histogram_child(pub_durations, "faststream_published_messages_duration_seconds",
                                 hpd, 3, pubd_l, pd_v, duration_buckets, 14);
    for (int i = 0; i < 100; i++)
        observe(pd, 0.0005 * (double)(i + 1));

    /* Unlabelled metrics, help text that needs escaping, special values. */
    static const char *const none[] = {NULL};
    fs_counter *bytes;
    const char *hb = "Bytes read \\ written, \"quoted\" help\nwith a second line";
    series *sb = new_series(S_COUNTER, "demo_io_bytes_total", hb, 0, none, none);
    sb->created_lo = now();
    if (fs_counter_new(reg, "demo_io_bytes_total", hb, &bytes))
        die("bytes");
    sb->created_hi = now();
    sb->handle = bytes;
    counter_add(sb, 1e15);
    counter_add(sb, 0.5);
    counter_add(sb, 0.1); /* not exactly representable: the round trip must be exact */

    static const char *const kind_l[] = {"kind"};
    fs_gauge_family *limits;
    const char *hl = "Special float values";
    if (fs_gauge_family_new(reg, "demo_limit", hl, 1, kind_l, &limits))
        die("limits");
    static const char *const k_pinf[] = {"pinf"}, *const k_ninf[] = {"ninf"},
                             *const k_nan[] = {"nan"}, *const k_tiny[] = {"tiny"},
                             *const k_huge[] = {"huge"}, *const k_neg[] = {"negative"},
                             *const k_third[] = {"third"}, *const k_zero[] = {"negzero"};
    gauge_set(gauge_child(limits, "demo_limit", hl, 1, kind_l, k_pinf), INFINITY);
    gauge_set(gauge_child(limits, "demo_limit", hl, 1, kind_l, k_ninf), -INFINITY);
    gauge_set(gauge_child(limits, "demo_limit", hl, 1, kind_l, k_nan), NAN);
    gauge_set(gauge_child(limits, "demo_limit", hl, 1, kind_l, k_tiny), 5e-324);
    gauge_set(gauge_child(limits, "demo_limit", hl, 1, kind_l, k_huge), 1.7976931348623157e308);
    gauge_set(gauge_child(limits, "demo_limit", hl, 1, kind_l, k_neg), -42.125);
    gauge_set(gauge_child(limits, "demo_limit", hl, 1, kind_l, k_third), 1.0 / 3.0);
    gauge_set(gauge_child(limits, "demo_limit", hl, 1, kind_l, k_zero), -0.0);

    /* A histogram with exponential buckets and no labels. */
    static double exp_buckets[6];
    if (fs_buckets_exponential(0.001, 10, 6, exp_buckets))
        die("buckets");
    fs_histogram *rt;
    const char *hr = "Round trips to the store";
    series *srt = new_series(S_HISTOGRAM, "demo_store_roundtrip_seconds", hr, 0, none, none);
    srt->bounds = exp_buckets;
    srt->nbounds = 6;
    srt->created_lo = now();
    if (fs_histogram_new(reg, "demo_store_roundtrip_seconds", hr, exp_buckets, 6, &rt))
        die("roundtrip");
    srt->created_hi = now();
    srt->handle = rt;
    observe(srt, 0.0004);
    observe(srt, 0.002);
    observe(srt, 0.002);
    observe(srt, 0.3);
    observe(srt, 150);

    /* Info. */
    static const char *const info_l[] = {"version", "commit", "compiler"};
    static const char *const info_v[] = {FASTSTREAM_VERSION_STRING, "abc\"def\\ghi",
                                         "gcc\nline two"};
    const char *hi = "Build information";
    if (fs_info_new(reg, "demo_build", hi, 3, info_l, info_v))
        die("info");
    new_series(S_INFO, "demo_build_info", hi, 3, info_l, info_v)->value = 1;

    /* The collectors. */
    if (fs_registry_add_collector(reg, "lag", collect_lag, NULL, NULL))
        die("collector");
    for (size_t i = 0; i < 3; i++)
        new_series(S_COLLECTED_GAUGE, "demo_consumer_lag",
                   "Messages not yet consumed, by partition", 2, lag_labels, lag_values[i])
            ->value = lag[i];
    new_series(S_COLLECTED_COUNTER, "demo_rebalances_total", "Consumer group rebalances", 0, none,
               none)
        ->value = 3;
    if (fs_process_collector_register(reg))
        die("process collector");
}

/* ------------------------------------------------------------------------ */
/* The account, as JSON.                                                     */

static void json_string(FILE *f, const char *s)
{
    fputc('"', f);
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        if (*p == '"' || *p == '\\')
            fprintf(f, "\\%c", *p);
        else if (*p < 0x20)
            fprintf(f, "\\u%04x", *p);
        else
            fputc(*p, f);
    }
    fputc('"', f);
}

/* JSON has no NaN or infinities: those are written as strings. */
static void json_number(FILE *f, double v)
{
    if (isnan(v))
        fputs("\"NaN\"", f);
    else if (isinf(v))
        fputs(v > 0 ? "\"+Inf\"" : "\"-Inf\"", f);
    else if (v == 0 && signbit(v))
        fputs("-0.0", f);
    else
        fprintf(f, "%.17g", v);
}

static const char *kind_name(kind k)
{
    switch (k) {
    case S_COUNTER:
        return "counter";
    case S_GAUGE:
        return "gauge";
    case S_HISTOGRAM:
        return "histogram";
    case S_INFO:
        return "info";
    case S_COLLECTED_COUNTER:
        return "collected_counter";
    case S_COLLECTED_GAUGE:
        return "collected_gauge";
    }
    return "?";
}

static void write_account(const char *path, uint16_t port)
{
    FILE *f = fopen(path, "w");
    if (!f) {
        perror(path);
        exit(2);
    }
    fprintf(f, "{\"port\": %u, \"series\": [\n", (unsigned)port);
    for (size_t i = 0; i < nseries; i++) {
        const series *s = &all[i];
        fprintf(f, "  {\"kind\": \"%s\", \"name\": ", kind_name(s->kind));
        json_string(f, s->name);
        fputs(", \"help\": ", f);
        json_string(f, s->help);
        fputs(", \"labels\": {", f);
        for (size_t l = 0; l < s->nlabels; l++) {
            if (l)
                fputs(", ", f);
            json_string(f, s->label_names[l]);
            fputs(": ", f);
            json_string(f, s->label_values[l]);
        }
        fputs("}, \"value\": ", f);
        json_number(f, s->value);
        if (s->kind == S_COUNTER || s->kind == S_HISTOGRAM)
            fprintf(f, ", \"created_lo\": %.6f, \"created_hi\": %.6f", s->created_lo,
                    s->created_hi);
        if (s->kind == S_HISTOGRAM) {
            fputs(", \"bounds\": [", f);
            for (size_t b = 0; b < s->nbounds; b++) {
                if (b)
                    fputs(", ", f);
                json_number(f, s->bounds[b]);
            }
            fputs("], \"observations\": [", f);
            for (size_t o = 0; o < s->nobs; o++) {
                if (o)
                    fputs(", ", f);
                json_number(f, s->obs[o]);
            }
            fputs("]", f);
        }
        fprintf(f, "}%s\n", i + 1 < nseries ? "," : "");
    }
    fputs("]}\n", f);
    if (fclose(f) != 0) {
        perror(path);
        exit(2);
    }
}

static void bump(const fs_http_request *req, fs_http_response *resp, void *user)
{
    (void)req;
    (void)user;
    char *body = malloc(64);
    if (!body) {
        resp->status = 500;
        return;
    }
    pthread_mutex_lock(&bump_lock);
    counter_add(bumped, 5);
    snprintf(body, 64, "%.17g\n", bumped->value);
    pthread_mutex_unlock(&bump_lock);
    resp->body = body;
    resp->body_len = strlen(body);
    resp->free_body = free;
}

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: %s EXPECT.json\n", argv[0]);
        return 2;
    }
    fs_registry *reg;
    if (fs_registry_new(&reg))
        die("registry");
    build(reg);

    fs_http_options o = FS_HTTP_OPTIONS_INIT;
    o.port = FS_HTTP_PORT_ANY;
    o.registry = reg;
    fs_http_server *srv;
    if (fs_http_server_new(&o, &srv) || fs_http_server_add_route(srv, "/bump", bump, NULL) ||
        fs_http_server_start(srv))
        die("server");
    write_account(argv[1], fs_http_server_port(srv));
    printf("PORT %u\n", (unsigned)fs_http_server_port(srv));
    fflush(stdout);

    char buf[256];
    while (fread(buf, 1, sizeof buf, stdin) > 0)
        ;
    fs_http_server_free(srv);
    fs_registry_free(reg);
    return 0;
}
