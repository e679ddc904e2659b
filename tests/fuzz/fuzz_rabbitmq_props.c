/*
 * AMQP message properties as a RabbitMQ server (or any publisher through
 * it) sends them: the content-header property list, decoded by
 * librabbitmq's amqp_decode_properties, then read by the adapter
 * (fs__rmq_props_decode: every header field type to a string, tables and
 * arrays as JSON). Nothing may crash, leak or read out of bounds, and every
 * recorded offset lies in the buffer. The decoded properties are also
 * published through the adapter's own frame encoder (fs__rmq_publish_frames):
 * when it takes them, its content header carries exactly the bytes
 * librabbitmq's amqp_encode_properties writes.
 */
#include "fuzz_util.h"
#include "brokers/rabbitmq/wire.h"

#include <amqp_framing.h>
#include <stdlib.h>
#include <string.h>

/* Ours against librabbitmq's encoding of the same properties. */
static void same_encoding(const amqp_basic_properties_t *p)
{
    static uint8_t enc[1 << 17];
    fs_kit_buf out = {0};
    amqp_bytes_t rk = {2, (void *)"rk"}, body = {3, (void *)"abc"};
    if (fs__rmq_publish_frames(&out, 1, amqp_empty_bytes, rk, false, p, body, 131072) == FS_OK) {
        int k = amqp_encode_properties(AMQP_BASIC_CLASS, (void *)(uintptr_t)p,
                                       (amqp_bytes_t){sizeof enc, enc});
        const uint8_t *w = (const uint8_t *)out.data;
        size_t method = 8 + ((size_t)w[5] << 8 | w[6]); /* its payload is short */
        const uint8_t *h = w + method;
        size_t hlen = (size_t)h[3] << 24 | (size_t)h[4] << 16 | (size_t)h[5] << 8 | h[6];
        FUZZ_CHECK(k > 0 && h[0] == AMQP_FRAME_HEADER && hlen == 12 + (size_t)k);
        FUZZ_CHECK(memcmp(h + 7 + 12, enc, (size_t)k) == 0);
    }
    fs_kit_buf_free(&out);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    amqp_pool_t pool;
    init_amqp_pool(&pool, 4096);
    amqp_bytes_t in = {size, (void *)(uintptr_t)data};
    void *decoded = NULL;
    if (amqp_decode_properties(AMQP_BASIC_CLASS, &pool, in, &decoded) == AMQP_STATUS_OK &&
        decoded) {
        same_encoding(decoded);
        fs_kit_buf buf = {0};
        fs__rmq_decoded d = {0};
        if (fs__rmq_props_decode(decoded, &buf, &d) == FS_OK) {
            size_t offs[] = {d.content_type, d.correlation_id, d.message_id, d.reply_to};
            for (size_t i = 0; i < 4; i++)
                FUZZ_CHECK(offs[i] == (size_t)-1 || offs[i] < buf.len || buf.len == 0);
            for (size_t i = 0; i < d.header_count; i++)
                FUZZ_CHECK(d.hdr_off[3 * i] <= buf.len && d.hdr_off[3 * i + 1] <= buf.len &&
                           d.hdr_off[3 * i + 2] <= buf.len - d.hdr_off[3 * i + 1]);
        }
        free(d.hdr_off);
        fs_kit_buf_free(&buf);
    }
    empty_amqp_pool(&pool);
    return 0;
}
