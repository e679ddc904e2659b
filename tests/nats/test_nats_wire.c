/*
 * FastStream's NATS headers both ways on nats.c messages (no server), the
 * JetStream ack-subject metadata and subject checks.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "brokers/nats/wire.h"

#include <string.h>

static natsMsg *roundtrip(const fs_envelope *env, bool js, fs__nats_hdrs *h, fs_message *m)
{
    natsMsg *msg = NULL;
    assert_int_equal(fs__nats_encode("orders.created", js ? NULL : "_INBOX.x", env, js, &msg),
                     FS_OK);
    fs_message_init(m);
    assert_int_equal(fs__nats_decode(msg, js, h, m), FS_OK);
    return msg;
}

static void test_core_headers(void **state)
{
    (void)state;
    fs_header extra[] = {{.name = "x-tenant", .value = "acme"}};
    fs_envelope env = FS_ENVELOPE_INIT;
    env.body = "{\"id\":1}";
    env.body_len = 8;
    env.content_type = "application/json";
    env.correlation_id = "cid-1";
    env.message_id = "mid-1";
    env.reply_to = "ignored.on.core";
    env.headers = extra;
    env.header_count = 1;
    fs__nats_hdrs h = {0};
    fs_message m;
    natsMsg *msg = roundtrip(&env, false, &h, &m);
    assert_int_equal(m.body_len, 8);
    assert_memory_equal(m.body, "{\"id\":1}", 8);
    assert_string_equal(m.source, "orders.created");
    assert_string_equal(m.content_type, "application/json");
    assert_string_equal(m.correlation_id, "cid-1");
    assert_null(m.message_id);                   /* core: no Nats-Msg-Id, as FastStream */
    assert_string_equal(m.reply_to, "_INBOX.x"); /* core: the NATS reply subject */
    const char *v = NULL;
    assert_int_equal(natsMsgHeader_Get(msg, "x-tenant", &v), NATS_OK);
    assert_string_equal(v, "acme");
    assert_int_equal(natsMsgHeader_Get(msg, "reply_to", &v), NATS_NOT_FOUND);
    assert_int_equal(m.header_count, 3);
    natsMsg_Destroy(msg);
    fs__nats_hdrs_free(&h);
}

static void test_js_headers(void **state)
{
    (void)state;
    fs_envelope env = FS_ENVELOPE_INIT;
    env.body = "x";
    env.body_len = 1;
    env.message_id = "order-7";
    env.reply_to = "_INBOX.reply";
    fs__nats_hdrs h = {0};
    fs_message m;
    natsMsg *msg = roundtrip(&env, true, &h, &m);
    const char *v = NULL;
    assert_int_equal(natsMsgHeader_Get(msg, "Nats-Msg-Id", &v), NATS_OK);
    assert_string_equal(v, "order-7");
    /* nats.c 3.4.1 cannot read an empty value: no content type, no header */
    assert_int_equal(natsMsgHeader_Get(msg, "content-type", &v), NATS_NOT_FOUND);
    assert_null(m.content_type);
    assert_string_equal(m.message_id, "order-7");    /* from Nats-Msg-Id */
    assert_string_equal(m.reply_to, "_INBOX.reply"); /* JetStream: from the header */
    assert_null(m.correlation_id);
    natsMsg_Destroy(msg);
    fs__nats_hdrs_free(&h);
}

static void test_message_id_header_wins(void **state)
{
    (void)state;
    natsMsg *msg = NULL;
    assert_int_equal(natsMsg_Create(&msg, "a", NULL, NULL, 0), NATS_OK);
    natsMsgHeader_Set(msg, "Nats-Msg-Id", "n1");
    natsMsgHeader_Set(msg, "message_id", "m1");
    fs__nats_hdrs h = {0};
    fs_message m;
    fs_message_init(&m);
    assert_int_equal(fs__nats_decode(msg, true, &h, &m), FS_OK);
    assert_string_equal(m.message_id, "m1");
    assert_int_equal(m.body_len, 0);
    assert_non_null(m.body);
    natsMsg_Destroy(msg);
    fs__nats_hdrs_free(&h);
}

/* What FastStream writes without a content type, as nats.c 3.4.1 reads it back. */
static void test_empty_value_repaired(void **state)
{
    (void)state;
    natsMsg *msg = NULL;
    assert_int_equal(natsMsg_Create(&msg, "a", NULL, "b", 1), NATS_OK);
    /* The same state nats.c's reader leaves: the next line taken as the value. */
    natsMsgHeader_Set(msg, "content-type", "correlation_id: abc");
    natsMsgHeader_Set(msg, "x", "1");
    natsMsgHeader_Set(msg, "plain", "text/plain; q: 1"); /* a value with ': ' after a space stays */
    fs__nats_hdrs h = {0};
    fs_message m;
    fs_message_init(&m);
    assert_int_equal(fs__nats_decode(msg, false, &h, &m), FS_OK);
    assert_null(m.content_type);
    assert_string_equal(m.correlation_id, "abc");
    assert_int_equal(m.header_count, 4);
    bool plain = false;
    for (size_t i = 0; i < m.header_count; i++)
        if (strcmp(m.headers[i].name, "plain") == 0)
            plain = strcmp(m.headers[i].value, "text/plain; q: 1") == 0;
    assert_true(plain);
    natsMsg_Destroy(msg);
    fs__nats_hdrs_free(&h);
}

static void test_no_headers(void **state)
{
    (void)state;
    natsMsg *msg = NULL;
    assert_int_equal(natsMsg_Create(&msg, "a.b", NULL, "hi", 2), NATS_OK);
    fs__nats_hdrs h = {0};
    fs_message m;
    fs_message_init(&m);
    assert_int_equal(fs__nats_decode(msg, false, &h, &m), FS_OK);
    assert_int_equal(m.header_count, 0);
    assert_null(m.reply_to);
    natsMsg_Destroy(msg);
    fs__nats_hdrs_free(&h);
}

static void test_bad_headers(void **state)
{
    (void)state;
    fs_header bad_name[] = {{.name = "a b", .value = "v"}};
    fs_header colon[] = {{.name = "a:b", .value = "v"}};
    fs_header crlf[] = {{.name = "ok", .value = "x\r\ny"}};
    fs_header *cases[] = {bad_name, colon, crlf};
    for (int i = 0; i < 3; i++) {
        fs_envelope env = FS_ENVELOPE_INIT;
        env.headers = cases[i];
        env.header_count = 1;
        natsMsg *msg = NULL;
        assert_int_equal(fs__nats_encode("s", NULL, &env, false, &msg), FS_EINVAL);
        assert_null(msg);
        assert_non_null(strstr(fs_last_error(), "nats: header"));
    }
}

/* nats.c's own constructor of a received message (exported, not in nats.h). */
natsStatus natsMsg_create(natsMsg **newMsg, const char *subject, int subjLen, const char *reply,
                          int replyLen, const char *buf, int bufLen, int hdrLen);

/* A message as nats.c builds it from the socket: header block, then body. */
static natsMsg *received(const char *reply, const char *hdr, const char *body)
{
    char buf[512];
    size_t hl = strlen(hdr), bl = strlen(body);
    assert_true(hl + bl < sizeof buf);
    memcpy(buf, hdr, hl);
    memcpy(buf + hl, body, bl);
    natsMsg *msg = NULL;
    assert_int_equal(natsMsg_create(&msg, "orders.in", 9, reply, reply ? (int)strlen(reply) : 0,
                                    buf, (int)(hl + bl), hl ? (int)hl : -1),
                     NATS_OK);
    return msg;
}

/* The header block read where it lies: wire order, empty values, nats.c's view kept. */
static void test_received_block(void **state)
{
    (void)state;
    const char *hdr = "NATS/1.0\r\ncontent-type: \r\ncorrelation_id: abc\r\nx:  spaced \t \r\n"
                      "correlation_id: second\r\nreply_to: _INBOX.r\r\nNats-Msg-Id: n1\r\n"
                      "url: http://a:b\r\n\r\n";
    natsMsg *msg = received("$JS.ACK.S.c.1.2.3.1700000000000000000.0", hdr, "{}");
    size_t len = 0;
    assert_ptr_equal(fs__nats_raw_headers(msg, &len), natsMsg_GetData(msg) - strlen(hdr) - 1);
    assert_int_equal(len, strlen(hdr));
    fs__nats_hdrs h = {0};
    fs_message m;
    fs_message_init(&m);
    assert_int_equal(fs__nats_decode(msg, true, &h, &m), FS_OK);
    assert_int_equal(m.header_count, 7);
    static const char *const names[] = {"content-type", "correlation_id", "x",  "correlation_id",
                                        "reply_to",     "Nats-Msg-Id",    "url"};
    static const char *const values[] = {"",         "abc", "spaced",    "second",
                                         "_INBOX.r", "n1",  "http://a:b"};
    for (size_t i = 0; i < 7; i++) {
        assert_string_equal(m.headers[i].name, names[i]);
        assert_string_equal(m.headers[i].value, values[i]);
        assert_int_equal(m.headers[i].value_len, strlen(values[i]));
    }
    assert_null(m.content_type);                  /* "" is none */
    assert_string_equal(m.correlation_id, "abc"); /* the first of a repeated name */
    assert_string_equal(m.reply_to, "_INBOX.r");
    assert_string_equal(m.message_id, "n1");
    assert_int_equal(m.body_len, 2);
    /* nats.c's block is untouched: its own API still reads it */
    const char *v = NULL;
    assert_int_equal(natsMsgHeader_Get(msg, "x", &v), NATS_OK);
    assert_string_equal(v, "spaced");
    assert_null(fs__nats_raw_headers(msg, &len)); /* parsed by nats.c now */
    fs_message_init(&m);
    assert_int_equal(fs__nats_decode(msg, true, &h, &m), FS_OK); /* through nats.c's API */
    assert_string_equal(m.reply_to, "_INBOX.r");
    assert_string_equal(m.message_id, "n1");
    natsMsg_Destroy(msg);
    fs__nats_hdrs_free(&h);
}

/* What only nats.c's parser reads goes to it: a status line, a folded line, a local message. */
static void test_received_fallbacks(void **state)
{
    (void)state;
    fs__nats_hdrs h = {0};
    fs_message m;
    const char *v = NULL;

    natsMsg *msg = received(NULL, "NATS/1.0 100 Idle Heartbeat\r\nk: v\r\n\r\n", "b");
    fs_message_init(&m);
    assert_int_equal(fs__nats_decode(msg, false, &h, &m), FS_OK);
    bool status = false;
    for (size_t i = 0; i < m.header_count; i++)
        status |=
            strcmp(m.headers[i].name, "Status") == 0 && strcmp(m.headers[i].value, "100") == 0;
    assert_true(status);
    natsMsg_Destroy(msg);

    msg = received(NULL, "NATS/1.0\r\ncorrelation_id: a\r\n b\r\n\r\n", "b");
    fs_message_init(&m);
    assert_int_equal(fs__nats_decode(msg, false, &h, &m), FS_OK);
    assert_string_equal(m.correlation_id, "a b");
    natsMsg_Destroy(msg);

    msg = received(NULL, "", "no headers");
    size_t len;
    assert_null(fs__nats_raw_headers(msg, &len));
    fs_message_init(&m);
    assert_int_equal(fs__nats_decode(msg, false, &h, &m), FS_OK);
    assert_int_equal(m.header_count, 0);
    assert_int_equal(m.body_len, 10);
    natsMsg_Destroy(msg);

    assert_int_equal(natsMsg_Create(&msg, "a", "r", "NATS/1.0\r\n\r\n", 12), NATS_OK);
    assert_int_equal(natsMsgHeader_Set(msg, "correlation_id", "c"), NATS_OK);
    assert_null(fs__nats_raw_headers(msg, &len)); /* a body that looks like a block is a body */
    fs_message_init(&m);
    assert_int_equal(fs__nats_decode(msg, false, &h, &m), FS_OK);
    assert_string_equal(m.correlation_id, "c");
    assert_int_equal(natsMsgHeader_Get(msg, "correlation_id", &v), NATS_OK);
    natsMsg_Destroy(msg);
    fs__nats_hdrs_free(&h);
}

/* The message's header block is exactly `want`. */
static void assert_block(natsMsg *msg, const char *want)
{
    size_t len = 0;
    const char *raw = fs__nats_raw_headers(msg, &len);
    assert_non_null(raw);
    assert_int_equal(len, strlen(want));
    assert_memory_equal(raw, want, len);
}

/* An envelope with a body and headers. */
static fs_envelope envelope(const char *body, fs_header *headers, size_t count)
{
    fs_envelope env = FS_ENVELOPE_INIT;
    env.body = body;
    env.body_len = strlen(body);
    env.headers = headers;
    env.header_count = count;
    return env;
}

/* A core publish's header block, written by the adapter: the lines nats.c writes, in order. */
static void test_core_block(void **state)
{
    (void)state;
    fs_header extra[] = {{.name = "x-b", .value = "2"},
                         {.name = "content-type", .value = "replaced"},
                         {.name = "x-b", .value = ""},
                         {.name = "x-a", .value = "1"}};
    fs_envelope env = envelope("body", extra, 4);
    env.content_type = "application/json";
    env.correlation_id = "cid";
    natsMsg *msg = NULL;
    assert_int_equal(fs__nats_encode("a.b", "_INBOX.1", &env, false, &msg), FS_OK);
    assert_block(msg, "NATS/1.0\r\nx-b: 2\r\nx-b: \r\nx-a: 1\r\n"
                      "content-type: application/json\r\ncorrelation_id: cid\r\n\r\n");
    assert_string_equal(natsMsg_GetSubject(msg), "a.b");
    assert_string_equal(natsMsg_GetReply(msg), "_INBOX.1");
    assert_int_equal(natsMsg_GetDataLength(msg), 4);
    assert_memory_equal(natsMsg_GetData(msg), "body", 4);
    /* nats.c's own reading of it (its empty-value bug takes "x-a: 1" for the second x-b) */
    const char *v = NULL;
    assert_int_equal(natsMsgHeader_Get(msg, "content-type", &v), NATS_OK);
    assert_string_equal(v, "application/json");
    assert_int_equal(natsMsgHeader_Get(msg, "correlation_id", &v), NATS_OK);
    assert_string_equal(v, "cid");
    natsMsg_Destroy(msg);

    /* no headers at all: no block */
    fs_envelope bare = envelope("b", NULL, 0);
    size_t len = 0;
    assert_int_equal(fs__nats_encode("a", NULL, &bare, false, &msg), FS_OK);
    assert_null(fs__nats_raw_headers(msg, &len));
    assert_int_equal(natsMsg_GetDataLength(msg), 1);
    natsMsg_Destroy(msg);

    /* JetStream: reply_to, Nats-Msg-Id and the expected stream in the block too */
    fs_header user[] = {{.name = "Nats-Expected-Stream", .value = "other"}};
    fs_envelope js = envelope("j", user, 1);
    js.reply_to = "_INBOX.r";
    js.message_id = "m-1";
    assert_int_equal(fs__nats_encode_js("a", &js, "ORDERS", &msg), FS_OK);
    assert_block(msg, "NATS/1.0\r\nreply_to: _INBOX.r\r\nNats-Msg-Id: m-1\r\n"
                      "Nats-Expected-Stream: ORDERS\r\n\r\n");
    assert_null(natsMsg_GetReply(msg)); /* JetStream: the reply subject is the PubAck's */
    assert_int_equal(natsMsgHeader_Get(msg, "Nats-Expected-Stream", &v), NATS_OK);
    assert_string_equal(v, "ORDERS");
    natsMsg_Destroy(msg);

    /* a header NATS cannot carry is refused on the block path too */
    fs_header bad[] = {{.name = "ok", .value = "x\ny"}};
    env.headers = bad;
    env.header_count = 1;
    assert_int_equal(fs__nats_encode("a", NULL, &env, false, &msg), FS_EINVAL);
    assert_null(msg);
    env.headers = NULL;
    env.header_count = 0;
    env.correlation_id = "a\rb";
    assert_int_equal(fs__nats_encode("a", NULL, &env, false, &msg), FS_EINVAL);
    assert_null(msg);
}

static void test_js_meta(void **state)
{
    (void)state;
    uint32_t d = 0;
    int64_t ts = 0;
    assert_true(fs__nats_js_meta("$JS.ACK.ORDERS.billing.3.17.12.1700000000123456789.5", &d, &ts));
    assert_int_equal(d, 3);
    assert_int_equal(ts, 1700000000123);
    assert_true(fs__nats_js_meta(
        "$JS.ACK.dom.acchash.ORDERS.billing.2.17.12.1700000000999000000.0.rnd", &d, &ts));
    assert_int_equal(d, 2);
    assert_int_equal(ts, 1700000000999);
    assert_true(fs__nats_js_meta("$JS.ACK.S.c.12.1.1.9876543210123456.0", &d, &ts));
    assert_int_equal(d, 12);
    assert_int_equal(ts, 9876543210); /* 16 digits: two 8-digit chunks */
    assert_false(fs__nats_js_meta("$JS.ACK.S.c.1.1.1.12345x78901234567.0", &d, &ts));
    assert_false(fs__nats_js_meta("_INBOX.abc", &d, &ts));
    assert_false(fs__nats_js_meta("$JS.ACK.a.b.x.1.1.1.1", &d, &ts));
    assert_false(fs__nats_js_meta(NULL, &d, &ts));
}

static void test_subjects(void **state)
{
    (void)state;
    assert_int_equal(fs__nats_check_subject("orders.*.created", true, "t"), FS_OK);
    assert_int_equal(fs__nats_check_subject("orders.>", true, "t"), FS_OK);
    assert_int_equal(fs__nats_check_subject("orders.>", false, "t"), FS_EINVAL);
    assert_int_equal(fs__nats_check_subject("orders.>.x", true, "t"), FS_EINVAL);
    assert_int_equal(fs__nats_check_subject("orders..x", true, "t"), FS_EINVAL);
    assert_int_equal(fs__nats_check_subject("orders.", true, "t"), FS_EINVAL);
    assert_int_equal(fs__nats_check_subject("a b", true, "t"), FS_EINVAL);
    assert_int_equal(fs__nats_check_subject("", true, "t"), FS_EINVAL);
    assert_int_equal(fs__nats_check_subject("or*ders", false, "t"),
                     FS_OK); /* not a wildcard token */
}

int main(void)
{
    nats_Open(-1); /* nats.c's messages need the library initialised */
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_core_headers),
        cmocka_unit_test(test_js_headers),
        cmocka_unit_test(test_message_id_header_wins),
        cmocka_unit_test(test_no_headers),
        cmocka_unit_test(test_empty_value_repaired),
        cmocka_unit_test(test_received_block),
        cmocka_unit_test(test_received_fallbacks),
        cmocka_unit_test(test_core_block),
        cmocka_unit_test(test_bad_headers),
        cmocka_unit_test(test_js_meta),
        cmocka_unit_test(test_subjects),
    };
    int failed = cmocka_run_group_tests(tests, NULL, NULL);
    nats_Close();
    return failed;
}
