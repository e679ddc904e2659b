/*
 * faststream/adapter.h - the interface between the message core and a
 * broker adapter (for broker authors, not for applications).
 *
 * An adapter is a table of operations (fs_broker_ops) plus an opaque
 * implementation pointer. The core owns the worker threads: for each
 * subscriber it starts `concurrency` workers, and each worker loops
 *
 *     fetch (or fetch_batch) -> consume middleware chain + handler
 *         -> settle per ack policy (ack / nack / reject) -> release
 *
 * so the adapter only has to hand out messages and settle them. An adapter
 * whose client library is not thread-safe keeps its own reader thread and an
 * internal queue behind fetch.
 *
 * Messages. The adapter provides the storage of each fs_message it hands
 * out (typically embedded in its own per-delivery record, recycled from a
 * pool, so nothing is allocated per message in the steady state), fills it
 * with fs_message_init() and the public fields below, and gets it back
 * through m->release once the core is done with it (after settlement).
 * Strings and bodies it points to must stay valid until release.
 *
 * Threads. fetch, ack/nack/reject, release and publish are called
 * concurrently from many threads (every worker, every publisher); so is
 * ping (health checks run on the HTTP server's threads, also while the
 * broker stops or closes, until fs_broker_free). The other ops are called
 * from one thread at a time.
 *
 * Errors. Ops return FS_OK or a negative FS_E* code after recording a
 * readable message with fs_adapter_error() (same as fs__error). Publish ops
 * also report the error's type name (for the metrics' exception_type).
 *
 * Registration. Each adapter library registers its URL scheme from an
 * __attribute__((constructor)) function AND exposes fs_<name>_register()
 * for static links, e.g.
 *
 *     int fs_redis_register(void)
 *     {
 *         return fs_broker_register_scheme("redis", redis_factory);
 *     }
 *     __attribute__((constructor)) static void redis_auto(void) { fs_redis_register(); }
 */
#ifndef FASTSTREAM_ADAPTER_H
#define FASTSTREAM_ADAPTER_H

#include "faststream/broker.h"
#include "faststream/message.h"
#include "faststream/publisher.h"
#include "faststream/subscriber.h"

#include <stdatomic.h>

#ifdef __cplusplus
extern "C" {
#endif

/* ------------------------------------------------------------------------ */
/* Messages, as adapters build them                                         */

/**
 * The message structure. Applications see it only through message.h; an
 * adapter fills the public part. A batch is built by the core.
 */
struct fs_message {
    /* Filled by the adapter (all optional except source). */
    const void *body;
    size_t body_len;
    const fs_header *headers;
    size_t header_count;
    const char *content_type;
    const char *correlation_id;
    const char *message_id;
    const char *reply_to;
    const char *source; /**< the concrete name it arrived on (required) */
    void *raw;          /**< the client's own message, for fs_message_raw() */

    /**
     * Called by the core exactly once when it is done with the message
     * (after settlement, or unsettled for SKIP / MANUAL / shutdown: the
     * adapter then does what its broker does with an unacknowledged
     * delivery; fs_message_settled(m) says which: for a message of a
     * batch, the core copies the batch's state into each message before
     * releasing it). An adapter may therefore do all its settling work
     * here and leave ack/nack/reject NULL, as the in-process broker does.
     * Required.
     */
    void (*release)(fs_message *m);
    /** Free for the adapter (e.g. its record, a stream entry id). */
    void *adapter_data;
    uintptr_t adapter_tag;

    /* Set by the core: do not touch. */
    fs_broker *broker_;
    fs_subscriber *subscriber_;
    void *adapter_sub_;   /**< the adapter's subscription state (from subscribe) */
    fs_message **items_;  /**< a batch's messages */
    size_t count_;        /**< 1, or a batch's size */
    size_t size_;         /**< body bytes (summed for a batch) */
    void *frame_;         /**< the core's dispatch frame while handled */
    _Atomic int settled_; /**< fs_settle_state */
    unsigned flags_;
};

/**
 * Reset `m` to an empty message (all NULL / 0, unsettled). Call it before
 * filling the public fields of a recycled record.
 */
void fs_message_init(fs_message *m);

/** The adapter subscription state (from ops->subscribe) a message was fetched for. */
void *fs_message_adapter_sub(const fs_message *m);

/* ------------------------------------------------------------------------ */
/* Subscriptions                                                            */

/** What the core asks an adapter to subscribe to. */
typedef struct fs_subscribe_spec {
    const char *source;         /**< as given to fs_subscribe */
    const void *broker_options; /**< fs_subscriber_options.broker_options (adapter type) */
    fs_ack_policy ack_policy;   /**< resolved */
    unsigned concurrency;       /**< number of workers that will call fetch */
    size_t batch_size;          /**< 0: single messages; else the workers call fetch_batch */
    unsigned batch_timeout_ms;
    /**
     * True for the core's own reply inbox (request/reply): `source` is a
     * unique name made by the core; messages on it are replies, consumed by
     * one core thread through fetch, acked and released (never through the
     * middleware chain).
     */
    bool reply_inbox;
    fs_subscriber *subscriber; /**< the core's subscriber (NULL for the reply inbox) */

    /**
     * Out, set by ops->subscribe: this subscription has no acknowledgement
     * at all (e.g. Redis pub/sub). The core then treats every message as
     * acked on receipt, whatever the ack policy, and never calls
     * ack/nack/reject for it. Starts false (or true for FS_BROKER_NO_ACK).
     */
    bool no_ack;
} fs_subscribe_spec;

/** Flags for fs_broker_ops.flags. */
enum {
    /** ops->request is implemented natively (e.g. NATS inboxes). */
    FS_BROKER_NATIVE_REQUEST = 1u << 0,
    /** Settlement is meaningless (e.g. Redis pub/sub): acked on receipt whatever the policy. */
    FS_BROKER_NO_ACK = 1u << 1,
};

/**
 * The adapter's operations. NULL ops are allowed where marked optional.
 * `impl` is the pointer given to fs_broker_create.
 */
typedef struct fs_broker_ops {
    /** "memory", "redis"...: the broker metric label. Static storage. */
    const char *name;
    /** The broker type's default ack policy (never FS_ACK_POLICY_DEFAULT). */
    fs_ack_policy default_ack_policy;
    unsigned flags;

    /** Open the connection(s). Optional. Called by fs_broker_connect/start. */
    int (*connect)(void *impl);
    /** Begin delivering for every subscription (before workers start). Optional. */
    int (*start)(void *impl);
    /**
     * Stop delivering: blocked fetch calls must return promptly (FS_ECLOSED,
     * or FS_OK with messages already taken). Messages not handed out stay
     * with the broker. Optional.
     */
    int (*stop)(void *impl);
    /** Close the connection(s); fetch/publish must fail with FS_ECLOSED afterwards. Optional. */
    void (*close)(void *impl);
    /** Free impl (after close; every subscription was unsubscribed). Optional. */
    void (*free)(void *impl);
    /** FS_OK when the server answers within timeout_ms. Optional (then: FS_OK when connected). */
    int (*ping)(void *impl, int timeout_ms);

    /**
     * Create the adapter-side subscription state for `spec` (validate the
     * source and options; no I/O needed yet). Called by fs_subscribe, and
     * for the reply inbox. `*sub_out` is handed back to fetch & co. The
     * adapter may set spec->no_ack.
     */
    int (*subscribe)(void *impl, fs_subscribe_spec *spec, void **sub_out);
    /** Free a subscription's state (after its workers stopped). Optional. */
    void (*unsubscribe)(void *impl, void *sub);
    /**
     * Start delivering for one subscription created while the broker is
     * running (fs_subscribe after fs_broker_start), and for the reply inbox
     * right after its subscribe (once connected, whether or not the broker
     * was started). Optional.
     */
    int (*subscription_start)(void *impl, void *sub);

    /**
     * Take the next message for `sub`, waiting up to timeout_ms. FS_OK with
     * *out set; FS_ETIMEDOUT when none came; FS_ECLOSED once stopped.
     * Other errors are logged and retried by the core after a short pause.
     */
    int (*fetch)(void *impl, void *sub, int timeout_ms, fs_message **out);
    /**
     * Take up to `max` messages into out[0..*n): return as soon as `max`
     * are there, or batch_timeout_ms after the first one arrived with what
     * is there; FS_ETIMEDOUT with *n == 0 when nothing came within
     * timeout_ms. Optional: without it the core calls fetch repeatedly.
     */
    int (*fetch_batch)(void *impl, void *sub, fs_message **out, size_t max,
                       unsigned batch_timeout_ms, int timeout_ms, size_t *n);

    /**
     * Settle `m`: a single message, or a batch (iterate fs_message_count /
     * fs_message_at; settle them in one round trip if you can). Called at
     * most once per message. Optional for FS_BROKER_NO_ACK adapters.
     */
    int (*ack)(void *impl, fs_message *m);
    int (*nack)(void *impl, fs_message *m);
    int (*reject)(void *impl, fs_message *m);

    /**
     * Resolve a destination once for a publisher (fs_publisher_new).
     * Optional; `*dest_out` is passed to publish (NULL otherwise).
     */
    int (*prepare_destination)(void *impl, const char *destination, const void *broker_options,
                               void **dest_out);
    /** Free what prepare_destination made. Optional. */
    void (*release_destination)(void *impl, void *dest);

    /**
     * Publish `count` (>= 1) messages to `destination`. `dest` is the
     * prepared destination or NULL. On failure set *error_type to the
     * error's type name (static storage or alive as long as the broker:
     * e.g. "QueueFull", a client error code name; NULL means "Error"),
     * record the message with fs_adapter_error() and return FS_E*.
     */
    int (*publish)(void *impl, void *dest, const char *destination, const fs_envelope *msgs,
                   size_t count, const char **error_type);

    /**
     * Native request/reply (only with FS_BROKER_NATIVE_REQUEST): publish
     * `msg` and wait for its reply; on FS_OK *reply is a heap message made
     * with fs_message_new_copy. Without it the core builds request/reply
     * on publish + a reply-inbox subscription (then the request's publish
     * goes through the publish middleware like any other; a native request
     * does not).
     */
    int (*request)(void *impl, const char *destination, const fs_envelope *msg, int timeout_ms,
                   fs_message **reply, const char **error_type);

    /**
     * Called once every worker has exited (at the end of a successful
     * fs_broker_stop): no fetch runs any more, so the adapter may give back
     * deliveries left unsettled. Optional.
     */
    void (*stopped)(void *impl);
} fs_broker_ops;

/**
 * Create a broker around an adapter. `ops` must stay valid for the
 * broker's life (static storage); `url` (copied) is what fs_broker_url
 * returns; `opts` may be NULL. On success the broker owns `impl` (ops->free
 * is called at fs_broker_free); on failure the caller keeps it.
 */
int fs_broker_create(const fs_broker_ops *ops, void *impl, const char *url,
                     const fs_broker_options *opts, fs_broker **out);

/** The adapter's impl pointer of a broker. */
void *fs_broker_impl(const fs_broker *broker);

/** The adapter's ops of a broker. */
const fs_broker_ops *fs_broker_get_ops(const fs_broker *broker);

/** Record an error message (like fs_last_error) and return `status`. */
int fs_adapter_error(int status, const char *fmt, ...) FS_PRINTF(2, 3);

/** Log a line as component `component` (an adapter name). */
void fs_adapter_log(fs_log_level level, const char *component, const char *fmt, ...)
    FS_PRINTF(3, 4);

/**
 * A heap message copied from an envelope (for replies returned by
 * ops->request and for the in-process broker's records). `source` is the
 * name it arrived on. Free with fs_message_free.
 */
fs_message *fs_message_new_copy(const fs_envelope *env, const char *source);

/* ------------------------------------------------------------------------ */
/* URL helpers for adapters                                                 */

/** A parsed "scheme://[user[:password]@]host[:port][,host[:port]...][/path][?query]". */
typedef struct fs_url {
    char *scheme;
    char *user;     /**< or NULL */
    char *password; /**< or NULL */
    char *hosts;    /**< "host:port,host:port" as written (may be empty) */
    char *host;     /**< the first host (brackets removed for IPv6), or NULL */
    int port;       /**< the first host's port, or -1 */
    char *path;     /**< after the first '/', without it, or NULL */
    char *query;    /**< after '?', or NULL */
} fs_url;

/**
 * Parse `url` into `*out` (percent-decoding user and password; the query is
 * kept as written, its %-escapes checked). FS_EINVAL with a readable
 * message when it is malformed, FS_ENOMEM when out of memory; `*out` then
 * holds nothing to free. Free a parsed URL with fs_url_free.
 */
int fs_url_parse(const char *url, fs_url *out);

/**
 * The value of query parameter `key`, percent-decoded (caller frees; "" for
 * a key without '='), or NULL when absent. NULL with fs_last_error() set
 * also when out of memory (or, for an fs_url not made by fs_url_parse, on a
 * malformed %-escape).
 */
char *fs_url_query_param(const fs_url *url, const char *key);

/** Free the strings of a parsed URL and reset it (NULL: no-op). */
void fs_url_free(fs_url *url);

#ifdef __cplusplus
}
#endif

#endif /* FASTSTREAM_ADAPTER_H */
