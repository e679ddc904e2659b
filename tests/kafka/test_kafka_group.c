/*
 * The Kafka adapter with consumer groups, on an in-process mock cluster:
 * what each ack policy commits (the contiguous finished prefix per
 * partition, with handlers in parallel across partitions and in order within
 * one), nack = seek back and redeliver, reject = commit + dead-letter copy,
 * ACK_FIRST commits whatever the handler does.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h>

#include "kafka/kafka_test.h"

KT_CLUSTER_FIXTURE

static void test_ack_commits_prefix_in_order(void **state)
{
    (void)state;
    kt_topic(&cl, "g.ack", 4);
    kt_put(prod, "g.ack", -1, 0, 200);
    fs_broker *b = kt_broker(&cl, "g-ack", NULL);
    ts_log rec;
    ts_log_init(&rec);
    rec.sleep_ms = 1;
    kt_sub(b, "g.ack", &rec, FS_ACK_POLICY_ACK, 4, NULL);
    KT_OK(fs_broker_start(b));
    assert_int_equal(kt_wait_n(&rec, 200, 30), 200);
    assert_int_equal(kt_wait_committed(&cl, "g-ack", "g.ack", 4, 200, 10), 200);
    /* Each partition in offset order, partitions in parallel. */
    int64_t last[4] = {-1, -1, -1, -1};
    for (size_t i = 0; i < 200; i++) {
        const fs_message *m = ts_msg(&rec, i);
        int32_t p = fs_message_partition(m);
        assert_true(p >= 0 && p < 4);
        assert_true(fs_message_offset(m) > last[p]);
        last[p] = fs_message_offset(m);
    }
    assert_true(atomic_load(&rec.max_running) > 1);
    uint64_t lag = 1;
    KT_OK(fs_kafka_lag(b, "g.ack", 3000, &lag));
    assert_int_equal(lag, 0);
    fs_broker_free(b);
    ts_log_free(&rec);
}

static void test_nack_seeks_back(void **state)
{
    (void)state;
    kt_topic(&cl, "g.nack", 1);
    kt_put(prod, "g.nack", 0, 0, 3);
    fs_broker *b = kt_broker(&cl, "g-nack", NULL);
    ts_log rec;
    ts_log_init(&rec);
    rec.fail_first = 2; /* m0 fails twice, then everything passes */
    kt_sub(b, "g.nack", &rec, FS_ACK_POLICY_NACK_ON_ERROR, 1, NULL);
    KT_OK(fs_broker_start(b));
    assert_int_equal(kt_wait_n(&rec, 5, 20), 5);
    const char *want[] = {"m0", "m0", "m0", "m1", "m2"};
    for (size_t i = 0; i < 5; i++) {
        char body[16];
        assert_string_equal(ts_body(&rec, i, body, sizeof body), want[i]);
    }
    assert_int_equal(kt_wait_committed(&cl, "g-nack", "g.nack", 1, 3, 10), 3);
    ts_sleep_ms(100);
    assert_int_equal((int)ts_log_count(&rec), 5);
    fs_broker_free(b);
    ts_log_free(&rec);
}

static void test_reject_dead_letters(void **state)
{
    (void)state;
    kt_topic(&cl, "g.rej", 2);
    kt_topic(&cl, "g.rej.dlq", 1);
    kt_put(prod, "g.rej", -1, 0, 10);
    fs_broker *b = kt_broker(&cl, "g-rej", NULL);
    ts_log rec;
    ts_log_init(&rec);
    rec.fail_first = 3;
    fs_kafka_subscriber_options ko = FS_KAFKA_SUBSCRIBER_OPTIONS_INIT;
    ko.start = FS_KAFKA_START_EARLIEST;
    ko.dead_letter = "g.rej.dlq";
    kt_sub(b, "g.rej", &rec, FS_ACK_POLICY_REJECT_ON_ERROR, 2, &ko);
    /* Read the dead letters without a group. */
    ts_log dl;
    ts_log_init(&dl);
    fs_kafka_subscriber_options dko = FS_KAFKA_SUBSCRIBER_OPTIONS_INIT;
    dko.start = FS_KAFKA_START_EARLIEST;
    dko.group_id = ""; /* not a second member of g-rej: no rebalance */
    kt_sub(b, "g.rej.dlq", &dl, FS_ACK_POLICY_ACK, 1, &dko);
    KT_OK(fs_broker_start(b));
    assert_int_equal(kt_wait_n(&rec, 10, 20), 10);
    assert_int_equal(kt_wait_n(&dl, 3, 10), 3);
    assert_int_equal(kt_wait_committed(&cl, "g-rej", "g.rej", 2, 10, 10), 10);
    assert_string_equal(kt_str(fs_message_source(ts_msg(&dl, 2))), "g.rej.dlq");
    fs_broker_free(b);
    ts_log_free(&dl);
    ts_log_free(&rec);
}

static _Atomic int dl_ready;
static pthread_mutex_t dl_mu = PTHREAD_MUTEX_INITIALIZER;

static fs_outcome dl_headers(fs_message *m, void *user)
{
    char *out = user;
    pthread_mutex_lock(&dl_mu);
    snprintf(out, 256, "%s|%s|%s|%s", fs_message_header(m, "x-original-topic"),
             fs_message_header(m, "x-original-partition"),
             fs_message_header(m, "x-original-offset"), fs_message_header(m, "x-error"));
    atomic_store(&dl_ready, 1);
    pthread_mutex_unlock(&dl_mu);
    return FS_OUTCOME_OK;
}

static fs_outcome reject_all(fs_message *m, void *user)
{
    (void)user;
    return fs_message_fail(m, "ValueError", "no");
}

static void test_dead_letter_headers(void **state)
{
    (void)state;
    kt_topic(&cl, "g.dlh", 1);
    kt_topic(&cl, "g.dlh.dlq", 1);
    kt_put(prod, "g.dlh", 0, 0, 1);
    fs_broker *b = kt_broker(&cl, "g-dlh", NULL);
    fs_kafka_subscriber_options ko = FS_KAFKA_SUBSCRIBER_OPTIONS_INIT;
    ko.start = FS_KAFKA_START_EARLIEST;
    ko.dead_letter = "g.dlh.dlq";
    fs_subscriber_options so = FS_SUBSCRIBER_OPTIONS_INIT;
    so.ack_policy = FS_ACK_POLICY_REJECT_ON_ERROR;
    so.broker_options = &ko;
    KT_OK(fs_subscribe(b, "g.dlh", reject_all, NULL, &so, NULL));
    static char got[256];
    fs_kafka_subscriber_options d = FS_KAFKA_SUBSCRIBER_OPTIONS_INIT;
    d.start = FS_KAFKA_START_EARLIEST;
    d.group_id = "";
    fs_subscriber_options ds = FS_SUBSCRIBER_OPTIONS_INIT;
    ds.broker_options = &d;
    KT_OK(fs_broker_connect(b));
    KT_OK(fs_subscribe(b, "g.dlh.dlq", dl_headers, got, &ds, NULL));
    KT_OK(fs_broker_start(b));
    double end = ts_now_s() + 15;
    while (!atomic_load(&dl_ready) && ts_now_s() < end)
        ts_sleep_ms(20);
    char seen[256];
    pthread_mutex_lock(&dl_mu);
    memcpy(seen, got, sizeof seen);
    pthread_mutex_unlock(&dl_mu);
    assert_string_equal(seen, "g.dlh|0|0|ValueError");
    fs_broker_free(b);
}

static void test_ack_first_commits_failures(void **state)
{
    (void)state;
    kt_topic(&cl, "g.af", 2);
    kt_put(prod, "g.af", -1, 0, 20);
    fs_broker *b = kt_broker(&cl, "g-af", NULL);
    ts_log rec;
    ts_log_init(&rec);
    rec.fail_first = 20;
    kt_sub(b, "g.af", &rec, FS_ACK_POLICY_DEFAULT, 2, NULL); /* Kafka's default: ACK_FIRST */
    KT_OK(fs_broker_start(b));
    assert_int_equal(kt_wait_n(&rec, 20, 20), 20);
    assert_int_equal(kt_wait_committed(&cl, "g-af", "g.af", 2, 20, 10), 20);
    ts_sleep_ms(100);
    assert_int_equal((int)ts_log_count(&rec), 20); /* no redelivery */
    fs_broker_free(b);
    ts_log_free(&rec);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_ack_commits_prefix_in_order),
        cmocka_unit_test(test_nack_seeks_back),
        cmocka_unit_test(test_reject_dead_letters),
        cmocka_unit_test(test_dead_letter_headers),
        cmocka_unit_test(test_ack_first_commits_failures),
    };
    return cmocka_run_group_tests(tests, kt_setup, kt_teardown);
}
