/* fs_http_server_add_dashboard: arguments, conflicts, and the page it serves. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "faststream/dashboard.h"
#include "support/http_client.h"

#include <string.h>

static fs_http_server *server(void)
{
    fs_http_options o = FS_HTTP_OPTIONS_INIT;
    o.port = FS_HTTP_PORT_ANY;
    o.metrics_path = "/m";
    fs_http_server *srv = NULL;
    assert_int_equal(fs_http_server_new(&o, &srv), FS_OK);
    return srv;
}

static void test_arguments(void **state)
{
    (void)state;
    assert_int_equal(fs_http_server_add_dashboard(NULL, "/", NULL), FS_EINVAL);
    fs_http_server *srv = server();
    assert_int_equal(fs_http_server_add_dashboard(srv, "nope", NULL), FS_EINVAL);
    assert_int_equal(fs_http_server_add_dashboard(srv, "/", "metrics"), FS_EINVAL);
    assert_int_equal(fs_http_server_add_dashboard(srv, "/", "/m\"><script>"), FS_EINVAL);
    assert_non_null(strstr(fs_last_error(), "only letters"));
    if (!fs_dashboard_available()) {
        assert_int_equal(fs_http_server_add_dashboard(srv, "/", "/m"), FS_EUNSUPPORTED);
    } else {
        assert_int_equal(fs_http_server_add_dashboard(srv, "/", "/m"), FS_OK);
        assert_int_equal(fs_http_server_add_dashboard(srv, "/", "/m"), FS_ECONFLICT);
    }
    fs_http_server_free(srv);
}

static void test_page(void **state)
{
    (void)state;
    if (!fs_dashboard_available())
        skip();
    fs_http_server *srv = server();
    assert_int_equal(fs_http_server_add_dashboard(srv, "/live", "/m"), FS_OK);
    assert_int_equal(fs_http_server_start(srv), FS_OK);
    test_http_response r;
    char ct[128];
    assert_int_equal(
        test_http_request("127.0.0.1", fs_http_server_port(srv), "GET", "/live", NULL, &r), 0);
    assert_int_equal(r.status, 200);
    assert_non_null(test_http_header(&r, "Content-Type", ct, sizeof ct));
    assert_non_null(strstr(ct, "text/html"));
    assert_non_null(strstr(r.body, "<meta name=\"fs-metrics-path\" content=\"/m\">"));
    assert_non_null(strstr(r.body, "uPlot")); /* the charting library is built in */
    assert_null(strstr(r.body, "@METRICS_PATH@"));
    assert_null(strstr(r.body, "/*DASHBOARD_JS*/"));
    test_http_response_free(&r);
    fs_http_server_free(srv);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_arguments),
        cmocka_unit_test(test_page),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
