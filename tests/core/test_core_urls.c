/*
 * Broker URLs refused with a message naming what is wrong. The name of an
 * unknown parameter is reported intact: it used to be read from the freed
 * query (valgrind saw it: the unit tests also run under valgrind).
 */
#include "core_test.h"

static void expect_url_refused(const char *url, const char *want)
{
    fs_broker *b = (fs_broker *)1;
    int rc = fs_broker_new(url, NULL, &b);
    if (rc != FS_EINVAL)
        fail_msg("%s: %d (%s), want FS_EINVAL", url, rc, fs_last_error());
    assert_null(b);
    if (!strstr(fs_last_error(), want))
        fail_msg("%s: \"%s\" does not name \"%s\"", url, fs_last_error(), want);
}

static void test_memory_unknown_parameter(void **state)
{
    (void)state;
    expect_url_refused("memory://?capacty=5", "'capacty'");
    expect_url_refused("memory://?capacity=5&inline_sise=64", "'inline_sise'");
    expect_url_refused("memory://?x", "'x'");
}

int main(void)
{
    quiet_logs();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_memory_unknown_parameter),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
