/*
 * A RabbitMQ service: consume a durable queue bound to a topic exchange
 * (dead-lettering what fails), publish confirmed trades to the exchange,
 * answer requests, export FastStream's metrics.
 *
 *   rabbitmq_example [amqp://guest:guest@127.0.0.1:5672/]
 *   # from FastStream: await broker.publish("id=1", exchange="market", routing_key="order.new")
 *   curl 127.0.0.1:8000/metrics
 */
#include <faststream/faststream.h>
#include <faststream/prometheus.h>
#include <faststream/rabbitmq.h>
#include <stdio.h>

static fs_outcome on_order(fs_message *msg, void *user)
{
    fs_publisher *trades = user;
    if (fs_message_body_len(msg) == 0) /* rejected: dead-lettered to market.orders.dlq */
        return fs_message_fail(msg, "ValueError", "empty order");
    printf("order %.*s on %s\n", (int)fs_message_body_len(msg), (const char *)fs_message_body(msg),
           fs_message_source(msg)); /* "market.order.new" */
    if (fs_message_reply_to(msg))   /* a request: answer it (direct reply-to) */
        fs_message_reply(msg, "accepted", 8, NULL, 0, "text/plain");
    fs_envelope env = FS_ENVELOPE_INIT;
    env.body = "filled";
    env.body_len = 6;
    /* returns once the server confirmed; a return or nack is an error */
    return fs_publisher_publish(trades, &env) < 0 ? FS_OUTCOME_NACK : FS_OUTCOME_OK;
}

int main(int argc, char **argv)
{
    const char *url = argc > 1 ? argv[1] : "amqp://guest:guest@127.0.0.1:5672/";

    static const fs_rabbitmq_arg dlx[] = {
        FS_RABBITMQ_ARG_STR("x-dead-letter-exchange", ""),
        FS_RABBITMQ_ARG_STR("x-dead-letter-routing-key", "market.orders.dlq"),
    };
    fs_rabbitmq_subscriber_options orders = FS_RABBITMQ_SUBSCRIBER_OPTIONS_INIT;
    orders.exchange.name = "market"; /* declared: a durable topic exchange */
    orders.exchange.type = FS_RABBITMQ_TOPIC;
    orders.exchange.durable = true;
    orders.queue.durable = true; /* the queue "market.orders", bound with order.* */
    orders.queue.routing_key = "order.*";
    orders.queue.arguments = dlx;
    orders.queue.argument_count = 2;
    fs_subscriber_options so = FS_SUBSCRIBER_OPTIONS_INIT;
    so.broker_options = &orders;
    so.concurrency = 4; /* basic.qos prefetch 16 */

    fs_rabbitmq_publish_options to_market = FS_RABBITMQ_PUBLISH_OPTIONS_INIT;
    to_market.exchange = "market";
    to_market.persist = true;
    fs_publisher_options po = FS_PUBLISHER_OPTIONS_INIT;
    po.broker_options = &to_market;

    fs_rabbitmq_queue dlq = FS_RABBITMQ_QUEUE_INIT;
    dlq.name = "market.orders.dlq";
    dlq.durable = true;
    fs_rabbitmq_queue trades_q = FS_RABBITMQ_QUEUE_INIT;
    trades_q.name = "market.trades";
    trades_q.durable = true;
    trades_q.routing_key = "trade.filled";

    fs_broker *broker;
    fs_publisher *trades;
    fs_app *app;
    if (fs_rabbitmq_broker_new(url, NULL, &broker) < 0 || fs_broker_connect(broker) < 0 ||
        fs_rabbitmq_declare(broker, NULL, &dlq) < 0 ||
        fs_rabbitmq_declare(broker, &orders.exchange, &trades_q) < 0 ||
        fs_broker_add_prometheus(broker, NULL) < 0 ||
        fs_publisher_new(broker, "trade.filled", &po, &trades) < 0 ||
        fs_subscribe(broker, "market.orders", on_order, trades, &so, NULL) < 0 ||
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
