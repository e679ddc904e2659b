/*
 * A received NATS message (HMSG: reply subject, header block, body, as a
 * server or any client's publish delivers it) through nats.c's header
 * parsing and the adapter's decoding (fs__nats_decode, with its in-place
 * repair of nats.c 3.4.1 reading an empty value as the next header line),
 * the JetStream ack-subject metadata (fs__nats_js_meta) and the subject
 * check. When the decoder read the header block itself (nats.c's block is
 * then still unparsed), nats.c's own parser must agree with it on every
 * name (its first value) wherever nats.c reads values right (none empty); then the decoded headers
 * published again (fs__nats_encode) and decoded from that message. Nothing may crash, leak or read
 * out of bounds; every header has a name and a value; a picked-out content type or reply_to is
 * never "".
 *
 * Input: flags (bit 0: JetStream, bit 1: wildcards allowed), reply NUL,
 * header block (as on the wire, "NATS/1.0\r\n...\r\n\r\n") NUL, body.
 */
#include "brokers/nats/wire.h"
#include "fuzz_util.h"

#include <stdlib.h>
#include <string.h>

/* nats.c's own constructor of a received message (exported, not in nats.h). */
natsStatus natsMsg_create(natsMsg **newMsg, const char *subject, int subjLen, const char *reply,
                          int replyLen, const char *buf, int bufLen, int hdrLen);

/* Our reading of the block against nats.c's (see the top). */
static void check_against_natsc(natsMsg *msg, const fs_message *m)
{
    size_t len;
    if (!fs__nats_raw_headers(msg, &len)) /* nats.c parsed it: the decoder used its API */
        return;
    for (size_t i = 0; i < m->header_count; i++) {
        const char *n = m->headers[i].name;
        if (!*m->headers[i].value || !*n)
            return; /* nats.c 3.4.1 misreads an empty value; an empty name is no header */
        for (size_t j = 0; j < m->header_count; j++) {
            const char *o = m->headers[j].name;
            if (strcmp(n, o) != 0 && strncmp(n, o, strlen(n)) == 0)
                return; /* nats.c's hash matches a name on a longer one's prefix (strncmp) */
        }
    }
    size_t distinct = 0;
    for (size_t i = 0; i < m->header_count; i++) {
        size_t j = 0;
        while (j < i && strcmp(m->headers[j].name, m->headers[i].name) != 0)
            j++;
        if (j < i)
            continue; /* natsMsgHeader_Get gives the first value */
        distinct++;
        const char *v = NULL;
        FUZZ_CHECK(natsMsgHeader_Get(msg, m->headers[i].name, &v) == NATS_OK);
        FUZZ_CHECK(v && strcmp(v, m->headers[i].value) == 0);
    }
    const char **keys = NULL;
    int count = 0;
    if (natsMsgHeader_Keys(msg, &keys, &count) == NATS_OK)
        FUZZ_CHECK((size_t)count == distinct);
    free(keys);
}

static void check_message(const fs_message *m)
{
    FUZZ_CHECK(m->body && m->source);
    FUZZ_CHECK(!m->content_type || *m->content_type);
    FUZZ_CHECK(!m->reply_to || *m->reply_to);
    for (size_t i = 0; i < m->header_count; i++)
        FUZZ_CHECK(m->headers[i].name && m->headers[i].value);
}

/* The decoded message's headers published again, then decoded. */
static void round_trip(const fs_message *m, bool js, fs__nats_hdrs *h)
{
    fs_envelope e = {0};
    e.body = m->body;
    e.body_len = m->body_len;
    e.headers = m->headers;
    e.header_count = m->header_count;
    natsMsg *out = NULL;
    if (fs__nats_encode("fuzz.out", NULL, &e, js, &out) != FS_OK)
        return;
    fs_message again = {0};
    if (fs__nats_decode(out, js, h, &again) == FS_OK) {
        check_message(&again);
        FUZZ_CHECK(again.body_len == m->body_len);
    }
    natsMsg_Destroy(out);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static bool opened;
    if (!opened) /* nats.c's globals (natsMsg_Destroy locks its collector's mutex) */
        opened = nats_Open(-1) == NATS_OK;
    if (size < 1 || size > 65536 || !opened)
        return 0;
    bool js = data[0] & 1, wild = data[0] & 2;
    const uint8_t *p = data + 1, *end = data + size;
    char *reply = fuzz_piece(&p, end);
    if (!reply)
        reply = strdup("");
    const uint8_t *hdr = p;
    const uint8_t *nul = p < end ? memchr(p, 0, (size_t)(end - p)) : NULL;
    size_t hdr_len = nul ? (size_t)(nul - p) : (size_t)(end - p);
    const uint8_t *body = hdr + hdr_len + (nul ? 1 : 0);
    size_t body_len = (size_t)(end - body);
    /* nats.c's buffer: header block then body, as it comes off the socket. */
    char *buf = malloc(hdr_len + body_len + 1);
    if (!reply || !buf) {
        free(reply);
        free(buf);
        return 0;
    }
    memcpy(buf, hdr, hdr_len);
    memcpy(buf + hdr_len, body, body_len);

    uint32_t delivered;
    int64_t ts;
    (void)fs__nats_js_meta(reply, &delivered, &ts);
    (void)fs__nats_check_subject(reply, wild, "fuzz");

    natsMsg *msg = NULL;
    if (natsMsg_create(&msg, "fuzz.in", 7, reply, (int)strlen(reply), buf,
                       (int)(hdr_len + body_len), hdr_len ? (int)hdr_len : -1) == NATS_OK) {
        fs__nats_hdrs h = {0};
        fs_message m = {0};
        if (fs__nats_decode(msg, js, &h, &m) == FS_OK) {
            check_message(&m);
            FUZZ_CHECK(m.body_len == body_len);
            check_against_natsc(msg, &m);
            fs__nats_hdrs h2 = {0};
            round_trip(&m, js, &h2);
            fs__nats_hdrs_free(&h2);
        }
        fs__nats_hdrs_free(&h);
        natsMsg_Destroy(msg);
    }
    free(buf);
    free(reply);
    return 0;
}
