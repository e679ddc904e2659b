/*
 * FastStream's Redis message formats, both directions, without a server.
 *
 * The expected bytes are built here from the formats' definitions
 * (faststream/redis/parser/binary.py and json.py), independently of the
 * encoder: a reference reader for the binary layout, byte-exact JSON texts.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "brokers/redis/wire.h"
#include "faststream_ref.h"

/* Short names for the reference helpers. */
typedef ref_bytes bytes;
#define b_raw ref_raw
#define b_u16 ref_u16
#define b_u32 ref_u32
#define b_str ref_str
#define faststream_binary ref_binary

static void assert_header(const fs__redis_decoded *d, const char *key, const char *value)
{
    size_t n;
    const char *v = fs__redis_header(d, key, &n);
    assert_non_null(v);
    assert_int_equal(n, strlen(value));
    assert_memory_equal(v, value, n);
}

static void assert_body(const fs__redis_decoded *d, const void *body, size_t len)
{
    assert_int_equal(d->body_len, len);
    if (len)
        assert_memory_equal(d->body, body, len);
}

/* The encoder's scratch, reused by every test as a connection reuses its own. */
static fs__redis_scratch enc_scratch;

static int free_enc_scratch(void **state)
{
    (void)state;
    fs__redis_scratch_free(&enc_scratch);
    return 0;
}

/* ---- encoding ---- */

static void encode_binary_is_faststream_layout(void **state)
{
    (void)state;
    fs__redis_kv user[] = {{"x-tenant", 8, "acme", 4}, {"attempt", 7, "3", 1}};
    fs__redis_envelope env = {.body = "{\"id\":7}",
                              .body_len = 8,
                              .correlation_id = "c-1",
                              .reply_to = "replies",
                              .content_type = "application/json",
                              .headers = user,
                              .header_count = 2};
    fs_kit_buf out = {0};
    assert_int_equal(fs__redis_encode(FS_REDIS_FORMAT_BINARY, &env, &enc_scratch, &out), FS_OK);

    /* byte-exact against the definition */
    bytes want;
    const char *pairs[] = {"correlation_id",
                           "c-1",
                           "content-type",
                           "application/json",
                           "reply_to",
                           "replies",
                           "x-tenant",
                           "acme",
                           "attempt",
                           "3",
                           NULL};
    faststream_binary(&want, pairs, "{\"id\":7}", 8);
    assert_int_equal(out.len, want.n);
    assert_memory_equal(out.data, want.d, want.n);

    /* and through the reference reader */
    ref_msg m;
    ref_parse(out.data, out.len, &m);
    assert_int_equal(m.count, 5);
    assert_string_equal(m.keys[0], "correlation_id");
    assert_string_equal(m.values[0], "c-1");
    assert_string_equal(m.keys[2], "reply_to");
    assert_string_equal(m.values[2], "replies");
    assert_string_equal(m.keys[4], "attempt");
    assert_int_equal(m.data_len, 8);
    assert_memory_equal(m.data, "{\"id\":7}", 8);
    fs_kit_buf_free(&out);
}

static void encode_binary_minimal_and_binary_body(void **state)
{
    (void)state;
    const unsigned char body[] = {0, 1, 2, 0xff, 0xfe, '\n'};
    fs__redis_envelope env = {.body = body, .body_len = sizeof body};
    fs_kit_buf out = {0};
    assert_int_equal(fs__redis_encode(FS_REDIS_FORMAT_BINARY, &env, &enc_scratch, &out), FS_OK);
    ref_msg m;
    ref_parse(out.data, out.len, &m);
    assert_int_equal(m.count, 1); /* correlation_id is always written */
    assert_string_equal(m.keys[0], "correlation_id");
    assert_string_equal(m.values[0], "");
    assert_int_equal(m.data_len, sizeof body);
    assert_memory_equal(m.data, body, sizeof body);

    /* empty body */
    out.len = 0;
    env.body = NULL;
    env.body_len = 0;
    env.correlation_id = "z";
    assert_int_equal(fs__redis_encode(FS_REDIS_FORMAT_BINARY, &env, &enc_scratch, &out), FS_OK);
    ref_parse(out.data, out.len, &m);
    assert_int_equal(m.data_len, 0);
    assert_string_equal(m.values[0], "z");
    fs_kit_buf_free(&out);
}

static void encode_header_order_follows_dict_update(void **state)
{
    (void)state;
    /* {correlation_id, reply_to}.update(user): existing keys keep their place
     * and take the user's value; new keys append; a repeated key's last value wins. */
    fs__redis_kv user[] = {{"a", 1, "1", 1},
                           {"correlation_id", 14, "mine", 4},
                           {"content-type", 12, "text/plain", 10},
                           {"a", 1, "2", 1}};
    fs__redis_envelope env = {.body = "x",
                              .body_len = 1,
                              .correlation_id = "gen",
                              .reply_to = "r",
                              .headers = user,
                              .header_count = 4};
    fs_kit_buf out = {0};
    assert_int_equal(fs__redis_encode(FS_REDIS_FORMAT_BINARY, &env, &enc_scratch, &out), FS_OK);
    ref_msg m;
    ref_parse(out.data, out.len, &m);
    assert_int_equal(m.count, 4);
    assert_string_equal(m.keys[0], "correlation_id");
    assert_string_equal(m.values[0], "mine");
    assert_string_equal(m.keys[1], "reply_to");
    assert_string_equal(m.keys[2], "a");
    assert_string_equal(m.values[2], "2");
    assert_string_equal(m.keys[3], "content-type");
    assert_string_equal(m.values[3], "text/plain");

    out.len = 0;
    assert_int_equal(fs__redis_encode(FS_REDIS_FORMAT_JSON, &env, &enc_scratch, &out), FS_OK);
    assert_string_equal(out.data, "{\"data\":\"x\",\"headers\":{\"correlation_id\":\"mine\","
                                  "\"reply_to\":\"r\",\"a\":\"2\",\"content-type\":"
                                  "\"text/plain\"}}");
    fs_kit_buf_free(&out);
}

static void encode_json_envelope_exact(void **state)
{
    (void)state;
    const char body[] = "say \"hi\"\\\n\t\x01 caf\xc3\xa9 /";
    fs__redis_kv user[] = {{"k", 1, "v\"", 2}};
    fs__redis_envelope env = {.body = body,
                              .body_len = sizeof body - 1,
                              .correlation_id = "c",
                              .reply_to = "",
                              .headers = user,
                              .header_count = 1};
    fs_kit_buf out = {0};
    assert_int_equal(fs__redis_encode(FS_REDIS_FORMAT_JSON, &env, &enc_scratch, &out), FS_OK);
    assert_string_equal(out.data, "{\"data\":\"say \\\"hi\\\"\\\\\\n\\t\\u0001 caf\xc3\xa9 /\","
                                  "\"headers\":{\"correlation_id\":\"c\",\"k\":\"v\\\"\"}}");
    /* and it decodes back to the same message */
    fs__redis_scratch s = {0};
    fs__redis_decoded d;
    assert_int_equal(fs__redis_decode(out.data, out.len, &s, &d), FS_OK);
    assert_int_equal(d.format, FS_REDIS_FORMAT_JSON);
    assert_body(&d, body, sizeof body - 1);
    assert_header(&d, "k", "v\"");
    assert_header(&d, "correlation_id", "c");
    assert_null(fs__redis_header(&d, "reply_to", NULL));
    fs__redis_scratch_free(&s);
    fs_kit_buf_free(&out);
}

static void encode_refuses_what_the_format_cannot_carry(void **state)
{
    (void)state;
    fs_kit_buf out = {0};
    fs__redis_envelope env = {.body = "\xff\xfe", .body_len = 2};
    assert_int_equal(fs__redis_encode(FS_REDIS_FORMAT_JSON, &env, &enc_scratch, &out), FS_EINVAL);
    assert_non_null(strstr(fs_last_error(), "UTF-8"));
    assert_int_equal(out.len, 0);

    static char big[70000];
    memset(big, 'a', sizeof big);
    fs__redis_kv h = {"big", 3, big, sizeof big};
    fs__redis_envelope env2 = {.body = "x", .body_len = 1, .headers = &h, .header_count = 1};
    assert_int_equal(fs__redis_encode(FS_REDIS_FORMAT_BINARY, &env2, &enc_scratch, &out),
                     FS_EINVAL);
    fs__redis_kv bad = {"k", 1, "\xc3", 1};
    env2.headers = &bad;
    assert_int_equal(fs__redis_encode(FS_REDIS_FORMAT_BINARY, &env2, &enc_scratch, &out),
                     FS_EINVAL);
    assert_int_equal(fs__redis_encode(FS_REDIS_FORMAT_JSON, &env2, &enc_scratch, &out), FS_EINVAL);
    assert_int_equal(fs__redis_encode((fs_redis_format)9, &env2, &enc_scratch, &out), FS_EINVAL);
    assert_int_equal(fs__redis_encode(FS_REDIS_FORMAT_BINARY, NULL, &enc_scratch, &out), FS_EINVAL);

    /* raw: the body alone, any bytes */
    assert_int_equal(fs__redis_encode(FS_REDIS_FORMAT_RAW, &env, &enc_scratch, &out), FS_OK);
    assert_int_equal(out.len, 2);
    assert_memory_equal(out.data, "\xff\xfe", 2);
    fs_kit_buf_free(&out);
}

/* ---- decoding bytes laid out as FastStream writes them ---- */

static void decode_faststream_binary(void **state)
{
    (void)state;
    bytes in;
    const char *pairs[] = {"correlation_id",
                           "4f1c",
                           "content-type",
                           "application/json",
                           "reply_to",
                           "rpc-reply",
                           "message_id",
                           "m-9",
                           "x",
                           "y",
                           NULL};
    faststream_binary(&in, pairs, "[1,2,3]", 7);
    fs__redis_scratch s = {0};
    fs__redis_decoded d;
    assert_int_equal(fs__redis_decode((const char *)in.d, in.n, &s, &d), FS_OK);
    assert_int_equal(d.format, FS_REDIS_FORMAT_BINARY);
    assert_body(&d, "[1,2,3]", 7);
    assert_int_equal(d.header_count, 5);
    assert_header(&d, "correlation_id", "4f1c");
    assert_header(&d, "content-type", "application/json");
    assert_header(&d, "reply_to", "rpc-reply");
    assert_header(&d, "message_id", "m-9");
    assert_header(&d, "x", "y");

    /* the reader honours the offsets rather than assuming them */
    bytes odd = {.n = 0};
    b_raw(&odd,
          "\x89"
          "BIN\r\n\x1a\n",
          8);
    b_u16(&odd, 1);
    b_u32(&odd, 21);             /* headers after 3 padding bytes */
    b_u32(&odd, 21 + 2 + 6 + 4); /* data after the headers and 4 more padding bytes */
    b_raw(&odd, "pad", 3);
    b_u16(&odd, 1);
    b_str(&odd, "k");
    b_str(&odd, "v");
    b_raw(&odd, "PPPP", 4);
    b_raw(&odd, "body", 4);
    assert_int_equal(fs__redis_decode((const char *)odd.d, odd.n, &s, &d), FS_OK);
    assert_int_equal(d.format, FS_REDIS_FORMAT_BINARY);
    assert_body(&d, "body", 4);
    assert_int_equal(d.header_count, 1);
    assert_header(&d, "k", "v");

    /* no headers, empty body; and a data offset past the end reads as empty */
    const char *none[] = {NULL};
    faststream_binary(&in, none, "", 0);
    assert_int_equal(fs__redis_decode((const char *)in.d, in.n, &s, &d), FS_OK);
    assert_int_equal(d.format, FS_REDIS_FORMAT_BINARY);
    assert_int_equal(d.header_count, 0);
    assert_int_equal(d.body_len, 0);
    in.d[17] = 200;
    assert_int_equal(fs__redis_decode((const char *)in.d, in.n, &s, &d), FS_OK);
    assert_int_equal(d.format, FS_REDIS_FORMAT_BINARY);
    assert_int_equal(d.body_len, 0);

    /* repeated header: last value wins */
    const char *dup[] = {"a", "1", "a", "2", NULL};
    faststream_binary(&in, dup, "z", 1);
    assert_int_equal(fs__redis_decode((const char *)in.d, in.n, &s, &d), FS_OK);
    assert_int_equal(d.header_count, 1);
    assert_header(&d, "a", "2");
    fs__redis_scratch_free(&s);
}

static void decode_damaged_binary_is_raw(void **state)
{
    (void)state;
    bytes in;
    const char *pairs[] = {"correlation_id", "abc", NULL};
    faststream_binary(&in, pairs, "data", 4);
    fs__redis_scratch s = {0};
    fs__redis_decoded d;
    /* truncated inside the headers */
    assert_int_equal(fs__redis_decode((const char *)in.d, 25, &s, &d), FS_OK);
    assert_int_equal(d.format, FS_REDIS_FORMAT_RAW);
    assert_body(&d, in.d, 25);
    /* shorter than the fixed part */
    assert_int_equal(fs__redis_decode((const char *)in.d, 12, &s, &d), FS_OK);
    assert_int_equal(d.format, FS_REDIS_FORMAT_RAW);
    /* another version */
    bytes v2 = in;
    v2.d[9] = 2;
    assert_int_equal(fs__redis_decode((const char *)v2.d, v2.n, &s, &d), FS_OK);
    assert_int_equal(d.format, FS_REDIS_FORMAT_RAW);
    assert_int_equal(d.body_len, v2.n);
    /* headers offset beyond the end */
    bytes far = in;
    far.d[13] = 0xF0;
    assert_int_equal(fs__redis_decode((const char *)far.d, far.n, &s, &d), FS_OK);
    assert_int_equal(d.format, FS_REDIS_FORMAT_RAW);
    /* a header that is not UTF-8 (Python's bytes.decode() fails) */
    bytes bad = in;
    bad.d[22] = 0xff;
    assert_int_equal(fs__redis_decode((const char *)bad.d, bad.n, &s, &d), FS_OK);
    assert_int_equal(d.format, FS_REDIS_FORMAT_RAW);
    fs__redis_scratch_free(&s);
}

static void decode_json_envelope_variants(void **state)
{
    (void)state;
    fs__redis_scratch s = {0};
    fs__redis_decoded d;
    /* json.dumps (no orjson): spaces and \u escapes of non-ASCII */
    const char *py = "{\"data\": \"caf\\u00e9 \\ud83d\\ude00\", \"headers\": "
                     "{\"correlation_id\": \"id-1\", \"reply_to\": \"back\", "
                     "\"content-type\": \"text/plain\"}}";
    assert_int_equal(fs__redis_decode(py, strlen(py), &s, &d), FS_OK);
    assert_int_equal(d.format, FS_REDIS_FORMAT_JSON);
    assert_body(&d, "caf\xc3\xa9 \xf0\x9f\x98\x80", 10);
    assert_header(&d, "correlation_id", "id-1");
    assert_header(&d, "reply_to", "back");
    assert_header(&d, "content-type", "text/plain");

    /* orjson: compact, raw UTF-8 */
    const char *oj = "{\"data\":\"caf\xc3\xa9\",\"headers\":{\"correlation_id\":\"x\"}}";
    assert_int_equal(fs__redis_decode(oj, strlen(oj), &s, &d), FS_OK);
    assert_int_equal(d.format, FS_REDIS_FORMAT_JSON);
    assert_body(&d, "caf\xc3\xa9", 5);

    /* headers optional; headers first; other members ignored; non-string values as JSON */
    const char *h = " { \"headers\" : {\"n\": 5, \"b\": true, \"o\": {\"a\": [1, 2]}, "
                    "\"nul\": null}, \"extra\": [1, {\"q\": \"\\\"\"}], \"data\" : \"\" } \n";
    assert_int_equal(fs__redis_decode(h, strlen(h), &s, &d), FS_OK);
    assert_int_equal(d.format, FS_REDIS_FORMAT_JSON);
    assert_int_equal(d.body_len, 0);
    assert_header(&d, "n", "5");
    assert_header(&d, "b", "true");
    assert_header(&d, "o", "{\"a\": [1, 2]}");
    assert_header(&d, "nul", "null");
    const char *nohdr = "{\"data\":\"only\"}";
    assert_int_equal(fs__redis_decode(nohdr, strlen(nohdr), &s, &d), FS_OK);
    assert_int_equal(d.format, FS_REDIS_FORMAT_JSON);
    assert_int_equal(d.header_count, 0);
    assert_body(&d, "only", 4);
    const char *hstr = "{\"data\":\"d\",\"headers\":\"nope\"}";
    assert_int_equal(fs__redis_decode(hstr, strlen(hstr), &s, &d), FS_OK);
    assert_int_equal(d.format, FS_REDIS_FORMAT_JSON);
    assert_int_equal(d.header_count, 0);
    fs__redis_scratch_free(&s);
}

static void decode_other_json_and_text_is_raw(void **state)
{
    (void)state;
    const char *cases[] = {
        "{\"data\": 5, \"headers\": {}}",              /* data not a string */
        "{\"headers\": {\"a\": \"b\"}}",               /* no data */
        "{\"data\": \"a\", \"data\": 1}",              /* last member wins: not a string */
        "[\"data\", \"x\"]",                           /* not an object */
        "{\"data\": \"x\"} trailing",                  /* not one JSON document */
        "{\"data\": \"\\ud800\"}",                     /* lone surrogate: .encode() fails */
        "{\"data\": \"a\nb\"}",                        /* raw control character */
        "{\"data\": \"x\", \"headers\": {\"a\": 01}}", /* bad number */
        "{\"data\": \"x\",}",                          /* trailing comma */
        "{}",
        "plain text body",
        "",
        "{\"data\": \"\\x\"}", /* bad escape */
    };
    fs__redis_scratch s = {0};
    fs__redis_decoded d;
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        assert_int_equal(fs__redis_decode(cases[i], strlen(cases[i]), &s, &d), FS_OK);
        if (d.format != FS_REDIS_FORMAT_RAW)
            fail_msg("case %zu decoded as %s: %s", i, fs_redis_format_name(d.format), cases[i]);
        assert_int_equal(d.header_count, 0);
        assert_body(&d, cases[i], strlen(cases[i]));
    }
    const char *ok = "{\"data\": \"a\", \"data\": \"b\"}";
    assert_int_equal(fs__redis_decode(ok, strlen(ok), &s, &d), FS_OK);
    assert_int_equal(d.format, FS_REDIS_FORMAT_JSON);
    assert_body(&d, "b", 1);
    /* a deeply nested document is refused, not a stack overflow */
    static char deep[40000];
    size_t n = 0;
    n += (size_t)sprintf(deep, "{\"data\":\"x\",\"z\":");
    for (int i = 0; i < 10000; i++)
        deep[n++] = '[';
    assert_int_equal(fs__redis_decode(deep, n, &s, &d), FS_OK);
    assert_int_equal(d.format, FS_REDIS_FORMAT_RAW);
    fs__redis_scratch_free(&s);
}

static void decode_stream_fields(void **state)
{
    (void)state;
    fs__redis_scratch s = {0};
    fs__redis_decoded d;
    bytes in;
    const char *pairs[] = {"correlation_id", "s-1", NULL};
    faststream_binary(&in, pairs, "payload", 7);
    fs__redis_kv f[] = {{"__data__", 8, (const char *)in.d, in.n}};
    assert_int_equal(fs__redis_decode_fields(f, 1, &s, &d), FS_OK);
    assert_int_equal(d.format, FS_REDIS_FORMAT_BINARY);
    assert_body(&d, "payload", 7);
    assert_header(&d, "correlation_id", "s-1");

    /* an entry written by someone else: its fields as a JSON object */
    fs__redis_kv g[] = {{"temp", 4, "21.5", 4}, {"unit", 4, "C\"", 2}};
    assert_int_equal(fs__redis_decode_fields(g, 2, &s, &d), FS_OK);
    assert_int_equal(d.format, FS_REDIS_FORMAT_RAW);
    const char *want = "{\"temp\":\"21.5\",\"unit\":\"C\\\"\"}";
    assert_body(&d, want, strlen(want));

    /* fields shaped like the JSON envelope are read as one */
    fs__redis_kv e[] = {{"data", 4, "hello", 5}};
    assert_int_equal(fs__redis_decode_fields(e, 1, &s, &d), FS_OK);
    assert_int_equal(d.format, FS_REDIS_FORMAT_JSON);
    assert_body(&d, "hello", 5);

    /* an empty __data__ counts as absent */
    fs__redis_kv z[] = {{"__data__", 8, "", 0}};
    assert_int_equal(fs__redis_decode_fields(z, 1, &s, &d), FS_OK);
    assert_body(&d, "{\"__data__\":\"\"}", 15);
    fs__redis_scratch_free(&s);
}

static uint32_t rng = 12345;
static uint32_t rnd(void)
{
    rng = rng * 1103515245u + 12345u;
    return rng >> 8;
}

static void round_trip_random(void **state)
{
    (void)state;
    fs_kit_buf out = {0};
    fs__redis_scratch s = {0};
    fs__redis_decoded d;
    for (int iter = 0; iter < 2000; iter++) {
        char body[300], keys[4][20], vals[4][40];
        size_t blen = rnd() % sizeof body;
        bool text = iter % 2;
        for (size_t i = 0; i < blen; i++)
            body[i] = text ? (char)(0x20 + rnd() % 0x5f) : (char)rnd();
        fs__redis_kv h[4];
        size_t hn = rnd() % 5;
        for (size_t i = 0; i < hn; i++) {
            int kl = snprintf(keys[i], sizeof keys[i], "h%zu-%u", i, rnd() % 100);
            size_t vl = rnd() % sizeof vals[i];
            for (size_t j = 0; j < vl; j++)
                vals[i][j] = (char)(0x20 + rnd() % 0x5f);
            h[i] = (fs__redis_kv){keys[i], (size_t)kl, vals[i], vl};
        }
        fs__redis_envelope env = {.body = body,
                                  .body_len = blen,
                                  .correlation_id = "cid",
                                  .reply_to = iter % 3 ? "rt" : NULL,
                                  .headers = h,
                                  .header_count = hn};
        fs_redis_format fmt = text && iter % 4 == 1 ? FS_REDIS_FORMAT_JSON : FS_REDIS_FORMAT_BINARY;
        out.len = 0;
        assert_int_equal(fs__redis_encode(fmt, &env, &enc_scratch, &out), FS_OK);
        assert_int_equal(fs__redis_decode(out.data, out.len, &s, &d), FS_OK);
        assert_int_equal(d.format, fmt);
        assert_body(&d, body, blen);
        assert_int_equal(d.header_count, 1 + (iter % 3 ? 1 : 0) + hn);
        for (size_t i = 0; i < hn; i++) {
            size_t vl;
            const char *v = fs__redis_header(&d, keys[i], &vl);
            assert_non_null(v);
            assert_int_equal(vl, h[i].value_len);
            assert_memory_equal(v, vals[i], vl);
        }
        /* random corruption never crashes and always yields some body */
        if (out.len) {
            out.data[rnd() % out.len] = (char)rnd();
            assert_int_equal(fs__redis_decode(out.data, rnd() % (out.len + 1), &s, &d), FS_OK);
        }
    }
    fs__redis_scratch_free(&s);
    fs_kit_buf_free(&out);
}

/* ---- repeated keys and many headers ---- */

/* A growable binary v1 message, for header counts beyond ref_bytes' 4 KiB. */
static void big_u16(fs_kit_buf *b, size_t v)
{
    unsigned char x[2] = {(unsigned char)(v >> 8), (unsigned char)v};
    assert_int_equal(fs_kit_buf_put(b, x, 2), FS_OK);
}

static void big_u32(fs_kit_buf *b, size_t v)
{
    big_u16(b, (v >> 16) & 0xFFFF);
    big_u16(b, v & 0xFFFF);
}

static void big_binary(fs_kit_buf *b, const fs__redis_kv *h, size_t n, const char *body)
{
    size_t hlen = 0;
    for (size_t i = 0; i < n; i++)
        hlen += 4 + h[i].key_len + h[i].value_len;
    b->len = 0;
    assert_int_equal(fs_kit_buf_put(b,
                                    "\x89"
                                    "BIN\r\n\x1a\n",
                                    8),
                     FS_OK);
    big_u16(b, 1);
    big_u32(b, 18);
    big_u32(b, 18 + 2 + hlen);
    big_u16(b, n);
    for (size_t i = 0; i < n; i++) {
        big_u16(b, h[i].key_len);
        assert_int_equal(fs_kit_buf_put(b, h[i].key, h[i].key_len), FS_OK);
        big_u16(b, h[i].value_len);
        assert_int_equal(fs_kit_buf_put(b, h[i].value, h[i].value_len), FS_OK);
    }
    assert_int_equal(fs_kit_buf_put(b, body, strlen(body)), FS_OK);
}

/* A JSON envelope; keys and values are plain ASCII. With `escape`, every
 * other key is written with its first character as a \u escape. */
static void big_json(fs_kit_buf *b, const fs__redis_kv *h, size_t n, const char *body, bool escape)
{
    char esc[8];
    b->len = 0;
    assert_int_equal(fs_kit_buf_put(b, "{\"data\":\"", 9), FS_OK);
    assert_int_equal(fs_kit_buf_put(b, body, strlen(body)), FS_OK);
    assert_int_equal(fs_kit_buf_put(b, "\",\"headers\":{", 13), FS_OK);
    for (size_t i = 0; i < n; i++) {
        assert_int_equal(fs_kit_buf_put(b, i ? ",\"" : "\"", i ? 2 : 1), FS_OK);
        size_t skip = 0;
        if (escape && i % 2 && h[i].key_len) {
            snprintf(esc, sizeof esc, "\\u%04x", (unsigned char)h[i].key[0]);
            assert_int_equal(fs_kit_buf_put(b, esc, 6), FS_OK);
            skip = 1;
        }
        assert_int_equal(fs_kit_buf_put(b, h[i].key + skip, h[i].key_len - skip), FS_OK);
        assert_int_equal(fs_kit_buf_put(b, "\":\"", 3), FS_OK);
        assert_int_equal(fs_kit_buf_put(b, h[i].value, h[i].value_len), FS_OK);
        assert_int_equal(fs_kit_buf_put(b, "\"", 1), FS_OK);
    }
    assert_int_equal(fs_kit_buf_put(b, "}}", 2), FS_OK);
}

/* n distinct headers (n <= 65536) whose keys have one length and differ in
 * a few bytes: a bad hash would collide. */
typedef struct many_headers {
    char (*keys)[8], (*vals)[8];
    fs__redis_kv *h;
} many_headers;

static void many_headers_make(many_headers *m, size_t n)
{
    m->keys = malloc(n * sizeof *m->keys);
    m->vals = malloc(n * sizeof *m->vals);
    m->h = malloc(n * sizeof *m->h);
    assert_non_null(m->keys);
    assert_non_null(m->vals);
    assert_non_null(m->h);
    for (size_t i = 0; i < n; i++) {
        int kl = snprintf(m->keys[i], sizeof m->keys[i], "%05zx", i * 40503 % 65536);
        int vl = snprintf(m->vals[i], sizeof m->vals[i], "%zu", i);
        m->h[i] = (fs__redis_kv){m->keys[i], (size_t)kl, m->vals[i], (size_t)vl};
    }
}

static void many_headers_free(many_headers *m)
{
    free(m->h);
    free(m->vals);
    free(m->keys);
}

/* The decoded headers are exactly `want` (same order, same bytes). */
static void assert_headers_are(const fs__redis_decoded *d, const fs__redis_kv *want, size_t n)
{
    assert_int_equal(d->header_count, n);
    for (size_t i = 0; i < n; i++) {
        assert_int_equal(d->headers[i].key_len, want[i].key_len);
        assert_memory_equal(d->headers[i].key, want[i].key, want[i].key_len);
        assert_int_equal(d->headers[i].value_len, want[i].value_len);
        assert_memory_equal(d->headers[i].value, want[i].value, want[i].value_len);
    }
}

/*
 * The reference semantics, spelled out naively: a repeated key keeps the
 * place of its first occurrence and takes the value of its last (Python's
 * dict, as FastStream builds it). Returns the distinct count.
 */
static size_t ref_dedup(const fs__redis_kv *in, size_t n, fs__redis_kv *out)
{
    size_t m = 0;
    for (size_t i = 0; i < n; i++) {
        size_t j = 0;
        while (j < m && !(out[j].key_len == in[i].key_len &&
                          memcmp(out[j].key, in[i].key, in[i].key_len) == 0))
            j++;
        if (j == m)
            out[m++] = in[i];
        else
            out[j].value = in[i].value, out[j].value_len = in[i].value_len;
    }
    return m;
}

static void decode_repeated_keys_below_and_above_index(void **state)
{
    (void)state;
    enum { MAXL = 3000 };
    static char keys[MAXL][16], vals[MAXL][16];
    static fs__redis_kv in[MAXL], want[MAXL];
    fs_kit_buf msg = {0};
    fs__redis_scratch s = {0};
    fs__redis_decoded d;
    /* distinct key pools on both sides of the linear-search limit, and far above */
    const size_t pools[] = {1, 2, 15, 16, 17, 18, 33, 64, 65, 200, 1000};
    for (size_t p = 0; p < sizeof pools / sizeof *pools; p++) {
        size_t pool = pools[p], n = pool * 3 > MAXL ? MAXL : pool * 3;
        for (size_t i = 0; i < n; i++) {
            /* every key once in a shuffled order, then repeats at random places */
            size_t k = i < pool ? (i * 7 + 3) % pool : rnd() % pool;
            if (pool % 7 == 0 && i < pool)
                k = i;
            int kl = snprintf(keys[i], sizeof keys[i], "key-%zu", k);
            int vl = snprintf(vals[i], sizeof vals[i], "v%zu", i);
            in[i] = (fs__redis_kv){keys[i], (size_t)kl, vals[i], (size_t)vl};
        }
        size_t m = ref_dedup(in, n, want);
        assert_int_equal(m, pool);

        big_binary(&msg, in, n, "body");
        assert_int_equal(fs__redis_decode(msg.data, msg.len, &s, &d), FS_OK);
        assert_int_equal(d.format, FS_REDIS_FORMAT_BINARY);
        assert_body(&d, "body", 4);
        assert_headers_are(&d, want, m);

        for (int escape = 0; escape < 2; escape++) {
            big_json(&msg, in, n, "text", escape);
            assert_int_equal(fs__redis_decode(msg.data, msg.len, &s, &d), FS_OK);
            assert_int_equal(d.format, FS_REDIS_FORMAT_JSON);
            assert_body(&d, "text", 4);
            assert_headers_are(&d, want, m);
        }

        /* only the first (pool) headers: all distinct, in order */
        big_binary(&msg, in, pool, "");
        assert_int_equal(fs__redis_decode(msg.data, msg.len, &s, &d), FS_OK);
        assert_int_equal(d.format, FS_REDIS_FORMAT_BINARY);
        assert_headers_are(&d, in, pool);
    }

    /* a second "headers" member replaces the first entirely (the last wins, as in
     * json.loads), even after the first one outgrew the linear search */
    size_t n1 = 100, n2 = 40;
    for (size_t i = 0; i < n1 + n2; i++) {
        int kl = snprintf(keys[i], sizeof keys[i], "key-%zu", i < n1 ? i : (i - n1) * 3);
        int vl = snprintf(vals[i], sizeof vals[i], "v%zu", i);
        in[i] = (fs__redis_kv){keys[i], (size_t)kl, vals[i], (size_t)vl};
    }
    big_json(&msg, in, n1, "a", false);
    fs_kit_buf two = {0};
    assert_int_equal(fs_kit_buf_put(&two, msg.data, msg.len - 1), FS_OK); /* drop the last } */
    big_json(&msg, in + n1, n2, "b", false);
    assert_int_equal(fs_kit_buf_put(&two, ",", 1), FS_OK);
    const char *second = strstr(msg.data, "\"headers\"");
    assert_non_null(second);
    assert_int_equal(fs_kit_buf_put(&two, second, strlen(second)), FS_OK);
    assert_int_equal(fs__redis_decode(two.data, two.len, &s, &d), FS_OK);
    assert_int_equal(d.format, FS_REDIS_FORMAT_JSON);
    assert_body(&d, "a", 1);
    assert_headers_are(&d, in + n1, n2);

    /* a damaged binary message that indexed many headers, then a small one */
    for (size_t i = 0; i < 50; i++) {
        int kl = snprintf(keys[i], sizeof keys[i], "key-%zu", i % 20);
        int vl = snprintf(vals[i], sizeof vals[i], "v%zu", i);
        in[i] = (fs__redis_kv){keys[i], (size_t)kl, vals[i], (size_t)vl};
    }
    big_binary(&msg, in, 50, "");
    assert_int_equal(fs__redis_decode(msg.data, msg.len - 3, &s, &d), FS_OK);
    assert_int_equal(d.format, FS_REDIS_FORMAT_RAW);
    big_binary(&msg, in, 3, "x");
    assert_int_equal(fs__redis_decode(msg.data, msg.len, &s, &d), FS_OK);
    assert_int_equal(d.format, FS_REDIS_FORMAT_BINARY);
    assert_headers_are(&d, in, 3);
    fs_kit_buf_free(&two);
    fs_kit_buf_free(&msg);
    fs__redis_scratch_free(&s);
}

static void decode_65535_distinct_headers(void **state)
{
    (void)state;
    enum { N = 65535 };
    many_headers m;
    many_headers_make(&m, N);
    const fs__redis_kv *h = m.h;
    fs_kit_buf msg = {0};
    fs__redis_scratch s = {0};
    fs__redis_decoded d;
    big_binary(&msg, h, N, "payload");
    assert_in_range(msg.len, 300000, 1000000);
    assert_int_equal(fs__redis_decode(msg.data, msg.len, &s, &d), FS_OK);
    assert_int_equal(d.format, FS_REDIS_FORMAT_BINARY);
    assert_body(&d, "payload", 7);
    assert_headers_are(&d, h, N);
    assert_header(&d, "00000", "0");

    big_json(&msg, h, N, "payload", true);
    assert_int_equal(fs__redis_decode(msg.data, msg.len, &s, &d), FS_OK);
    assert_int_equal(d.format, FS_REDIS_FORMAT_JSON);
    assert_body(&d, "payload", 7);
    assert_headers_are(&d, h, N);

    /* and the same scratch still reads a small message right */
    big_binary(&msg, h, 2, "");
    assert_int_equal(fs__redis_decode(msg.data, msg.len, &s, &d), FS_OK);
    assert_headers_are(&d, h, 2);
    fs_kit_buf_free(&msg);
    fs__redis_scratch_free(&s);
    many_headers_free(&m);
}

/*
 * The encoder's header order, spelled out naively (the quadratic walk it
 * replaced): correlation_id, content-type and reply_to when set, each taking
 * the last user value of its name; then the user's headers, a repeated key in
 * its first place with its last value, minus the names already written.
 */
static size_t ref_encoded_headers(const fs__redis_envelope *env, fs__redis_kv *dedup,
                                  fs__redis_kv *out)
{
    static const char *const names[] = {"correlation_id", "content-type", "reply_to"};
    const char *values[3] = {env->correlation_id ? env->correlation_id : "", env->content_type,
                             env->reply_to};
    size_t m = ref_dedup(env->headers, env->header_count, dedup), n = 0;
    bool written[3];
    for (int s = 0; s < 3; s++) {
        written[s] = s == 0 || (values[s] && *values[s]);
        if (!written[s])
            continue;
        out[n] = (fs__redis_kv){names[s], strlen(names[s]), values[s], strlen(values[s])};
        for (size_t i = 0; i < m; i++)
            if (dedup[i].key_len == out[n].key_len &&
                memcmp(dedup[i].key, names[s], out[n].key_len) == 0)
                out[n].value = dedup[i].value, out[n].value_len = dedup[i].value_len;
        n++;
    }
    for (size_t i = 0; i < m; i++) {
        bool skip = false;
        for (int s = 0; s < 3; s++)
            skip |= written[s] && dedup[i].key_len == strlen(names[s]) &&
                    memcmp(dedup[i].key, names[s], dedup[i].key_len) == 0;
        if (!skip)
            out[n++] = dedup[i];
    }
    return n;
}

static void encode_repeated_keys_match_the_reference(void **state)
{
    (void)state;
    enum { MAXN = 1000 };
    static const char *const std_keys[] = {"correlation_id", "content-type", "reply_to"};
    static char keys[MAXN][16], vals[MAXN][16];
    static fs__redis_kv in[MAXN], dedup[MAXN], want[MAXN + 3];
    fs_kit_buf out = {0}, ref = {0};
    fs__redis_scratch s = {0};
    fs__redis_decoded d;
    for (size_t n = 1; n <= MAXN; n += n < 64 ? 1 : 13) {
        size_t pool = n / 2 + 1; /* about half the keys repeat */
        for (size_t i = 0; i < n; i++) {
            unsigned r = rnd();
            const char *k = keys[i];
            if (r % 29 == 0)
                k = std_keys[r % 3];
            else
                snprintf(keys[i], sizeof keys[i], "k%u", (unsigned)(r % pool));
            int vl = snprintf(vals[i], sizeof vals[i], "v%zu", i);
            in[i] = (fs__redis_kv){k, strlen(k), vals[i], (size_t)vl};
        }
        fs__redis_envelope env = {.body = "body",
                                  .body_len = 4,
                                  .correlation_id = n % 2 ? "cid" : NULL,
                                  .content_type = n % 3 ? "text/plain" : NULL,
                                  .reply_to = n % 5 ? NULL : "rt",
                                  .headers = in,
                                  .header_count = n};
        size_t wn = ref_encoded_headers(&env, dedup, want);

        out.len = 0;
        assert_int_equal(fs__redis_encode(FS_REDIS_FORMAT_BINARY, &env, &enc_scratch, &out), FS_OK);
        big_binary(&ref, want, wn, "body");
        assert_int_equal(out.len, ref.len);
        assert_memory_equal(out.data, ref.data, ref.len);
        assert_int_equal(fs__redis_decode(out.data, out.len, &s, &d), FS_OK);
        assert_headers_are(&d, want, wn);

        out.len = 0;
        assert_int_equal(fs__redis_encode(FS_REDIS_FORMAT_JSON, &env, &enc_scratch, &out), FS_OK);
        big_json(&ref, want, wn, "body", false);
        assert_int_equal(out.len, ref.len);
        assert_memory_equal(out.data, ref.data, ref.len);
    }
    fs__redis_scratch_free(&s);
    fs_kit_buf_free(&ref);
    fs_kit_buf_free(&out);
}

static void encode_65535_headers_round_trip(void **state)
{
    (void)state;
    enum { N = 65535, CID_AT = 30000 };
    many_headers m;
    many_headers_make(&m, N);
    fs__redis_kv *h = m.h, *want = malloc(N * sizeof *want);
    assert_non_null(want);
    /* one user header overrides correlation_id: 65,535 headers in all */
    h[CID_AT] = (fs__redis_kv){"correlation_id", 14, m.vals[CID_AT], strlen(m.vals[CID_AT])};
    want[0] = h[CID_AT];
    for (size_t i = 0, n = 1; i < N; i++)
        if (i != CID_AT)
            want[n++] = h[i];
    fs__redis_envelope env = {
        .body = "payload", .body_len = 7, .correlation_id = "cid", .headers = h, .header_count = N};
    fs_kit_buf out = {0}, ref = {0};
    fs__redis_scratch s = {0};
    fs__redis_decoded d;
    assert_int_equal(fs__redis_encode(FS_REDIS_FORMAT_BINARY, &env, &enc_scratch, &out), FS_OK);
    big_binary(&ref, want, N, "payload");
    assert_int_equal(out.len, ref.len);
    assert_memory_equal(out.data, ref.data, ref.len);
    assert_int_equal(fs__redis_decode(out.data, out.len, &s, &d), FS_OK);
    assert_int_equal(d.format, FS_REDIS_FORMAT_BINARY);
    assert_body(&d, "payload", 7);
    assert_headers_are(&d, want, N);

    out.len = 0;
    assert_int_equal(fs__redis_encode(FS_REDIS_FORMAT_JSON, &env, &enc_scratch, &out), FS_OK);
    assert_int_equal(fs__redis_decode(out.data, out.len, &s, &d), FS_OK);
    assert_int_equal(d.format, FS_REDIS_FORMAT_JSON);
    assert_headers_are(&d, want, N);

    /* one more (reply_to) is beyond what the binary format holds */
    env.reply_to = "rt";
    out.len = 0;
    assert_int_equal(fs__redis_encode(FS_REDIS_FORMAT_BINARY, &env, &enc_scratch, &out), FS_EINVAL);
    assert_non_null(strstr(fs_last_error(), "65536 headers"));
    assert_int_equal(out.len, 0);
    fs_kit_buf_free(&ref);
    fs_kit_buf_free(&out);
    fs__redis_scratch_free(&s);
    free(want);
    many_headers_free(&m);
}

static void utf8_validation(void **state)
{
    (void)state;
    assert_true(fs_kit_utf8_valid("abc\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80", 12));
    assert_false(fs_kit_utf8_valid("\xc0\xaf", 2));         /* overlong */
    assert_false(fs_kit_utf8_valid("\xed\xa0\x80", 3));     /* surrogate */
    assert_false(fs_kit_utf8_valid("\xf4\x90\x80\x80", 4)); /* > U+10FFFF */
    assert_false(fs_kit_utf8_valid("\xe2\x82", 2));         /* truncated */
    assert_string_equal(fs_redis_format_name(FS_REDIS_FORMAT_BINARY), "binary");
    assert_string_equal(fs_redis_format_name(FS_REDIS_FORMAT_JSON), "json");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(encode_binary_is_faststream_layout),
        cmocka_unit_test(encode_binary_minimal_and_binary_body),
        cmocka_unit_test(encode_header_order_follows_dict_update),
        cmocka_unit_test(encode_json_envelope_exact),
        cmocka_unit_test(encode_refuses_what_the_format_cannot_carry),
        cmocka_unit_test(decode_faststream_binary),
        cmocka_unit_test(decode_damaged_binary_is_raw),
        cmocka_unit_test(decode_json_envelope_variants),
        cmocka_unit_test(decode_other_json_and_text_is_raw),
        cmocka_unit_test(decode_stream_fields),
        cmocka_unit_test(round_trip_random),
        cmocka_unit_test(decode_repeated_keys_below_and_above_index),
        cmocka_unit_test(decode_65535_distinct_headers),
        cmocka_unit_test(encode_repeated_keys_match_the_reference),
        cmocka_unit_test(encode_65535_headers_round_trip),
        cmocka_unit_test(utf8_validation),
    };
    return cmocka_run_group_tests(tests, NULL, free_enc_scratch);
}
