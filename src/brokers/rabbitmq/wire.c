/*
 * The RabbitMQ adapter's codec (see wire.h).
 */
#include "wire.h"

#include "faststream/adapter.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define NPOS ((size_t)-1)

size_t fs__rmq_buf_put(fs_kit_buf *b, const void *p, size_t n)
{
    size_t at = b->len;
    return fs_kit_buf_put(b, p, n) ? NPOS : at;
}

size_t fs__rmq_buf_str(fs_kit_buf *b, const void *p, size_t n)
{
    size_t at = b->len;
    if (fs_kit_buf_reserve(b, n + 1))
        return NPOS;
    if (n)
        memcpy(b->data + at, p, n);
    b->data[at + n] = '\0';
    b->len = at + n + 1;
    b->data[b->len] = '\0';
    return at;
}

/* ------------------------------------------------------------------------ */
/* Encoding                                                                 */

static amqp_bytes_t bytes_of(const char *s)
{
    amqp_bytes_t b = {strlen(s), (void *)s};
    return b;
}

int fs__rmq_props_encode(const fs_envelope *e, const fs_rabbitmq_publish_options *po,
                         amqp_basic_properties_t *p, amqp_table_entry_t *tbl, char cid[37],
                         int64_t now_s)
{
    memset(p, 0, sizeof *p);
    if (e->header_count && !e->headers)
        return fs_adapter_error(FS_EINVAL, "rabbitmq: publish: NULL headers");
    for (size_t i = 0; i < e->header_count; i++) {
        const fs_header *h = &e->headers[i];
        if (!h->name || !h->value || !*h->name)
            return fs_adapter_error(FS_EINVAL,
                                    "rabbitmq: publish: header %zu has an empty name or a NULL "
                                    "value",
                                    i);
        tbl[i].key = bytes_of(h->name);
        tbl[i].value.kind = AMQP_FIELD_KIND_UTF8;
        tbl[i].value.value.bytes =
            (amqp_bytes_t){h->value_len ? h->value_len : strlen(h->value), (void *)h->value};
    }
    p->_flags =
        AMQP_BASIC_CORRELATION_ID_FLAG | AMQP_BASIC_DELIVERY_MODE_FLAG | AMQP_BASIC_TIMESTAMP_FLAG;
    if (e->header_count) {
        p->_flags |= AMQP_BASIC_HEADERS_FLAG;
        p->headers.num_entries = (int)e->header_count;
        p->headers.entries = tbl;
    }
    if (e->correlation_id) {
        p->correlation_id = bytes_of(e->correlation_id);
    } else {
        fs__rmq_uuid4(cid);
        p->correlation_id = (amqp_bytes_t){36, cid};
    }
    if (e->content_type) {
        p->_flags |= AMQP_BASIC_CONTENT_TYPE_FLAG;
        p->content_type = bytes_of(e->content_type);
    }
    /* FastStream: message_id defaults to the correlation id. */
    p->_flags |= AMQP_BASIC_MESSAGE_ID_FLAG;
    p->message_id = e->message_id ? bytes_of(e->message_id) : p->correlation_id;
    if (e->reply_to) {
        p->_flags |= AMQP_BASIC_REPLY_TO_FLAG;
        p->reply_to = bytes_of(e->reply_to);
    }
    p->delivery_mode = po && po->persist ? 2 : 1;
    p->timestamp = (uint64_t)now_s;
    if (po) {
        if (po->priority) {
            p->_flags |= AMQP_BASIC_PRIORITY_FLAG;
            p->priority = po->priority;
        }
        if (po->expiration) {
            p->_flags |= AMQP_BASIC_EXPIRATION_FLAG;
            p->expiration = bytes_of(po->expiration);
        }
        if (po->type) {
            p->_flags |= AMQP_BASIC_TYPE_FLAG;
            p->type = bytes_of(po->type);
        }
        if (po->user_id) {
            p->_flags |= AMQP_BASIC_USER_ID_FLAG;
            p->user_id = bytes_of(po->user_id);
        }
        if (po->app_id) {
            p->_flags |= AMQP_BASIC_APP_ID_FLAG;
            p->app_id = bytes_of(po->app_id);
        }
    }
    return FS_OK;
}

/* ------------------------------------------------------------------------ */
/* The frames of basic.publish                                              */

/* The arguments of basic.publish at most: ticket, two short strings, the bits. */
#define PUBLISH_ARGS_MAX (2 + 256 + 256 + 1)

static uint8_t *put16(uint8_t *w, uint32_t v)
{
    w[0] = (uint8_t)(v >> 8);
    w[1] = (uint8_t)v;
    return w + 2;
}

static uint8_t *put32(uint8_t *w, uint32_t v)
{
    w[0] = (uint8_t)(v >> 24);
    w[1] = (uint8_t)(v >> 16);
    w[2] = (uint8_t)(v >> 8);
    w[3] = (uint8_t)v;
    return w + 4;
}

/*
 * The envelope of the frame at w whose payload (`size` bytes at w + 7) is
 * written: its type, channel and size before, the frame-end byte after.
 * Returns where the next frame starts.
 */
static uint8_t *frame_around(uint8_t *w, uint8_t type, amqp_channel_t ch, size_t size)
{
    w[0] = type;
    put32(put16(w + 1, ch), (uint32_t)size);
    w[7 + size] = AMQP_FRAME_END;
    return w + 8 + size;
}

int fs__rmq_publish_frames(fs_kit_buf *out, amqp_channel_t ch, amqp_bytes_t exchange,
                           amqp_bytes_t routing_key, bool mandatory,
                           const amqp_basic_properties_t *p, amqp_bytes_t body, size_t frame_max)
{
    if (frame_max <= 8 + 12)
        return FS_EINVAL;
    /* Each frame's payload fits in frame_max - 8 bytes (rabbitmq-c's own limit). */
    size_t chunk = frame_max - 8;
    size_t nbody = (body.len + chunk - 1) / chunk;
    size_t mroom = chunk - 4 < PUBLISH_ARGS_MAX ? chunk - 4 : PUBLISH_ARGS_MAX;
    size_t proom = chunk - 12 < FS_RMQ_PROPS_ROOM ? chunk - 12 : FS_RMQ_PROPS_ROOM;
    out->len = 0;
    if (fs_kit_buf_reserve(out, 8 + 4 + mroom + 8 + 12 + proom + 8 * nbody + body.len))
        return FS_ENOMEM;
    uint8_t *w = (uint8_t *)out->data;
    /* The method frame: the method's number, then its arguments by rabbitmq-c. */
    amqp_basic_publish_t m = {0, exchange, routing_key, mandatory, 0}; /* immediate: never */
    int n = amqp_encode_method(AMQP_BASIC_PUBLISH_METHOD, &m, (amqp_bytes_t){mroom, w + 11});
    if (n < 0)
        return FS_EINVAL;
    put32(w + 7, AMQP_BASIC_PUBLISH_METHOD);
    w = frame_around(w, AMQP_FRAME_METHOD, ch, 4 + (size_t)n);
    /* The content header: class, weight 0, body size, then the properties by rabbitmq-c. */
    n = amqp_encode_properties(AMQP_BASIC_CLASS, (amqp_basic_properties_t *)p,
                               (amqp_bytes_t){proom, w + 19});
    if (n < 0)
        return FS_EINVAL;
    put32(put32(put16(put16(w + 7, AMQP_BASIC_CLASS), 0), (uint32_t)((uint64_t)body.len >> 32)),
          (uint32_t)body.len);
    w = frame_around(w, AMQP_FRAME_HEADER, ch, 12 + (size_t)n);
    /* The body frames (none for an empty body, as amqp_basic_publish). */
    for (size_t off = 0; off < body.len; off += chunk) {
        size_t k = body.len - off < chunk ? body.len - off : chunk;
        memcpy(w + 7, (const char *)body.bytes + off, k);
        w = frame_around(w, AMQP_FRAME_BODY, ch, k);
    }
    out->len = (size_t)(w - (uint8_t *)out->data);
    return FS_OK;
}

/* ------------------------------------------------------------------------ */
/* Decoding                                                                 */

static int put_json_string(fs_kit_buf *b, const void *p, size_t n)
{
    static const char hex[] = "0123456789abcdef";
    const unsigned char *s = p;
    if (fs__rmq_buf_put(b, "\"", 1) == NPOS)
        return FS_ENOMEM;
    for (size_t i = 0; i < n; i++) {
        char esc[6] = {'\\', 'u', '0', '0', hex[s[i] >> 4], hex[s[i] & 15]};
        size_t r;
        if (s[i] == '"' || s[i] == '\\')
            r = fs__rmq_buf_put(b, (char[]){'\\', (char)s[i]}, 2);
        else if (s[i] < 0x20)
            r = fs__rmq_buf_put(b, esc, 6);
        else
            r = fs__rmq_buf_put(b, &s[i], 1);
        if (r == NPOS)
            return FS_ENOMEM;
    }
    return fs__rmq_buf_put(b, "\"", 1) == NPOS ? FS_ENOMEM : FS_OK;
}

static int field_string(const amqp_field_value_t *v, fs_kit_buf *b, bool json, int depth);

static int put_fmt(fs_kit_buf *b, const char *fmt, ...) FS_PRINTF(2, 3);
static int put_fmt(fs_kit_buf *b, const char *fmt, ...)
{
    char tmp[64];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(tmp, sizeof tmp, fmt, ap);
    va_end(ap);
    if (n < 0)
        n = 0;
    return fs__rmq_buf_put(b, tmp, (size_t)n < sizeof tmp ? (size_t)n : sizeof tmp - 1) == NPOS
               ? FS_ENOMEM
               : FS_OK;
}

static int table_json(const amqp_table_t *t, fs_kit_buf *b, int depth)
{
    if (fs__rmq_buf_put(b, "{", 1) == NPOS)
        return FS_ENOMEM;
    for (int i = 0; i < t->num_entries; i++) {
        int rc = i ? (fs__rmq_buf_put(b, ",", 1) == NPOS ? FS_ENOMEM : FS_OK) : FS_OK;
        if (!rc)
            rc = put_json_string(b, t->entries[i].key.bytes, t->entries[i].key.len);
        if (!rc)
            rc = fs__rmq_buf_put(b, ":", 1) == NPOS ? FS_ENOMEM : FS_OK;
        if (!rc)
            rc = field_string(&t->entries[i].value, b, true, depth + 1);
        if (rc)
            return rc;
    }
    return fs__rmq_buf_put(b, "}", 1) == NPOS ? FS_ENOMEM : FS_OK;
}

static int field_string(const amqp_field_value_t *v, fs_kit_buf *b, bool json, int depth)
{
    if (depth > 32)
        return put_fmt(b, "null");
    switch (v->kind) {
    case AMQP_FIELD_KIND_UTF8:
    case AMQP_FIELD_KIND_BYTES:
        if (json)
            return put_json_string(b, v->value.bytes.bytes, v->value.bytes.len);
        return fs__rmq_buf_put(b, v->value.bytes.bytes, v->value.bytes.len) == NPOS ? FS_ENOMEM
                                                                                    : FS_OK;
    case AMQP_FIELD_KIND_BOOLEAN:
        return put_fmt(b, "%s", v->value.boolean ? "true" : "false");
    case AMQP_FIELD_KIND_I8:
        return put_fmt(b, "%d", (int)v->value.i8);
    case AMQP_FIELD_KIND_U8:
        return put_fmt(b, "%u", (unsigned)v->value.u8);
    case AMQP_FIELD_KIND_I16:
        return put_fmt(b, "%d", (int)v->value.i16);
    case AMQP_FIELD_KIND_U16:
        return put_fmt(b, "%u", (unsigned)v->value.u16);
    case AMQP_FIELD_KIND_I32:
        return put_fmt(b, "%" PRId32, v->value.i32);
    case AMQP_FIELD_KIND_U32:
        return put_fmt(b, "%" PRIu32, v->value.u32);
    case AMQP_FIELD_KIND_I64:
        return put_fmt(b, "%" PRId64, v->value.i64);
    case AMQP_FIELD_KIND_U64:
    case AMQP_FIELD_KIND_TIMESTAMP:
        return put_fmt(b, "%" PRIu64, v->value.u64);
    case AMQP_FIELD_KIND_F32:
        return put_fmt(b, "%.9g", (double)v->value.f32);
    case AMQP_FIELD_KIND_F64:
        return put_fmt(b, "%.17g", v->value.f64);
    case AMQP_FIELD_KIND_DECIMAL: {
        /* value / 10^decimals */
        uint32_t val = v->value.decimal.value;
        unsigned d = v->value.decimal.decimals;
        if (!d || d > 9)
            return put_fmt(b, "%" PRIu32, val);
        uint32_t p10 = 1;
        for (unsigned i = 0; i < d; i++)
            p10 *= 10;
        return put_fmt(b, "%" PRIu32 ".%0*" PRIu32, val / p10, (int)d, val % p10);
    }
    case AMQP_FIELD_KIND_VOID:
        return json ? put_fmt(b, "null") : FS_OK;
    case AMQP_FIELD_KIND_ARRAY: {
        if (fs__rmq_buf_put(b, "[", 1) == NPOS)
            return FS_ENOMEM;
        for (int i = 0; i < v->value.array.num_entries; i++) {
            if (i && fs__rmq_buf_put(b, ",", 1) == NPOS)
                return FS_ENOMEM;
            int rc = field_string(&v->value.array.entries[i], b, true, depth + 1);
            if (rc)
                return rc;
        }
        return fs__rmq_buf_put(b, "]", 1) == NPOS ? FS_ENOMEM : FS_OK;
    }
    case AMQP_FIELD_KIND_TABLE:
        return table_json(&v->value.table, b, depth);
    default:
        return FS_OK;
    }
}

int fs__rmq_field_string(const amqp_field_value_t *v, fs_kit_buf *buf)
{
    return field_string(v, buf, false, 0);
}

static size_t put_prop(fs_kit_buf *b, const amqp_basic_properties_t *p, amqp_flags_t flag,
                       amqp_bytes_t v, int *rc)
{
    if (!(p->_flags & flag))
        return NPOS;
    size_t at = fs__rmq_buf_str(b, v.bytes, v.len);
    if (at == NPOS)
        *rc = FS_ENOMEM;
    return at;
}

static int64_t field_int(const amqp_field_value_t *v)
{
    switch (v->kind) {
    case AMQP_FIELD_KIND_I8:
        return v->value.i8;
    case AMQP_FIELD_KIND_U8:
        return v->value.u8;
    case AMQP_FIELD_KIND_I16:
        return v->value.i16;
    case AMQP_FIELD_KIND_U16:
        return v->value.u16;
    case AMQP_FIELD_KIND_I32:
        return v->value.i32;
    case AMQP_FIELD_KIND_U32:
        return v->value.u32;
    case AMQP_FIELD_KIND_I64:
        return v->value.i64;
    case AMQP_FIELD_KIND_U64:
        return (int64_t)v->value.u64;
    default:
        return -1;
    }
}

int fs__rmq_props_decode(const amqp_basic_properties_t *p, fs_kit_buf *b, fs__rmq_decoded *out)
{
    int rc = FS_OK;
    out->content_type = put_prop(b, p, AMQP_BASIC_CONTENT_TYPE_FLAG, p->content_type, &rc);
    out->correlation_id = put_prop(b, p, AMQP_BASIC_CORRELATION_ID_FLAG, p->correlation_id, &rc);
    out->message_id = put_prop(b, p, AMQP_BASIC_MESSAGE_ID_FLAG, p->message_id, &rc);
    out->reply_to = put_prop(b, p, AMQP_BASIC_REPLY_TO_FLAG, p->reply_to, &rc);
    out->timestamp_s = (p->_flags & AMQP_BASIC_TIMESTAMP_FLAG) ? (int64_t)p->timestamp : 0;
    out->header_count = 0;
    out->x_delivery_count = -1;
    if (rc || !(p->_flags & AMQP_BASIC_HEADERS_FLAG) || p->headers.num_entries <= 0)
        return rc;
    size_t n = (size_t)p->headers.num_entries;
    if ((rc = fs_kit_grow((void **)&out->hdr_off, &out->hdr_cap, 3 * n, sizeof *out->hdr_off)))
        return rc;
    for (size_t i = 0; i < n; i++) {
        const amqp_table_entry_t *e = &p->headers.entries[i];
        size_t k = fs__rmq_buf_str(b, e->key.bytes, e->key.len);
        if (k == NPOS)
            return FS_ENOMEM;
        size_t v = b->len;
        if ((rc = fs__rmq_field_string(&e->value, b)))
            return rc;
        size_t vlen = b->len - v;
        if (fs__rmq_buf_put(b, "", 1) == NPOS)
            return FS_ENOMEM;
        out->hdr_off[3 * out->header_count] = k;
        out->hdr_off[3 * out->header_count + 1] = v;
        out->hdr_off[3 * out->header_count + 2] = vlen;
        out->header_count++;
        if (e->key.len == 16 && !memcmp(e->key.bytes, "x-delivery-count", 16))
            out->x_delivery_count = field_int(&e->value);
    }
    return FS_OK;
}

/* ------------------------------------------------------------------------ */
/* Helpers                                                                  */

void fs__rmq_uuid4(char out[37])
{
    fs_adapter_uuid4(out);
}

void fs__rmq_reply_split(const char *reply_to, amqp_bytes_t *routing_key, amqp_bytes_t *exchange)
{
    const char *bar = strchr(reply_to, '|');
    if (!bar) {
        *routing_key = bytes_of(reply_to);
        *exchange = amqp_empty_bytes;
        return;
    }
    *routing_key = (amqp_bytes_t){(size_t)(bar - reply_to), (void *)reply_to};
    *exchange = bytes_of(bar + 1);
}

void fs__rmq_target(const char *destination, const fs_rabbitmq_publish_options *po,
                    amqp_bytes_t *exchange, amqp_bytes_t *routing_key)
{
    if (!po) {
        fs__rmq_reply_split(destination, routing_key, exchange); /* "queue|exchange" */
        return;
    }
    *routing_key = bytes_of(destination);
    *exchange = po->exchange && *po->exchange ? bytes_of(po->exchange) : amqp_empty_bytes;
}

const char *fs__rmq_destination_label(const char *destination,
                                      const fs_rabbitmq_publish_options *po, char *buf, size_t cap)
{
    amqp_bytes_t ex, rk;
    fs__rmq_target(destination, po, &ex, &rk);
    if (!ex.len)
        ex = (amqp_bytes_t){7, (void *)"default"};
    if (!cap)
        return buf;
    /* "EXCHANGE.ROUTING_KEY", cut to cap - 1 bytes (on every publish: no snprintf) */
    size_t n = ex.len < cap - 1 ? ex.len : cap - 1;
    memcpy(buf, ex.bytes, n);
    if (n < cap - 1)
        buf[n++] = '.';
    size_t k = rk.len < cap - 1 - n ? rk.len : cap - 1 - n;
    if (k)
        memcpy(buf + n, rk.bytes, k);
    buf[n + k] = '\0';
    return buf;
}

const char *fs__rmq_code_type(int code)
{
    switch (code) {
    case 311:
        return "ChannelContentTooLarge";
    case 313:
        return "ChannelNoConsumers";
    case 403:
        return "ChannelAccessRefused";
    case 404:
        return "ChannelNotFoundEntity";
    case 405:
        return "ChannelLockedResource";
    case 406:
        return "ChannelPreconditionFailed";
    case 320:
        return "ConnectionForced";
    case 402:
        return "ConnectionInvalidPath";
    case 501:
        return "ConnectionFrameError";
    case 502:
        return "ConnectionSyntaxError";
    case 503:
        return "ConnectionCommandInvalid";
    case 504:
        return "ConnectionChannelError";
    case 505:
        return "ConnectionUnexpectedFrame";
    case 506:
        return "ConnectionResourceError";
    case 530:
        return "ConnectionNotAllowed";
    case 540:
        return "ConnectionNotImplemented";
    case 541:
        return "ConnectionInternalError";
    default:
        return "ChannelClosed";
    }
}
