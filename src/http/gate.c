/*
 * The gate of the HTTP endpoint: what a request must pass before it is
 * routed. In this order: its URL and head within the limits (414, 431),
 * exactly one Host header in HTTP/1.1 (400), a client certificate signed
 * by the configured CA (403), valid basic-auth credentials (401). A refusal
 * names no route and no metric.
 */
#include "common/internal.h"
#include "http/http_internal.h"

#include <gnutls/gnutls.h>
#include <microhttpd.h>

#include <string.h>
#include <strings.h>

static enum MHD_Result count_host(void *cls, enum MHD_ValueKind kind, const char *key,
                                  const char *value)
{
    (void)kind;
    (void)value;
    if (key && strcasecmp(key, MHD_HTTP_HEADER_HOST) == 0)
        (*(unsigned *)cls)++;
    return MHD_YES;
}

/* HTTP/1.1 wants exactly one Host header (RFC 9112, 3.2); HTTP/1.0 none. */
static bool host_ok(struct MHD_Connection *conn, const char *version)
{
    if (version && strcmp(version, MHD_HTTP_VERSION_1_0) == 0)
        return true;
    unsigned n = 0;
    MHD_get_connection_values(conn, MHD_HEADER_KIND, count_host, &n);
    return n == 1;
}

bool fs__http_has_body(struct MHD_Connection *conn)
{
    const char *len =
        MHD_lookup_connection_value(conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_LENGTH);
    return MHD_lookup_connection_value(conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_TRANSFER_ENCODING) ||
           (len && strspn(len, "0") != strlen(len));
}

/* With a client CA: a client certificate that CA signed was presented. */
static bool client_cert_ok(const fs__http_gate *g, struct MHD_Connection *conn)
{
    if (!g->verify_client)
        return true;
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(conn, MHD_CONNECTION_INFO_GNUTLS_SESSION);
    gnutls_session_t session = ci ? (gnutls_session_t)ci->tls_session : NULL;
    unsigned status = 0;
    return session && gnutls_certificate_verify_peers2(session, &status) == GNUTLS_E_SUCCESS &&
           status == 0;
}

static bool authorized(fs__http_gate *g, struct MHD_Connection *conn)
{
    if (!g->auth.enabled)
        return true;
    char *password = NULL;
    char *user = MHD_basic_auth_get_username_password(conn, &password);
    bool ok = fs__http_auth_check(&g->auth, user, password);
    if (password) {
        memset(password, 0, strlen(password));
        MHD_free(password);
    }
    if (user)
        MHD_free(user);
    return ok;
}

unsigned fs__http_gate_check(fs__http_gate *g, struct MHD_Connection *conn, const char *version,
                             bool url_too_long, const char **body)
{
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(conn, MHD_CONNECTION_INFO_REQUEST_HEADER_SIZE);
    *body = NULL;
    if (url_too_long) {
        *body = "URI Too Long\n";
        return MHD_HTTP_URI_TOO_LONG;
    }
    if (ci && ci->header_size > g->max_header_bytes) {
        *body = "Request Header Fields Too Large\n";
        return MHD_HTTP_REQUEST_HEADER_FIELDS_TOO_LARGE;
    }
    if (!host_ok(conn, version)) {
        *body = "Bad Request: HTTP/1.1 wants exactly one Host header\n";
        return MHD_HTTP_BAD_REQUEST;
    }
    if (!client_cert_ok(g, conn)) {
        *body = "Forbidden: no valid client certificate\n";
        return MHD_HTTP_FORBIDDEN;
    }
    if (!authorized(g, conn)) {
        *body = "Unauthorized\n";
        return MHD_HTTP_UNAUTHORIZED;
    }
    return 0;
}
