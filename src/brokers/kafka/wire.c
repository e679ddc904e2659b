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

void fs__kafka_arena_free(fs__kafka_arena *a)
{
    free(a->data);
    *a = (fs__kafka_arena){0};
}

static int arena_reserve(fs__kafka_arena *a, size_t need)
{
    if (need <= a->cap)
        return FS_OK;
    size_t cap = a->cap ? a->cap : 256;
    while (cap < need)
        cap *= 2;
    char *p = realloc(a->data, cap);
    if (!p)
        return fs_adapter_error(FS_ENOMEM, "kafka: out of memory decoding headers");
    a->data = p;
    a->cap = cap;
    return FS_OK;
}

int fs__kafka_wire_decode(const fs__kafka_hdr *hdrs, size_t n, fs__kafka_arena *a,
                          const char **values, fs__kafka_in *in)
{
    *in = (fs__kafka_in){0};
    size_t need = 0;
    for (size_t i = 0; i < n; i++)
        need += hdrs[i].len + 1;
    if (arena_reserve(a, need))
        return FS_ENOMEM;
    size_t off = 0;
    for (size_t i = 0; i < n; i++) {
        char *v = a->data + off;
        if (hdrs[i].len)
            memcpy(v, hdrs[i].value, hdrs[i].len);
        v[hdrs[i].len] = '\0';
        off += hdrs[i].len + 1;
        values[i] = v;
        const char *name = hdrs[i].name;
        /* FastStream reads these by name; a repeated one: the last wins (dict). */
        if (strcmp(name, "content-type") == 0)
            in->content_type = *v ? v : NULL;
        else if (strcmp(name, "correlation_id") == 0)
            in->correlation_id = v;
        else if (strcmp(name, "reply_to") == 0)
            in->reply_to = *v ? v : NULL;
    }
    a->len = off;
    return FS_OK;
}

int fs__kafka_message_id(char *buf, size_t cap, int64_t offset, int64_t timestamp_ms)
{
    return snprintf(buf, cap, "%" PRId64 "-%" PRId64, offset, timestamp_ms);
}

int fs__kafka_batch_message_id(char *buf, size_t cap, int64_t first_offset, int64_t last_offset,
                               int64_t first_timestamp_ms)
{
    return snprintf(buf, cap, "%" PRId64 "-%" PRId64 "-%" PRId64, first_offset, last_offset,
                    first_timestamp_ms);
}
