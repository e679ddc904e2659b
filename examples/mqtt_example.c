/*
 * An MQTT service: consume sensor readings at QoS 1 from a persistent
 * session (at least once: the PUBACK goes out after the handler), publish
 * alerts with MQTT 5 properties, export FastStream's metrics.
 *
 *   mqtt_example [mqtt://127.0.0.1:1883?client_id=sensors-svc&clean_start=false]
 *   mosquitto_pub -V mqttv5 -q 1 -t sensors/kitchen/temperature -m 31.5
 *   curl 127.0.0.1:8000/metrics
 */
#include <faststream/faststream.h>
#include <faststream/mqtt.h>
#include <faststream/prometheus.h>
#include <stdio.h>
#include <stdlib.h>

static fs_outcome on_reading(fs_message *msg, void *user)
{
    fs_publisher *alerts = user;
    char text[32];
    snprintf(text, sizeof text, "%.*s", (int)fs_message_body_len(msg),
             (const char *)fs_message_body(msg));
    char *end;
    double celsius = strtod(text, &end);
    if (end == text)
        return fs_message_fail(msg, "ValueError", "not a number: %s", text); /* still acked */
    const char *topic = fs_message_source(msg); /* the concrete topic, e.g. sensors/kitchen/... */
    printf("%s: %.1f C\n", topic, celsius);
    if (celsius < 30)
        return FS_OUTCOME_OK;
    fs_header headers[] = {{"sensor", topic, 0}}; /* an MQTT 5 user property */
    fs_envelope env = FS_ENVELOPE_INIT;
    env.body = text;
    env.body_len = (size_t)(end - text);
    env.headers = headers;
    env.header_count = 1;
    env.content_type = "text/plain";
    return fs_publisher_publish(alerts, &env) < 0 ? FS_OUTCOME_ERROR : FS_OUTCOME_OK;
}

int main(int argc, char **argv)
{
    const char *url =
        argc > 1 ? argv[1] : "mqtt://127.0.0.1:1883?client_id=sensors-svc&clean_start=false";

    fs_mqtt_subscriber_options readings = FS_MQTT_SUBSCRIBER_OPTIONS_INIT;
    readings.qos = 1;                        /* FastStream's default is 0: at most once */
    readings.client_id = "sensors-svc-read"; /* a stable id: the session survives restarts */
    fs_subscriber_options so = FS_SUBSCRIBER_OPTIONS_INIT;
    so.broker_options = &readings;

    fs_mqtt_publish_options alert_opts = FS_MQTT_PUBLISH_OPTIONS_INIT;
    alert_opts.qos = 1;       /* fs_publish waits for the PUBACK */
    alert_opts.expiry_s = 60; /* the server drops it after a minute */
    fs_publisher_options po = FS_PUBLISHER_OPTIONS_INIT;
    po.broker_options = &alert_opts;

    fs_broker *broker;
    fs_publisher *alerts;
    fs_app *app;
    if (fs_mqtt_broker_new(url, NULL, &broker) < 0 || fs_broker_add_prometheus(broker, NULL) < 0 ||
        fs_publisher_new(broker, "alerts/temperature", &po, &alerts) < 0 ||
        fs_subscribe(broker, "sensors/+/temperature", on_reading, alerts, &so, NULL) < 0 ||
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
