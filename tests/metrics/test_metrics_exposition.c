/*
 * Exposition: golden output in both formats, escaping, number rendering,
 * content negotiation, custom collectors and the process collector.
 *
 * The golden tests make _created deterministic with the internal clock hook
 * fs__metrics_set_time_source (metrics_internal.h). Set FS_UPDATE_GOLDEN=1 to
 * rewrite the files after an intended change (and review the diff).
 */
#include "metrics_test_util.h"

#include <time.h>

#include "metrics/metrics_internal.h"

static double fixed_now(void)
{
    return 1700000000.25;
}

static int add_custom(fs_collect_ctx *ctx, void *user)
{
    (void)user;
    const char *names[] = {"kind"};
    const char *a[] = {"a"}, *b[] = {"b\"\\\n"};
    if (fs_collect_family(ctx, "app_custom_things", "Things \"counted\" by a collector.",
                          FS_METRIC_GAUGE) != FS_OK ||
        fs_collect_sample(ctx, 1, names, a, 3) != FS_OK ||
        fs_collect_sample(ctx, 1, names, b, -0.5) != FS_OK ||
        fs_collect_family(ctx, "app_custom_ops", "Operations.", FS_METRIC_COUNTER) != FS_OK ||
        fs_collect_sample(ctx, 0, NULL, NULL, 42) != FS_OK ||
        fs_collect_family(ctx, "aaa_untyped", "First by name.", FS_METRIC_UNTYPED) != FS_OK ||
        fs_collect_sample(ctx, 0, NULL, NULL, 1e-3) != FS_OK)
        return FS_EINVAL;
    return FS_OK;
}

/* The registry behind the golden files: every type, labels, escaping, a collector. */
static fs_registry *golden_registry(void)
{
    fs__metrics_set_time_source(fixed_now);
    fs_registry *reg;
    assert_int_equal(fs_registry_new(&reg), FS_OK);
    const char *rl[] = {"method", "code"};
    fs_counter_family *req;
    assert_int_equal(
        fs_counter_family_new(reg, "app_requests_total", "Requests served.", 2, rl, &req), FS_OK);
    const char *get[] = {"GET", "200"}, *post[] = {"POST", "500"};
    fs_counter_add(fs_counter_family_labels(req, post), 1.5);
    for (int i = 0; i < 3; i++)
        fs_counter_inc(fs_counter_family_labels(req, get));
    fs_counter *ev;
    assert_int_equal(
        fs_counter_new(reg, "app_events", "Events \\ with \"quotes\"\nand lines.", &ev), FS_OK);
    fs_counter_add(ev, 7);
    fs_gauge *temp;
    assert_int_equal(fs_gauge_new(reg, "app_temperature_celsius", "Temperature.", &temp), FS_OK);
    fs_gauge_set(temp, -12.5);
    const char *ql[] = {"queue"};
    fs_gauge_family *depth;
    assert_int_equal(fs_gauge_family_new(reg, "app_queue_depth", "Queue depth.", 1, ql, &depth),
                     FS_OK);
    const char *q1[] = {"a\"b\\c\nd"}, *q2[] = {"pl\xC3\xA4in \xFF"}, *q3[] = {""};
    fs_gauge_set(fs_gauge_family_labels(depth, q1), 3);
    fs_gauge_set(fs_gauge_family_labels(depth, q2), 0.1);
    fs_gauge_set(fs_gauge_family_labels(depth, q3), NAN);
    const char *hl[] = {"route"};
    fs_histogram_family *lat;
    assert_int_equal(
        fs_histogram_family_new(reg, "app_latency_seconds", "Latency.", 1, hl, NULL, 0, &lat),
        FS_OK);
    const char *rx[] = {"/x"};
    fs_histogram *hx = fs_histogram_family_labels(lat, rx);
    fs_histogram_observe(hx, 0.003);
    fs_histogram_observe(hx, 0.2);
    fs_histogram_observe(hx, 3);
    fs_histogram_observe(hx, 11);
    const double sb[] = {16, 64, 1024, 1e6};
    fs_histogram *size;
    assert_int_equal(fs_histogram_new(reg, "app_size_bytes", "Sizes.", sb, 4, &size), FS_OK);
    fs_histogram_observe(size, 10);
    fs_histogram_observe(size, 100);
    fs_histogram_observe(size, 5000000);
    const char *il[] = {"version", "commit"}, *iv[] = {"1.2.3", "0abc"};
    assert_int_equal(fs_info_new(reg, "app_build", "Build information.", 2, il, iv), FS_OK);
    assert_int_equal(fs_registry_add_collector(reg, "custom", add_custom, NULL, NULL), FS_OK);
    fs__metrics_set_time_source(NULL);
    return reg;
}

static char *read_all(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *s = malloc((size_t)n + 1);
    assert_non_null(s);
    assert_int_equal(fread(s, 1, (size_t)n, f), (size_t)n);
    s[n] = '\0';
    fclose(f);
    return s;
}

static void check_golden(fs_format format, const char *file)
{
    fs_registry *reg = golden_registry();
    char *got = render(reg, format);
    fs_registry_free(reg);
    char path[512];
    snprintf(path, sizeof path, "%s/metrics/golden/%s", FS_TEST_SOURCE_DIR, file);
    const char *update = getenv("FS_UPDATE_GOLDEN");
    if (update && *update == '1') {
        FILE *f = fopen(path, "wb");
        assert_non_null(f);
        fputs(got, f);
        fclose(f);
    }
    char *want = read_all(path);
    if (!want)
        fail_msg("missing golden file %s", path);
    if (strcmp(got, want) != 0)
        fail_msg("output differs from %s; got:\n%s", path, got);
    free(want);
    free(got);
}

static void test_golden_text(void **state)
{
    (void)state;
    check_golden(FS_FORMAT_TEXT, "text.txt");
}

static void test_golden_openmetrics(void **state)
{
    (void)state;
    check_golden(FS_FORMAT_OPENMETRICS, "openmetrics.txt");
}

/* Rendering appends, keeps the buffer NUL-terminated and is repeatable. */
static void test_render_appends_and_is_deterministic(void **state)
{
    (void)state;
    fs_registry *reg = golden_registry();
    fs_buffer b = {0};
    assert_int_equal(fs_registry_render(reg, FS_FORMAT_TEXT, &b), FS_OK);
    size_t first = b.len;
    char *copy = strdup(b.data);
    assert_int_equal(fs_registry_render(reg, FS_FORMAT_TEXT, &b), FS_OK);
    assert_int_equal(b.len, 2 * first);
    assert_memory_equal(b.data + first, copy, first);
    assert_int_equal(b.data[b.len], '\0');
    free(copy);
    fs_buffer_free(&b);
    assert_null(b.data);
    fs_buffer_free(NULL);
    assert_int_equal(fs_registry_render(reg, FS_FORMAT_TEXT, NULL), FS_EINVAL);
    assert_string_equal(fs_last_error(), "fs_registry_render: out is NULL");
    assert_int_equal(fs_registry_render(reg, (fs_format)7, &b), FS_EINVAL);
    assert_string_equal(fs_last_error(), "fs_registry_render: unknown format 7");
    fs_registry_free(reg);
}

/* Undo the label-value escaping of one `name="..."` pair starting at p. */
static char *unescape_value(const char *p, const char **end)
{
    char *out = malloc(strlen(p) + 1), *o = out;
    assert_int_equal(*p, '"');
    for (p++; *p != '"'; p++) {
        assert_true(*p != '\n' && *p != '\0');
        if (*p == '\\') {
            p++;
            *o++ = *p == 'n' ? '\n' : *p;
            assert_true(*p == 'n' || *p == '\\' || *p == '"');
        } else {
            *o++ = *p;
        }
    }
    *o = '\0';
    *end = p + 1;
    return out;
}

static void expect_label_value(const char *value, const char *want)
{
    fs_registry *reg;
    assert_int_equal(fs_registry_new(&reg), FS_OK);
    const char *ln[] = {"v"};
    fs_counter_family *fam;
    assert_int_equal(fs_counter_family_new(reg, "bytes", "B.", 1, ln, &fam), FS_OK);
    const char *v[] = {value};
    fs_counter_inc(fs_counter_family_labels(fam, v));
    for (int format = 0; format < 2; format++) {
        char *t = render(reg, (fs_format)format);
        const char *p = strstr(t, "bytes_total{v=");
        assert_non_null(p);
        const char *end;
        char *back = unescape_value(p + strlen("bytes_total{v="), &end);
        assert_string_equal(back, want);
        const char *tail = format ? "} 1\nbytes_created{" : "} 1\n";
        assert_int_equal(strncmp(end, tail, strlen(tail)), 0);
        free(back);
        free(t);
    }
    fs_registry_free(reg);
}

/*
 * Any byte string is accepted as a label value and the exposition stays
 * valid and lossless: escapes undo exactly, valid UTF-8 passes through, a
 * byte that is not UTF-8 (which would make a scraper reject the whole page)
 * becomes U+FFFD and its two hex digits, and U+FFFD itself is doubled.
 */
#define R "\xEF\xBF\xBD" /* U+FFFD */
static void test_label_values_any_bytes(void **state)
{
    (void)state;
    char value[256], want[128 + 128 * 5];
    for (int i = 1; i < 256; i++)
        value[i - 1] = (char)i;
    value[255] = '\0';
    size_t n = 0;
    for (int i = 1; i < 128; i++)
        want[n++] = (char)i;
    for (int i = 128; i < 256; i++) { /* each alone, none of these bytes is valid */
        n += (size_t)sprintf(want + n, R "%02X", i);
    }
    want[n] = '\0';
    expect_label_value(value, want);
    expect_label_value("caf\xC3\xA9 \xE6\x97\xA5\xE6\x9C\xAC \xF0\x9F\x98\x80",
                       "caf\xC3\xA9 \xE6\x97\xA5\xE6\x9C\xAC \xF0\x9F\x98\x80");
    /* overlong '/', a UTF-16 surrogate, a truncated sequence, beyond U+10FFFF */
    expect_label_value("a\xC0\xAF"
                       "b",
                       "a" R "C0" R "AF"
                       "b");
    expect_label_value("\xED\xA0\x80", R "ED" R "A0" R "80");
    expect_label_value("x\xE6\x97", "x" R "E6" R "97");
    expect_label_value("\xF4\x90\x80\x80", R "F4" R "90" R "80" R "80");
    /* the two values the U+FFFD-only policy made alike, and U+FFFD itself */
    expect_label_value("a\xFE", "a" R "FE");
    expect_label_value("a\xFF", "a" R "FF");
    expect_label_value("a" R "FE", "a" R R "FE");
    expect_label_value(R, R R);
    expect_label_value("", "");
}
#undef R

/* HELP: text escapes backslash and newline; OpenMetrics also the double quote. */
static void test_help_escaping(void **state)
{
    (void)state;
    fs_registry *reg;
    assert_int_equal(fs_registry_new(&reg), FS_OK);
    fs_gauge *g;
    assert_int_equal(fs_gauge_new(reg, "h", "a\\b\n\"c\"", &g), FS_OK);
    char *t = render(reg, FS_FORMAT_TEXT);
    assert_string_equal(t, "# HELP h a\\\\b\\n\"c\"\n# TYPE h gauge\nh 0\n");
    free(t);
    t = render(reg, FS_FORMAT_OPENMETRICS);
    assert_string_equal(t, "# HELP h a\\\\b\\n\\\"c\\\"\n# TYPE h gauge\nh 0\n# EOF\n");
    free(t);
    fs_registry_free(reg);
}

/* Gauge values come back from the exposition exactly. */
static void test_values_round_trip_through_render(void **state)
{
    (void)state;
    fs_registry *reg;
    assert_int_equal(fs_registry_new(&reg), FS_OK);
    fs_gauge *g;
    assert_int_equal(fs_gauge_new(reg, "v", "V.", &g), FS_OK);
    const double vals[] = {0.1 + 0.2, 1e-300, -1e300, 5e-324, 123456789.987654321,
                           1.0 / 3,   1e21,   -0.0,   2e15,   7};
    for (size_t i = 0; i < sizeof vals / sizeof vals[0]; i++) {
        fs_gauge_set(g, vals[i]);
        for (int format = 0; format < 2; format++) {
            char *t = render(reg, (fs_format)format);
            assert_true(sample_value(t, "v") == vals[i]);
            free(t);
        }
    }
    fs_gauge_set(g, INFINITY);
    char *t = render(reg, FS_FORMAT_TEXT);
    assert_non_null(strstr(t, "\nv +Inf\n"));
    free(t);
    fs_gauge_set(g, -INFINITY);
    t = render(reg, FS_FORMAT_OPENMETRICS);
    assert_non_null(strstr(t, "\nv -Inf\n"));
    free(t);
    fs_gauge_set(g, NAN);
    t = render(reg, FS_FORMAT_TEXT);
    assert_non_null(strstr(t, "\nv NaN\n"));
    free(t);
    fs_registry_free(reg);
}

/* ------------------------------------------------------------------------ */
/* Negotiation                                                              */

static void test_negotiate(void **state)
{
    (void)state;
    /* Prometheus 2.42's scrape header */
    assert_int_equal(fs_format_negotiate("application/openmetrics-text;version=1.0.0,"
                                         "application/openmetrics-text;version=0.0.1;q=0.75,"
                                         "text/plain;version=0.0.4;q=0.5,*/*;q=0.1"),
                     FS_FORMAT_OPENMETRICS);
    /* older Prometheus: only OpenMetrics 0.0.1, which we do not speak */
    assert_int_equal(fs_format_negotiate("application/openmetrics-text; version=0.0.1,"
                                         "text/plain;version=0.0.4;q=0.5,*/*;q=0.1"),
                     FS_FORMAT_TEXT);
    assert_int_equal(fs_format_negotiate(NULL), FS_FORMAT_TEXT);
    assert_int_equal(fs_format_negotiate(""), FS_FORMAT_TEXT);
    assert_int_equal(fs_format_negotiate("*/*"), FS_FORMAT_TEXT);
    assert_int_equal(fs_format_negotiate("text/plain"), FS_FORMAT_TEXT);
    assert_int_equal(fs_format_negotiate("text/plain;version=0.0.4"), FS_FORMAT_TEXT);
    assert_int_equal(fs_format_negotiate("application/openmetrics-text"), FS_FORMAT_OPENMETRICS);
    assert_int_equal(fs_format_negotiate("application/openmetrics-text; version=1.0.0"),
                     FS_FORMAT_OPENMETRICS);
    assert_int_equal(fs_format_negotiate("Application/OpenMetrics-Text; Version=\"1.0.0\""),
                     FS_FORMAT_OPENMETRICS);
    /* q=0 means "not acceptable" */
    assert_int_equal(fs_format_negotiate("application/openmetrics-text;q=0,text/plain"),
                     FS_FORMAT_TEXT);
    assert_int_equal(fs_format_negotiate("application/openmetrics-text; q=0.0"), FS_FORMAT_TEXT);
    assert_int_equal(fs_format_negotiate("application/openmetrics-text;version=1.0.0;q=0"),
                     FS_FORMAT_TEXT);
    /* preference by q */
    assert_int_equal(fs_format_negotiate("text/plain;q=1, application/openmetrics-text;q=0.5"),
                     FS_FORMAT_TEXT);
    assert_int_equal(fs_format_negotiate("text/plain;q=0.3, application/openmetrics-text;q=0.5"),
                     FS_FORMAT_OPENMETRICS);
    assert_int_equal(fs_format_negotiate("text/html, application/openmetrics-text;q=0.2"),
                     FS_FORMAT_OPENMETRICS);
    /* junk does not crash and falls back to text */
    assert_int_equal(fs_format_negotiate(";;,,;=;q=,application/openmetrics-text;q=abc"),
                     FS_FORMAT_TEXT);
    assert_string_equal(fs_format_content_type(FS_FORMAT_TEXT),
                        "text/plain; version=0.0.4; charset=utf-8");
    assert_string_equal(fs_format_content_type(FS_FORMAT_OPENMETRICS),
                        "application/openmetrics-text; version=1.0.0; charset=utf-8");
}

/* ------------------------------------------------------------------------ */
/* Collectors                                                               */

struct log_capture {
    int calls;
    char last[512];
};

static void capture_log(fs_log_level level, const char *component, const char *message, void *user)
{
    (void)level;
    (void)component;
    struct log_capture *c = user;
    c->calls++;
    snprintf(c->last, sizeof c->last, "%s", message);
}

static int half_then_fail(fs_collect_ctx *ctx, void *user)
{
    (void)user;
    fs_collect_family(ctx, "partial", "Partial.", FS_METRIC_GAUGE);
    fs_collect_sample(ctx, 0, NULL, NULL, 1);
    fs__error(FS_EIO, "backend unreachable");
    return FS_EIO;
}

static int bad_label(fs_collect_ctx *ctx, void *user)
{
    (void)user;
    const char *n[] = {"bad-name"}, *v[] = {"x"};
    fs_collect_family(ctx, "badlabel", "B.", FS_METRIC_GAUGE);
    fs_collect_sample(ctx, 1, n, v, 1); /* ignores the error: still dropped */
    return FS_OK;
}

static int good(fs_collect_ctx *ctx, void *user)
{
    int *calls = user;
    (*calls)++;
    const char *n[] = {"topic", "partition"}, *v[] = {"orders", "3"};
    int rc = fs_collect_family(ctx, "lag", "Consumer lag.", FS_METRIC_GAUGE);
    if (rc == FS_OK)
        rc = fs_collect_sample(ctx, 2, n, v, 17);
    return rc;
}

static int misuse(fs_collect_ctx *ctx, void *user)
{
    int *rcs = user;
    rcs[0] = fs_collect_sample(ctx, 0, NULL, NULL, 1);
    rcs[1] = fs_collect_family(ctx, "hist", "H.", FS_METRIC_HISTOGRAM);
    rcs[2] = fs_collect_family(ctx, "bad name", "H.", FS_METRIC_GAUGE);
    rcs[3] = fs_collect_family(ctx, "ok", NULL, FS_METRIC_GAUGE);
    return FS_OK;
}

static void test_collectors(void **state)
{
    (void)state;
    fs_registry *reg;
    assert_int_equal(fs_registry_new(&reg), FS_OK);
    int calls = 0;
    int rcs[4];
    assert_int_equal(fs_registry_add_collector(reg, "good", good, &calls, NULL), FS_OK);
    assert_int_equal(fs_registry_add_collector(reg, "failing", half_then_fail, NULL, NULL), FS_OK);
    assert_int_equal(fs_registry_add_collector(reg, "badlabel", bad_label, NULL, NULL), FS_OK);
    assert_int_equal(fs_registry_add_collector(reg, "misuse", misuse, rcs, NULL), FS_OK);
    fs_gauge *g;
    assert_int_equal(fs_gauge_new(reg, "m_registered", "M.", &g), FS_OK);
    struct log_capture cap = {0};
    fs_set_log_handler(capture_log, &cap);
    char *t = render(reg, FS_FORMAT_TEXT);
    fs_set_log_handler(NULL, NULL);
    assert_int_equal(calls, 1);
    assert_string_equal(t, "# HELP lag Consumer lag.\n# TYPE lag gauge\n"
                           "lag{topic=\"orders\",partition=\"3\"} 17\n"
                           "# HELP m_registered M.\n# TYPE m_registered gauge\nm_registered 0\n");
    assert_int_equal(cap.calls, 3);
    assert_int_equal(rcs[0], FS_ESTATE);
    assert_int_equal(rcs[1], FS_EINVAL);
    assert_int_equal(rcs[2], FS_EINVAL);
    assert_int_equal(rcs[3], FS_EINVAL);
    /* the last log line is the misuse collector's (collectors run in name order) */
    assert_string_equal(cap.last, "collector 'misuse' failed (invalid argument): help of "
                                  "collected metric 'ok' is NULL; its output is dropped");
    free(t);
    /* the failing one says why */
    cap.calls = 0;
    fs_registry_unregister(reg, "misuse");
    fs_registry_unregister(reg, "badlabel");
    fs_set_log_handler(capture_log, &cap);
    t = render(reg, FS_FORMAT_OPENMETRICS);
    fs_set_log_handler(NULL, NULL);
    assert_int_equal(cap.calls, 1);
    assert_string_equal(cap.last, "collector 'failing' failed (I/O error): backend unreachable; "
                                  "its output is dropped");
    assert_null(strstr(t, "partial"));
    assert_non_null(strstr(t, "# TYPE lag gauge\nlag{topic=\"orders\",partition=\"3\"} 17\n"));
    free(t);
    fs_registry_free(reg);
}

static int twice(fs_collect_ctx *ctx, void *user)
{
    (void)user;
    fs_collect_family(ctx, "dup", "D.", FS_METRIC_GAUGE);
    fs_collect_sample(ctx, 0, NULL, NULL, 1);
    return FS_OK;
}

/* Two collectors yielding one family name: the exposition stays valid. */
static void test_collector_duplicate_family_dropped(void **state)
{
    (void)state;
    fs_registry *reg;
    assert_int_equal(fs_registry_new(&reg), FS_OK);
    assert_int_equal(fs_registry_add_collector(reg, "one", twice, NULL, NULL), FS_OK);
    assert_int_equal(fs_registry_add_collector(reg, "two", twice, NULL, NULL), FS_OK);
    struct log_capture cap = {0};
    fs_set_log_handler(capture_log, &cap);
    char *t = render(reg, FS_FORMAT_TEXT);
    fs_set_log_handler(NULL, NULL);
    assert_string_equal(t, "# HELP dup D.\n# TYPE dup gauge\ndup 1\n");
    assert_int_equal(cap.calls, 1);
    free(t);
    fs_registry_free(reg);
}

static int shadowing(fs_collect_ctx *ctx, void *user)
{
    (void)user;
    int rc = fs_collect_family(ctx, "requests_total", "Shadow.", FS_METRIC_GAUGE);
    if (rc == FS_OK)
        rc = fs_collect_sample(ctx, 0, NULL, NULL, 1);
    return rc;
}

/* A collector may not expose a name a registered family exposes. */
static void test_collector_cannot_shadow_a_family(void **state)
{
    (void)state;
    fs_registry *reg;
    assert_int_equal(fs_registry_new(&reg), FS_OK);
    fs_counter *c;
    assert_int_equal(fs_counter_new(reg, "requests", "R.", &c), FS_OK);
    assert_int_equal(fs_registry_add_collector(reg, "shadow", shadowing, NULL, NULL), FS_OK);
    struct log_capture cap = {0};
    fs_set_log_handler(capture_log, &cap);
    char *t = render(reg, FS_FORMAT_TEXT);
    fs_set_log_handler(NULL, NULL);
    assert_string_equal(t, "# HELP requests_total R.\n# TYPE requests_total counter\n"
                           "requests_total 0\n");
    assert_int_equal(cap.calls, 1);
    assert_string_equal(cap.last, "collector 'shadow' failed (conflict): metric 'requests_total' "
                                  "(a gauge) would expose 'requests_total', which counter "
                                  "'requests' already exposes; its output is dropped");
    free(t);
    fs_registry_free(reg);
}

/* ------------------------------------------------------------------------ */
/* Process collector                                                        */

static void test_process_collector(void **state)
{
    (void)state;
    fs_registry *reg;
    assert_int_equal(fs_registry_new(&reg), FS_OK);
    assert_int_equal(fs_process_collector_register(reg), FS_OK);
    assert_int_equal(fs_process_collector_register(reg), FS_ECONFLICT);
    /* burn a little CPU so the counter is visibly positive */
    volatile double x = 0;
    struct timespec t0, t1;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t0);
    do {
        for (int i = 0; i < 100000; i++)
            x += i * 0.5;
        clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t1);
    } while (t1.tv_sec - t0.tv_sec + (t1.tv_nsec - t0.tv_nsec) / 1e9 < 0.05);
    assert_true(x > 0);
    char *t = render(reg, FS_FORMAT_TEXT);
    double now = (double)time(NULL);
    assert_non_null(strstr(t, "# TYPE process_cpu_seconds_total counter\n"));
    /* /proc counts whole clock ticks (10 ms): the figure trails the precise clock a little */
    double cpu = sample_value(t, "process_cpu_seconds_total");
    double precise = (double)t1.tv_sec + (double)t1.tv_nsec / 1e9;
    assert_true(cpu > 0 && cpu <= precise + 0.02 && cpu > precise - 0.1);
    assert_true(sample_value(t, "process_open_fds") >= 3);
    double maxfds = sample_value(t, "process_max_fds");
    assert_true(maxfds >= sample_value(t, "process_open_fds"));
    double rss = sample_value(t, "process_resident_memory_bytes");
    assert_true(rss > 100000);
    assert_true(sample_value(t, "process_virtual_memory_bytes") >= rss);
    double start = sample_value(t, "process_start_time_seconds");
    assert_true(start <= now + 1 && start > now - 86400);
    free(t);
    t = render(reg, FS_FORMAT_OPENMETRICS);
    assert_non_null(strstr(t, "# TYPE process_cpu_seconds counter\nprocess_cpu_seconds_total "));
    free(t);
    fs_registry_free(reg);
}

/* ------------------------------------------------------------------------ */
/* Consistency of histograms and counters in OpenMetrics                    */

static void test_openmetrics_histogram_and_created(void **state)
{
    (void)state;
    fs_registry *reg;
    assert_int_equal(fs_registry_new(&reg), FS_OK);
    double before = (double)time(NULL);
    const double b[] = {0.5, 1};
    fs_histogram *h;
    assert_int_equal(fs_histogram_new(reg, "d_seconds", "D.", b, 2, &h), FS_OK);
    fs_histogram_observe(h, 0.7);
    fs_histogram_observe(h, 0.2);
    fs_histogram_observe(h, 0.7);
    char *t = render(reg, FS_FORMAT_OPENMETRICS);
    assert_true(sample_value(t, "d_seconds_bucket{le=\"0.5\"}") == 1);
    assert_true(sample_value(t, "d_seconds_bucket{le=\"1.0\"}") == 3);
    assert_true(sample_value(t, "d_seconds_bucket{le=\"+Inf\"}") == 3);
    assert_true(sample_value(t, "d_seconds_count") == 3);
    assert_true(sample_value(t, "d_seconds_sum") == 0.7 + 0.2 + 0.7);
    double created = sample_value(t, "d_seconds_created");
    assert_true(created >= before && created < before + 60);
    assert_int_equal(strcmp(t + strlen(t) - 6, "# EOF\n"), 0);
    free(t);
    fs_registry_free(reg);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_golden_text),
        cmocka_unit_test(test_golden_openmetrics),
        cmocka_unit_test(test_render_appends_and_is_deterministic),
        cmocka_unit_test(test_label_values_any_bytes),
        cmocka_unit_test(test_help_escaping),
        cmocka_unit_test(test_values_round_trip_through_render),
        cmocka_unit_test(test_negotiate),
        cmocka_unit_test(test_collectors),
        cmocka_unit_test(test_collector_duplicate_family_dropped),
        cmocka_unit_test(test_collector_cannot_shadow_a_family),
        cmocka_unit_test(test_process_collector),
        cmocka_unit_test(test_openmetrics_histogram_and_created),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
