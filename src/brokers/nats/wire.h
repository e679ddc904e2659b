/*
 * FastStream's NATS message layout: the body as it is, metadata in NATS
 * headers ("content-type", "correlation_id", "reply_to" on JetStream,
 * "Nats-Msg-Id" for a message id on JetStream). Both ways, on nats.c
 * messages; needs no server.
 */
#ifndef FS_NATS_WIRE_H
#define FS_NATS_WIRE_H

#include "faststream/adapter.h"
#include "kit/check.h"

#include <nats/nats.h>
#include <stdbool.h>

#define FS__NATS_H_CONTENT_TYPE "content-type"
#define FS__NATS_H_CORRELATION_ID "correlation_id"
#define FS__NATS_H_REPLY_TO "reply_to"
#define FS__NATS_H_MESSAGE_ID "message_id"
#define FS__NATS_H_MSG_ID "Nats-Msg-Id"
#define FS__NATS_H_EXPECTED_STREAM "Nats-Expected-Stream"

/* The decoded headers of one message: reused from message to message. */
typedef struct fs__nats_hdrs {
    fs_header *items;
    size_t cap;
    char *text; /* a copy of the received header block, cut into names and values */
    size_t text_cap;
} fs__nats_hdrs;

void fs__nats_hdrs_free(fs__nats_hdrs *h);

/*
 * Fill m's body, source, headers, content_type, correlation_id, message_id
 * and reply_to from `msg` (pointing into it: valid while it lives). `js`:
 * reply_to comes from the "reply_to" header (the reply subject is the ack
 * subject), else it is the message's reply subject.
 */
int fs__nats_decode(natsMsg *msg, bool js, fs__nats_hdrs *h, fs_message *m);

/*
 * The header block of a message as received ("NATS/1.0\r\n...\r\n\r\n"),
 * untouched by nats.c's header parsing, and its length; NULL when there is
 * none or nats.c has parsed it already (see wire.c). For decode and tests.
 */
const char *fs__nats_raw_headers(natsMsg *msg, size_t *len);

/*
 * A new nats.c message for `env` on `subject` with FastStream's headers;
 * `reply` is its NATS reply subject (core) or NULL. `js`: reply_to and
 * message_id go in headers. FS_EINVAL names a header that NATS cannot carry.
 * The header block is written directly into the message where nats.c 3.x
 * allows it (wire.c), else through natsMsgHeader_Add/Set.
 */
int fs__nats_encode(const char *subject, const char *reply, const fs_envelope *env, bool js,
                    natsMsg **out);

/*
 * A JetStream publish of `env` (js as above) that the server accepts only
 * into `stream` (the Nats-Expected-Stream header, which jsPubOptions'
 * ExpectStream would add; NULL: any stream).
 */
int fs__nats_encode_js(const char *subject, const fs_envelope *env, const char *stream,
                       natsMsg **out);

/*
 * FS_OK when `subject` is a valid NATS subject: non-empty tokens separated
 * by '.', no whitespace; with `wildcards`, a token may be '*' and the last
 * one '>'. FS_EINVAL with a message naming `what` otherwise.
 */
int fs__nats_check_subject(const char *subject, bool wildcards, const char *what);

/*
 * From a JetStream ack subject ("$JS.ACK.<stream>.<consumer>.<delivered>.
 * <stream seq>.<consumer seq>.<ns timestamp>.<pending>", or the longer form
 * with domain and account hash), the delivery count and the timestamp in
 * milliseconds. False when `reply` is not one.
 */
bool fs__nats_js_meta(const char *reply, uint32_t *delivered, int64_t *timestamp_ms);

/* The same from the delivery count on ("3.17.12.1700000000123456789.5"): for a known prefix. */
bool fs__nats_js_meta_tail(const char *p, uint32_t *delivered, int64_t *timestamp_ms);
#endif
