/*
 * faststream/prometheus.h - the Prometheus middleware: FastStream's metric
 * schema for every message a broker receives and publishes.
 *
 *   fs_prometheus_options po = FS_PROMETHEUS_OPTIONS_INIT;
 *   po.app_name = "orders-service";
 *   if (fs_broker_add_prometheus(broker, &po) < 0)
 *       fprintf(stderr, "%s\n", fs_last_error());
 *
 * It registers, in the chosen registry, the nine families of FastStream's
 * PrometheusMiddleware (names, types, help texts, label order and buckets
 * exactly as FastStream's):
 *
 *   PREFIX_received_messages_total                       counter    app_name, broker, handler
 *   PREFIX_received_messages_size_bytes                  histogram  app_name, broker, handler
 *   PREFIX_received_messages_in_process                  gauge      app_name, broker, handler
 *   PREFIX_received_processed_messages_total             counter    ..., handler, status
 *   PREFIX_received_processed_messages_duration_seconds  histogram  app_name, broker, handler
 *   PREFIX_received_processed_messages_exceptions_total  counter    ..., handler, exception_type
 *   PREFIX_published_messages_total                      counter    ..., destination, status
 *   PREFIX_published_messages_duration_seconds           histogram  app_name, broker, destination
 *   PREFIX_published_messages_exceptions_total           counter    ..., destination,
 *                                                                   exception_type
 *
 * each followed by the custom label names in the order given. For every
 * received message (or batch) it counts it, observes its size, tracks it
 * in process, times the rest of the chain and the handler, counts a failure
 * by its type name and counts the result by status (acked, nacked,
 * rejected, skipped, error; an explicit settlement wins over what the
 * handler returned). For every publish it times it and counts it by status
 * (success, error) and a failure by its type name ("QueueFull"...).
 * Replies to requests are not counted.
 *
 * Several brokers may share one registry and prefix: the families are
 * registered once and reused. The registry must outlive the broker.
 *
 * Cost: no lock and no allocation per message once a (broker, handler,
 * dynamic label values) combination has been seen; the metric children of
 * each combination are cached (up to a fixed number of combinations, beyond
 * which children are looked up by label values, still lock-free).
 */
#ifndef FASTSTREAM_PROMETHEUS_H
#define FASTSTREAM_PROMETHEUS_H

#include "faststream/broker.h"
#include "faststream/message.h"
#include "faststream/metrics.h"
#include "faststream/middleware.h"

#ifdef __cplusplus
extern "C" {
#endif

/** At most this many custom labels. */
#define FS_PROMETHEUS_MAX_LABELS 16

/**
 * A dynamic custom label: returns the label's value for the received
 * message `msg` (a single message, or a batch for a batch subscriber).
 * For a publish made outside a handler it is called with msg == NULL and
 * must return a value all the same. A publish made from inside a handler
 * carries the values computed for the message being handled.
 *
 * The returned string must stay valid until the message has been handled:
 * a string literal, a string the application keeps, or a string owned by
 * the message (a header value, fs_message_source()...). NULL means "".
 * It runs on the consuming thread, concurrently: it must be thread-safe,
 * and should be cheap (it runs once per message).
 */
typedef const char *(*fs_prometheus_label_fn)(const fs_message *msg, void *user);

/** A custom label: a static value, or a function of the received message. */
typedef struct fs_prometheus_label {
    const char *name;          /**< a valid Prometheus label name, not a standard one */
    const char *value;         /**< the static value (copied); NULL when `fn` is given */
    fs_prometheus_label_fn fn; /**< the dynamic value; NULL when `value` is given */
    void *user;                /**< handed to `fn` */
} fs_prometheus_label;

typedef struct fs_prometheus_options {
    /** Where the families are registered; NULL: the default registry. */
    fs_registry *registry;
    /** The app_name label value; NULL: the metrics prefix. */
    const char *app_name;
    /** The metrics prefix; NULL: "faststream". */
    const char *prefix;
    /**
     * Upper bounds of the received-size histogram, strictly increasing (a
     * trailing +Inf is accepted); NULL: 2^4, 2^6, ... 2^24 bytes.
     */
    const double *size_buckets;
    size_t size_bucket_count;
    /** Custom labels, added after the standard ones in every family, in this order. */
    const fs_prometheus_label *labels;
    size_t label_count;
    /**
     * Also export PREFIX_received_messages_backlog (gauge; app_name, broker,
     * handler = the subscription's source): the messages waiting for each
     * subscription, asked of the broker at scrape time (in-process queue
     * depth, Redis list length or stream group lag, Kafka consumer lag,
     * RabbitMQ queue depth, JetStream pending). Only with
     * fs_broker_add_prometheus (it needs the broker). Default off, so that
     * the exported families are exactly FastStream's.
     */
    bool backlog;
    /** The backlog family's time budget per scrape, all subscriptions together; 0: 250 ms. */
    int backlog_timeout_ms;
    /** How long a subscription's backlog answer is reused; 0: 1000 ms. */
    int backlog_cache_ms;
    /**
     * The series limit of each of the nine families (metrics.h,
     * "Cardinality"): past it, the updates of new label sets (a pattern
     * subscription or a custom label producing ever new values) go to one
     * overflow series per family. 0: FS_PROMETHEUS_SERIES_LIMIT;
     * FS_SERIES_LIMIT_REGISTRY: the registry's default (none unless set with
     * fs_registry_set_series_limit). Families shared by several brokers take
     * the limit of the middleware created last.
     */
    size_t series_limit;
} fs_prometheus_options;

/** The default series limit of the middleware's families. */
#define FS_PROMETHEUS_SERIES_LIMIT 10000

#define FS_PROMETHEUS_OPTIONS_INIT                                                                 \
    {                                                                                              \
        NULL, NULL, NULL, NULL, 0, NULL, 0, false, 0, 0, 0                                         \
    }

/** The default size buckets: 2^4, 2^6, ... 2^24 (11 finite bounds). */
FS_API extern const double FS_PROMETHEUS_SIZE_BUCKETS[];
#define FS_PROMETHEUS_SIZE_BUCKETS_COUNT 11

/**
 * Build the Prometheus middleware into `*out` (opts may be NULL for the
 * defaults) and register its families. The caller then hands it to
 * fs_broker_add_middleware(), which takes ownership of its state; if that
 * fails (or the middleware is never added) release it with
 * fs_prometheus_middleware_release(). One fs_middleware serves one broker:
 * build one per broker (they share families).
 *
 * Setup errors (FS_EINVAL: invalid or reserved custom label name, i.e.
 * app_name, broker, handler, destination, status, exception_type, le or a
 * name that is not a valid label name; a duplicate name; a label with
 * neither or both of value and fn; invalid prefix or buckets;
 * FS_ECONFLICT: a family of the same name is registered with another type,
 * label set or buckets) are reported here, with fs_last_error() saying
 * exactly what. On failure no family this call created stays registered.
 */
FS_API int fs_prometheus_middleware_new(const fs_prometheus_options *opts, fs_middleware *out);

/** Free the state of a middleware that was built but not added to a broker. */
FS_API void fs_prometheus_middleware_release(fs_middleware *mw);

/**
 * Build the Prometheus middleware and append it to the broker's chain
 * (before fs_broker_start; the middlewares added before it are outside it).
 * The usual way to use it. Errors as fs_prometheus_middleware_new, plus
 * fs_broker_add_middleware's.
 */
FS_API int fs_broker_add_prometheus(fs_broker *broker, const fs_prometheus_options *opts);

#ifdef __cplusplus
}
#endif

#endif /* FASTSTREAM_PROMETHEUS_H */
