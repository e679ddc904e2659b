/*
 * The live dashboard page: a route serving the page built into the library
 * (cmake/embed_dashboard.cmake), with the metrics path filled in.
 */
#include "common/internal.h"
#include "faststream/dashboard.h"

#include <stdlib.h>
#include <string.h>

#ifdef FS_HAVE_DASHBOARD
extern const unsigned char fs__dashboard_head[];
extern const size_t fs__dashboard_head_len;
extern const unsigned char fs__dashboard_tail[];
extern const size_t fs__dashboard_tail_len;
#endif

bool fs_dashboard_available(void)
{
#ifdef FS_HAVE_DASHBOARD
    return true;
#else
    return false;
#endif
}

/* The path goes into an HTML attribute: allow only characters that need no escaping. */
static bool safe_path(const char *p)
{
    if (p[0] != '/' || strlen(p) > 256)
        return false;
    for (; *p; p++) {
        char c = *p;
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              strchr("/._-~", c)))
            return false;
    }
    return true;
}

#ifdef FS_HAVE_DASHBOARD
static void serve_page(const fs_http_request *req, fs_http_response *resp, void *user)
{
    (void)req;
    const char *metrics_path = user;
    size_t mlen = strlen(metrics_path);
    size_t n = fs__dashboard_head_len + mlen + fs__dashboard_tail_len;
    char *body = malloc(n);
    if (!body) {
        resp->status = 503;
        resp->body = "out of memory\n";
        resp->body_len = sizeof "out of memory\n" - 1;
        return;
    }
    memcpy(body, fs__dashboard_head, fs__dashboard_head_len);
    memcpy(body + fs__dashboard_head_len, metrics_path, mlen);
    memcpy(body + fs__dashboard_head_len + mlen, fs__dashboard_tail, fs__dashboard_tail_len);
    resp->status = 200;
    resp->content_type = "text/html; charset=utf-8";
    resp->body = body;
    resp->body_len = n;
    resp->free_body = free;
}
#endif

int fs_http_server_add_dashboard(fs_http_server *srv, const char *path, const char *metrics_path)
{
    FS_CHECK_ARG(srv, "fs_http_server_add_dashboard: server is NULL");
    if (!path)
        path = "/";
    if (!metrics_path)
        metrics_path = "/metrics";
    FS_CHECK_ARG(path[0] == '/', "fs_http_server_add_dashboard: path \"%s\" must start with '/'",
                 path);
    FS_CHECK_ARG(safe_path(metrics_path),
                 "fs_http_server_add_dashboard: metrics path \"%s\" must start with '/' and hold "
                 "only letters, digits and \"/._-~\"",
                 metrics_path);
#ifdef FS_HAVE_DASHBOARD
    return fs_http_server_add_route(srv, path, serve_page, (void *)metrics_path);
#else
    return fs__error(FS_EUNSUPPORTED,
                     "fs_http_server_add_dashboard: this build of faststream-c has no "
                     "dashboard page (npm was not found when it was built)");
#endif
}
