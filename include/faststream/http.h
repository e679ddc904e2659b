/*
 * faststream/http.h - the HTTP endpoint: /metrics for a registry, a health
 * route and user routes, served by libmicrohttpd on its own threads.
 *
 *   fs_http_options o = FS_HTTP_OPTIONS_INIT;
 *   o.port = 8000;
 *   fs_http_server *srv;
 *   if (fs_http_server_new(&o, &srv) || fs_http_server_start(srv))
 *       fprintf(stderr, "%s\n", fs_last_error());
 *   ...
 *   fs_http_server_free(srv);   // stops it first if running
 *
 * GET and HEAD are answered; other methods get 405, unknown paths 404.
 * /metrics is gzip-compressed when the scraper accepts gzip and is in
 * OpenMetrics when the Accept header asks for it.
 */
#ifndef FASTSTREAM_HTTP_H
#define FASTSTREAM_HTTP_H

#include "faststream/exposition.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct fs_http_server fs_http_server;

typedef struct fs_http_options {
    const char *address;      /**< IPv4 or IPv6 literal to bind; default "127.0.0.1" */
    uint16_t port;            /**< 0 picks a free port (see fs_http_server_port) */
    fs_registry *registry;    /**< served at metrics_path; NULL: the default registry */
    const char *metrics_path; /**< default "/metrics" */
    const char *health_path;  /**< default "/health"; NULL or "" disables it */
    unsigned threads;         /**< worker threads; 0 means 2 */
} fs_http_options;

#define FS_HTTP_OPTIONS_INIT                                                                       \
    {                                                                                              \
        "127.0.0.1", 8000, NULL, "/metrics", "/health", 0                                          \
    }

/** A request as seen by a route callback. */
typedef struct fs_http_request {
    const char *method; /**< "GET" or "HEAD" */
    const char *path;
    const char *query; /**< raw query string without '?', or NULL */
} fs_http_request;

/** What a route callback fills in. The body is copied by the server. */
typedef struct fs_http_response {
    int status;               /**< default 200 */
    const char *content_type; /**< default "text/plain; charset=utf-8" */
    const void *body;
    size_t body_len;
    void (*free_body)(void *); /**< optional: called on body after it was copied */
} fs_http_response;

/** A user route. Runs on a server thread; must be thread-safe. */
typedef void (*fs_http_route_fn)(const fs_http_request *req, fs_http_response *resp, void *user);

/**
 * A health check: return true when healthy. The health route answers 204
 * (No Content) when it returns true and 500 otherwise. Without a check the
 * route is a plain liveness probe and always answers 204.
 */
typedef bool (*fs_http_health_fn)(void *user);

/**
 * Create a server (not started: see fs_http_server_start) from `opts`
 * (start from FS_HTTP_OPTIONS_INIT). FS_EINVAL with a readable message for
 * a bad address, path or thread count, FS_ENOMEM when out of memory.
 */
FS_API int fs_http_server_new(const fs_http_options *opts, fs_http_server **out);

/** Add (before or after start) a GET/HEAD route at the exact `path`. FS_ECONFLICT if taken. */
FS_API int fs_http_server_add_route(fs_http_server *srv, const char *path, fs_http_route_fn fn,
                                    void *user);

/** Install the health check behind health_path (NULL removes it). */
FS_API int fs_http_server_set_health_check(fs_http_server *srv, fs_http_health_fn fn, void *user);

/** Bind and start serving. FS_EIO with the reason when the address cannot be bound. */
FS_API int fs_http_server_start(fs_http_server *srv);

/** Stop serving; joins the server threads and closes the socket. Idempotent. */
FS_API int fs_http_server_stop(fs_http_server *srv);

/** The bound port (useful with port 0), or 0 when not started. */
FS_API uint16_t fs_http_server_port(const fs_http_server *srv);

/** Stop if needed and free. NULL is ignored. */
FS_API void fs_http_server_free(fs_http_server *srv);

#ifdef __cplusplus
}
#endif

#endif
