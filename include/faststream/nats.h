/*
 * faststream/nats.h - the NATS broker on nats.c: core subjects (wildcards,
 * queue groups, headers, native request/reply) and JetStream (streams, pull
 * and push consumers, acknowledgements, PubAck, de-duplication), speaking
 * FastStream's NATS headers so that a C service and a Python FastStream
 * service share one nats-server.
 *
 *   fs_broker *b;
 *   if (fs_broker_new("nats://127.0.0.1:4222", NULL, &b) < 0)
 *       fprintf(stderr, "%s\n", fs_last_error());
 *
 *   // core NATS: at most once, no acknowledgement on the wire
 *   fs_subscribe(b, "orders.*", on_order, NULL, NULL, NULL);
 *
 *   // JetStream: a durable pull consumer on stream ORDERS
 *   const char *subjects[] = {"orders.>"};
 *   fs_nats_stream_config sc = FS_NATS_STREAM_CONFIG_INIT;
 *   sc.name = "ORDERS"; sc.subjects = subjects; sc.subject_count = 1;
 *   fs_nats_subscriber_options no = FS_NATS_SUBSCRIBER_OPTIONS_INIT;
 *   no.stream = "ORDERS"; no.declare_stream = &sc; no.durable = "billing";
 *   fs_subscriber_options so = FS_SUBSCRIBER_OPTIONS_INIT;
 *   so.broker_options = &no;
 *   fs_subscribe(b, "orders.created", on_order, NULL, &so, NULL);
 *
 *   // JetStream publish: waits for the PubAck
 *   fs_nats_publish_options po = FS_NATS_PUBLISH_OPTIONS_INIT;
 *   po.stream = "ORDERS";
 *   fs_envelope env = FS_ENVELOPE_INIT;
 *   env.body = "{}"; env.body_len = 2; env.broker_options = &po;
 *   fs_publish(b, "orders.created", &env);
 *
 * URL: nats://[user:password@|token@]host[:port][,nats://host2:port...]
 * [?name=NAME][&tls_ca=FILE][&tls_cert=FILE&tls_key=FILE][&token=TOKEN]
 * (port 4222 by default; several servers separated by commas; tls://
 * instead of nats:// requires TLS; any other parameter is refused, naming
 * it). The options below override the URL.
 *
 * Connection: one per broker, shared by every subscriber and publisher
 * (nats.c is thread-safe). nats.c reconnects by itself (forever by default,
 * every reconnect_wait_ms), keeping publishes made meanwhile in its buffer
 * (reconnect_buffer_bytes; a publish beyond it fails with
 * "OutboundBufferLimitError"); disconnections, reconnections and
 * asynchronous errors are logged through the project's log handler
 * (component "nats"). When no server answers at connect: FS_EIO, "nats:
 * no server answered at URL: ...".
 *
 * Core subjects (no stream in the subscriber options): `*` and `>`
 * wildcards, queue groups (`queue`); nothing is settled on the wire, but
 * the status counts what the handler did. The message's source (handler
 * label) is the concrete subject; reply_to is the message's reply subject.
 * fs_request is native: a request to a subject nobody subscribes fails at
 * once with FS_ENOTFOUND, error type "NoRespondersError".
 *
 * JetStream (a stream in the subscriber options): ack = +ACK, nack = -NAK
 * (with the delay of the redelivery settings), reject = +TERM; the
 * redelivery settings become the consumer's MaxDeliver and BackOff; a
 * handler running longer than half the consumer's AckWait is kept alive with
 * +WPI (fs_message_in_progress does it by hand). reply_to travels in the
 * "reply_to" header, as in FastStream. Consumers are created explicitly and
 * then bound, so that a durable consumer survives the service's restart; an
 * ephemeral one is deleted at unsubscribe. fs_broker_stop stops fetching,
 * lets in-flight handlers finish and settle, and gives back (-NAK) what was
 * fetched but not handed out.
 *
 * Headers, as FastStream writes them: "content-type" (when there is one:
 * nats.c 3.4.1 misreads an empty value, which FastStream sends for "none";
 * such a value is repaired when read), "correlation_id", and on JetStream
 * "reply_to"; on core NATS reply_to is the NATS reply subject. A message_id
 * becomes "Nats-Msg-Id" on JetStream, so the server drops a retried publish
 * within the stream's duplicate window. Received: message_id is the
 * "message_id" header, else "Nats-Msg-Id". Of a header given several times,
 * the first value is seen.
 *
 * fs_message_raw() returns the nats.c message (natsMsg *), valid as long as
 * the message; do not acknowledge it through nats.c (the core settles).
 */
#ifndef FASTSTREAM_NATS_H
#define FASTSTREAM_NATS_H

#include "faststream/broker.h"
#include "faststream/common.h"
#include "faststream/subscriber.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/** Broker options for fs_nats_broker_new. Strings are copied. */
typedef struct fs_nats_options {
    fs_broker_options broker;
    /** Connection name shown by the server; NULL: the URL's ?name=, else none. */
    const char *name;
    /** Credentials; NULL: from the URL. A token excludes user/password. */
    const char *user, *password, *token;
    /** TLS: CA bundle, client certificate chain and its key (PEM files); NULL: from the URL. */
    const char *tls_ca_file, *tls_cert_file, *tls_key_file;
    /** Timeout of one connection attempt; 0 means 2000 ms. */
    int connect_timeout_ms;
    /** Reconnection attempts per server after a loss; 0 means forever, < 0 never. */
    int max_reconnect;
    /** Pause between reconnection attempts; 0 means 250 ms. */
    int reconnect_wait_ms;
    /** Bytes of publishes kept while reconnecting; 0 means 8 MiB. */
    int reconnect_buffer_bytes;
} fs_nats_options;

#define FS_NATS_OPTIONS_INIT                                                                       \
    {                                                                                              \
        FS_BROKER_OPTIONS_INIT, NULL, NULL, NULL, NULL, NULL, NULL, NULL, 0, 0, 0, 0               \
    }

/**
 * Create a NATS broker for `url` (see above). `opts` may be NULL. Nothing
 * is connected yet: fs_broker_connect / fs_broker_start report a server
 * that does not answer as FS_EIO. fs_broker_new("nats://...") does the same
 * with the default options.
 */
FS_API int fs_nats_broker_new(const char *url, const fs_nats_options *opts, fs_broker **out);

/**
 * Register the "nats" and "tls" URL schemes with the core. The library does
 * it by itself when it is loaded; call this when linking it statically.
 * Registering again is a no-op.
 */
FS_API int fs_nats_register(void);

/** True when `broker` is a NATS broker. */
FS_API bool fs_broker_is_nats(const fs_broker *broker);

/* ------------------------------------------------------------------------ */
/* JetStream streams                                                        */

typedef enum fs_nats_retention {
    FS_NATS_RETENTION_LIMITS = 0,     /**< keep until a limit (the default) */
    FS_NATS_RETENTION_INTEREST = 1,   /**< keep while a consumer has not acked */
    FS_NATS_RETENTION_WORK_QUEUE = 2, /**< each message is consumed once */
} fs_nats_retention;

typedef enum fs_nats_storage {
    FS_NATS_STORAGE_FILE = 0, /**< on disk (the default) */
    FS_NATS_STORAGE_MEMORY = 1,
} fs_nats_storage;

/** A stream to declare. Zero limits mean unlimited. Borrowed for the call only. */
typedef struct fs_nats_stream_config {
    const char *name;
    /** Subjects the stream captures (wildcards allowed); none: the stream's name. */
    const char *const *subjects;
    size_t subject_count;
    fs_nats_retention retention;
    fs_nats_storage storage;
    int64_t max_msgs;
    int64_t max_bytes;
    uint64_t max_age_ms;
    /** 0 means 1. */
    int replicas;
    /** De-duplication window of Nats-Msg-Id; 0: the server's (2 minutes). */
    uint64_t duplicate_window_ms;
} fs_nats_stream_config;

#define FS_NATS_STREAM_CONFIG_INIT                                                                 \
    {                                                                                              \
        NULL, NULL, 0, FS_NATS_RETENTION_LIMITS, FS_NATS_STORAGE_FILE, 0, 0, 0, 0, 0               \
    }

/**
 * Declare a stream, idempotently: created when missing; when it exists with
 * other settings it is updated, its subjects being the union of the two
 * (as FastStream does). Connects if needed. FS_EBROKER with the server's
 * message when it refuses (e.g. subjects overlapping another stream).
 */
FS_API int fs_nats_declare_stream(fs_broker *broker, const fs_nats_stream_config *cfg);

/** Delete a stream and its consumers. FS_ENOTFOUND when there is none. */
FS_API int fs_nats_delete_stream(fs_broker *broker, const char *name);

/* ------------------------------------------------------------------------ */
/* Subscribing                                                              */

typedef enum fs_nats_consumer_kind {
    /** Core NATS without a stream; JetStream pull with one. */
    FS_NATS_CONSUMER_DEFAULT = 0,
    /** JetStream pull consumer: the adapter fetches in batches (needs `stream`). */
    FS_NATS_CONSUMER_PULL = 1,
    /** JetStream push consumer: the server delivers to an inbox (needs `stream`). */
    FS_NATS_CONSUMER_PUSH = 2,
} fs_nats_consumer_kind;

typedef enum fs_nats_deliver_policy {
    FS_NATS_DELIVER_ALL = 0,  /**< every message the stream holds (the default) */
    FS_NATS_DELIVER_NEW = 1,  /**< only messages stored from now on */
    FS_NATS_DELIVER_LAST = 2, /**< the last message, then new ones */
} fs_nats_deliver_policy;

/** Per-subscriber options, passed as fs_subscriber_options.broker_options. */
typedef struct fs_nats_subscriber_options {
    /** Core: queue group (one member gets each message). Push: the deliver group. */
    const char *queue;
    /** JetStream stream name; NULL: a core NATS subscription. */
    const char *stream;
    /** Declared (fs_nats_declare_stream) when the subscription starts; NULL: must exist. */
    const fs_nats_stream_config *declare_stream;
    fs_nats_consumer_kind kind;
    /** Durable consumer name (created if missing, kept across restarts); NULL: ephemeral. */
    const char *durable;
    fs_nats_deliver_policy deliver;
    /** Consumer AckWait; 0 means 30000 ms. */
    unsigned ack_wait_ms;
    /** Consumer MaxAckPending; 0 means 1000 (at least the pull batch). */
    unsigned max_ack_pending;
    /** Pull: messages fetched per request at most; 0 means 64 (a batch subscriber: its size). */
    unsigned pull_batch;
} fs_nats_subscriber_options;

#define FS_NATS_SUBSCRIBER_OPTIONS_INIT                                                            \
    {                                                                                              \
        NULL, NULL, NULL, FS_NATS_CONSUMER_DEFAULT, NULL, FS_NATS_DELIVER_ALL, 0, 0, 0             \
    }

/**
 * Messages waiting for a JetStream subscriber: the consumer's NumPending
 * (not yet delivered) plus NumAckPending (delivered, not acknowledged), as
 * the server reports them (one consumer info request, up to timeout_ms).
 * FS_EUNSUPPORTED for a core subscription, FS_EINVAL for another broker's.
 */
FS_API int fs_nats_subscriber_backlog(fs_subscriber *sub, int timeout_ms, uint64_t *out);

/* ------------------------------------------------------------------------ */
/* Publishing                                                               */

/**
 * Publish options: fs_envelope.broker_options (per message; for a batch
 * the first message's count), or fs_publisher_options.broker_options.
 */
typedef struct fs_nats_publish_options {
    /** JetStream: the stream expected to store the message; NULL with !jetstream: core. */
    const char *stream;
    /** JetStream publish (wait for the PubAck) without naming the stream. */
    bool jetstream;
    /** How long to wait for a PubAck; 0 means 5000 ms. */
    int timeout_ms;
} fs_nats_publish_options;

#define FS_NATS_PUBLISH_OPTIONS_INIT                                                               \
    {                                                                                              \
        NULL, false, 0                                                                             \
    }

#ifdef __cplusplus
}
#endif

#endif /* FASTSTREAM_NATS_H */
