/*
 * AMQP message properties as a RabbitMQ server (or any publisher through
 * it) sends them: the content-header property list, decoded by
 * librabbitmq's amqp_decode_properties, then read by the adapter
 * (fs__rmq_props_decode: every header field type to a string, tables and
 * arrays as JSON). Nothing may crash, leak or read out of bounds, and every
 * recorded offset lies in the buffer. The decoded properties are also
 * published through the adapter's frames (fs__rmq_publish_frames, the input
 * as the body, frame_max 4096 or 131072): the frames around rabbitmq-c's
 * encoding must be whole (types, channel, sizes, frame-end bytes, the
 * content header's class, weight and body size, the body cut at
 * frame_max - 8 bytes), the content header must carry exactly the bytes
 * amqp_encode_properties writes, and a refusal must be one of rabbitmq-c's
 * encoder (or a property list over FS_RMQ_PROPS_ROOM bytes).
 */
#include "fuzz_util.h"
#include "brokers/rabbitmq/wire.h"

#include <amqp_framing.h>
#include <stdlib.h>
#include <string.h>

static uint64_t be(const uint8_t *p, int n)
{
    uint64_t v = 0;
    while (n--)
        v = v << 8 | *p++;
    return v;
}

/* The frame at *at: its type and channel checked, its payload size; *at moves past it. */
static const uint8_t *frame(const fs_kit_buf *b, size_t *at, int type, size_t *len)
{
    const uint8_t *f = (const uint8_t *)b->data + *at;
    FUZZ_CHECK(*at + 8 <= b->len && f[0] == type && be(f + 1, 2) == 1);
    *len = (size_t)be(f + 3, 4);
    FUZZ_CHECK(*at + 8 + *len <= b->len && f[7 + *len] == AMQP_FRAME_END);
    *at += 8 + *len;
    return f + 7;
}

/* The frames of a publish of these properties and this body. */
static void publish_frames(const amqp_basic_properties_t *p, amqp_bytes_t body)
{
    static uint8_t enc[FS_RMQ_PROPS_ROOM];
    size_t frame_max = body.len & 1 ? 4096 : 131072;
    size_t room = frame_max - 20 < sizeof enc ? frame_max - 20 : sizeof enc;
    int k =
        amqp_encode_properties(AMQP_BASIC_CLASS, (void *)(uintptr_t)p, (amqp_bytes_t){room, enc});
    fs_kit_buf out = {0};
    amqp_bytes_t rk = {2, (void *)"rk"};
    int rc = fs__rmq_publish_frames(&out, 1, amqp_empty_bytes, rk, false, p, body, frame_max);
    FUZZ_CHECK(rc == FS_OK || (rc == FS_EINVAL && k < 0));
    if (rc == FS_OK) {
        size_t at = 0, n;
        const uint8_t *m = frame(&out, &at, AMQP_FRAME_METHOD, &n);
        FUZZ_CHECK(n == 4 + 2 + 1 + 1 + 2 + 1 && be(m, 4) == AMQP_BASIC_PUBLISH_METHOD);
        const uint8_t *h = frame(&out, &at, AMQP_FRAME_HEADER, &n);
        FUZZ_CHECK(k > 0 && n == 12 + (size_t)k && be(h, 2) == AMQP_BASIC_CLASS &&
                   be(h + 2, 2) == 0 && be(h + 4, 8) == body.len);
        FUZZ_CHECK(memcmp(h + 12, enc, (size_t)k) == 0);
        size_t got = 0;
        while (at < out.len) {
            const uint8_t *d = frame(&out, &at, AMQP_FRAME_BODY, &n);
            FUZZ_CHECK(n && (n == frame_max - 8 || got + n == body.len));
            FUZZ_CHECK(memcmp(d, (const uint8_t *)body.bytes + got, n) == 0);
            got += n;
        }
        FUZZ_CHECK(got == body.len);
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
        publish_frames(decoded, in);
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
