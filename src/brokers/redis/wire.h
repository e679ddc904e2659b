/*
 * FastStream's Redis message formats: a pure codec, no I/O. Not installed.
 *
 * FastStream (ag2ai/faststream, faststream/redis/parser/) writes a message
 * body together with its headers into one Redis value, in one of two layouts:
 *
 * Binary format v1 (BinaryMessageFormatV1, FastStream's default since 0.6),
 * every integer big-endian:
 *
 *     offset 0   8 bytes   identity header 89 'B' 'I' 'N' 0D 0A 1A 0A
 *     offset 8   u16       format version, 1
 *     offset 10  u32       headers_start: offset of the header count (18)
 *     offset 14  u32       data_start: offset of the body
 *     headers_start:       u16 header count, then per header
 *                          u16 key length, key bytes, u16 value length, value bytes
 *     data_start..end      the body, untouched
 *
 * JSON envelope (JSONMessageFormat, deprecated but still read):
 *
 *     {"data": "<body as a UTF-8 string>", "headers": {"key": "value", ...}}
 *
 * Headers FastStream writes, in this order: correlation_id (always),
 * content-type (when known), reply_to (when set), then the user's headers
 * (a user header with one of those names replaces its value in place).
 *
 * Parsing follows BinaryMessageFormatV1.parse: the binary layout when the
 * identity header and version match and the layout is intact; otherwise a JSON
 * object whose "data" member is a string (its "headers" object optional);
 * otherwise the value is a raw body with no headers.
 *
 * A stream entry carries the encoded message in its field "__data__". An
 * entry without that field is read as FastStream reads it: its fields
 * serialised as a JSON object, which then goes through the same parse.
 */
#ifndef FS_REDIS_WIRE_H
#define FS_REDIS_WIRE_H

#include "faststream/common.h"
#include "faststream/redis.h"
#include "kit/buffer.h"
#include "kit/utf8.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/** The identity header that opens a binary v1 message. */
#define FS__REDIS_BINARY_MAGIC                                                                     \
    "\x89"                                                                                         \
    "BIN\r\n\x1a\n"
#define FS__REDIS_BINARY_MAGIC_LEN 8
#define FS__REDIS_BINARY_VERSION 1
/** Stream entry field that holds the encoded message. */
#define FS__REDIS_STREAM_FIELD "__data__"

/** One header: byte strings, not NUL-terminated. */
typedef struct fs__redis_kv {
    const char *key;
    size_t key_len;
    const char *value;
    size_t value_len;
} fs__redis_kv;

/** What to encode. Every string may be NULL (absent) except the body when body_len > 0. */
typedef struct fs__redis_envelope {
    const void *body;
    size_t body_len;
    const char *correlation_id; /**< NULL is written as "" (FastStream always writes the key) */
    const char *reply_to;       /**< written only when non-empty */
    const char *content_type;   /**< written only when non-empty */
    const fs__redis_kv *headers;
    size_t header_count;
} fs__redis_envelope;

/** Scratch space for decoding and encoding; keep one per reader or writer and reuse it. */
typedef struct fs__redis_scratch {
    fs_kit_buf bytes; /**< unescaped JSON strings */
    fs_kit_buf json;  /**< a stream entry's fields rendered as JSON */
    fs__redis_kv *kv;
    size_t kv_cap;
    /* Beyond a few headers, repeated keys are found through an open-addressing
     * index of kv (built per message, its memory reused): linear decoding and
     * encoding. */
    struct fs__redis_kv_slot *index;
    size_t index_cap;      /**< slots allocated */
    size_t index_mask;     /**< slots in use - 1 (a power of two); 0: no index, linear search */
    uint64_t index_key[2]; /**< the keyed hash's key, drawn when the index is first allocated */
} fs__redis_scratch;

void fs__redis_scratch_free(fs__redis_scratch *s);

/**
 * Append the encoding of `env` in `format` to `out` (which is not cleared).
 * FS_REDIS_FORMAT_RAW writes the body alone. Fails with FS_EINVAL when the
 * format cannot carry the message (DEFAULT means BINARY): a header longer than 65535 bytes or more
 * than 65535 headers (binary), a body or header that is not valid UTF-8 (JSON).
 * Repeated header keys are merged through `scratch` (reused, linear time).
 */
int fs__redis_encode(fs_redis_format format, const fs__redis_envelope *env,
                     fs__redis_scratch *scratch, fs_kit_buf *out);

/** A decoded message. Pointers point into the input or into the scratch. */
typedef struct fs__redis_decoded {
    fs_redis_format format; /**< the layout that was recognised */
    const char *body;
    size_t body_len;
    const fs__redis_kv *headers;
    size_t header_count;
} fs__redis_decoded;

/**
 * Decode one Redis value. Never fails on content (anything unrecognised is a
 * raw body); fails only with FS_ENOMEM. A JSON header whose value is not a
 * string is given as its JSON text (`5`, `true`, `{"a":1}`).
 * The result stays valid until the scratch is reused or `data` is freed.
 */
int fs__redis_decode(const char *data, size_t len, fs__redis_scratch *scratch,
                     fs__redis_decoded *out);

/**
 * Decode a stream entry given as field/value pairs: the "__data__" field's
 * value when present, otherwise the entry's fields as one JSON object.
 */
int fs__redis_decode_fields(const fs__redis_kv *fields, size_t field_count,
                            fs__redis_scratch *scratch, fs__redis_decoded *out);

/** The value of header `key` (NUL-terminated name), or NULL; sets *len. */
const char *fs__redis_header(const fs__redis_decoded *m, const char *key, size_t *len);

/* ---- Internals shared by the codec's files (wire.c, json.c, wire_index.c) ---- */

typedef int (*fs__redis_header_fn)(void *ctx, const char *k, size_t kl, const char *v, size_t vl);

/* wire_index.c: the repeated-key index of scratch->kv */
void fs__redis_kv_reset(fs__redis_scratch *s);
fs__redis_kv *fs__redis_kv_find(fs__redis_scratch *s, size_t count, const char *k, size_t kl);
/* Set key to value in kv[0..*count): a repeated key keeps its place, last value wins. */
int fs__redis_kv_set(fs__redis_scratch *s, size_t *count, const char *k, size_t kl, const char *v,
                     size_t vl);

/* wire.c */
int fs__redis_dedup_headers(const fs__redis_envelope *env, fs__redis_scratch *s, size_t *count);
int fs__redis_walk_headers(const fs__redis_envelope *env, fs__redis_scratch *s, size_t count,
                           fs__redis_header_fn fn, void *ctx);
int fs__redis_check_header(const char *k, size_t kl, const char *v, size_t vl, bool binary);

/* json.c */
/* Append `s` as a JSON string literal (quotes included). `s` is valid UTF-8. */
int fs__redis_json_put_string(fs_kit_buf *b, const char *s, size_t n);
int fs__redis_encode_json(const fs__redis_envelope *env, fs__redis_scratch *s, fs_kit_buf *out);
int fs__redis_decode_json(const char *data, size_t len, fs__redis_scratch *s,
                          fs__redis_decoded *out);

#endif
