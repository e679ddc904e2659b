/*
 * The MQTT column: subscribers at QoS 1 (at least once, FastStream's ack
 * rules) on the mosquitto of scripts/services.sh (FS_MQTT_PORT). Messages
 * are put from outside with a raw libmosquitto client (QoS 1, waiting for
 * the PUBACK). The server's per-session state is not readable from a client
 * (mosquitto has no such query), so the column checks no broker state.
 */
#include "conformance.h"

#include "faststream/mqtt.h"

#include <mosquitto.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static int port(void)
{
    const char *p = getenv("FS_MQTT_PORT");
    return p && *p ? atoi(p) : 11883;
}

/* One raw client for every put, connected on first use. */
static pthread_mutex_t raw_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t raw_cv = PTHREAD_COND_INITIALIZER;
static struct mosquitto *raw;
static unsigned char raw_acked[65536]; /* by packet id: PUBACK seen (puts run in parallel) */

static void raw_on_publish(struct mosquitto *m, void *u, int mid)
{
    (void)m;
    (void)u;
    pthread_mutex_lock(&raw_mu);
    raw_acked[(unsigned)mid & 0xFFFF] = 1;
    pthread_cond_broadcast(&raw_cv);
    pthread_mutex_unlock(&raw_mu);
}

/* Made once, outside raw_mu: libmosquitto calls on_publish holding its own mutex. */
static pthread_once_t raw_once = PTHREAD_ONCE_INIT;

static void raw_make(void)
{
    mosquitto_lib_init();
    struct mosquitto *m = mosquitto_new(NULL, true, NULL);
    if (!m)
        return;
    mosquitto_int_option(m, MOSQ_OPT_PROTOCOL_VERSION, MQTT_PROTOCOL_V5);
    mosquitto_publish_callback_set(m, raw_on_publish);
    if (mosquitto_connect(m, "127.0.0.1", port(), 30) != MOSQ_ERR_SUCCESS ||
        mosquitto_loop_start(m) != MOSQ_ERR_SUCCESS) {
        mosquitto_destroy(m);
        return;
    }
    raw = m;
}

static struct mosquitto *raw_client(void)
{
    pthread_once(&raw_once, raw_make);
    return raw;
}

static bool mqtt_available(char *why, size_t n)
{
    bool ok = raw_client() != NULL;
    if (!ok)
        snprintf(why, n, "no mosquitto on 127.0.0.1:%d (scripts/services.sh start mqtt)", port());
    return ok;
}

static int mqtt_broker_new(fs_broker **out)
{
    char url[64];
    snprintf(url, sizeof url, "mqtt://127.0.0.1:%d", port());
    return fs_broker_new(url, NULL, out);
}

static const void *mqtt_sub_options(const char *source, void *scratch)
{
    (void)source;
    fs_mqtt_subscriber_options *o = scratch;
    *o = (fs_mqtt_subscriber_options)FS_MQTT_SUBSCRIBER_OPTIONS_INIT;
    o->qos = 1;
    return o;
}

static const void *mqtt_pub_options(const char *source, void *scratch)
{
    (void)source;
    fs_mqtt_publish_options *o = scratch;
    *o = (fs_mqtt_publish_options)FS_MQTT_PUBLISH_OPTIONS_INIT;
    o->qos = 1;
    return o;
}

static int mqtt_put(fs_broker *b, const char *source, const void *body, size_t len)
{
    (void)b;
    struct mosquitto *m = raw_client();
    pthread_mutex_lock(&raw_mu);
    int mid = 0, rc = m ? mosquitto_publish(m, &mid, source, (int)len, body, 1, false) : -1;
    struct timespec dl;
    clock_gettime(CLOCK_REALTIME, &dl);
    dl.tv_sec += 5;
    while (rc == MOSQ_ERR_SUCCESS && !raw_acked[mid & 0xFFFF])
        if (pthread_cond_timedwait(&raw_cv, &raw_mu, &dl) != 0)
            break;
    bool acked = rc == MOSQ_ERR_SUCCESS && raw_acked[mid & 0xFFFF];
    if (rc == MOSQ_ERR_SUCCESS)
        raw_acked[mid & 0xFFFF] = 0;
    pthread_mutex_unlock(&raw_mu);
    return acked ? FS_OK : FS_EIO;
}

/*
 * A publish the client refuses before the wire: QoS 3. FastStream's MQTT
 * publisher builds zmqtt.QoS(qos), which raises ValueError for it. (mosquitto
 * itself refuses a client's publish to $SYS/... with reason 0x87, which the
 * adapter reports as MQTTError: tests/mqtt/test_mqtt_broker.c; the suite's
 * destination name is not the driver's to choose.)
 */
static int mqtt_fail_setup(fs_broker *b, const char *dest, const void **opts)
{
    (void)b;
    (void)dest;
    static const fs_mqtt_publish_options bad_qos = {3, false, 0};
    *opts = &bad_qos;
    return FS_OK;
}

static const conf_driver mqtt_driver = {
    .column = "mqtt",
    .broker_label = "mqtt",
    .features = CONF_HAS_REQUEST,
    .policy = FS_ACK_POLICY_DEFAULT, /* ACK, FastStream's MQTT default */
    .available = mqtt_available,
    .broker_new = mqtt_broker_new,
    .sub_options = mqtt_sub_options,
    .pub_options = mqtt_pub_options,
    .put = mqtt_put,
    .fail_publish_setup = mqtt_fail_setup,
};

const conf_driver *const conf_drivers_mqtt[] = {&mqtt_driver, NULL};
