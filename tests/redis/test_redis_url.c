/*
 * redis:// URLs are strict: a database number with a sign, space or junk,
 * port 0, control characters or %00 in client_name, %00 in the credentials,
 * unknown or repeated parameters and unknown formats are refused with a
 * message naming them (before, " 1" and "+1" were db 1, port 0 was 6379, a
 * control character failed only at connect, "pass%00word" was "pass" and
 * fromat=json silently published binary). No server needed: fs_broker_new
 * does not connect.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "faststream/faststream.h"
#include "faststream/redis.h"
#include "support/record.h"

#include <string.h>

static void test_strict_urls(void **state)
{
    (void)state;
    ts_expect_url_refused("redis://127.0.0.1/%201", "bad database number");
    ts_expect_url_refused("redis://127.0.0.1/ 1", "space or control character");
    ts_expect_url_refused("redis://127.0.0.1/+1", "bad database number '+1'");
    ts_expect_url_refused("redis://127.0.0.1/1x", "bad database number '1x'");
    ts_expect_url_refused("redis://127.0.0.1/65536", "bad database number '65536'");
    ts_expect_url_refused("redis://127.0.0.1:0/0", "port 0");
    ts_expect_url_refused("redis://127.0.0.1/0?client_name=a%01b", "control character 0x01");
    ts_expect_url_refused("redis://127.0.0.1/0?client_name=a%0Db", "control character 0x0d");
    ts_expect_url_refused("redis://127.0.0.1/0?client_name=a%00b", "%00");
    ts_expect_url_refused("redis://:pass%00word@127.0.0.1/0", "%00");
    ts_expect_url_refused("redis://us%00er:pw@127.0.0.1/0", "%00");
    ts_expect_url_refused("redis://127.0.0.1/0?fromat=json", "unknown parameter 'fromat'");
    ts_expect_url_refused("redis://127.0.0.1/0?format=json&format=raw", "more than once");
    ts_expect_url_refused("redis://127.0.0.1/0?format=xml", "unknown format 'xml'");
    fs_broker *b = NULL;
    if (fs_broker_new("redis://u:p%20w@127.0.0.1:6380/15?client_name=svc-1&format=json", NULL,
                      &b) != FS_OK)
        fail_msg("a good URL: %s", fs_last_error());
    fs_broker_free(b);
}

int main(void)
{
    fs_set_log_level(FS_LOG_OFF);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_strict_urls),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
