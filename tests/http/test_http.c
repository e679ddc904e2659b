/*
 * The HTTP endpoint: /metrics (GET, HEAD, gzip, OpenMetrics), 404, 405, the
 * health route, user routes, ports, bind failures and the server lifecycle.
 * Requests go over real sockets to a server on 127.0.0.1.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <dirent.h>
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <pthread.h>
#include <stdatomic.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "faststream/http.h"
#include "http/http_internal.h"
#include "support/http_client.h"

#define HOST "127.0.0.1"

struct fixture {
    fs_registry *reg;
    fs_counter *requests;
    fs_http_server *srv;
    uint16_t port;
};

static fs_http_options local_options(fs_registry *reg)
{
    fs_http_options o = FS_HTTP_OPTIONS_INIT;
    o.address = HOST;
    o.port = FS_HTTP_PORT_ANY;
    o.registry = reg;
    return o;
}

static int setup(void **state)
{
    struct fixture *f = calloc(1, sizeof *f);
    if (!f || fs_registry_new(&f->reg) != FS_OK)
        return -1;
    if (fs_counter_new(f->reg, "test_requests_total", "Requests \"served\"\nso far", &f->requests))
        return -1;
    fs_counter_add(f->requests, 42);
    static const char *const names[] = {"path", "code"};
    fs_counter_family *fam;
    if (fs_counter_family_new(f->reg, "test_http_responses_total", "Responses by path and code", 2,
                              names, &fam))
        return -1;
    const char *v1[] = {"/metrics", "200"}, *v2[] = {"/a\\b\"c\nd", "404"};
    fs_counter_add(fs_counter_family_labels(fam, v1), 3);
    fs_counter_inc(fs_counter_family_labels(fam, v2));
    fs_histogram *h;
    const double buckets[] = {0.1, 0.5, 1};
    if (fs_histogram_new(f->reg, "test_latency_seconds", "Latency", buckets, 3, &h))
        return -1;
    fs_histogram_observe(h, 0.05);
    fs_histogram_observe(h, 0.7);
    fs_histogram_observe(h, 3);
    fs_http_options o = local_options(f->reg);
    if (fs_http_server_new(&o, &f->srv) != FS_OK || fs_http_server_start(f->srv) != FS_OK) {
        fprintf(stderr, "setup: %s\n", fs_last_error());
        return -1;
    }
    f->port = fs_http_server_port(f->srv);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *f = *state;
    fs_http_server_free(f->srv);
    fs_registry_free(f->reg);
    free(f);
    return 0;
}

static char *render(fs_registry *reg, fs_format format)
{
    fs_buffer b = {0};
    assert_int_equal(fs_registry_render(reg, format, &b), FS_OK);
    return b.data;
}

static void request(uint16_t port, const char *method, const char *path, const char *headers,
                    test_http_response *r)
{
    if (test_http_request(HOST, port, method, path, headers, r) != 0)
        fail_msg("%s %s: %s", method, path, test_http_error());
}

/* Make a request that must answer `status`; the response is dropped. */
static void expect_status(uint16_t port, const char *method, const char *path, const char *headers,
                          int status)
{
    test_http_response r;
    request(port, method, path, headers, &r);
    int got = r.status;
    test_http_response_free(&r);
    if (got != status)
        fail_msg("%s %s answered %d, expected %d", method, path, got, status);
}

static void assert_header(const test_http_response *r, const char *name, const char *want)
{
    char buf[256];
    const char *got = test_http_header(r, name, buf, sizeof buf);
    if (!want) {
        if (got)
            fail_msg("unexpected header %s: %s", name, got);
        return;
    }
    if (!got)
        fail_msg("missing header %s in\n%s", name, r->head);
    assert_string_equal(got, want);
}

/* Log lines of the library, captured (they come from server threads). */
static pthread_mutex_t log_lock = PTHREAD_MUTEX_INITIALIZER;
static char logged[1024];

static void capture_log(fs_log_level level, const char *component, const char *message, void *user)
{
    (void)user;
    pthread_mutex_lock(&log_lock);
    size_t n = strlen(logged);
    snprintf(logged + n, sizeof logged - n, "%s %s: %s\n", fs_log_level_name(level), component,
             message);
    pthread_mutex_unlock(&log_lock);
}

static void capture_logs(void)
{
    pthread_mutex_lock(&log_lock);
    logged[0] = '\0';
    pthread_mutex_unlock(&log_lock);
    fs_set_log_handler(capture_log, NULL);
}

/* Restores the default handler and asserts that `want` was logged. */
static void assert_logged(const char *want)
{
    fs_set_log_handler(NULL, NULL);
    pthread_mutex_lock(&log_lock);
    bool found = strstr(logged, want) != NULL;
    pthread_mutex_unlock(&log_lock);
    if (!found)
        fail_msg("expected a log line with \"%s\", got:\n%s", want, logged);
}

/* ------------------------------------------------------------------------ */

static void test_accepts_gzip(void **state)
{
    (void)state;
    assert_false(fs__http_accepts_gzip(NULL));
    assert_false(fs__http_accepts_gzip(""));
    assert_true(fs__http_accepts_gzip("gzip"));
    assert_true(fs__http_accepts_gzip("GZIP"));
    assert_true(fs__http_accepts_gzip("x-gzip"));
    assert_true(fs__http_accepts_gzip("deflate, gzip"));
    assert_true(fs__http_accepts_gzip("gzip, deflate, br"));
    assert_true(fs__http_accepts_gzip("deflate;q=1.0 , gzip ; q=0.5"));
    assert_true(fs__http_accepts_gzip("gzip;q=1"));
    assert_true(fs__http_accepts_gzip("gzip;q=0.001"));
    assert_true(fs__http_accepts_gzip("*"));
    assert_true(fs__http_accepts_gzip("identity, *;q=0.1"));
    assert_false(fs__http_accepts_gzip("gzip;q=0"));
    assert_false(fs__http_accepts_gzip("gzip; q=0.000"));
    assert_false(fs__http_accepts_gzip("gzip;Q=0, *"));
    assert_false(fs__http_accepts_gzip("*;q=0"));
    assert_false(fs__http_accepts_gzip("identity"));
    assert_false(fs__http_accepts_gzip("deflate, br"));
    assert_false(fs__http_accepts_gzip("gzipper"));
    assert_false(fs__http_accepts_gzip("xgzip"));
    assert_true(fs__http_accepts_gzip("br;q=0, gzip;level=1"));
}

static void test_gzip_round_trip(void **state)
{
    (void)state;
    const char text[] = "hello hello hello hello hello\n";
    void *z;
    size_t zlen, plain_len;
    assert_int_equal(fs__http_gzip(text, sizeof text - 1, &z, &zlen), FS_OK);
    char *plain = test_gunzip(z, zlen, &plain_len);
    assert_non_null(plain);
    assert_int_equal(plain_len, sizeof text - 1);
    assert_memory_equal(plain, text, plain_len);
    free(plain);
    free(z);
    assert_int_equal(fs__http_gzip("", 0, &z, &zlen), FS_OK);
    plain = test_gunzip(z, zlen, &plain_len);
    assert_non_null(plain);
    assert_int_equal(plain_len, 0);
    free(plain);
    free(z);
}

static void test_get_metrics(void **state)
{
    struct fixture *f = *state;
    test_http_response r;
    request(f->port, "GET", "/metrics", NULL, &r);
    assert_int_equal(r.status, 200);
    assert_header(&r, "Content-Type", fs_format_content_type(FS_FORMAT_TEXT));
    assert_header(&r, "Content-Encoding", NULL);
    char *want = render(f->reg, FS_FORMAT_TEXT);
    assert_string_equal(r.body, want);
    assert_int_equal(r.body_len, strlen(want));
    assert_non_null(strstr(r.body, "test_requests_total 42\n"));
    free(want);
    test_http_response_free(&r);
}

static void test_head_metrics(void **state)
{
    struct fixture *f = *state;
    test_http_response get, head;
    request(f->port, "GET", "/metrics", NULL, &get);
    request(f->port, "HEAD", "/metrics", NULL, &head);
    assert_int_equal(head.status, 200);
    assert_int_equal(head.body_len, 0);
    char a[64], b[64];
    assert_non_null(test_http_header(&get, "Content-Length", a, sizeof a));
    assert_non_null(test_http_header(&head, "Content-Length", b, sizeof b));
    assert_string_equal(a, b);
    assert_header(&head, "Content-Type", fs_format_content_type(FS_FORMAT_TEXT));
    test_http_response_free(&get);
    test_http_response_free(&head);

    request(f->port, "HEAD", "/metrics", "Accept-Encoding: gzip\r\n", &head);
    assert_int_equal(head.status, 200);
    assert_int_equal(head.body_len, 0);
    assert_header(&head, "Content-Encoding", "gzip");
    test_http_response_free(&head);
}

static void check_gzip(struct fixture *f, const char *accept_encoding, bool want_gzip)
{
    char headers[256];
    snprintf(headers, sizeof headers, "Accept-Encoding: %s\r\n", accept_encoding);
    test_http_response r;
    request(f->port, "GET", "/metrics", headers, &r);
    assert_int_equal(r.status, 200);
    char *want = render(f->reg, FS_FORMAT_TEXT);
    char buf[128];
    assert_non_null(test_http_header(&r, "Vary", buf, sizeof buf));
    assert_non_null(strstr(buf, "Accept-Encoding"));
    if (want_gzip) {
        assert_header(&r, "Content-Encoding", "gzip");
        size_t len;
        char *plain = test_gunzip(r.body, r.body_len, &len);
        if (!plain)
            fail_msg("the body for \"%s\" is not valid gzip", accept_encoding);
        assert_string_equal(plain, want);
        assert_int_equal(len, strlen(want));
        free(plain);
    } else {
        assert_header(&r, "Content-Encoding", NULL);
        assert_string_equal(r.body, want);
    }
    free(want);
    test_http_response_free(&r);
}

static void test_gzip(void **state)
{
    struct fixture *f = *state;
    check_gzip(f, "gzip", true);
    check_gzip(f, "gzip, deflate", true);
    check_gzip(f, "deflate;q=1, gzip;q=0.5", true);
    check_gzip(f, "*", true);
    check_gzip(f, "gzip;q=0", false);
    check_gzip(f, "gzip;q=0, *", false);
    check_gzip(f, "identity", false);
    check_gzip(f, "br", false);
}

static void test_openmetrics(void **state)
{
    struct fixture *f = *state;
    test_http_response r;
    request(
        f->port, "GET", "/metrics",
        "Accept: application/openmetrics-text; version=1.0.0,text/plain;version=0.0.4;q=0.5\r\n",
        &r);
    assert_int_equal(r.status, 200);
    assert_header(&r, "Content-Type", fs_format_content_type(FS_FORMAT_OPENMETRICS));
    assert_true(r.body_len > 6);
    assert_string_equal(r.body + r.body_len - 6, "# EOF\n");
    char *want = render(f->reg, FS_FORMAT_OPENMETRICS);
    assert_string_equal(r.body, want);
    free(want);
    test_http_response_free(&r);

    /* OpenMetrics and gzip together. */
    request(f->port, "GET", "/metrics",
            "Accept: application/openmetrics-text\r\nAccept-Encoding: gzip\r\n", &r);
    assert_int_equal(r.status, 200);
    assert_header(&r, "Content-Type", fs_format_content_type(FS_FORMAT_OPENMETRICS));
    assert_header(&r, "Content-Encoding", "gzip");
    size_t len;
    char *plain = test_gunzip(r.body, r.body_len, &len);
    assert_non_null(plain);
    assert_string_equal(plain + len - 6, "# EOF\n");
    free(plain);
    test_http_response_free(&r);

    /* Refused with q=0, or not asked for: the text format. */
    request(f->port, "GET", "/metrics", "Accept: application/openmetrics-text;q=0, */*\r\n", &r);
    assert_header(&r, "Content-Type", fs_format_content_type(FS_FORMAT_TEXT));
    test_http_response_free(&r);
    request(f->port, "GET", "/metrics", "Accept: text/plain\r\n", &r);
    assert_header(&r, "Content-Type", fs_format_content_type(FS_FORMAT_TEXT));
    test_http_response_free(&r);
}

static void test_not_found(void **state)
{
    struct fixture *f = *state;
    const char *paths[] = {"/", "/nope", "/metrics/", "/metricsx", "/Metrics", "/health/x"};
    for (size_t i = 0; i < sizeof paths / sizeof *paths; i++) {
        test_http_response r;
        request(f->port, "GET", paths[i], NULL, &r);
        if (r.status != 404)
            fail_msg("GET %s: status %d, want 404", paths[i], r.status);
        test_http_response_free(&r);
    }
    /* A query string does not change the path. */
    expect_status(f->port, "GET", "/metrics?x=1", NULL, 200);
}

static void test_method_not_allowed(void **state)
{
    struct fixture *f = *state;
    const char *methods[] = {"POST", "PUT", "DELETE", "PATCH", "OPTIONS"};
    const char *paths[] = {"/metrics", "/health"};
    for (size_t p = 0; p < 2; p++)
        for (size_t i = 0; i < sizeof methods / sizeof *methods; i++) {
            test_http_response r;
            request(f->port, methods[i], paths[p], NULL, &r);
            if (r.status != 405)
                fail_msg("%s %s: status %d, want 405", methods[i], paths[p], r.status);
            assert_header(&r, "Allow", "GET, HEAD");
            test_http_response_free(&r);
        }
    /* With a request body too. */
    test_http_response r;
    const char body[] = "some=form&data=1";
    if (test_http_request_body(HOST, f->port, "POST", "/metrics", NULL, body, sizeof body - 1,
                               &r) != 0)
        fail_msg("POST: %s", test_http_error());
    assert_int_equal(r.status, 405);
    assert_header(&r, "Allow", "GET, HEAD");
    test_http_response_free(&r);
    /* The server still answers afterwards. */
    expect_status(f->port, "GET", "/metrics", NULL, 200);
}

/* Written on server threads, read by the test: atomics and a lock (the
 * socket round trip orders them too, but ThreadSanitizer cannot see that). */
static atomic_bool health_answer;
static atomic_int health_calls;

static bool health(void *user)
{
    assert_ptr_equal(user, &health_answer);
    atomic_fetch_add(&health_calls, 1);
    return atomic_load(&health_answer);
}

static void test_health(void **state)
{
    struct fixture *f = *state;
    test_http_response r;
    request(f->port, "GET", "/health", NULL, &r);
    assert_int_equal(r.status, 204);
    assert_int_equal(r.body_len, 0);
    test_http_response_free(&r);

    atomic_store(&health_calls, 0);
    atomic_store(&health_answer, false);
    assert_int_equal(fs_http_server_set_health_check(f->srv, health, &health_answer), FS_OK);
    expect_status(f->port, "GET", "/health", NULL, 500);
    request(f->port, "HEAD", "/health", NULL, &r);
    assert_int_equal(r.status, 500);
    assert_int_equal(r.body_len, 0);
    test_http_response_free(&r);

    atomic_store(&health_answer, true);
    expect_status(f->port, "GET", "/health", NULL, 204);
    assert_int_equal(atomic_load(&health_calls), 3);

    assert_int_equal(fs_http_server_set_health_check(f->srv, NULL, NULL), FS_OK);
    atomic_store(&health_answer, false);
    expect_status(f->port, "GET", "/health", NULL, 204);
    assert_int_equal(atomic_load(&health_calls), 3);
}

static void test_custom_paths(void **state)
{
    (void)state;
    fs_registry *reg;
    assert_int_equal(fs_registry_new(&reg), FS_OK);
    fs_http_options o = local_options(reg);
    o.metrics_path = "/prom";
    o.health_path = ""; /* disabled */
    fs_http_server *srv;
    assert_int_equal(fs_http_server_new(&o, &srv), FS_OK);
    assert_int_equal(fs_http_server_set_health_check(srv, health, &health_answer), FS_ESTATE);
    assert_int_equal(fs_http_server_set_health_check(srv, NULL, NULL), FS_OK);
    assert_int_equal(fs_http_server_start(srv), FS_OK);
    uint16_t port = fs_http_server_port(srv);
    expect_status(port, "GET", "/prom", NULL, 200);
    expect_status(port, "GET", "/metrics", NULL, 404);
    expect_status(port, "GET", "/health", NULL, 404);
    fs_http_server_free(srv);
    fs_registry_free(reg);
}

struct route_state {
    int calls;
    int frees;
    char method[8];
    char path[64];
    char query[128];
    bool had_query;
};

static struct route_state route_seen;
static pthread_mutex_t seen_lock = PTHREAD_MUTEX_INITIALIZER;

static struct route_state seen(void)
{
    pthread_mutex_lock(&seen_lock);
    struct route_state s = route_seen;
    pthread_mutex_unlock(&seen_lock);
    return s;
}

static void reset_seen(void)
{
    pthread_mutex_lock(&seen_lock);
    memset(&route_seen, 0, sizeof route_seen);
    pthread_mutex_unlock(&seen_lock);
}

static void free_body(void *p)
{
    pthread_mutex_lock(&seen_lock);
    route_seen.frees++;
    pthread_mutex_unlock(&seen_lock);
    free(p);
}

static void hello_route(const fs_http_request *req, fs_http_response *resp, void *user)
{
    struct route_state *s = user;
    pthread_mutex_lock(&seen_lock);
    s->calls++;
    snprintf(s->method, sizeof s->method, "%s", req->method);
    snprintf(s->path, sizeof s->path, "%s", req->path);
    s->had_query = req->query != NULL;
    snprintf(s->query, sizeof s->query, "%s", req->query ? req->query : "");
    pthread_mutex_unlock(&seen_lock);
    char *body = strdup("{\"hello\":true}");
    resp->status = 201;
    resp->content_type = "application/json";
    resp->body = body;
    resp->body_len = strlen(body);
    resp->free_body = free_body;
}

static void default_route(const fs_http_request *req, fs_http_response *resp, void *user)
{
    (void)req;
    (void)resp;
    (void)user; /* leaves every default: 200, text/plain, empty body */
}

static void bad_route(const fs_http_request *req, fs_http_response *resp, void *user)
{
    (void)req;
    (void)user;
    resp->status = 1000;
    resp->body = "x";
    resp->body_len = 1;
}

static void test_user_routes(void **state)
{
    struct fixture *f = *state;
    reset_seen();
    assert_int_equal(fs_http_server_add_route(f->srv, "/hello", hello_route, &route_seen), FS_OK);
    test_http_response r;
    request(f->port, "GET", "/hello?name=a%20b&x=%2F", NULL, &r);
    assert_int_equal(r.status, 201);
    assert_header(&r, "Content-Type", "application/json");
    assert_string_equal(r.body, "{\"hello\":true}");
    test_http_response_free(&r);
    assert_int_equal(seen().calls, 1);
    assert_int_equal(seen().frees, 1);
    assert_string_equal(seen().method, "GET");
    assert_string_equal(seen().path, "/hello");
    assert_true(seen().had_query);
    assert_string_equal(seen().query, "name=a%20b&x=%2F");

    request(f->port, "HEAD", "/hello", NULL, &r);
    assert_int_equal(r.status, 201);
    assert_int_equal(r.body_len, 0);
    assert_header(&r, "Content-Length", "14");
    test_http_response_free(&r);
    assert_string_equal(seen().method, "HEAD");
    assert_false(seen().had_query);
    assert_int_equal(seen().frees, 2);

    expect_status(f->port, "POST", "/hello", NULL, 405);
    assert_int_equal(seen().calls, 2);

    /* Routes sort around each other; each keeps its own callback. */
    assert_int_equal(fs_http_server_add_route(f->srv, "/a", default_route, NULL), FS_OK);
    assert_int_equal(fs_http_server_add_route(f->srv, "/z", bad_route, NULL), FS_OK);
    request(f->port, "GET", "/a", NULL, &r);
    assert_int_equal(r.status, 200);
    assert_header(&r, "Content-Type", "text/plain; charset=utf-8");
    assert_int_equal(r.body_len, 0);
    test_http_response_free(&r);
    capture_logs();
    expect_status(f->port, "GET", "/z", NULL, 500);
    assert_logged("error http: route /z returned an invalid status (status 1000");
    expect_status(f->port, "GET", "/hello", NULL, 201);

    /* Conflicts and bad arguments. */
    assert_int_equal(fs_http_server_add_route(f->srv, "/hello", default_route, NULL), FS_ECONFLICT);
    assert_non_null(strstr(fs_last_error(), "/hello"));
    assert_int_equal(fs_http_server_add_route(f->srv, "/metrics", default_route, NULL),
                     FS_ECONFLICT);
    assert_int_equal(fs_http_server_add_route(f->srv, "/health", default_route, NULL),
                     FS_ECONFLICT);
    assert_int_equal(fs_http_server_add_route(f->srv, "nope", default_route, NULL), FS_EINVAL);
    assert_int_equal(fs_http_server_add_route(f->srv, NULL, default_route, NULL), FS_EINVAL);
    assert_int_equal(fs_http_server_add_route(f->srv, "/x", NULL, NULL), FS_EINVAL);
    assert_int_equal(fs_http_server_add_route(NULL, "/x", default_route, NULL), FS_EINVAL);
}

struct self_stop {
    fs_http_server *srv;
    atomic_int stop_rc;
    atomic_bool freed_returned;
};

static void self_stopping_route(const fs_http_request *req, fs_http_response *resp, void *user)
{
    (void)req;
    (void)resp;
    struct self_stop *s = user;
    atomic_store(&s->stop_rc, fs_http_server_stop(s->srv));
    fs_http_server_free(s->srv); /* refused (logged), not a crash or a deadlock */
    atomic_store(&s->freed_returned, true);
}

/* A route may not stop or free its own server (it would join its own thread). */
static void test_stop_from_own_handler(void **state)
{
    struct fixture *f = *state;
    struct self_stop s = {f->srv, 1, false};
    assert_int_equal(fs_http_server_add_route(f->srv, "/stop", self_stopping_route, &s), FS_OK);
    test_http_response r;
    capture_logs();
    expect_status(f->port, "GET", "/stop", NULL, 200);
    assert_logged("own request handlers: not freed");
    assert_int_equal(atomic_load(&s.stop_rc), FS_ESTATE);
    assert_true(atomic_load(&s.freed_returned));
    request(f->port, "GET", "/metrics", NULL, &r); /* still serving */
    assert_int_equal(r.status, 200);
    test_http_response_free(&r);
}

static void test_route_added_before_start(void **state)
{
    (void)state;
    fs_registry *reg;
    assert_int_equal(fs_registry_new(&reg), FS_OK);
    fs_http_options o = local_options(reg);
    fs_http_server *srv;
    assert_int_equal(fs_http_server_new(&o, &srv), FS_OK);
    reset_seen();
    assert_int_equal(fs_http_server_add_route(srv, "/hello", hello_route, &route_seen), FS_OK);
    assert_int_equal(fs_http_server_start(srv), FS_OK);
    expect_status(fs_http_server_port(srv), "GET", "/hello", NULL, 201);
    assert_int_equal(seen().calls, 1);
    fs_http_server_free(srv);
    fs_registry_free(reg);
}

static void test_port_zero(void **state)
{
    (void)state;
    fs_registry *reg;
    assert_int_equal(fs_registry_new(&reg), FS_OK);
    fs_http_options o = local_options(reg);
    fs_http_server *srv;
    assert_int_equal(fs_http_server_new(&o, &srv), FS_OK);
    assert_int_equal(fs_http_server_port(srv), 0);
    assert_int_equal(fs_http_server_start(srv), FS_OK);
    uint16_t port = fs_http_server_port(srv);
    assert_int_not_equal(port, 0);
    expect_status(port, "GET", "/metrics", NULL, 200);
    assert_int_equal(fs_http_server_stop(srv), FS_OK);
    assert_int_equal(fs_http_server_port(srv), 0);
    assert_int_equal(fs_http_server_port(NULL), 0);
    fs_http_server_free(srv);
    fs_registry_free(reg);
}

static void test_fixed_port_and_bind_failure(void **state)
{
    struct fixture *f = *state;
    /* A second server on the fixture's port: in use. */
    fs_http_options o = local_options(f->reg);
    o.port = f->port;
    fs_http_server *srv;
    assert_int_equal(fs_http_server_new(&o, &srv), FS_OK);
    fs_clear_error();
    assert_int_equal(fs_http_server_start(srv), FS_EIO);
    const char *msg = fs_last_error();
    if (!strstr(msg, strerror(EADDRINUSE)))
        fail_msg("the error does not give the reason: %s", msg);
    char port_text[16];
    snprintf(port_text, sizeof port_text, "%u", (unsigned)f->port);
    assert_non_null(strstr(msg, port_text));
    assert_non_null(strstr(msg, HOST));
    assert_int_equal(fs_http_server_port(srv), 0);

    /* Once the first server stops, the same fixed port binds. */
    assert_int_equal(fs_http_server_stop(f->srv), FS_OK);
    assert_int_equal(fs_http_server_start(srv), FS_OK);
    assert_int_equal(fs_http_server_port(srv), f->port);
    expect_status(f->port, "GET", "/metrics", NULL, 200);
    fs_http_server_free(srv);
    assert_int_equal(fs_http_server_start(f->srv), FS_OK);
    f->port = fs_http_server_port(f->srv);
}

static void test_bad_addresses(void **state)
{
    (void)state;
    fs_http_options o = local_options(NULL);
    fs_http_server *srv = (fs_http_server *)&o;
    const char *invalid[] = {"localhost", "not-an-ip", "1.2.3", "127.0.0.1:80", "::1::2"};
    for (size_t i = 0; i < sizeof invalid / sizeof *invalid; i++) {
        o.address = invalid[i];
        assert_int_equal(fs_http_server_new(&o, &srv), FS_EINVAL);
        assert_null(srv);
        assert_non_null(strstr(fs_last_error(), invalid[i]));
    }
    /* Well-formed but not an address of this host: bind fails with the reason. */
    o.address = "192.0.2.1"; /* TEST-NET-1 */
    assert_int_equal(fs_http_server_new(&o, &srv), FS_OK);
    FILE *nonlocal = fopen("/proc/sys/net/ipv4/ip_nonlocal_bind", "r");
    int allowed = 0;
    if (nonlocal) {
        if (fscanf(nonlocal, "%d", &allowed) != 1)
            allowed = 0;
        fclose(nonlocal);
    }
    if (!allowed) { /* where the host allows binding foreign addresses, it binds */
        assert_int_equal(fs_http_server_start(srv), FS_EIO);
        if (!strstr(fs_last_error(), strerror(EADDRNOTAVAIL)))
            fail_msg("the error does not give the reason: %s", fs_last_error());
    }
    fs_http_server_free(srv);
}

static void test_ipv6(void **state)
{
    (void)state;
    fs_registry *reg;
    assert_int_equal(fs_registry_new(&reg), FS_OK);
    fs_http_options o = local_options(reg);
    o.address = "::1";
    fs_http_server *srv;
    assert_int_equal(fs_http_server_new(&o, &srv), FS_OK);
    if (fs_http_server_start(srv) != FS_OK) {
        const char *msg = fs_last_error();
        fs_http_server_free(srv);
        fs_registry_free(reg);
        if (strstr(msg, strerror(EADDRNOTAVAIL)) || strstr(msg, strerror(EAFNOSUPPORT)))
            skip(); /* this host has no IPv6 loopback */
        fail_msg("start on ::1: %s", msg);
    }
    test_http_response r;
    if (test_http_request("::1", fs_http_server_port(srv), "GET", "/metrics", NULL, &r) != 0)
        fail_msg("GET [::1]: %s", test_http_error());
    assert_int_equal(r.status, 200);
    test_http_response_free(&r);
    fs_http_server_free(srv);

    o.address = "[::1]"; /* brackets accepted */
    assert_int_equal(fs_http_server_new(&o, &srv), FS_OK);
    fs_http_server_free(srv);
    fs_registry_free(reg);
}

static void test_start_stop_start(void **state)
{
    struct fixture *f = *state;
    assert_int_equal(fs_http_server_start(f->srv), FS_ESTATE); /* already running */
    uint16_t port = f->port;
    assert_int_equal(fs_http_server_stop(f->srv), FS_OK);
    assert_int_equal(fs_http_server_stop(f->srv), FS_OK); /* idempotent */
    test_http_response r;
    assert_int_equal(test_http_request(HOST, port, "GET", "/metrics", NULL, &r), -1);
    assert_non_null(strstr(test_http_error(), strerror(ECONNREFUSED)));
    for (int i = 0; i < 3; i++) {
        assert_int_equal(fs_http_server_start(f->srv), FS_OK);
        f->port = fs_http_server_port(f->srv);
        expect_status(f->port, "GET", "/metrics", NULL, 200);
        if (i < 2)
            assert_int_equal(fs_http_server_stop(f->srv), FS_OK);
    }
}

static int count_dir(const char *path)
{
    DIR *d = opendir(path);
    if (!d)
        return -1;
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)))
        if (e->d_name[0] != '.')
            n++;
    closedir(d);
    return n;
}

/* Stopping joins every server thread and closes every socket it opened. */
static void test_stop_releases_threads_and_sockets(void **state)
{
    (void)state;
    fs_registry *reg;
    assert_int_equal(fs_registry_new(&reg), FS_OK);
    int fds = count_dir("/proc/self/fd"), threads = count_dir("/proc/self/task");
    fs_http_options o = local_options(reg);
    o.threads = 4;
    fs_http_server *srv;
    assert_int_equal(fs_http_server_new(&o, &srv), FS_OK);
    for (int round = 0; round < 3; round++) {
        assert_int_equal(fs_http_server_start(srv), FS_OK);
        assert_true(count_dir("/proc/self/task") >= threads + 4);
        assert_true(count_dir("/proc/self/fd") > fds);
        test_http_response r;
        request(fs_http_server_port(srv), "GET", "/metrics", NULL, &r);
        test_http_response_free(&r);
        /* Leave a connection open while stopping: the server closes its end. */
        int fd = test_http_connect(HOST, fs_http_server_port(srv));
        assert_true(fd >= 0);
        assert_int_equal(fs_http_server_add_route(srv,
                                                  round == 0   ? "/r0"
                                                  : round == 1 ? "/r1"
                                                               : "/r2",
                                                  default_route, NULL),
                         FS_OK);
        assert_int_equal(fs_http_server_set_health_check(srv, health, &health_answer), FS_OK);
        assert_int_equal(fs_http_server_stop(srv), FS_OK);
        char c;
        ssize_t got = recv(fd, &c, 1, 0); /* closed by the server: EOF, or a reset when */
        assert_true(got == 0 || (got < 0 && errno == ECONNRESET)); /* never accepted */
        close(fd);
        assert_int_equal(count_dir("/proc/self/task"), threads);
        assert_int_equal(count_dir("/proc/self/fd"), fds);
    }
    fs_http_server_free(srv); /* ASan's leak check covers the memory */
    assert_int_equal(count_dir("/proc/self/fd"), fds);
    fs_registry_free(reg);
}

static void test_bad_arguments(void **state)
{
    (void)state;
    fs_http_server *srv;
    fs_http_options o = local_options(NULL);
    assert_int_equal(fs_http_server_new(NULL, &srv), FS_EINVAL);
    assert_int_equal(fs_http_server_new(&o, NULL), FS_EINVAL);
    o.metrics_path = "metrics";
    assert_int_equal(fs_http_server_new(&o, &srv), FS_EINVAL);
    o.metrics_path = "/metrics";
    o.health_path = "/metrics";
    assert_int_equal(fs_http_server_new(&o, &srv), FS_EINVAL);
    o.health_path = "health";
    assert_int_equal(fs_http_server_new(&o, &srv), FS_EINVAL);
    o.health_path = NULL;
    o.threads = 100000;
    assert_int_equal(fs_http_server_new(&o, &srv), FS_EINVAL);
    assert_int_equal(fs_http_server_start(NULL), FS_EINVAL);
    assert_int_equal(fs_http_server_stop(NULL), FS_EINVAL);
    assert_int_equal(fs_http_server_set_health_check(NULL, NULL, NULL), FS_EINVAL);
    fs_http_server_free(NULL);

    /* Defaults: NULL registry = the default one; one thread works too. */
    o = local_options(NULL);
    o.threads = 1;
    o.address = NULL;
    o.metrics_path = NULL;
    assert_int_equal(fs_http_server_new(&o, &srv), FS_OK);
    assert_int_equal(fs_http_server_start(srv), FS_OK);
    test_http_response r;
    request(fs_http_server_port(srv), "GET", "/metrics", NULL, &r);
    assert_int_equal(r.status, 200);
    assert_non_null(strstr(r.body, "process_open_fds"));
    test_http_response_free(&r);
    fs_http_server_free(srv);
}

/* Requests libmicrohttpd refuses itself after the
 * URI callback kept its query: nothing leaks (ASan). */
static void test_malformed_request(void **state)
{
    struct fixture *f = *state;
    test_http_response r;
    if (test_http_raw(HOST, f->port,
                      "GET /metrics?a=b HTTP/1.1\r\nHost: x\r\nno colon here\r\n\r\n", &r) != 0)
        fail_msg("raw request: %s", test_http_error());
    assert_int_equal(r.status, 400);
    test_http_response_free(&r);
    /* A header block too large for libmicrohttpd's per-connection memory. */
    size_t big = 128 * 1024;
    char *raw = malloc(big + 128);
    assert_non_null(raw);
    int n = snprintf(raw, 128, "GET /metrics?big=1 HTTP/1.1\r\nHost: x\r\nX-Big: ");
    memset(raw + n, 'a', big);
    strcpy(raw + n + big, "\r\n\r\n");
    if (test_http_raw(HOST, f->port, raw, &r) == 0) {
        assert_true(r.status >= 400);
        test_http_response_free(&r);
    } /* or the server closed the connection while we were still sending */
    free(raw);
    /* A header block that never ends, then the peer goes away. */
    int fd = test_http_connect(HOST, f->port);
    assert_true(fd >= 0);
    const char partial[] = "GET /hello?x=1 HTTP/1.1\r\nHost: a\r\n";
    assert_int_equal(send(fd, partial, sizeof partial - 1, 0), (ssize_t)(sizeof partial - 1));
    close(fd);
    expect_status(f->port, "GET", "/metrics", NULL, 200);
}

/* A zeroed fs_http_options means every default: /metrics and /health, the default registry. */
static void test_zeroed_options_are_defaults(void **state)
{
    (void)state;
    fs_http_options o;
    memset(&o, 0, sizeof o);
    o.port = 70000;
    fs_http_server *srv = NULL;
    assert_int_equal(fs_http_server_new(&o, &srv), FS_EINVAL);
    assert_non_null(strstr(fs_last_error(), "port 70000"));
    o.port = FS_HTTP_PORT_ANY;
    assert_int_equal(fs_http_server_new(&o, &srv), FS_OK);
    assert_int_equal(fs_http_server_start(srv), FS_OK);
    test_http_response r;
    assert_int_equal(
        test_http_request("127.0.0.1", fs_http_server_port(srv), "GET", "/health", NULL, &r), 0);
    assert_int_equal(r.status, 204);
    test_http_response_free(&r);
    assert_int_equal(
        test_http_request("127.0.0.1", fs_http_server_port(srv), "GET", "/metrics", NULL, &r), 0);
    assert_int_equal(r.status, 200);
    test_http_response_free(&r);
    fs_http_server_free(srv);
    /* "" turns the health route off. */
    o.health_path = "";
    assert_int_equal(fs_http_server_new(&o, &srv), FS_OK);
    assert_int_equal(fs_http_server_start(srv), FS_OK);
    assert_int_equal(
        test_http_request("127.0.0.1", fs_http_server_port(srv), "GET", "/health", NULL, &r), 0);
    assert_int_equal(r.status, 404);
    test_http_response_free(&r);
    fs_http_server_free(srv);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_zeroed_options_are_defaults),
        cmocka_unit_test(test_accepts_gzip),
        cmocka_unit_test(test_gzip_round_trip),
        cmocka_unit_test_setup_teardown(test_get_metrics, setup, teardown),
        cmocka_unit_test_setup_teardown(test_head_metrics, setup, teardown),
        cmocka_unit_test_setup_teardown(test_gzip, setup, teardown),
        cmocka_unit_test_setup_teardown(test_openmetrics, setup, teardown),
        cmocka_unit_test_setup_teardown(test_not_found, setup, teardown),
        cmocka_unit_test_setup_teardown(test_method_not_allowed, setup, teardown),
        cmocka_unit_test_setup_teardown(test_health, setup, teardown),
        cmocka_unit_test(test_custom_paths),
        cmocka_unit_test_setup_teardown(test_user_routes, setup, teardown),
        cmocka_unit_test(test_route_added_before_start),
        cmocka_unit_test_setup_teardown(test_stop_from_own_handler, setup, teardown),
        cmocka_unit_test(test_port_zero),
        cmocka_unit_test_setup_teardown(test_fixed_port_and_bind_failure, setup, teardown),
        cmocka_unit_test(test_bad_addresses),
        cmocka_unit_test(test_ipv6),
        cmocka_unit_test_setup_teardown(test_start_stop_start, setup, teardown),
        cmocka_unit_test(test_stop_releases_threads_and_sockets),
        cmocka_unit_test(test_bad_arguments),
        cmocka_unit_test_setup_teardown(test_malformed_request, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
