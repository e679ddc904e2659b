/*
 * The RabbitMQ codec without a server: envelope -> basic properties as
 * FastStream writes them, received properties (every field type) -> the
 * strings of a message, reply_to "queue|exchange", reply-code names.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "brokers/rabbitmq/wire.h"
#include "faststream/adapter.h"

#include <amqp_framing.h>
#include <stdlib.h>
#include <string.h>

static bool eq(amqp_bytes_t b, const char *s)
{
    return b.len == strlen(s) && memcmp(b.bytes, s, b.len) == 0;
}

static void encode_defaults(void **state)
{
    (void)state;
    fs_envelope e = FS_ENVELOPE_INIT;
    e.body = "x";
    e.body_len = 1;
    amqp_basic_properties_t p;
    amqp_table_entry_t t[1];
    char cid[37];
    assert_int_equal(fs__rmq_props_encode(&e, NULL, &p, t, cid, 1700000000), FS_OK);
    assert_true(p._flags & AMQP_BASIC_CORRELATION_ID_FLAG);
    assert_int_equal(p.correlation_id.len, 36);
    assert_int_equal(cid[14], '4'); /* uuid4 */
    assert_true(p._flags & AMQP_BASIC_MESSAGE_ID_FLAG);
    assert_true(p.message_id.bytes == p.correlation_id.bytes);
    assert_int_equal(p.delivery_mode, 1);
    assert_int_equal(p.timestamp, 1700000000);
    assert_false(p._flags & AMQP_BASIC_HEADERS_FLAG);
    assert_false(p._flags & AMQP_BASIC_CONTENT_TYPE_FLAG);
    assert_false(p._flags & AMQP_BASIC_PRIORITY_FLAG);
}

/* An envelope with every property FastStream sets, and every publish option. */
static void everything(fs_envelope *e, fs_rabbitmq_publish_options *po, const fs_header *h,
                       size_t nh)
{
    *e = (fs_envelope)FS_ENVELOPE_INIT;
    e->headers = h;
    e->header_count = nh;
    e->content_type = "application/json";
    e->correlation_id = "c";
    e->message_id = "m";
    e->reply_to = "r|x";
    *po = (fs_rabbitmq_publish_options)FS_RABBITMQ_PUBLISH_OPTIONS_INIT;
    po->persist = true;
    po->priority = 3;
    po->expiration = "1000";
    po->type = "t";
    po->user_id = "guest";
    po->app_id = "app";
}

static void encode_everything(void **state)
{
    (void)state;
    fs_header h[] = {{"a", "1", 0}, {"b", "two", 0}};
    fs_envelope e;
    fs_rabbitmq_publish_options po;
    everything(&e, &po, h, 2);
    amqp_basic_properties_t p;
    amqp_table_entry_t t[2];
    char cid[37];
    assert_int_equal(fs__rmq_props_encode(&e, &po, &p, t, cid, 5), FS_OK);
    assert_true(eq(p.content_type, "application/json"));
    assert_true(eq(p.correlation_id, "c"));
    assert_true(eq(p.message_id, "m"));
    assert_true(eq(p.reply_to, "r|x"));
    assert_int_equal(p.delivery_mode, 2);
    assert_int_equal(p.priority, 3);
    assert_true(eq(p.expiration, "1000"));
    assert_true(eq(p.type, "t"));
    assert_true(eq(p.user_id, "guest"));
    assert_true(eq(p.app_id, "app"));
    assert_int_equal(p.headers.num_entries, 2);
    assert_true(eq(p.headers.entries[1].key, "b"));
    assert_int_equal(p.headers.entries[1].value.kind, AMQP_FIELD_KIND_UTF8);
    assert_true(eq(p.headers.entries[1].value.value.bytes, "two"));
    fs_header bad[] = {{"", "x", 0}};
    e.headers = bad;
    e.header_count = 1;
    assert_int_equal(fs__rmq_props_encode(&e, &po, &p, t, cid, 5), FS_EINVAL);
}

static const char *hv(const fs_kit_buf *b, const fs__rmq_decoded *d, const char *name)
{
    for (size_t i = 0; i < d->header_count; i++)
        if (!strcmp(b->data + d->hdr_off[3 * i], name))
            return b->data + d->hdr_off[3 * i + 1];
    return NULL;
}

static void decode_every_field_type(void **state)
{
    (void)state;
    amqp_field_value_t arr[2];
    arr[0].kind = AMQP_FIELD_KIND_I8;
    arr[0].value.i8 = -1;
    arr[1].kind = AMQP_FIELD_KIND_UTF8;
    arr[1].value.bytes = amqp_cstring_bytes("q\"s");
    amqp_table_entry_t inner[1];
    inner[0].key = amqp_cstring_bytes("k");
    inner[0].value.kind = AMQP_FIELD_KIND_BOOLEAN;
    inner[0].value.value.boolean = 0;
    amqp_table_entry_t e[9];
    int n = 0;
    e[n].key = amqp_cstring_bytes("s");
    e[n].value.kind = AMQP_FIELD_KIND_UTF8;
    e[n++].value.value.bytes = amqp_cstring_bytes("str");
    e[n].key = amqp_cstring_bytes("i32");
    e[n].value.kind = AMQP_FIELD_KIND_I32;
    e[n++].value.value.i32 = -7;
    e[n].key = amqp_cstring_bytes("u64");
    e[n].value.kind = AMQP_FIELD_KIND_U64;
    e[n++].value.value.u64 = 18446744073709551615ull;
    e[n].key = amqp_cstring_bytes("t");
    e[n].value.kind = AMQP_FIELD_KIND_BOOLEAN;
    e[n++].value.value.boolean = 1;
    e[n].key = amqp_cstring_bytes("f");
    e[n].value.kind = AMQP_FIELD_KIND_F64;
    e[n++].value.value.f64 = 0.5;
    e[n].key = amqp_cstring_bytes("dec");
    e[n].value.kind = AMQP_FIELD_KIND_DECIMAL;
    e[n].value.value.decimal.decimals = 2;
    e[n++].value.value.decimal.value = 12345;
    e[n].key = amqp_cstring_bytes("arr");
    e[n].value.kind = AMQP_FIELD_KIND_ARRAY;
    e[n].value.value.array.num_entries = 2;
    e[n++].value.value.array.entries = arr;
    e[n].key = amqp_cstring_bytes("tbl");
    e[n].value.kind = AMQP_FIELD_KIND_TABLE;
    e[n].value.value.table.num_entries = 1;
    e[n++].value.value.table.entries = inner;
    e[n].key = amqp_cstring_bytes("x-delivery-count");
    e[n].value.kind = AMQP_FIELD_KIND_I64;
    e[n++].value.value.i64 = 3;
    amqp_basic_properties_t p;
    memset(&p, 0, sizeof p);
    p._flags = AMQP_BASIC_HEADERS_FLAG | AMQP_BASIC_CONTENT_TYPE_FLAG |
               AMQP_BASIC_CORRELATION_ID_FLAG | AMQP_BASIC_TIMESTAMP_FLAG;
    p.headers.num_entries = n;
    p.headers.entries = e;
    p.content_type = amqp_cstring_bytes("text/plain");
    p.correlation_id = amqp_cstring_bytes("cid");
    p.timestamp = 99;
    fs_kit_buf b = {0};
    fs__rmq_decoded d;
    memset(&d, 0, sizeof d);
    assert_int_equal(fs__rmq_props_decode(&p, &b, &d), FS_OK);
    assert_string_equal(b.data + d.content_type, "text/plain");
    assert_string_equal(b.data + d.correlation_id, "cid");
    assert_true(d.message_id == (size_t)-1);
    assert_true(d.reply_to == (size_t)-1);
    assert_int_equal(d.timestamp_s, 99);
    assert_int_equal(d.header_count, (size_t)n);
    assert_string_equal(hv(&b, &d, "s"), "str");
    assert_string_equal(hv(&b, &d, "i32"), "-7");
    assert_string_equal(hv(&b, &d, "u64"), "18446744073709551615");
    assert_string_equal(hv(&b, &d, "t"), "true");
    assert_string_equal(hv(&b, &d, "f"), "0.5");
    assert_string_equal(hv(&b, &d, "dec"), "123.45");
    assert_string_equal(hv(&b, &d, "arr"), "[-1,\"q\\\"s\"]");
    assert_string_equal(hv(&b, &d, "tbl"), "{\"k\":false}");
    assert_int_equal(d.x_delivery_count, 3);
    fs_kit_buf_free(&b);
    free(d.hdr_off);
}

static void reply_to_split_and_codes(void **state)
{
    (void)state;
    amqp_bytes_t rk, ex;
    fs__rmq_reply_split("queue|exchange", &rk, &ex);
    assert_true(eq(rk, "queue"));
    assert_true(eq(ex, "exchange"));
    fs__rmq_reply_split("amq.rabbitmq.reply-to.abc", &rk, &ex);
    assert_true(eq(rk, "amq.rabbitmq.reply-to.abc"));
    assert_int_equal(ex.len, 0);
    assert_string_equal(fs__rmq_code_type(404), "ChannelNotFoundEntity");
    assert_string_equal(fs__rmq_code_type(406), "ChannelPreconditionFailed");
    assert_string_equal(fs__rmq_code_type(999), "ChannelClosed");
    char a[37], b2[37];
    fs__rmq_uuid4(a);
    fs__rmq_uuid4(b2);
    assert_int_equal(strlen(a), 36);
    assert_string_not_equal(a, b2);
}

/* FastStream's "{exchange or 'default'}.{routing_key}", from where the publish goes. */
static void destination_labels(void **state)
{
    (void)state;
    char buf[FS_DESTINATION_LABEL_MAX];
    fs_rabbitmq_publish_options po = FS_RABBITMQ_PUBLISH_OPTIONS_INIT;
    assert_string_equal(fs__rmq_destination_label("orders", &po, buf, sizeof buf),
                        "default.orders");
    po.exchange = "";
    assert_string_equal(fs__rmq_destination_label("orders", &po, buf, sizeof buf),
                        "default.orders");
    po.exchange = "shop";
    assert_string_equal(fs__rmq_destination_label("order.created", &po, buf, sizeof buf),
                        "shop.order.created");
    po.exchange = "shop"; /* with options, '|' is part of the routing key */
    assert_string_equal(fs__rmq_destination_label("a|b", &po, buf, sizeof buf), "shop.a|b");
    /* without options: a reply_to, "queue|exchange" */
    assert_string_equal(fs__rmq_destination_label("replies", NULL, buf, sizeof buf),
                        "default.replies");
    assert_string_equal(fs__rmq_destination_label("replies|rpc", NULL, buf, sizeof buf),
                        "rpc.replies");
    amqp_bytes_t ex, rk;
    fs__rmq_target("replies|rpc", NULL, &ex, &rk);
    assert_true(eq(ex, "rpc") && eq(rk, "replies"));
    fs__rmq_target("k", &po, &ex, &rk);
    assert_true(eq(ex, "shop") && eq(rk, "k"));
    /* 255-byte names (AMQP's limit) fit; longer ones are cut, NUL-terminated */
    char name[300];
    memset(name, 'n', sizeof name - 1);
    name[sizeof name - 1] = '\0';
    po.exchange = name;
    const char *l = fs__rmq_destination_label(name, &po, buf, sizeof buf);
    assert_int_equal(strlen(l), sizeof buf - 1);
    name[255] = '\0';
    l = fs__rmq_destination_label(name, &po, buf, sizeof buf);
    assert_int_equal(strlen(l), 255 + 1 + 255);
}

/* One frame at *at: its type, channel and payload; *at moves past it. */
static const uint8_t *frame_at(const fs_kit_buf *b, size_t *at, int type, size_t *len)
{
    const uint8_t *f = (const uint8_t *)b->data + *at;
    assert_true(*at + 8 <= b->len);
    assert_int_equal(f[0], type);
    assert_int_equal((f[1] << 8) | f[2], 7); /* the channel */
    *len = ((size_t)f[3] << 24) | ((size_t)f[4] << 16) | ((size_t)f[5] << 8) | f[6];
    assert_true(*at + 8 + *len <= b->len);
    assert_int_equal(f[7 + *len], AMQP_FRAME_END);
    *at += 8 + *len;
    return f + 7;
}

static uint64_t be(const uint8_t *p, int n)
{
    uint64_t v = 0;
    while (n--)
        v = v << 8 | *p++;
    return v;
}

/*
 * The frames around rabbitmq-c's encoding of basic.publish: a method frame
 * with the method's number, a content header with class, weight and the
 * 8-byte body size, body frames of at most frame_max - 8 bytes; what the
 * payloads carry read back with rabbitmq-c's decoders.
 */
static void publish_frames_envelope(void **state)
{
    (void)state;
    fs_header h[] = {{"x-tenant", "acme", 0}, {"b", "two", 0}, {"bin", "a\0b", 3}};
    fs_envelope e;
    fs_rabbitmq_publish_options po;
    everything(&e, &po, h, 3);
    amqp_table_entry_t t[3];
    char cid[37];
    static char body[10000], big[FS_RMQ_PROPS_ROOM];
    memset(body, 'b', sizeof body);
    amqp_pool_t pool;
    init_amqp_pool(&pool, 4096);
    for (int variant = 0; variant < 2; variant++) {
        amqp_basic_properties_t p;
        assert_int_equal(fs__rmq_props_encode(&e, variant ? NULL : &po, &p, t, cid, 1700000000),
                         FS_OK);
        fs_kit_buf out = {0};
        amqp_bytes_t ex = amqp_cstring_bytes(variant ? "" : "ex"), rk = amqp_cstring_bytes("rk");
        size_t frame_max = variant ? 131072 : 4104; /* body frames of 4096, 4096, 1808 */
        assert_int_equal(fs__rmq_publish_frames(&out, 7, ex, rk, !variant, &p,
                                                (amqp_bytes_t){sizeof body, body}, frame_max),
                         FS_OK);
        size_t at = 0, n;
        const uint8_t *m = frame_at(&out, &at, AMQP_FRAME_METHOD, &n);
        assert_int_equal(be(m, 4), AMQP_BASIC_PUBLISH_METHOD);
        void *dec = NULL;
        assert_int_equal(amqp_decode_method(AMQP_BASIC_PUBLISH_METHOD, &pool,
                                            (amqp_bytes_t){n - 4, (void *)(m + 4)}, &dec),
                         AMQP_STATUS_OK);
        amqp_basic_publish_t *bp = dec;
        assert_true(eq(bp->exchange, variant ? "" : "ex") && eq(bp->routing_key, "rk"));
        assert_int_equal(bp->mandatory, !variant);
        assert_int_equal(bp->immediate, 0);
        assert_int_equal(bp->ticket, 0);
        assert_int_equal(n, 4 + 2 + 1 + bp->exchange.len + 1 + 2 + 1); /* nothing after */
        const uint8_t *hd = frame_at(&out, &at, AMQP_FRAME_HEADER, &n);
        assert_int_equal(be(hd, 2), AMQP_BASIC_CLASS);
        assert_int_equal(be(hd + 2, 2), 0);                  /* weight */
        assert_int_equal(be(hd + 4, 8), sizeof body);        /* body size */
        assert_int_equal(be(hd + 12, 2), p._flags & 0xffff); /* the property flags first */
        assert_int_equal(amqp_decode_properties(AMQP_BASIC_CLASS, &pool,
                                                (amqp_bytes_t){n - 12, (void *)(hd + 12)}, &dec),
                         AMQP_STATUS_OK);
        const amqp_basic_properties_t *q = dec;
        assert_int_equal(q->_flags, p._flags);
        assert_true(eq(q->content_type, "application/json") && eq(q->correlation_id, "c") &&
                    eq(q->message_id, "m") && eq(q->reply_to, "r|x"));
        assert_int_equal(q->delivery_mode, variant ? 1 : 2);
        assert_int_equal(q->timestamp, 1700000000);
        if (!variant)
            assert_true(q->priority == 3 && eq(q->expiration, "1000") && eq(q->app_id, "app"));
        assert_int_equal(q->headers.num_entries, 3);
        assert_true(eq(q->headers.entries[0].key, "x-tenant"));
        assert_true(eq(q->headers.entries[0].value.value.bytes, "acme"));
        assert_int_equal(q->headers.entries[2].value.value.bytes.len, 3);
        assert_memory_equal(q->headers.entries[2].value.value.bytes.bytes, "a\0b", 3);
        size_t got = 0;
        while (at < out.len) {
            const uint8_t *bd = frame_at(&out, &at, AMQP_FRAME_BODY, &n);
            assert_true(n == frame_max - 8 || got + n == sizeof body);
            assert_memory_equal(bd, body + got, n);
            got += n;
        }
        assert_int_equal(got, sizeof body);
        /* rabbitmq-c's encoder refuses a 256-byte exchange: rabbitmq-c publishes (and reports) */
        char longs[300];
        memset(longs, 'k', sizeof longs);
        assert_int_equal(fs__rmq_publish_frames(&out, 7, (amqp_bytes_t){256, longs}, rk, false, &p,
                                                (amqp_bytes_t){0, NULL}, frame_max),
                         FS_EINVAL);
        /* any field kind rabbitmq-c encodes */
        t[0].value.kind = AMQP_FIELD_KIND_I32;
        t[0].value.value.i32 = -5;
        assert_int_equal(
            fs__rmq_publish_frames(&out, 7, ex, rk, false, &p, (amqp_bytes_t){0, NULL}, frame_max),
            FS_OK);
        at = 0;
        frame_at(&out, &at, AMQP_FRAME_METHOD, &n);
        hd = frame_at(&out, &at, AMQP_FRAME_HEADER, &n);
        assert_int_equal(amqp_decode_properties(AMQP_BASIC_CLASS, &pool,
                                                (amqp_bytes_t){n - 12, (void *)(hd + 12)}, &dec),
                         AMQP_STATUS_OK);
        q = dec;
        assert_int_equal(q->headers.entries[0].value.kind, AMQP_FIELD_KIND_I32);
        assert_int_equal(q->headers.entries[0].value.value.i32, -5);
        assert_int_equal(at, out.len); /* an empty body: no body frame, as amqp_basic_publish */
        /* a property list over the room (or the frame): amqp_basic_publish takes it */
        t[0].value.kind = AMQP_FIELD_KIND_UTF8;
        t[0].value.value.bytes = (amqp_bytes_t){variant ? sizeof big : frame_max, big};
        assert_int_equal(
            fs__rmq_publish_frames(&out, 7, ex, rk, false, &p, (amqp_bytes_t){0, NULL}, frame_max),
            FS_EINVAL);
        t[0].value.value.bytes = amqp_cstring_bytes("acme");
        fs_kit_buf_free(&out);
        empty_amqp_pool(&pool);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(destination_labels),       cmocka_unit_test(encode_defaults),
        cmocka_unit_test(encode_everything),        cmocka_unit_test(decode_every_field_type),
        cmocka_unit_test(reply_to_split_and_codes), cmocka_unit_test(publish_frames_envelope),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
