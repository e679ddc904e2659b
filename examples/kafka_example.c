/*
 * A Kafka service: consume "orders" in a consumer group with 4 handlers in
 * parallel across partitions (each partition in offset order), commit only
 * what was handled, dead-letter what fails, publish a FastStream-compatible
 * "trades" record for each order, export FastStream's metrics.
 *
 *   scripts/services.sh start kafka            # the mock cluster, for a try
 *   kafka_example "$(scripts/services.sh url kafka)"
 *   curl 127.0.0.1:8000/metrics
 */
#include <faststream/faststream.h>
#include <faststream/kafka.h>
#include <faststream/prometheus.h>
#include <stdio.h>

static fs_outcome on_order(fs_message *msg, void *user)
{
    fs_publisher *trades = user;
    if (fs_message_body_len(msg) == 0) /* rejected: copied to orders.dlq, then committed */
        return fs_message_fail(msg, "ValueError", "empty order");
    printf("order %.*s from %s[%d]@%lld (id %s)\n", (int)fs_message_body_len(msg),
           (const char *)fs_message_body(msg), fs_message_source(msg),
           (int)fs_message_partition(msg), (long long)fs_message_offset(msg), fs_message_id(msg));
    size_t key_len;
    const void *key = fs_message_key(msg, &key_len);
    fs_kafka_publish_options same_key = FS_KAFKA_PUBLISH_OPTIONS_INIT;
    same_key.key = key; /* the trade lands on the partition of its order's key */
    same_key.key_len = key_len;
    fs_envelope env = FS_ENVELOPE_INIT;
    env.body = "filled";
    env.body_len = 6;
    env.broker_options = &same_key;
    /* The correlation id is the order's (the core carries it over). Waits for the
     * delivery report; a failure nacks: the order comes again after a delay. */
    return fs_publisher_publish(trades, &env) < 0 ? FS_OUTCOME_NACK : FS_OUTCOME_OK;
}

int main(int argc, char **argv)
{
    const char *url = argc > 1 ? argv[1] : "kafka://127.0.0.1:9092";

    /* Any librdkafka setting passes through (TLS, SASL, timeouts...). */
    static const fs_kafka_config config[] = {
        {"client.id", "billing"},
        {"session.timeout.ms", "10000"},
    };
    fs_kafka_options ko = FS_KAFKA_OPTIONS_INIT;
    ko.group_id = "billing";
    ko.config = config;
    ko.config_count = sizeof config / sizeof config[0];

    fs_kafka_subscriber_options orders = FS_KAFKA_SUBSCRIBER_OPTIONS_INIT;
    orders.start = FS_KAFKA_START_EARLIEST; /* a new group reads from the start */
    orders.dead_letter = "orders.dlq";
    fs_subscriber_options so = FS_SUBSCRIBER_OPTIONS_INIT;
    so.ack_policy = FS_ACK_POLICY_REJECT_ON_ERROR; /* commit after handling */
    so.concurrency = 4;
    so.broker_options = &orders;
    so.redelivery.delay_ms = 500; /* a nacked order comes back after 0.5 s, 1 s, 2 s... */

    fs_broker *broker;
    fs_publisher *trades;
    fs_app *app;
    if (fs_kafka_broker_new(url, &ko, &broker) < 0 || fs_broker_add_prometheus(broker, NULL) < 0 ||
        fs_publisher_new(broker, "trades", NULL, &trades) < 0 ||
        fs_subscribe(broker, "orders", on_order, trades, &so, NULL) < 0 ||
        fs_app_new(NULL, &app) < 0 || fs_app_add_broker(app, broker) < 0) {
        fprintf(stderr, "setup failed: %s\n", fs_last_error());
        return 1;
    }
    int rc = fs_app_run(app); /* /metrics and /health on 127.0.0.1:8000 until Ctrl-C */
    if (rc < 0)
        fprintf(stderr, "%s\n", fs_last_error());
    fs_app_free(app);
    return rc < 0;
}
