/* Metric types, label families, validation and registry semantics. */
#include "metrics_test_util.h"

#include <math.h>
#include <pthread.h>
#include <time.h>

#include "metrics/metrics_internal.h"

static int setup_reg(void **state)
{
    fs_registry *reg;
    if (fs_registry_new(&reg) != FS_OK)
        return -1;
    *state = reg;
    return 0;
}

static int teardown_reg(void **state)
{
    fs_registry_free(*state);
    return 0;
}

/* ------------------------------------------------------------------------ */
/* Counters                                                                 */

static void test_counter_inc_add_value(void **state)
{
    fs_registry *reg = *state;
    fs_counter *c;
    assert_int_equal(fs_counter_new(reg, "jobs_total", "Jobs.", &c), FS_OK);
    assert_non_null(c);
    assert_true(fs_counter_value(c) == 0);
    fs_counter_inc(c);
    fs_counter_inc(c);
    assert_int_equal(fs_counter_add(c, 5), FS_OK);
    assert_true(fs_counter_value(c) == 7);
    assert_int_equal(fs_counter_add(c, 0.25), FS_OK);
    assert_int_equal(fs_counter_add(c, 0), FS_OK);
    assert_true(fs_counter_value(c) == 7.25);
    assert_int_equal(fs_counter_add(c, 1e20), FS_OK); /* beyond the integer part */
    assert_true(fs_counter_value(c) == 1e20 + 7.25);
    assert_int_equal(fs_counter_add(c, INFINITY), FS_OK);
    assert_true(isinf(fs_counter_value(c)));
}

static void test_counter_refuses_decrease_and_nan(void **state)
{
    fs_registry *reg = *state;
    fs_counter *c;
    assert_int_equal(fs_counter_new(reg, "jobs", "Jobs.", &c), FS_OK);
    assert_int_equal(fs_counter_add(c, -1), FS_EINVAL);
    assert_string_equal(fs_last_error(), "counter 'jobs' cannot decrease: refusing to add -1");
    assert_int_equal(fs_counter_add(c, NAN), FS_EINVAL);
    assert_string_equal(fs_last_error(), "counter 'jobs': cannot add NaN");
    assert_int_equal(fs_counter_add(NULL, 1), FS_EINVAL);
    assert_string_equal(fs_last_error(), "fs_counter_add: counter is NULL");
    assert_true(fs_counter_value(c) == 0);
    /* NULL handles are ignored by the void updaters and read as 0 */
    fs_counter_inc(NULL);
    assert_true(fs_counter_value(NULL) == 0);
}

/* ------------------------------------------------------------------------ */
/* Gauges                                                                   */

static double fixed_now(void)
{
    return 1700000000.5;
}

static void test_gauge_operations(void **state)
{
    fs_registry *reg = *state;
    fs_gauge *g;
    assert_int_equal(fs_gauge_new(reg, "in_flight", "In flight.", &g), FS_OK);
    fs_gauge_inc(g);
    fs_gauge_inc(g);
    fs_gauge_dec(g);
    assert_true(fs_gauge_value(g) == 1);
    fs_gauge_add(g, 2.5);
    fs_gauge_sub(g, 0.5);
    assert_true(fs_gauge_value(g) == 3);
    fs_gauge_set(g, -0.1);
    assert_true(fs_gauge_value(g) == -0.1);
    fs_gauge_set(g, 0.1 + 0.2); /* set is exact */
    assert_true(fs_gauge_value(g) == 0.1 + 0.2);

    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    fs_gauge_set_to_current_time(g);
    double v = fs_gauge_value(g);
    assert_true(v >= (double)ts.tv_sec && v < (double)ts.tv_sec + 5);

    fs__metrics_set_time_source(fixed_now);
    fs_gauge_set_to_current_time(g);
    fs__metrics_set_time_source(NULL);
    assert_true(fs_gauge_value(g) == 1700000000.5);

    fs_gauge_inc(NULL);
    fs_gauge_set(NULL, 1);
    assert_true(fs_gauge_value(NULL) == 0);
}

/* ------------------------------------------------------------------------ */
/* Histograms                                                               */

static void test_histogram_observe(void **state)
{
    fs_registry *reg = *state;
    const double b[] = {1, 2, 5};
    fs_histogram *h;
    assert_int_equal(fs_histogram_new(reg, "size", "Size.", b, 3, &h), FS_OK);
    fs_histogram_observe(h, 0.5);
    fs_histogram_observe(h, 1); /* le is inclusive */
    fs_histogram_observe(h, 4);
    fs_histogram_observe(h, 100);
    assert_int_equal(fs_histogram_count(h), 4);
    assert_true(fs_histogram_sum(h) == 105.5);
    char *t = render(reg, FS_FORMAT_TEXT);
    assert_true(sample_value(t, "size_bucket{le=\"1\"}") == 2);
    assert_true(sample_value(t, "size_bucket{le=\"2\"}") == 2);
    assert_true(sample_value(t, "size_bucket{le=\"5\"}") == 3);
    assert_true(sample_value(t, "size_bucket{le=\"+Inf\"}") == 4);
    assert_true(sample_value(t, "size_count") == 4);
    assert_true(sample_value(t, "size_sum") == 105.5);
    free(t);
    fs_histogram_observe(NULL, 1);
    assert_int_equal(fs_histogram_count(NULL), 0);
}

/* Observations counted elsewhere, added per bucket; the bounds read back. */
static void test_histogram_add_counts(void **state)
{
    fs_registry *reg = *state;
    const double b[] = {1, 2, 5, INFINITY}; /* a given +Inf is dropped */
    fs_histogram_family *fam;
    const char *lbl[] = {"k"};
    assert_int_equal(fs_histogram_family_new(reg, "lat", "Lat.", 1, lbl, b, 4, &fam), FS_OK);
    size_t n = 99;
    const double *bounds = fs_histogram_family_bounds(fam, &n);
    assert_int_equal(n, 3);
    assert_true(bounds[0] == 1 && bounds[1] == 2 && bounds[2] == 5);
    assert_null(fs_histogram_family_bounds(NULL, &n));
    assert_int_equal(n, 0);

    const char *v[] = {"x"};
    fs_histogram *h = fs_histogram_family_labels(fam, v);
    assert_non_null(h);
    fs_histogram_observe(h, 1.5);
    const uint64_t counts[] = {2, 0, 1, 3}; /* <=1, <=2, <=5, +Inf */
    assert_int_equal(fs_histogram_add(h, counts, 4, 20.0), FS_OK);
    assert_int_equal(fs_histogram_count(h), 7);
    assert_true(fs_histogram_sum(h) == 21.5);
    char *t = render(reg, FS_FORMAT_TEXT);
    assert_true(sample_value(t, "lat_bucket{k=\"x\",le=\"1\"}") == 2);
    assert_true(sample_value(t, "lat_bucket{k=\"x\",le=\"2\"}") == 3);
    assert_true(sample_value(t, "lat_bucket{k=\"x\",le=\"5\"}") == 4);
    assert_true(sample_value(t, "lat_bucket{k=\"x\",le=\"+Inf\"}") == 7);
    assert_true(sample_value(t, "lat_count{k=\"x\"}") == 7);
    free(t);

    /* bad arguments: a clear error, nothing added */
    assert_int_equal(fs_histogram_add(NULL, counts, 4, 1), FS_EINVAL);
    assert_int_equal(fs_histogram_add(h, NULL, 4, 1), FS_EINVAL);
    assert_int_equal(fs_histogram_add(h, counts, 3, 1), FS_EINVAL);
    assert_non_null(strstr(fs_last_error(), "3 counts given for a histogram of 4 buckets"));
    assert_int_equal(fs_histogram_count(h), 7);
}

/* Added counts from several threads (the shards and the shared cell) all arrive. */
typedef struct add_arg {
    fs_histogram *h;
    int rounds;
} add_arg;

static void *add_thread(void *p)
{
    add_arg *a = p;
    const uint64_t counts[] = {1, 1, 1, 1};
    for (int i = 0; i < a->rounds; i++)
        fs_histogram_add(a->h, counts, 4, 1.0);
    return NULL;
}

static void test_histogram_add_threads(void **state)
{
    fs_registry *reg = *state;
    const double b[] = {1, 2, 5};
    fs_histogram *h;
    assert_int_equal(fs_histogram_new(reg, "adds", "Adds.", b, 3, &h), FS_OK);
    pthread_t t[4];
    add_arg a = {h, 2000};
    for (int i = 0; i < 4; i++)
        assert_int_equal(pthread_create(&t[i], NULL, add_thread, &a), 0);
    for (int i = 0; i < 4; i++)
        pthread_join(t[i], NULL);
    assert_int_equal(fs_histogram_count(h), 4 * 2000 * 4);
    assert_true(fs_histogram_sum(h) == 4 * 2000);
    char *t2 = render(reg, FS_FORMAT_TEXT);
    assert_true(sample_value(t2, "adds_bucket{le=\"1\"}") == 8000);
    assert_true(sample_value(t2, "adds_bucket{le=\"+Inf\"}") == 32000);
    free(t2);
}

static void test_histogram_default_and_explicit_inf_buckets(void **state)
{
    fs_registry *reg = *state;
    fs_histogram_family *a, *b;
    assert_int_equal(fs_histogram_family_new(reg, "d1", "D.", 0, NULL, NULL, 0, &a), FS_OK);
    assert_int_equal(a->f.nbuckets, FS_DEFAULT_BUCKETS_COUNT);
    assert_true(a->f.buckets[0] == 0.005 && a->f.buckets[13] == 10);
    const double withinf[] = {0.5, 1, INFINITY};
    assert_int_equal(fs_histogram_family_new(reg, "d2", "D.", 0, NULL, withinf, 3, &b), FS_OK);
    assert_int_equal(b->f.nbuckets, 2);
    char *t = render(reg, FS_FORMAT_TEXT);
    assert_non_null(strstr(t, "d2_bucket{le=\"1\"} 0\nd2_bucket{le=\"+Inf\"} 0\n"));
    free(t);
}

/* Many buckets use a binary search: it must agree with a linear scan. */
static void test_histogram_many_buckets(void **state)
{
    fs_registry *reg = *state;
    double b[40];
    assert_int_equal(fs_buckets_linear(1, 1, 40, b), FS_OK);
    fs_histogram *h;
    assert_int_equal(fs_histogram_new(reg, "many", "Many.", b, 40, &h), FS_OK);
    for (int i = 0; i <= 84; i++)
        fs_histogram_observe(h, i * 0.5); /* 0, 0.5, ... 42 */
    char *t = render(reg, FS_FORMAT_TEXT);
    for (int k = 1; k <= 40; k++) {
        char series[64];
        snprintf(series, sizeof series, "many_bucket{le=\"%d\"}", k);
        /* observations <= k: 0, 0.5, ..., k -> 2k + 1 */
        assert_true(sample_value(t, series) == 2 * k + 1);
    }
    assert_true(sample_value(t, "many_bucket{le=\"+Inf\"}") == 85);
    free(t);
}

static void test_histogram_bucket_validation(void **state)
{
    fs_registry *reg = *state;
    fs_histogram *h;
    const double dec[] = {1, 2, 2};
    assert_int_equal(fs_histogram_new(reg, "h", "H.", dec, 3, &h), FS_EINVAL);
    assert_null(h);
    assert_string_equal(fs_last_error(),
                        "buckets of histogram 'h' must be strictly increasing: bucket 2 (2) "
                        "follows 2");
    const double nan[] = {1, NAN};
    assert_int_equal(fs_histogram_new(reg, "h", "H.", nan, 2, &h), FS_EINVAL);
    assert_string_equal(fs_last_error(), "bucket 1 of histogram 'h' is NaN");
    const double inf[] = {1, INFINITY, 3};
    assert_int_equal(fs_histogram_new(reg, "h", "H.", inf, 3, &h), FS_EINVAL);
    assert_string_equal(fs_last_error(),
                        "bucket 1 of histogram 'h' is infinite: only a last +Inf is accepted (and "
                        "implied)");
    assert_int_equal(fs_histogram_new(reg, "h", "H.", NULL, 3, &h), FS_EINVAL);
    assert_string_equal(fs_last_error(), "buckets of histogram 'h' are NULL (count 3)");
    assert_false(fs_registry_contains(reg, "h"));
}

static void test_bucket_helpers(void **state)
{
    (void)state;
    double b[4];
    assert_int_equal(fs_buckets_linear(0.5, 0.25, 4, b), FS_OK);
    assert_true(b[0] == 0.5 && b[1] == 0.75 && b[2] == 1.0 && b[3] == 1.25);
    assert_int_equal(fs_buckets_exponential(16, 4, 4, b), FS_OK);
    assert_true(b[0] == 16 && b[1] == 64 && b[2] == 256 && b[3] == 1024);
    assert_int_equal(fs_buckets_linear(0, 1, 0, b), FS_EINVAL);
    assert_string_equal(fs_last_error(), "fs_buckets_linear: count must be at least 1");
    assert_int_equal(fs_buckets_linear(0, 0, 3, b), FS_EINVAL);
    assert_string_equal(fs_last_error(), "fs_buckets_linear: width must be > 0, not 0");
    assert_int_equal(fs_buckets_exponential(0, 2, 3, b), FS_EINVAL);
    assert_string_equal(fs_last_error(), "fs_buckets_exponential: start must be > 0, not 0");
    assert_int_equal(fs_buckets_exponential(1, 1, 3, b), FS_EINVAL);
    assert_string_equal(fs_last_error(), "fs_buckets_exponential: factor must be > 1, not 1");
    assert_int_equal(fs_buckets_exponential(1, 2, 3, NULL), FS_EINVAL);
    /* bounds that overflow or stop increasing are refused */
    static double big[2000];
    assert_int_equal(fs_buckets_exponential(1, 10, 2000, big), FS_EINVAL);
    assert_string_equal(fs_last_error(),
                        "fs_buckets_exponential: bound 309 overflows (it would be infinite)");
    assert_int_equal(fs_buckets_exponential(1, 10, 309, big), FS_OK);
    assert_true(isfinite(big[308]));
    assert_int_equal(fs_buckets_linear(1e308, 1e308, 3, big), FS_EINVAL);
    assert_string_equal(fs_last_error(),
                        "fs_buckets_linear: bound 1 overflows (it would be infinite)");
    assert_int_equal(fs_buckets_linear(1e20, 1, 3, b), FS_EINVAL);
    assert_non_null(strstr(fs_last_error(), "must increase"));
}

/* The bucket a value lands in, for bounds of every shape: as a plain scan says. */
static void test_bucket_choice(void **state)
{
    fs_registry *reg = *state;
    double lin[40], mixed[] = {-5, -1, -0.5, 0, 1e-300, 0.001, 0.5, 1, 2, 2.5, 3, 4, 1e300};
    for (int i = 0; i < 40; i++)
        lin[i] = 64 + i; /* 40 bounds in one binade: a binary search */
    struct {
        const double *b;
        size_t n;
    } sets[] = {{FS_DEFAULT_BUCKETS, FS_DEFAULT_BUCKETS_COUNT}, {lin, 40}, {mixed, 13}};
    const double probes[] = {-INFINITY, -10,    -5,     -4.9,   -1,      -0.7,     -0.5,  -0.0,
                             0,         1e-310, 1e-300, 0.0005, 0.001,   0.004,    0.005, 0.0051,
                             0.5,       0.75,   1,      1.5,    2,       2.25,     2.5,   3,
                             3.5,       4,      10,     63,     64,      64.5,     65,    80,
                             103,       103.5,  104,    1e300,  1.5e300, INFINITY, NAN};
    enum { NP = sizeof probes / sizeof probes[0] };
    const char *ln[] = {"p"};
    for (size_t k = 0; k < sizeof sets / sizeof sets[0]; k++) {
        char name[32];
        snprintf(name, sizeof name, "choice%zu", k);
        fs_histogram_family *fam;
        assert_int_equal(
            fs_histogram_family_new(reg, name, "C.", 1, ln, sets[k].b, sets[k].n, &fam), FS_OK);
        for (size_t p = 0; p < NP; p++) {
            char pv[8];
            snprintf(pv, sizeof pv, "%02zu", p);
            const char *v[] = {pv};
            fs_histogram_observe(fs_histogram_family_labels(fam, v), probes[p]);
        }
        char *t = render(reg, FS_FORMAT_TEXT);
        for (size_t p = 0; p < NP; p++) {
            size_t want = 0;
            while (want < sets[k].n && !(probes[p] <= sets[k].b[want]))
                want++;
            char prefix[64];
            snprintf(prefix, sizeof prefix, "\n%s_bucket{p=\"%02zu\",", name, p);
            const char *line = strstr(t, prefix);
            assert_non_null(line);
            size_t got = 0;
            while (line && strncmp(line, prefix, strlen(prefix)) == 0 &&
                   strtod(strchr(line, '}') + 2, NULL) == 0) {
                got++;
                line = strchr(line + 1, '\n');
            }
            if (got != want)
                fail_msg("bounds set %zu: %g went to bucket %zu, not %zu", k, probes[p], got, want);
        }
        free(t);
    }
}

/* ------------------------------------------------------------------------ */
/* Label families                                                           */

static const char *const LABELS3[] = {"app_name", "broker", "handler"};

static void test_labels_lookup_returns_same_child(void **state)
{
    fs_registry *reg = *state;
    fs_counter_family *fam;
    assert_int_equal(fs_counter_family_new(reg, "msgs_total", "Msgs.", 3, LABELS3, &fam), FS_OK);
    const char *v1[] = {"app", "kafka", "orders"};
    const char *v1copy[] = {strdup("app"), strdup("kafka"), strdup("orders")};
    const char *v2[] = {"app", "kafka", "payments"};
    fs_counter *a = fs_counter_family_labels(fam, v1);
    fs_counter *b = fs_counter_family_labels(fam, v1copy);
    fs_counter *c = fs_counter_family_labels(fam, v2);
    assert_non_null(a);
    assert_ptr_equal(a, b);
    assert_ptr_not_equal(a, c);
    fs_counter_inc(a);
    fs_counter_inc(b);
    fs_counter_add(c, 5);
    char *t = render(reg, FS_FORMAT_TEXT);
    assert_true(
        sample_value(t, "msgs_total{app_name=\"app\",broker=\"kafka\",handler=\"orders\"}") == 2);
    assert_true(
        sample_value(t, "msgs_total{app_name=\"app\",broker=\"kafka\",handler=\"payments\"}") == 5);
    free(t);
    for (int i = 0; i < 3; i++)
        free((void *)v1copy[i]);
}

/* Values are compared with their lengths: no separator can make two sets collide. */
static void test_labels_no_separator_collisions(void **state)
{
    fs_registry *reg = *state;
    const char *names[] = {"a", "b"};
    fs_gauge_family *fam;
    assert_int_equal(fs_gauge_family_new(reg, "g", "G.", 2, names, &fam), FS_OK);
    const char *x[] = {"a", "bc"}, *y[] = {"ab", "c"}, *z[] = {"", "abc"}, *w[] = {"abc", ""};
    fs_gauge *gx = fs_gauge_family_labels(fam, x), *gy = fs_gauge_family_labels(fam, y);
    fs_gauge *gz = fs_gauge_family_labels(fam, z), *gw = fs_gauge_family_labels(fam, w);
    assert_ptr_not_equal(gx, gy);
    assert_ptr_not_equal(gz, gw);
    assert_ptr_not_equal(gx, gz);
    assert_ptr_equal(fs_gauge_family_labels(fam, w), gw);
    assert_int_equal(atomic_load(&fam->f.nlive), 4);
}

static void test_labels_null_values_refused(void **state)
{
    fs_registry *reg = *state;
    fs_counter_family *fam;
    assert_int_equal(fs_counter_family_new(reg, "m", "M.", 3, LABELS3, &fam), FS_OK);
    assert_null(fs_counter_family_labels(fam, NULL));
    assert_string_equal(fs_last_error(), "label values for metric 'm' are NULL (it has 3 labels)");
    const char *v[] = {"a", NULL, "c"};
    assert_null(fs_counter_family_labels(fam, v));
    assert_string_equal(fs_last_error(), "label value 1 ('broker') of metric 'm' is NULL");
    assert_null(fs_counter_family_labels(NULL, v));
    assert_string_equal(fs_last_error(), "metric family is NULL");
    assert_int_equal(fs_counter_family_remove(fam, v), FS_EINVAL);
}

static void test_labels_remove_and_recreate(void **state)
{
    fs_registry *reg = *state;
    fs_counter_family *fam;
    assert_int_equal(fs_counter_family_new(reg, "r_total", "R.", 3, LABELS3, &fam), FS_OK);
    const char *v[] = {"a", "b", "c"};
    fs_counter *old = fs_counter_family_labels(fam, v);
    fs_counter_add(old, 3);
    assert_int_equal(fs_counter_family_remove(fam, v), FS_OK);
    char *t = render(reg, FS_FORMAT_TEXT);
    assert_false(has_series(t, "r_total{app_name=\"a\",broker=\"b\",handler=\"c\"}"));
    free(t);
    /* the kept handle stays usable, invisibly */
    fs_counter_inc(old);
    assert_true(fs_counter_value(old) == 4);
    assert_int_equal(fs_counter_family_remove(fam, v), FS_ENOTFOUND);
    assert_string_equal(fs_last_error(), "metric 'r' has no child with those label values");
    fs_counter *fresh = fs_counter_family_labels(fam, v);
    assert_ptr_not_equal(fresh, old);
    assert_true(fs_counter_value(fresh) == 0);
    t = render(reg, FS_FORMAT_TEXT);
    assert_true(sample_value(t, "r_total{app_name=\"a\",broker=\"b\",handler=\"c\"}") == 0);
    free(t);
}

static void test_labels_clear(void **state)
{
    fs_registry *reg = *state;
    const char *names[] = {"k"};
    fs_histogram_family *fam;
    assert_int_equal(fs_histogram_family_new(reg, "lat", "L.", 1, names, NULL, 0, &fam), FS_OK);
    const char *a[] = {"a"}, *b[] = {"b"};
    fs_histogram *ha = fs_histogram_family_labels(fam, a);
    fs_histogram_observe(ha, 1);
    fs_histogram_observe(fs_histogram_family_labels(fam, b), 1);
    fs_histogram_family_clear(fam);
    char *t = render(reg, FS_FORMAT_TEXT);
    assert_null(strstr(t, "lat_bucket"));
    assert_non_null(strstr(t, "# TYPE lat histogram\n"));
    free(t);
    fs_histogram_observe(ha, 1); /* still valid */
    assert_int_equal(fs_histogram_count(ha), 2);
    assert_int_equal(fs_histogram_count(fs_histogram_family_labels(fam, a)), 0);
    fs_histogram_family_clear(NULL);
}

static void test_unlabelled_family(void **state)
{
    fs_registry *reg = *state;
    fs_gauge_family *fam;
    assert_int_equal(fs_gauge_family_new(reg, "solo", "S.", 0, NULL, &fam), FS_OK);
    fs_gauge *g = fs_gauge_family_labels(fam, NULL);
    assert_non_null(g);
    fs_gauge *g2;
    assert_int_equal(fs_gauge_new(reg, "solo", "S.", &g2), FS_OK);
    assert_ptr_equal(g, g2);
    assert_int_equal(fs_gauge_family_remove(fam, NULL), FS_EINVAL);
    assert_string_equal(fs_last_error(), "metric 'solo' has no labels: nothing to remove");
    fs_gauge_family_clear(fam); /* no-op */
    assert_ptr_equal(fs_gauge_family_labels(fam, NULL), g);
}

/* Enough children to grow the table several times, with removals in between. */
static void test_labels_many_children(void **state)
{
    fs_registry *reg = *state;
    const char *names[] = {"i", "j"};
    fs_counter_family *fam;
    assert_int_equal(fs_counter_family_new(reg, "many", "M.", 2, names, &fam), FS_OK);
    enum { N = 3000 };
    static fs_counter *kept[N];
    for (int i = 0; i < N; i++) {
        char a[16], b[16];
        snprintf(a, sizeof a, "%d", i);
        snprintf(b, sizeof b, "x%d", i % 7);
        const char *v[] = {a, b};
        kept[i] = fs_counter_family_labels(fam, v);
        assert_non_null(kept[i]);
        fs_counter_add(kept[i], i);
        if (i % 3 == 0)
            assert_int_equal(fs_counter_family_remove(fam, v), FS_OK);
    }
    assert_int_equal(atomic_load(&fam->f.nlive), N - N / 3);
    for (int i = 0; i < N; i++) {
        char a[16], b[16];
        snprintf(a, sizeof a, "%d", i);
        snprintf(b, sizeof b, "x%d", i % 7);
        const char *v[] = {a, b};
        fs_counter *c = fs_counter_family_labels(fam, v);
        if (i % 3 == 0) {
            assert_ptr_not_equal(c, kept[i]);
            assert_true(fs_counter_value(c) == 0);
        } else {
            assert_ptr_equal(c, kept[i]);
            assert_true(fs_counter_value(c) == i);
        }
    }
    /* children come out sorted by label values (bytewise) */
    char *t = render(reg, FS_FORMAT_TEXT);
    const char *p0 = strstr(t, "many_total{i=\"0\",j=\"x0\"}");
    const char *p1 = strstr(t, "many_total{i=\"1\",j=\"x1\"}");
    const char *p10 = strstr(t, "many_total{i=\"10\",j=\"x3\"}");
    const char *p2 = strstr(t, "many_total{i=\"2\",j=\"x2\"}");
    assert_true(p0 && p1 && p10 && p2);
    assert_true(p0 < p1 && p1 < p10 && p10 < p2);
    free(t);
}

/* The render order depends on the label values only: not on the order of
 * creation, nor on the scrapes made in between (each sorts the new ones in). */
static void test_render_order_independent_of_creation(void **state)
{
    (void)state;
    enum { N = 2000 };
    char *pages[2];
    for (int run = 0; run < 2; run++) {
        fs_registry *reg;
        assert_int_equal(fs_registry_new(&reg), FS_OK);
        const char *names[] = {"a", "b"};
        fs_counter_family *fam;
        assert_int_equal(fs_counter_family_new(reg, "ord_total", "O.", 2, names, &fam), FS_OK);
        for (int k = 0; k < N; k++) {
            int i = run ? (k * 7919) % N : k; /* another order in the second run */
            char a[16], b[16];
            snprintf(a, sizeof a, "%d", i % 37);
            snprintf(b, sizeof b, "v%d", i);
            const char *v[] = {a, b};
            fs_counter_inc(fs_counter_family_labels(fam, v));
            if (run && k % 301 == 0)
                free(render(reg, FS_FORMAT_TEXT)); /* merges what is pending so far */
            if (i % 10 == 3)
                assert_int_equal(fs_counter_family_remove(fam, v), FS_OK);
        }
        pages[run] = render(reg, FS_FORMAT_TEXT);
        fs_registry_free(reg);
    }
    assert_string_equal(pages[0], pages[1]);
    /* and sorted: value by value, bytewise */
    const char *prev = NULL;
    int lines = 0;
    for (const char *p = strstr(pages[0], "\nord_total{"); p; p = strstr(p + 1, "\nord_total{")) {
        if (prev)
            assert_true(strcmp(prev, p) < 0 || strncmp(prev, p, strcspn(prev, "}")) < 0);
        prev = p;
        lines++;
    }
    assert_int_equal(lines, N - N / 10);
    free(pages[0]);
    free(pages[1]);
}

/* ------------------------------------------------------------------------ */
/* Validation                                                               */

static void test_name_validity(void **state)
{
    (void)state;
    assert_true(fs_metric_name_valid("a"));
    assert_true(fs_metric_name_valid("_a:b_9"));
    assert_true(fs_metric_name_valid(":x"));
    assert_false(fs_metric_name_valid(""));
    assert_false(fs_metric_name_valid(NULL));
    assert_false(fs_metric_name_valid("9a"));
    assert_false(fs_metric_name_valid("a-b"));
    assert_false(fs_metric_name_valid("a b"));
    assert_false(fs_metric_name_valid("é"));
    assert_true(fs_label_name_valid("a_9"));
    assert_true(fs_label_name_valid("_a"));
    assert_false(fs_label_name_valid("__a"));
    assert_false(fs_label_name_valid("a:b"));
    assert_false(fs_label_name_valid("1a"));
    assert_false(fs_label_name_valid(""));
    assert_false(fs_label_name_valid(NULL));
}

static void expect_counter_fails(fs_registry *reg, const char *name, const char *help, size_t n,
                                 const char *const *labels, const char *msg)
{
    fs_counter_family *fam = (void *)1;
    assert_int_equal(fs_counter_family_new(reg, name, help, n, labels, &fam), FS_EINVAL);
    assert_null(fam);
    assert_string_equal(fs_last_error(), msg);
}

static void test_registration_validation(void **state)
{
    fs_registry *reg = *state;
    expect_counter_fails(reg, NULL, "h", 0, NULL, "metric name is NULL");
    expect_counter_fails(reg, "a-b", "h", 0, NULL,
                         "invalid metric name 'a-b': it must match [a-zA-Z_:][a-zA-Z0-9_:]*");
    expect_counter_fails(reg, "x", NULL, 0, NULL, "help of metric 'x' is NULL");
    const char *bad[] = {"ok", "no-dash"};
    expect_counter_fails(reg, "x", "h", 2, bad,
                         "invalid label name 'no-dash' for metric 'x': it must match "
                         "[a-zA-Z_][a-zA-Z0-9_]*");
    const char *reserved[] = {"__name__"};
    expect_counter_fails(reg, "x", "h", 1, reserved,
                         "label name '__name__' for metric 'x' is reserved: names starting with "
                         "'__' are for Prometheus' internal use");
    const char *quantile[] = {"quantile"};
    expect_counter_fails(reg, "x", "h", 1, quantile,
                         "label name 'quantile' for metric 'x' is reserved for summary quantiles");
    const char *dup[] = {"a", "b", "a"};
    expect_counter_fails(reg, "x", "h", 3, dup, "duplicate label name 'a' for metric 'x'");
    const char *nul[] = {"a", NULL};
    expect_counter_fails(reg, "x", "h", 2, nul, "label name 1 of metric 'x' is NULL");
    expect_counter_fails(reg, "x", "h", 2, NULL, "label names of metric 'x' are NULL (count 2)");
    const char *many[FS_MAX_LABELS + 1];
    char bufs[FS_MAX_LABELS + 1][8];
    for (int i = 0; i <= FS_MAX_LABELS; i++) {
        snprintf(bufs[i], sizeof bufs[i], "l%d", i);
        many[i] = bufs[i];
    }
    expect_counter_fails(reg, "x", "h", FS_MAX_LABELS + 1, many,
                         "metric 'x' has 33 label names, at most 32 are allowed");
    /* le: refused on histograms only */
    const char *le[] = {"le"};
    fs_histogram_family *hf;
    assert_int_equal(fs_histogram_family_new(reg, "hx", "h", 1, le, NULL, 0, &hf), FS_EINVAL);
    assert_string_equal(fs_last_error(),
                        "label name 'le' for histogram 'hx' is reserved for bucket bounds");
    fs_counter_family *cf;
    assert_int_equal(fs_counter_family_new(reg, "cx", "h", 1, le, &cf), FS_OK);
    assert_int_equal(fs_counter_family_new(reg, "cy", "h", 0, NULL, NULL), FS_EINVAL);
    assert_string_equal(fs_last_error(), "creating metric 'cy': out is NULL");
    assert_false(fs_registry_contains(reg, "x"));
}

/* ------------------------------------------------------------------------ */
/* Registry                                                                 */

static void test_reregistration_shares_family(void **state)
{
    fs_registry *reg = *state;
    fs_counter_family *a, *b, *c;
    assert_int_equal(fs_counter_family_new(reg, "shared_total", "S.", 3, LABELS3, &a), FS_OK);
    assert_int_equal(fs_counter_family_new(reg, "shared_total", "S.", 3, LABELS3, &b), FS_OK);
    assert_int_equal(fs_counter_family_new(reg, "shared", "S.", 3, LABELS3, &c), FS_OK);
    assert_ptr_equal(a, b);
    assert_ptr_equal(a, c);
    const double bk[] = {1, 2};
    fs_histogram_family *h1, *h2;
    assert_int_equal(fs_histogram_family_new(reg, "hh", "H.", 0, NULL, bk, 2, &h1), FS_OK);
    assert_int_equal(fs_histogram_family_new(reg, "hh", "H.", 0, NULL, bk, 2, &h2), FS_OK);
    assert_ptr_equal(h1, h2);
    /* default buckets given explicitly are the same as none */
    fs_histogram_family *d1, *d2;
    assert_int_equal(fs_histogram_family_new(reg, "dd", "D.", 0, NULL, NULL, 0, &d1), FS_OK);
    assert_int_equal(fs_histogram_family_new(reg, "dd", "D.", 0, NULL, FS_DEFAULT_BUCKETS,
                                             FS_DEFAULT_BUCKETS_COUNT, &d2),
                     FS_OK);
    assert_ptr_equal(d1, d2);
}

static void test_reregistration_conflicts(void **state)
{
    fs_registry *reg = *state;
    const char *ab[] = {"a", "b"}, *ac[] = {"a", "c"};
    fs_counter_family *cf;
    fs_gauge_family *gf;
    fs_histogram_family *hf;
    assert_int_equal(fs_counter_family_new(reg, "x", "X.", 2, ab, &cf), FS_OK);

    assert_int_equal(fs_gauge_family_new(reg, "x", "X.", 2, ab, &gf), FS_ECONFLICT);
    assert_null(gf);
    assert_string_equal(fs_last_error(), "metric 'x' already registered as a counter, not a gauge");
    assert_int_equal(fs_counter_family_new(reg, "x", "Other.", 2, ab, &cf), FS_ECONFLICT);
    assert_string_equal(fs_last_error(),
                        "metric 'x' already registered with help \"X.\", not \"Other.\"");
    assert_int_equal(fs_counter_family_new(reg, "x_total", "X.", 2, ac, &cf), FS_ECONFLICT);
    assert_string_equal(fs_last_error(),
                        "metric 'x_total' already registered with labels (a,b), not (a,c)");
    assert_int_equal(fs_counter_family_new(reg, "x", "X.", 1, ab, &cf), FS_ECONFLICT);
    assert_string_equal(fs_last_error(),
                        "metric 'x' already registered with labels (a,b), not (a)");

    const double b1[] = {1, 2}, b2[] = {1, 2.5, 1e6};
    assert_int_equal(fs_histogram_family_new(reg, "h", "H.", 0, NULL, b1, 2, &hf), FS_OK);
    assert_int_equal(fs_histogram_family_new(reg, "h", "H.", 0, NULL, b2, 3, &hf), FS_ECONFLICT);
    assert_string_equal(fs_last_error(),
                        "histogram 'h' already registered with buckets (1,2), not (1,2.5,1e+06)");

    /* names that would expose the same samples */
    assert_int_equal(fs_gauge_family_new(reg, "x_total", "G.", 0, NULL, &gf), FS_ECONFLICT);
    assert_string_equal(fs_last_error(), "metric 'x_total' (a gauge) would expose 'x_total', which "
                                         "counter 'x' already exposes");
    assert_int_equal(fs_gauge_family_new(reg, "h_count", "G.", 0, NULL, &gf), FS_ECONFLICT);
    assert_string_equal(fs_last_error(), "metric 'h_count' (a gauge) would expose 'h_count', "
                                         "which histogram 'h' already exposes");
    fs_gauge *g;
    assert_int_equal(fs_gauge_new(reg, "y_sum", "G.", &g), FS_OK);
    assert_int_equal(fs_histogram_family_new(reg, "y", "H.", 0, NULL, NULL, 0, &hf), FS_ECONFLICT);
    assert_string_equal(fs_last_error(), "metric 'y' (a histogram) would expose 'y_sum', which "
                                         "gauge 'y_sum' already exposes");
    assert_int_equal(fs_info_new(reg, "x", "I.", 0, NULL, NULL), FS_ECONFLICT);
    assert_string_equal(fs_last_error(), "metric 'x' already registered as a counter, not an info");
}

static int noop_collect(fs_collect_ctx *ctx, void *user)
{
    (void)ctx;
    (void)user;
    return FS_OK;
}

static void count_free(void *user)
{
    (*(int *)user)++;
}

static void test_unregister_and_contains(void **state)
{
    fs_registry *reg = *state;
    fs_counter *c;
    assert_int_equal(fs_counter_new(reg, "gone_total", "G.", &c), FS_OK);
    const char *n[] = {"v"}, *v[] = {"1"};
    assert_int_equal(fs_info_new(reg, "build", "B.", 1, n, v), FS_OK);
    int freed = 0;
    assert_int_equal(fs_registry_add_collector(reg, "mine", noop_collect, &freed, count_free),
                     FS_OK);
    assert_true(fs_registry_contains(reg, "gone"));
    assert_true(fs_registry_contains(reg, "gone_total"));
    assert_true(fs_registry_contains(reg, "build_info"));
    assert_true(fs_registry_contains(reg, "mine"));
    assert_false(fs_registry_contains(reg, "other"));
    assert_false(fs_registry_contains(reg, NULL));

    assert_int_equal(fs_registry_unregister(reg, "gone_total"), FS_OK);
    assert_false(fs_registry_contains(reg, "gone"));
    fs_counter_inc(c); /* the handle stays valid */
    char *t = render(reg, FS_FORMAT_TEXT);
    assert_null(strstr(t, "gone"));
    free(t);
    assert_int_equal(fs_registry_unregister(reg, "build_info"), FS_OK);
    assert_int_equal(fs_registry_unregister(reg, "mine"), FS_OK);
    assert_int_equal(freed, 1);
    assert_int_equal(fs_registry_unregister(reg, "mine"), FS_ENOTFOUND);
    assert_string_equal(fs_last_error(), "no metric or collector called 'mine' is registered");
    assert_int_equal(fs_registry_unregister(reg, NULL), FS_EINVAL);
    /* the name is free again, for any type */
    fs_gauge *g;
    assert_int_equal(fs_gauge_new(reg, "gone", "Now a gauge.", &g), FS_OK);
}

static void test_collector_name_conflicts(void **state)
{
    fs_registry *reg = *state;
    fs_gauge *g;
    assert_int_equal(fs_gauge_new(reg, "busy", "B.", &g), FS_OK);
    assert_int_equal(fs_registry_add_collector(reg, "busy", noop_collect, NULL, NULL),
                     FS_ECONFLICT);
    assert_string_equal(fs_last_error(), "collector 'busy': a metric called 'busy' is registered");
    assert_int_equal(fs_registry_add_collector(reg, "col", noop_collect, NULL, NULL), FS_OK);
    assert_int_equal(fs_registry_add_collector(reg, "col", noop_collect, NULL, NULL), FS_ECONFLICT);
    assert_string_equal(fs_last_error(), "a collector called 'col' is already registered");
    assert_int_equal(fs_gauge_new(reg, "col", "C.", &g), FS_ECONFLICT);
    assert_string_equal(fs_last_error(), "metric 'col': a collector called 'col' is registered");
    assert_int_equal(fs_registry_add_collector(reg, "nofn", NULL, NULL, NULL), FS_EINVAL);
    assert_string_equal(fs_last_error(), "collector 'nofn' has no callback");
    assert_int_equal(fs_registry_add_collector(reg, NULL, noop_collect, NULL, NULL), FS_EINVAL);
}

static void test_registry_free_calls_free_user(void **state)
{
    (void)state;
    fs_registry *reg;
    assert_int_equal(fs_registry_new(&reg), FS_OK);
    int freed = 0;
    assert_int_equal(fs_registry_add_collector(reg, "c", noop_collect, &freed, count_free), FS_OK);
    fs_registry_free(reg);
    assert_int_equal(freed, 1);
    fs_registry_free(NULL);
    assert_int_equal(fs_registry_new(NULL), FS_EINVAL);
}

static void test_default_registry(void **state)
{
    (void)state;
    fs_registry *d = fs_registry_default();
    assert_non_null(d);
    assert_ptr_equal(d, fs_registry_default());
    assert_true(fs_registry_contains(NULL, "process"));
    fs_counter *c;
    assert_int_equal(fs_counter_new(NULL, "test_default_total", "In the default registry.", &c),
                     FS_OK);
    fs_counter_inc(c);
    fs_registry_free(d); /* ignored: the default registry lives until exit */
    char *t = render(NULL, FS_FORMAT_TEXT);
    assert_true(sample_value(t, "test_default_total") == 1);
    assert_true(has_series(t, "process_open_fds"));
    free(t);
    assert_int_equal(fs_registry_unregister(NULL, "test_default"), FS_OK);
}

static void test_info_metric(void **state)
{
    fs_registry *reg = *state;
    const char *n[] = {"version", "commit"}, *v[] = {"1.2.3", "abc\"def"};
    assert_int_equal(fs_info_new(reg, "app", "App info.", 2, n, v), FS_OK);
    assert_int_equal(fs_info_new(reg, "app", "App info.", 2, n, v), FS_OK);
    const char *v2[] = {"1.2.4", "abc"};
    assert_int_equal(fs_info_new(reg, "app", "App info.", 2, n, v2), FS_ECONFLICT);
    assert_string_equal(
        fs_last_error(),
        "info metric 'app' already registered with version=\"1.2.3\", not \"1.2.4\"");
    const char *vnull[] = {"1", NULL};
    assert_int_equal(fs_info_new(reg, "app2", "I.", 2, n, vnull), FS_EINVAL);
    assert_string_equal(fs_last_error(), "label value 1 ('commit') of info metric 'app2' is NULL");
    assert_int_equal(fs_info_new(reg, "app3", "I.", 2, n, NULL), FS_EINVAL);
    assert_string_equal(fs_last_error(), "label values of info metric 'app3' are NULL");

    char *t = render(reg, FS_FORMAT_TEXT);
    assert_string_equal(t, "# HELP app_info App info.\n# TYPE app_info gauge\n"
                           "app_info{version=\"1.2.3\",commit=\"abc\\\"def\"} 1\n");
    free(t);
    t = render(reg, FS_FORMAT_OPENMETRICS);
    assert_string_equal(t, "# HELP app App info.\n# TYPE app info\n"
                           "app_info{version=\"1.2.3\",commit=\"abc\\\"def\"} 1\n# EOF\n");
    free(t);
}

static int registering_collector(fs_collect_ctx *ctx, void *user)
{
    (void)ctx;
    fs_counter *c;
    int *rc = user;
    *rc = fs_counter_new(NULL, "from_collector", "C.", &c);
    return FS_OK;
}

static void test_no_registration_from_collector(void **state)
{
    fs_registry *reg = *state;
    int rc = 0;
    assert_int_equal(fs_registry_add_collector(reg, "reg", registering_collector, &rc, NULL),
                     FS_OK);
    char *t = render(reg, FS_FORMAT_TEXT);
    free(t);
    assert_int_equal(rc, FS_ESTATE);
    assert_string_equal(fs_last_error(),
                        "cannot register metric 'from_collector' from a collector callback");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_counter_inc_add_value, setup_reg, teardown_reg),
        cmocka_unit_test_setup_teardown(test_counter_refuses_decrease_and_nan, setup_reg,
                                        teardown_reg),
        cmocka_unit_test_setup_teardown(test_gauge_operations, setup_reg, teardown_reg),
        cmocka_unit_test_setup_teardown(test_histogram_observe, setup_reg, teardown_reg),
        cmocka_unit_test_setup_teardown(test_histogram_add_counts, setup_reg, teardown_reg),
        cmocka_unit_test_setup_teardown(test_histogram_add_threads, setup_reg, teardown_reg),
        cmocka_unit_test_setup_teardown(test_histogram_default_and_explicit_inf_buckets, setup_reg,
                                        teardown_reg),
        cmocka_unit_test_setup_teardown(test_histogram_many_buckets, setup_reg, teardown_reg),
        cmocka_unit_test_setup_teardown(test_histogram_bucket_validation, setup_reg, teardown_reg),
        cmocka_unit_test(test_bucket_helpers),
        cmocka_unit_test_setup_teardown(test_bucket_choice, setup_reg, teardown_reg),
        cmocka_unit_test_setup_teardown(test_labels_lookup_returns_same_child, setup_reg,
                                        teardown_reg),
        cmocka_unit_test_setup_teardown(test_labels_no_separator_collisions, setup_reg,
                                        teardown_reg),
        cmocka_unit_test_setup_teardown(test_labels_null_values_refused, setup_reg, teardown_reg),
        cmocka_unit_test_setup_teardown(test_labels_remove_and_recreate, setup_reg, teardown_reg),
        cmocka_unit_test_setup_teardown(test_labels_clear, setup_reg, teardown_reg),
        cmocka_unit_test_setup_teardown(test_unlabelled_family, setup_reg, teardown_reg),
        cmocka_unit_test_setup_teardown(test_labels_many_children, setup_reg, teardown_reg),
        cmocka_unit_test(test_render_order_independent_of_creation),
        cmocka_unit_test(test_name_validity),
        cmocka_unit_test_setup_teardown(test_registration_validation, setup_reg, teardown_reg),
        cmocka_unit_test_setup_teardown(test_reregistration_shares_family, setup_reg, teardown_reg),
        cmocka_unit_test_setup_teardown(test_reregistration_conflicts, setup_reg, teardown_reg),
        cmocka_unit_test_setup_teardown(test_unregister_and_contains, setup_reg, teardown_reg),
        cmocka_unit_test_setup_teardown(test_collector_name_conflicts, setup_reg, teardown_reg),
        cmocka_unit_test(test_registry_free_calls_free_user),
        cmocka_unit_test(test_default_registry),
        cmocka_unit_test_setup_teardown(test_info_metric, setup_reg, teardown_reg),
        cmocka_unit_test_setup_teardown(test_no_registration_from_collector, setup_reg,
                                        teardown_reg),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
