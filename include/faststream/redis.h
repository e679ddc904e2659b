/*
 * faststream/redis.h - the Redis broker: channels (pub/sub), lists and
 * streams on a redis-server (7.0 or later: BLMPOP, XAUTOCLAIM), speaking
 * FastStream's own Redis message formats so that a C service and a Python
 * FastStream service share one Redis.
 *
 *   fs_broker *b;
 *   if (fs_broker_new("redis://127.0.0.1:6379/0", NULL, &b) < 0)
 *       fprintf(stderr, "%s\n", fs_last_error());
 *
 *   fs_redis_subscriber_options ro = FS_REDIS_SUBSCRIBER_OPTIONS_INIT;
 *   ro.kind = FS_REDIS_STREAM;
 *   ro.group = "billing";                  // consumer group, created if missing
 *   fs_subscriber_options so = FS_SUBSCRIBER_OPTIONS_INIT;
 *   so.broker_options = &ro;
 *   fs_subscribe(b, "orders", on_order, NULL, &so, NULL);
 *
 *   fs_redis_publish_options po = FS_REDIS_PUBLISH_OPTIONS_INIT;
 *   po.kind = FS_REDIS_STREAM;
 *   fs_envelope env = FS_ENVELOPE_INIT;
 *   env.body = "{}"; env.body_len = 2; env.broker_options = &po;
 *   fs_publish(b, "orders", &env);
 *
 * URL: redis://[[user]:password@]host[:port][/db][?format=binary|json|raw]
 * [&client_name=NAME] (port 6379 and db 0 by default; client_name is given to
 * every connection with CLIENT SETNAME, as redis-py does). Without broker options a name is a
 * pub/sub channel, as in FastStream.
 *
 * Delivery per kind:
 *   - channel: SUBSCRIBE, or PSUBSCRIBE with `pattern` (the message's source
 *     is the concrete channel, never the pattern). No acknowledgement exists:
 *     every ack policy behaves as acked on receipt. At most once.
 *   - list: BLMPOP (one message, or up to a batch in one call); a popped
 *     message is gone, so every ack policy behaves as acked on receipt.
 *     Publish: RPUSH (a batch in one command). FIFO like FastStream's LPOP.
 *   - stream with a group: XREADGROUP as consumer `consumer` of `group`
 *     (the group is created with MKSTREAM when missing). ack: XACK. nack:
 *     the entry stays pending and is delivered again (XCLAIM). reject: XACK,
 *     after an XADD of its fields to `dead_letter` when configured. Pending
 *     entries of this consumer (left by a crash or a lost connection) are
 *     delivered again after every (re)connection, and, with
 *     claim_min_idle_ms, entries pending longer than that on any consumer of
 *     the group are claimed (XAUTOCLAIM). At least once.
 *   - stream without a group: XREAD from the newest entry on; no
 *     acknowledgement.
 *   Publish to a stream: XADD with the message in the field "__data__",
 *   optionally MAXLEN ~ N.
 *
 * Connections: one per subscription for reading, and a pool shared by
 * publishers and acknowledgements (publishing from many threads at once is
 * safe). A lost connection is re-established with exponential backoff (100
 * ms to 5 s), re-subscribing and resuming; losses and recoveries are logged
 * (component "redis"). Publish errors carry redis-py's exception names as
 * their type: "ConnectionError", "TimeoutError", "ResponseError".
 */
#ifndef FASTSTREAM_REDIS_H
#define FASTSTREAM_REDIS_H

#include "faststream/broker.h"
#include "faststream/common.h"

#include <stdbool.h>
#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

/**
 * How a publisher lays a message out in Redis. Subscribers read every
 * format, whatever this says.
 */
typedef enum fs_redis_format {
    /** Inherit: the publisher's, then the broker's, then FS_REDIS_FORMAT_BINARY. */
    FS_REDIS_FORMAT_DEFAULT = 0,
    /** FastStream's binary format v1 (its default since FastStream 0.6): headers and body. */
    FS_REDIS_FORMAT_BINARY = 1,
    /** FastStream's JSON envelope {"data": ..., "headers": {...}}; the body must be UTF-8. */
    FS_REDIS_FORMAT_JSON = 2,
    /** The body alone, no headers (for consumers that are not FastStream). */
    FS_REDIS_FORMAT_RAW = 3,
} fs_redis_format;

/** "default", "binary", "json" or "raw". */
FS_API const char *fs_redis_format_name(fs_redis_format format);

/** What a name designates. */
typedef enum fs_redis_kind {
    FS_REDIS_CHANNEL = 0, /**< pub/sub channel (the default) */
    FS_REDIS_LIST = 1,    /**< list: RPUSH / BLMPOP */
    FS_REDIS_STREAM = 2,  /**< stream: XADD / XREADGROUP or XREAD */
} fs_redis_kind;

/** "channel", "list" or "stream". */
FS_API const char *fs_redis_kind_name(fs_redis_kind kind);

/** Broker options for fs_redis_broker_new. */
typedef struct fs_redis_options {
    fs_broker_options broker;
    /** Format publishers write by default; DEFAULT: the URL's ?format=, else binary. */
    fs_redis_format format;
    /** Timeout of a connection attempt; 0 means 2000 ms. */
    int connect_timeout_ms;
    /** Timeout of one command on a publish/ack connection; 0 means 5000 ms. */
    int command_timeout_ms;
} fs_redis_options;

#define FS_REDIS_OPTIONS_INIT                                                                      \
    {                                                                                              \
        FS_BROKER_OPTIONS_INIT, FS_REDIS_FORMAT_DEFAULT, 0, 0                                      \
    }

/**
 * Create a Redis broker for `url` (see above). `opts` may be NULL. Nothing
 * is connected yet: fs_broker_connect / fs_broker_start report an
 * unreachable server as FS_EIO ("redis: cannot connect to HOST:PORT: ...").
 * fs_broker_new("redis://...") does the same with the default options.
 */
FS_API int fs_redis_broker_new(const char *url, const fs_redis_options *opts, fs_broker **out);

/**
 * Register the "redis" URL scheme with the core. The library does it by
 * itself when it is loaded; call this when linking it statically, or when
 * the program calls no other function of the library (the linker may then
 * drop it: --as-needed). Registering again is a no-op.
 */
FS_API int fs_redis_register(void);

/** True when `broker` is a Redis broker. */
FS_API bool fs_broker_is_redis(const fs_broker *broker);

/** Per-subscriber options, passed as fs_subscriber_options.broker_options. */
typedef struct fs_redis_subscriber_options {
    fs_redis_kind kind;
    /** Channel: the source is a glob-style pattern (PSUBSCRIBE). */
    bool pattern;
    /** Stream: the consumer group; NULL reads without a group (XREAD, no acks). */
    const char *group;
    /** Stream group: this consumer's name; NULL: "HOSTNAME-PID-N", unique per subscriber. */
    const char *consumer;
    /**
     * Stream: where a new group starts (XGROUP CREATE ... ID), or where a
     * group-less reader starts; NULL means "$" (only entries added from now
     * on). "0" reads the whole stream.
     */
    const char *start_id;
    /**
     * Stream group: claim entries pending for longer than this on any
     * consumer of the group (XAUTOCLAIM), so that a consumer that died does
     * not strand them. 0 disables claiming.
     */
    unsigned claim_min_idle_ms;
    /** Stream group: rejected entries are copied (XADD) to this stream first; NULL drops them. */
    const char *dead_letter;
} fs_redis_subscriber_options;

#define FS_REDIS_SUBSCRIBER_OPTIONS_INIT                                                           \
    {                                                                                              \
        FS_REDIS_CHANNEL, false, NULL, NULL, NULL, 0, NULL                                         \
    }

/**
 * Publish options: fs_envelope.broker_options (per message; for a batch,
 * the first message's count), or fs_publisher_options.broker_options.
 */
typedef struct fs_redis_publish_options {
    fs_redis_kind kind;
    /** Stream: trim to about this many entries (XADD MAXLEN ~ N); 0: no trimming. */
    size_t maxlen;
    /** The format to write; DEFAULT: the broker's. */
    fs_redis_format format;
} fs_redis_publish_options;

#define FS_REDIS_PUBLISH_OPTIONS_INIT                                                              \
    {                                                                                              \
        FS_REDIS_CHANNEL, 0, FS_REDIS_FORMAT_DEFAULT                                               \
    }

/**
 * What fs_message_raw() returns for a message from a Redis broker
 * (const fs_redis_message_info *), valid as long as the message.
 */
typedef struct fs_redis_message_info {
    fs_redis_kind kind;
    const char *name;       /**< the channel, list or stream it came from */
    const char *pattern;    /**< the matching pattern (PSUBSCRIBE), or NULL */
    const char *entry_id;   /**< the stream entry id ("1700000000000-0"), or NULL */
    const char *group;      /**< the stream's consumer group, or NULL */
    fs_redis_format format; /**< how the value was laid out (BINARY, JSON or RAW) */
} fs_redis_message_info;

#ifdef __cplusplus
}
#endif

#endif /* FASTSTREAM_REDIS_H */
