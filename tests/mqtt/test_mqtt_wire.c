/*
 * The MQTT adapter's wire helpers (no server): topic filters and names,
 * matching, UTF-8 replacement as Python's decode(errors="replace"), and the
 * MQTT 5 properties <-> message fields mapping of FastStream.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include "brokers/mqtt/wire.h"

#include <mqtt_protocol.h>
#include <string.h>

static void filters(void **state)
{
    (void)state;
    assert_null(fs__mq_filter_problem("a/b"));
    assert_null(fs__mq_filter_problem("a/+/c"));
    assert_null(fs__mq_filter_problem("#"));
    assert_null(fs__mq_filter_problem("a/#"));
    assert_null(fs__mq_filter_problem("+"));
    assert_null(fs__mq_filter_problem("$share/g/a/+"));
    assert_non_null(fs__mq_filter_problem(""));
    assert_non_null(fs__mq_filter_problem(NULL));
    assert_non_null(fs__mq_filter_problem("a/#/b"));
    assert_non_null(fs__mq_filter_problem("a/b#"));
    assert_non_null(fs__mq_filter_problem("a+/b"));
    assert_non_null(fs__mq_filter_problem("$share/g"));
    assert_non_null(fs__mq_filter_problem("$share//a"));
    assert_non_null(fs__mq_filter_problem("$share/g+/a"));
    assert_non_null(fs__mq_filter_problem("$share/g/"));
    assert_null(fs__mq_topic_problem("a/b"));
    assert_non_null(fs__mq_topic_problem("a/+"));
    assert_non_null(fs__mq_topic_problem("a/#"));
    assert_non_null(fs__mq_topic_problem(""));
}

static void matching(void **state)
{
    (void)state;
    assert_true(fs__mq_topic_matches("a/b", "a/b"));
    assert_false(fs__mq_topic_matches("a/b", "a/c"));
    assert_true(fs__mq_topic_matches("a/+/c", "a/x/c"));
    assert_false(fs__mq_topic_matches("a/+/c", "a/x/y/c"));
    assert_true(fs__mq_topic_matches("a/#", "a/x/y"));
    assert_true(fs__mq_topic_matches("a/#", "a"));
    assert_true(fs__mq_topic_matches("#", "x"));
    assert_false(fs__mq_topic_matches("#", "$SYS/x"));
    assert_false(fs__mq_topic_matches("+/x", "$SYS/x"));
    assert_true(fs__mq_topic_matches("$share/g/a/+", "a/b"));
    assert_false(fs__mq_topic_matches("a/b", "a/b/c"));
    assert_true(fs__mq_topic_matches("+/+", "/x"));
}

static void utf8(void **state)
{
    (void)state;
    char out[64];
    assert_int_equal(fs__mq_utf8_replace("abc", 3, out), 3);
    assert_string_equal(out, "abc");
    assert_int_equal(fs__mq_utf8_replace("\xC3\xA9", 2, out), 2); /* é */
    assert_string_equal(out, "\xC3\xA9");
    fs__mq_utf8_replace("a\xFF"
                        "b",
                        3, out);
    assert_string_equal(out, "a\xEF\xBF\xBD"
                             "b");
    fs__mq_utf8_replace("\xE2\x82"
                        "a",
                        3, out); /* truncated: one U+FFFD, like Python */
    assert_string_equal(out, "\xEF\xBF\xBD"
                             "a");
    fs__mq_utf8_replace("\xED\xA0\x80", 3, out); /* surrogate: three */
    assert_string_equal(out, "\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD");
    fs__mq_utf8_replace("\xF0\x9F\x98\x80", 4, out);
    assert_string_equal(out, "\xF0\x9F\x98\x80");
    fs__mq_utf8_replace("x\0y", 3, out);
    assert_memory_equal(out, "x\0y", 4);
}

static void properties_round_trip(void **state)
{
    (void)state;
    fs_header h[] = {{"a", "1", 0}, {"b", "2", 0}, {"a", "3", 0}};
    fs_envelope e = FS_ENVELOPE_INIT;
    e.headers = h;
    e.header_count = 3;
    e.content_type = "application/json";
    e.reply_to = "replies/1";
    e.correlation_id = "cid-1";
    mosquitto_property *props = NULL;
    assert_int_equal(fs__mq_props_build(&e, 60, &props), FS_OK);
    assert_non_null(props);
    mq_props p;
    assert_int_equal(fs__mq_props_read(props, &p), FS_OK);
    assert_string_equal(p.content_type, "application/json");
    assert_string_equal(p.response_topic, "replies/1");
    assert_int_equal(p.correlation_len, 5);
    assert_memory_equal(p.correlation, "cid-1", 5);
    assert_int_equal(p.expiry_s, 60);
    assert_int_equal(p.count, 2); /* "a" repeated: the last value wins, as FastStream's dict */
    assert_string_equal(p.names[0], "a");
    assert_string_equal(p.values[0], "3");
    assert_string_equal(p.names[1], "b");
    assert_string_equal(p.values[1], "2");
    fs__mq_props_free(&p);
    mosquitto_property_free_all(&props);

    fs_envelope bare = FS_ENVELOPE_INIT;
    assert_int_equal(fs__mq_props_build(&bare, 0, &props), FS_OK);
    assert_null(props); /* nothing to send, nothing allocated */
    assert_int_equal(fs__mq_props_read(NULL, &p), FS_OK);
    assert_null(p.content_type);
    assert_int_equal(p.count, 0);

    fs_header bad[] = {{"x", NULL, 0}};
    e.headers = bad;
    e.header_count = 1;
    assert_int_equal(fs__mq_props_build(&e, 0, &props), FS_EINVAL);
    assert_null(props);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(filters),
        cmocka_unit_test(matching),
        cmocka_unit_test(utf8),
        cmocka_unit_test(properties_round_trip),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
