/*
 * AMQP message properties as a RabbitMQ server (or any publisher through
 * it) sends them: the content-header property list, decoded by
 * librabbitmq's amqp_decode_properties, then read by the adapter
 * (fs__rmq_props_decode: every header field type to a string, tables and
 * arrays as JSON). Nothing may crash, leak or read out of bounds, and every
 * recorded offset lies in the buffer.
 */
#include "brokers/rabbitmq/wire.h"

#include <amqp_framing.h>
#include <assert.h>
#include <stdlib.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    amqp_pool_t pool;
    init_amqp_pool(&pool, 4096);
    amqp_bytes_t in = {size, (void *)(uintptr_t)data};
    void *decoded = NULL;
    if (amqp_decode_properties(AMQP_BASIC_CLASS, &pool, in, &decoded) == AMQP_STATUS_OK &&
        decoded) {
        fs_kit_buf buf = {0};
        fs__rmq_decoded d = {0};
        if (fs__rmq_props_decode(decoded, &buf, &d) == FS_OK) {
            size_t offs[] = {d.content_type, d.correlation_id, d.message_id, d.reply_to};
            for (size_t i = 0; i < 4; i++)
                assert(offs[i] == (size_t)-1 || offs[i] < buf.len || buf.len == 0);
            for (size_t i = 0; i < d.header_count; i++)
                assert(d.hdr_off[3 * i] <= buf.len && d.hdr_off[3 * i + 1] <= buf.len &&
                       d.hdr_off[3 * i + 2] <= buf.len - d.hdr_off[3 * i + 1]);
        }
        free(d.hdr_off);
        fs_kit_buf_free(&buf);
    }
    empty_amqp_pool(&pool);
    return 0;
}
