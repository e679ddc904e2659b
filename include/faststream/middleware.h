/*
 * faststream/middleware.h - hooks around consuming and publishing.
 *
 * A broker has one middleware chain, set up before fs_broker_start. The
 * first middleware added is the outermost: for a received message it runs
 * first and sees the outcome last; for a publish likewise.
 *
 *   consume: mw[0] -> mw[1] -> ... -> (ACK_FIRST ack) -> handler
 *   publish: mw[0] -> mw[1] -> ... -> adapter
 *
 * Each hook must call fs_consume_next() / fs_publish_next() exactly once
 * (or not at all, to short-circuit) and return what it returned, or another
 * outcome/status of its choice. A second call in one hook invocation does
 * not run the rest of the chain again (no second handler run, settlement or
 * publish): it returns the first call's outcome/status, records an FS_ESTATE
 * error naming the middleware and logs a warning. The core takes the outermost hook's return
 * value as the final outcome; the ack policy is applied after the whole
 * chain returned, so the middleware sees only explicit settlements (and
 * ACK_FIRST's ack) through fs_message_settled().
 *
 * Hooks run on the thread that consumes or publishes, concurrently; they
 * must be thread-safe. The core takes no lock and allocates nothing per
 * message around a hook.
 *
 * A minimal middleware that logs failures:
 *
 *   static fs_outcome log_consume(fs_consume_ctx *ctx)
 *   {
 *       fs_outcome o = fs_consume_next(ctx);
 *       if (o == FS_OUTCOME_ERROR)
 *           fprintf(stderr, "%s failed: %s\n", ctx->handler, ctx->error_type);
 *       return o;
 *   }
 *   fs_middleware mw = {.name = "log", .consume = log_consume};
 *   fs_broker_add_middleware(broker, &mw);
 */
#ifndef FASTSTREAM_MIDDLEWARE_H
#define FASTSTREAM_MIDDLEWARE_H

#include "faststream/message.h"
#include "faststream/publisher.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct fs_broker fs_broker;
typedef struct fs_subscriber fs_subscriber;

/** Largest scratch area a middleware may ask for, in bytes. */
#define FS_MIDDLEWARE_SCRATCH_MAX 256

/**
 * What a consume hook sees. Fields are read-only for hooks, except
 * through the functions below. Filled by the core; the fields marked
 * "after next" are valid once fs_consume_next() returned.
 */
typedef struct fs_consume_ctx {
    fs_broker *broker;
    const char *broker_name; /**< the adapter's name: "memory", "redis"... (the broker label) */
    fs_subscriber *subscriber;
    fs_message *message; /**< the unit: a message or a batch */
    const char *handler; /**< the concrete source it arrived on (the handler label) */
    size_t count;        /**< 1, or the number of messages in the batch */
    size_t size;         /**< body bytes (summed for a batch) */
    void *state;         /**< this middleware's fs_middleware.state */
    /**
     * This middleware's per-message scratch area: scratch_size bytes,
     * zeroed before the chain runs, max-aligned, alive until the message is
     * settled; reachable from a publish made inside the handler
     * (fs_publish_ctx.scratch). NULL when scratch_size is 0.
     */
    void *scratch;

    /* after next */
    fs_outcome outcome;     /**< what the inner chain returned */
    const char *error_type; /**< for FS_OUTCOME_ERROR: the type name ("Error" if none), else NULL */

    /* private to the core */
    void *core_[3];
    size_t index_;

    /**
     * Non-zero when `handler` is a label the core keeps for the whole
     * subscription (fs_subscribe_spec.fixed_source) or the adapter keeps
     * (fs_message.source_id): an id no other label ever has, so a hook may
     * recognise the handler label by this number instead of comparing the
     * string. 0: compare the string.
     * (After the private fields: appended later, the layout before it kept.)
     */
    uint64_t handler_id;
    /** strlen(handler) when the adapter gave it (fs_message.source_len), else 0: not known. */
    size_t handler_len;
} fs_consume_ctx;

/**
 * Run the rest of the chain (inner middlewares and the handler) and return
 * its outcome; ctx->outcome and ctx->error_type are set when it returns.
 * Call it at most once per hook invocation: a second call returns the
 * first one's outcome without running anything (see above).
 */
FS_API fs_outcome fs_consume_next(fs_consume_ctx *ctx);

/**
 * The received-message status of docs/semantics.md, for a context whose
 * fs_consume_next() returned: "acked", "nacked", "rejected", "skipped" or
 * "error". The rule: the message's settlement state (an explicit
 * ack/nack/reject as the broker's message class sets it, or the state the
 * broker's message starts in, e.g. Kafka auto-commit), else the handler's
 * control outcome (ACK, NACK, REJECT, SKIP), else "error" when it failed,
 * else "acked". The ack policy never shows. Static strings.
 */
FS_API const char *fs_consume_status(const fs_consume_ctx *ctx);

/** The received-message statuses, in the order of fs_consume_status()'s names. */
typedef enum fs_received_status {
    FS_RECEIVED_ACKED,    /**< "acked" */
    FS_RECEIVED_NACKED,   /**< "nacked" */
    FS_RECEIVED_REJECTED, /**< "rejected" */
    FS_RECEIVED_SKIPPED,  /**< "skipped" */
    FS_RECEIVED_ERROR,    /**< "error" */
} fs_received_status;

/**
 * fs_consume_status() as a number, by the same rule, for a hook that
 * indexes its own per-status data (cheaper than comparing the names).
 * FS_RECEIVED_ACKED for a NULL ctx.
 */
FS_API fs_received_status fs_consume_status_code(const fs_consume_ctx *ctx);

/** The name of status `s` ("acked" ... "error"); NULL for a value that is none. */
FS_API const char *fs_received_status_name(fs_received_status s);

/** What a publish hook sees; the "after next" fields are valid once fs_publish_next() returned. */
typedef struct fs_publish_ctx {
    fs_broker *broker;
    const char *broker_name; /**< the adapter's name (the broker label) */
    /**
     * The destination label: the destination name, or what the adapter
     * makes of it (RabbitMQ: "EXCHANGE.ROUTING_KEY", "default." for the
     * default exchange; see fs_broker_ops.destination_label in adapter.h).
     * To match a destination by the name it was published to, use
     * destination_name.
     */
    const char *destination;
    const fs_envelope *messages; /**< `count` messages */
    size_t count;
    bool is_reply; /**< a reply to a request (fs_message_reply): not counted */
    /**
     * The message being handled on this thread (fs_current_message()) when
     * the publish is made from inside a handler, else NULL.
     */
    fs_message *current;
    void *state; /**< this middleware's fs_middleware.state */
    /**
     * This middleware's scratch area for `current` (the same bytes its
     * consume hook saw for that message), or NULL when there is no current
     * message or it came from another broker.
     */
    void *scratch;

    /* after next */
    /**
     * FS_OK, a negative FS_E* code, or FS_PENDING (1): the adapter accepted
     * the messages and reports the result later, through the
     * publish_result hook (count nothing now).
     */
    int status;
    const char *error_type; /**< on failure the error's type name ("QueueFull"...), else NULL */

    /* private to the core */
    void *core_[3];
    size_t index_;

    /**
     * The destination as the publish named it (fs_publish's `destination`,
     * a publisher's, a reply's reply_to): for RabbitMQ the routing key.
     * (After the private fields: appended later, the layout before it kept.)
     */
    const char *destination_name;
    /**
     * Non-zero when `destination` is a label the core keeps (a publisher's):
     * an id no other label ever has, so a hook may recognise the destination
     * by this number instead of comparing the string. 0: compare the string.
     */
    uint64_t destination_id;
} fs_publish_ctx;

/**
 * Run the rest of the publish chain (inner middlewares, then the adapter)
 * and return its status; ctx->status and ctx->error_type are set. Call it
 * at most once per hook invocation: a second call returns the first one's
 * status without publishing again.
 */
FS_API int fs_publish_next(fs_publish_ctx *ctx);

/** A consume hook: calls fs_consume_next(ctx) (or not) and returns an outcome. */
typedef fs_outcome (*fs_consume_hook)(fs_consume_ctx *ctx);

/**
 * A publish hook: calls fs_publish_next(ctx) (or not) and returns a status.
 * A hook may fail a publish without calling next: it sets ctx->error_type
 * to a static type name (e.g. "RateLimited"; the only field a publish hook
 * may write) and returns a negative FS_E* status. Outer middlewares then see
 * that status and type name, exactly as for an adapter failure.
 */
typedef int (*fs_publish_hook)(fs_publish_ctx *ctx);

/** The late result of a publish whose status was FS_PENDING. */
typedef struct fs_publish_result_ctx {
    fs_broker *broker;
    const char *broker_name;
    const char *destination;
    size_t count;
    int status;             /**< FS_OK or a negative FS_E* code */
    const char *error_type; /**< on failure the type name ("Error" if none), else NULL */
    double elapsed_s;       /**< since the publish began */
    void *state;            /**< this middleware's fs_middleware.state */
} fs_publish_result_ctx;

/** Called for a late publish result, on the adapter's thread; must be thread-safe. */
typedef void (*fs_publish_result_hook)(const fs_publish_result_ctx *ctx);

/** A middleware definition (a zeroed struct plus the hooks you need). */
typedef struct fs_middleware {
    const char *name;                /**< for logs; copied */
    fs_consume_hook consume;         /**< NULL: not involved in consuming */
    fs_publish_hook publish;         /**< NULL: not involved in publishing */
    size_t scratch_size;             /**< per-message scratch bytes, 0..FS_MIDDLEWARE_SCRATCH_MAX */
    void *state;                     /**< handed to the hooks as ctx->state */
    void (*free_state)(void *state); /**< called with state when the broker is freed; optional */
    fs_publish_result_hook publish_result; /**< late publish results; optional */
    /**
     * A middleware that may be added only once per broker (e.g.
     * "prometheus"): a second fs_broker_add_middleware with the same key
     * fails with FS_ECONFLICT. NULL: no limit.
     */
    const char *unique_key;
} fs_middleware;

/**
 * Append `mw` to the broker's chain (it becomes the innermost so far).
 * Only before fs_broker_start (FS_ESTATE afterwards). On success the broker
 * owns mw->state (free_state is called at fs_broker_free); on failure the
 * caller keeps it.
 */
FS_API int fs_broker_add_middleware(fs_broker *broker, const fs_middleware *mw);

/** Number of middlewares in the broker's chain. */
FS_API size_t fs_broker_middleware_count(const fs_broker *broker);

#ifdef __cplusplus
}
#endif

#endif /* FASTSTREAM_MIDDLEWARE_H */
