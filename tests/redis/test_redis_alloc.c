/*
 * No allocation per message in the steady state, Redis: after a warm-up,
 * 100,000 messages published (fs_publish) and consumed by a subscriber with
 * the Prometheus middleware, on a list and on a stream read by a group,
 * counting every allocation of every thread (tests/support/alloc_count.h):
 * at most HIGH_WATER in all (pools reaching a new high-water mark), never
 * a number that grows with the messages. The sites are printed.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "redis_test.h"
#include "support/alloc_count.h"

#include "faststream/prometheus.h"

#define MESSAGES 100000
#define CHUNK 1000
#define BATCH 100 /* messages per publish: the consuming side is what is measured */
#define WAIT_MS 30000
#define EARLY 10000 /* a run that allocates per message stops after this many messages */
/*
 * Allocations tolerated in the whole window, whatever the message count: a
 * record or reply pool reaching a new high-water mark (a reply bigger than
 * any seen in the warm-up, two workers racing) is not "per message". Every
 * one is printed with its call stack all the same.
 */
#define HIGH_WATER 16

static fs_outcome ok(fs_message *m, void *user)
{
    (void)m;
    (void)user;
    return FS_OUTCOME_OK;
}

/*
 * Publish `n` messages in batches of BATCH, waiting for each chunk of CHUNK to
 * be handled. With `stop_early`, stop once EARLY messages went through with
 * allocations seen (a failing run then costs seconds, not minutes); returns
 * the messages that went through.
 */
static unsigned pump(fs_broker *b, const char *dest, const fs_envelope *env, fs_subscriber *sub,
                     uint64_t *done, unsigned n, bool stop_early)
{
    unsigned sent = 0;
    while (sent < n) {
        for (unsigned i = 0; i < CHUNK; i += BATCH)
            if (fs_publish_batch(b, dest, env, BATCH) != FS_OK)
                fail_msg("publish: %s", fs_last_error());
        *done += CHUNK;
        sent += CHUNK;
        if (fs_subscriber_wait_handled(sub, *done, WAIT_MS) != FS_OK)
            fail_msg("handled %llu of %llu", (unsigned long long)fs_subscriber_handled(sub),
                     (unsigned long long)*done);
        if (stop_early && sent >= EARLY && alloc_so_far() > HIGH_WATER)
            break;
    }
    return sent;
}

static void steady_state(fs_redis_kind kind, const char *what)
{
    char name[64];
    rt_key(name, sizeof name, what);
    fs_registry *reg;
    assert_int_equal(fs_registry_new(&reg), FS_OK);
    fs_broker *b = rt_broker();
    fs_prometheus_options po = FS_PROMETHEUS_OPTIONS_INIT;
    po.registry = reg;
    assert_int_equal(fs_broker_add_prometheus(b, &po), FS_OK);
    fs_redis_subscriber_options ro = FS_REDIS_SUBSCRIBER_OPTIONS_INIT;
    ro.kind = kind;
    if (kind == FS_REDIS_STREAM) {
        ro.group = "alloc";
        ro.start_id = "0";
    }
    fs_subscriber_options so = FS_SUBSCRIBER_OPTIONS_INIT;
    so.broker_options = &ro;
    so.concurrency = 2;
    fs_subscriber *sub;
    if (fs_subscribe(b, name, ok, NULL, &so, &sub) != FS_OK)
        fail_msg("subscribe: %s", fs_last_error());
    assert_int_equal(fs_broker_start(b), FS_OK);
    fs_redis_publish_options pub = FS_REDIS_PUBLISH_OPTIONS_INIT;
    pub.kind = kind;
    fs_envelope env[BATCH];
    for (int i = 0; i < BATCH; i++) {
        ts_envelope(&env[i], "0123456789abcdef", &pub);
    }
    uint64_t done = 0;
    pump(b, name, env, sub, &done, 5 * CHUNK, false); /* warm-up */

    alloc_begin();
    unsigned through = pump(b, name, env, sub, &done, MESSAGES, true);
    unsigned long n = alloc_end();
    fs_broker_free(b);
    fs_registry_free(reg);
    redisContext *rc = rt_connect();
    rt_ok(rc, "DEL %s", name);
    redisFree(rc);
    if (n) /* where from, also when within the tolerance */
        alloc_print_stacks(stdout);
    print_message("redis %s: %lu allocations for %u messages after warm-up\n", what, n, through);
    if (n > HIGH_WATER || through < MESSAGES)
        fail_msg("redis %s: %lu allocations for %u messages in the steady state (%.4f per "
                 "message; at most %d pool high-water allocations are tolerated)",
                 what, n, through, (double)n / through, HIGH_WATER);
}

static void test_list_steady_state_allocates_nothing(void **state)
{
    (void)state;
    steady_state(FS_REDIS_LIST, "alloc-list");
}

static void test_stream_steady_state_allocates_nothing(void **state)
{
    (void)state;
    steady_state(FS_REDIS_STREAM, "alloc-stream");
}

/* argv[1]: a cmocka test-name filter ("*list*", "*stream*"); none runs both. */
int main(int argc, char **argv)
{
    if (argc > 1)
        cmocka_set_test_filter(argv[1]);
    fs_set_log_level(FS_LOG_WARN);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_list_steady_state_allocates_nothing),
        cmocka_unit_test(test_stream_steady_state_allocates_nothing),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
