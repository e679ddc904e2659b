/*
 * Packing a message's content (headers, strings, body) into one block of
 * memory: heap copies of messages (message.c) and the in-process broker's
 * slots (brokers/memory) share it. Inline: it is on the in-process broker's
 * publish path. Not installed.
 */
#ifndef FS_CORE_PACK_H
#define FS_CORE_PACK_H

#include "faststream/adapter.h"

#include <stdint.h>
#include <string.h>

static inline size_t fs__pack_str_size(const char *s)
{
    return s ? strlen(s) + 1 : 0;
}

static inline const char *fs__pack_str(char **cur, const char *s)
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
static inline size_t fs__size_add(size_t a, size_t b)
{
    return b > SIZE_MAX - a ? SIZE_MAX : a + b;
}

/*
 * The bytes fs__pack needs for `env` (and `source` when not NULL): the
 * header array, the strings, the body and a NUL after it. SIZE_MAX when the
 * sizes overflow.
 */
static inline size_t fs__pack_size(const fs_envelope *env, const char *source)
{
    if (env->header_count > SIZE_MAX / sizeof(fs_header))
        return SIZE_MAX;
    size_t need = env->header_count * sizeof(fs_header);
    for (size_t i = 0; i < env->header_count; i++) {
        need =
            fs__size_add(need, fs__pack_str_size(env->headers[i].name ? env->headers[i].name : ""));
        need = fs__size_add(need,
                            fs__pack_str_size(env->headers[i].value ? env->headers[i].value : ""));
    }
    const char *strs[] = {env->content_type, env->correlation_id, env->message_id, env->reply_to,
                          source};
    for (size_t i = 0; i < sizeof strs / sizeof strs[0]; i++)
        need = fs__size_add(need, fs__pack_str_size(strs[i]));
    return fs__size_add(need, fs__size_add(env->body_len, 1));
}

/*
 * Copy the content of `env` (and `source` when not NULL) into `base`
 * (fs__pack_size bytes, aligned for fs_header) and point the public fields
 * of `m` at the copies; a NULL header name or value becomes "". The body is
 * followed by a NUL that body_len does not count. `raw`, `release` and the
 * adapter's fields are left alone, and so is m->source when `source` is NULL.
 */
static inline void fs__pack(fs_message *m, const fs_envelope *env, const char *source, void *base)
{
    fs_header *h = base;
    char *cur = (char *)(h + env->header_count);
    for (size_t i = 0; i < env->header_count; i++) {
        h[i].name = fs__pack_str(&cur, env->headers[i].name ? env->headers[i].name : "");
        h[i].value = fs__pack_str(&cur, env->headers[i].value ? env->headers[i].value : "");
    }
    m->headers = env->header_count ? h : NULL;
    m->header_count = env->header_count;
    m->content_type = fs__pack_str(&cur, env->content_type);
    m->correlation_id = fs__pack_str(&cur, env->correlation_id);
    m->message_id = fs__pack_str(&cur, env->message_id);
    m->reply_to = fs__pack_str(&cur, env->reply_to);
    if (source)
        m->source = fs__pack_str(&cur, source);
    if (env->body_len)
        memcpy(cur, env->body, env->body_len);
    cur[env->body_len] = '\0';
    m->body = cur;
    m->body_len = env->body_len;
}

/* The content of message `m` as an envelope (to copy or publish it again). */
static inline fs_envelope fs__message_envelope(const fs_message *m)
{
    fs_envelope e = FS_ENVELOPE_INIT;
    e.body = m->body;
    e.body_len = m->body_len;
    e.headers = m->headers;
    e.header_count = m->header_count;
    e.content_type = m->content_type;
    e.correlation_id = m->correlation_id;
    e.message_id = m->message_id;
    e.reply_to = m->reply_to;
    return e;
}

#endif
