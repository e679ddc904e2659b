/*
 * The RabbitMQ broker against the rabbitmq-server of scripts/services.sh:
 * URLs and connection errors, every exchange type and binding, properties
 * and headers both ways (with raw rabbitmq-c on the other side), confirms,
 * returns and nacks, declaration conflicts, passive mode, ack outcomes
 * (dead-lettering), queue depth, request/reply both ways.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "rabbitmq_test.h"

#define WAIT_MS 10000

static fs_broker *start_sub(const char *queue, const fs_rabbitmq_subscriber_options *ro,
                            fs_ack_policy policy, ts_log *rec)
{
    fs_broker *b = qt_broker();
    qt_subscribe(b, queue, ro, policy, rec);
    assert_int_equal(fs_broker_start(b), FS_OK);
    return b;
}

/* ------------------------------------------------------------------------ */

static void urls_and_connection_errors(void **state)
{
    (void)state;
    fs_broker *b;
    assert_int_equal(fs_broker_new("amqp://127.0.0.1:5672/?bogus=1", NULL, &b), FS_EINVAL);
    assert_non_null(strstr(fs_last_error(), "unknown URL parameter 'bogus'"));
    assert_int_equal(fs_broker_new("amqp://127.0.0.1/?heartbeat=x", NULL, &b), FS_EINVAL);
    assert_int_equal(fs_broker_new("amqp://h/?cafile=/x", NULL, &b), FS_EINVAL);
    assert_int_equal(fs_broker_new("amqp://a:1,b:2/", NULL, &b), FS_EUNSUPPORTED);

    assert_int_equal(fs_broker_new("amqp://127.0.0.1:1/", NULL, &b), FS_OK);
    assert_true(fs_broker_is_rabbitmq(b));
    assert_string_equal(fs_broker_name(b), "rabbitmq");
    assert_int_equal(fs_broker_connect(b), FS_EIO);
    assert_non_null(strstr(fs_last_error(), "cannot connect to 127.0.0.1:1"));
    assert_true(fs_publish_bytes(b, "x", "y", 1) < 0);
    fs_broker_free(b);

    char url[256];
    snprintf(url, sizeof url, "amqp://guest:wrong@127.0.0.1:%d/", qt_port());
    assert_int_equal(fs_broker_new(url, NULL, &b), FS_OK);
    assert_int_equal(fs_broker_connect(b), FS_EBROKER);
    assert_non_null(strstr(fs_last_error(), "login refused for user 'guest'"));
    fs_broker_free(b);

    snprintf(url, sizeof url, "amqp://guest:guest@127.0.0.1:%d/no-such-vhost", qt_port());
    assert_int_equal(fs_broker_new(url, NULL, &b), FS_OK);
    assert_int_equal(fs_broker_connect(b), FS_ENOTFOUND);
    assert_non_null(strstr(fs_last_error(), "vhost 'no-such-vhost' not found"));
    fs_broker_free(b);

    snprintf(url, sizeof url,
             "amqp://guest:guest@127.0.0.1:%d/%%2f?heartbeat=5&connection_name=fs-test&prefetch=7",
             qt_port());
    assert_int_equal(fs_broker_new(url, NULL, &b), FS_OK);
    assert_int_equal(fs_broker_connect(b), FS_OK);
    assert_int_equal(fs_broker_ping(b, 2000), FS_OK);
    fs_broker_free(b);
}

static void default_exchange_properties_and_headers(void **state)
{
    (void)state;
    char q[96];
    qt_name(q, sizeof q, "props");
    ts_log rec;
    ts_log_init(&rec);
    fs_broker *b = start_sub(q, NULL, FS_ACK_POLICY_DEFAULT, &rec);
    fs_header h[] = {{"x-test", "value 1", 0}};
    fs_envelope env;
    ts_envelope(&env, "{\"n\":1}", NULL);
    env.headers = h;
    env.header_count = 1;
    env.content_type = "application/json";
    env.correlation_id = "cid-1";
    env.message_id = "mid-1";
    env.reply_to = "somewhere";
    assert_int_equal(fs_publish(b, q, &env), FS_OK);
    assert_true(ts_wait_n(&rec, 1, WAIT_MS));
    char buf[64];
    assert_string_equal(ts_body(&rec, 0, buf, sizeof buf), "{\"n\":1}");
    char label[128];
    snprintf(label, sizeof label, "default.%s", q);
    assert_string_equal(fs_message_source(ts_msg(&rec, 0)), label);
    fs_message *m = ts_msg(&rec, 0);
    assert_string_equal(ts_str(fs_message_content_type(m)), "application/json");
    assert_string_equal(ts_str(fs_message_correlation_id(m)), "cid-1");
    assert_string_equal(ts_str(fs_message_id(m)), "mid-1");
    assert_string_equal(ts_str(fs_message_reply_to(m)), "somewhere");
    assert_string_equal(ts_str(fs_message_header(m, "x-test")), "value 1");
    fs_broker_free(b);
    ts_log_free(&rec);
    assert_int_equal(qt_depth(q), 0); /* acked */
    qt_delete_queue(q);
}

/* Raw rabbitmq-c publishes typed headers: they arrive as strings. */
static void raw_publisher_typed_headers(void **state)
{
    (void)state;
    char q[96];
    qt_name(q, sizeof q, "rawin");
    ts_log rec;
    ts_log_init(&rec);
    fs_broker *b = start_sub(q, NULL, FS_ACK_POLICY_DEFAULT, &rec);
    amqp_connection_state_t c = qt_raw();
    amqp_table_entry_t e[3];
    e[0].key = amqp_cstring_bytes("x-test");
    e[0].value.kind = AMQP_FIELD_KIND_I32;
    e[0].value.value.i32 = -42;
    e[1].key = amqp_cstring_bytes("flag");
    e[1].value.kind = AMQP_FIELD_KIND_BOOLEAN;
    e[1].value.value.boolean = 1;
    e[2].key = amqp_cstring_bytes("s");
    e[2].value.kind = AMQP_FIELD_KIND_UTF8;
    e[2].value.value.bytes = amqp_cstring_bytes("str");
    amqp_basic_properties_t p;
    memset(&p, 0, sizeof p);
    p._flags = AMQP_BASIC_HEADERS_FLAG | AMQP_BASIC_CONTENT_TYPE_FLAG;
    p.headers.num_entries = 3;
    p.headers.entries = e;
    p.content_type = amqp_cstring_bytes("text/plain");
    assert_int_equal(amqp_basic_publish(c, 1, amqp_empty_bytes, amqp_cstring_bytes(q), 0, 0, &p,
                                        amqp_cstring_bytes("raw body")),
                     0);
    assert_true(ts_wait_n(&rec, 1, WAIT_MS));
    char buf[64];
    assert_string_equal(ts_body(&rec, 0, buf, sizeof buf), "raw body");
    fs_message *m = ts_msg(&rec, 0);
    assert_string_equal(ts_str(fs_message_header(m, "x-test")), "-42");
    assert_string_equal(ts_str(fs_message_content_type(m)), "text/plain");
    /* none sent: the core generates a uuid4 */
    assert_int_equal(strlen(ts_str(fs_message_correlation_id(m))), 36);
    qt_raw_close(c);
    fs_broker_free(b);
    ts_log_free(&rec);
    qt_delete_queue(q);
}

/* Our publish, read by raw rabbitmq-c: FastStream's properties. */
static void published_properties_seen_raw(void **state)
{
    (void)state;
    char q[96];
    qt_name(q, sizeof q, "rawout");
    fs_broker *b = qt_broker();
    fs_rabbitmq_queue dq = FS_RABBITMQ_QUEUE_INIT;
    dq.name = q;
    dq.arguments = (fs_rabbitmq_arg[]){FS_RABBITMQ_ARG_INT("x-max-priority", 10)};
    dq.argument_count = 1;
    assert_int_equal(fs_rabbitmq_declare(b, NULL, &dq), FS_OK);
    fs_rabbitmq_publish_options po = FS_RABBITMQ_PUBLISH_OPTIONS_INIT;
    po.persist = true;
    po.priority = 5;
    po.expiration = "60000";
    po.type = "order";
    po.app_id = "tests";
    fs_header h[] = {{"x-test", "v", 0}, {"k2", "v2", 0}};
    fs_envelope env;
    ts_envelope(&env, "hello", NULL);
    env.headers = h;
    env.header_count = 2;
    env.content_type = "text/plain";
    env.broker_options = &po;
    assert_int_equal(fs_publish(b, q, &env), FS_OK);
    uint64_t depth = 0;
    assert_int_equal(fs_rabbitmq_queue_depth(b, q, &depth, NULL), FS_OK);
    assert_int_equal(depth, 1);
    amqp_connection_state_t c = qt_raw();
    amqp_message_t m;
    assert_true(qt_get(c, q, &m, 2000));
    amqp_basic_properties_t *p = &m.properties;
    assert_true(qt_bytes_eq(m.body, "hello"));
    assert_int_equal(p->delivery_mode, 2);
    assert_int_equal(p->priority, 5);
    assert_true(qt_bytes_eq(p->expiration, "60000"));
    assert_true(qt_bytes_eq(p->type, "order"));
    assert_true(qt_bytes_eq(p->app_id, "tests"));
    assert_true(qt_bytes_eq(p->content_type, "text/plain"));
    assert_true(p->_flags & AMQP_BASIC_CORRELATION_ID_FLAG);
    assert_int_equal(p->correlation_id.len, 36); /* generated uuid4 */
    assert_true(p->message_id.len == 36 &&
                !memcmp(p->message_id.bytes, p->correlation_id.bytes, 36));
    assert_true(p->_flags & AMQP_BASIC_TIMESTAMP_FLAG);
    assert_true(p->timestamp > 1600000000u);
    char buf[64];
    assert_string_equal(qt_hdr(&m, "x-test", buf, sizeof buf), "v");
    assert_string_equal(qt_hdr(&m, "k2", buf, sizeof buf), "v2");
    amqp_destroy_message(&m);
    qt_raw_close(c);
    fs_broker_free(b);
    qt_delete_queue(q);
}

/* direct, fanout, topic, headers: which queue gets what. */
static void exchange_types_and_bindings(void **state)
{
    (void)state;
    static const fs_rabbitmq_exchange_type types[] = {FS_RABBITMQ_DIRECT, FS_RABBITMQ_FANOUT,
                                                      FS_RABBITMQ_TOPIC, FS_RABBITMQ_HEADERS};
    for (int t = 0; t < 4; t++) {
        char ex[96], qa[96], qb[96];
        char w[32];
        snprintf(w, sizeof w, "ex%d", t);
        qt_name(ex, sizeof ex, w);
        snprintf(w, sizeof w, "ex%d.a", t);
        qt_name(qa, sizeof qa, w);
        snprintf(w, sizeof w, "ex%d.b", t);
        qt_name(qb, sizeof qb, w);
        ts_log ra, rb;
        ts_log_init(&ra);
        ts_log_init(&rb);
        fs_broker *b = qt_broker();
        fs_rabbitmq_subscriber_options oa = FS_RABBITMQ_SUBSCRIBER_OPTIONS_INIT;
        oa.exchange.name = ex;
        oa.exchange.type = types[t];
        oa.queue.auto_delete = true;
        fs_rabbitmq_subscriber_options ob = oa;
        fs_rabbitmq_arg ha[] = {FS_RABBITMQ_ARG_STR("x-match", "all"),
                                FS_RABBITMQ_ARG_STR("kind", "a")};
        fs_rabbitmq_arg hb[] = {FS_RABBITMQ_ARG_STR("x-match", "any"),
                                FS_RABBITMQ_ARG_STR("kind", "b")};
        if (types[t] == FS_RABBITMQ_TOPIC) {
            oa.queue.routing_key = "order.*";
            ob.queue.routing_key = "#.paid";
        } else if (types[t] == FS_RABBITMQ_HEADERS) {
            oa.queue.bind_arguments = ha;
            oa.queue.bind_argument_count = 2;
            ob.queue.bind_arguments = hb;
            ob.queue.bind_argument_count = 2;
        } else {
            oa.queue.routing_key = "key.a";
            ob.queue.routing_key = "key.b";
        }
        qt_subscribe(b, qa, &oa, FS_ACK_POLICY_DEFAULT, &ra);
        qt_subscribe(b, qb, &ob, FS_ACK_POLICY_DEFAULT, &rb);
        assert_int_equal(fs_broker_start(b), FS_OK);

        fs_rabbitmq_publish_options po = FS_RABBITMQ_PUBLISH_OPTIONS_INIT;
        po.exchange = ex;
        fs_envelope env = FS_ENVELOPE_INIT;
        env.broker_options = &po;
        int want_a, want_b;
        if (types[t] == FS_RABBITMQ_HEADERS) {
            fs_header h1[] = {{"kind", "a", 0}}, h2[] = {{"kind", "b", 0}};
            env.body = "A";
            env.body_len = 1;
            env.headers = h1;
            env.header_count = 1;
            assert_int_equal(fs_publish(b, "ignored", &env), FS_OK);
            env.body = "B";
            env.headers = h2;
            assert_int_equal(fs_publish(b, "ignored", &env), FS_OK);
            want_a = want_b = 1;
        } else {
            const char *keys[] = {"key.a", "key.b", "order.new", "x.paid"};
            for (int k = 0; k < 4; k++) {
                env.body = keys[k];
                env.body_len = strlen(keys[k]);
                int rc = fs_publish(b, keys[k], &env);
                bool routed = types[t] == FS_RABBITMQ_FANOUT ||
                              (types[t] == FS_RABBITMQ_DIRECT && k < 2) ||
                              (types[t] == FS_RABBITMQ_TOPIC && k >= 2);
                assert_int_equal(rc, routed ? FS_OK : FS_ENOTFOUND);
                if (!routed)
                    assert_string_equal(fs_last_publish_error_type(), "MessageReturned");
            }
            want_a = want_b = types[t] == FS_RABBITMQ_FANOUT ? 4 : 1;
        }
        assert_true(ts_wait_n(&ra, want_a, WAIT_MS));
        assert_true(ts_wait_n(&rb, want_b, WAIT_MS));
        ts_sleep_ms(100);
        assert_int_equal(ts_log_count(&ra), want_a);
        assert_int_equal(ts_log_count(&rb), want_b);
        char label[160], buf[64];
        if (types[t] == FS_RABBITMQ_DIRECT) {
            snprintf(label, sizeof label, "%s.key.a", ex);
            assert_string_equal(fs_message_source(ts_msg(&ra, 0)), label);
            assert_string_equal(ts_body(&ra, 0, buf, sizeof buf), "key.a");
            assert_string_equal(ts_body(&rb, 0, buf, sizeof buf), "key.b");
        } else if (types[t] == FS_RABBITMQ_TOPIC) {
            assert_string_equal(ts_body(&ra, 0, buf, sizeof buf), "order.new");
            assert_string_equal(ts_body(&rb, 0, buf, sizeof buf), "x.paid");
        } else if (types[t] == FS_RABBITMQ_HEADERS) {
            assert_string_equal(ts_body(&ra, 0, buf, sizeof buf), "A");
            assert_string_equal(ts_body(&rb, 0, buf, sizeof buf), "B");
        }
        fs_broker_free(b);
        ts_log_free(&ra);
        ts_log_free(&rb);
        qt_delete_exchange(ex);
    }
}

static void confirms_returns_nacks_and_channel_errors(void **state)
{
    (void)state;
    char q[96];
    qt_name(q, sizeof q, "nackq");
    fs_broker *b = qt_broker();
    /* unroutable + mandatory: returned */
    assert_int_equal(fs_publish_bytes(b, "fstest.no.such.queue", "x", 1), FS_ENOTFOUND);
    assert_string_equal(fs_last_publish_error_type(), "MessageReturned");
    /* not mandatory: dropped quietly, confirmed */
    fs_rabbitmq_publish_options po = FS_RABBITMQ_PUBLISH_OPTIONS_INIT;
    po.not_mandatory = true;
    fs_envelope env;
    ts_envelope(&env, "x", NULL);
    env.broker_options = &po;
    assert_int_equal(fs_publish(b, "fstest.no.such.queue", &env), FS_OK);
    /* missing exchange: the channel is closed with 404, then reopened */
    assert_int_equal(qt_publish(b, "fstest.no.such.exchange", "k", "x"), FS_ENOTFOUND);
    assert_string_equal(fs_last_publish_error_type(), "ChannelNotFoundEntity");
    assert_non_null(strstr(fs_last_error(), "NOT_FOUND"));
    /* a full queue with reject-publish overflow: basic.nack */
    fs_rabbitmq_queue dq = FS_RABBITMQ_QUEUE_INIT;
    dq.name = q;
    fs_rabbitmq_arg args[] = {FS_RABBITMQ_ARG_INT("x-max-length", 1),
                              FS_RABBITMQ_ARG_STR("x-overflow", "reject-publish")};
    dq.arguments = args;
    dq.argument_count = 2;
    assert_int_equal(fs_rabbitmq_declare(b, NULL, &dq), FS_OK);
    assert_int_equal(fs_publish_bytes(b, q, "1", 1), FS_OK);
    assert_int_equal(fs_publish_bytes(b, q, "2", 1), FS_EBROKER);
    assert_string_equal(fs_last_publish_error_type(), "MessageNacked");
    /* a batch: all confirmed at once */
    fs_envelope batch[20];
    for (int i = 0; i < 20; i++) {
        batch[i] = (fs_envelope)FS_ENVELOPE_INIT;
        batch[i].body = "b";
        batch[i].body_len = 1;
    }
    char q2[96];
    qt_name(q2, sizeof q2, "batchq");
    dq = (fs_rabbitmq_queue)FS_RABBITMQ_QUEUE_INIT;
    dq.name = q2;
    assert_int_equal(fs_rabbitmq_declare(b, NULL, &dq), FS_OK);
    assert_int_equal(fs_publish_batch(b, q2, batch, 20), FS_OK);
    uint64_t depth = 0;
    assert_int_equal(fs_rabbitmq_queue_depth(b, q2, &depth, NULL), FS_OK);
    assert_int_equal(depth, 20);
    assert_int_equal(fs_rabbitmq_queue_depth(b, "fstest.no.such.queue", &depth, NULL),
                     FS_ENOTFOUND);
    fs_rabbitmq_delete_queue(b, q);
    fs_rabbitmq_delete_queue(b, q2);
    fs_broker_free(b);
}

static void declaration_conflicts_and_passive(void **state)
{
    (void)state;
    char q[96];
    qt_name(q, sizeof q, "conflict");
    fs_broker *b = qt_broker();
    fs_rabbitmq_queue dq = FS_RABBITMQ_QUEUE_INIT;
    dq.name = q;
    dq.durable = true;
    assert_int_equal(fs_rabbitmq_declare(b, NULL, &dq), FS_OK);
    assert_int_equal(fs_rabbitmq_declare(b, NULL, &dq), FS_OK); /* idempotent */
    ts_log rec;
    ts_log_init(&rec);
    fs_rabbitmq_subscriber_options ro = FS_RABBITMQ_SUBSCRIBER_OPTIONS_INIT; /* not durable */
    qt_subscribe(b, q, &ro, FS_ACK_POLICY_DEFAULT, &rec);
    assert_int_equal(fs_broker_start(b), FS_ECONFLICT);
    assert_non_null(strstr(fs_last_error(), "PRECONDITION_FAILED"));
    assert_non_null(strstr(fs_last_error(), q));
    fs_broker_free(b);

    b = qt_broker();
    ro.queue.passive = true;
    ro.queue.name = "fstest.no.such.queue";
    qt_subscribe(b, q, &ro, FS_ACK_POLICY_DEFAULT, &rec);
    assert_int_equal(fs_broker_start(b), FS_ENOTFOUND);
    assert_non_null(strstr(fs_last_error(), "NOT_FOUND"));
    fs_broker_free(b);

    b = qt_broker(); /* passive on an existing queue: fine */
    ro.queue.name = q;
    qt_subscribe(b, q, &ro, FS_ACK_POLICY_DEFAULT, &rec);
    assert_int_equal(fs_broker_start(b), FS_OK);
    fs_rabbitmq_delete_queue(b, q);
    fs_broker_free(b);
    ts_log_free(&rec);
}

/* REJECT_ON_ERROR: a failing handler's message is dead-lettered. */
static void reject_dead_letters_and_ack_first(void **state)
{
    (void)state;
    char q[96], dlq[96];
    qt_name(q, sizeof q, "dlsrc");
    qt_name(dlq, sizeof dlq, "dlq");
    fs_broker *b = qt_broker();
    fs_rabbitmq_queue d = FS_RABBITMQ_QUEUE_INIT;
    d.name = dlq;
    assert_int_equal(fs_rabbitmq_declare(b, NULL, &d), FS_OK);
    ts_log rec;
    ts_log_init(&rec);
    rec.fail_first = 1;
    fs_rabbitmq_arg args[] = {FS_RABBITMQ_ARG_STR("x-dead-letter-exchange", ""),
                              FS_RABBITMQ_ARG_STR("x-dead-letter-routing-key", dlq),
                              FS_RABBITMQ_ARG_INT("x-message-ttl", 600000)};
    fs_rabbitmq_subscriber_options ro = FS_RABBITMQ_SUBSCRIBER_OPTIONS_INIT;
    ro.queue.arguments = args;
    ro.queue.argument_count = 3;
    qt_subscribe(b, q, &ro, FS_ACK_POLICY_DEFAULT, &rec);
    assert_int_equal(fs_broker_start(b), FS_OK);
    assert_int_equal(fs_publish_bytes(b, q, "bad", 3), FS_OK);
    assert_int_equal(fs_publish_bytes(b, q, "good", 4), FS_OK);
    assert_true(ts_wait_n(&rec, 2, WAIT_MS));
    for (int i = 0; i < 100 && qt_depth(dlq) < 1; i++)
        ts_sleep_ms(20);
    assert_int_equal(qt_depth(dlq), 1);
    assert_int_equal(qt_depth(q), 0);
    fs_broker_free(b);
    ts_log_free(&rec);

    /* ACK_FIRST consumes with no_ack: a failure loses the message (FastStream's). */
    char q2[96];
    qt_name(q2, sizeof q2, "ackfirst");
    ts_log r2;
    ts_log_init(&r2);
    r2.fail_first = 1;
    b = start_sub(q2, NULL, FS_ACK_POLICY_ACK_FIRST, &r2);
    assert_int_equal(fs_publish_bytes(b, q2, "x", 1), FS_OK);
    assert_true(ts_wait_n(&r2, 1, WAIT_MS));
    fs_broker_free(b);
    ts_log_free(&r2);
    assert_int_equal(qt_depth(q2), 0);
    qt_delete_queue(q);
    qt_delete_queue(q2);
    qt_delete_queue(dlq);
}

/* What a copy of a delivery loses: the server's redelivered flag (user: bool[8]). */
static void see_redelivered(void *user, size_t i, const fs_message *m)
{
    const fs_rabbitmq_message_info *info = fs_message_raw(m);
    if (i < 8)
        ((bool *)user)[i] = info && info->redelivered;
}

/* NACK_ON_ERROR: redelivered (after the delay) until the handler succeeds. */
static void nack_redelivers(void **state)
{
    (void)state;
    char q[96];
    qt_name(q, sizeof q, "nack");
    bool redelivered[8] = {0};
    ts_log rec;
    ts_log_init(&rec);
    rec.fail_first = 2;
    rec.see = see_redelivered;
    rec.see_user = redelivered;
    fs_broker *b = start_sub(q, NULL, FS_ACK_POLICY_NACK_ON_ERROR, &rec);
    assert_int_equal(fs_publish_bytes(b, q, "poison?", 7), FS_OK);
    assert_true(ts_wait_n(&rec, 3, WAIT_MS));
    assert_false(redelivered[0]);
    assert_true(redelivered[1]);
    assert_true(redelivered[2]);
    assert_int_equal(fs_message_delivery_count(ts_msg(&rec, 0)), 1);
    assert_int_equal(fs_message_delivery_count(ts_msg(&rec, 1)), 2);
    assert_int_equal(fs_message_delivery_count(ts_msg(&rec, 2)), 3);
    ts_sleep_ms(200);
    assert_int_equal(ts_log_count(&rec), 3);
    fs_broker_free(b);
    ts_log_free(&rec);
    assert_int_equal(qt_depth(q), 0);
    qt_delete_queue(q);
}

/* A NACK_ON_ERROR subscriber of `q` on `b` whose handler always fails: delay 20 ms, 3 at most. */
static void start_poison_sub(fs_broker *b, const char *q, const fs_rabbitmq_subscriber_options *ro,
                             ts_log *rec)
{
    ts_log_init(rec);
    rec->fail_first = 1000;
    fs_subscriber_options so = FS_SUBSCRIBER_OPTIONS_INIT;
    so.broker_options = ro;
    so.ack_policy = FS_ACK_POLICY_NACK_ON_ERROR;
    so.redelivery.delay_ms = 20;
    so.redelivery.max_deliveries = 3;
    assert_int_equal(fs_subscribe(b, q, ts_record, rec, &so, NULL), FS_OK);
    assert_int_equal(fs_broker_start(b), FS_OK);
}

/* A poison message under NACK_ON_ERROR: at most max_deliveries, then rejected (dead-lettered). */
static void poison_message_max_deliveries(void **state)
{
    (void)state;
    char q[96], dlq[96];
    qt_name(q, sizeof q, "poison");
    qt_name(dlq, sizeof dlq, "poison.dlq");
    fs_broker *b = qt_broker();
    fs_rabbitmq_queue d = FS_RABBITMQ_QUEUE_INIT;
    d.name = dlq;
    assert_int_equal(fs_rabbitmq_declare(b, NULL, &d), FS_OK);
    fs_rabbitmq_arg args[] = {FS_RABBITMQ_ARG_STR("x-dead-letter-exchange", ""),
                              FS_RABBITMQ_ARG_STR("x-dead-letter-routing-key", dlq)};
    fs_rabbitmq_subscriber_options ro = FS_RABBITMQ_SUBSCRIBER_OPTIONS_INIT;
    ro.queue.arguments = args;
    ro.queue.argument_count = 2;
    ts_log rec;
    start_poison_sub(b, q, &ro, &rec);
    assert_int_equal(fs_publish_bytes(b, q, "poison", 6), FS_OK);
    assert_true(ts_wait_n(&rec, 3, WAIT_MS));
    for (int i = 0; i < 100 && qt_depth(dlq) < 1; i++)
        ts_sleep_ms(20);
    assert_int_equal(qt_depth(dlq), 1);
    ts_sleep_ms(300);
    assert_int_equal(ts_log_count(&rec), 3);
    assert_int_equal(fs_message_delivery_count(ts_msg(&rec, 2)), 3);
    fs_broker_free(b);
    ts_log_free(&rec);
    assert_int_equal(qt_depth(q), 0);
    qt_delete_queue(q);
    qt_delete_queue(dlq);
}

/* A quorum queue counts deliveries itself (x-delivery-count): the limit holds there too. */
static void quorum_queue_delivery_count(void **state)
{
    (void)state;
    char q[96];
    qt_name(q, sizeof q, "quorum");
    fs_rabbitmq_arg args[] = {FS_RABBITMQ_ARG_STR("x-queue-type", "quorum")};
    fs_rabbitmq_subscriber_options ro = FS_RABBITMQ_SUBSCRIBER_OPTIONS_INIT;
    ro.queue.durable = true;
    ro.queue.arguments = args;
    ro.queue.argument_count = 1;
    fs_broker *b = qt_broker();
    ts_log rec;
    start_poison_sub(b, q, &ro, &rec);
    fs_envelope env;
    ts_envelope(&env, "q", NULL);
    env.message_id = "same-id"; /* the quorum queue's count, not ours by id */
    assert_int_equal(fs_publish(b, q, &env), FS_OK);
    assert_true(ts_wait_n(&rec, 3, WAIT_MS));
    ts_sleep_ms(300);
    assert_int_equal(ts_log_count(&rec), 3);
    assert_int_equal(fs_message_delivery_count(ts_msg(&rec, 0)), 1);
    assert_int_equal(fs_message_delivery_count(ts_msg(&rec, 1)), 2);
    assert_int_equal(fs_message_delivery_count(ts_msg(&rec, 2)), 3);
    /* the server's count on the last delivery */
    assert_string_equal(ts_str(fs_message_header(ts_msg(&rec, 2), "x-delivery-count")), "2");
    fs_rabbitmq_delete_queue(b, q);
    fs_broker_free(b);
    ts_log_free(&rec);
}

/* Closing while nacks wait for their delay (no max deliveries): they are sent, nothing hangs. */
static void close_while_nacks_wait(void **state)
{
    (void)state;
    char q[96];
    qt_name(q, sizeof q, "spin");
    for (int round = 0; round < 3; round++) {
        ts_log rec;
        ts_log_init(&rec);
        rec.fail_first = 1000000;
        fs_broker *b = qt_broker();
        fs_subscriber_options so = FS_SUBSCRIBER_OPTIONS_INIT;
        so.ack_policy = FS_ACK_POLICY_NACK_ON_ERROR;
        so.concurrency = 2;
        so.redelivery.delay_ms = 5;
        assert_int_equal(fs_subscribe(b, q, ts_record, &rec, &so, NULL), FS_OK);
        assert_int_equal(fs_broker_start(b), FS_OK);
        for (int i = 0; i < 4; i++)
            assert_int_equal(fs_publish_bytes(b, q, "p", 1), FS_OK);
        assert_true(ts_wait_n(&rec, 8, WAIT_MS));
        assert_int_equal(fs_broker_close(b), FS_OK);
        fs_broker_free(b);
        ts_log_free(&rec);
    }
    for (int i = 0; i < 100 && qt_depth(q) < 12; i++)
        ts_sleep_ms(20);
    assert_int_equal(qt_depth(q), 12); /* 4 a round, all requeued */
    qt_delete_queue(q);
}

static fs_outcome slow_handler(fs_message *m, void *user)
{
    (void)m;
    atomic_fetch_add((atomic_int *)user, 1);
    ts_sleep_ms(50);
    return FS_OUTCOME_OK;
}

/* fs_broker_stop: deliveries prefetched but never handed to a handler go back to the queue. */
static void stop_gives_back_prefetched(void **state)
{
    (void)state;
    char q[96];
    qt_name(q, sizeof q, "giveback");
    atomic_int handled = 0;
    fs_broker *b = qt_broker();
    fs_rabbitmq_subscriber_options ro = FS_RABBITMQ_SUBSCRIBER_OPTIONS_INIT;
    ro.prefetch = 50;
    fs_subscriber_options so = FS_SUBSCRIBER_OPTIONS_INIT;
    so.broker_options = &ro;
    assert_int_equal(fs_subscribe(b, q, slow_handler, &handled, &so, NULL), FS_OK);
    assert_int_equal(fs_broker_start(b), FS_OK);
    for (int i = 0; i < 20; i++)
        assert_int_equal(fs_publish_bytes(b, q, "x", 1), FS_OK);
    while (atomic_load(&handled) < 1)
        ts_sleep_ms(5);
    assert_int_equal(fs_broker_stop(b), FS_OK);
    int n = atomic_load(&handled);
    uint64_t depth = 0;
    for (int i = 0; i < 100; i++) { /* still connected: nothing held back */
        assert_int_equal(fs_rabbitmq_queue_depth(b, q, &depth, NULL), FS_OK);
        if ((int)depth == 20 - n)
            break;
        ts_sleep_ms(20);
    }
    assert_int_equal((int)depth, 20 - n);
    assert_int_equal(atomic_load(&handled), n); /* no handler call after stop */
    fs_rabbitmq_delete_queue(b, q);
    fs_broker_free(b);
}

/* The backlog op: the queue's ready messages (a passive declare). */
static void backlog_is_the_queue_depth(void **state)
{
    (void)state;
    char q[96];
    qt_name(q, sizeof q, "backlog");
    fs_broker *b = qt_broker();
    fs_rabbitmq_queue dq = FS_RABBITMQ_QUEUE_INIT;
    dq.name = q;
    assert_int_equal(fs_rabbitmq_declare(b, NULL, &dq), FS_OK);
    for (int i = 0; i < 3; i++)
        assert_int_equal(fs_publish_bytes(b, q, "x", 1), FS_OK);
    ts_log rec;
    ts_log_init(&rec);
    fs_subscriber *sub = qt_subscribe(b, q, NULL, FS_ACK_POLICY_DEFAULT, &rec);
    uint64_t n = 0;
    assert_int_equal(fs_subscriber_backlog(sub, 2000, &n), FS_OK);
    assert_int_equal(n, 3);
    assert_int_equal(fs_broker_start(b), FS_OK);
    assert_true(ts_wait_n(&rec, 3, WAIT_MS));
    assert_int_equal(fs_subscriber_backlog(sub, 2000, &n), FS_OK);
    assert_int_equal(n, 0);
    fs_rabbitmq_delete_queue(b, q);
    fs_broker_free(b);
    ts_log_free(&rec);
}

/* MANUAL and unsettled: the message stays with the server, redelivered to the next consumer. */
static void unsettled_goes_back_to_the_queue(void **state)
{
    (void)state;
    char q[96];
    qt_name(q, sizeof q, "manual");
    ts_log rec;
    ts_log_init(&rec);
    fs_broker *b = start_sub(q, NULL, FS_ACK_POLICY_MANUAL, &rec);
    assert_int_equal(fs_publish_bytes(b, q, "m", 1), FS_OK);
    assert_true(ts_wait_n(&rec, 1, WAIT_MS));
    fs_broker_free(b);
    ts_log_free(&rec);
    for (int i = 0; i < 100 && qt_depth(q) < 1; i++)
        ts_sleep_ms(20);
    assert_int_equal(qt_depth(q), 1);
    qt_delete_queue(q);
}

/* fs_request (direct reply-to) to a C responder; replies to "queue|exchange". */
static void request_reply(void **state)
{
    (void)state;
    char q[96];
    qt_name(q, sizeof q, "rpc");
    ts_log rec;
    ts_log_init(&rec);
    rec.reply = "pong";
    fs_broker *b = start_sub(q, NULL, FS_ACK_POLICY_DEFAULT, &rec);
    fs_envelope env;
    ts_envelope(&env, "ping", NULL);
    env.correlation_id = "rpc-1";
    fs_message *reply = NULL;
    assert_int_equal(fs_request(b, q, &env, 5000, &reply), FS_OK);
    assert_non_null(reply);
    assert_int_equal(fs_message_body_len(reply), 4);
    assert_memory_equal(fs_message_body(reply), "pong", 4);
    assert_string_equal(fs_message_correlation_id(reply), "rpc-1");
    fs_message_free(reply);
    assert_true(
        strncmp(ts_str(fs_message_reply_to(ts_msg(&rec, 0))), "amq.rabbitmq.reply-to", 21) == 0);
    /* several at once from threads would share the channel; one more without a cid */
    env.correlation_id = NULL;
    assert_int_equal(fs_request(b, q, &env, 5000, &reply), FS_OK);
    fs_message_free(reply);
    /* nobody there: returned at once */
    assert_int_equal(fs_request(b, "fstest.no.such.queue", &env, 5000, &reply), FS_ENOTFOUND);

    /* a raw requester with reply_to "queue|exchange": the reply goes through the exchange */
    char rq[96], rex[96], dest[200];
    qt_name(rq, sizeof rq, "replies");
    qt_name(rex, sizeof rex, "replyex");
    fs_rabbitmq_exchange x = FS_RABBITMQ_EXCHANGE_INIT;
    x.name = rex;
    fs_rabbitmq_queue rqq = FS_RABBITMQ_QUEUE_INIT;
    rqq.name = rq;
    assert_int_equal(fs_rabbitmq_declare(b, &x, &rqq), FS_OK);
    snprintf(dest, sizeof dest, "%s|%s", rq, rex);
    env.reply_to = dest;
    assert_int_equal(fs_publish(b, q, &env), FS_OK);
    amqp_connection_state_t c = qt_raw();
    amqp_message_t m;
    assert_true(qt_get(c, rq, &m, 5000));
    assert_true(qt_bytes_eq(m.body, "pong"));
    amqp_destroy_message(&m);

    /* a raw direct reply-to requester */
    amqp_basic_consume(c, 1, amqp_cstring_bytes("amq.rabbitmq.reply-to"), amqp_empty_bytes, 0, 1, 0,
                       amqp_empty_table);
    assert_int_equal(amqp_get_rpc_reply(c).reply_type, AMQP_RESPONSE_NORMAL);
    amqp_basic_properties_t p;
    memset(&p, 0, sizeof p);
    p._flags = AMQP_BASIC_REPLY_TO_FLAG | AMQP_BASIC_CORRELATION_ID_FLAG;
    p.reply_to = amqp_cstring_bytes("amq.rabbitmq.reply-to");
    p.correlation_id = amqp_cstring_bytes("raw-1");
    amqp_basic_publish(c, 1, amqp_empty_bytes, amqp_cstring_bytes(q), 0, 0, &p,
                       amqp_cstring_bytes("ping"));
    amqp_envelope_t ev;
    struct timeval tv = {5, 0};
    assert_int_equal(amqp_consume_message(c, &ev, &tv, 0).reply_type, AMQP_RESPONSE_NORMAL);
    assert_true(qt_bytes_eq(ev.message.body, "pong"));
    assert_true(qt_bytes_eq(ev.message.properties.correlation_id, "raw-1"));
    amqp_destroy_envelope(&ev);
    qt_raw_close(c);
    fs_rabbitmq_delete_queue(b, rq);
    fs_rabbitmq_delete_exchange(b, rex);
    fs_broker_free(b);
    ts_log_free(&rec);
    qt_delete_queue(q);
}

/* fs_request from C to a raw responder. */
static void *raw_responder(void *arg)
{
    const char *q = arg;
    amqp_connection_state_t c = qt_raw();
    amqp_message_t m;
    if (qt_get(c, q, &m, 5000)) {
        amqp_basic_properties_t p;
        memset(&p, 0, sizeof p);
        p._flags = AMQP_BASIC_CORRELATION_ID_FLAG;
        p.correlation_id = m.properties.correlation_id;
        amqp_basic_publish(c, 1, amqp_empty_bytes, m.properties.reply_to, 0, 0, &p,
                           amqp_cstring_bytes("raw pong"));
        amqp_destroy_message(&m);
    }
    qt_raw_close(c);
    return NULL;
}

static void request_to_a_raw_responder(void **state)
{
    (void)state;
    char q[96];
    qt_name(q, sizeof q, "rawrpc");
    fs_broker *b = qt_broker();
    fs_rabbitmq_queue dq = FS_RABBITMQ_QUEUE_INIT;
    dq.name = q;
    assert_int_equal(fs_rabbitmq_declare(b, NULL, &dq), FS_OK);
    pthread_t t;
    pthread_create(&t, NULL, raw_responder, q);
    fs_envelope env;
    ts_envelope(&env, "ping", NULL);
    fs_message *reply = NULL;
    assert_int_equal(fs_request(b, q, &env, 5000, &reply), FS_OK);
    assert_memory_equal(fs_message_body(reply), "raw pong", 8);
    fs_message_free(reply);
    pthread_join(t, NULL);
    /* nobody answers: a timeout */
    assert_int_equal(fs_request(b, q, &env, 300, &reply), FS_ETIMEDOUT);
    fs_rabbitmq_delete_queue(b, q);
    fs_broker_free(b);
}

static void tls(void **state)
{
    (void)state;
    char tlsdir[400], url[2400];
    snprintf(tlsdir, sizeof tlsdir, "%s/rabbitmq/tls", qt_state_dir());
    if (access(tlsdir, R_OK) != 0)
        fail_msg("no test CA in %s (scripts/services.sh start rabbitmq makes it)", tlsdir);
    fs_broker *b;
    /* verify peer and host name against the test CA */
    snprintf(url, sizeof url, "amqps://guest:guest@localhost:%d/?cafile=%s/ca.pem", qt_tls_port(),
             tlsdir);
    assert_int_equal(fs_broker_new(url, NULL, &b), FS_OK);
    assert_int_equal(fs_broker_connect(b), FS_OK);
    char q[96];
    qt_name(q, sizeof q, "tls");
    ts_log rec;
    ts_log_init(&rec);
    qt_subscribe(b, q, NULL, FS_ACK_POLICY_DEFAULT, &rec);
    assert_int_equal(fs_broker_start(b), FS_OK);
    assert_int_equal(fs_publish_bytes(b, q, "secret", 6), FS_OK);
    assert_true(ts_wait_n(&rec, 1, WAIT_MS));
    fs_broker_free(b);
    ts_log_free(&rec);
    /* with a client certificate */
    snprintf(url, sizeof url,
             "amqps://guest:guest@localhost:%d/?cafile=%s/ca.pem&certfile=%s/client.pem&keyfile="
             "%s/client.key",
             qt_tls_port(), tlsdir, tlsdir, tlsdir);
    assert_int_equal(fs_broker_new(url, NULL, &b), FS_OK);
    assert_int_equal(fs_broker_connect(b), FS_OK);
    fs_broker_free(b);
    /* the server's certificate is not signed by the system's CAs: refused */
    snprintf(url, sizeof url, "amqps://guest:guest@localhost:%d/", qt_tls_port());
    assert_int_equal(fs_broker_new(url, NULL, &b), FS_OK);
    assert_int_not_equal(fs_broker_connect(b), FS_OK);
    assert_non_null(strstr(fs_last_error(), "(TLS)"));
    fs_broker_free(b);
    /* unless verification is off */
    snprintf(url, sizeof url, "amqps://guest:guest@localhost:%d/?verify=false", qt_tls_port());
    assert_int_equal(fs_broker_new(url, NULL, &b), FS_OK);
    assert_int_equal(fs_broker_connect(b), FS_OK);
    fs_broker_free(b);
    qt_delete_queue(q);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(urls_and_connection_errors),
        cmocka_unit_test(default_exchange_properties_and_headers),
        cmocka_unit_test(raw_publisher_typed_headers),
        cmocka_unit_test(published_properties_seen_raw),
        cmocka_unit_test(exchange_types_and_bindings),
        cmocka_unit_test(confirms_returns_nacks_and_channel_errors),
        cmocka_unit_test(declaration_conflicts_and_passive),
        cmocka_unit_test(reject_dead_letters_and_ack_first),
        cmocka_unit_test(nack_redelivers),
        cmocka_unit_test(poison_message_max_deliveries),
        cmocka_unit_test(quorum_queue_delivery_count),
        cmocka_unit_test(close_while_nacks_wait),
        cmocka_unit_test(stop_gives_back_prefetched),
        cmocka_unit_test(backlog_is_the_queue_depth),
        cmocka_unit_test(unsettled_goes_back_to_the_queue),
        cmocka_unit_test(request_reply),
        cmocka_unit_test(request_to_a_raw_responder),
        cmocka_unit_test(tls),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
