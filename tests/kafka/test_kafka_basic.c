/*
 * The Kafka adapter without consumer groups, on an in-process mock cluster:
 * URL and option checks, connection errors, publish/consume with
 * FastStream's headers both ways, explicit partitions and start offsets,
 * batches, request/reply through a reply topic, consumer lag, and
 * publishing while the cluster is down.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h>

#include "kafka/kafka_test.h"

#include "faststream/exposition.h"
#include "faststream/prometheus.h"

KT_CLUSTER_FIXTURE

static void test_url_and_options(void **state)
{
    (void)state;
    fs_broker *b = NULL;
    assert_int_equal(fs_kafka_broker_new("kafka://h:1?nope=1", NULL, &b), FS_EINVAL);
    assert_non_null(strstr(fs_last_error(), "nope"));
    assert_int_equal(fs_kafka_broker_new("redis://h:1", NULL, &b), FS_EINVAL);
    assert_int_equal(fs_kafka_broker_new("kafka://u:p@h:1", NULL, &b), FS_EINVAL);
    assert_int_equal(fs_kafka_broker_new("kafka://", NULL, &b), FS_EINVAL);
    fs_kafka_options o = FS_KAFKA_OPTIONS_INIT;
    fs_kafka_config bad[] = {{"no.such.key", "1"}};
    o.config = bad;
    o.config_count = 1;
    assert_int_equal(fs_kafka_broker_new("kafka://h:1", &o, &b), FS_EINVAL);
    assert_non_null(strstr(fs_last_error(), "no.such.key"));
    fs_kafka_config badv[] = {{"linger.ms", "banana"}};
    o.config = NULL;
    o.config_count = 0;
    o.producer_config = badv;
    o.producer_config_count = 1;
    assert_int_equal(fs_kafka_broker_new("kafka://h:1", &o, &b), FS_EINVAL);
    assert_non_null(strstr(fs_last_error(), "linger.ms"));
    /* Through the scheme registry, with a group and client id. */
    assert_int_equal(
        fs_broker_new("kafka://127.0.0.1:1,127.0.0.1:2?group_id=g&client_id=c", NULL, &b), 0);
    assert_true(fs_broker_is_kafka(b));
    fs_broker_free(b);
}

static void test_unreachable(void **state)
{
    (void)state;
    fs_kafka_options o = FS_KAFKA_OPTIONS_INIT;
    o.connect_timeout_ms = 300;
    fs_broker *b = NULL;
    assert_int_equal(fs_kafka_broker_new("kafka://127.0.0.1:1", &o, &b), 0);
    int rc = fs_broker_connect(b);
    assert_int_equal(rc, FS_EIO);
    assert_non_null(strstr(fs_last_error(), "127.0.0.1:1"));
    fs_broker_free(b);
}

/* Subscribe fn to topic from the earliest offset (no group) and start the broker. */
static void start_earliest(fs_broker *b, const char *topic, fs_handler_fn fn, void *user)
{
    kt_sub_fn(b, topic, fn, user, FS_ACK_POLICY_DEFAULT, 1, NULL);
    KT_OK(fs_broker_start(b));
}

/* A raw record with headers hs (taken) to topic's partition, waited for. */
static void put_with_headers(rd_kafka_t *p, const char *topic, int32_t partition, const char *body,
                             rd_kafka_headers_t *hs)
{
    /* produceva: the RD_KAFKA_V_* macros are GNU statement expressions (-Wpedantic). */
    rd_kafka_vu_t vu[5] = {{.vtype = RD_KAFKA_VTYPE_TOPIC, .u.cstr = topic},
                           {.vtype = RD_KAFKA_VTYPE_PARTITION, .u.i32 = partition},
                           {.vtype = RD_KAFKA_VTYPE_VALUE, .u.mem = {(void *)body, strlen(body)}},
                           {.vtype = RD_KAFKA_VTYPE_MSGFLAGS, .u.i = RD_KAFKA_MSG_F_COPY},
                           {.vtype = RD_KAFKA_VTYPE_HEADERS, .u.headers = hs}};
    assert_null(rd_kafka_produceva(p, vu, 5));
    assert_int_equal(rd_kafka_flush(p, 5000), 0);
}

static void test_headers_both_ways(void **state)
{
    (void)state;
    kt_topic(&cl, "basic.headers", 2);
    fs_broker *b = kt_broker(&cl, NULL, NULL);
    ts_log rec;
    ts_log_init(&rec);
    start_earliest(b, "basic.headers", ts_record, &rec);

    fs_header h[] = {{"x-test", "v1", 0}};
    fs_envelope e = FS_ENVELOPE_INIT;
    e.body = "hello";
    e.body_len = 5;
    e.headers = h;
    e.header_count = 1;
    e.content_type = "text/plain";
    e.correlation_id = "cid-1";
    e.reply_to = "replies";
    fs_kafka_publish_options po = FS_KAFKA_PUBLISH_OPTIONS_INIT;
    po.partition = 1;
    po.key = "k";
    po.key_len = 1;
    po.timestamp_ms = 1700000000123;
    e.broker_options = &po;
    KT_OK(fs_publish(b, "basic.headers", &e));
    assert_int_equal(kt_wait_n(&rec, 1, 10), 1);
    char body[64];
    assert_string_equal(ts_body(&rec, 0, body, sizeof body), "hello");
    fs_message *m = ts_msg(&rec, 0);
    assert_string_equal(kt_str(fs_message_content_type(m)), "text/plain");
    assert_string_equal(kt_str(fs_message_correlation_id(m)), "cid-1");
    assert_string_equal(kt_str(fs_message_reply_to(m)), "replies");
    assert_string_equal(kt_str(fs_message_header(m, "x-test")), "v1");
    assert_string_equal(kt_str(fs_message_source(m)), "basic.headers");
    assert_int_equal(fs_message_partition(m), 1);
    assert_string_equal(kt_str(fs_message_id(m)), "0-1700000000123");

    /* A raw record with FastStream's headers as a Python service writes them. */
    rd_kafka_t *p = prod;
    rd_kafka_headers_t *hs = rd_kafka_headers_new(3);
    rd_kafka_header_add(hs, "content-type", -1, "", 0); /* "" = none */
    rd_kafka_header_add(hs, "correlation_id", -1, "py-cid", -1);
    rd_kafka_header_add(hs, "x-test", -1, "bytes\0x", 7);
    put_with_headers(p, "basic.headers", 0, "py", hs);
    assert_int_equal(kt_wait_n(&rec, 2, 10), 2);
    m = ts_msg(&rec, 1);
    assert_string_equal(kt_str(fs_message_content_type(m)), "");
    assert_string_equal(kt_str(fs_message_correlation_id(m)), "py-cid");
    assert_string_equal(kt_str(fs_message_header(m, "x-test")), "bytes");

    /* What we write, read raw: FastStream's header order and values. */
    fs_broker_free(b);
    ts_log_free(&rec);
}

/* Every header of the last message: names, value lengths and bytes, in order. */
typedef struct hdr_seen {
    pthread_mutex_t mu;
    int count;
    size_t n;
    char names[16][32];
    char values[16][400];
    size_t lens[16];
    char cid[64], ct[64];
    int unterminated;
    /* fs_message_raw: the record's topic, partition, offset and librdkafka's message */
    char topic[64];
    int32_t partition;
    int64_t offset;
    bool raw_matches;
} hdr_seen;

static fs_outcome record_headers(fs_message *m, void *user)
{
    hdr_seen *h = user;
    pthread_mutex_lock(&h->mu);
    h->n = fs_message_header_count(m);
    for (size_t i = 0; i < h->n && i < 16; i++) {
        const fs_header *x = fs_message_header_at(m, i);
        h->lens[i] = fs_message_header_value_len(m, i);
        snprintf(h->names[i], sizeof h->names[i], "%s", x->name);
        memset(h->values[i], 0, sizeof h->values[i]);
        memcpy(h->values[i], x->value, h->lens[i] < 399 ? h->lens[i] : 399);
        if (x->value[h->lens[i]] != '\0') /* NUL-terminated after its bytes */
            h->unterminated++;
    }
    const fs_kafka_message_info *info = fs_message_raw(m);
    if (info) {
        snprintf(h->topic, sizeof h->topic, "%s", info->topic);
        h->partition = info->partition;
        h->offset = info->offset;
        const rd_kafka_message_t *rk = info->rkmessage;
        h->raw_matches = rk && rk->offset == info->offset && rk->partition == info->partition &&
                         info->partition == fs_message_partition(m);
    }
    snprintf(h->cid, sizeof h->cid, "%s", kt_str(fs_message_correlation_id(m)));
    snprintf(h->ct, sizeof h->ct, "%s", kt_str(fs_message_content_type(m)));
    h->count++;
    pthread_mutex_unlock(&h->mu);
    return FS_OUTCOME_OK;
}

/* Put a record with headers hs, wait until it is the want-th seen, return with h locked. */
static void put_and_lock(rd_kafka_t *p, rd_kafka_headers_t *hs, hdr_seen *h, int want)
{
    put_with_headers(p, "basic.many-headers", 0, "b", hs);
    for (int i = 0; i < 1000; i++) {
        pthread_mutex_lock(&h->mu);
        if (h->count >= want)
            break;
        pthread_mutex_unlock(&h->mu);
        ts_sleep_ms(10);
    }
    assert_int_equal(h->count, want); /* locked */
}

/* Records whose headers outgrow what a record holds inline (more headers, more
 * bytes), null and binary values, a repeated name; then a small one again. */
static void test_many_headers(void **state)
{
    (void)state;
    kt_topic(&cl, "basic.many-headers", 1);
    fs_broker *b = kt_broker(&cl, NULL, NULL);
    static hdr_seen h;
    memset(&h, 0, sizeof h);
    pthread_mutex_init(&h.mu, NULL);
    start_earliest(b, "basic.many-headers", record_headers, &h);
    rd_kafka_t *p = prod;

    char big[300];
    memset(big, 'z', sizeof big);
    rd_kafka_headers_t *hs = rd_kafka_headers_new(9);
    rd_kafka_header_add(hs, "correlation_id", -1, "first", -1);
    rd_kafka_header_add(hs, "content-type", -1, "application/json", -1);
    rd_kafka_header_add(hs, "x-null", -1, NULL, 0);
    rd_kafka_header_add(hs, "x-bin", -1, "a\0b\0", 4);
    rd_kafka_header_add(hs, "x-big", -1, big, sizeof big);
    for (int i = 0; i < 3; i++) {
        char name[16];
        snprintf(name, sizeof name, "x-%d", i);
        rd_kafka_header_add(hs, name, -1, name, -1);
    }
    rd_kafka_header_add(hs, "correlation_id", -1, "last", -1); /* the last wins */
    put_and_lock(p, hs, &h, 1);
    assert_int_equal(h.n, 9);
    assert_string_equal(h.names[0], "correlation_id");
    assert_string_equal(h.values[0], "first");
    assert_string_equal(h.names[2], "x-null");
    assert_int_equal(h.lens[2], 0);
    assert_int_equal(h.lens[3], 4);
    assert_memory_equal(h.values[3], "a\0b\0", 4);
    assert_string_equal(h.names[4], "x-big");
    assert_int_equal(h.lens[4], sizeof big);
    assert_memory_equal(h.values[4], big, sizeof big);
    assert_string_equal(h.names[7], "x-2");
    assert_string_equal(h.values[7], "x-2");
    assert_string_equal(h.cid, "last");
    assert_string_equal(h.ct, "application/json");
    assert_string_equal(h.topic, "basic.many-headers");
    assert_int_equal(h.partition, 0);
    assert_int_equal(h.offset, 0);
    assert_true(h.raw_matches);
    pthread_mutex_unlock(&h.mu);

    hs = rd_kafka_headers_new(1);
    rd_kafka_header_add(hs, "x-only", -1, "v", -1);
    put_and_lock(p, hs, &h, 2);
    assert_int_equal(h.n, 1);
    assert_string_equal(h.names[0], "x-only");
    assert_string_equal(h.values[0], "v");
    assert_int_equal(strlen(h.cid), 36); /* none: the core generates one */
    assert_int_equal(h.offset, 1);
    assert_string_equal(h.ct, "");
    assert_int_equal(h.unterminated, 0);
    pthread_mutex_unlock(&h.mu);
    fs_broker_free(b);
}

/* Every message id is "{offset}-{timestamp}", across digit counts (9 -> 10, 99 -> 100) and
 * after a seek back (a nacked first record comes again after later offsets were read). */
static void test_message_ids(void **state)
{
    (void)state;
    kt_topic(&cl, "basic.ids", 1);
    kt_put(prod, "basic.ids", 0, 0, 120);
    fs_broker *b = kt_broker(&cl, "g-ids", NULL);
    ts_log rec;
    ts_log_init(&rec);
    rec.fail_first = 1; /* m0 fails once: nacked, sought back, delivered again */
    kt_sub(b, "basic.ids", &rec, FS_ACK_POLICY_NACK_ON_ERROR, 1, NULL);
    KT_OK(fs_broker_start(b));
    assert_true(kt_wait_n(&rec, 121, 20) >= 121);
    size_t n = ts_log_count(&rec), zeros = 0;
    for (size_t i = 0; i < n; i++) {
        const fs_message *m = ts_msg(&rec, i);
        char want[64];
        snprintf(want, sizeof want, "%lld-%lld", (long long)fs_message_offset(m),
                 (long long)fs_message_timestamp_ms(m));
        assert_string_equal(kt_str(fs_message_id(m)), want);
        zeros += fs_message_offset(m) == 0;
    }
    assert_int_equal(zeros, 2);
    fs_broker_free(b);
    ts_log_free(&rec);
}

static void test_explicit_partitions_and_offsets(void **state)
{
    (void)state;
    kt_topic(&cl, "basic.parts", 3);
    rd_kafka_t *p = prod;
    kt_put(p, "basic.parts", 0, 0, 5);
    kt_put(p, "basic.parts", 1, 5, 5);
    kt_put(p, "basic.parts", 2, 10, 5);
    fs_broker *b = kt_broker(&cl, NULL, NULL);
    ts_log rec;
    ts_log_init(&rec);
    fs_kafka_partition parts[] = {{"basic.parts", 1}, {NULL, 2}};
    fs_kafka_subscriber_options ko = FS_KAFKA_SUBSCRIBER_OPTIONS_INIT;
    ko.partitions = parts;
    ko.partition_count = 2;
    ko.start = FS_KAFKA_START_OFFSET;
    ko.start_value = 3;
    fs_subscriber_options so = FS_SUBSCRIBER_OPTIONS_INIT;
    so.broker_options = &ko;
    so.concurrency = 2;
    KT_OK(fs_subscribe(b, "basic.parts", ts_record, &rec, &so, NULL));
    KT_OK(fs_broker_start(b));
    assert_int_equal(kt_wait_n(&rec, 4, 10), 4);
    ts_sleep_ms(200);
    assert_int_equal(ts_log_count(&rec), 4); /* offsets 3 and 4 of partitions 1 and 2 */
    for (size_t i = 0; i < 4; i++) {
        const fs_message *m = ts_msg(&rec, i);
        assert_true(fs_message_partition(m) == 1 || fs_message_partition(m) == 2);
        assert_true(fs_message_offset(m) >= 3);
    }
    uint64_t lag = 99;
    KT_OK(fs_kafka_lag(b, "basic.parts", 2000, &lag));
    assert_int_equal(lag, 0);
    fs_broker_free(b);
    ts_log_free(&rec);
}

static void test_batch(void **state)
{
    (void)state;
    kt_topic(&cl, "basic.batch", 1);
    rd_kafka_t *p = prod;
    kt_put(p, "basic.batch", 0, 0, 25);
    fs_broker *b = kt_broker(&cl, NULL, NULL);
    ts_log rec;
    ts_log_init(&rec);
    fs_kafka_subscriber_options ko = FS_KAFKA_SUBSCRIBER_OPTIONS_INIT;
    ko.start = FS_KAFKA_START_EARLIEST;
    fs_subscriber_options so = FS_SUBSCRIBER_OPTIONS_INIT;
    so.broker_options = &ko;
    so.batch_size = 10;
    so.batch_timeout_ms = 200;
    fs_subscriber *sub;
    KT_OK(fs_subscribe(b, "basic.batch", ts_record, &rec, &so, &sub));
    KT_OK(fs_broker_start(b));
    /* 25 messages in batches of at most 10: at least 3 handler calls. */
    double end = ts_now_s() + 10;
    while (fs_subscriber_handled(sub) < 25 && ts_now_s() < end)
        ts_sleep_ms(10);
    pthread_mutex_lock(&rec.mu);
    assert_int_equal(rec.n, 25);
    assert_true(rec.batches >= 3);
    assert_true(rec.max_batch <= 10);
    pthread_mutex_unlock(&rec.mu);
    /* A batch publish: all produced, all reports waited for. */
    fs_envelope es[3];
    for (int i = 0; i < 3; i++) {
        fs_envelope e = FS_ENVELOPE_INIT;
        e.body = "bb";
        e.body_len = 2;
        es[i] = e;
    }
    KT_OK(fs_publish_batch(b, "basic.batch", es, 3));
    fs_broker_free(b);
    ts_log_free(&rec);
}

static fs_outcome echo(fs_message *m, void *user)
{
    (void)user;
    fs_message_reply(m, fs_message_body(m), fs_message_body_len(m), NULL, 0, "text/plain");
    return FS_OUTCOME_OK;
}

static void test_request_reply(void **state)
{
    (void)state;
    kt_topic(&cl, "basic.rpc", 1);
    fs_broker *b = kt_broker(&cl, NULL, NULL);
    fs_kafka_subscriber_options ko = FS_KAFKA_SUBSCRIBER_OPTIONS_INIT;
    ko.start = FS_KAFKA_START_EARLIEST;
    fs_subscriber_options so = FS_SUBSCRIBER_OPTIONS_INIT;
    so.broker_options = &ko;
    KT_OK(fs_subscribe(b, "basic.rpc", echo, NULL, &so, NULL));
    KT_OK(fs_broker_start(b));
    fs_envelope e = FS_ENVELOPE_INIT;
    e.body = "ping";
    e.body_len = 4;
    fs_message *reply = NULL;
    int rc = fs_request(b, "basic.rpc", &e, 10000, &reply);
    if (rc)
        fail_msg("fs_request: %s", fs_last_error());
    assert_int_equal(fs_message_body_len(reply), 4);
    assert_memory_equal(fs_message_body(reply), "ping", 4);
    fs_message_free(reply);
    fs_broker_free(b);
}

static void test_publish_cluster_down(void **state)
{
    (void)state;
    kt_cluster c2;
    kt_cluster_start(&c2, 1);
    kt_topic(&c2, "down", 1);
    fs_kafka_options o = FS_KAFKA_OPTIONS_INIT;
    fs_kafka_config pc[] = {{"message.timeout.ms", "500"}};
    o.producer_config = pc;
    o.producer_config_count = 1;
    fs_broker *b = kt_broker(&c2, NULL, &o);
    KT_OK(fs_broker_connect(b));
    assert_int_equal(fs_publish_bytes(b, "down", "x", 1), 0);
    rd_kafka_mock_broker_set_down(c2.mc, 1);
    int rc = fs_publish_bytes(b, "down", "y", 1);
    assert_int_equal(rc, FS_ETIMEDOUT);
    assert_string_equal(fs_last_publish_error_type(), "_MSG_TIMED_OUT");
    assert_int_not_equal(fs_broker_ping(b, 300), 0);
    rd_kafka_mock_broker_set_up(c2.mc, 1);
    double end = ts_now_s() + 10;
    while ((rc = fs_publish_bytes(b, "down", "z", 1)) != 0 && ts_now_s() < end)
        ;
    assert_int_equal(rc, 0);
    /* An injected produce error names librdkafka's error. */
    rd_kafka_mock_push_request_errors(c2.mc, KT_API_PRODUCE, 1,
                                      RD_KAFKA_RESP_ERR_TOPIC_AUTHORIZATION_FAILED);
    assert_int_not_equal(fs_publish_bytes(b, "down", "w", 1), 0);
    assert_string_equal(fs_last_publish_error_type(), "TOPIC_AUTHORIZATION_FAILED");
    fs_broker_free(b);
    kt_cluster_stop(&c2);
}

/* A no_wait publish: accepted at once; its delivery failure still reaches the metrics. */
static void test_no_wait_failure_counted(void **state)
{
    (void)state;
    kt_cluster c2;
    kt_cluster_start(&c2, 1);
    kt_topic(&c2, "nowait", 1);
    fs_kafka_options o = FS_KAFKA_OPTIONS_INIT;
    fs_kafka_config pc[] = {{"message.timeout.ms", "300"}};
    o.producer_config = pc;
    o.producer_config_count = 1;
    fs_broker *b = kt_broker(&c2, NULL, &o);
    fs_registry *reg;
    KT_OK(fs_registry_new(&reg));
    fs_prometheus_options po = FS_PROMETHEUS_OPTIONS_INIT;
    po.registry = reg;
    KT_OK(fs_broker_add_prometheus(b, &po));
    KT_OK(fs_broker_connect(b));
    fs_kafka_publish_options nw = FS_KAFKA_PUBLISH_OPTIONS_INIT;
    nw.no_wait = true;
    fs_envelope e = FS_ENVELOPE_INIT;
    e.body = "x";
    e.body_len = 1;
    e.broker_options = &nw;
    fs_envelope sync = e;
    sync.broker_options = NULL;
    KT_OK(fs_publish(b, "nowait", &sync)); /* waits: delivered */
    rd_kafka_mock_broker_set_down(c2.mc, 1);
    KT_OK(fs_publish(b, "nowait", &e)); /* accepted; fails after message.timeout.ms */
    fs_buffer buf = {0};
    const char *want = "status=\"error\"} 1";
    double end = ts_now_s() + 10;
    bool seen = false;
    while (!seen && ts_now_s() < end) {
        ts_sleep_ms(50);
        KT_OK(fs_registry_render(reg, FS_FORMAT_TEXT, &buf));
        seen = strstr(buf.data, want) && strstr(buf.data, "_MSG_TIMED_OUT");
    }
    if (!seen)
        fail_msg("no late error counted:\n%s", buf.data);
    assert_non_null(strstr(buf.data, "status=\"success\"} 1"));
    fs_buffer_free(&buf);
    rd_kafka_mock_broker_set_up(c2.mc, 1);
    fs_broker_free(b);
    fs_registry_free(reg);
    kt_cluster_stop(&c2);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_url_and_options),
        cmocka_unit_test(test_unreachable),
        cmocka_unit_test(test_headers_both_ways),
        cmocka_unit_test(test_many_headers),
        cmocka_unit_test(test_message_ids),
        cmocka_unit_test(test_explicit_partitions_and_offsets),
        cmocka_unit_test(test_batch),
        cmocka_unit_test(test_request_reply),
        cmocka_unit_test(test_publish_cluster_down),
        cmocka_unit_test(test_no_wait_failure_counted),
    };
    return cmocka_run_group_tests(tests, kt_setup, kt_teardown);
}
