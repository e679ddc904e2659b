/*
 * The Prometheus middleware limits the series of its families: 10,000 label
 * sets each by default, or what fs_prometheus_options.series_limit says.
 */
#include "metrics_test_util.h"

#include "faststream/faststream.h"
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

/* The custom label: the message's "tenant" header, a new value every message. */
static const char *tenant_of(const fs_message *msg, void *user)
{
    (void)user;
    const char *t = msg ? fs_message_header(msg, "tenant") : NULL;
    return t ? t : "none";
}

static fs_outcome handle(fs_message *msg, void *user)
{
    (void)msg, (void)user;
    return FS_OUTCOME_OK;
}

/* Publish messages n0 .. n1-1, each with its own tenant, and wait until handled. */
static void run_messages(fs_broker *b, fs_subscriber *sub, int n0, int n1)
{
    for (int i = n0; i < n1; i++) {
        char tenant[32];
        snprintf(tenant, sizeof tenant, "tenant-%d", i);
        fs_header h = {"tenant", tenant, 0};
        fs_envelope env = FS_ENVELOPE_INIT;
        env.body = "x";
        env.body_len = 1;
        env.headers = &h;
        env.header_count = 1;
        if (fs_publish(b, "q", &env) != FS_OK)
            fail_msg("fs_publish: %s", fs_last_error());
        if ((i + 1) % 1000 == 0 && fs_subscriber_wait_handled(sub, (uint64_t)i + 1, 10000) != FS_OK)
            fail_msg("message %d not handled", i);
    }
}

/* A custom label with a new value per message: memory stays flat past the limit. */
static void test_memory_flat_through_the_middleware(void **state)
{
    (void)state;
    fs_set_log_handler(quiet, NULL);
    fs_registry *reg;
    assert_int_equal(fs_registry_new(&reg), FS_OK);
    fs_memory_options mo = FS_MEMORY_OPTIONS_INIT;
    fs_broker *b;
    assert_int_equal(fs_memory_broker_new(&mo, &b), FS_OK);
    static const fs_prometheus_label label = {"tenant", NULL, tenant_of, NULL};
    fs_prometheus_options po = FS_PROMETHEUS_OPTIONS_INIT;
    po.registry = reg;
    po.labels = &label;
    po.label_count = 1;
    po.series_limit = 100;
    assert_int_equal(fs_broker_add_prometheus(b, &po), FS_OK);
    fs_subscriber *sub;
    assert_int_equal(fs_subscribe(b, "q", handle, NULL, NULL, &sub), FS_OK);
    assert_int_equal(fs_broker_start(b), FS_OK);
    enum { WARM = 5000, N = 100000 };
    run_messages(b, sub, 0, WARM);
    fs_buffer page = {0};
    assert_int_equal(fs_registry_render(reg, FS_FORMAT_TEXT, &page), FS_OK);
    size_t len0 = page.len;
    page.len = 0;
    size_t at = heap_in_use();
    run_messages(b, sub, WARM, N);
    assert_int_equal(fs_registry_render(reg, FS_FORMAT_TEXT, &page), FS_OK);
    size_t end = heap_in_use();
    /* nothing per new value past the limit (slack for the allocator and the page) */
    if (end > at + 256 * 1024)
        fail_msg("heap grew from %zu to %zu bytes over %d messages with new label values", at, end,
                 N - WARM);
    assert_true(page.len < len0 + 4096);
    assert_non_null(strstr(page.data, "tenant=\"__overflow__\""));
    fs_buffer_free(&page);
    fs_broker_free(b);
    fs_registry_free(reg);
    fs_set_log_handler(NULL, NULL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_default_and_option),
        cmocka_unit_test(test_memory_flat_through_the_middleware),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
