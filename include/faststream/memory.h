/*
 * faststream/memory.h - the in-process broker ("memory://"): named queues
 * inside the process, no server. For tests, demos and in-process pipelines.
 *
 * Model. Every name (what you publish to and subscribe to) has one or more
 * groups; each group is one bounded queue.
 *   - A subscriber joins the group named in its fs_memory_subscriber_options
 *     (`group`), or the name's default group when none is given.
 *   - Subscribers of the same group compete: each message goes to one of
 *     them (as do the `concurrency` workers of one subscriber).
 *   - Publishing to a name delivers a copy to every group of that name
 *     (fan-out). A name that has no group yet gets its default group, so
 *     messages published before anyone subscribed wait there.
 * ack removes the message; nack puts it back at the tail once the
 * subscriber's redelivery delay passed (fs_subscriber_options.redelivery:
 * 100 ms, doubling per delivery up to 10 s, by default; past max_deliveries
 * it is rejected instead); reject drops it or, if the subscriber has a
 * dead-letter name, publishes it to that name. fs_message_delivery_count()
 * counts the deliveries since the message was published. A message released unsettled (SKIP, MANUAL
 * without settlement) stays pending and is requeued when its subscriber stops. Capacity is bounded
 * per group: publishing to a full group fails with FS_EFULL and the error type name "QueueFull"
 * (for a fan-out, the groups that had room still got the message).
 *
 * Built-in default ack policy: REJECT_ON_ERROR. Publishing and consuming
 * take no lock and allocate nothing in the steady state for bodies up to
 * inline_size bytes (headers included).
 *
 * URL: "memory://" or "memory://?capacity=N&inline_size=N".
 */
#ifndef FASTSTREAM_MEMORY_H
#define FASTSTREAM_MEMORY_H

#include "faststream/broker.h"
#include "faststream/message.h"
#include "faststream/publisher.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct fs_memory_options {
    fs_broker_options broker;
    /** Messages per group (rounded up to a power of two); 0 means 16384. */
    size_t capacity;
    /** Bytes of body + headers + metadata stored inline per slot; 0 means 256. */
    size_t inline_size;
    /**
     * Keep a copy of every published message per destination, for
     * fs_memory_take_published (costs a malloc per publish). Default off;
     * the per-destination counts are always kept.
     */
    bool record_published;
} fs_memory_options;

#define FS_MEMORY_OPTIONS_INIT                                                                     \
    {                                                                                              \
        FS_BROKER_OPTIONS_INIT, 0, 0, false                                                        \
    }

/** Per-subscriber options, passed as fs_subscriber_options.broker_options. */
typedef struct fs_memory_subscriber_options {
    /** The group to join; NULL: the name's default group (competing consumers). */
    const char *group;
    /** Where rejected messages go (a name to publish to), or NULL to drop them. */
    const char *dead_letter;
} fs_memory_subscriber_options;

#define FS_MEMORY_SUBSCRIBER_OPTIONS_INIT                                                          \
    {                                                                                              \
        NULL, NULL                                                                                 \
    }

/** Create an in-process broker. `opts` may be NULL. */
FS_API int fs_memory_broker_new(const fs_memory_options *opts, fs_broker **out);

/**
 * Register the "memory" URL scheme (done automatically when the library is
 * loaded; call it from a static link). FS_OK or FS_ECONFLICT.
 */
FS_API int fs_memory_register(void);

/** True when `broker` is an in-process broker. */
FS_API bool fs_broker_is_memory(const fs_broker *broker);

/* ------------------------------------------------------------------------ */
/* Test harness                                                             */

/**
 * Messages waiting in group `group` (NULL: the default group) of `name`,
 * including nacked ones waiting for their redelivery delay, not counting
 * those being handled. 0 when there is no such group.
 */
FS_API size_t fs_memory_queue_depth(const fs_broker *broker, const char *name, const char *group);

/**
 * Messages of that group taken by a consumer and not yet given back: being
 * handled, or released unsettled and pending (exact when no publish or
 * fetch is under way).
 */
FS_API size_t fs_memory_queue_in_flight(const fs_broker *broker, const char *name,
                                        const char *group);

/** Number of messages successfully published to `name` since the broker was created. */
FS_API uint64_t fs_memory_published_count(const fs_broker *broker, const char *name);

/**
 * Take (remove) the oldest recorded copy of a message published to `name`
 * (needs record_published). FS_OK with *out owned by the caller (free with
 * fs_message_free; it has body, headers and metadata, source = name),
 * FS_ENOTFOUND when none is recorded, FS_ESTATE when recording is off.
 */
FS_API int fs_memory_take_published(fs_broker *broker, const char *name, fs_message **out);

/**
 * Wait until the broker's subscribers handled (finished and settled) at
 * least `n` messages in total since the broker was created, up to
 * timeout_ms (negative: forever). FS_OK or FS_ETIMEDOUT.
 */
FS_API int fs_memory_wait_handled(const fs_broker *broker, uint64_t n, int timeout_ms);

#ifdef __cplusplus
}
#endif

#endif /* FASTSTREAM_MEMORY_H */
