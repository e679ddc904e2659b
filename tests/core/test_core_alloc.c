/*
 * No allocation per message in the steady state, in-process broker: after a
 * warm-up, 100,000 messages published and consumed through a subscriber
 * with the Prometheus middleware must not allocate at all (every thread,
 * every allocator entry point: tests/support/alloc_count.h).
 */
#include "core_test.h"
#include "label_adapter.h"
#include "support/alloc_count.h"

#include "faststream/prometheus.h"

#define MESSAGES 100000
#define CHUNK 1000

static fs_outcome ok(fs_message *m, void *user)
{
    (void)m;
    (void)user;
    return FS_OUTCOME_OK;
}

/* Publish `n` messages in chunks the queue holds, waiting for each chunk to be handled. */
static void pump(fs_broker *b, fs_subscriber *sub, uint64_t *done, unsigned n)
{
    for (unsigned sent = 0; sent < n; sent += CHUNK) {
        for (unsigned i = 0; i < CHUNK; i++)
            if (fs_publish_bytes(b, "steady", "0123456789abcdef", 16) != FS_OK)
                fail_msg("publish: %s", fs_last_error());
        *done += CHUNK;
        if (fs_subscriber_wait_handled(sub, *done, WAIT_MS) != FS_OK)
            fail_msg("handled %llu of %llu", (unsigned long long)fs_subscriber_handled(sub),
                     (unsigned long long)*done);
    }
}

static void test_memory_steady_state_allocates_nothing(void **state)
{
    (void)state;
    fs_registry *reg;
    CHECK_OK(fs_registry_new(&reg));
    fs_broker *b = memory_broker(4 * CHUNK, false);
    fs_prometheus_options po = FS_PROMETHEUS_OPTIONS_INIT;
    po.registry = reg;
    CHECK_OK(fs_broker_add_prometheus(b, &po));
    fs_subscriber_options so = FS_SUBSCRIBER_OPTIONS_INIT;
    so.concurrency = 2;
    fs_subscriber *sub;
    CHECK_OK(fs_subscribe(b, "steady", ok, NULL, &so, &sub));
    CHECK_OK(fs_broker_start(b));
    uint64_t done = 0;
    pump(b, sub, &done, 5 * CHUNK); /* warm-up: metric children, caches, thread-locals */

    alloc_begin();
    pump(b, sub, &done, MESSAGES);
    unsigned long n = alloc_end();
    if (n) {
        alloc_print_stacks(stdout);
        fail_msg("%lu allocations for %d messages in the steady state (%.3f per message)", n,
                 MESSAGES, (double)n / MESSAGES);
    }
    fs_broker_free(b);
    fs_registry_free(reg);
}

/* Publish through a publisher and plain fs_publish, both labelled by the adapter. */
static void pump_labelled(fs_broker *b, fs_publisher *pub, const lbl_options *o, unsigned n)
{
    fs_envelope e = FS_ENVELOPE_INIT;
    e.body = "0123456789abcdef";
    e.body_len = 16;
    e.broker_options = o;
    for (unsigned i = 0; i < n; i++)
        if (fs_publisher_publish_bytes(pub, "0123456789abcdef", 16) != FS_OK ||
            fs_publish(b, "steady", &e) != FS_OK)
            fail_msg("publish: %s", fs_last_error());
}

/* The destination label (ops->destination_label) costs no allocation per publish either. */
static void test_destination_label_allocates_nothing(void **state)
{
    (void)state;
    fs_registry *reg;
    lbl_adapter a;
    fs_publisher *pub;
    fs_broker *b = lbl_metered(&a, "steady", &reg, &pub);
    pump_labelled(b, pub, &lbl_shop, CHUNK); /* warm-up */

    alloc_begin();
    pump_labelled(b, pub, &lbl_shop, MESSAGES / 2);
    unsigned long n = alloc_end();
    if (n) {
        alloc_print_stacks(stdout);
        fail_msg("%lu allocations for %d labelled publishes (%.3f per publish)", n, MESSAGES,
                 (double)n / MESSAGES);
    }
    assert_int_equal(atomic_load(&a.label_calls), 1 + CHUNK + MESSAGES / 2);
    fs_publisher_free(pub);
    fs_broker_free(b);
    fs_registry_free(reg);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_memory_steady_state_allocates_nothing),
        cmocka_unit_test(test_destination_label_allocates_nothing),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
