/*
 * The opt-in backlog family: off by default; on, one gauge per subscription
 * with what the broker says waits for it; several brokers on one registry;
 * a broker's series go with it; a broker that cannot tell is left out; a
 * slow broker is given no more than the scrape's time budget and shows its
 * last answer, or nothing, afterwards.
 */
#include "scrape.h"

#include "faststream/adapter.h"
#include "faststream/faststream.h"
#include "faststream/memory.h"
#include "faststream/prometheus.h"

#include <unistd.h>

#define BACKLOG "faststream_received_messages_backlog"

static fs_outcome ok_handler(fs_message *m, void *user)
{
    (void)m;
    (void)user;
    return FS_OUTCOME_OK;
}

static fs_broker *memory_with(fs_registry *reg, bool backlog, const char *app)
{
    fs_broker *b = NULL;
    assert_int_equal(fs_broker_new("memory://", NULL, &b), FS_OK);
    fs_prometheus_options po = FS_PROMETHEUS_OPTIONS_INIT;
    po.registry = reg;
    po.app_name = app;
    po.backlog = backlog;
    po.backlog_cache_ms = 1;
    assert_int_equal(fs_broker_add_prometheus(b, &po), FS_OK);
    return b;
}

static void test_off_by_default(void **state)
{
    (void)state;
    fs_registry *reg = NULL;
    assert_int_equal(fs_registry_new(&reg), FS_OK);
    fs_broker *b = memory_with(reg, false, "a");
    assert_int_equal(fs_subscribe(b, "q", ok_handler, NULL, NULL, NULL), FS_OK);
    assert_int_equal(fs_publish_bytes(b, "q", "x", 1), FS_OK);
    scrape s;
    scrape_take(&s, reg);
    assert_null(strstr(s.text, BACKLOG));
    scrape_free(&s);
    fs_broker_free(b);
    fs_registry_free(reg);
}

static void test_queue_depth(void **state)
{
    (void)state;
    fs_registry *reg = NULL;
    assert_int_equal(fs_registry_new(&reg), FS_OK);
    fs_broker *a = memory_with(reg, true, "a");
    fs_broker *b = memory_with(reg, true, "b");
    fs_subscriber *sa = NULL;
    assert_int_equal(fs_subscribe(a, "orders", ok_handler, NULL, NULL, &sa), FS_OK);
    assert_int_equal(fs_subscribe(b, "trades", ok_handler, NULL, NULL, NULL), FS_OK);
    for (int i = 0; i < 5; i++)
        assert_int_equal(fs_publish_bytes(a, "orders", "x", 1), FS_OK);
    assert_int_equal(fs_publish_bytes(b, "trades", "y", 1), FS_OK);

    scrape s;
    scrape_take(&s, reg);
    expect_sample(&s, BACKLOG, "app_name=\"a\",broker=\"memory\",handler=\"orders\"", 5);
    expect_sample(&s, BACKLOG, "app_name=\"b\",broker=\"memory\",handler=\"trades\"", 1);
    scrape_free(&s);

    /* Consumed: back to 0 once the cached answer is older than backlog_cache_ms. */
    assert_int_equal(fs_broker_start(a), FS_OK);
    assert_int_equal(fs_subscriber_wait_handled(sa, 5, 10000), FS_OK);
    for (int tries = 0;; tries++) {
        scrape_take(&s, reg);
        double v = scrape_value(&s, BACKLOG, "app_name=\"a\",broker=\"memory\",handler=\"orders\"");
        scrape_free(&s);
        if (v == 0)
            break;
        assert_true(tries < 1000);
        usleep(2000);
    }

    /* A freed broker's series go with it; the other's stay. */
    fs_broker_free(b);
    scrape_take(&s, reg);
    assert_null(strstr(s.text, BACKLOG "{app_name=\"b\""));
    assert_non_null(strstr(s.text, BACKLOG "{app_name=\"a\""));
    scrape_free(&s);
    fs_broker_free(a);
    scrape_take(&s, reg);
    assert_null(strstr(s.text, BACKLOG "{"));
    scrape_free(&s);
    fs_registry_free(reg);
}

/* A fake adapter whose backlog never answers in time, recording the budget it was given. */
static int slow_budget = -1, slow_calls;
static int slow_subscribe(void *impl, fs_subscribe_spec *spec, void **sub_out)
{
    (void)impl;
    (void)spec;
    *sub_out = &slow_calls;
    return FS_OK;
}
static int slow_fetch(void *impl, void *sub, unsigned worker, int timeout_ms, fs_message **out)
{
    (void)impl;
    (void)sub;
    (void)worker;
    (void)timeout_ms;
    (void)out;
    return FS_ETIMEDOUT;
}
static int slow_publish(void *impl, void *dest, const char *destination, const fs_envelope *msgs,
                        size_t count, const char **error_type)
{
    (void)impl, (void)dest, (void)destination, (void)msgs, (void)count, (void)error_type;
    return FS_OK;
}
static int slow_backlog(void *impl, void *sub, int timeout_ms, uint64_t *out)
{
    (void)impl;
    (void)sub;
    (void)out;
    slow_calls++;
    if (timeout_ms > slow_budget)
        slow_budget = timeout_ms;
    return fs_adapter_error(FS_ETIMEDOUT, "slow: no answer within %d ms", timeout_ms);
}
static const fs_broker_ops SLOW_OPS = {
    .abi_version = FS_ADAPTER_ABI_VERSION,
    .struct_size = sizeof(fs_broker_ops),
    .name = "slow",
    .default_ack_policy = FS_ACK_POLICY_ACK,
    .caps = FS_CAP_BACKLOG,
    .subscribe = slow_subscribe,
    .fetch = slow_fetch,
    .publish = slow_publish,
    .backlog = slow_backlog,
};
static const fs_broker_ops MUTE_OPS = {
    .abi_version = FS_ADAPTER_ABI_VERSION,
    .struct_size = sizeof(fs_broker_ops),
    .name = "mute",
    .default_ack_policy = FS_ACK_POLICY_ACK,
    .subscribe = slow_subscribe,
    .fetch = slow_fetch,
    .publish = slow_publish,
};

static void test_slow_and_mute_brokers(void **state)
{
    (void)state;
    static int impl;
    fs_registry *reg = NULL;
    assert_int_equal(fs_registry_new(&reg), FS_OK);
    fs_broker *slow = NULL, *mute = NULL;
    assert_int_equal(fs_broker_create(&SLOW_OPS, &impl, "slow://", NULL, &slow), FS_OK);
    assert_int_equal(fs_broker_create(&MUTE_OPS, &impl, "mute://", NULL, &mute), FS_OK);
    fs_prometheus_options po = FS_PROMETHEUS_OPTIONS_INIT;
    po.registry = reg;
    po.backlog = true;
    po.backlog_timeout_ms = 40;
    assert_int_equal(fs_broker_add_prometheus(slow, &po), FS_OK);
    assert_int_equal(fs_broker_add_prometheus(mute, &po), FS_OK);
    assert_int_equal(fs_subscribe(slow, "s1", ok_handler, NULL, NULL, NULL), FS_OK);
    assert_int_equal(fs_subscribe(slow, "s2", ok_handler, NULL, NULL, NULL), FS_OK);
    assert_int_equal(fs_subscribe(mute, "m1", ok_handler, NULL, NULL, NULL), FS_OK);
    scrape s;
    scrape_take(&s, reg);
    /* Never answered: no sample; the page still renders (the nine families are there). */
    assert_null(strstr(s.text, BACKLOG "{"));
    assert_non_null(strstr(s.text, "# TYPE " BACKLOG " gauge"));
    scrape_free(&s);
    assert_true(slow_calls >= 1);
    assert_in_range(slow_budget, 1, 40); /* never more than the scrape's budget */
    fs_broker_free(slow);
    fs_broker_free(mute);
    fs_registry_free(reg);
}

static void test_bad_options(void **state)
{
    (void)state;
    fs_broker *b = NULL;
    assert_int_equal(fs_broker_new("memory://", NULL, &b), FS_OK);
    fs_prometheus_options po = FS_PROMETHEUS_OPTIONS_INIT;
    po.backlog = true;
    po.backlog_timeout_ms = -1;
    assert_int_equal(fs_broker_add_prometheus(b, &po), FS_EINVAL);
    assert_non_null(strstr(fs_last_error(), "backlog_timeout_ms"));
    fs_broker_free(b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_off_by_default),
        cmocka_unit_test(test_queue_depth),
        cmocka_unit_test(test_slow_and_mute_brokers),
        cmocka_unit_test(test_bad_options),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
