/*
 * The RabbitMQ adapter's codec: fs_envelope -> AMQP basic properties (with
 * the headers table) as FastStream writes them, and received properties ->
 * the strings of an fs_message (headers of any field type in a string
 * form). Pure functions on rabbitmq-c's types; no I/O, no threads.
 */
#ifndef FS_RABBITMQ_WIRE_H
#define FS_RABBITMQ_WIRE_H

#include "faststream/publisher.h"
#include "faststream/rabbitmq.h"
#include "kit/buffer.h"

#include <amqp.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/*
 * The frames of one basic.publish (the method, the content header, body
 * frames of at most frame_max - 8 bytes), the bytes rabbitmq-c's
 * amqp_basic_publish sends, in `out` (replaced): one write instead of its
 * three. The method's arguments and the property list are rabbitmq-c's own
 * encoding (amqp_encode_method, amqp_encode_properties); only the frames
 * around them are written here. FS_OK, FS_ENOMEM, or FS_EINVAL when
 * rabbitmq-c's encoders refuse them (a short string over 255 bytes, a field
 * kind it does not know) or the property list takes more than
 * FS_RMQ_PROPS_ROOM bytes (or frame_max - 20): publish through
 * amqp_basic_publish then, which reports what it reports.
 */
#define FS_RMQ_PROPS_ROOM 16384
int fs__rmq_publish_frames(fs_kit_buf *out, amqp_channel_t ch, amqp_bytes_t exchange,
                           amqp_bytes_t routing_key, bool mandatory,
                           const amqp_basic_properties_t *p, amqp_bytes_t body, size_t frame_max);

/* Appending to a kit buffer (the strings of one delivery), by offset: */
/* the offset where the bytes start, or (size_t)-1 when out of memory. */
size_t fs__rmq_buf_put(fs_kit_buf *b, const void *p, size_t n);
/* The bytes and a NUL after them (part of the content); offset or (size_t)-1. */
size_t fs__rmq_buf_str(fs_kit_buf *b, const void *p, size_t n);

/*
 * Fill `*p` for publishing `e` with options `po` (may be NULL). `tbl` must
 * hold e->header_count entries. `cid` receives a generated uuid4 when the
 * envelope has no correlation id (FastStream always sends one).
 * `now_s` is the timestamp property (FastStream sets it to now).
 * FS_OK or FS_EINVAL (NULL header name or value: a message is recorded).
 */
int fs__rmq_props_encode(const fs_envelope *e, const fs_rabbitmq_publish_options *po,
                         amqp_basic_properties_t *p, amqp_table_entry_t *tbl, char cid[37],
                         int64_t now_s);

/* What fs__rmq_props_decode found: offsets into the buffer ((size_t)-1: absent). */
typedef struct fs__rmq_decoded {
    size_t content_type, correlation_id, message_id, reply_to;
    size_t header_count;
    /* (name offset, value offset, value length) per header: 3 * header_count entries */
    size_t *hdr_off;
    size_t hdr_cap;
    int64_t x_delivery_count; /* the quorum queues' header, or -1 */
    int64_t timestamp_s;      /* 0 when absent */
} fs__rmq_decoded;

/*
 * Copy the strings of received properties into `buf` (appending) and record
 * where they are. Header values of every AMQP field type get a string form:
 * strings and bytes as they are, numbers in decimal, booleans as
 * "true"/"false", tables and arrays as JSON. FS_OK or FS_ENOMEM.
 */
int fs__rmq_props_decode(const amqp_basic_properties_t *p, fs_kit_buf *buf, fs__rmq_decoded *out);

/* The string form of one field value, appended to `buf` (no NUL). FS_OK or FS_ENOMEM. */
int fs__rmq_field_string(const amqp_field_value_t *v, fs_kit_buf *buf);

/* A uuid4 string, as FastStream's gen_cor_id(). */
void fs__rmq_uuid4(char out[37]);

/*
 * Split FastStream's reply_to "queue|exchange" into its routing key and
 * exchange (borrowed from `reply_to`; the exchange is empty without '|').
 */
void fs__rmq_reply_split(const char *reply_to, amqp_bytes_t *routing_key, amqp_bytes_t *exchange);

/*
 * Where a publish, request or reply to `destination` goes (borrowed from
 * `destination` and `po`): with options, their exchange ("" or NULL: the
 * default exchange) and `destination` as the routing key; without,
 * "queue|exchange" split as a reply_to.
 */
void fs__rmq_target(const char *destination, const fs_rabbitmq_publish_options *po,
                    amqp_bytes_t *exchange, amqp_bytes_t *routing_key);

/*
 * The destination label of that publish, FastStream's
 * "{exchange or 'default'}.{routing_key}", written into buf (cap bytes,
 * truncated to fit); returns buf.
 */
const char *fs__rmq_destination_label(const char *destination,
                                      const fs_rabbitmq_publish_options *po, char *buf, size_t cap);

/* aio-pika's / aiormq's exception name for an AMQP reply code ("ChannelNotFoundEntity"...). */
const char *fs__rmq_code_type(int reply_code);

#endif
