/*
 * faststream/mqtt.h - the MQTT broker (MQTT 5 and 3.1.1) on libmosquitto,
 * with FastStream's MQTT semantics (FastStream 0.7: broker label "mqtt").
 *
 *   fs_broker *b;
 *   if (fs_broker_new("mqtt://127.0.0.1:1883?client_id=billing", NULL, &b) < 0)
 *       fprintf(stderr, "%s\n", fs_last_error());
 *
 *   fs_mqtt_subscriber_options mo = FS_MQTT_SUBSCRIBER_OPTIONS_INIT;
 *   mo.qos = 1;                                // at least once
 *   fs_subscriber_options so = FS_SUBSCRIBER_OPTIONS_INIT;
 *   so.broker_options = &mo;
 *   fs_subscribe(b, "sensors/+/temperature", on_reading, NULL, &so, NULL);
 *
 *   fs_mqtt_publish_options po = FS_MQTT_PUBLISH_OPTIONS_INIT;
 *   po.qos = 1;                                // waits for the PUBACK
 *   fs_envelope env = FS_ENVELOPE_INIT;
 *   env.body = "21.5"; env.body_len = 4; env.broker_options = &po;
 *   fs_publish(b, "sensors/kitchen/temperature", &env);
 *
 * URL: mqtt://[user[:password]@]host[:port][?param=value&...] (port 1883),
 * mqtts:// for TLS (port 8883). Parameters (each also an fs_mqtt_options
 * field, which wins over the URL):
 *   client_id=ID          the client id (default: "faststream-c-HOST-PID-N")
 *   version=5|3.1.1       protocol version (default 5)
 *   keepalive=SECONDS     default 60
 *   clean_start=true|false  false: a persistent session (default true)
 *   session_expiry=SECONDS  MQTT 5: how long the server keeps a persistent
 *                         session after a disconnect (default 0; with
 *                         clean_start=false and 0, the adapter asks for
 *                         0xFFFFFFFF: never expires)
 *   ca=FILE cert=FILE key=FILE   mqtts: the CA bundle to trust (default:
 *                         the system's), a client certificate and its key
 *   insecure=true         mqtts: do not check the server's host name
 * Anything else is refused, naming it.
 *
 * Connections. The broker keeps one connection for publishing (the will
 * message is registered on it) and opens one per subscription, each with
 * its own libmosquitto network thread, client id "ID" for the publishing
 * one and "ID-N" for the N-th subscription (in fs_subscribe order), or the
 * subscription's own client_id. Persistent sessions therefore belong to a
 * subscription's connection: give it a stable client_id. Lost connections
 * are re-established with exponential backoff (1 s to 30 s), subscriptions
 * renewed when the server did not keep the session; losses and recoveries
 * are logged (component "mqtt").
 *
 * Acknowledgements (FastStream's rules): the default ack policy is ACK. At
 * QoS 1 the PUBACK goes out only after the handler finished and the message
 * was settled (at least once: a consumer that crashes mid-handler gets the
 * message again from its persistent session). At QoS 2 libmosquitto sends
 * the PUBREC on receipt and calls back on the PUBREL, so only the PUBCOMP
 * follows the handler: a crash mid-handler loses a QoS 2 message.
 * libmosquitto writes the acknowledgement when its message callback returns,
 * so that callback waits for the handler: one connection runs ONE handler at
 * a time at QoS 1/2, and acknowledges in arrival order, as MQTT requires.
 * With concurrency N > 1 such a subscription opens N connections ("lanes",
 * client ids ID, ID.2 ... ID.N, at most 64) in a shared subscription of
 * their own ($share/fs-ID/FILTER, or the group you gave), so N handlers run
 * while each connection still acknowledges in order. The cost: N
 * connections and sessions, no order across lanes (as with any
 * concurrency), and, a shared subscription getting no retained messages,
 * none on subscribing. QoS 0 and ACK_FIRST (acknowledged on receipt) run
 * `concurrency` handlers on one connection. A handler at QoS > 0 must end
 * within 1.5 keepalives: its connection sends nothing meanwhile. nack does
 * nothing (there is no nack in MQTT: the message counts as acked unless the
 * handler failed); reject acknowledges. A message left unsettled (SKIP,
 * MANUAL without a settlement) is acknowledged when released.
 *
 * Batches: MQTT has none; a batch subscriber gets what the core gathers
 * from single fetches. At QoS > 0 (not ACK_FIRST) that is one message per
 * batch, after batch_timeout_ms: the next one only comes after its PUBACK.
 *
 * Messages (MQTT 5): content type <-> content_type, response topic <->
 * reply_to, correlation data <-> correlation_id, user properties <->
 * headers (a repeated name keeps its last value, as FastStream). MQTT 3.1.1
 * carries none of them: publishing headers there fails (FS_EUNSUPPORTED,
 * type "FeatureNotSupportedException"), the rest is dropped, and
 * fs_request works as FastStream's 3.1.1 request: the envelope must name
 * the reply topic (reply_to; else FS_EUNSUPPORTED), which is subscribed to
 * for the request, and the first message there is the reply. The source of a message (handler
 * label) is its concrete topic, never the filter. fs_message_raw() is a const fs_mqtt_message_info
 * *.
 *
 * Publishing: QoS 0 returns once the message is queued to the socket; QoS 1
 * and 2 wait for the PUBACK / PUBCOMP (up to publish_timeout_ms), and a
 * reason code of 0x80 or more is an error ("no matching subscribers", 16,
 * is a success). Error types: "ConnectionError", "TimeoutError",
 * "ValueError", "FeatureNotSupportedException", "MQTTError". No batch
 * publish in MQTT: a batch is published message by message.
 *
 * Server note: mosquitto keeps at most max_queued_messages (default 1000)
 * QoS 1/2 messages for an offline persistent session and silently drops the
 * rest, while the publisher still gets its PUBACK: raise it for consumers
 * that may be away long.
 */
#ifndef FASTSTREAM_MQTT_H
#define FASTSTREAM_MQTT_H

#include "faststream/broker.h"
#include "faststream/common.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/** The protocol version. */
typedef enum fs_mqtt_version {
    FS_MQTT_VERSION_DEFAULT = 0, /**< the URL's version=, else 5 */
    FS_MQTT_V311 = 4,            /**< MQTT 3.1.1 */
    FS_MQTT_V5 = 5,              /**< MQTT 5.0 */
} fs_mqtt_version;

/** Broker options for fs_mqtt_broker_new. NULL strings mean "the URL's, or none". */
typedef struct fs_mqtt_options {
    fs_broker_options broker;
    const char *client_id;
    const char *username;
    const char *password;
    fs_mqtt_version version;
    /** Seconds; 0: the URL's, else 60. */
    int keepalive_s;
    /** -1: the URL's (default true); 0: persistent session; 1: clean start. */
    int clean_start;
    /** MQTT 5 session expiry interval in seconds; 0: the URL's (see above). */
    uint32_t session_expiry_s;
    /** TLS (mqtts://): CA file, client certificate and key (PEM). */
    const char *ca_file;
    const char *cert_file;
    const char *key_file;
    /** A will message, published by the server when the connection is lost; NULL: none. */
    const char *will_topic;
    const void *will_payload;
    size_t will_len;
    int will_qos;
    bool will_retain;
    /** Timeout of a connection attempt; 0 means 5000 ms. */
    int connect_timeout_ms;
    /** How long a QoS 1/2 publish waits for its confirmation; 0 means 10000 ms. */
    int publish_timeout_ms;
} fs_mqtt_options;

#define FS_MQTT_OPTIONS_INIT                                                                       \
    {                                                                                              \
        FS_BROKER_OPTIONS_INIT, NULL, NULL, NULL, FS_MQTT_VERSION_DEFAULT, 0, -1, 0, NULL, NULL,   \
            NULL, NULL, NULL, 0, 0, false, 0, 0                                                    \
    }

/**
 * Create an MQTT broker for `url` (see above). `opts` may be NULL. Nothing
 * is connected yet: fs_broker_connect / fs_broker_start report an
 * unreachable server as FS_EIO, a refused connection (bad credentials...)
 * as FS_EBROKER with the server's reason. fs_broker_new("mqtt://...") does
 * the same with the default options.
 */
FS_API int fs_mqtt_broker_new(const char *url, const fs_mqtt_options *opts, fs_broker **out);

/**
 * Register the "mqtt" and "mqtts" URL schemes with the core. The library
 * does it by itself when loaded; call this when linking it statically.
 * Registering again is a no-op.
 */
FS_API int fs_mqtt_register(void);

/** True when `broker` is an MQTT broker. */
FS_API bool fs_broker_is_mqtt(const fs_broker *broker);

/** The protocol version a broker speaks (FS_MQTT_V5 or FS_MQTT_V311); 0 for another broker. */
FS_API fs_mqtt_version fs_mqtt_broker_version(const fs_broker *broker);

/** Per-subscriber options, passed as fs_subscriber_options.broker_options. */
typedef struct fs_mqtt_subscriber_options {
    /**
     * 0 (FastStream's default), 1 or 2. At least once (the PUBACK after the
     * handler) is QoS 1. QoS 2 is acknowledged on receipt by libmosquitto
     * (PUBREC before the handler, the message held in memory only): a
     * consumer that dies mid-handler loses it, so fs_subscribe logs a warning
     * unless the policy is FS_ACK_POLICY_ACK_FIRST (docs/brokers/mqtt.md).
     */
    int qos;
    /**
     * A shared subscription group: subscribes to "$share/GROUP/SOURCE" (the
     * server hands each message to one member of the group). NULL: none
     * (a source written "$share/GROUP/FILTER" works as well).
     */
    const char *shared;
    /** MQTT 5: do not receive this connection's own publications. */
    bool no_local;
    /** The client id of this subscription's connection; NULL: "BROKER_ID-N". */
    const char *client_id;
} fs_mqtt_subscriber_options;

#define FS_MQTT_SUBSCRIBER_OPTIONS_INIT                                                            \
    {                                                                                              \
        0, NULL, false, NULL                                                                       \
    }

/**
 * Publish options: fs_envelope.broker_options (per message) or
 * fs_publisher_options.broker_options.
 */
typedef struct fs_mqtt_publish_options {
    /** 0 (FastStream's default), 1 or 2. */
    int qos;
    /** The server keeps the message as the topic's retained message. */
    bool retain;
    /** MQTT 5 message expiry interval in seconds; 0: none. */
    uint32_t expiry_s;
} fs_mqtt_publish_options;

#define FS_MQTT_PUBLISH_OPTIONS_INIT                                                               \
    {                                                                                              \
        0, false, 0                                                                                \
    }

/**
 * What fs_message_raw() returns for a message from an MQTT broker
 * (const fs_mqtt_message_info *), valid as long as the message.
 */
typedef struct fs_mqtt_message_info {
    const char *topic;  /**< the concrete topic */
    const char *filter; /**< the subscription's filter as subscribed ($share/... included) */
    int qos;            /**< as delivered */
    bool retain;        /**< a retained message (sent on subscribing) */
    int mid;            /**< the packet identifier (QoS > 0), else 0 */
    uint32_t expiry_s;  /**< MQTT 5 message expiry interval left, 0: none */
} fs_mqtt_message_info;

#ifdef __cplusplus
}
#endif

#endif /* FASTSTREAM_MQTT_H */
