/*
 * The Redis message formats (FastStream's binary and JSON envelopes, raw
 * bodies) as they come from a Redis server anyone may write to: decoding
 * never fails on content, every header and the body lie within the input or
 * the scratch, and a decoded message encodes again; the same bytes as the
 * fields of a stream entry.
 */
#include "brokers/redis/wire.h"
#include "kit/buffer.h"
#include "common/internal.h"
#include "fuzz_util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fs__redis_scratch scratch = {0};
    fs__redis_decoded m;
    const char *in = (const char *)data;
    int rc = fs__redis_decode(in, size, &scratch, &m);
    FUZZ_CHECK(rc == FS_OK || rc == FS_ENOMEM);
    if (rc == FS_OK) {
        FUZZ_CHECK(m.body || m.body_len == 0);
        size_t total = m.body_len;
        for (size_t i = 0; i < m.header_count; i++) {
            FUZZ_CHECK(m.headers[i].key && m.headers[i].value);
            total += m.headers[i].key_len + m.headers[i].value_len;
            size_t len;
            fs__redis_header(&m, "correlation_id", &len);
        }
        (void)total;
        /* What was decoded encodes again in every format that can carry it. */
        fs__redis_envelope env = {0};
        env.body = m.body;
        env.body_len = m.body_len;
        env.headers = m.headers;
        env.header_count = m.header_count;
        for (int f = FS_REDIS_FORMAT_BINARY; f <= FS_REDIS_FORMAT_JSON; f++) {
            fs__redis_scratch s2 = {0};
            fs_kit_buf out = {0};
            int e = fs__redis_encode((fs_redis_format)f, &env, &s2, &out);
            FUZZ_CHECK(e == FS_OK || e == FS_EINVAL || e == FS_ENOMEM);
            fs_kit_buf_free(&out);
            fs__redis_scratch_free(&s2);
        }
    }
    fs__redis_scratch_free(&scratch);
    /* The same bytes as the fields of a stream entry: key, value, key, value... */
    fs__redis_kv kv[8];
    size_t n = 0;
    const char *p = in, *end = in + size;
    while (n < 8 && p < end) {
        const char *nul = memchr(p, 0, (size_t)(end - p));
        size_t len = nul ? (size_t)(nul - p) : (size_t)(end - p);
        kv[n].key = p;
        kv[n].key_len = len;
        kv[n].value = p;
        kv[n].value_len = len;
        n++;
        p += len + (nul ? 1 : 0);
    }
    fs__redis_scratch s3 = {0};
    rc = fs__redis_decode_fields(kv, n, &s3, &m);
    FUZZ_CHECK(rc == FS_OK || rc == FS_ENOMEM);
    fs__redis_scratch_free(&s3);
    return 0;
}
