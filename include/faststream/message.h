/*
 * faststream/message.h - a received message: body, headers, metadata,
 * settlement (ack / nack / reject) and the handler's outcome.
 *
 * A handler receives an fs_message *. It is valid until the handler returns
 * (the core then settles it per the subscriber's ack policy and hands it back
 * to the broker adapter); do not keep the pointer, copy what you need
 * (fs_message_copy). Every string accessor returns a NUL-terminated string
 * owned by the message, or NULL when the message has no such field.
 *
 * Batches. A batch subscriber receives ONE fs_message that stands for the
 * whole batch: fs_message_count() is the number of messages in it,
 * fs_message_at(batch, i) the i-th one, fs_message_size() the sum of their
 * body lengths. The batch itself has no body. Settling the batch settles
 * every message in it; the messages of a batch cannot be settled one by one.
 * For a single message, count is 1 and fs_message_at(m, 0) is m itself.
 *
 * Settlement. fs_message_ack/nack/reject may be called by the handler (or a
 * middleware) while the message is being handled, from the handler's thread
 * or any other. The first settlement wins; later calls are ignored and
 * return FS_OK. The ack policy (faststream/subscriber.h) applies what the
 * handler returned only when nothing settled the message explicitly.
 */
#ifndef FASTSTREAM_MESSAGE_H
#define FASTSTREAM_MESSAGE_H

#include "faststream/common.h"

#include <stdbool.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct fs_message fs_message;
typedef struct fs_broker fs_broker;
typedef struct fs_subscriber fs_subscriber;

/**
 * One header: a NUL-terminated name and a value. `value_len` 0 means the
 * value is a NUL-terminated string (its length is strlen(value)); a value
 * with bytes (Kafka headers) gives its length (it is still followed by a
 * NUL in received messages). Old `{name, value}` initialisers still work.
 */
typedef struct fs_header {
    const char *name;
    const char *value;
    size_t value_len;
} fs_header;

/**
 * What a handler returns. FS_OUTCOME_OK means "done, no opinion": the ack
 * policy decides. The four control outcomes (ACK, NACK, REJECT, SKIP) are
 * the C counterparts of FastStream's AckMessage / NackMessage /
 * RejectMessage / SkipMessage: they are not errors. FS_OUTCOME_ERROR is a
 * failure; return it through fs_message_fail() to give it a type name.
 */
typedef enum fs_outcome {
    FS_OUTCOME_OK = 0,     /**< processed; the ack policy settles (acks) the message */
    FS_OUTCOME_ACK = 1,    /**< settle with ack now (also under MANUAL) */
    FS_OUTCOME_NACK = 2,   /**< settle with nack (redeliver) */
    FS_OUTCOME_REJECT = 3, /**< settle with reject (drop / dead-letter) */
    FS_OUTCOME_SKIP = 4,   /**< stop here, do not settle the message */
    FS_OUTCOME_ERROR = 5,  /**< failed; see fs_message_fail() */
} fs_outcome;

/** The explicit settlement state of a message. */
typedef enum fs_settle_state {
    FS_SETTLE_NONE = 0,     /**< not settled yet */
    FS_SETTLE_ACKED = 1,    /**< acknowledged */
    FS_SETTLE_NACKED = 2,   /**< negatively acknowledged (will be redelivered) */
    FS_SETTLE_REJECTED = 3, /**< rejected (dropped or dead-lettered) */
} fs_settle_state;

/** "ok", "ack", "nack", "reject", "skip", "error". */
FS_API const char *fs_outcome_name(fs_outcome outcome);

/** "none", "acked", "nacked", "rejected". */
FS_API const char *fs_settle_state_name(fs_settle_state state);

/* ------------------------------------------------------------------------ */
/* Content                                                                  */

/** The body bytes (NULL for a batch or an empty body). */
FS_API const void *fs_message_body(const fs_message *m);

/** The body length in bytes (0 for a batch; see fs_message_size). */
FS_API size_t fs_message_body_len(const fs_message *m);

/**
 * The body length for a single message, the sum of the body lengths for a
 * batch: the `size` of docs/semantics.md.
 */
FS_API size_t fs_message_size(const fs_message *m);

/** Number of messages: 1 for a single message, N for a batch. */
FS_API size_t fs_message_count(const fs_message *m);

/** The i-th message of a batch (or m itself for i == 0 on a single message); NULL out of range. */
FS_API fs_message *fs_message_at(const fs_message *m, size_t i);

/** True when m is a batch. */
FS_API bool fs_message_is_batch(const fs_message *m);

/** The value of the first header called `name` (exact, case-sensitive), or NULL. */
FS_API const char *fs_message_header(const fs_message *m, const char *name);

/** Number of headers. */
FS_API size_t fs_message_header_count(const fs_message *m);

/** The i-th header, or NULL out of range. Order is the broker's. */
FS_API const fs_header *fs_message_header_at(const fs_message *m, size_t i);

/** The length of the i-th header's value (value_len, or strlen(value)); 0 out of range. */
FS_API size_t fs_message_header_value_len(const fs_message *m, size_t i);

/** The content type ("application/json"...), or NULL. */
FS_API const char *fs_message_content_type(const fs_message *m);

/**
 * The correlation id. Never NULL on a received message: when the sender
 * sent none, a uuid4 is generated on first use (the same value on every
 * call, nothing allocated), as FastStream does. A publish or reply made
 * from inside the handler without a correlation id carries this one.
 * NULL only for NULL (and for a batch, which has no id of its own).
 */
FS_API const char *fs_message_correlation_id(const fs_message *m);

/** The message id; when the sender sent none, the correlation id (FastStream's rule). */
FS_API const char *fs_message_id(const fs_message *m);

/** Where a reply should go, or NULL when the sender expects none. */
FS_API const char *fs_message_reply_to(const fs_message *m);

/**
 * The concrete name the message arrived on: the topic, subject, channel,
 * list, stream or queue (RabbitMQ: EXCHANGE.ROUTING_KEY), never the
 * subscription's pattern. For a batch, the source of its first message.
 */
FS_API const char *fs_message_source(const fs_message *m);

/**
 * The broker client's own message (rd_kafka_message_t *, redisReply *...),
 * as documented by each adapter, or NULL. Valid as long as the message.
 */
FS_API void *fs_message_raw(const fs_message *m);

/** The message key (Kafka), or NULL with *len 0. `len` may be NULL. */
FS_API const void *fs_message_key(const fs_message *m, size_t *len);

/** The partition it was read from (Kafka), or -1 when the broker has none. */
FS_API int32_t fs_message_partition(const fs_message *m);

/** Its offset in the partition or stream (Kafka), or -1 when unknown. */
FS_API int64_t fs_message_offset(const fs_message *m);

/** The broker's timestamp in milliseconds since the epoch, or 0 when unknown. */
FS_API int64_t fs_message_timestamp_ms(const fs_message *m);

/**
 * How many times the broker has delivered this message: 1 on the first
 * delivery, 2 on the first redelivery...; 0 where the broker does not tell
 * (memory counts, Redis streams read the pending entry's count, JetStream
 * NumDelivered, RabbitMQ x-delivery-count).
 */
FS_API uint32_t fs_message_delivery_count(const fs_message *m);

/** The broker the message came from. */
FS_API fs_broker *fs_message_broker(const fs_message *m);

/** The subscriber handling the message (NULL for a request's reply or a copy). */
FS_API fs_subscriber *fs_message_subscriber(const fs_message *m);

/**
 * The message being handled on the calling thread (the unit: a batch for a
 * batch subscriber), or NULL outside a handler. Middleware uses it to tie a
 * publish made by a handler to the message that caused it.
 */
FS_API fs_message *fs_current_message(void);

/* ------------------------------------------------------------------------ */
/* Settlement                                                               */

/**
 * Acknowledge the message (for a batch: every message of it). The first
 * settlement wins; a later call is ignored and returns FS_OK. Returns the
 * adapter's error (e.g. FS_EIO) when the broker refused it; the message
 * counts as settled all the same. FS_EINVAL for a message of a batch or a
 * copy (settle the batch) and for NULL.
 */
FS_API int fs_message_ack(fs_message *m);

/** Negatively acknowledge: the broker redelivers the message. See fs_message_ack. */
FS_API int fs_message_nack(fs_message *m);

/** Reject: the broker drops it or moves it to a dead-letter destination. See fs_message_ack. */
FS_API int fs_message_reject(fs_message *m);

/**
 * The message's settlement state: what an explicit ack/nack/reject set (as
 * the broker's message class sets it: e.g. a Kafka reject sets ACKED), or
 * the state the broker's message starts in (Kafka auto-commit: ACKED);
 * FS_SETTLE_NONE until then. Lock-free.
 */
FS_API fs_settle_state fs_message_settled(const fs_message *m);

/**
 * Tell the broker the handler is still working on the message (extends
 * its ack deadline: JetStream +WPI). FS_EUNSUPPORTED where the broker has
 * no such thing; FS_EINVAL for NULL, a copy or a message of a batch.
 */
FS_API int fs_message_in_progress(fs_message *m);

/* ------------------------------------------------------------------------ */
/* Failures and replies, from inside a handler                              */

/**
 * Record a failure on the message being handled and return
 * FS_OUTCOME_ERROR, so that a handler can write
 *
 *     return fs_message_fail(msg, "ValueError", "bad amount %d", n);
 *
 * `type` is the exception type name that the metrics report
 * (exception_type label): a short identifier; NULL or "" means "Error".
 * It is copied (up to 63 bytes). The formatted text (optional, NULL allowed)
 * goes to the log line the core writes for the failure. For NULL or a
 * message not being handled (a copy...) nothing is recorded on it: the
 * result is still FS_OUTCOME_ERROR, with fs_last_error() set.
 */
FS_API fs_outcome fs_message_fail(fs_message *m, const char *type, const char *fmt, ...)
    FS_PRINTF(3, 4);

/** The type name recorded by fs_message_fail ("Error" when none given), or NULL. */
FS_API const char *fs_message_error_type(const fs_message *m);

/** The text recorded by fs_message_fail, or NULL. */
FS_API const char *fs_message_error_text(const fs_message *m);

/**
 * Reply to a request: publish `body` to the message's reply-to destination
 * with its correlation id, through the broker's publish middleware chain
 * with the "reply" flag set (so the Prometheus middleware does not count
 * it). `headers` (may be NULL) and `content_type` (may be NULL) are
 * optional. FS_ENOTFOUND when the message has no reply-to; the publish's
 * own error otherwise. May be called more than once (each call publishes).
 */
FS_API int fs_message_reply(fs_message *m, const void *body, size_t body_len,
                            const fs_header *headers, size_t header_count,
                            const char *content_type);

/* ------------------------------------------------------------------------ */
/* Copies                                                                   */

/**
 * A heap copy of a single message (body, headers and metadata; for a batch
 * the copy is a batch of copies) that outlives the handler. It cannot be
 * settled. Free with fs_message_free. NULL (and fs_last_error) on failure.
 */
FS_API fs_message *fs_message_copy(const fs_message *m);

/**
 * Free a message returned to the caller by fs_message_copy, fs_request or
 * fs_publisher_request. NULL is ignored. Never call it on a message handed
 * to a handler.
 */
FS_API void fs_message_free(fs_message *m);

#ifdef __cplusplus
}
#endif

#endif /* FASTSTREAM_MESSAGE_H */
