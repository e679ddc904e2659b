/*
 * NATS URLs and options (no server): what is accepted, what is refused with
 * a message naming it, and the error when no server answers.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "faststream/faststream.h"
#include "faststream/nats.h"

#include <string.h>

static void accept(const char *url)
{
    fs_broker *b = NULL;
    int rc = fs_broker_new(url, NULL, &b);
    if (rc)
        fail_msg("%s refused: %s", url, fs_last_error());
    assert_true(fs_broker_is_nats(b));
    assert_string_equal(fs_broker_name(b), "nats");
    fs_broker_free(b);
}

static void refuse(const char *url, int status, const char *needle)
{
    fs_broker *b = NULL;
    int rc = fs_broker_new(url, NULL, &b);
    if (rc != status || !strstr(fs_last_error(), needle))
        fail_msg("%s: got %d '%s', wanted %d with '%s'", url, rc, fs_last_error(), status, needle);
    assert_null(b);
}

static void test_accepted(void **state)
{
    (void)state;
    accept("nats://127.0.0.1:4222");
    accept("nats://localhost");
    accept("nats://u:p@127.0.0.1:4222,nats://127.0.0.1:4223");
    accept("nats://127.0.0.1:4222,127.0.0.1:4223?name=billing");
    accept("nats://s3cret@127.0.0.1");
    accept("nats://127.0.0.1?token=abc&name=svc");
    accept("tls://127.0.0.1:4443");
}

static void test_refused(void **state)
{
    (void)state;
    refuse("nats://127.0.0.1?frobnicate=1", FS_EINVAL, "frobnicate");
    refuse("nats://127.0.0.1/path", FS_EINVAL, "no path");
    refuse("nats://127.0.0.1?tls_cert=/x.pem", FS_EINVAL, "tls_key");
    refuse("nats://127.0.0.1,http://127.0.0.1", FS_EINVAL, "http");
    refuse("nats://127.0.0.1?name=", FS_EINVAL, "name");
    refuse("nats://u:p@127.0.0.1?token=t", FS_EINVAL, "exclude");
}

static void test_options(void **state)
{
    (void)state;
    fs_nats_options o = FS_NATS_OPTIONS_INIT;
    o.tls_cert_file = "/c.pem";
    fs_broker *b = NULL;
    assert_int_equal(fs_nats_broker_new("nats://127.0.0.1", &o, &b), FS_EINVAL);
    assert_int_equal(fs_nats_broker_new(NULL, NULL, &b), FS_EINVAL);
    o = (fs_nats_options)FS_NATS_OPTIONS_INIT;
    o.name = "svc";
    o.user = "alice";
    o.password = "pw";
    assert_int_equal(fs_nats_broker_new("nats://127.0.0.1", &o, &b), FS_OK);
    fs_broker_free(b);
}

/* A missing TLS file is reported at connect, naming the step. */
static void test_tls_files_missing(void **state)
{
    (void)state;
    fs_broker *b = NULL;
    assert_int_equal(fs_broker_new("tls://127.0.0.1:1?tls_ca=/nonexistent/ca.pem", NULL, &b),
                     FS_OK);
    int rc = fs_broker_connect(b);
    assert_true(rc < 0);
    assert_non_null(strstr(fs_last_error(), "nats:"));
    fs_broker_free(b);
}

static void test_no_server(void **state)
{
    (void)state;
    fs_nats_options o = FS_NATS_OPTIONS_INIT;
    o.connect_timeout_ms = 300;
    fs_broker *b = NULL;
    /* Port 1 on loopback: nothing listens there. */
    assert_int_equal(fs_nats_broker_new("nats://127.0.0.1:1", &o, &b), FS_OK);
    assert_int_equal(fs_broker_connect(b), FS_EIO);
    assert_non_null(strstr(fs_last_error(), "no server answered at nats://127.0.0.1:1"));
    assert_true(fs_publish_bytes(b, "x", "y", 1) < 0);
    fs_broker_free(b);
}

int main(void)
{
    fs_set_log_level(FS_LOG_OFF);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_accepted),  cmocka_unit_test(test_refused),
        cmocka_unit_test(test_options),   cmocka_unit_test(test_tls_files_missing),
        cmocka_unit_test(test_no_server),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
