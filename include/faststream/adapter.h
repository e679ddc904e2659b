/*
 * faststream/adapter.h - the interface between the message core and a
 * broker adapter, version 2 (for broker authors, not for applications:
 * faststream.h does not include it). docs/adapters.md walks through writing
 * an adapter with the in-process broker (src/brokers/memory) as example.
 *
 * An adapter is a versioned table of operations (fs_broker_ops) plus an
 * opaque implementation pointer. The core owns the worker threads: for each
 * subscriber it starts `concurrency` workers, and worker i loops
 *
 *     fetch (or fetch_batch)(worker = i) -> consume middleware chain + handler
 *         -> settle per ack policy -> release
 *
 * so the adapter only has to hand out messages and settle them. An adapter
 * whose client library is not thread-safe keeps its own reader thread and a
 * queue behind fetch (src/kit/queue.h has one, with a lane per worker).
 *
 * Messages. The adapter provides the storage of each fs_message it hands
 * out (typically embedded in its own per-delivery record, recycled from a
 * pool, so nothing is allocated per message in the steady state), fills it
 * with fs_message_init() and the public fields below, and gets it back
 * through m->release once the core is done with it (after settlement).
 * Strings and bodies it points to must stay valid until release.
 *
 * Threads. fetch, settle, in_progress, release, publish, backlog and
 * destination_label are called concurrently from many threads (every
 * worker, every publisher); so
 * is ping (health checks run on the HTTP server's threads, also while the
 * broker stops or closes, until fs_broker_free). The other ops are called
 * from one thread at a time.
 *
 * Errors. Ops return FS_OK or a negative FS_E* code after recording a
 * readable message with fs_adapter_error(). Publish ops also report the
 * error's type name (for the metrics' exception_type).
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
 *
 * Symbols. Adapters use only what this header (and the headers it
 * includes) declares, plus the internal kit (src/kit, linked statically).
 */
#ifndef FASTSTREAM_ADAPTER_H
#define FASTSTREAM_ADAPTER_H

#include "faststream/broker.h"
#include "faststream/message.h"
#include "faststream/middleware.h"
#include "faststream/publisher.h"
#include "faststream/subscriber.h"

#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/** The version of this interface; fs_broker_create refuses another. */
#define FS_ADAPTER_ABI_VERSION 2

/** Bytes of the core's opaque part of every fs_message (fixed for an ABI version). */
#define FS_MESSAGE_CORE_SIZE 128

#if defined(__cplusplus)
#define FS_ALIGNAS_(n) alignas(n)
#else
#define FS_ALIGNAS_(n) _Alignas(n)
#endif

/* ------------------------------------------------------------------------ */
/* Messages, as adapters build them                                         */

/** The core's part of a message: opaque, do not touch. */
typedef struct fs_message_core {
    FS_ALIGNAS_(16) unsigned char opaque_[FS_MESSAGE_CORE_SIZE];
} fs_message_core;

/**
 * The message structure. Applications see it only through message.h; an
 * adapter fills the public part (inline, no setter calls on the hot path).
 * A batch is built by the core.
 */
struct fs_message {
    /* Filled by the adapter (all optional except source and release). */
    const void *body;
    size_t body_len;
    const fs_header *headers; /**< value_len 0: the value is NUL-terminated */
    size_t header_count;
    const char *content_type;
    /** NULL: the core generates one lazily (uuid4) when asked. */
    const char *correlation_id;
    /** NULL: the correlation id (FastStream's rule). */
    const char *message_id;
    const char *reply_to;
    const char *source; /**< the concrete name it arrived on (required) */
    /**
     * strlen(source) when the adapter has it at hand anyway (it built the
     * name), else 0: hooks that compare the name then need not measure it
     * (fs_consume_ctx.handler_len).
     */
    size_t source_len;
    /**
     * Non-zero when `source` is a name the adapter keeps (unchanged, alive
     * as long as the message) under an id of fs_adapter_label_id(): the id
     * stands for that name, so that hooks recognise it without comparing
     * strings (fs_consume_ctx.handler_id). 0: none.
     */
    uint64_t source_id;
    const void *key; /**< Kafka key, or NULL */
    size_t key_len;
    int32_t partition;       /**< -1 unknown */
    int64_t offset;          /**< -1 unknown */
    int64_t timestamp_ms;    /**< 0 unknown */
    uint32_t delivery_count; /**< 1 on first delivery; 0 unknown */
    void *raw;               /**< the client's own message, for fs_message_raw() */

    /**
     * Called by the core exactly once when it is done with the message
     * (after settlement, or unsettled for SKIP / MANUAL / shutdown: the
     * adapter then does what its broker does with an unacknowledged
     * delivery). For a message of a batch, release is called per message.
     * Required.
     */
    void (*release)(fs_message *m);
    /** Free for the adapter (e.g. its record, a stream entry id). */
    void *adapter_data;
    uintptr_t adapter_tag;

    /** Set by the core: opaque. */
    fs_message_core core_;
};

/**
 * Reset `m` to an empty message (all NULL / 0, partition and offset -1,
 * unsettled). Call it before filling the public fields of a recycled
 * record (or set every public field yourself).
 */
FS_API void fs_message_init(fs_message *m);

/** The adapter subscription state (from ops->subscribe) a message was fetched for. */
FS_API void *fs_message_adapter_sub(const fs_message *m);

/**
 * The worker index (in [0, concurrency)) that fetched the message, or 0
 * (the reply inbox, a copy).
 */
FS_API unsigned fs_message_worker(const fs_message *m);

/* ------------------------------------------------------------------------ */
/* Capabilities (fs_broker_ops.caps)                                        */

enum {
    /** ops->request is native (NATS inboxes, RabbitMQ direct reply-to). */
    FS_CAP_NATIVE_REQUEST = 1u << 0,
    /** Nothing is ever settled on the wire (the whole broker): every spec starts no_ack. */
    FS_CAP_NO_ACK = 1u << 1,
    /**
     * The broker has a nack (redeliver) primitive. Without it (MQTT) the
     * core warns at fs_subscribe for NACK_ON_ERROR and never calls
     * settle(NACKED) for a policy-driven nack (the status still says nacked
     * where the rules say so).
     */
    FS_CAP_NACK = 1u << 2,
    /**
     * The adapter honours fs_settle_args.delay_ms (natively, e.g. JetStream
     * NakWithDelay, or by delaying the redelivery itself as memory and
     * redis do). Informational: the core passes the delay either way.
     */
    FS_CAP_NACK_DELAY = 1u << 3,
    /** ops->in_progress exists (JetStream +WPI). */
    FS_CAP_IN_PROGRESS = 1u << 4,
    /** Messages carry delivery_count. */
    FS_CAP_DELIVERY_COUNT = 1u << 5,
    /**
     * The core calls settle and release for the messages of a subscription
     * in fetch order across all its workers: fetch is called by one worker
     * at a time (the order the calls return in is the hand-out order), and
     * a message finished early waits for the earlier ones, then settles at
     * once (never for another worker's fetch to return). Under ACK_FIRST the
     * early ack waits for that point too. A subscription can ask for it
     * alone: spec->ordered_settle = true.
     */
    FS_CAP_ORDERED_SETTLE = 1u << 6,
    /** ops->backlog exists. */
    FS_CAP_BACKLOG = 1u << 7,
};

/** What ops->settle must do with a message (or every message of a batch). */
typedef struct fs_settle_args {
    /** FS_SETTLE_ACKED / NACKED / REJECTED: what the broker must do. */
    fs_settle_state op;
    /** nack: redeliver no sooner than this (from the redelivery settings). */
    unsigned delay_ms;
    /** reject after max deliveries ("max deliveries"), or NULL. */
    const char *reason;
} fs_settle_args;

/* ------------------------------------------------------------------------ */
/* Subscriptions                                                            */

/** What the core asks an adapter to subscribe to, and what the adapter answers. */
typedef struct fs_subscribe_spec {
    const char *source;         /**< as given to fs_subscribe */
    const void *broker_options; /**< fs_subscriber_options.broker_options (adapter type) */
    fs_ack_policy ack_policy;   /**< resolved */
    unsigned concurrency;       /**< number of workers that will call fetch (worker indices) */
    size_t batch_size;          /**< 0: single messages; else the workers call fetch_batch */
    unsigned batch_timeout_ms;
    /**
     * True for the core's own reply inbox (request/reply): `source` is a
     * unique name made by the core; messages on it are replies, consumed by
     * one core thread through fetch (worker 0), acked and released (never
     * through the middleware chain).
     */
    bool reply_inbox;
    fs_subscriber *subscriber; /**< the core's subscriber (NULL for the reply inbox) */
    /** Redelivery settings, defaults resolved (delay_ms, max_delay_ms > 0). */
    fs_redelivery redelivery;

    /* ---- Out, set by ops->subscribe (initialised by the core) ---- */

    /**
     * Nothing is settled on the wire for this subscription (Redis channel
     * and list, NATS core, RabbitMQ no_ack, MQTT QoS 0): the core never
     * calls settle. The status still counts what the handler did. Starts
     * false (true with FS_CAP_NO_ACK).
     */
    bool no_ack;
    /**
     * The state every message starts in (Kafka ACK_FIRST / auto-commit:
     * FS_SETTLE_ACKED, so every message counts acked); FS_SETTLE_NONE
     * otherwise (the start value).
     */
    fs_settle_state presettled;
    /**
     * What an explicit ack / nack / reject SETS as the message's state,
     * indexed by FS_SETTLE_ACKED / NACKED / REJECTED (index 0 unused).
     * Starts as the identity. Kafka manual commit: reject -> ACKED (settle
     * still receives op REJECTED, to dead-letter and commit). MQTT: nack ->
     * NONE (no state, nothing sent; the policy applies afterwards), reject
     * -> ACKED.
     */
    fs_settle_state settle_as[4];
    /** Settle in fetch order (see FS_CAP_ORDERED_SETTLE); starts true with the cap. */
    bool ordered_settle;
    /**
     * Every message of this subscription arrives on the name `source`
     * itself (one queue, list, stream or topic: no wildcard, no pattern, no
     * prefix to strip), so each message's `source` is that string. The core
     * then labels the messages with its own copy of `source` and lets hooks
     * recognise the label by its id (fs_consume_ctx.handler_id) instead of
     * comparing strings. Starts false: leave it so when messages may carry
     * other names.
     */
    bool fixed_source;
} fs_subscribe_spec;

/* ------------------------------------------------------------------------ */
/* The operations                                                           */

/**
 * The adapter's operations. NULL ops are allowed where marked optional.
 * `impl` is the pointer given to fs_broker_create. Declare the table with
 * designated initialisers and FS_ADAPTER_ABI_VERSION / sizeof:
 *
 *     static const fs_broker_ops my_ops = {
 *         .abi_version = FS_ADAPTER_ABI_VERSION,
 *         .struct_size = sizeof(fs_broker_ops),
 *         .name = "mine", ...
 *     };
 *
 * Ops appended in later versions lie beyond an old adapter's struct_size
 * and are treated as NULL.
 */
typedef struct fs_broker_ops {
    uint32_t abi_version; /**< FS_ADAPTER_ABI_VERSION */
    uint32_t struct_size; /**< sizeof(fs_broker_ops) as the adapter was compiled */
    /** "kafka", "rabbitmq", "nats", "mqtt", "redis", "memory": the broker metric label. */
    const char *name;
    /** The broker type's default ack policy (never FS_ACK_POLICY_DEFAULT). */
    fs_ack_policy default_ack_policy;
    uint64_t caps; /**< FS_CAP_* */

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
     * source and options; no I/O needed yet) and set the spec's outputs.
     * Called by fs_subscribe, and for the reply inbox. `*sub_out` is handed
     * back to fetch & co.
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
     * Take the next message for `sub`, waiting up to timeout_ms. `worker`
     * is the calling worker's index in [0, spec->concurrency) (to pin a
     * partition or key to a worker). FS_OK with *out set; FS_ETIMEDOUT when
     * none came; FS_ECLOSED once stopped. Other errors are logged and
     * retried by the core after a short pause.
     */
    int (*fetch)(void *impl, void *sub, unsigned worker, int timeout_ms, fs_message **out);
    /**
     * Take up to `max` messages into out[0..*n): return as soon as `max`
     * are there, or batch_timeout_ms after the first one arrived with what
     * is there; FS_ETIMEDOUT with *n == 0 when nothing came within
     * timeout_ms. Optional: without it the core calls fetch repeatedly.
     */
    int (*fetch_batch)(void *impl, void *sub, unsigned worker, fs_message **out, size_t max,
                       unsigned batch_timeout_ms, int timeout_ms, size_t *n);

    /**
     * Settle `m`: a single message, or a batch (iterate fs_message_count /
     * fs_message_at; settle them in one round trip if you can). Called at
     * most once per message, never for a no_ack subscription, before
     * release. May be called from the handler's thread while the handler
     * still runs (an explicit fs_message_ack). Optional (then settling is
     * a no-op: do the work in release, reading fs_message_settled).
     */
    int (*settle)(void *impl, fs_message *m, const fs_settle_args *args);
    /** Extend the message's ack deadline (FS_CAP_IN_PROGRESS). Optional. */
    int (*in_progress)(void *impl, fs_message *m);

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
     * prepared destination or NULL. FS_OK when the broker took them;
     * FS_PENDING when they were accepted and the result comes later
     * (report it with fs_adapter_publish_result); on failure set
     * *error_type to the error's type name (static storage or alive as long
     * as the broker: e.g. "QueueFull", a client error code name; NULL means
     * "Error"), record the message with fs_adapter_error() and return FS_E*.
     */
    int (*publish)(void *impl, void *dest, const char *destination, const fs_envelope *msgs,
                   size_t count, const char **error_type);

    /**
     * Native request/reply (FS_CAP_NATIVE_REQUEST): publish `msg` and wait
     * for its reply; on FS_OK *reply is a heap message made with
     * fs_message_new_copy. It runs as the innermost step of the publish
     * middleware chain (counted as one publish, as FastStream counts a
     * request; the reply is counted nowhere). Without it the core builds
     * request/reply on publish + a reply-inbox subscription.
     */
    int (*request)(void *impl, const char *destination, const fs_envelope *msg, int timeout_ms,
                   fs_message **reply, const char **error_type);

    /**
     * Called once every worker has exited (at the end of a successful
     * fs_broker_stop): no fetch runs any more, so the adapter may give back
     * deliveries left unsettled. Optional.
     */
    void (*stopped)(void *impl);

    /** Messages waiting for this subscription, as the broker says (FS_CAP_BACKLOG). Optional. */
    int (*backlog)(void *impl, void *sub, int timeout_ms, uint64_t *out);

    /**
     * The destination label of a publish (fs_publish_ctx.destination: the
     * metrics' `destination`) where it is not the destination name, e.g.
     * RabbitMQ's "EXCHANGE.ROUTING_KEY" ("default." for the default
     * exchange). Optional: without it the label is the destination name.
     *
     * `dest` is the prepared destination (or NULL), `broker_options` those
     * the publish uses (the first envelope's, the publisher's defaults
     * applied; may be NULL). Write the label into `buf` (`cap` bytes,
     * FS_DESTINATION_LABEL_MAX, NUL-terminated; truncate what does not
     * fit) and set *label = buf, or set *label to a string alive as long
     * as `destination` or the broker (NULL: the destination name). On
     * failure record the message with fs_adapter_error() and return FS_E*:
     * the publish (or fs_publisher_new) then fails with it, before the
     * middleware chain runs.
     *
     * When. Once per publisher, at fs_publisher_new (the core keeps the
     * label), and again for a publisher's publish only when its envelope
     * brings other broker_options than the publisher's; per call for
     * fs_publish, fs_publish_batch, fs_request and fs_message_reply (dest
     * NULL; the core passes a stack buffer). Called concurrently, on the
     * publishing thread: no blocking, no lock and no allocation.
     *
     * A late result (fs_adapter_publish_result) names the label too.
     */
    int (*destination_label)(void *impl, void *dest, const char *destination,
                             const void *broker_options, char *buf, size_t cap, const char **label);
} fs_broker_ops;

/** The size of the buffer ops->destination_label writes into (with the NUL). */
#define FS_DESTINATION_LABEL_MAX 512

/** ops->publish: accepted, the result comes later through fs_adapter_publish_result. */
#define FS_PENDING 1

/**
 * Create a broker around an adapter. `ops` must stay valid for the
 * broker's life (static storage); an ops table of another abi_version is
 * refused (FS_EINVAL). `url` (copied) is what fs_broker_url returns; `opts`
 * may be NULL. On success the broker owns `impl` (ops->free is called at
 * fs_broker_free); on failure the caller keeps it and *out is NULL.
 */
FS_API int fs_broker_create(const fs_broker_ops *ops, void *impl, const char *url,
                            const fs_broker_options *opts, fs_broker **out);

/** The adapter's impl pointer of a broker. */
FS_API void *fs_broker_impl(const fs_broker *broker);

/** The adapter's ops of a broker. */
FS_API const fs_broker_ops *fs_broker_get_ops(const fs_broker *broker);

/**
 * The late result of a publish that returned FS_PENDING: `count` messages
 * to `destination` (the destination label: the name, or what
 * ops->destination_label made of it), `status` FS_OK or FS_E*, `error_type` on failure (NULL
 * means "Error"), `elapsed_s` since the publish began. Callable from any
 * thread (e.g. a client's delivery-report callback); runs every
 * middleware's publish_result hook (middleware.h).
 */
FS_API void fs_adapter_publish_result(fs_broker *b, const char *destination, size_t count,
                                      int status, const char *error_type, double elapsed_s);

/** Record an error message (like fs_last_error) and return `status`. */
FS_API int fs_adapter_error(int status, const char *fmt, ...) FS_PRINTF(2, 3);

/** fs_adapter_error with a va_list. */
FS_API int fs_adapter_verror(int status, const char *fmt, va_list ap) FS_PRINTF(2, 0);

/** Log a line as component `component` (an adapter name). */
FS_API void fs_adapter_log(fs_log_level level, const char *component, const char *fmt, ...)
    FS_PRINTF(3, 4);

/** fs_adapter_log with a va_list. */
FS_API void fs_adapter_vlog(fs_log_level level, const char *component, const char *fmt, va_list ap)
    FS_PRINTF(3, 0);

/** Nonzero when a line at `level` would be logged (check before formatting on hot paths). */
FS_API int fs_adapter_log_enabled(fs_log_level level);

/**
 * A heap message copied from an envelope (for replies returned by
 * ops->request). `source` is the name it arrived on. Free with
 * fs_message_free.
 */
FS_API fs_message *fs_message_new_copy(const fs_envelope *env, const char *source);

/**
 * A new label id, for fs_message.source_id: never 0, never returned again
 * in this process (ids of the core's own labels included). Thread-safe.
 */
FS_API uint64_t fs_adapter_label_id(void);

/**
 * Write a new uuid4 string ("xxxxxxxx-xxxx-4xxx-yxxx-xxxxxxxxxxxx") into
 * out (37 bytes with the NUL), as FastStream's gen_cor_id. Thread-safe, no
 * allocation.
 */
FS_API void fs_adapter_uuid4(char out[37]);

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
FS_API int fs_url_parse(const char *url, fs_url *out);

/**
 * The value of query parameter `key`, percent-decoded, into *value (caller
 * frees; "" for a key without '='). FS_OK with *value set; FS_ENOTFOUND
 * (*value NULL, no error recorded) when absent; FS_ENOMEM, or FS_EINVAL for
 * a malformed %-escape in an fs_url not made by fs_url_parse, with
 * fs_last_error() set.
 */
FS_API int fs_url_query_get(const fs_url *url, const char *key, char **value);

/**
 * The value of query parameter `key` (caller frees), or NULL when absent
 * or on failure: use fs_url_query_get to tell them apart.
 */
FS_API char *fs_url_query_param(const fs_url *url, const char *key);

/**
 * Iterate the query's parameters: at the first call *pos is 0; returns
 * true with the raw name and value (not decoded; value NULL when there is
 * no '=') of the next parameter, false at the end.
 */
FS_API bool fs_url_query_next(const fs_url *url, size_t *pos, const char **name, size_t *name_len,
                              const char **value, size_t *value_len);

/** Free the strings of a parsed URL and reset it (NULL: no-op). */
FS_API void fs_url_free(fs_url *url);

/*
 * Strict URL checks: an adapter refuses what it does not understand, naming
 * it. fs_url_parse already refuses spaces and control characters anywhere,
 * port 0, and a %00 in the credentials or the query (a NUL would cut a
 * password or a name short).
 */

/**
 * FS_EINVAL naming the first query parameter of `url` that is not in
 * `known` (NULL-terminated; the message lists them) or that is given more
 * than once. `what` names the URL in the message ("redis://"; NULL: the
 * scheme).
 */
FS_API int fs_url_check_query(const fs_url *url, const char *what, const char *const *known);

/**
 * True when [s, s+n) is a decimal number (digits only: no sign, space,
 * '+', hex or exponent) no greater than `max`; *out (may be NULL) is set.
 */
FS_API bool fs_url_parse_uint(const char *s, size_t n, uint64_t max, uint64_t *out);

/**
 * Query parameter `key` as such a number into *out: FS_OK, FS_ENOTFOUND
 * when absent (*out untouched, no error recorded), FS_EINVAL naming the key
 * and the value otherwise.
 */
FS_API int fs_url_query_uint(const fs_url *url, const char *key, uint64_t max, uint64_t *out);

/**
 * Query parameter `key`, decoded, into *value (caller frees) when it holds
 * no control character: as fs_url_query_get, plus FS_EINVAL naming the
 * character (for names handed to a server, such as a client name).
 */
FS_API int fs_url_query_text(const fs_url *url, const char *key, char **value);

#ifdef __cplusplus
}
#endif

#endif /* FASTSTREAM_ADAPTER_H */
