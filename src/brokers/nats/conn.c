/*
 * The NATS connection: URL, nats.c options, connect with a clear error,
 * nats.c's own reconnection reported through the log handler, and the
 * mapping of nats.c statuses to FS_E* codes and nats-py's exception names.
 */
#include "internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* ------------------------------------------------------------------------ */
/* Statuses                                                                 */

static int status_code(natsStatus s)
{
    switch (s) {
    case NATS_OK:
        return FS_OK;
    case NATS_TIMEOUT:
        return FS_ETIMEDOUT;
    case NATS_NO_RESPONDERS:
    case NATS_NOT_FOUND:
        return FS_ENOTFOUND;
    case NATS_CONNECTION_CLOSED:
    case NATS_INVALID_SUBSCRIPTION:
    case NATS_DRAINING:
        return FS_ECLOSED;
    case NATS_INSUFFICIENT_BUFFER:
    case NATS_MAX_DELIVERED_MSGS:
    case NATS_SLOW_CONSUMER:
        return FS_EFULL;
    case NATS_NO_MEMORY:
        return FS_ENOMEM;
    case NATS_INVALID_ARG:
    case NATS_INVALID_SUBJECT:
    case NATS_INVALID_TIMEOUT:
        return FS_EINVAL;
    case NATS_PROTOCOL_ERROR:
        return FS_EPROTOCOL;
    case NATS_IO_ERROR:
    case NATS_NO_SERVER:
    case NATS_CONNECTION_DISCONNECTED:
    case NATS_SSL_ERROR:
    case NATS_STALE_CONNECTION:
    case NATS_SYS_ERROR:
        return FS_EIO;
    default:
        return FS_EBROKER;
    }
}

const char *fs__nats_error_type(natsStatus s)
{
    switch (s) {
    case NATS_TIMEOUT:
        return "TimeoutError";
    case NATS_NO_RESPONDERS:
        return "NoRespondersError";
    case NATS_NOT_FOUND:
        return "NotFoundError";
    case NATS_CONNECTION_CLOSED:
    case NATS_CONNECTION_DISCONNECTED:
    case NATS_IO_ERROR:
    case NATS_STALE_CONNECTION:
        return "ConnectionClosedError";
    case NATS_NO_SERVER:
        return "NoServersError";
    case NATS_INSUFFICIENT_BUFFER:
        return "OutboundBufferLimitError";
    case NATS_SLOW_CONSUMER:
        return "SlowConsumerError";
    case NATS_NO_MEMORY:
        return "MemoryError";
    case NATS_INVALID_ARG:
    case NATS_INVALID_SUBJECT:
        return "ValueError";
    case NATS_SSL_ERROR:
        return "SSLError";
    case NATS_ERR:
        return "APIError";
    default:
        return "NatsError";
    }
}

int fs__nats_status(natsStatus s, const char *what)
{
    if (s == NATS_OK)
        return FS_OK;
    const char *detail = nats_GetLastError(NULL);
    if (detail && *detail && strcmp(detail, natsStatus_GetText(s)) != 0)
        return fs_adapter_error(status_code(s), "nats: %s: %s (%s)", what, natsStatus_GetText(s),
                                detail);
    return fs_adapter_error(status_code(s), "nats: %s: %s", what, natsStatus_GetText(s));
}

/* ------------------------------------------------------------------------ */
/* URL                                                                      */

/* Query parameters we know: refuse any other, naming it. */
static int check_query(const fs_url *u)
{
    static const char *const known[] = {"name", "tls_ca", "tls_cert", "tls_key", "token"};
    size_t pos = 0, klen, vlen;
    const char *key, *value;
    while (fs_url_query_next(u, &pos, &key, &klen, &value, &vlen)) {
        bool ok = false;
        for (size_t i = 0; i < sizeof known / sizeof *known && !ok; i++)
            ok = klen == strlen(known[i]) && strncmp(key, known[i], klen) == 0;
        if (!ok)
            return fs_adapter_error(FS_EINVAL,
                                    "nats: unknown URL parameter '%.*s' (known: name, tls_ca, "
                                    "tls_cert, tls_key, token)",
                                    (int)klen, key);
    }
    return FS_OK;
}

/* Take the query parameter `key` of `u` into *dst unless already set. */
static int take_param(const fs_url *u, const char *key, char **dst)
{
    if (*dst)
        return FS_OK;
    char *v = NULL;
    int rc = fs_url_query_get(u, key, &v);
    if (rc == FS_ENOTFOUND)
        return FS_OK;
    if (rc)
        return rc;
    if (!*v) {
        free(v);
        return fs_adapter_error(FS_EINVAL, "nats: URL parameter '%s' is empty", key);
    }
    *dst = v;
    return FS_OK;
}

/* One server of the list: "nats://[cred@]host[:port][?query]" or "host[:port]". */
static int parse_one(nats_broker *b, const char *piece, const char *scheme, int index)
{
    char buf[1024];
    const char *text = piece;
    if (!strstr(piece, "://")) {
        if (snprintf(buf, sizeof buf, "%s://%s", scheme, piece) >= (int)sizeof buf)
            return fs_adapter_error(FS_EINVAL, "nats: server %d of the URL is too long", index + 1);
        text = buf;
    }
    fs_url u;
    int rc = fs_url_parse(text, &u);
    if (rc)
        return rc;
    if (strcmp(u.scheme, "nats") != 0 && strcmp(u.scheme, "tls") != 0) {
        rc = fs_adapter_error(FS_EINVAL, "nats: unsupported URL scheme '%s' (nats:// or tls://)",
                              u.scheme);
        goto out;
    }
    if (strcmp(u.scheme, "tls") == 0)
        b->tls = true;
    if (u.path && *u.path) {
        rc = fs_adapter_error(FS_EINVAL, "nats: a NATS URL has no path ('/%s')", u.path);
        goto out;
    }
    if ((rc = check_query(&u)))
        goto out;
    if (u.user && *u.user && !b->user && !b->token) {
        if (u.password) { /* user:password@ */
            b->user = strdup(u.user);
            b->password = strdup(u.password);
            if (!b->user || !b->password)
                rc = fs_adapter_error(FS_ENOMEM, "nats: out of memory");
        } else if (!(b->token = strdup(u.user))) { /* token@, as nats.c reads it */
            rc = fs_adapter_error(FS_ENOMEM, "nats: out of memory");
        }
    }
    if (!rc)
        rc = take_param(&u, "name", &b->name);
    if (!rc)
        rc = take_param(&u, "token", &b->token);
    if (!rc)
        rc = take_param(&u, "tls_ca", &b->tls_ca);
    if (!rc)
        rc = take_param(&u, "tls_cert", &b->tls_cert);
    if (!rc)
        rc = take_param(&u, "tls_key", &b->tls_key);
    if (rc)
        goto out;
    /* host:port for nats.c, credentials kept apart (natsOptions_SetUserInfo). */
    const char *host = u.host && *u.host ? u.host : "127.0.0.1";
    int port = u.port > 0 ? u.port : 4222;
    bool v6 = strchr(host, ':') != NULL;
    char server[600];
    if (snprintf(server, sizeof server, "%s://%s%s%s:%d", u.scheme, v6 ? "[" : "", host,
                 v6 ? "]" : "", port) >= (int)sizeof server) {
        rc = fs_adapter_error(FS_EINVAL, "nats: host name too long");
        goto out;
    }
    if (!(b->servers[index] = strdup(server)))
        rc = fs_adapter_error(FS_ENOMEM, "nats: out of memory");
out:
    fs_url_free(&u);
    return rc;
}

int fs__nats_parse_url(nats_broker *b, const char *url)
{
    FS_CHECK_ARG(url && *url, "nats: empty URL");
    const char *sep = strstr(url, "://");
    FS_CHECK_ARG(sep, "nats: '%s' is not a URL (nats://host:port)", url);
    char scheme[8];
    size_t slen = (size_t)(sep - url);
    FS_CHECK_ARG(slen < sizeof scheme, "nats: unsupported URL scheme in '%s'", url);
    memcpy(scheme, url, slen);
    scheme[slen] = '\0';
    int count = 1;
    for (const char *p = url; *p; p++)
        count += *p == ',';
    b->servers = calloc((size_t)count, sizeof *b->servers);
    if (!b->servers)
        return fs_adapter_error(FS_ENOMEM, "nats: out of memory");
    b->server_count = count;
    char *copy = strdup(url);
    if (!copy)
        return fs_adapter_error(FS_ENOMEM, "nats: out of memory");
    int rc = FS_OK, i = 0;
    char *save = NULL;
    for (char *piece = strtok_r(copy, ",", &save); piece && !rc;
         piece = strtok_r(NULL, ",", &save)) {
        while (*piece == ' ')
            piece++;
        rc = parse_one(b, piece, scheme, i++);
    }
    b->server_count = i;
    free(copy);
    if (!rc && i == 0)
        rc = fs_adapter_error(FS_EINVAL, "nats: no server in '%s'", url);
    if (!rc && (b->tls_cert != NULL) != (b->tls_key != NULL))
        rc = fs_adapter_error(FS_EINVAL, "nats: tls_cert and tls_key go together");
    if (!rc && b->token && b->user)
        rc = fs_adapter_error(FS_EINVAL, "nats: a token and a user/password exclude each other");
    if (!rc && (b->tls_ca || b->tls_cert))
        b->tls = true;
    return rc;
}

/* ------------------------------------------------------------------------ */
/* Connection events, from nats.c's threads                                 */

static void on_disconnected(natsConnection *nc, void *closure)
{
    nats_broker *b = closure;
    if (atomic_load(&b->closed))
        return;
    char url[256] = "";
    natsConnection_GetConnectedUrl(nc, url, sizeof url);
    atomic_store(&b->down_logged, true);
    fs_adapter_log(FS_LOG_WARN, FS_NATS_COMPONENT,
                   "disconnected from %s; reconnecting (publishes are buffered meanwhile)",
                   *url ? url : b->url);
}

static void on_reconnected(natsConnection *nc, void *closure)
{
    nats_broker *b = closure;
    char url[256] = "";
    natsConnection_GetConnectedUrl(nc, url, sizeof url);
    atomic_store(&b->down_logged, false);
    fs_adapter_log(FS_LOG_INFO, FS_NATS_COMPONENT, "reconnected to %s", *url ? url : b->url);
}

static void on_closed(natsConnection *nc, void *closure)
{
    (void)nc;
    nats_broker *b = closure;
    if (!atomic_load(&b->closed))
        fs_adapter_log(FS_LOG_ERROR, FS_NATS_COMPONENT,
                       "connection to %s closed: reconnection attempts exhausted", b->url);
    pthread_mutex_lock(&b->cb_mu);
    b->closed_cb = true; /* the last callback: b may go once this is seen */
    pthread_cond_broadcast(&b->cb_cv);
    pthread_mutex_unlock(&b->cb_mu);
}

/* Close the connection and wait (bounded) for nats.c's closed callback. */
static void close_and_wait(nats_broker *b, natsConnection *nc)
{
    if (!natsConnection_IsClosed(nc)) {
        natsConnection_FlushTimeout(nc, 2000); /* acks and publishes still buffered */
        natsConnection_Close(nc);
    }
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    ts.tv_sec += 5;
    pthread_mutex_lock(&b->cb_mu);
    while (!b->closed_cb && pthread_cond_timedwait(&b->cb_cv, &b->cb_mu, &ts) == 0)
        ;
    pthread_mutex_unlock(&b->cb_mu);
}

static void on_error(natsConnection *nc, natsSubscription *sub, natsStatus err, void *closure)
{
    (void)nc;
    (void)closure;
    const char *subject = sub ? natsSubscription_GetSubject(sub) : NULL;
    fs_adapter_log(FS_LOG_WARN, FS_NATS_COMPONENT, "asynchronous error%s%s: %s",
                   subject ? " on " : "", subject ? subject : "", natsStatus_GetText(err));
}

/* ------------------------------------------------------------------------ */
/* Connect                                                                  */

static natsStatus make_options(nats_broker *b, natsOptions **out)
{
    natsOptions *o = NULL;
    natsStatus s = natsOptions_Create(&o);
    if (s == NATS_OK)
        s = natsOptions_SetServers(o, (const char **)b->servers, b->server_count);
    if (s == NATS_OK && b->user)
        s = natsOptions_SetUserInfo(o, b->user, b->password);
    if (s == NATS_OK && b->token)
        s = natsOptions_SetToken(o, b->token);
    if (s == NATS_OK && b->name)
        s = natsOptions_SetName(o, b->name);
    if (s == NATS_OK && b->tls)
        s = natsOptions_SetSecure(o, true);
    if (s == NATS_OK && b->tls_ca)
        s = natsOptions_LoadCATrustedCertificates(o, b->tls_ca);
    if (s == NATS_OK && b->tls_cert)
        s = natsOptions_LoadCertificatesChain(o, b->tls_cert, b->tls_key);
    if (s == NATS_OK)
        s = natsOptions_SetTimeout(o, b->connect_timeout_ms);
    if (s == NATS_OK)
        s = natsOptions_SetAllowReconnect(o, b->max_reconnect >= 0);
    if (s == NATS_OK)
        s = natsOptions_SetMaxReconnect(o, b->max_reconnect > 0 ? b->max_reconnect : -1);
    if (s == NATS_OK)
        s = natsOptions_SetReconnectWait(o, b->reconnect_wait_ms);
    if (s == NATS_OK)
        s = natsOptions_SetReconnectBufSize(o, b->reconnect_buf);
    if (s == NATS_OK)
        s = natsOptions_SetDisconnectedCB(o, on_disconnected, b);
    if (s == NATS_OK)
        s = natsOptions_SetReconnectedCB(o, on_reconnected, b);
    if (s == NATS_OK)
        s = natsOptions_SetClosedCB(o, on_closed, b);
    if (s == NATS_OK)
        s = natsOptions_SetErrorHandler(o, on_error, b);
    if (s != NATS_OK)
        natsOptions_Destroy(o);
    else
        *out = o;
    return s;
}

int fs__nats_connect(nats_broker *b)
{
    pthread_mutex_lock(&b->mu);
    if (b->nc && !natsConnection_IsClosed(b->nc)) {
        pthread_mutex_unlock(&b->mu);
        return FS_OK;
    }
    if (b->nc) { /* closed earlier: a new connection */
        close_and_wait(b, b->nc);
        jsCtx_Destroy(b->js);
        natsConnection_Destroy(b->nc);
        b->js = NULL;
        b->nc = NULL;
    }
    natsOptions *o = NULL;
    natsStatus s = make_options(b, &o);
    if (s != NATS_OK) {
        pthread_mutex_unlock(&b->mu);
        return fs__nats_status(s, "connection options (TLS files?)");
    }
    natsConnection *nc = NULL;
    b->closed_cb = false;
    s = natsConnection_Connect(&nc, o);
    natsOptions_Destroy(o);
    if (s != NATS_OK) {
        pthread_mutex_unlock(&b->mu);
        const char *detail = nats_GetLastError(NULL);
        return fs_adapter_error(FS_EIO, "nats: no server answered at %s: %s%s%s%s", b->url,
                                natsStatus_GetText(s), detail && *detail ? " (" : "",
                                detail && *detail ? detail : "", detail && *detail ? ")" : "");
    }
    jsOptions jo;
    jsOptions_Init(&jo);
    jsCtx *js = NULL;
    s = natsConnection_JetStream(&js, nc, &jo);
    if (s != NATS_OK) {
        natsConnection_Destroy(nc);
        pthread_mutex_unlock(&b->mu);
        return fs__nats_status(s, "JetStream context");
    }
    b->nc = nc;
    b->js = js;
    atomic_store(&b->closed, false);
    atomic_store(&b->live_js, js);
    atomic_store(&b->live, nc);
    pthread_mutex_unlock(&b->mu);
    return FS_OK;
}

void fs__nats_conn_free(nats_broker *b)
{
    if (b->nc)
        close_and_wait(b, b->nc);
    if (b->js)
        jsCtx_Destroy(b->js);
    if (b->nc)
        natsConnection_Destroy(b->nc);
    b->js = NULL;
    b->nc = NULL;
}

void fs__nats_disconnect(nats_broker *b)
{
    pthread_mutex_lock(&b->mu);
    atomic_store(&b->closed, true);
    atomic_store(&b->live, NULL);
    atomic_store(&b->live_js, NULL);
    if (b->nc)
        close_and_wait(b, b->nc); /* the object stays valid until free */
    pthread_mutex_unlock(&b->mu);
}

natsConnection *fs__nats_conn(nats_broker *b, jsCtx **js, int *status)
{
    natsConnection *nc = atomic_load_explicit(&b->live, memory_order_acquire);
    if (js)
        *js = atomic_load_explicit(&b->live_js, memory_order_acquire);
    if (!nc)
        *status = fs_adapter_error(FS_ECLOSED, "nats: broker %s is not connected", b->url);
    return nc;
}
