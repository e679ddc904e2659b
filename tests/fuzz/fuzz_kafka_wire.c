/*
 * A received Kafka record's headers (any names, any bytes as values, as a
 * producer other than FastStream may send them) through the adapter's
 * decoding (fs__kafka_wire_pick on values NUL-terminated after their bytes
 * as librdkafka hands them over: content-type / correlation_id / reply_to
 * picked out without a copy, the last of a repeated name winning), then
 * back out through the publish
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

#include <inttypes.h>
#include <stdio.h>
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
    char want[72]; /* the formatter is hand-written (hot path): printf's digits */
    FUZZ_CHECK(snprintf(want, sizeof want, "%" PRId64 "-%" PRId64, v[0], v[1]) == n);
    FUZZ_CHECK(strcmp(buf, want) == 0);
    size_t k = fs__kafka_i64(buf, v[0]); /* the reader's composition */
    buf[k++] = '-';
    buf[k + fs__kafka_i64(buf + k, v[1])] = '\0';
    FUZZ_CHECK(strcmp(buf, want) == 0);
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
    /* The values as librdkafka keeps them: a copy with a NUL after the bytes. */
    char *store = malloc(size + n + 1);
    if (!store)
        return 0;
    fs_header got[MAX_HDRS];
    size_t off = 0;
    for (size_t i = 0; i < n; i++) {
        memcpy(store + off, hdrs[i].value, hdrs[i].len);
        store[off + hdrs[i].len] = '\0';
        got[i] = (fs_header){hdrs[i].name, store + off, hdrs[i].len};
        off += hdrs[i].len + 1;
    }
    fs__kafka_in in;
    for (int round = 0; round < 2; round++) {
        size_t count = round ? n / 2 : n;
        fs__kafka_wire_pick(got, count, &in);
        const char *ct = NULL, *cid = NULL, *rt = NULL;
        for (size_t i = 0; i < count; i++) {
            const char *v = got[i].value;
            FUZZ_CHECK(memcmp(v, hdrs[i].value, hdrs[i].len) == 0 && v[hdrs[i].len] == '\0');
            if (!strcmp(hdrs[i].name, "content-type"))
                ct = *v ? v : NULL;
            else if (!strcmp(hdrs[i].name, "correlation_id"))
                cid = v;
            else if (!strcmp(hdrs[i].name, "reply_to"))
                rt = *v ? v : NULL;
        }
        FUZZ_CHECK(in.content_type == ct && in.correlation_id == cid && in.reply_to == rt);
        /* Forwarded: the received headers as an envelope's (every name non-empty). */
        fs_header user[MAX_HDRS];
        size_t nu = 0;
        for (size_t i = 0; i < count; i++)
            if (*got[i].name)
                user[nu++] = got[i];
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
    free(store);
    return 0;
}
