#include <faststream/faststream.h>
#include <faststream/prometheus.h>
#include <stdio.h>

/* Handle an order, then publish a trade for it. */
static fs_outcome on_order(fs_message *msg, void *user)
{
    fs_publisher *trades = user;
    if (fs_message_body_len(msg) == 0)
        return fs_message_fail(msg, "ValueError", "empty order");
    printf("order %.*s\n", (int)fs_message_body_len(msg), (const char *)fs_message_body(msg));
    return fs_publisher_publish_bytes(trades, "filled", 6) < 0 ? FS_OUTCOME_NACK : FS_OUTCOME_OK;
}

int main(void)
{
    fs_broker *broker; /* memory://, redis://, nats://, amqp://, kafka://, mqtt:// */
    fs_publisher *trades;
    fs_app *app;
    if (fs_broker_new("memory://", NULL, &broker) < 0 ||
        fs_broker_add_prometheus(broker, NULL) < 0 || /* FastStream's metrics */
        fs_publisher_new(broker, "trades", NULL, &trades) < 0 ||
        fs_subscribe(broker, "orders", on_order, trades, NULL, NULL) < 0 ||
        fs_app_new(NULL, &app) < 0 || fs_app_add_broker(app, broker) < 0) {
        fprintf(stderr, "setup failed: %s\n", fs_last_error());
        return 1;
    }
    fs_broker_connect(broker);
    fs_publish_bytes(broker, "orders", "id=1 qty=10", 11);
    int rc = fs_app_run(app); /* /metrics on 127.0.0.1:8000 until Ctrl-C */
    fs_app_free(app);
    return rc < 0;
}
