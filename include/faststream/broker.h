/*
 * faststream/broker.h - one broker connection: creation from a URL,
 * lifecycle, health.
 *
 *   fs_broker *b;
 *   if (fs_broker_new("memory://", NULL, &b) < 0)
 *       fprintf(stderr, "%s\n", fs_last_error());
 *   fs_subscribe(b, "orders", on_order, NULL, NULL, NULL);
 *   fs_broker_start(b);
 *   ...
 *   fs_broker_free(b);          // stops gracefully first
 *
 * URL schemes: "memory://" is built in; "redis://", "nats://", "amqp://",
 * "kafka://", "mqtt://" work when the adapter library is linked (it
 * registers its scheme when loaded, or explicitly with fs_<name>_register()).
 *
 * Lifecycle: new -> [connect] -> start -> stop -> [start -> stop ...] -> free.
 * fs_broker_start connects if needed, starts every subscriber's workers;
 * fs_broker_stop stops taking messages, waits for in-flight handlers (up to
 * graceful_timeout_ms), settles their messages and stops the workers;
 * fs_broker_close disconnects. Publishing works between connect and close.
 * All functions are thread-safe; start/stop/close must not be called from a
 * handler.
 */
#ifndef FASTSTREAM_BROKER_H
#define FASTSTREAM_BROKER_H

#include "faststream/common.h"
#include "faststream/subscriber.h"

#include <stdbool.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct fs_broker fs_broker;
typedef struct fs_subscriber fs_subscriber;

typedef struct fs_broker_options {
    /** Default ack policy for this broker's subscribers; DEFAULT: the broker type's. */
    fs_ack_policy ack_policy;
    /** How long fs_broker_stop waits for in-flight handlers; 0 means 10000 ms, <0 forever. */
    int graceful_timeout_ms;
} fs_broker_options;

#define FS_BROKER_OPTIONS_INIT                                                                     \
    {                                                                                              \
        FS_ACK_POLICY_DEFAULT, 0                                                                   \
    }

/**
 * Create a broker from a URL ("memory://", "redis://host:port/db"...).
 * `opts` may be NULL. Nothing is connected yet. FS_EINVAL for a malformed
 * URL, FS_ENOTFOUND (message names the scheme) when no adapter for the
 * scheme is registered, the adapter's error for bad parameters.
 */
FS_API int fs_broker_new(const char *url, const fs_broker_options *opts, fs_broker **out);

/** Connect (idempotent). Needed only to publish before fs_broker_start. */
FS_API int fs_broker_connect(fs_broker *broker);

/** Connect if needed and start consuming on every subscriber. FS_ESTATE if running. */
FS_API int fs_broker_start(fs_broker *broker);

/**
 * Stop consuming: no new message is fetched, in-flight handlers finish and
 * their messages are settled. Returns FS_ETIMEDOUT when handlers were still
 * running after graceful_timeout_ms (they keep running; fs_broker_free
 * waits for them). Idempotent; the broker stays connected.
 */
FS_API int fs_broker_stop(fs_broker *broker);

/** Stop if running, then disconnect (idempotent). */
FS_API int fs_broker_close(fs_broker *broker);

/** True between fs_broker_start and fs_broker_stop. */
FS_API bool fs_broker_running(const fs_broker *broker);

/**
 * Check that the broker answers within timeout_ms (a PING where the
 * protocol has one). FS_OK when healthy; FS_ECLOSED when not connected.
 */
FS_API int fs_broker_ping(fs_broker *broker, int timeout_ms);

/** The adapter's name: "memory", "redis", "kafka"... (the `broker` metric label). */
FS_API const char *fs_broker_name(const fs_broker *broker);

/**
 * Call `fn(sub, user)` for every subscriber of `broker` (in no particular
 * order), with the broker's lock held: `fn` must not call into the
 * broker's lifecycle (connect, start, stop, close, free, fs_subscribe).
 * FS_EINVAL for a NULL broker or fn.
 */
FS_API int fs_broker_foreach_subscriber(fs_broker *broker,
                                        void (*fn)(fs_subscriber *sub, void *user), void *user);

/** The URL the broker was made from ("memory://" for fs_memory_broker_new). */
FS_API const char *fs_broker_url(const fs_broker *broker);

/**
 * Messages handled (handler finished, message settled or released) by all
 * the broker's subscribers since it was created; a batch counts its size.
 */
FS_API uint64_t fs_broker_handled(const fs_broker *broker);

/**
 * Stop, close and free the broker with its subscribers, publishers and
 * middleware state. Waits for running handlers. NULL is ignored. Must not
 * be called from a handler.
 */
FS_API void fs_broker_free(fs_broker *broker);

/* ------------------------------------------------------------------------ */
/* URL schemes                                                              */

/**
 * Creates a broker for `url` (whose scheme matched). `opts` is never NULL
 * here. Returns FS_OK with *out set, or an FS_E* status with fs__error set.
 */
typedef int (*fs_broker_factory)(const char *url, const fs_broker_options *opts, fs_broker **out);

/**
 * Register the factory for `scheme` ("redis", without "://"). Registering
 * the same factory again is a no-op; another factory for a taken scheme is
 * FS_ECONFLICT. Thread-safe; callable from a constructor.
 */
FS_API int fs_broker_register_scheme(const char *scheme, fs_broker_factory factory);

/** True when a factory for `scheme` is registered. */
FS_API bool fs_broker_scheme_registered(const char *scheme);

#ifdef __cplusplus
}
#endif

#endif /* FASTSTREAM_BROKER_H */
