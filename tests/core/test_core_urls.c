/*
 * Broker URLs are strict and refused with a message naming what is wrong:
 * unknown or repeated parameters, numbers with a sign, space or junk, port
 * 0, spaces and control characters, %00 in credentials and values, control
 * characters in text values. The name of an unknown parameter is reported
 * intact (it used to be read from the freed query: the unit tests also run
 * under valgrind, which saw it).
 */
#include "core_test.h"
#include "support/record.h"

#include "faststream/adapter.h"

static void expect_url_ok(const char *url)
{
    fs_broker *b = NULL;
    if (fs_broker_new(url, NULL, &b) != FS_OK)
        fail_msg("%s: %s", url, fs_last_error());
    fs_broker_free(b);
}

static void test_memory_url(void **state)
{
    (void)state;
    ts_expect_url_refused("memory://?capacty=5", "'capacty' (known: capacity, inline_size)");
    ts_expect_url_refused("memory://?capacity=5&inline_sise=64", "'inline_sise'");
    ts_expect_url_refused("memory://?x", "'x'");
    ts_expect_url_refused("memory://?capacity=5&capacity=6", "'capacity' is given more than once");
    ts_expect_url_refused("memory://?capacity=+5", "capacity=+5");
    ts_expect_url_refused("memory://?capacity=%205", "capacity= 5");
    ts_expect_url_refused("memory://?capacity=5%00junk", "%00");
    ts_expect_url_refused("memory://?capacity=0x10", "capacity=0x10");
    ts_expect_url_refused("memory://?capacity=5e3", "capacity=5e3");
    ts_expect_url_refused("memory://?capacity=", "capacity=");
    ts_expect_url_refused("memory://?capacity=-1", "capacity=-1");
    ts_expect_url_refused("memory://?capacity=99999999999999999999999", "capacity=9999");
    ts_expect_url_refused("memory://? capacity=5", "space or control character");
    expect_url_ok("memory://?capacity=5&inline_size=64");
    expect_url_ok("memory://");
}

static void test_parse_strict(void **state)
{
    (void)state;
    fs_url u;
    assert_int_equal(fs_url_parse("redis://h:0/0", &u), FS_EINVAL);
    assert_non_null(strstr(fs_last_error(), "port 0"));
    assert_int_equal(fs_url_parse("redis://h:65536", &u), FS_EINVAL);
    assert_int_equal(fs_url_parse("redis://:pa%00ss@h", &u), FS_EINVAL);
    assert_non_null(strstr(fs_last_error(), "%00"));
    assert_int_equal(fs_url_parse("redis://us%00er:p@h", &u), FS_EINVAL);
    assert_int_equal(fs_url_parse("redis://h/0?client_name=a%00b", &u), FS_EINVAL);
    assert_int_equal(fs_url_parse("redis://h\t/0", &u), FS_EINVAL);
    assert_int_equal(fs_url_parse("redis://h/0\n", &u), FS_EINVAL);
    assert_int_equal(fs_url_parse("redis://h/ 1", &u), FS_EINVAL);
    CHECK_OK(fs_url_parse("redis://u:p%20w@h:1/2?client_name=a%20b&format=json", &u));
    assert_string_equal(u.password, "p w");
    assert_int_equal(u.port, 1);

    static const char *const known[] = {"client_name", "format", NULL};
    CHECK_OK(fs_url_check_query(&u, "redis://", known));
    char *v = NULL;
    CHECK_OK(fs_url_query_text(&u, "client_name", &v));
    assert_string_equal(v, "a b");
    free(v);
    uint64_t n = 7;
    assert_int_equal(fs_url_query_uint(&u, "absent", 10, &n), FS_ENOTFOUND);
    assert_int_equal(n, 7);
    assert_int_equal(fs_url_query_uint(&u, "format", 10, &n), FS_EINVAL);
    assert_non_null(strstr(fs_last_error(), "format=json"));
    fs_url_free(&u);

    CHECK_OK(fs_url_parse("redis://h/0?fromat=json", &u));
    assert_int_equal(fs_url_check_query(&u, "redis://", known), FS_EINVAL);
    assert_non_null(strstr(fs_last_error(), "'fromat' (known: client_name, format)"));
    fs_url_free(&u);

    CHECK_OK(fs_url_parse("redis://h/0?client_name=a%01b", &u));
    assert_int_equal(fs_url_query_text(&u, "client_name", &v), FS_EINVAL);
    assert_null(v);
    assert_non_null(strstr(fs_last_error(), "0x01"));
    fs_url_free(&u);

    assert_true(fs_url_parse_uint("15", 2, 15, &n) && n == 15);
    assert_false(fs_url_parse_uint("16", 2, 15, &n));
    assert_false(fs_url_parse_uint("+1", 2, 15, &n));
    assert_false(fs_url_parse_uint(" 1", 2, 15, &n));
    assert_false(fs_url_parse_uint("", 0, 15, &n));
    assert_false(fs_url_parse_uint("18446744073709551616", 20, UINT64_MAX, &n));
    assert_true(fs_url_parse_uint("18446744073709551615", 20, UINT64_MAX, &n) && n == UINT64_MAX);
}

int main(void)
{
    quiet_logs();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_memory_url),
        cmocka_unit_test(test_parse_strict),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
