/*
 * A Redis service: consume a stream with a consumer group, publish a
 * FastStream-compatible reply stream, export FastStream's metrics.
 *
 *   redis_example [redis://127.0.0.1:6379/0]
 *   redis-cli XADD orders '*' __data__ 'id=1 qty=10'    # or publish from FastStream
 *   curl 127.0.0.1:8000/metrics
 */
#include <faststream/faststream.h>
#include <faststream/prometheus.h>
#include <faststream/redis.h>
#include <stdio.h>

static fs_outcome on_order(fs_message *msg, void *user)
{
    fs_publisher *trades = user;
    if (fs_message_body_len(msg) == 0)
        return fs_message_fail(msg, "ValueError", "empty order"); /* rejected: XACK + DLQ */
    /* the sender's correlation id, or a new uuid4 */
    const char *cid = fs_message_correlation_id(msg);
    printf("order %.*s (correlation id %s)\n", (int)fs_message_body_len(msg),
           (const char *)fs_message_body(msg), cid);
    fs_envelope env = FS_ENVELOPE_INIT;
    env.body = "filled";
    env.body_len = 6;
    env.correlation_id = cid;
    return fs_publisher_publish(trades, &env) < 0 ? FS_OUTCOME_NACK : FS_OUTCOME_OK;
}

int main(int argc, char **argv)
{
    const char *url = argc > 1 ? argv[1] : "redis://127.0.0.1:6379/0";

    fs_redis_subscriber_options orders = FS_REDIS_SUBSCRIBER_OPTIONS_INIT;
    orders.kind = FS_REDIS_STREAM;
    orders.group = "billing";          /* XREADGROUP; created with MKSTREAM if missing */
    orders.claim_min_idle_ms = 60000;  /* take over entries a dead consumer left pending */
    orders.dead_letter = "orders.dlq"; /* rejected entries are copied here */
    fs_subscriber_options so = FS_SUBSCRIBER_OPTIONS_INIT;
    so.broker_options = &orders;
    so.concurrency = 4;

    fs_redis_publish_options to_stream = FS_REDIS_PUBLISH_OPTIONS_INIT;
    to_stream.kind = FS_REDIS_STREAM;
    to_stream.maxlen = 100000; /* XADD MAXLEN ~ 100000 */
    fs_publisher_options po = FS_PUBLISHER_OPTIONS_INIT;
    po.broker_options = &to_stream;

    fs_broker *broker;
    fs_publisher *trades;
    fs_app *app;
    if (fs_redis_broker_new(url, NULL, &broker) < 0 || fs_broker_add_prometheus(broker, NULL) < 0 ||
        fs_publisher_new(broker, "trades", &po, &trades) < 0 ||
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
