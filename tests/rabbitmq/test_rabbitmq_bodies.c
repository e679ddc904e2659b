/*
 * Bodies of every size through both ways of writing a publish against the
 * real server: the adapter's own frames (TCP, bodies up to 64 KiB, cut at
 * frame_max - 8 bytes: several body frames with frame_max=4096) and
 * rabbitmq-c's amqp_basic_publish (larger bodies). The server accepts every
 * frame (a bad one would close the connection) and a raw consumer reads
 * back the same body, headers and properties.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "rabbitmq_test.h"

#include <stdlib.h>

static void publish_and_read_back(const char *query, const size_t *sizes, size_t n)
{
    char url[192], q[96];
    qt_url(url, sizeof url);
    strncat(url, query, sizeof url - strlen(url) - 1);
    qt_name(q, sizeof q, "bodies");
    fs_broker *b;
    assert_int_equal(fs_broker_new(url, NULL, &b), FS_OK);
    assert_int_equal(fs_broker_connect(b), FS_OK);
    fs_rabbitmq_queue dq = FS_RABBITMQ_QUEUE_INIT;
    dq.name = q;
    assert_int_equal(fs_rabbitmq_declare(b, NULL, &dq), FS_OK);
    amqp_connection_state_t raw = qt_raw();
    static const fs_header hs[] = {{"x-tenant", "acme", 0}, {"x-bin", "a\0b", 3}};
    for (size_t i = 0; i < n; i++) {
        char *body = malloc(sizes[i] + 1);
        assert_non_null(body);
        for (size_t k = 0; k < sizes[i]; k++)
            body[k] = (char)('a' + (k * 7 + i) % 26);
        fs_envelope e = FS_ENVELOPE_INIT;
        e.body = body;
        e.body_len = sizes[i];
        e.headers = hs;
        e.header_count = 2;
        e.content_type = "text/plain";
        e.correlation_id = "corr-1";
        assert_int_equal(fs_publish(b, q, &e), FS_OK);
        amqp_message_t m;
        assert_true(qt_get(raw, q, &m, 5000));
        assert_int_equal(m.body.len, sizes[i]);
        if (sizes[i])
            assert_memory_equal(m.body.bytes, body, sizes[i]);
        char v[64];
        assert_string_equal(qt_hdr(&m, "x-tenant", v, sizeof v), "acme");
        assert_true(qt_bytes_eq(m.properties.content_type, "text/plain"));
        assert_true(qt_bytes_eq(m.properties.correlation_id, "corr-1"));
        assert_true(qt_bytes_eq(m.properties.message_id, "corr-1"));
        amqp_destroy_message(&m);
        free(body);
    }
    qt_raw_close(raw);
    fs_broker_free(b);
    qt_delete_queue(q);
}

static void bodies_of_every_size(void **state)
{
    (void)state;
    static const size_t sizes[] = {0, 1, 64, 4088, 4089, 10000, 65536, 65537, 300000};
    publish_and_read_back("", sizes, sizeof sizes / sizeof *sizes);
    publish_and_read_back("?frame_max=4096", sizes, sizeof sizes / sizeof *sizes);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(bodies_of_every_size),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
