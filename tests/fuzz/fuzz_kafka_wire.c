/*
 * A received Kafka record's headers (any names, any bytes as values, as a
 * producer other than FastStream may send them) through the adapter's
 * decoding (fs__kafka_wire_decode: values copied NUL-terminated into the
 * reused arena, content-type / correlation_id / reply_to picked out, the
 * last of a repeated name winning), then back out through the publish
 * encoding (fs__kafka_wire_headers, as a handler forwarding the message
 * does), and the message ids. Nothing may crash, leak or read out of
 * bounds; each value is its bytes; the picked fields are the last ones.
 *
 * Input: records "name NUL len value[len]" (len one byte; a len of 255
 * stands for a NULL value, which the reader turns into ""); the first 24
 * bytes, when there are that many, are also the offsets and timestamp.
 */
#include "fuzz_util.h"
#include "brokers/kafka/wire.h"

#include <stdlib.h>
#include <string.h>

#define MAX_HDRS 64

static void check_ids(const uint8_t *data, size_t size)
{
    if (size < 24)
        return;
    int64_t v[3];
    memcpy(v, data, sizeof v);
    char buf[72];
    int n = fs__kafka_message_id(buf, 48, v[0], v[1]);
    FUZZ_CHECK(n > 0 && n < 48);
    n = fs__kafka_batch_message_id(buf, sizeof buf, v[0], v[1], v[2]);
    FUZZ_CHECK(n > 0 && (size_t)n < sizeof buf);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    check_ids(data, size);
    fs__kafka_hdr hdrs[MAX_HDRS];
    size_t n = 0;
    const uint8_t *p = data, *end = data + size;
    while (p < end && n < MAX_HDRS) {
        const uint8_t *nul = memchr(p, 0, (size_t)(end - p));
        if (!nul || nul + 1 >= end)
            break;
        size_t len = nul[1];
        const uint8_t *val = nul + 2;
        if (len == 255) /* the reader's NULL value */
            hdrs[n++] = (fs__kafka_hdr){(const char *)p, "", 0};
        else if (len <= (size_t)(end - val))
            hdrs[n++] = (fs__kafka_hdr){(const char *)p, val, len};
        else
            break;
        p = val + (len == 255 ? 0 : len);
    }
    fs__kafka_arena arena = {0};
    const char *values[MAX_HDRS];
    fs__kafka_in in;
    /* Twice, the second time with the first half: the arena is reused. */
    for (int round = 0; round < 2; round++) {
        size_t count = round ? n / 2 : n;
        if (fs__kafka_wire_decode(hdrs, count, &arena, values, &in) != FS_OK)
            break;
        const char *ct = NULL, *cid = NULL, *rt = NULL;
        for (size_t i = 0; i < count; i++) {
            FUZZ_CHECK(values[i] >= arena.data &&
                       values[i] + hdrs[i].len < arena.data + arena.len + 1);
            FUZZ_CHECK(memcmp(values[i], hdrs[i].value, hdrs[i].len) == 0);
            FUZZ_CHECK(values[i][hdrs[i].len] == '\0');
            if (!strcmp(hdrs[i].name, "content-type"))
                ct = *values[i] ? values[i] : NULL;
            else if (!strcmp(hdrs[i].name, "correlation_id"))
                cid = values[i];
            else if (!strcmp(hdrs[i].name, "reply_to"))
                rt = *values[i] ? values[i] : NULL;
        }
        FUZZ_CHECK(in.content_type == ct && in.correlation_id == cid && in.reply_to == rt);
        /* Forwarded: the received headers as an envelope's (every name non-empty). */
        fs_header user[MAX_HDRS];
        size_t nu = 0;
        for (size_t i = 0; i < count; i++)
            if (*hdrs[i].name)
                user[nu++] =
                    (fs_header){.name = hdrs[i].name, .value = values[i], .value_len = hdrs[i].len};
        fs_envelope e = {0};
        e.headers = nu ? user : NULL;
        e.header_count = nu;
        e.content_type = in.content_type;
        e.reply_to = in.reply_to;
        fs__kafka_hdr out[MAX_HDRS + 3];
        size_t k = 0;
        FUZZ_CHECK(fs__kafka_wire_header_max(&e) <= MAX_HDRS + 3);
        int rc = fs__kafka_wire_headers(&e, round == 0, in.correlation_id, out, &k);
        FUZZ_CHECK(rc == FS_OK && k <= fs__kafka_wire_header_max(&e));
        for (size_t i = 0; i < k; i++)
            FUZZ_CHECK(out[i].name && *out[i].name && out[i].value);
    }
    fs__kafka_arena_free(&arena);
    return 0;
}
