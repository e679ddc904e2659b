/*
 * faststream/subscriber.h - handlers attached to a source, ack policies,
 * concurrency and batch mode.
 *
 *   static fs_outcome on_order(fs_message *msg, void *user)
 *   {
 *       if (fs_message_body_len(msg) == 0)
 *           return fs_message_fail(msg, "ValueError", "empty order");
 *       ...
 *       return FS_OUTCOME_OK;
 *   }
 *
 *   fs_subscriber_options so = FS_SUBSCRIBER_OPTIONS_INIT;
 *   so.concurrency = 4;
 *   fs_subscribe(broker, "orders", on_order, NULL, &so, NULL);
 *
 * The core runs `concurrency` worker threads per subscriber. Each one pulls
 * the next message (or batch) from the broker adapter, runs the consume
 * middleware chain and the handler on it, settles it per the ack policy and
 * gives it back to the adapter; so at most `concurrency` handler calls of one
 * subscriber run at once.
 *
 * Ack policy: what the broker finally receives when the handler did not
 * settle the message itself (fs_message_ack/nack/reject) and returned:
 *
 *   policy           OK      ERROR    ACK / NACK / REJECT   SKIP
 *   ACK_FIRST        (acked before the handler runs; nothing afterwards)
 *   ACK              ack     ack      ack / nack / reject   nothing
 *   REJECT_ON_ERROR  ack     reject   ack / nack / reject   nothing
 *   NACK_ON_ERROR    ack     nack     ack / nack / reject   nothing
 *   MANUAL           nothing nothing  ack / nack / reject   nothing
 *
 * A message left unsettled ("nothing") goes back to the adapter unsettled,
 * which does what its broker does with a delivery never acknowledged (the
 * in-process broker keeps it pending and requeues it when the broker
 * stops; RabbitMQ redelivers it when the channel closes; a Redis stream keeps
 * it pending).
 *
 * The policy is resolved as: subscriber option > broker default
 * (fs_broker_options.ack_policy) > the broker type's built-in default
 * (ACK_FIRST for Kafka, REJECT_ON_ERROR for RabbitMQ, NATS, Redis and the
 * in-process broker).
 */
#ifndef FASTSTREAM_SUBSCRIBER_H
#define FASTSTREAM_SUBSCRIBER_H

#include "faststream/message.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct fs_broker fs_broker;
typedef struct fs_subscriber fs_subscriber;

typedef enum fs_ack_policy {
    FS_ACK_POLICY_DEFAULT = 0,         /**< inherit (broker default, then broker type default) */
    FS_ACK_POLICY_ACK_FIRST = 1,       /**< ack on receipt, before the handler runs */
    FS_ACK_POLICY_ACK = 2,             /**< ack after the handler, even when it failed */
    FS_ACK_POLICY_REJECT_ON_ERROR = 3, /**< ack after success, reject after an error */
    FS_ACK_POLICY_NACK_ON_ERROR = 4,   /**< ack after success, nack (redeliver) after an error */
    FS_ACK_POLICY_MANUAL = 5,          /**< nothing automatic: the handler settles */
} fs_ack_policy;

/** "default", "ack_first", "ack", "reject_on_error", "nack_on_error", "manual". */
FS_API const char *fs_ack_policy_name(fs_ack_policy policy);

/**
 * A handler. Runs on one of the subscriber's worker threads; with
 * concurrency > 1 several calls run at once, so it must be thread-safe.
 * `msg` is a single message, or a batch for a batch subscriber.
 */
typedef fs_outcome (*fs_handler_fn)(fs_message *msg, void *user);

/**
 * Redelivery settings: what happens to a nacked message. The n-th
 * redelivery waits min(max_delay_ms, delay_ms * 2^(n-1)) (from the
 * message's delivery count); past max_deliveries deliveries a nack becomes
 * a reject (the broker drops the message or moves it to the subscriber's
 * dead-letter destination) with a warning log line. The status in the
 * metrics still says what the handler did (nacked). Zero fields mean the
 * defaults. Brokers map these to their native form (memory and Redis
 * streams delay the redelivery themselves; JetStream NakWithDelay...).
 */
typedef struct fs_redelivery {
    /** First delay before a nacked message returns; 0 means 100 ms. */
    unsigned delay_ms;
    /** Cap of the exponential backoff (x2 per delivery); 0 means 10000 ms. */
    unsigned max_delay_ms;
    /** 0: unlimited; else reject instead of nacking once delivered this many times. */
    unsigned max_deliveries;
} fs_redelivery;

/*
 * Options. A zeroed struct (or NULL) means every default, as does
 * FS_SUBSCRIBER_OPTIONS_INIT.
 */
typedef struct fs_subscriber_options {
    /** FS_ACK_POLICY_DEFAULT inherits the broker's. */
    fs_ack_policy ack_policy;
    /** Handler calls at once (worker threads); 0 means 1. At most 1024. */
    unsigned concurrency;
    /** Batch mode when > 0: the handler gets up to batch_size messages at once. */
    size_t batch_size;
    /**
     * Batch mode: deliver a partial batch when this many milliseconds passed
     * since its first message arrived; 0 means 100.
     */
    unsigned batch_timeout_ms;
    /** A name for logs; default: the source. Copied. */
    const char *name;
    /**
     * Broker-specific options (e.g. const fs_memory_subscriber_options *,
     * const fs_redis_subscriber_options *), read during fs_subscribe only,
     * or NULL for the broker's defaults.
     */
    const void *broker_options;
    /**
     * Called with `user` when the subscriber is freed (optional). Not called
     * when fs_subscribe fails: the caller keeps `user` then.
     */
    void (*free_user)(void *user);
    /** What happens to nacked messages (zero: the defaults). */
    fs_redelivery redelivery;
} fs_subscriber_options;

#define FS_SUBSCRIBER_OPTIONS_INIT                                                                 \
    {                                                                                              \
        FS_ACK_POLICY_DEFAULT, 1, 0, 0, NULL, NULL, NULL,                                          \
        {                                                                                          \
            0, 0, 0                                                                                \
        }                                                                                          \
    }

/**
 * Attach `handler` to `source` (its meaning is the broker's: queue, topic,
 * subject, channel, pattern...). `opts` may be NULL for the defaults.
 * Allowed before and after fs_broker_start: a subscriber added to a running
 * broker starts at once. The subscriber belongs to the broker and is freed
 * with it; `out` (may be NULL) receives a handle.
 * FS_EINVAL on bad arguments, the adapter's error when it refuses the source
 * or options.
 */
FS_API int fs_subscribe(fs_broker *broker, const char *source, fs_handler_fn handler, void *user,
                        const fs_subscriber_options *opts, fs_subscriber **out);

/** The source given to fs_subscribe. */
FS_API const char *fs_subscriber_source(const fs_subscriber *sub);

/** The subscriber's name (opts.name or the source). */
FS_API const char *fs_subscriber_name(const fs_subscriber *sub);

/** The resolved ack policy (never FS_ACK_POLICY_DEFAULT once attached). */
FS_API fs_ack_policy fs_subscriber_ack_policy(const fs_subscriber *sub);

/** The broker the subscriber belongs to. */
FS_API fs_broker *fs_subscriber_broker(const fs_subscriber *sub);

/**
 * The subscription's backlog: the messages waiting for it on the broker,
 * as each broker counts them (in-process: queued and delayed redeliveries;
 * a Redis list: its length; a Redis stream group: lag + pending, pending
 * being delivered but unacknowledged entries; Kafka: consumer lag, high
 * watermark minus committed offset; RabbitMQ: the queue's ready messages;
 * JetStream: NumPending + NumAckPending). Asked of the broker within
 * timeout_ms. FS_EUNSUPPORTED where the adapter cannot tell (Redis
 * channels and streams without a group, NATS core, MQTT).
 */
FS_API int fs_subscriber_backlog(const fs_subscriber *sub, int timeout_ms, uint64_t *out);

/**
 * Messages whose handler call has completed and whose settlement is done
 * (a batch counts its size). Lock-free; for tests and tools.
 */
FS_API uint64_t fs_subscriber_handled(const fs_subscriber *sub);

/**
 * Wait until fs_subscriber_handled(sub) >= n, up to timeout_ms (negative:
 * forever). FS_OK or FS_ETIMEDOUT.
 */
FS_API int fs_subscriber_wait_handled(const fs_subscriber *sub, uint64_t n, int timeout_ms);

#ifdef __cplusplus
}
#endif

#endif /* FASTSTREAM_SUBSCRIBER_H */
