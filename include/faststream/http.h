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
 * OpenMetrics when the Accept header asks for it. Connections are kept
 * alive (HTTP/1.1) and pipelined requests are answered in order.
 *
 * Limits (all on by default, see fs_http_options): at most max_connections
 * open connections, max_per_client of them from one client address; when
 * the cap is reached, the connection that has waited longest for its
 * request is closed to make room for the new one. A request must arrive
 * whole, and be answered, within timeout_s of the connection's first byte
 * (or of the previous response on a kept-alive connection), so clients
 * that trickle their headers or sit idle are closed. Request heads larger
 * than max_header_bytes get 431, URLs longer than max_url_bytes 414, an
 * HTTP/1.1 request without exactly one Host header 400.
 *
 * Security (off by default): HTTPS with tls_cert_file + tls_key_file (PEM);
 * with tls_client_ca_file, only clients presenting a certificate signed by
 * that CA are answered (403 otherwise). HTTP basic auth with
 * basic_auth_user and either basic_auth_password (plain) or
 * basic_auth_hash (a bcrypt "$2b$..." or other crypt(3) hash, or
 * "sha256:" + 64 hex digits of SHA-256(password)); every route then
 * answers 401 without valid credentials, the body naming nothing. The
 * password is compared in constant time; a bcrypt hash is checked once
 * per distinct password (the last one that matched is remembered as a
 * SHA-256 digest), so a scraper pays its cost once.
 */
#ifndef FASTSTREAM_HTTP_H
#define FASTSTREAM_HTTP_H

#include "faststream/exposition.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct fs_http_server fs_http_server;

/** fs_http_options.port: pick a free port (see fs_http_server_port). */
#define FS_HTTP_PORT_ANY (-1)

/*
 * A zeroed fs_http_options means every default, as every options struct of
 * the library: NULL strings and 0 numbers take the default given.
 */
typedef struct fs_http_options {
    const char *address;      /**< IPv4 or IPv6 literal to bind; NULL: "127.0.0.1" */
    int port;                 /**< 1..65535; 0: 8000; FS_HTTP_PORT_ANY picks a free one */
    fs_registry *registry;    /**< served at metrics_path; NULL: the default registry */
    const char *metrics_path; /**< NULL: "/metrics" */
    const char *health_path;  /**< NULL: "/health"; "" disables it */
    unsigned threads;         /**< worker threads; 0 means 2 */

    /* Limits; 0 means the default given. */
    unsigned max_connections;  /**< open connections at most; default 128 */
    unsigned max_per_client;   /**< connections from one client address; default 16 */
    unsigned timeout_s;        /**< a request's whole life (see above); default 10 */
    unsigned max_header_bytes; /**< request line and headers; default 8192 */
    unsigned max_url_bytes;    /**< request target (path and query); default 2048 */

    /* TLS; NULL: plain HTTP. */
    const char *tls_cert_file;      /**< PEM certificate (chain); needs tls_key_file */
    const char *tls_key_file;       /**< PEM private key, unencrypted */
    const char *tls_client_ca_file; /**< PEM CA(s): require a client certificate they signed */

    /* Basic auth; NULL user: off. Exactly one of password and hash with a user. */
    const char *basic_auth_user;
    const char *basic_auth_password; /**< the plain password */
    const char *basic_auth_hash;     /**< bcrypt/crypt(3) hash or "sha256:HEX" */
} fs_http_options;

#define FS_HTTP_OPTIONS_INIT                                                                       \
    {                                                                                              \
        "127.0.0.1", 8000, NULL, "/metrics", "/health", 0, 0, 0, 0, 0, 0, NULL, NULL, NULL, NULL,  \
            NULL, NULL                                                                             \
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
 * a bad address, path, thread count, limit, hash or TLS setting, FS_EIO
 * when a TLS file cannot be read, FS_ENOMEM when out of memory. The TLS
 * files are read here; `opts` and its strings are not used afterwards.
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

/** The bound port (useful with FS_HTTP_PORT_ANY), or 0 when not started. */
FS_API uint16_t fs_http_server_port(const fs_http_server *srv);

/** Stop if needed and free. NULL is ignored. */
FS_API void fs_http_server_free(fs_http_server *srv);

#ifdef __cplusplus
}
#endif

#endif
