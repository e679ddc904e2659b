/*
 * faststream/rabbitmq.h - the RabbitMQ broker (AMQP 0-9-1 on rabbitmq-c),
 * with FastStream's RabbitMQ semantics so that a C service and a Python
 * FastStream service share one RabbitMQ.
 *
 *   fs_broker *b;
 *   if (fs_broker_new("amqp://guest:guest@127.0.0.1:5672/", NULL, &b) < 0)
 *       fprintf(stderr, "%s\n", fs_last_error());
 *
 *   fs_rabbitmq_subscriber_options ro = FS_RABBITMQ_SUBSCRIBER_OPTIONS_INIT;
 *   ro.queue.durable = true;
 *   ro.exchange.name = "orders";               // bound to this exchange
 *   ro.exchange.type = FS_RABBITMQ_TOPIC;
 *   ro.queue.routing_key = "order.*";
 *   fs_subscriber_options so = FS_SUBSCRIBER_OPTIONS_INIT;
 *   so.broker_options = &ro;
 *   fs_subscribe(b, "billing", on_order, NULL, &so, NULL);   // queue "billing"
 *
 *   fs_rabbitmq_publish_options po = FS_RABBITMQ_PUBLISH_OPTIONS_INIT;
 *   po.exchange = "orders";
 *   fs_envelope env = FS_ENVELOPE_INIT;
 *   env.body = "{}"; env.body_len = 2; env.broker_options = &po;
 *   fs_publish(b, "order.created", &env);      // routing key
 *
 * URL: amqp[s]://[user[:password]@]host[:port][/vhost][?query]: port 5672
 * (amqps: 5671), vhost "/" when the path is empty (percent-encoded: %2f is
 * "/"), user and password guest. Query parameters (anything else is refused):
 *   heartbeat=S        heartbeat interval in seconds (default 60; 0: none)
 *   connection_name=N  the name the management UI shows (also: name=N)
 *   prefetch=N         default basic.qos prefetch of subscribers (default:
 *                      4 x concurrency, at least 10)
 *   publish_channels=N the publishing channels of the pool, 1-64 (default 4;
 *                      fs_rabbitmq_options.publish_channels wins when set)
 *   frame_max=N        (default 131072)
 *   connect_timeout=MS (default 5000): socket, TLS and login
 *   cafile=PATH        amqps: the CA certificates that sign the server's
 *   certfile=PATH, keyfile=PATH  amqps: a client certificate and its key
 *   verify=false       amqps: do not verify the server's certificate nor
 *                      its host name (both are verified by default)
 *
 * Errors at fs_broker_connect/start: a refused login is FS_EBROKER
 * ("rabbitmq: login refused for user 'x' (ACCESS_REFUSED)..."), a missing
 * vhost FS_ENOTFOUND ("rabbitmq: vhost 'x' not found"), an unreachable host
 * FS_EIO ("rabbitmq: cannot connect to host:port: ..."); a declaration that
 * conflicts with what exists (PRECONDITION_FAILED) is FS_ECONFLICT at
 * fs_broker_start (or fs_subscribe while running), naming the queue or
 * exchange and the server's text.
 *
 * Consuming. Each subscriber gets its own channel with basic.qos prefetch
 * and basic.consume on its queue; `concurrency` handlers run at once. Its
 * queue, exchange and binding are declared as FastStream's RabbitQueue and
 * RabbitExchange declare them, at start and again after every reconnection
 * (declare = false or passive = true only check they exist). The handler
 * label (fs_message_source) is "{exchange or 'default'}.{routing_key}" of
 * the delivery. Settlement (FastStream's): ack = basic.ack, nack =
 * basic.nack(requeue=true) sent after the subscriber's redelivery delay,
 * reject = basic.reject(requeue=false): dead-lettered when the queue has an
 * x-dead-letter-exchange. The default ack policy is REJECT_ON_ERROR;
 * ACK_FIRST consumes with no_ack (nothing is settled on the wire).
 *
 * Publishing. fs_publish(b, routing_key, env) publishes to the default
 * exchange (straight to the queue of that name) or to the options' exchange,
 * mandatory and with publisher confirms: it returns once the server
 * confirmed, and a basic.nack, a basic.return (unroutable) or a channel
 * error is a publish error with its type (fs_last_publish_error_type():
 * "MessageReturned", "MessageNacked", "ChannelNotFoundEntity"...). Several
 * threads may publish at once through a pool of publishing channels (4 by
 * default), each in confirm mode with its own delivery tags: a thread keeps
 * to one channel (the n-th thread to publish to channel n % pool size), so
 * its messages stay in order and up to pool-size threads never share one;
 * their confirms are pipelined. When the server closes a channel (a
 * publish to a missing exchange: 404), the publish that caused it fails
 * with the server's reason ("ChannelNotFoundEntity"), others in flight on
 * that channel alone fail with "ChannelClosed" (they may not have been
 * routed: publish them again), and the channel is reopened; the other
 * channels are not disturbed. A batch is published at once and waits for
 * all its confirms. The metrics'
 * destination label is FastStream's "{exchange or 'default'}.{routing_key}"
 * ("default.order.created"; "orders.order.created" with exchange "orders").
 * A destination published without options is a reply_to: "queue|exchange"
 * goes to that exchange (for fs_publish, fs_request and replies alike).
 *
 * Request/reply: fs_request uses direct reply-to (amq.rabbitmq.reply-to).
 * A handler's fs_message_reply goes to the default exchange with the
 * reply_to routing key, or to EXCHANGE when reply_to is "queue|exchange".
 *
 * Faults: a lost connection is reopened with backoff (100 ms to 5 s),
 * topology redeclared, consumers resumed. Deliveries not settled before the
 * loss are redelivered by the server; their late settlements are dropped.
 * Publishes waiting for a confirm when the connection drops fail with
 * "ConnectionError" (the message may or may not have been routed).
 */
#ifndef FASTSTREAM_RABBITMQ_H
#define FASTSTREAM_RABBITMQ_H

#include "faststream/broker.h"
#include "faststream/common.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/** Exchange types. */
typedef enum fs_rabbitmq_exchange_type {
    FS_RABBITMQ_DIRECT = 0,
    FS_RABBITMQ_FANOUT = 1,
    FS_RABBITMQ_TOPIC = 2,
    FS_RABBITMQ_HEADERS = 3,
} fs_rabbitmq_exchange_type;

/** "direct", "fanout", "topic" or "headers". */
FS_API const char *fs_rabbitmq_exchange_type_name(fs_rabbitmq_exchange_type type);

/** The type of an argument's value. */
typedef enum fs_rabbitmq_arg_type {
    FS_RABBITMQ_ARG_STRING = 0,
    FS_RABBITMQ_ARG_INT = 1,
    FS_RABBITMQ_ARG_BOOL = 2,
} fs_rabbitmq_arg_type;

/** One entry of an arguments table (x-queue-type, x-message-ttl, x-match...). */
typedef struct fs_rabbitmq_arg {
    const char *key;
    fs_rabbitmq_arg_type type;
    const char *str; /**< FS_RABBITMQ_ARG_STRING */
    int64_t num;     /**< FS_RABBITMQ_ARG_INT; FS_RABBITMQ_ARG_BOOL: 0 or 1 */
} fs_rabbitmq_arg;

#define FS_RABBITMQ_ARG_STR(k, v)                                                                  \
    {                                                                                              \
        (k), FS_RABBITMQ_ARG_STRING, (v), 0                                                        \
    }
#define FS_RABBITMQ_ARG_INT(k, v)                                                                  \
    {                                                                                              \
        (k), FS_RABBITMQ_ARG_INT, NULL, (v)                                                        \
    }
#define FS_RABBITMQ_ARG_BOOL(k, v)                                                                 \
    {                                                                                              \
        (k), FS_RABBITMQ_ARG_BOOL, NULL, (v) ? 1 : 0                                               \
    }

/** A queue, as FastStream's RabbitQueue. */
typedef struct fs_rabbitmq_queue {
    /** The queue's name; NULL: the subscriber's source. */
    const char *name;
    bool durable, exclusive, auto_delete;
    /** Only check that the queue exists (queue.declare passive). */
    bool passive;
    /** Do not declare at all (the queue must exist). */
    bool no_declare;
    /** x-queue-type, x-dead-letter-exchange, x-message-ttl, x-max-length... */
    const fs_rabbitmq_arg *arguments;
    size_t argument_count;
    /** The binding key to the subscriber's exchange; NULL: the queue's name. */
    const char *routing_key;
    /** Binding arguments (headers exchanges: x-match and the headers to match). */
    const fs_rabbitmq_arg *bind_arguments;
    size_t bind_argument_count;
} fs_rabbitmq_queue;

#define FS_RABBITMQ_QUEUE_INIT                                                                     \
    {                                                                                              \
        NULL, false, false, false, false, false, NULL, 0, NULL, NULL, 0                            \
    }

/** An exchange, as FastStream's RabbitExchange. */
typedef struct fs_rabbitmq_exchange {
    /** NULL or "": the default exchange (nothing declared or bound). */
    const char *name;
    fs_rabbitmq_exchange_type type;
    bool durable, auto_delete, internal;
    bool passive;    /**< only check that it exists */
    bool no_declare; /**< do not declare it (it must exist) */
    const fs_rabbitmq_arg *arguments;
    size_t argument_count;
} fs_rabbitmq_exchange;

#define FS_RABBITMQ_EXCHANGE_INIT                                                                  \
    {                                                                                              \
        NULL, FS_RABBITMQ_DIRECT, false, false, false, false, false, NULL, 0                       \
    }

/**
 * Per-subscriber options (fs_subscriber_options.broker_options), read and
 * copied during fs_subscribe.
 */
typedef struct fs_rabbitmq_subscriber_options {
    fs_rabbitmq_queue queue;
    /** The exchange the queue is bound to (with queue.routing_key); default: none. */
    fs_rabbitmq_exchange exchange;
    /**
     * basic.qos prefetch count; 0: the URL's prefetch=, else 4 x concurrency (2 x batch_size
     * x concurrency for batch subscribers, whose batches the core gathers), at least 10.
     */
    unsigned prefetch;
} fs_rabbitmq_subscriber_options;

#define FS_RABBITMQ_SUBSCRIBER_OPTIONS_INIT                                                        \
    {                                                                                              \
        FS_RABBITMQ_QUEUE_INIT, FS_RABBITMQ_EXCHANGE_INIT, 0                                       \
    }

/**
 * Publish options: fs_envelope.broker_options, or
 * fs_publisher_options.broker_options. The destination of fs_publish is the
 * routing key.
 */
typedef struct fs_rabbitmq_publish_options {
    /** NULL or "": the default exchange. */
    const char *exchange;
    /** delivery_mode 2 (persistent); FastStream's persist=True. */
    bool persist;
    /** Not mandatory: an unroutable message is dropped silently (FastStream: mandatory=True). */
    bool not_mandatory;
    /** Do not wait for the publisher confirm (returns once sent). */
    bool no_confirm;
    /** 1-255: the priority property; 0: none. */
    uint8_t priority;
    /** The expiration property (per-message TTL, milliseconds as a string), or NULL. */
    const char *expiration;
    /** The type, user_id and app_id properties, or NULL. */
    const char *type, *user_id, *app_id;
} fs_rabbitmq_publish_options;

#define FS_RABBITMQ_PUBLISH_OPTIONS_INIT                                                           \
    {                                                                                              \
        NULL, false, false, false, 0, NULL, NULL, NULL, NULL                                       \
    }

/** Broker options for fs_rabbitmq_broker_new. */
typedef struct fs_rabbitmq_options {
    fs_broker_options broker;
    /** How long a publish waits for its confirm; 0 means 10000 ms. */
    int confirm_timeout_ms;
    /**
     * The number of publishing channels (1-64); 0: the URL's
     * publish_channels=, else 4. See "Publishing" above.
     */
    unsigned publish_channels;
} fs_rabbitmq_options;

#define FS_RABBITMQ_OPTIONS_INIT                                                                   \
    {                                                                                              \
        FS_BROKER_OPTIONS_INIT, 0, 0                                                               \
    }

/**
 * Create a RabbitMQ broker for `url` (see above). `opts` may be NULL.
 * Nothing is connected yet. fs_broker_new("amqp://...") does the same with
 * the default options.
 */
FS_API int fs_rabbitmq_broker_new(const char *url, const fs_rabbitmq_options *opts,
                                  fs_broker **out);

/**
 * Register the "amqp" and "amqps" URL schemes with the core. The library
 * does it by itself when it is loaded; call this when linking it
 * statically. Registering again is a no-op.
 */
FS_API int fs_rabbitmq_register(void);

/** True when `broker` is a RabbitMQ broker. */
FS_API bool fs_broker_is_rabbitmq(const fs_broker *broker);

/**
 * Declare an exchange, a queue, and the binding of the queue to the
 * exchange (each optional: NULL, or a NULL/"" name, skips it) now, on a
 * connected broker. FS_ECONFLICT when it conflicts with what exists.
 */
FS_API int fs_rabbitmq_declare(fs_broker *broker, const fs_rabbitmq_exchange *exchange,
                               const fs_rabbitmq_queue *queue);

/** Delete a queue (if_unused, if_empty false). */
FS_API int fs_rabbitmq_delete_queue(fs_broker *broker, const char *queue);

/** Delete an exchange. */
FS_API int fs_rabbitmq_delete_exchange(fs_broker *broker, const char *exchange);

/**
 * The number of messages ready in `queue` (a passive queue.declare), and
 * of its consumers when `consumers` is not NULL. FS_ENOTFOUND when it does
 * not exist.
 */
FS_API int fs_rabbitmq_queue_depth(fs_broker *broker, const char *queue, uint64_t *messages,
                                   uint64_t *consumers);

/**
 * What fs_message_raw() returns for a message from a RabbitMQ broker
 * (const fs_rabbitmq_message_info *), valid as long as the message.
 */
typedef struct fs_rabbitmq_message_info {
    const char *exchange;    /**< "" for the default exchange */
    const char *routing_key; /**< as published */
    const char *queue;       /**< the queue it was consumed from */
    uint64_t delivery_tag;
    bool redelivered;
    uint8_t priority;       /**< 0 when absent */
    uint8_t delivery_mode;  /**< 1 transient, 2 persistent, 0 absent */
    int64_t timestamp;      /**< seconds, 0 when absent */
    const char *expiration; /**< or NULL */
    const char *type;       /**< or NULL */
    const char *app_id;     /**< or NULL */
    const char *user_id;    /**< or NULL */
} fs_rabbitmq_message_info;

#ifdef __cplusplus
}
#endif

#endif /* FASTSTREAM_RABBITMQ_H */
