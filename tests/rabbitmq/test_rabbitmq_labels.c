/*
 * The destination label of RabbitMQ publishes against the real server:
 * FastStream's "{exchange or 'default'}.{routing_key}" for a publisher, a
 * plain fs_publish, a request and a handler's replies (seen by a publish
 * middleware; replies are not counted), and in the Prometheus families.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "rabbitmq_test.h"

#include "faststream/prometheus.h"

#define WAIT_MS 10000
#define SEEN 16

typedef struct seen {
    pthread_mutex_t mu;
    int n;
    char label[SEEN][200];
    bool is_reply[SEEN];
} seen;

static int seen_publish(fs_publish_ctx *ctx)
{
    seen *s = ctx->state;
    pthread_mutex_lock(&s->mu);
    if (s->n < SEEN) {
        snprintf(s->label[s->n], sizeof s->label[0], "%s", ctx->destination);
        s->is_reply[s->n] = ctx->is_reply;
    }
    s->n++;
    pthread_mutex_unlock(&s->mu);
    return fs_publish_next(ctx);
}

/* Whether a publish (is_reply as given) with this label was seen. */
static bool was_seen(seen *s, const char *label, bool is_reply)
{
    pthread_mutex_lock(&s->mu);
    bool found = false;
    for (int i = 0; i < s->n && i < SEEN && !found; i++)
        found = strcmp(s->label[i], label) == 0 && s->is_reply[i] == is_reply;
    pthread_mutex_unlock(&s->mu);
    return found;
}

static bool has_sample(const char *text, const char *labels, const char *value)
{
    char want[400];
    snprintf(want, sizeof want, "faststream_published_messages_total{%s} %s\n", labels, value);
    return strstr(text, want) != NULL;
}

static void labels_of_every_publish(void **state)
{
    (void)state;
    char q[96], ex[96], rq[96], rex[96], key[] = "order.created";
    qt_name(q, sizeof q, "lbl");
    qt_name(ex, sizeof ex, "lblex");
    qt_name(rq, sizeof rq, "lblreplies");
    qt_name(rex, sizeof rex, "lblreplyex");
    fs_registry *reg;
    assert_int_equal(fs_registry_new(&reg), FS_OK);
    seen s;
    memset(&s, 0, sizeof s);
    pthread_mutex_init(&s.mu, NULL);
    ts_log rec;
    ts_log_init(&rec);
    rec.reply = "pong";

    fs_broker *b = qt_broker();
    fs_prometheus_options po = FS_PROMETHEUS_OPTIONS_INIT;
    po.registry = reg;
    assert_int_equal(fs_broker_add_prometheus(b, &po), FS_OK);
    fs_middleware mw = {.name = "seen", .publish = seen_publish, .state = &s};
    assert_int_equal(fs_broker_add_middleware(b, &mw), FS_OK);
    /* the queue, bound to a direct exchange with the key */
    fs_rabbitmq_subscriber_options so = FS_RABBITMQ_SUBSCRIBER_OPTIONS_INIT;
    so.exchange.name = ex;
    so.queue.routing_key = key;
    so.queue.auto_delete = true;
    qt_subscribe(b, q, &so, FS_ACK_POLICY_DEFAULT, &rec);
    assert_int_equal(fs_broker_start(b), FS_OK);

    /* a publisher to the exchange: labelled once, "EX.KEY" */
    fs_rabbitmq_publish_options to_ex = FS_RABBITMQ_PUBLISH_OPTIONS_INIT;
    to_ex.exchange = ex;
    fs_publisher_options pubo = FS_PUBLISHER_OPTIONS_INIT;
    pubo.broker_options = &to_ex;
    fs_publisher *pub;
    assert_int_equal(fs_publisher_new(b, key, &pubo, &pub), FS_OK);
    assert_int_equal(fs_publisher_publish_bytes(pub, "one", 3), FS_OK);
    assert_int_equal(fs_publisher_publish_bytes(pub, "two", 3), FS_OK);
    /* a plain publish to the default exchange: "default.QUEUE" */
    assert_int_equal(fs_publish_bytes(b, q, "three", 5), FS_OK);
    /* a request through the exchange: counted as a publish to "EX.KEY" */
    fs_envelope env;
    ts_envelope(&env, "ping", NULL);
    env.broker_options = &to_ex;
    fs_message *reply = NULL;
    assert_int_equal(fs_request(b, key, &env, 5000, &reply), FS_OK);
    assert_memory_equal(fs_message_body(reply), "pong", 4);
    fs_message_free(reply);
    /* a reply to "queue|exchange" (FastStream's reply_to): "REX.RQ", not counted */
    fs_rabbitmq_exchange x = FS_RABBITMQ_EXCHANGE_INIT;
    x.name = rex;
    fs_rabbitmq_queue rqq = FS_RABBITMQ_QUEUE_INIT;
    rqq.name = rq;
    assert_int_equal(fs_rabbitmq_declare(b, &x, &rqq), FS_OK);
    char reply_to[200];
    snprintf(reply_to, sizeof reply_to, "%s|%s", rq, rex);
    env.broker_options = NULL;
    env.reply_to = reply_to;
    assert_int_equal(fs_publish(b, q, &env), FS_OK);
    amqp_connection_state_t c = qt_raw();
    amqp_message_t m;
    assert_true(qt_get(c, rq, &m, 5000));
    assert_true(qt_bytes_eq(m.body, "pong"));
    amqp_destroy_message(&m);
    qt_raw_close(c);
    for (int waited = 0; ts_log_count(&rec) < 5 && waited < WAIT_MS; waited += 10)
        ts_sleep_ms(10);
    assert_int_equal(ts_log_count(&rec), 5);

    char label[300];
    snprintf(label, sizeof label, "%s.%s", ex, key);
    assert_true(was_seen(&s, label, false));
    snprintf(label, sizeof label, "default.%s", q);
    assert_true(was_seen(&s, label, false));
    snprintf(label, sizeof label, "%s.%s", rex, rq);
    assert_true(was_seen(&s, label, true));
    /* the direct reply-to reply of the request, to the default exchange */
    bool direct = false;
    pthread_mutex_lock(&s.mu);
    for (int i = 0; i < s.n && i < SEEN; i++)
        direct |= s.is_reply[i] && !strncmp(s.label[i], "default.amq.rabbitmq.reply-to.", 30);
    pthread_mutex_unlock(&s.mu);
    assert_true(direct);

    fs_buffer text = {0};
    assert_int_equal(fs_registry_render(reg, FS_FORMAT_TEXT, &text), FS_OK);
    char l[400];
    snprintf(l, sizeof l,
             "app_name=\"faststream\",broker=\"rabbitmq\",destination=\"%s.%s\",status=\"success\"",
             ex, key);
    if (!has_sample(text.data, l, "3"))
        fail_msg("no %s 3 in\n%s", l, text.data);
    snprintf(l, sizeof l,
             "app_name=\"faststream\",broker=\"rabbitmq\",destination=\"default.%s\","
             "status=\"success\"",
             q);
    if (!has_sample(text.data, l, "2"))
        fail_msg("no %s 2 in\n%s", l, text.data);
    assert_null(strstr(text.data, "reply-to"));       /* replies are not counted */
    snprintf(l, sizeof l, "destination=\"%s\"", key); /* never the bare routing key */
    assert_null(strstr(text.data, l));
    fs_buffer_free(&text);

    fs_publisher_free(pub);
    fs_rabbitmq_delete_queue(b, rq);
    fs_rabbitmq_delete_exchange(b, rex);
    fs_broker_free(b);
    ts_log_free(&rec);
    qt_delete_queue(q);
    qt_delete_exchange(ex);
    fs_registry_free(reg);
    pthread_mutex_destroy(&s.mu);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(labels_of_every_publish),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
