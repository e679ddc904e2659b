/*
 * The Prometheus middleware limits the series of its families: 10,000 label
 * sets each by default, or what fs_prometheus_options.series_limit says.
 */
#include "metrics_test_util.h"

#include "faststream/prometheus.h"

static const char *const LABELS[] = {"app_name", "broker", "handler"};

/* The received-messages family the middleware registered in `reg`. */
static fs_counter_family *received(fs_registry *reg)
{
    fs_counter_family *fam;
    assert_int_equal(fs_counter_family_new(reg, "faststream_received_messages_total",
                                           "Count of received messages by broker and handler", 3,
                                           LABELS, &fam),
                     FS_OK);
    return fam;
}

static fs_counter *child(fs_counter_family *fam, int i)
{
    char h[32];
    snprintf(h, sizeof h, "topic-%d", i);
    const char *v[] = {"svc", "memory", h};
    return fs_counter_family_labels(fam, v);
}

/* How many label sets `fam` takes before they share its overflow child (at most `most`). */
static int label_sets_before_overflow(fs_counter_family *fam, int most)
{
    fs_counter *prev = child(fam, 0);
    for (int i = 1; i <= most; i++) {
        fs_counter *c = child(fam, i);
        if (c == prev)
            return i - 1;
        prev = c;
    }
    return most;
}

static void quiet(fs_log_level level, const char *component, const char *message, void *user)
{
    (void)level, (void)component, (void)message, (void)user;
}

static void check_limit(size_t option, int want)
{
    fs_registry *reg;
    assert_int_equal(fs_registry_new(&reg), FS_OK);
    fs_prometheus_options o = FS_PROMETHEUS_OPTIONS_INIT;
    o.registry = reg;
    o.series_limit = option;
    fs_middleware mw;
    assert_int_equal(fs_prometheus_middleware_new(&o, &mw), FS_OK);
    assert_int_equal(label_sets_before_overflow(received(reg), 20000), want);
    fs_prometheus_middleware_release(&mw);
    fs_registry_free(reg);
}

static void test_default_and_option(void **state)
{
    (void)state;
    fs_set_log_handler(quiet, NULL);
    check_limit(0, FS_PROMETHEUS_SERIES_LIMIT);
    check_limit(5, 5);
    check_limit(FS_SERIES_LIMIT_REGISTRY, 20000); /* the registry's default: none */
    fs_set_log_handler(NULL, NULL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_default_and_option),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
