/*
 * faststream/publisher.h - publishing one message or a batch, and
 * request/reply.
 *
 *   fs_envelope env = FS_ENVELOPE_INIT;
 *   env.body = "hello";
 *   env.body_len = 5;
 *   if (fs_publish(broker, "greetings", &env) < 0)
 *       fprintf(stderr, "%s\n", fs_last_error());
 *
 * Every publish runs through the broker's publish middleware chain, then
 * the adapter. A publish from inside a handler is tied to the message being
 * handled (fs_current_message()). All functions here are thread-safe.
 *
 * Errors: a negative FS_E* status with fs_last_error() set; a full bounded
 * queue is FS_EFULL. The error's type name (as the metrics report it, e.g.
 * "QueueFull" or the broker client's error code name) is what
 * fs_last_publish_error_type() returns afterwards.
 */
#ifndef FASTSTREAM_PUBLISHER_H
#define FASTSTREAM_PUBLISHER_H

#include "faststream/message.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct fs_broker fs_broker;
typedef struct fs_publisher fs_publisher;

/** An outgoing message. Everything is borrowed for the duration of the call only. */
typedef struct fs_envelope {
    const void *body;
    size_t body_len;
    const fs_header *headers; /**< header_count entries, or NULL */
    size_t header_count;
    const char *content_type;   /**< or NULL */
    const char *correlation_id; /**< or NULL (a request generates one) */
    const char *message_id;     /**< or NULL (the adapter may generate one) */
    const char *reply_to;       /**< or NULL */
    /**
     * Broker-specific per-message options (e.g. const fs_redis_publish_options *),
     * or NULL for the publisher's / broker's defaults.
     */
    const void *broker_options;
    /** The message key (Kafka), or NULL. Copied by the adapter. */
    const void *key;
    size_t key_len;
    /** The partition to publish to when partition_set (Kafka); otherwise any. */
    int32_t partition;
    bool partition_set;
    /** The message timestamp in ms since the epoch; 0: now (where the broker has one). */
    int64_t timestamp_ms;
} fs_envelope;

/* A zeroed fs_envelope is the same: every field absent. */
#define FS_ENVELOPE_INIT                                                                           \
    {                                                                                              \
        NULL, 0, NULL, 0, NULL, NULL, NULL, NULL, NULL, NULL, 0, 0, false, 0                       \
    }

/** Publish one message to `destination`. */
FS_API int fs_publish(fs_broker *broker, const char *destination, const fs_envelope *msg);

/** Shorthand: publish `body` with no headers or metadata. */
FS_API int fs_publish_bytes(fs_broker *broker, const char *destination, const void *body,
                            size_t len);

/**
 * Publish `count` messages to `destination` as one publish (one round trip
 * where the broker allows it; one middleware call with count N).
 */
FS_API int fs_publish_batch(fs_broker *broker, const char *destination, const fs_envelope *msgs,
                            size_t count);

/**
 * Request/reply: publish `msg` with a reply-to destination and a
 * correlation id (generated unless msg->correlation_id is set), then wait
 * up to `timeout_ms` for the reply carrying that correlation id. On FS_OK
 * `*reply` is a message owned by the caller (free with fs_message_free);
 * FS_ETIMEDOUT when no reply came in time (timeout_ms < 0: no limit);
 * FS_ECLOSED when the broker is closed meanwhile. The reply is not seen by the
 * consume middleware chain (not counted in metrics).
 */
FS_API int fs_request(fs_broker *broker, const char *destination, const fs_envelope *msg,
                      int timeout_ms, fs_message **reply);

/**
 * The error type name of the calling thread's last failed publish
 * ("QueueFull", a client error name, "Error"...), or NULL when the last
 * publish on this thread succeeded.
 */
FS_API const char *fs_last_publish_error_type(void);

/* ------------------------------------------------------------------------ */
/* Publisher objects: a destination resolved once, with default options.    */

typedef struct fs_publisher_options {
    /** Default broker-specific options for envelopes that carry none. */
    const void *broker_options;
    /** Default reply-to for envelopes that carry none (copied). */
    const char *reply_to;
} fs_publisher_options;

#define FS_PUBLISHER_OPTIONS_INIT                                                                  \
    {                                                                                              \
        NULL, NULL                                                                                 \
    }

/**
 * Create a publisher bound to `destination` (the adapter may resolve it
 * once here, making each publish cheaper). `opts` may be NULL. The
 * publisher belongs to the broker and stays valid until fs_publisher_free
 * or fs_broker_free.
 */
FS_API int fs_publisher_new(fs_broker *broker, const char *destination,
                            const fs_publisher_options *opts, fs_publisher **out);

/** fs_publish to the publisher's destination, with its defaults applied. */
FS_API int fs_publisher_publish(fs_publisher *pub, const fs_envelope *msg);

/** fs_publish_bytes to the publisher's destination, with its defaults applied. */
FS_API int fs_publisher_publish_bytes(fs_publisher *pub, const void *body, size_t len);

/** fs_publish_batch to the publisher's destination, with its defaults applied. */
FS_API int fs_publisher_publish_batch(fs_publisher *pub, const fs_envelope *msgs, size_t count);

/** fs_request to the publisher's destination (its reply_to default does not apply). */
FS_API int fs_publisher_request(fs_publisher *pub, const fs_envelope *msg, int timeout_ms,
                                fs_message **reply);

/** The destination name. */
FS_API const char *fs_publisher_destination(const fs_publisher *pub);

/** Free a publisher (not while another thread publishes through it). NULL is ignored. */
FS_API void fs_publisher_free(fs_publisher *pub);

#ifdef __cplusplus
}
#endif

#endif /* FASTSTREAM_PUBLISHER_H */
