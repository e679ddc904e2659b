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

static void test_decode(void **state)
{
    (void)state;
    fs__kafka_hdr in[] = {{"content-type", "", 0},
                          {"correlation_id", "abc", 3},
                          {"reply_to", "r", 1},
                          {"bin", "a\0b", 3}};
    fs__kafka_arena a = {0};
    const char *v[4];
    fs__kafka_in f;
    assert_int_equal(fs__kafka_wire_decode(in, 4, &a, v, &f), 0);
    assert_null(f.content_type); /* "" is none */
    assert_string_equal(f.correlation_id, "abc");
    assert_string_equal(f.reply_to, "r");
    assert_string_equal(v[3], "a"); /* NUL-terminated copy */
    assert_int_equal(v[3][2], 'b');
    fs__kafka_hdr ct[] = {{"content-type", "text/plain", 10}};
    assert_int_equal(fs__kafka_wire_decode(ct, 1, &a, v, &f), 0);
    assert_string_equal(f.content_type, "text/plain");
    assert_null(f.correlation_id);
    fs__kafka_arena_free(&a);
}

static void test_ids(void **state)
{
    (void)state;
    char b[64];
    fs__kafka_message_id(b, sizeof b, 42, 1700000000123);
    assert_string_equal(b, "42-1700000000123");
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
        cmocka_unit_test(test_decode),
        cmocka_unit_test(test_ids),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
