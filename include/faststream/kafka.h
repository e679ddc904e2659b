/*
 * faststream/kafka.h - the Kafka broker, on librdkafka, speaking FastStream's
 * Kafka conventions (headers, message ids, replies) so that a C service and a
 * Python FastStream service share topics.
 *
 *   fs_broker *b;
 *   if (fs_broker_new("kafka://127.0.0.1:9092?group_id=billing", NULL, &b) < 0)
 *       fprintf(stderr, "%s\n", fs_last_error());
 *   fs_subscriber_options so = FS_SUBSCRIBER_OPTIONS_INIT;
 *   so.concurrency = 4;                    // parallel across partitions
 *   fs_subscribe(b, "orders", on_order, NULL, &so, NULL);
 *   fs_broker_start(b);
 *
 * URL: kafka://host:port[,host:port...][?group_id=G][&client_id=C]. Other
 * query parameters are refused, naming them. Every other librdkafka setting
 * (TLS, SASL, timeouts, ...) is passed through fs_kafka_options.config, as
 * librdkafka users write them ("security.protocol", "ssl.ca.location"...):
 * a key librdkafka refuses fails fs_kafka_broker_new with FS_EINVAL and a
 * message naming the key.
 *
 * Subscriptions. The source is a topic, a comma-separated list of topics, or
 * with fs_kafka_subscriber_options.pattern a regular expression (librdkafka's
 * syntax, "^" added when missing). With a consumer group (the subscriber's
 * group_id, else the broker's) the group assigns partitions; without one, or
 * with explicit partitions, the subscriber reads the partitions it names (or
 * every partition of its topics) from the start offset given. The handler
 * label is the concrete topic a message came from.
 *
 * Ordering and concurrency. Each partition (or each key, with order_by_key)
 * goes to one worker lane, so messages of a partition are handled one at a
 * time in offset order while partitions run in parallel (FastStream's rule).
 *
 * Acknowledgement (at least once). ACK_FIRST, Kafka's default, commits the
 * offsets handed to handlers (as enable.auto.commit does): every message
 * counts "acked", also when its handler failed. Every other policy commits
 * only after handling, and only the contiguous prefix of finished offsets of
 * each partition: an offset is never committed while an earlier one of the
 * same partition is unfinished. nack = seek back to the message's offset
 * after the redelivery delay (it and what follows on that partition come
 * again); reject = commit, after copying the message to dead_letter when
 * set (headers x-original-topic, x-original-partition, x-original-offset,
 * x-error). An explicit reject counts "acked", as in FastStream. Commits
 * are batched (commit_every messages or commit_interval_ms) and flushed on
 * stop and when partitions are revoked; a revoke waits (at most
 * rebalance_timeout_ms) for the revoked partitions' handlers first.
 *
 * Publishing waits for the delivery report unless no_wait is set (then a
 * failure is still reported, when the report arrives, to the publish
 * middleware). Error types are librdkafka's error names ("_MSG_TIMED_OUT",
 * "TOPIC_AUTHORIZATION_FAILED"...). Headers written: content-type,
 * correlation_id, reply_to (when set), then the envelope's. A received
 * message's id is "{offset}-{timestamp}", as FastStream derives it.
 *
 * librdkafka's log lines go to the project's log callback (component
 * "kafka").
 */
#ifndef FASTSTREAM_KAFKA_H
#define FASTSTREAM_KAFKA_H

#include "faststream/broker.h"
#include "faststream/common.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/** One librdkafka configuration property ("key", "value"). */
typedef struct fs_kafka_config {
    const char *key;
    const char *value;
} fs_kafka_config;

/** Broker options for fs_kafka_broker_new. */
typedef struct fs_kafka_options {
    fs_broker_options broker;
    /** Default consumer group of subscribers (overrides the URL's group_id); NULL: the URL's. */
    const char *group_id;
    /** client.id (overrides the URL's client_id); NULL: the URL's, else "faststream-c". */
    const char *client_id;
    /** librdkafka properties for every client (producer and consumers). */
    const fs_kafka_config *config;
    size_t config_count;
    /** librdkafka properties for the producer only. */
    const fs_kafka_config *producer_config;
    size_t producer_config_count;
    /** librdkafka properties for consumers only (a subscriber can add its own). */
    const fs_kafka_config *consumer_config;
    size_t consumer_config_count;
    /** How long connect waits for the cluster's metadata; 0 means 5000 ms. */
    int connect_timeout_ms;
    /** Commit at least this often while messages finish; 0 means 500 ms. */
    unsigned commit_interval_ms;
    /** Commit as soon as this many messages finished since the last commit; 0 means 1000. */
    unsigned commit_every;
    /** How long a revoke waits for the handlers of revoked partitions; 0 means 10000 ms. */
    unsigned rebalance_timeout_ms;
} fs_kafka_options;

#define FS_KAFKA_OPTIONS_INIT                                                                      \
    {                                                                                              \
        FS_BROKER_OPTIONS_INIT, NULL, NULL, NULL, 0, NULL, 0, NULL, 0, 0, 0, 0, 0                  \
    }

/**
 * Create a Kafka broker for `url` (see above). `opts` may be NULL. The
 * configuration is checked here (FS_EINVAL naming a refused key); nothing is
 * connected yet: fs_broker_connect / fs_broker_start report an unreachable
 * cluster as FS_EIO ("kafka: no broker of HOSTS answered within N ms: ...").
 * fs_broker_new("kafka://...") does the same with the default options.
 */
FS_API int fs_kafka_broker_new(const char *url, const fs_kafka_options *opts, fs_broker **out);

/**
 * Register the "kafka" URL scheme with the core. The library does it by
 * itself when it is loaded; call this when linking it statically. Registering
 * again is a no-op.
 */
FS_API int fs_kafka_register(void);

/** True when `broker` is a Kafka broker. */
FS_API bool fs_broker_is_kafka(const fs_broker *broker);

/** Where a subscription without committed offsets starts. */
typedef enum fs_kafka_start {
    /**
     * Group: librdkafka's auto.offset.reset as configured (default "latest",
     * as FastStream). Without a group: the newest messages (latest).
     */
    FS_KAFKA_START_DEFAULT = 0,
    FS_KAFKA_START_EARLIEST = 1, /**< the oldest message kept */
    FS_KAFKA_START_LATEST = 2,   /**< only messages produced from now on */
    FS_KAFKA_START_OFFSET = 3,   /**< explicit partitions: at offset start_value */
    FS_KAFKA_START_TIMESTAMP =
        4, /**< explicit partitions / no group: first at or after start_value ms */
} fs_kafka_start;

/** A partition of a topic. */
typedef struct fs_kafka_partition {
    const char *topic;
    int32_t partition;
} fs_kafka_partition;

/** Per-subscriber options, passed as fs_subscriber_options.broker_options. */
typedef struct fs_kafka_subscriber_options {
    /** Consumer group; NULL: the broker's; "" (or none anywhere): no group, no commits. */
    const char *group_id;
    /** The source is a regular expression of topic names (needs a group). */
    bool pattern;
    /** Read exactly these partitions (no group rebalancing; commits when there is a group). */
    const fs_kafka_partition *partitions;
    size_t partition_count;
    /** Where to start (see fs_kafka_start) and its value for OFFSET / TIMESTAMP. */
    fs_kafka_start start;
    int64_t start_value;
    /** Lanes by message key instead of by partition (per-key order, more parallelism). */
    bool order_by_key;
    /** Copy rejected messages to this topic before committing them; NULL: drop. */
    const char *dead_letter;
    /** Override the broker's commit_interval_ms / commit_every (0: the broker's). */
    unsigned commit_interval_ms;
    unsigned commit_every;
    /** Extra librdkafka consumer properties for this subscriber. */
    const fs_kafka_config *config;
    size_t config_count;
} fs_kafka_subscriber_options;

#define FS_KAFKA_SUBSCRIBER_OPTIONS_INIT                                                           \
    {                                                                                              \
        NULL, false, NULL, 0, FS_KAFKA_START_DEFAULT, 0, false, NULL, 0, 0, NULL, 0                \
    }

/**
 * Publish options: fs_envelope.broker_options (per message), or
 * fs_publisher_options.broker_options.
 */
typedef struct fs_kafka_publish_options {
    /** The message key (partitioning), or NULL. */
    const void *key;
    size_t key_len;
    /** The partition; -1: chosen by the partitioner (by key when there is one). */
    int32_t partition;
    /** The record's timestamp in ms since the epoch; 0: now. */
    int64_t timestamp_ms;
    /** Return once queued; a delivery failure is still reported when its report arrives. */
    bool no_wait;
} fs_kafka_publish_options;

#define FS_KAFKA_PUBLISH_OPTIONS_INIT                                                              \
    {                                                                                              \
        NULL, 0, -1, 0, false                                                                      \
    }

/**
 * What fs_message_raw() returns for a message from a Kafka broker
 * (const fs_kafka_message_info *), valid as long as the message.
 */
typedef struct fs_kafka_message_info {
    const char *topic;
    int32_t partition;
    int64_t offset;
    int64_t timestamp_ms; /**< 0 when the record has none */
    const void *key;      /**< or NULL */
    size_t key_len;
    void *rkmessage; /**< the rd_kafka_message_t */
} fs_kafka_message_info;

/**
 * Consumer lag of the subscription on `source` (as given to fs_subscribe):
 * the high watermark minus the committed offset (the low watermark when none
 * is committed), summed over the partitions this member reads, asking the
 * cluster (at most timeout_ms). FS_ENOTFOUND when no Kafka subscription has
 * that source, FS_ESTATE when it is not running.
 */
FS_API int fs_kafka_lag(fs_broker *broker, const char *source, int timeout_ms, uint64_t *out);

/** The broker's librdkafka producer handle (rd_kafka_t *), or NULL before connect. */
FS_API void *fs_kafka_producer_handle(fs_broker *broker);

#ifdef __cplusplus
}
#endif

#endif /* FASTSTREAM_KAFKA_H */
