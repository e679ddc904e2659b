/* FastStream's Kafka conventions (src/brokers/kafka/wire.c), without a cluster. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h>

#include "brokers/kafka/wire.h"
#include "faststream/faststream.h"

#include <string.h>

static void test_headers_single(void **state)
{
    (void)state;
    fs_header h[] = {{"x-a", "1", 0}, {"x-b", "", 0}};
    fs_envelope e = FS_ENVELOPE_INIT;
    e.headers = h;
    e.header_count = 2;
    fs__kafka_hdr out[8];
    size_t n = 0;
    assert_true(fs__kafka_wire_header_max(&e) <= 8);
    assert_int_equal(fs__kafka_wire_headers(&e, true, "cid", out, &n), 0);
    /* content-type always on a single publish ("" when none), correlation_id, then user's. */
    assert_int_equal(n, 4);
    assert_string_equal(out[0].name, "content-type");
    assert_int_equal(out[0].len, 0);
    assert_string_equal(out[1].name, "correlation_id");
    assert_memory_equal(out[1].value, "cid", 3);
    assert_string_equal(out[2].name, "x-a");
    assert_string_equal(out[3].name, "x-b");
    e.reply_to = "back";
    e.content_type = "application/json";
    assert_int_equal(fs__kafka_wire_headers(&e, false, "cid", out, &n), 0);
    assert_int_equal(n, 5);
    assert_string_equal(out[0].name, "content-type");
    assert_int_equal(out[0].len, 16);
    assert_string_equal(out[2].name, "reply_to");
}

static void test_headers_batch_and_errors(void **state)
{
    (void)state;
    fs_envelope e = FS_ENVELOPE_INIT;
    fs__kafka_hdr out[8];
    size_t n = 9;
    assert_int_equal(fs__kafka_wire_headers(&e, false, "c", out, &n), 0);
    assert_int_equal(n, 1); /* a batch item: content-type only when set */
    fs_header bad[] = {{"x", NULL, 0}};
    e.headers = bad;
    e.header_count = 1;
    assert_int_equal(fs__kafka_wire_headers(&e, true, "c", out, &n), FS_EINVAL);
    e.headers = NULL;
    assert_int_equal(fs__kafka_wire_headers(&e, true, "c", out, &n), FS_EINVAL);
}

static void test_pick(void **state)
{
    (void)state;
    /* As librdkafka hands them over: each value NUL-terminated after its bytes. */
    fs_header in[] = {{"content-type", "", 0},
                      {"correlation_id", "abc", 3},
                      {"reply_to", "r", 1},
                      {"bin", "a\0b", 3},
                      {"reply_to", "r2", 2}};
    fs__kafka_in f;
    fs__kafka_wire_pick(in, 5, &f);
    assert_null(f.content_type);                     /* "" is none */
    assert_ptr_equal(f.correlation_id, in[1].value); /* no copy */
    assert_string_equal(f.reply_to, "r2");           /* the last wins */
    fs_header ct[] = {{"content-type", "text/plain", 10}, {"x", "", 0}};
    fs__kafka_wire_pick(ct, 2, &f);
    assert_string_equal(f.content_type, "text/plain");
    assert_null(f.correlation_id);
    assert_null(f.reply_to);
    fs__kafka_wire_pick(NULL, 0, &f);
    assert_null(f.content_type);
}

static void test_ids(void **state)
{
    (void)state;
    char b[64];
    fs__kafka_message_id(b, sizeof b, 42, 1700000000123);
    assert_string_equal(b, "42-1700000000123");
    assert_int_equal(fs__kafka_message_id(b, sizeof b, 0, 0), 3);
    assert_string_equal(b, "0-0");
    fs__kafka_message_id(b, sizeof b, 9223372036854775807LL, -1);
    assert_string_equal(b, "9223372036854775807--1");
    assert_int_equal(fs__kafka_message_id(b, 5, 123456, 7), 8); /* truncated, length as snprintf */
    assert_string_equal(b, "1234");
    fs__kafka_batch_message_id(b, sizeof b, 1, 5, 7);
    assert_string_equal(b, "1-5-7");
    char u1[37], u2[37];
    fs__kafka_uuid4(u1);
    fs__kafka_uuid4(u2);
    assert_int_equal(strlen(u1), 36);
    assert_int_equal(u1[14], '4');
    assert_string_not_equal(u1, u2);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_headers_single),
        cmocka_unit_test(test_headers_batch_and_errors),
        cmocka_unit_test(test_pick),
        cmocka_unit_test(test_ids),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
