/*
 * The cardinality guard: a family past its series limit sends the updates
 * of new label sets to one overflow child, counts them exactly, warns once,
 * and keeps its memory flat whatever the number of distinct values.
 */
#include "metrics_test_util.h"

#include "metrics/metrics_internal.h"

static int warnings;
static char last_warning[512];

static void capture_log(fs_log_level level, const char *component, const char *message, void *user)
{
    (void)component;
    (void)user;
    if (level == FS_LOG_WARN && strstr(message, "limit")) {
        warnings++;
        snprintf(last_warning, sizeof last_warning, "%s", message);
    }
}

static int setup(void **state)
{
    fs_registry *reg;
    assert_int_equal(fs_registry_new(&reg), FS_OK);
    warnings = 0;
    fs_set_log_handler(capture_log, NULL);
    *state = reg;
    return 0;
}

static int teardown(void **state)
{
    fs_set_log_handler(NULL, NULL);
    fs_registry_free(*state);
    return 0;
}

static const char *const NAMES[] = {"app_name", "handler"};

static fs_counter *counter_for(fs_counter_family *fam, int i)
{
    char h[32];
    snprintf(h, sizeof h, "h%d", i);
    const char *v[] = {"app", h};
    return fs_counter_family_labels(fam, v);
}

/* Past the limit: one overflow child, exact accounting, one warning. */
static void test_family_limit(void **state)
{
    fs_registry *reg = *state;
    fs_counter_family *fam;
    assert_int_equal(fs_counter_family_new(reg, "req_total", "R.", 2, NAMES, &fam), FS_OK);
    assert_int_equal(fs_counter_family_set_series_limit(fam, 3), FS_OK);
    fs_counter *kept[3];
    for (int i = 0; i < 3; i++) {
        kept[i] = counter_for(fam, i);
        assert_non_null(kept[i]);
        fs_counter_inc(kept[i]);
    }
    fs_counter *over = counter_for(fam, 3);
    assert_non_null(over);
    for (int i = 4; i < 100; i++)
        assert_ptr_equal(counter_for(fam, i), over);
    /* existing label sets still get their own child */
    for (int i = 0; i < 3; i++)
        assert_ptr_equal(counter_for(fam, i), kept[i]);
    /* 97 label sets over the limit, updated 1, 2, ... times: every update counts */
    double total = 0;
    uint64_t updates = 0;
    for (int i = 3; i < 100; i++)
        for (int k = 0; k <= i % 3; k++) {
            fs_counter_inc(counter_for(fam, i));
            total += 1;
            updates++;
        }
    assert_int_equal(fs_counter_add(over, 2.5), FS_OK);
    total += 2.5;
    updates++;
    assert_true(fs_counter_value(over) == total);
    assert_int_equal(warnings, 1);
    assert_non_null(strstr(last_warning, "req"));
    assert_non_null(strstr(last_warning, "3"));

    char *t = render(reg, FS_FORMAT_TEXT);
    assert_true(sample_value(t, "req_total{app_name=\"__overflow__\",handler=\"__overflow__\"}") ==
                total);
    assert_true(sample_value(t, "metrics_series_overflow_updates_total{metric=\"req\"}") ==
                (double)updates);
    assert_true(sample_value(t, "req_total{app_name=\"app\",handler=\"h0\"}") == 1);
    assert_false(has_series(t, "req_total{app_name=\"app\",handler=\"h3\"}"));
    free(t);
    t = render(reg, FS_FORMAT_OPENMETRICS);
    assert_true(sample_value(t, "metrics_series_overflow_updates_total{metric=\"req\"}") ==
                (double)updates);
    free(t);
    assert_int_equal(warnings, 1);
}

/* The overflow label set is reserved: below the limit too, it is the overflow child. */
static void test_overflow_values_reserved(void **state)
{
    fs_registry *reg = *state;
    fs_counter_family *fam;
    assert_int_equal(fs_counter_family_new(reg, "res_total", "R.", 2, NAMES, &fam), FS_OK);
    assert_int_equal(fs_counter_family_set_series_limit(fam, 2), FS_OK);
    const char *over[] = {"__overflow__", "__overflow__"};
    fs_counter *o = fs_counter_family_labels(fam, over);
    fs_counter_inc(o);
    assert_int_equal(atomic_load(&fam->f.nlive), 0); /* not one of the 2 */
    fs_counter_inc(counter_for(fam, 0));
    fs_counter_inc(counter_for(fam, 1));
    assert_ptr_equal(counter_for(fam, 2), o);
    fs_counter_inc(counter_for(fam, 2));
    assert_true(fs_counter_value(o) == 2);
    assert_int_equal(atomic_load(&fam->f.redirected), 2);
    assert_int_equal(warnings, 1); /* for label set 2, not for the direct lookup */
}

/* The registry's default applies to families without their own limit. */
static void test_registry_default(void **state)
{
    fs_registry *reg = *state;
    assert_int_equal(fs_registry_series_limit(reg), 0);
    assert_int_equal(fs_registry_set_series_limit(reg, FS_SERIES_LIMIT_REGISTRY), FS_EINVAL);
    fs_counter_family *a, *b;
    assert_int_equal(fs_counter_family_new(reg, "a_total", "A.", 2, NAMES, &a), FS_OK);
    assert_int_equal(fs_registry_set_series_limit(reg, 2), FS_OK);
    assert_int_equal(fs_counter_family_new(reg, "b_total", "B.", 2, NAMES, &b), FS_OK);
    assert_int_equal(fs_counter_family_set_series_limit(b, 0), FS_OK); /* b: none */
    for (int i = 0; i < 10; i++) {
        fs_counter_inc(counter_for(a, i));
        fs_counter_inc(counter_for(b, i));
    }
    assert_int_equal(atomic_load(&a->f.nlive), 2);
    assert_int_equal(atomic_load(&b->f.nlive), 10);
    /* back to the registry's default: existing label sets stay, new ones overflow */
    assert_int_equal(fs_counter_family_set_series_limit(b, FS_SERIES_LIMIT_REGISTRY), FS_OK);
    assert_ptr_equal(counter_for(b, 5), counter_for(b, 5));
    fs_counter *bo = counter_for(b, 10);
    assert_ptr_equal(counter_for(b, 11), bo);
    assert_int_equal(warnings, 2);
    char *t = render(reg, FS_FORMAT_TEXT);
    assert_true(sample_value(t, "a_total{app_name=\"__overflow__\",handler=\"__overflow__\"}") ==
                8);
    assert_true(sample_value(t, "metrics_series_overflow_updates_total{metric=\"a\"}") == 8);
    assert_true(sample_value(t, "metrics_series_overflow_updates_total{metric=\"b\"}") == 0);
    free(t);
    /* unlabelled families have no limit to set */
    fs_counter *single;
    assert_int_equal(fs_counter_new(reg, "single_total", "S.", &single), FS_OK);
    fs_counter_family *bad = NULL;
    assert_int_equal(fs_counter_family_set_series_limit(bad, 1), FS_EINVAL);
}

/* Gauges and histograms overflow the same way; clearing starts afresh. */
static void test_gauge_histogram_and_clear(void **state)
{
    fs_registry *reg = *state;
    const char *ln[] = {"k"};
    fs_gauge_family *g;
    fs_histogram_family *h;
    assert_int_equal(fs_gauge_family_new(reg, "g", "G.", 1, ln, &g), FS_OK);
    assert_int_equal(fs_histogram_family_new(reg, "h_seconds", "H.", 1, ln, NULL, 0, &h), FS_OK);
    assert_int_equal(fs_gauge_family_set_series_limit(g, 1), FS_OK);
    assert_int_equal(fs_histogram_family_set_series_limit(h, 1), FS_OK);
    const char *x[] = {"x"}, *y[] = {"y"}, *z[] = {"z"};
    fs_gauge_set(fs_gauge_family_labels(g, x), 1);
    fs_gauge_inc(fs_gauge_family_labels(g, y));
    fs_gauge_inc(fs_gauge_family_labels(g, z));
    fs_histogram_observe(fs_histogram_family_labels(h, x), 0.5);
    fs_histogram_observe(fs_histogram_family_labels(h, y), 0.5);
    fs_histogram_observe(fs_histogram_family_labels(h, z), 20);
    char *t = render(reg, FS_FORMAT_TEXT);
    assert_true(sample_value(t, "g{k=\"__overflow__\"}") == 2);
    assert_true(sample_value(t, "h_seconds_count{k=\"__overflow__\"}") == 2);
    assert_true(sample_value(t, "h_seconds_sum{k=\"__overflow__\"}") == 20.5);
    assert_true(sample_value(t, "metrics_series_overflow_updates_total{metric=\"g\"}") == 2);
    assert_true(sample_value(t, "metrics_series_overflow_updates_total{metric=\"h_seconds\"}") ==
                2);
    free(t);
    fs_gauge_family_clear(g);
    fs_gauge *gy = fs_gauge_family_labels(g, y);
    fs_gauge_set(gy, 7);
    assert_ptr_not_equal(fs_gauge_family_labels(g, z), gy); /* the new overflow child */
    t = render(reg, FS_FORMAT_TEXT);
    assert_true(sample_value(t, "g{k=\"y\"}") == 7);
    assert_false(has_series(t, "g{k=\"x\"}"));
    free(t);
}

/* A million distinct values past the limit: memory stays flat. */
static void test_memory_flat(void **state)
{
    fs_registry *reg = *state;
    fs_counter_family *fam;
    assert_int_equal(fs_counter_family_new(reg, "flat_total", "F.", 2, NAMES, &fam), FS_OK);
    assert_int_equal(fs_counter_family_set_series_limit(fam, 1000), FS_OK);
    enum { N = 1000000 };
    size_t at = 0;
    for (int i = 0; i < N; i++) {
        fs_counter_inc(counter_for(fam, i));
        if (i == 10000) {
            char *t = render(reg, FS_FORMAT_TEXT);
            free(t);
            at = heap_in_use();
        }
    }
    char *t = render(reg, FS_FORMAT_TEXT);
    size_t text = strlen(t);
    free(t);
    size_t end = heap_in_use();
    /* nothing per label set past the limit (a little slack for the allocator) */
    if (end > at + 64 * 1024)
        fail_msg("heap grew from %zu to %zu bytes over %d label sets past the limit", at, end,
                 N - 10000);
    assert_true(text < 1001 * 200);
    fs_counter *over = counter_for(fam, N);
    assert_true(fs_counter_value(over) == N - 1000);
    assert_int_equal(atomic_load(&fam->f.redirected), N - 1000);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_family_limit, setup, teardown),
        cmocka_unit_test_setup_teardown(test_overflow_values_reserved, setup, teardown),
        cmocka_unit_test_setup_teardown(test_registry_default, setup, teardown),
        cmocka_unit_test_setup_teardown(test_gauge_histogram_and_clear, setup, teardown),
        cmocka_unit_test_setup_teardown(test_memory_flat, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
