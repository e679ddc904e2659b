/*
 * A NATS service: a durable JetStream pull consumer (the stream declared on
 * start), a core-NATS request/reply responder, FastStream's metrics.
 *
 *   nats_example [nats://127.0.0.1:4222]
 *   nats pub orders.created '{"id":1}'        # or publish from FastStream (stream="ORDERS")
 *   nats request quote.eur 'how much?'
 *   curl 127.0.0.1:8000/metrics
 */
#include <faststream/faststream.h>
#include <faststream/nats.h>
#include <faststream/prometheus.h>
#include <stdio.h>

static fs_outcome on_order(fs_message *msg, void *user)
{
    fs_publisher *trades = user;
    if (fs_message_body_len(msg) == 0)
        return fs_message_fail(msg, "ValueError", "empty order"); /* rejected: +TERM */
    printf("order %.*s on %s (delivery %u)\n", (int)fs_message_body_len(msg),
           (const char *)fs_message_body(msg), fs_message_source(msg),
           (unsigned)fs_message_delivery_count(msg));
    fs_envelope env = FS_ENVELOPE_INIT;
    env.body = "filled";
    env.body_len = 6;
    env.message_id = fs_message_id(msg); /* Nats-Msg-Id: a retry is stored once */
    /* A failed publish: NACK, redelivered after the redelivery delay (-NAK with delay). */
    return fs_publisher_publish(trades, &env) < 0 ? FS_OUTCOME_NACK : FS_OUTCOME_OK;
}

static fs_outcome on_quote(fs_message *msg, void *user)
{
    (void)user;
    fs_message_reply(msg, "1.08", 4, NULL, 0, "text/plain"); /* to the request's inbox */
    return FS_OUTCOME_OK;
}

int main(int argc, char **argv)
{
    const char *url = argc > 1 ? argv[1] : "nats://127.0.0.1:4222";

    static const char *const subjects[] = {"orders.>", "trades.>"};
    fs_nats_stream_config stream = FS_NATS_STREAM_CONFIG_INIT;
    stream.name = "ORDERS";
    stream.subjects = subjects;
    stream.subject_count = 2;
    stream.max_age_ms = 24 * 3600 * 1000; /* a day */

    fs_nats_subscriber_options orders = FS_NATS_SUBSCRIBER_OPTIONS_INIT;
    orders.stream = "ORDERS";
    orders.declare_stream = &stream; /* created or updated when the broker starts */
    orders.durable = "billing";      /* survives restarts: resumes where it stopped */
    fs_subscriber_options so = FS_SUBSCRIBER_OPTIONS_INIT;
    so.broker_options = &orders;
    so.concurrency = 4;
    so.ack_policy = FS_ACK_POLICY_NACK_ON_ERROR;
    so.redelivery.max_deliveries = 5; /* the consumer's MaxDeliver; then +TERM */

    fs_nats_publish_options to_stream = FS_NATS_PUBLISH_OPTIONS_INIT;
    to_stream.stream = "ORDERS"; /* JetStream publish: waits for the PubAck */
    fs_publisher_options po = FS_PUBLISHER_OPTIONS_INIT;
    po.broker_options = &to_stream;

    fs_nats_subscriber_options quotes = FS_NATS_SUBSCRIBER_OPTIONS_INIT;
    quotes.queue = "pricing"; /* core NATS queue group: instances share the requests */
    fs_subscriber_options qo = FS_SUBSCRIBER_OPTIONS_INIT;
    qo.broker_options = &quotes;

    fs_broker *broker;
    fs_publisher *trades;
    fs_app *app;
    if (fs_nats_broker_new(url, NULL, &broker) < 0 || fs_broker_add_prometheus(broker, NULL) < 0 ||
        fs_publisher_new(broker, "trades.filled", &po, &trades) < 0 ||
        fs_subscribe(broker, "orders.*", on_order, trades, &so, NULL) < 0 ||
        fs_subscribe(broker, "quote.*", on_quote, NULL, &qo, NULL) < 0 ||
        fs_app_new(NULL, &app) < 0 || fs_app_add_broker(app, broker) < 0) {
        fprintf(stderr, "setup failed: %s\n", fs_last_error());
        return 1;
    }
    int rc = fs_app_run(app); /* /metrics and /health on 127.0.0.1:8000 until Ctrl-C */
    if (rc < 0)
        fprintf(stderr, "%s\n", fs_last_error());
    fs_app_free(app);
    return rc < 0 ? 1 : 0;
}
