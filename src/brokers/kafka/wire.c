/*
 * FastStream's Kafka conventions (faststream/kafka/parser.py,
 * publisher/producer.py): see wire.h.
 */
#include "wire.h"

#include "faststream/adapter.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void fs__kafka_uuid4(char out[FS__KAFKA_UUID_LEN + 1])
{
    fs_adapter_uuid4(out);
}

size_t fs__kafka_wire_header_max(const fs_envelope *e)
{
    return 3 + e->header_count;
}

int fs__kafka_wire_headers(const fs_envelope *e, bool single, const char *cid, fs__kafka_hdr *out,
                           size_t *n)
{
    size_t k = 0;
    if (single || (e->content_type && *e->content_type)) {
        const char *ct = e->content_type ? e->content_type : "";
        out[k++] = (fs__kafka_hdr){"content-type", ct, strlen(ct)};
    }
    if (cid)
        out[k++] = (fs__kafka_hdr){"correlation_id", cid, strlen(cid)};
    if (e->reply_to && *e->reply_to)
        out[k++] = (fs__kafka_hdr){"reply_to", e->reply_to, strlen(e->reply_to)};
    if (e->header_count && !e->headers)
        return fs_adapter_error(FS_EINVAL, "kafka: publish: NULL headers with a count of %zu",
                                e->header_count);
    for (size_t i = 0; i < e->header_count; i++) {
        const fs_header *h = &e->headers[i];
        if (!h->name || !*h->name || !h->value)
            return fs_adapter_error(
                FS_EINVAL, "kafka: publish: header %zu has an empty name or a NULL value", i);
        out[k++] =
            (fs__kafka_hdr){h->name, h->value, h->value_len ? h->value_len : strlen(h->value)};
    }
    *n = k;
    return FS_OK;
}

void fs__kafka_wire_pick_one(const char *name, size_t name_len, const char *v, fs__kafka_in *in)
{
    /* FastStream reads these by name; a repeated one: the last wins (dict).
     * The length sorts out the other names before any comparison. */
    switch (name_len) {
    case 12:
        if (memcmp(name, "content-type", 12) == 0)
            in->content_type = *v ? v : NULL;
        break;
    case 14:
        if (memcmp(name, "correlation_id", 14) == 0)
            in->correlation_id = v;
        break;
    case 8:
        if (memcmp(name, "reply_to", 8) == 0)
            in->reply_to = *v ? v : NULL;
        break;
    default:
        break;
    }
}

void fs__kafka_wire_pick(const fs_header *hdrs, size_t n, fs__kafka_in *in)
{
    *in = (fs__kafka_in){0};
    for (size_t i = 0; i < n; i++)
        fs__kafka_wire_pick_one(hdrs[i].name, strlen(hdrs[i].name), hdrs[i].value, in);
}

/* Decimal digits of v at p (room for 20), returns the count: two digits per division. */
static size_t put_u64(char *p, uint64_t v)
{
    static const char pairs[201] = "000102030405060708091011121314151617181920212223242526272829"
                                   "303132333435363738394041424344454647484950515253545556575859"
                                   "606162636465666768697071727374757677787980818283848586878889"
                                   "90919293949596979899";
    size_t n = 1;
    for (uint64_t t = v; t >= 10u; t /= 10u)
        n++;
    char *e = p + n;
    while (v >= 100u) {
        unsigned d = (unsigned)(v % 100u) * 2u;
        v /= 100u;
        *--e = pairs[d + 1];
        *--e = pairs[d];
    }
    if (v >= 10u) {
        *--e = pairs[v * 2u + 1];
        *--e = pairs[v * 2u];
    } else {
        *--e = (char)('0' + v);
    }
    return n;
}

size_t fs__kafka_i64(char *p, int64_t v)
{
    if (v >= 0)
        return put_u64(p, (uint64_t)v);
    *p = '-';
    return 1 + put_u64(p + 1, 0u - (uint64_t)v);
}

int fs__kafka_message_id(char *buf, size_t cap, int64_t offset, int64_t timestamp_ms)
{
    if (cap >= 48) { /* the usual case: room for any two numbers, written in place */
        size_t n = fs__kafka_i64(buf, offset);
        buf[n++] = '-';
        n += fs__kafka_i64(buf + n, timestamp_ms);
        buf[n] = '\0';
        return (int)n;
    }
    char tmp[48];
    int n = fs__kafka_message_id(tmp, sizeof tmp, offset, timestamp_ms);
    if (cap) {
        size_t k = (size_t)n < cap ? (size_t)n : cap - 1;
        memcpy(buf, tmp, k);
        buf[k] = '\0';
    }
    return n;
}

int fs__kafka_batch_message_id(char *buf, size_t cap, int64_t first_offset, int64_t last_offset,
                               int64_t first_timestamp_ms)
{
    return snprintf(buf, cap, "%" PRId64 "-%" PRId64 "-%" PRId64, first_offset, last_offset,
                    first_timestamp_ms);
}
