/*
 * Kafka consumer groups under change, on an in-process mock cluster: a
 * second member joining and the first leaving while messages flow lose
 * nothing (every offset handled at least once, committed offsets cover
 * all); commit errors injected with the mock API are retried; a pattern
 * subscription sees the concrete topics; lag counts what is unfinished.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h>

#include "kafka/kafka_test.h"

KT_CLUSTER_FIXTURE

#define RB_PARTS 4
#define RB_TOTAL 1200

typedef struct seen {
    _Atomic int hits[RB_PARTS][RB_TOTAL];
    _Atomic int handled;
} seen;

static fs_outcome mark(fs_message *m, void *user)
{
    seen *s = user;
    int32_t p = fs_message_partition(m);
    int64_t o = fs_message_offset(m);
    if (p >= 0 && p < RB_PARTS && o >= 0 && o < RB_TOTAL)
        atomic_fetch_add(&s->hits[p][o], 1);
    atomic_fetch_add(&s->handled, 1);
    ts_sleep_ms(1);
    return FS_OUTCOME_OK;
}

typedef struct flow {
    const char *topic;
    int n;
} flow;

static void *producer_main(void *arg)
{
    flow *f = arg;
    for (int i = 0; i < f->n; i += 20) {
        kt_put(prod, f->topic, -1, i, 20);
        ts_sleep_ms(10);
    }
    return NULL;
}

static fs_broker *member(const char *topic, seen *s)
{
    fs_broker *b = kt_broker(&cl, "g-rb", NULL);
    kt_sub_fn(b, topic, mark, s, FS_ACK_POLICY_ACK, 2, NULL);
    KT_OK(fs_broker_start(b));
    return b;
}

static void test_two_members_lose_nothing(void **state)
{
    (void)state;
    kt_topic(&cl, "rb.flow", RB_PARTS);
    static seen s;
    fs_broker *a = member("rb.flow", &s);
    flow f = {"rb.flow", RB_TOTAL};
    pthread_t t;
    pthread_create(&t, NULL, producer_main, &f);
    double end = ts_now_s() + 20;
    while (atomic_load(&s.handled) < 100 && ts_now_s() < end)
        ts_sleep_ms(10);
    fs_broker *b = member("rb.flow", &s); /* rebalance: a revokes, both get 2 */
    while (atomic_load(&s.handled) < RB_TOTAL / 2 && ts_now_s() < end)
        ts_sleep_ms(10);
    fs_broker_free(a); /* rebalance again: b takes everything */
    pthread_join(t, NULL);
    long committed = kt_wait_committed(&cl, "g-rb", "rb.flow", RB_PARTS, RB_TOTAL, 30);
    assert_int_equal(committed, RB_TOTAL);
    int missing = 0, dup = 0;
    /* Every produced record: the high watermarks tell how many each partition has. */
    for (int p = 0; p < RB_PARTS; p++) {
        int64_t lo, hi;
        assert_int_equal(rd_kafka_query_watermark_offsets(prod, "rb.flow", p, &lo, &hi, 5000), 0);
        for (int64_t o = lo; o < hi && o < RB_TOTAL; o++) {
            int h = atomic_load(&s.hits[p][o]);
            missing += h == 0;
            dup += h > 1;
        }
    }
    assert_int_equal(missing, 0);
    print_message("rebalance: %d redelivered of %d\n", dup, RB_TOTAL);
    fs_broker_free(b);
}

static void test_commit_errors_retried(void **state)
{
    (void)state;
    kt_topic(&cl, "rb.commit", 2);
    kt_put(prod, "rb.commit", -1, 0, 50);
    fs_broker *b = kt_broker(&cl, "g-commit", NULL);
    ts_log rec;
    ts_log_init(&rec);
    kt_sub(b, "rb.commit", &rec, FS_ACK_POLICY_ACK, 2, NULL);
    rd_kafka_mock_push_request_errors(
        cl.mc, KT_API_OFFSET_COMMIT, 3, RD_KAFKA_RESP_ERR_GROUP_AUTHORIZATION_FAILED,
        RD_KAFKA_RESP_ERR_REQUEST_TIMED_OUT, RD_KAFKA_RESP_ERR_GROUP_AUTHORIZATION_FAILED);
    KT_OK(fs_broker_start(b));
    assert_int_equal(kt_wait_n(&rec, 50, 20), 50);
    kt_put(prod, "rb.commit", -1, 50, 10); /* more commits after the errors */
    assert_int_equal(kt_wait_n(&rec, 60, 20), 60);
    assert_int_equal(kt_wait_committed(&cl, "g-commit", "rb.commit", 2, 60, 15), 60);
    fs_broker_free(b);
    ts_log_free(&rec);
}

static void test_pattern(void **state)
{
    (void)state;
    kt_topic(&cl, "pat.one", 1);
    kt_topic(&cl, "pat.two", 1);
    kt_put(prod, "pat.one", 0, 0, 3);
    kt_put(prod, "pat.two", 0, 3, 3);
    fs_broker *b = kt_broker(&cl, "g-pat", NULL);
    ts_log rec;
    ts_log_init(&rec);
    fs_kafka_subscriber_options ko = FS_KAFKA_SUBSCRIBER_OPTIONS_INIT;
    ko.pattern = true;
    ko.start = FS_KAFKA_START_EARLIEST;
    kt_sub(b, "pat\\..*", &rec, FS_ACK_POLICY_ACK, 2, &ko);
    KT_OK(fs_broker_start(b));
    assert_int_equal(kt_wait_n(&rec, 6, 20), 6);
    int one = 0, two = 0;
    for (size_t i = 0; i < 6; i++) {
        char body[16];
        ts_body(&rec, i, body, sizeof body);
        one += body[1] < '3';
        two += body[1] >= '3';
    }
    assert_int_equal(one, 3);
    assert_int_equal(two, 3);
    assert_int_equal(kt_wait_committed(&cl, "g-pat", "pat.one", 1, 3, 10), 3);
    /* A pattern without a group is refused. */
    fs_broker *n = kt_broker(&cl, NULL, NULL);
    fs_subscriber_options so = FS_SUBSCRIBER_OPTIONS_INIT;
    so.broker_options = &ko;
    assert_int_equal(fs_subscribe(n, "pat\\..*", ts_record, &rec, &so, NULL), FS_EINVAL);
    fs_broker_free(n);
    fs_broker_free(b);
    ts_log_free(&rec);
}

static fs_outcome block(fs_message *m, void *user)
{
    (void)m;
    _Atomic int *gate = user;
    while (!atomic_load(gate))
        ts_sleep_ms(5);
    return FS_OUTCOME_OK;
}

static void test_lag(void **state)
{
    (void)state;
    kt_topic(&cl, "rb.lag", 1);
    kt_put(prod, "rb.lag", 0, 0, 10);
    fs_broker *b = kt_broker(&cl, "g-lag", NULL);
    static _Atomic int gate;
    fs_subscriber *sub = kt_sub_fn(b, "rb.lag", block, &gate, FS_ACK_POLICY_ACK, 1, NULL);
    uint64_t lag = 0;
    assert_int_equal(fs_kafka_lag(b, "rb.lag", 1000, &lag), FS_ESTATE);
    assert_int_equal(fs_kafka_lag(b, "nope", 1000, &lag), FS_ENOTFOUND);
    KT_OK(fs_broker_start(b));
    double end = ts_now_s() + 15;
    while ((fs_kafka_lag(b, "rb.lag", 1000, &lag) || lag != 10) && ts_now_s() < end)
        ts_sleep_ms(50);
    assert_int_equal(lag, 10); /* assigned, the first one blocked: nothing committed */
    atomic_store(&gate, 1);
    assert_int_equal(fs_subscriber_wait_handled(sub, 10, 10000), 0);
    end = ts_now_s() + 10;
    while ((fs_kafka_lag(b, "rb.lag", 1000, &lag) || lag) && ts_now_s() < end)
        ts_sleep_ms(50);
    assert_int_equal(lag, 0);
    /* The core's backlog family asks the same op. */
    uint64_t bl = 99;
    KT_OK(fs_subscriber_backlog(sub, 1000, &bl));
    assert_int_equal(bl, 0);
    fs_broker_free(b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_two_members_lose_nothing),
        cmocka_unit_test(test_commit_errors_retried),
        cmocka_unit_test(test_pattern),
        cmocka_unit_test(test_lag),
    };
    return cmocka_run_group_tests(tests, kt_setup, kt_teardown);
}
