/*
 * The HTTP endpoint (faststream/http.h) on libmicrohttpd.
 *
 * Threads. libmicrohttpd runs the server on its own pool of `threads`
 * polling threads (MHD_USE_INTERNAL_POLLING_THREAD + MHD_OPTION_THREAD_POOL_SIZE);
 * every request is answered on one of them. A scrape renders the registry
 * into a buffer of its own, so scrapes run side by side and take no lock that
 * a metric update could wait for.
 *
 * Routes. The user routes and the health check live in an immutable table
 * that request threads read through one atomic pointer. Adding a route or
 * changing the health check copies the table, publishes the copy and keeps
 * the old one on a retired list: a request that still reads it stays safe.
 * Retired tables are freed when the server is stopped (no request can run
 * then) or freed. Writers serialise on table_lock, which no request takes.
 *
 * Lifecycle. start/stop/free serialise on life_lock; stop joins the server
 * threads and closes the listening socket (MHD_stop_daemon).
 */
#include "common/internal.h"
#include "http/http_internal.h"

#include "faststream/http.h"

#include <microhttpd.h>

#include <errno.h>
#include <limits.h>
#include <arpa/inet.h>
#include <netdb.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>

#define COMPONENT "http"

/* The most threads a server may ask for: far beyond what scraping needs. */
#define MAX_THREADS 256

/* The defaults of the limits in fs_http_options (see http.h). */
#define DEFAULT_MAX_CONNECTIONS 128
#define DEFAULT_MAX_PER_CLIENT 16
#define DEFAULT_TIMEOUT_S 10
#define DEFAULT_MAX_HEADER_BYTES 8192
#define DEFAULT_MAX_URL_BYTES 2048
/* Their upper bounds: beyond them a setting is a mistake, not a choice. */
#define LIMIT_MAX_CONNECTIONS 100000
#define LIMIT_TIMEOUT_S 86400
#define LIMIT_MAX_HEADER_BYTES (1024 * 1024)

#define REALM "faststream"
/* TLS 1.2 and 1.3 only. */
#define TLS_PRIORITIES "NORMAL:-VERS-ALL:+VERS-TLS1.3:+VERS-TLS1.2"

#define TEXT_PLAIN "text/plain; charset=utf-8"

/*
 * The server whose request the calling thread is answering, if any. A route
 * callback, health check or collector that stopped or freed its own server
 * would make libmicrohttpd join the very thread it runs on.
 */
static _Thread_local const fs_http_server *serving;

struct route {
    const char *path; /* owned by the server (freed with it), shared by tables */
    fs_http_route_fn fn;
    void *user;
};

/* An immutable snapshot of what requests may look up. */
struct table {
    struct table *retired_next;
    fs_http_health_fn health_fn;
    void *health_user;
    size_t count;
    struct route routes[]; /* sorted by path */
};

struct fs_http_server {
    /* Configuration, fixed at creation. */
    char *address;
    uint16_t port;
    fs_registry *registry;
    char *metrics_path;
    char *health_path; /* NULL when the health route is disabled */
    unsigned threads;
    struct sockaddr_storage addr;
    int family;
    unsigned max_connections, max_per_client, timeout_s, max_header_bytes, max_url_bytes;
    char *tls_cert, *tls_key, *tls_client_ca; /* PEM contents; NULL: plain HTTP */
    fs__http_gate gate;
    fs__http_guard guard;

    fs__http_log_limit log_limit; /* libmicrohttpd's warnings, rate-limited */

    /* Lifecycle. */
    pthread_mutex_t life_lock;
    struct MHD_Daemon *daemon;
    _Atomic uint16_t bound_port;

    /* Route table (see the top of this file). */
    pthread_mutex_t table_lock;
    _Atomic(struct table *) table;
    struct table *retired;

    /* The size of the last rendering: the next one starts with that much
     * room and usually renders with one allocation instead of a dozen. */
    _Atomic size_t size_hint;
};

/* What a request carries from the URI callback to the access handler. */
struct request_ctx {
    bool headers_seen; /* the access handler was called once: answer on the next call */
    bool url_too_long;
    char *query;
};

/* ------------------------------------------------------------------------ */
/* Responses                                                                */

static enum MHD_Result queue(struct MHD_Connection *conn, unsigned status,
                             struct MHD_Response *resp, const char *content_type)
{
    if (!resp)
        return MHD_NO; /* out of memory: libmicrohttpd closes the connection */
    if (content_type)
        MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, content_type);
    enum MHD_Result ret = MHD_queue_response(conn, status, resp);
    MHD_destroy_response(resp);
    return ret;
}

static enum MHD_Result reply_static(struct MHD_Connection *conn, unsigned status, const char *body)
{
    struct MHD_Response *resp =
        MHD_create_response_from_buffer(strlen(body), (void *)body, MHD_RESPMEM_PERSISTENT);
    return queue(conn, status, resp, TEXT_PLAIN);
}

static enum MHD_Result reply_not_allowed(struct MHD_Connection *conn)
{
    static const char body[] = "Method Not Allowed\n";
    struct MHD_Response *resp = MHD_create_response_from_buffer(
        sizeof body - 1, (void *)(uintptr_t)body, MHD_RESPMEM_PERSISTENT);
    if (resp)
        MHD_add_response_header(resp, MHD_HTTP_HEADER_ALLOW, "GET, HEAD");
    return queue(conn, MHD_HTTP_METHOD_NOT_ALLOWED, resp, TEXT_PLAIN);
}

struct rendered {
    fs_buffer buf;
};

static void free_rendered(void *cls)
{
    struct rendered *r = cls;
    fs_buffer_free(&r->buf);
    free(r);
}

static enum MHD_Result serve_metrics(fs_http_server *srv, struct MHD_Connection *conn)
{
    const char *accept = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_ACCEPT);
    const char *encoding =
        MHD_lookup_connection_value(conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_ACCEPT_ENCODING);
    fs_format format = fs_format_negotiate(accept);

    struct rendered *r = calloc(1, sizeof *r);
    if (!r)
        return MHD_NO;
    size_t hint = atomic_load_explicit(&srv->size_hint, memory_order_relaxed);
    if (hint) {
        size_t cap = hint + hint / 8 + 1;
        r->buf.data = malloc(cap);
        r->buf.cap = r->buf.data ? cap : 0;
    }
    int rc = fs_registry_render(srv->registry, format, &r->buf);
    if (rc >= 0)
        atomic_store_explicit(&srv->size_hint, r->buf.len, memory_order_relaxed);
    if (rc < 0) {
        fs__log(FS_LOG_ERROR, COMPONENT, "rendering %s failed: %s", srv->metrics_path,
                fs_last_error());
        free_rendered(r);
        return reply_static(conn, MHD_HTTP_INTERNAL_SERVER_ERROR,
                            "Internal Server Error: the metrics could not be rendered\n");
    }

    struct MHD_Response *resp = NULL;
    bool gzipped = false;
    if (fs__http_accepts_gzip(encoding)) {
        void *z;
        size_t zlen;
        if (fs__http_gzip(r->buf.data, r->buf.len, &z, &zlen) == FS_OK) {
            resp = MHD_create_response_from_buffer(zlen, z, MHD_RESPMEM_MUST_FREE);
            if (!resp)
                free(z);
            free_rendered(r);
            r = NULL;
            gzipped = resp != NULL;
        } else {
            /* Still correct without compression: say so and go on. */
            fs__log(FS_LOG_WARN, COMPONENT, "sending %s uncompressed: %s", srv->metrics_path,
                    fs_last_error());
        }
    }
    if (r) {
        resp = MHD_create_response_from_buffer_with_free_callback_cls(r->buf.len, r->buf.data,
                                                                      free_rendered, r);
        if (!resp)
            free_rendered(r);
    }
    if (!resp)
        return MHD_NO;
    if (gzipped)
        MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_ENCODING, "gzip");
    /* The body depends on both headers: caches must key on them. */
    MHD_add_response_header(resp, MHD_HTTP_HEADER_VARY, "Accept-Encoding, Accept");
    return queue(conn, MHD_HTTP_OK, resp, fs_format_content_type(format));
}

static enum MHD_Result serve_health(const struct table *t, struct MHD_Connection *conn)
{
    bool healthy = t->health_fn ? t->health_fn(t->health_user) : true;
    if (!healthy)
        return reply_static(conn, MHD_HTTP_INTERNAL_SERVER_ERROR, "unhealthy\n");
    struct MHD_Response *resp = MHD_create_response_from_buffer(0, NULL, MHD_RESPMEM_PERSISTENT);
    return queue(conn, MHD_HTTP_NO_CONTENT, resp, NULL);
}

static enum MHD_Result serve_route(const struct route *route, struct MHD_Connection *conn,
                                   const char *method, const char *path,
                                   const struct request_ctx *ctx)
{
    fs_http_request req = {method, path, ctx ? ctx->query : NULL};
    fs_http_response out = {200, NULL, NULL, 0, NULL};
    route->fn(&req, &out, route->user);

    const char *problem = NULL;
    if (out.status < 100 || out.status > 599)
        problem = "an invalid status";
    else if (!out.body && out.body_len > 0)
        problem = "a NULL body with a non-zero length";
    struct MHD_Response *resp = NULL;
    if (!problem)
        resp = MHD_create_response_from_buffer(out.body_len, (void *)(uintptr_t)out.body,
                                               MHD_RESPMEM_MUST_COPY);
    if (out.free_body && out.body)
        out.free_body((void *)(uintptr_t)out.body);
    if (problem) {
        fs__log(FS_LOG_ERROR, COMPONENT, "route %s returned %s (status %d, %zu bytes)", path,
                problem, out.status, out.body_len);
        return reply_static(conn, MHD_HTTP_INTERNAL_SERVER_ERROR,
                            "Internal Server Error: the route handler failed\n");
    }
    return queue(conn, (unsigned)out.status, resp,
                 out.content_type ? out.content_type : TEXT_PLAIN);
}

static int route_cmp(const void *key, const void *elem)
{
    return strcmp(key, ((const struct route *)elem)->path);
}

static fs__http_conn *conn_entry(struct MHD_Connection *conn)
{
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(conn, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
    return ci ? ci->socket_context : NULL;
}

static enum MHD_Result reply_unauthorized(struct MHD_Connection *conn)
{
    static const char body[] = "Unauthorized\n";
    struct MHD_Response *resp = MHD_create_response_from_buffer(
        sizeof body - 1, (void *)(uintptr_t)body, MHD_RESPMEM_PERSISTENT);
    if (!resp)
        return MHD_NO;
    MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, TEXT_PLAIN);
    enum MHD_Result ret = MHD_queue_basic_auth_fail_response(conn, REALM, resp);
    MHD_destroy_response(resp);
    return ret;
}

/* Answers a request that fails the gate (gate.c); *refused tells. */
static enum MHD_Result refuse(fs_http_server *srv, struct MHD_Connection *conn,
                              const struct request_ctx *ctx, const char *version, bool *refused)
{
    const char *body = NULL;
    unsigned status = fs__http_gate_check(&srv->gate, conn, version, ctx->url_too_long, &body);
    *refused = status != 0;
    if (status == MHD_HTTP_UNAUTHORIZED)
        return reply_unauthorized(conn);
    return status ? reply_static(conn, status, body) : MHD_YES;
}

static enum MHD_Result route_request(fs_http_server *srv, struct MHD_Connection *conn,
                                     const char *url, const char *method,
                                     const struct request_ctx *ctx)
{
    const struct table *t = atomic_load_explicit(&srv->table, memory_order_acquire);
    enum { NONE, METRICS, HEALTH, USER } kind = NONE;
    const struct route *route = NULL;
    if (strcmp(url, srv->metrics_path) == 0)
        kind = METRICS;
    else if (srv->health_path && strcmp(url, srv->health_path) == 0)
        kind = HEALTH;
    else if (t->count &&
             (route = bsearch(url, t->routes, t->count, sizeof t->routes[0], route_cmp)))
        kind = USER;

    if (kind == NONE)
        return reply_static(conn, MHD_HTTP_NOT_FOUND, "Not Found\n");
    if (strcmp(method, MHD_HTTP_METHOD_GET) != 0 && strcmp(method, MHD_HTTP_METHOD_HEAD) != 0)
        return reply_not_allowed(conn);
    enum MHD_Result ret = MHD_NO;
    serving = srv; /* user code runs below: see fs_http_server_stop */
    switch (kind) {
    case METRICS:
        ret = serve_metrics(srv, conn);
        break;
    case HEALTH:
        ret = serve_health(t, conn);
        break;
    case USER:
        ret = serve_route(route, conn, method, url, ctx);
        break;
    case NONE:
        break;
    }
    serving = NULL;
    return ret;
}

/*
 * libmicrohttpd 0.9.75 calls this once when the request head has arrived
 * and again (and again) for its body. A response queued on the first call
 * makes it close the connection, so the first call only notes that the
 * head was seen and the answer is queued on the second: that keeps the
 * connection alive for the next (pipelined) request. A request with a
 * body is answered on the first call, without reading the body: no route
 * takes one, and libmicrohttpd then closes the connection.
 */
static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn, const char *url,
                                  const char *method, const char *version, const char *upload_data,
                                  size_t *upload_data_size, void **con_cls)
{
    (void)upload_data;
    (void)upload_data_size;
    fs_http_server *srv = cls;
    struct request_ctx *ctx = *con_cls;
    if (!ctx)
        return MHD_NO; /* the URI callback ran out of memory: drop the connection */
    if (!ctx->headers_seen && !fs__http_has_body(conn)) {
        ctx->headers_seen = true;
        return MHD_YES;
    }
    fs__http_guard_answered(&srv->guard, conn_entry(conn));
    bool refused;
    enum MHD_Result ret = refuse(srv, conn, ctx, version, &refused);
    if (refused)
        return ret;
    return route_request(srv, conn, url, method, ctx);
}

/* Keeps the raw query string, which libmicrohttpd parses away later. */
static void *on_uri(void *cls, const char *uri, struct MHD_Connection *conn)
{
    const fs_http_server *srv = cls;
    (void)conn;
    struct request_ctx *ctx = calloc(1, sizeof *ctx);
    if (!ctx)
        return NULL;
    size_t len = uri ? strlen(uri) : 0;
    ctx->url_too_long = len > srv->max_url_bytes;
    const char *q = uri && !ctx->url_too_long ? strchr(uri, '?') : NULL;
    if (!q)
        return ctx;
    q++;
    size_t n = strcspn(q, "#");
    ctx->query = malloc(n + 1);
    if (!ctx->query) {
        free(ctx);
        return NULL;
    }
    memcpy(ctx->query, q, n);
    ctx->query[n] = '\0';
    return ctx;
}

static void on_completed(void *cls, struct MHD_Connection *conn, void **con_cls,
                         enum MHD_RequestTerminationCode toe)
{
    fs_http_server *srv = cls;
    (void)toe;
    fs__http_guard_completed(&srv->guard, conn_entry(conn));
    struct request_ctx *ctx = *con_cls;
    if (ctx) {
        free(ctx->query);
        free(ctx);
        *con_cls = NULL;
    }
}

static void on_connection(void *cls, struct MHD_Connection *conn, void **socket_context,
                          enum MHD_ConnectionNotificationCode toe)
{
    fs_http_server *srv = cls;
    if (toe == MHD_CONNECTION_NOTIFY_STARTED) {
        const union MHD_ConnectionInfo *ci =
            MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CONNECTION_FD);
        *socket_context = fs__http_guard_opened(&srv->guard, ci ? (int)ci->connect_fd : -1);
    } else if (toe == MHD_CONNECTION_NOTIFY_CLOSED) {
        fs__http_guard_closed(&srv->guard, *socket_context);
        *socket_context = NULL;
    }
}

/*
 * libmicrohttpd's own messages. While fs_http_server_start runs, the
 * starting thread's messages are kept for the error it returns.
 */
static _Thread_local char *start_reason;
static _Thread_local size_t start_reason_size;

static void on_mhd_log(void *cls, const char *fmt, va_list ap)
{
    char line[512];
    vsnprintf(line, sizeof line, fmt, ap);
    size_t n = strlen(line);
    while (n && (line[n - 1] == '\n' || line[n - 1] == '\r'))
        line[--n] = '\0';
    if (start_reason) {
        if (!start_reason[0])
            snprintf(start_reason, start_reason_size, "%s", line);
        fs__log(FS_LOG_DEBUG, COMPONENT, "libmicrohttpd: %s", line);
        return;
    }
    fs_http_server *srv = cls;
    unsigned long suppressed = 0;
    fs_log_level level = fs__http_log_level(&srv->log_limit, line, &suppressed);
    if (suppressed)
        fs__log(FS_LOG_WARN, COMPONENT, "libmicrohttpd: %lu more message(s) left out", suppressed);
    fs__log(level, COMPONENT, "libmicrohttpd: %s", line);
}

/* ------------------------------------------------------------------------ */
/* Route table                                                              */

static struct table *table_new(size_t count)
{
    struct table *t = calloc(1, sizeof *t + count * sizeof t->routes[0]);
    if (t)
        t->count = count;
    return t;
}

/* Publish `next` in place of the current table; the caller holds table_lock. */
static void table_publish(fs_http_server *srv, struct table *next)
{
    struct table *old = atomic_exchange_explicit(&srv->table, next, memory_order_acq_rel);
    old->retired_next = srv->retired;
    srv->retired = old;
}

/* Free the retired tables; only when no request can be reading them. */
static void table_free_retired(fs_http_server *srv)
{
    pthread_mutex_lock(&srv->table_lock);
    struct table *t = srv->retired;
    srv->retired = NULL;
    pthread_mutex_unlock(&srv->table_lock);
    while (t) {
        struct table *next = t->retired_next;
        free(t);
        t = next;
    }
}

/* ------------------------------------------------------------------------ */
/* Public API                                                               */

static int parse_address(const char *text, struct sockaddr_storage *out, int *family)
{
    char host[INET6_ADDRSTRLEN + 64];
    size_t len = strlen(text);
    if (len >= 2 && text[0] == '[' && text[len - 1] == ']') {
        text++;
        len -= 2;
    }
    if (len == 0 || len >= sizeof host)
        return -1;
    memcpy(host, text, len);
    host[len] = '\0';
    memset(out, 0, sizeof *out);
    struct sockaddr_in *v4 = (struct sockaddr_in *)out;
    if (inet_pton(AF_INET, host, &v4->sin_addr) == 1) { /* dotted quad only */
        v4->sin_family = AF_INET;
        *family = AF_INET;
        return 0;
    }
    if (!strchr(host, ':'))
        return -1;
    /* getaddrinfo rather than inet_pton: it understands scope ids (fe80::1%eth0). */
    struct addrinfo hints, *res = NULL;
    memset(&hints, 0, sizeof hints);
    hints.ai_family = AF_INET6;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_NUMERICHOST | AI_PASSIVE;
    if (getaddrinfo(host, NULL, &hints, &res) != 0 || !res)
        return -1;
    if (res->ai_addrlen > sizeof *out || res->ai_family != AF_INET6) {
        freeaddrinfo(res);
        return -1;
    }
    memcpy(out, res->ai_addr, res->ai_addrlen);
    *family = AF_INET6;
    freeaddrinfo(res);
    return 0;
}

static void free_secret(char *s)
{
    if (s) {
        memset(s, 0, strlen(s));
        free(s);
    }
}

/* Free a stopped server, also one that fs_http_server_new half made. */
static void server_destroy(fs_http_server *srv)
{
    table_free_retired(srv);
    struct table *t = atomic_load(&srv->table);
    for (size_t i = 0; t && i < t->count; i++)
        free((char *)(uintptr_t)t->routes[i].path);
    free(t);
    fs__http_guard_destroy(&srv->guard);
    fs__http_auth_destroy(&srv->gate.auth);
    free(srv->tls_cert);
    free_secret(srv->tls_key);
    free(srv->tls_client_ca);
    pthread_mutex_destroy(&srv->life_lock);
    pthread_mutex_destroy(&srv->table_lock);
    pthread_mutex_destroy(&srv->log_limit.lock);
    free(srv->address);
    free(srv->metrics_path);
    free(srv->health_path);
    free(srv);
}

static bool valid_path(const char *p)
{
    return p && p[0] == '/';
}

int fs_http_server_new(const fs_http_options *opts, fs_http_server **out)
{
    FS_CHECK_ARG(out, "fs_http_server_new: out is NULL");
    *out = NULL;
    FS_CHECK_ARG(opts, "fs_http_server_new: opts is NULL (start from FS_HTTP_OPTIONS_INIT)");
    const char *address = opts->address && opts->address[0] ? opts->address : "127.0.0.1";
    const char *metrics_path =
        opts->metrics_path && opts->metrics_path[0] ? opts->metrics_path : "/metrics";
    const char *health_path = !opts->health_path     ? "/health"
                              : opts->health_path[0] ? opts->health_path
                                                     : NULL; /* "" disables it */
    FS_CHECK_ARG(opts->port == FS_HTTP_PORT_ANY || (opts->port >= 0 && opts->port <= 65535),
                 "http: port %d is invalid (1..65535, 0 = 8000, FS_HTTP_PORT_ANY)", opts->port);
    uint16_t port = opts->port == FS_HTTP_PORT_ANY ? 0
                    : opts->port == 0              ? 8000
                                                   : (uint16_t)opts->port;
    FS_CHECK_ARG(valid_path(metrics_path), "http: metrics_path \"%s\" must start with '/'",
                 metrics_path);
    FS_CHECK_ARG(!health_path || valid_path(health_path),
                 "http: health_path \"%s\" must start with '/'", health_path);
    FS_CHECK_ARG(!health_path || strcmp(health_path, metrics_path) != 0,
                 "http: health_path and metrics_path are both \"%s\"", metrics_path);
    FS_CHECK_ARG(opts->threads <= MAX_THREADS, "http: %u threads requested, at most %d allowed",
                 opts->threads, MAX_THREADS);

    struct sockaddr_storage addr;
    int family;
    if (parse_address(address, &addr, &family) != 0)
        return fs__error(FS_EINVAL,
                         "http: invalid listen address \"%s\": expected an IPv4 or IPv6 literal",
                         address);

    fs_registry *reg = opts->registry ? opts->registry : fs_registry_default();
    if (!reg)
        return fs__error(FS_ENOMEM, "http: no default registry: %s", fs_last_error());

    FS_CHECK_ARG(opts->max_connections <= LIMIT_MAX_CONNECTIONS,
                 "http: max_connections %u is above %d", opts->max_connections,
                 LIMIT_MAX_CONNECTIONS);
    FS_CHECK_ARG(opts->timeout_s <= LIMIT_TIMEOUT_S, "http: timeout_s %u is above %d",
                 opts->timeout_s, LIMIT_TIMEOUT_S);
    FS_CHECK_ARG(opts->max_header_bytes <= LIMIT_MAX_HEADER_BYTES &&
                     opts->max_url_bytes <= LIMIT_MAX_HEADER_BYTES,
                 "http: max_header_bytes %u or max_url_bytes %u is above %d",
                 opts->max_header_bytes, opts->max_url_bytes, LIMIT_MAX_HEADER_BYTES);
    FS_CHECK_ARG(!opts->tls_cert_file == !opts->tls_key_file,
                 "http: tls_cert_file and tls_key_file go together");
    FS_CHECK_ARG(!opts->tls_client_ca_file || opts->tls_cert_file,
                 "http: tls_client_ca_file needs tls_cert_file and tls_key_file");

    fs_http_server *srv = calloc(1, sizeof *srv);
    if (!srv)
        return fs__error(FS_ENOMEM, "http: out of memory");
    pthread_mutex_init(&srv->life_lock, NULL);
    pthread_mutex_init(&srv->table_lock, NULL);
    pthread_mutex_init(&srv->log_limit.lock, NULL);
    srv->max_connections = opts->max_connections ? opts->max_connections : DEFAULT_MAX_CONNECTIONS;
    srv->max_per_client = opts->max_per_client ? opts->max_per_client : DEFAULT_MAX_PER_CLIENT;
    srv->timeout_s = opts->timeout_s ? opts->timeout_s : DEFAULT_TIMEOUT_S;
    srv->max_header_bytes =
        opts->max_header_bytes ? opts->max_header_bytes : DEFAULT_MAX_HEADER_BYTES;
    srv->max_url_bytes = opts->max_url_bytes ? opts->max_url_bytes : DEFAULT_MAX_URL_BYTES;
    srv->gate.max_header_bytes = srv->max_header_bytes;
    srv->gate.verify_client = opts->tls_client_ca_file != NULL;
    fs__http_guard_init(&srv->guard, srv->max_connections, (int64_t)srv->timeout_s * 1000);
    atomic_init(&srv->table, table_new(0));
    int rc = fs__http_auth_init(&srv->gate.auth, opts->basic_auth_user, opts->basic_auth_password,
                                opts->basic_auth_hash);
    if (rc == FS_OK && opts->tls_cert_file)
        rc = fs__http_read_file("tls_cert_file", opts->tls_cert_file, &srv->tls_cert);
    if (rc == FS_OK && opts->tls_key_file)
        rc = fs__http_read_file("tls_key_file", opts->tls_key_file, &srv->tls_key);
    if (rc == FS_OK && opts->tls_client_ca_file)
        rc =
            fs__http_read_file("tls_client_ca_file", opts->tls_client_ca_file, &srv->tls_client_ca);
    srv->address = strdup(address);
    srv->metrics_path = strdup(metrics_path);
    srv->health_path = health_path ? strdup(health_path) : NULL;
    if (rc == FS_OK && (!srv->address || !srv->metrics_path || (health_path && !srv->health_path) ||
                        !atomic_load(&srv->table)))
        rc = fs__error(FS_ENOMEM, "http: out of memory");
    if (rc != FS_OK) {
        server_destroy(srv);
        return rc;
    }
    srv->port = port;
    srv->registry = reg;
    srv->threads = opts->threads ? opts->threads : 2;
    srv->addr = addr;
    srv->family = family;
    if (family == AF_INET)
        ((struct sockaddr_in *)&srv->addr)->sin_port = htons(port);
    else
        ((struct sockaddr_in6 *)&srv->addr)->sin6_port = htons(port);
    atomic_init(&srv->bound_port, 0);
    atomic_init(&srv->size_hint, 0);
    *out = srv;
    return FS_OK;
}

int fs_http_server_add_route(fs_http_server *srv, const char *path, fs_http_route_fn fn, void *user)
{
    FS_CHECK_ARG(srv, "fs_http_server_add_route: server is NULL");
    FS_CHECK_ARG(fn, "fs_http_server_add_route: callback is NULL");
    FS_CHECK_ARG(valid_path(path), "http: route path \"%s\" must start with '/'",
                 path ? path : "(null)");
    if (strcmp(path, srv->metrics_path) == 0)
        return fs__error(FS_ECONFLICT, "http: route %s is taken by the metrics endpoint", path);
    if (srv->health_path && strcmp(path, srv->health_path) == 0)
        return fs__error(FS_ECONFLICT, "http: route %s is taken by the health check", path);

    pthread_mutex_lock(&srv->table_lock);
    const struct table *cur = atomic_load_explicit(&srv->table, memory_order_relaxed);
    size_t at = 0;
    while (at < cur->count && strcmp(cur->routes[at].path, path) < 0)
        at++;
    if (at < cur->count && strcmp(cur->routes[at].path, path) == 0) {
        pthread_mutex_unlock(&srv->table_lock);
        return fs__error(FS_ECONFLICT, "http: route %s is already registered", path);
    }
    struct table *next = table_new(cur->count + 1);
    char *copy = strdup(path);
    if (!next || !copy) {
        pthread_mutex_unlock(&srv->table_lock);
        free(next);
        free(copy);
        return fs__error(FS_ENOMEM, "http: out of memory adding route %s", path);
    }
    next->health_fn = cur->health_fn;
    next->health_user = cur->health_user;
    memcpy(next->routes, cur->routes, at * sizeof cur->routes[0]);
    next->routes[at] = (struct route){copy, fn, user};
    memcpy(next->routes + at + 1, cur->routes + at, (cur->count - at) * sizeof cur->routes[0]);
    table_publish(srv, next);
    pthread_mutex_unlock(&srv->table_lock);
    return FS_OK;
}

int fs_http_server_set_health_check(fs_http_server *srv, fs_http_health_fn fn, void *user)
{
    FS_CHECK_ARG(srv, "fs_http_server_set_health_check: server is NULL");
    if (!srv->health_path && fn)
        return fs__error(FS_ESTATE, "http: the health route is disabled (health_path is empty)");
    pthread_mutex_lock(&srv->table_lock);
    const struct table *cur = atomic_load_explicit(&srv->table, memory_order_relaxed);
    struct table *next = table_new(cur->count);
    if (!next) {
        pthread_mutex_unlock(&srv->table_lock);
        return fs__error(FS_ENOMEM, "http: out of memory");
    }
    memcpy(next->routes, cur->routes, cur->count * sizeof cur->routes[0]);
    next->health_fn = fn;
    next->health_user = fn ? user : NULL;
    table_publish(srv, next);
    pthread_mutex_unlock(&srv->table_lock);
    return FS_OK;
}

int fs_http_server_start(fs_http_server *srv)
{
    FS_CHECK_ARG(srv, "fs_http_server_start: server is NULL");
    pthread_mutex_lock(&srv->life_lock);
    if (srv->daemon) {
        pthread_mutex_unlock(&srv->life_lock);
        return fs__error(FS_ESTATE, "http: the server is already running on %s port %u",
                         srv->address, (unsigned)atomic_load(&srv->bound_port));
    }
    unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_AUTO | MHD_USE_ERROR_LOG;
    if (srv->family == AF_INET6)
        flags |= MHD_USE_IPv6;
    if (srv->tls_cert)
        flags |= MHD_USE_TLS;
    int rc = fs__http_guard_start(&srv->guard);
    if (rc < 0) {
        pthread_mutex_unlock(&srv->life_lock);
        return rc;
    }
    /* libmicrohttpd's own cap sits above ours: a connection it accepts
     * above max_connections makes the guard close the oldest waiting one,
     * so a new scrape gets in while slow clients hold the slots. Each
     * pool thread takes its share of this cap. */
    unsigned mhd_limit = srv->max_connections * 2 + srv->threads * 4;
    /* The pool per connection holds the request head (read buffer and
     * parsed headers) and the response head. */
    size_t pool = (size_t)srv->max_header_bytes * 2 + srv->max_url_bytes + 16384;
    struct MHD_OptionItem tls[] = {
        {MHD_OPTION_HTTPS_MEM_CERT, 0, srv->tls_cert},
        {MHD_OPTION_HTTPS_MEM_KEY, 0, srv->tls_key},
        {MHD_OPTION_HTTPS_PRIORITIES, 0, (void *)(uintptr_t)TLS_PRIORITIES},
        {srv->tls_client_ca ? MHD_OPTION_HTTPS_MEM_TRUST : MHD_OPTION_END, 0, srv->tls_client_ca},
        {MHD_OPTION_END, 0, NULL}};

    char reason[512] = "";
    start_reason = reason;
    start_reason_size = sizeof reason;
    errno = 0;
    struct MHD_Daemon *d = MHD_start_daemon(
        flags, srv->port, NULL, NULL, on_request, srv, MHD_OPTION_EXTERNAL_LOGGER, on_mhd_log, srv,
        MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&srv->addr, MHD_OPTION_THREAD_POOL_SIZE,
        srv->threads, MHD_OPTION_URI_LOG_CALLBACK, on_uri, srv, MHD_OPTION_NOTIFY_COMPLETED,
        on_completed, srv, MHD_OPTION_NOTIFY_CONNECTION, on_connection, srv,
        MHD_OPTION_CONNECTION_TIMEOUT, srv->timeout_s, MHD_OPTION_CONNECTION_LIMIT, mhd_limit,
        MHD_OPTION_PER_IP_CONNECTION_LIMIT, srv->max_per_client, MHD_OPTION_CONNECTION_MEMORY_LIMIT,
        pool, MHD_OPTION_ARRAY, srv->tls_cert ? tls : tls + 4, MHD_OPTION_END);
    int err = errno;
    start_reason = NULL;
    start_reason_size = 0;
    if (!d) {
        fs__http_guard_stop(&srv->guard);
        pthread_mutex_unlock(&srv->life_lock);
        if (!reason[0])
            snprintf(reason, sizeof reason, "libmicrohttpd could not start%s%s", err ? ": " : "",
                     err ? strerror(err) : "");
        return fs__error(FS_EIO, "http: cannot serve on %s port %u: %s", srv->address,
                         (unsigned)srv->port, reason);
    }
    const union MHD_DaemonInfo *info = MHD_get_daemon_info(d, MHD_DAEMON_INFO_BIND_PORT);
    uint16_t port = info ? info->port : srv->port;
    srv->daemon = d;
    atomic_store(&srv->bound_port, port);
    pthread_mutex_unlock(&srv->life_lock);
    fs__log(FS_LOG_DEBUG, COMPONENT, "serving %s on %s port %u (%u threads)", srv->metrics_path,
            srv->address, (unsigned)port, srv->threads);
    return FS_OK;
}

int fs_http_server_stop(fs_http_server *srv)
{
    FS_CHECK_ARG(srv, "fs_http_server_stop: server is NULL");
    if (serving == srv)
        return fs__error(FS_ESTATE, "http: a server cannot be stopped from one of its own "
                                    "request handlers");
    pthread_mutex_lock(&srv->life_lock);
    struct MHD_Daemon *d = srv->daemon;
    srv->daemon = NULL;
    atomic_store(&srv->bound_port, 0);
    if (d) {
        MHD_stop_daemon(d); /* joins every server thread, closes every socket */
        fs__http_guard_stop(&srv->guard);
        table_free_retired(srv);
        fs__log(FS_LOG_DEBUG, COMPONENT, "stopped serving on %s", srv->address);
    }
    pthread_mutex_unlock(&srv->life_lock);
    return FS_OK;
}

uint16_t fs_http_server_port(const fs_http_server *srv)
{
    if (!srv)
        return 0;
    return atomic_load(&((fs_http_server *)(uintptr_t)srv)->bound_port);
}

void fs_http_server_free(fs_http_server *srv)
{
    if (!srv)
        return;
    if (serving == srv) {
        fs__log(FS_LOG_ERROR, COMPONENT,
                "fs_http_server_free called from one of the server's own request handlers: "
                "not freed");
        return;
    }
    fs_http_server_stop(srv);
    server_destroy(srv);
}
