/*
 * kit/pack.h - packing a message's content (headers, strings, key, body)
 * into one block of memory: heap copies of messages (core/message.c) and
 * the in-process broker's slots (brokers/memory) share it. Inline: it is on
 * the in-process broker's publish path. Internal (not installed); part of
 * the adapter kit (src/kit).
 */
#ifndef FS_KIT_PACK_H
#define FS_KIT_PACK_H

#include "faststream/adapter.h"

#include <stdint.h>
#include <string.h>

static inline size_t fs_kit_pack_str_size(const char *s)
{
    return s ? strlen(s) + 1 : 0;
}

static inline const char *fs_kit_pack_str(char **cur, const char *s)
{
    if (!s)
        return NULL;
    size_t n = strlen(s) + 1;
    char *d = *cur;
    memcpy(d, s, n);
    *cur += n;
    return d;
}

/* a + b, or SIZE_MAX when it overflows (a malloc of that fails). */
static inline size_t fs_kit_size_add(size_t a, size_t b)
{
    return b > SIZE_MAX - a ? SIZE_MAX : a + b;
}

/* The length of a header's value (value_len, or strlen for a NUL-terminated one). */
static inline size_t fs_kit_header_value_len(const fs_header *h)
{
    return h->value_len ? h->value_len : (h->value ? strlen(h->value) : 0);
}

/*
 * The bytes fs_kit_pack needs for `env` (and `source` when not NULL): the
 * header array, the strings, the key, the body and a NUL after it.
 * SIZE_MAX when the sizes overflow.
 */
static inline size_t fs_kit_pack_size(const fs_envelope *env, const char *source)
{
    if (env->header_count > SIZE_MAX / sizeof(fs_header))
        return SIZE_MAX;
    size_t need = env->header_count * sizeof(fs_header);
    for (size_t i = 0; i < env->header_count; i++) {
        const fs_header *h = &env->headers[i];
        need = fs_kit_size_add(need, fs_kit_pack_str_size(h->name ? h->name : ""));
        need = fs_kit_size_add(need, fs_kit_size_add(fs_kit_header_value_len(h), 1));
    }
    const char *strs[] = {env->content_type, env->correlation_id, env->message_id, env->reply_to,
                          source};
    for (size_t i = 0; i < sizeof strs / sizeof strs[0]; i++)
        need = fs_kit_size_add(need, fs_kit_pack_str_size(strs[i]));
    if (env->key)
        need = fs_kit_size_add(need, env->key_len);
    return fs_kit_size_add(need, fs_kit_size_add(env->body_len, 1));
}

/*
 * Copy the content of `env` (and `source` when not NULL) into `base`
 * (fs_kit_pack_size bytes, aligned for fs_header) and point the public
 * fields of `m` at the copies; a NULL header name or value becomes "". Every
 * header value and the body are followed by a NUL that their lengths do not
 * count. Also sets key, partition (-1 unless env->partition_set) and
 * timestamp_ms. `raw`, `release`, offset, delivery_count and the adapter's
 * fields are left alone, and so is m->source when `source` is NULL.
 */
static inline void fs_kit_pack(fs_message *m, const fs_envelope *env, const char *source,
                               void *base)
{
    fs_header *h = (fs_header *)base;
    char *cur = (char *)(h + env->header_count);
    for (size_t i = 0; i < env->header_count; i++) {
        const fs_header *in = &env->headers[i];
        h[i].name = fs_kit_pack_str(&cur, in->name ? in->name : "");
        size_t vl = fs_kit_header_value_len(in);
        if (vl)
            memcpy(cur, in->value, vl);
        cur[vl] = '\0';
        h[i].value = cur;
        h[i].value_len = in->value_len;
        cur += vl + 1;
    }
    m->headers = env->header_count ? h : NULL;
    m->header_count = env->header_count;
    m->content_type = fs_kit_pack_str(&cur, env->content_type);
    m->correlation_id = fs_kit_pack_str(&cur, env->correlation_id);
    m->message_id = fs_kit_pack_str(&cur, env->message_id);
    m->reply_to = fs_kit_pack_str(&cur, env->reply_to);
    if (source)
        m->source = fs_kit_pack_str(&cur, source);
    if (env->key) {
        if (env->key_len)
            memcpy(cur, env->key, env->key_len);
        m->key = cur;
        m->key_len = env->key_len;
        cur += env->key_len;
    } else {
        m->key = NULL;
        m->key_len = 0;
    }
    m->partition = env->partition_set ? env->partition : -1;
    m->timestamp_ms = env->timestamp_ms;
    if (env->body_len)
        memcpy(cur, env->body, env->body_len);
    cur[env->body_len] = '\0';
    m->body = cur;
    m->body_len = env->body_len;
}

/*
 * The content of message `m` as an envelope (to copy or publish it again).
 * The correlation and message ids are the message's own fields (not the
 * ones the core generates lazily): pass fs_message_correlation_id(m) where
 * you want those.
 */
static inline fs_envelope fs_kit_message_envelope(const fs_message *m)
{
    fs_envelope e;
    memset(&e, 0, sizeof e);
    e.body = m->body;
    e.body_len = m->body_len;
    e.headers = m->headers;
    e.header_count = m->header_count;
    e.content_type = m->content_type;
    e.correlation_id = m->correlation_id;
    e.message_id = m->message_id;
    e.reply_to = m->reply_to;
    e.key = m->key;
    e.key_len = m->key_len;
    e.timestamp_ms = m->timestamp_ms;
    return e;
}

#endif
