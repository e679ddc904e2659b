/*
 * JetStream on the shared nats-server: ack / nak / term as the server
 * records them (consumer info), InProgress keeping a slow handler's message,
 * PubAck and Nats-Msg-Id de-duplication, async batch publish, batch
 * subscribers, durable consumers surviving their service, the backlog,
 * draining on stop and request/reply over the reply_to header.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "nats_test.h"

/* One test's stream, subject and raw connection. */
typedef struct fixture {
    char stream[48], subject[64], wild[64];
    fs_broker *b;
    nt_raw raw;
    fs_nats_subscriber_options no;
    fs_subscriber_options so;
} fixture;

static fixture *fx_new(const char *what)
{
    fixture *f = calloc(1, sizeof *f);
    nt_name(f->stream, sizeof f->stream, what);
    snprintf(f->subject, sizeof f->subject, "%s.orders", f->stream);
    snprintf(f->wild, sizeof f->wild, "%s.>", f->stream);
    f->b = nt_broker();
    nt_stream(f->b, f->stream, f->wild);
    f->raw = nt_raw_connect();
    f->no = (fs_nats_subscriber_options)FS_NATS_SUBSCRIBER_OPTIONS_INIT;
    f->no.stream = f->stream;
    f->no.durable = "dur";
    f->so = (fs_subscriber_options)FS_SUBSCRIBER_OPTIONS_INIT;
    f->so.broker_options = &f->no;
    return f;
}

static void fx_free(fixture *f)
{
    if (f->b) {
        fs_nats_delete_stream(f->b, f->stream);
        fs_broker_free(f->b);
    }
    nt_raw_close(&f->raw);
    free(f);
}

static void publish_n(fixture *f, int n, int from)
{
    for (int i = 0; i < n; i++) {
        char body[16];
        snprintf(body, sizeof body, "%d", from + i);
        nt_js_publish(f->b, f->stream, f->subject, body, NULL);
    }
}

/* Wait until the server has no ack pending on the consumer. */
static jsConsumerInfo *settled_info(fixture *f, const char *consumer)
{
    for (int i = 0; i < 200; i++) {
        jsConsumerInfo *ci = nt_consumer_info(&f->raw, f->stream, consumer);
        if (ci->NumAckPending == 0 && ci->NumPending == 0)
            return ci;
        jsConsumerInfo_Destroy(ci);
        ts_sleep_ms(10);
    }
    return nt_consumer_info(&f->raw, f->stream, consumer);
}

static void test_ack(void **state)
{
    (void)state;
    fixture *f = fx_new("ack");
    ts_log l;
    ts_log_init(&l);
    f->so.concurrency = 3;
    nt_subscribe(f->b, f->subject, &l, &f->so);
    if (fs_broker_start(f->b) != FS_OK)
        fail_msg("start: %s", fs_last_error());
    publish_n(f, 30, 0);
    ts_expect_n(&l, 30, 10000);
    jsConsumerInfo *ci = settled_info(f, "dur");
    assert_int_equal(ci->NumAckPending, 0);
    assert_int_equal(ci->NumPending, 0);
    assert_int_equal(ci->NumRedelivered, 0);
    assert_int_equal(ci->Delivered.Consumer, 30);
    assert_int_equal(ci->AckFloor.Consumer, 30);
    jsConsumerInfo_Destroy(ci);
    assert_string_equal(fs_message_source(ts_msg(&l, 0)), f->subject);
    fs_broker_free(f->b);
    f->b = NULL;
    /* The durable consumer outlives the service. */
    ci = nt_consumer_info(&f->raw, f->stream, "dur");
    jsConsumerInfo_Destroy(ci);
    jsErrCode jerr = 0;
    js_DeleteStream(f->raw.js, f->stream, NULL, &jerr);
    fx_free(f);
    ts_log_free(&l);
}

static _Atomic int nak_calls;
static fs_outcome nak_once(fs_message *m, void *user)
{
    (void)m;
    (void)user;
    return atomic_fetch_add(&nak_calls, 1) == 0 ? FS_OUTCOME_NACK : FS_OUTCOME_OK;
}

static void test_nak_redelivers(void **state)
{
    (void)state;
    fixture *f = fx_new("nak");
    atomic_store(&nak_calls, 0);
    fs_subscriber *sub = NULL;
    assert_int_equal(fs_subscribe(f->b, f->subject, nak_once, NULL, &f->so, &sub), FS_OK);
    if (fs_broker_start(f->b) != FS_OK)
        fail_msg("start: %s", fs_last_error());
    publish_n(f, 1, 0);
    assert_int_equal(fs_subscriber_wait_handled(sub, 2, 10000), FS_OK);
    jsConsumerInfo *ci = settled_info(f, "dur");
    assert_int_equal(ci->NumAckPending, 0);
    assert_int_equal(ci->Delivered.Consumer, 2); /* delivered again after the -NAK */
    assert_int_equal(ci->AckFloor.Stream, 1);
    jsConsumerInfo_Destroy(ci);
    assert_int_equal(atomic_load(&nak_calls), 2);
    fx_free(f);
}

static void test_error_terminates(void **state)
{
    (void)state;
    fixture *f = fx_new("term");
    ts_log l;
    ts_log_init(&l);
    l.outcome = FS_OUTCOME_ERROR; /* REJECT_ON_ERROR, NATS's default: +TERM */
    f->no.ack_wait_ms = 300;
    nt_subscribe(f->b, f->subject, &l, &f->so);
    if (fs_broker_start(f->b) != FS_OK)
        fail_msg("start: %s", fs_last_error());
    publish_n(f, 1, 0);
    ts_expect_n(&l, 1, 10000);
    ts_sleep_ms(1000); /* three AckWaits: no redelivery */
    assert_int_equal(atomic_load(&l.calls), 1);
    jsConsumerInfo *ci = settled_info(f, "dur");
    assert_int_equal(ci->NumAckPending, 0);
    assert_int_equal(ci->NumRedelivered, 0);
    assert_int_equal(ci->Delivered.Consumer, 1);
    jsConsumerInfo_Destroy(ci);
    fx_free(f);
    ts_log_free(&l);
}

static void test_in_progress_keeps_slow_handler(void **state)
{
    (void)state;
    fixture *f = fx_new("wpi");
    ts_log l;
    ts_log_init(&l);
    l.sleep_ms = 2500; /* five AckWaits */
    f->no.ack_wait_ms = 500;
    nt_subscribe(f->b, f->subject, &l, &f->so);
    if (fs_broker_start(f->b) != FS_OK)
        fail_msg("start: %s", fs_last_error());
    publish_n(f, 1, 0);
    ts_expect_n(&l, 1, 10000);
    jsConsumerInfo *ci = settled_info(f, "dur");
    assert_int_equal(ci->NumAckPending, 0);
    assert_int_equal(ci->NumRedelivered, 0);
    assert_int_equal(ci->Delivered.Consumer, 1);
    jsConsumerInfo_Destroy(ci);
    assert_int_equal(atomic_load(&l.calls), 1);
    fx_free(f);
    ts_log_free(&l);
}

static void test_dedupe(void **state)
{
    (void)state;
    fixture *f = fx_new("dedupe");
    nt_js_publish(f->b, f->stream, f->subject, "a", "order-1");
    nt_js_publish(f->b, f->stream, f->subject, "a", "order-1"); /* a retry: dropped */
    nt_js_publish(f->b, f->stream, f->subject, "b", "order-2");
    assert_int_equal(nt_stream_msgs(&f->raw, f->stream), 2);
    /* A subject no stream captures: a clear error. */
    fs_nats_publish_options po = FS_NATS_PUBLISH_OPTIONS_INIT;
    po.jetstream = true;
    po.timeout_ms = 2000;
    fs_envelope env;
    ts_envelope(&env, "x", NULL);
    env.broker_options = &po;
    char nowhere[64];
    nt_name(nowhere, sizeof nowhere, "nowhere");
    assert_int_equal(fs_publish(f->b, nowhere, &env), FS_ENOTFOUND);
    assert_string_equal(fs_last_publish_error_type(), "NoStreamResponseError");
    /* The wrong expected stream: refused by the server. */
    po.stream = "NOT_THIS_ONE";
    po.jetstream = false;
    assert_true(fs_publish(f->b, f->subject, &env) < 0);
    fx_free(f);
}

static void test_batches(void **state)
{
    (void)state;
    fixture *f = fx_new("batch");
    ts_log l;
    ts_log_init(&l);
    f->so.batch_size = 10;
    f->so.batch_timeout_ms = 200;
    nt_subscribe(f->b, f->subject, &l, &f->so);
    if (fs_broker_start(f->b) != FS_OK)
        fail_msg("start: %s", fs_last_error());
    enum { N = 55 };
    fs_envelope env[N];
    char bodies[N][8];
    fs_nats_publish_options po = FS_NATS_PUBLISH_OPTIONS_INIT;
    po.stream = f->stream;
    for (int i = 0; i < N; i++) {
        snprintf(bodies[i], sizeof bodies[i], "%d", i);
        ts_envelope(&env[i], bodies[i], &po);
    }
    assert_int_equal(fs_publish_batch(f->b, f->subject, env, N), FS_OK); /* every PubAck */
    assert_int_equal(nt_stream_msgs(&f->raw, f->stream), N);
    ts_expect_n(&l, N, 10000);
    assert_true(atomic_load(&l.calls) < N); /* handed out in batches */
    jsConsumerInfo *ci = settled_info(f, "dur");
    assert_int_equal(ci->NumAckPending, 0);
    assert_int_equal(ci->Delivered.Consumer, N);
    jsConsumerInfo_Destroy(ci);
    fx_free(f);
    ts_log_free(&l);
}

static void test_durable_resumes(void **state)
{
    (void)state;
    fixture *f = fx_new("resume");
    ts_log l1, l2;
    ts_log_init(&l1);
    ts_log_init(&l2);
    nt_subscribe(f->b, f->subject, &l1, &f->so);
    if (fs_broker_start(f->b) != FS_OK)
        fail_msg("start: %s", fs_last_error());
    publish_n(f, 5, 0);
    ts_expect_n(&l1, 5, 10000);
    fs_broker_free(f->b); /* the service goes away */
    f->b = nt_broker();
    publish_n(f, 5, 5); /* published while it is away */
    nt_subscribe(f->b, f->subject, &l2, &f->so);
    if (fs_broker_start(f->b) != FS_OK)
        fail_msg("start: %s", fs_last_error());
    ts_expect_n(&l2, 5, 10000);
    ts_sleep_ms(200);
    assert_int_equal(ts_log_count(&l2), 5); /* only what it had not seen */
    char buf[16];
    for (size_t i = 0; i < 5; i++)
        assert_int_equal(atoi(ts_body(&l2, i, buf, sizeof buf)), 5 + i);
    fx_free(f);
    ts_log_free(&l1);
    ts_log_free(&l2);
}

static void test_backlog(void **state)
{
    (void)state;
    fixture *f = fx_new("backlog");
    publish_n(f, 7, 0);
    ts_log l;
    ts_log_init(&l);
    f->so.ack_policy = FS_ACK_POLICY_MANUAL; /* handled, never acked: ack pending */
    f->no.pull_batch = 5;
    fs_subscriber *sub = nt_subscribe(f->b, f->subject, &l, &f->so);
    uint64_t backlog = 0;
    assert_int_equal(fs_nats_subscriber_backlog(sub, 2000, &backlog), FS_ESTATE);
    if (fs_broker_start(f->b) != FS_OK)
        fail_msg("start: %s", fs_last_error());
    ts_expect_n(&l, 7, 10000);
    assert_int_equal(fs_nats_subscriber_backlog(sub, 2000, &backlog), FS_OK);
    assert_int_equal(backlog, 7); /* NumPending 0 + NumAckPending 7 */
    fx_free(f);
    ts_log_free(&l);
}

static void stop_drains(fs_nats_consumer_kind kind)
{
    fixture *f = fx_new(kind == FS_NATS_CONSUMER_PUSH ? "drainpush" : "drain");
    f->no.kind = kind;
    ts_log l;
    ts_log_init(&l);
    l.sleep_ms = 300;
    f->so.concurrency = 3;
    nt_subscribe(f->b, f->subject, &l, &f->so);
    publish_n(f, 12, 0);
    if (fs_broker_start(f->b) != FS_OK)
        fail_msg("start: %s", fs_last_error());
    while (atomic_load(&l.calls) < 3)
        ts_sleep_ms(5);
    assert_int_equal(fs_broker_stop(f->b), FS_OK); /* in-flight handlers finish and ack */
    size_t first = ts_log_count(&l);
    assert_true(first >= 3 && first < 12);
    /* every handled one acked (the server applies acks asynchronously: poll a little) */
    uint64_t floor = 0;
    for (int i = 0; i < 200 && floor != first; i++) {
        jsConsumerInfo *ci = nt_consumer_info(&f->raw, f->stream, "dur");
        floor = ci->AckFloor.Stream;
        jsConsumerInfo_Destroy(ci);
        if (floor != first)
            ts_sleep_ms(10);
    }
    assert_int_equal(floor, first);
    l.sleep_ms = 0;
    if (fs_broker_start(f->b) != FS_OK)
        fail_msg("start: %s", fs_last_error());
    ts_expect_n(&l, 12, 10000);
    ts_sleep_ms(200);
    assert_int_equal(ts_log_count(&l), 12); /* nothing lost, nothing twice */
    static bool seen[12];
    memset(seen, 0, sizeof seen);
    char buf[16];
    for (size_t i = 0; i < 12; i++) {
        int v = atoi(ts_body(&l, i, buf, sizeof buf));
        assert_false(seen[v]);
        seen[v] = true;
    }
    fx_free(f);
    ts_log_free(&l);
}

static void test_stop_drains(void **state)
{
    (void)state;
    stop_drains(FS_NATS_CONSUMER_PULL);
}

/* Push: what the server delivered and no worker took is given back at stop. */
static void test_stop_drains_push(void **state)
{
    (void)state;
    stop_drains(FS_NATS_CONSUMER_PUSH);
}

static fs_outcome js_echo(fs_message *m, void *user)
{
    (void)user;
    assert_non_null(fs_message_reply_to(m));
    fs_message_reply(m, "pong", 4, NULL, 0, "text/plain");
    return FS_OUTCOME_OK;
}

static void test_js_request(void **state)
{
    (void)state;
    fixture *f = fx_new("jsrpc");
    assert_int_equal(fs_subscribe(f->b, f->subject, js_echo, NULL, &f->so, NULL), FS_OK);
    if (fs_broker_start(f->b) != FS_OK)
        fail_msg("start: %s", fs_last_error());
    fs_nats_publish_options po = FS_NATS_PUBLISH_OPTIONS_INIT;
    po.stream = f->stream;
    fs_envelope env;
    ts_envelope(&env, "ping", NULL);
    env.correlation_id = "js-req";
    env.broker_options = &po;
    fs_message *reply = NULL;
    assert_int_equal(fs_request(f->b, f->subject, &env, 5000, &reply), FS_OK);
    assert_memory_equal(fs_message_body(reply), "pong", 4);
    assert_string_equal(fs_message_correlation_id(reply), "js-req");
    assert_string_equal(fs_message_content_type(reply), "text/plain");
    fs_message_free(reply);
    fx_free(f);
}

static void test_push_consumer(void **state)
{
    (void)state;
    fixture *f = fx_new("push");
    ts_log l;
    ts_log_init(&l);
    f->no.kind = FS_NATS_CONSUMER_PUSH;
    f->no.durable = NULL; /* ephemeral: deleted at unsubscribe */
    f->so.concurrency = 2;
    nt_subscribe(f->b, f->subject, &l, &f->so);
    if (fs_broker_start(f->b) != FS_OK)
        fail_msg("start: %s", fs_last_error());
    publish_n(f, 20, 0);
    ts_expect_n(&l, 20, 10000);
    ts_sleep_ms(100);
    assert_int_equal(ts_log_count(&l), 20);
    fx_free(f);
    ts_log_free(&l);
}

static void test_declare_idempotent(void **state)
{
    (void)state;
    fixture *f = fx_new("declare");
    char extra[64];
    snprintf(extra, sizeof extra, "%s_more.*", f->stream);
    const char *subjects[] = {f->wild, extra};
    fs_nats_stream_config sc = FS_NATS_STREAM_CONFIG_INIT;
    sc.name = f->stream;
    sc.subjects = subjects;
    sc.subject_count = 1;
    assert_int_equal(fs_nats_declare_stream(f->b, &sc), FS_OK); /* same again: fine */
    sc.subject_count = 2;
    sc.max_msgs = 1000;
    assert_int_equal(fs_nats_declare_stream(f->b, &sc), FS_OK); /* updated: union */
    jsStreamInfo *si = NULL;
    assert_int_equal(js_GetStreamInfo(&si, f->raw.js, f->stream, NULL, NULL), NATS_OK);
    assert_int_equal(si->Config->SubjectsLen, 2);
    assert_int_equal(si->Config->MaxMsgs, 1000);
    jsStreamInfo_Destroy(si);
    sc.name = "bad.name";
    assert_int_equal(fs_nats_declare_stream(f->b, &sc), FS_EINVAL);
    fx_free(f);
}

/* Deliveries as the handler saw them: delivery_count and the in-progress call. */
static _Atomic int rd_calls;
static _Atomic uint32_t rd_counts[8];
static fs_outcome always_fails(fs_message *m, void *user)
{
    (void)user;
    int i = atomic_fetch_add(&rd_calls, 1);
    if (i < 8)
        atomic_store(&rd_counts[i], fs_message_delivery_count(m));
    assert_int_equal(fs_message_in_progress(m), FS_OK); /* by hand: +WPI */
    return fs_message_fail(m, "ValueError", "try again");
}

/* NACK_ON_ERROR with max_deliveries 3: -NAK with the delay twice, then +TERM. */
static void test_redelivery_settings(void **state)
{
    (void)state;
    fixture *f = fx_new("redeliver");
    atomic_store(&rd_calls, 0);
    f->so.ack_policy = FS_ACK_POLICY_NACK_ON_ERROR;
    f->so.redelivery.delay_ms = 100;
    f->so.redelivery.max_delay_ms = 200;
    f->so.redelivery.max_deliveries = 3;
    fs_subscriber *sub = NULL;
    assert_int_equal(fs_subscribe(f->b, f->subject, always_fails, NULL, &f->so, &sub), FS_OK);
    if (fs_broker_start(f->b) != FS_OK)
        fail_msg("start: %s", fs_last_error());
    publish_n(f, 1, 0);
    assert_int_equal(fs_subscriber_wait_handled(sub, 3, 10000), FS_OK);
    ts_sleep_ms(500);
    assert_int_equal(atomic_load(&rd_calls), 3); /* terminated after the third */
    for (int i = 0; i < 3; i++)
        assert_int_equal(atomic_load(&rd_counts[i]), (uint32_t)(i + 1));
    jsConsumerInfo *ci = settled_info(f, "dur");
    assert_int_equal(ci->NumAckPending, 0);
    assert_int_equal(ci->Delivered.Consumer, 3);
    assert_int_equal(ci->Config->MaxDeliver, 3); /* from the redelivery settings */
    assert_int_equal(ci->Config->BackOffLen, 2);
    jsConsumerInfo_Destroy(ci);
    fx_free(f);
}

/* Never acknowledged: the server redelivers after the AckWait (+BackOff), MaxDeliver times. */
static void test_max_deliver_unacked(void **state)
{
    (void)state;
    fixture *f = fx_new("maxdeliver");
    ts_log l;
    ts_log_init(&l);
    f->so.ack_policy = FS_ACK_POLICY_MANUAL;
    f->so.redelivery.delay_ms = 50;
    f->so.redelivery.max_deliveries = 2;
    f->no.ack_wait_ms = 200;
    nt_subscribe(f->b, f->subject, &l, &f->so);
    if (fs_broker_start(f->b) != FS_OK)
        fail_msg("start: %s", fs_last_error());
    publish_n(f, 1, 0);
    ts_expect_n(&l, 2, 10000);
    ts_sleep_ms(800);
    assert_int_equal(ts_log_count(&l), 2); /* MaxDeliver 2: no third */
    fx_free(f);
    ts_log_free(&l);
}

int main(void)
{
    fs_set_log_level(FS_LOG_ERROR);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_ack),
        cmocka_unit_test(test_nak_redelivers),
        cmocka_unit_test(test_error_terminates),
        cmocka_unit_test(test_in_progress_keeps_slow_handler),
        cmocka_unit_test(test_dedupe),
        cmocka_unit_test(test_batches),
        cmocka_unit_test(test_durable_resumes),
        cmocka_unit_test(test_backlog),
        cmocka_unit_test(test_stop_drains),
        cmocka_unit_test(test_stop_drains_push),
        cmocka_unit_test(test_js_request),
        cmocka_unit_test(test_push_consumer),
        cmocka_unit_test(test_declare_idempotent),
        cmocka_unit_test(test_redelivery_settings),
        cmocka_unit_test(test_max_deliver_unacked),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
