/*
 * ops->backlog: how many messages wait for a subscription, for the
 * Prometheus middleware's opt-in backlog family. A list: LLEN. A stream read
 * by a group: the group's lag (entries not yet delivered to it, Redis 7's
 * XINFO GROUPS `lag`) plus its pending entries (delivered, not acknowledged).
 * Channels and streams read without a group keep nothing for a consumer:
 * FS_EUNSUPPORTED.
 */
#include "internal.h"

#include <string.h>

/* The integer value of `key` in a flat key/value reply array, or -1 (absent or nil). */
static long long field_int(const redisReply *r, const char *key)
{
    for (size_t i = 0; i + 1 < r->elements; i += 2) {
        const redisReply *k = r->element[i], *v = r->element[i + 1];
        if (k->type == REDIS_REPLY_STRING && strcmp(k->str, key) == 0)
            return v->type == REDIS_REPLY_INTEGER ? v->integer : -1;
    }
    return -1;
}

static bool field_is(const redisReply *r, const char *key, const char *value)
{
    for (size_t i = 0; i + 1 < r->elements; i += 2) {
        const redisReply *k = r->element[i], *v = r->element[i + 1];
        if (k->type == REDIS_REPLY_STRING && strcmp(k->str, key) == 0)
            return v->type == REDIS_REPLY_STRING && strcmp(v->str, value) == 0;
    }
    return false;
}

static int group_backlog(const rsub *s, const redisReply *r, uint64_t *out)
{
    if (r->type != REDIS_REPLY_ARRAY)
        return fs_adapter_error(FS_EPROTOCOL, "redis: XINFO GROUPS %s: not an array", s->name);
    for (size_t i = 0; i < r->elements; i++) {
        const redisReply *g = r->element[i];
        if (g->type != REDIS_REPLY_ARRAY || !field_is(g, "name", s->group))
            continue;
        long long pending = field_int(g, "pending"), lag = field_int(g, "lag");
        if (pending < 0)
            return fs_adapter_error(FS_EPROTOCOL, "redis: XINFO GROUPS %s: no pending count",
                                    s->name);
        if (lag < 0) /* Redis cannot tell (entries deleted); count what is pending */
            lag = 0;
        *out = (uint64_t)pending + (uint64_t)lag;
        return FS_OK;
    }
    return fs_adapter_error(FS_ENOTFOUND, "redis: stream %s has no group %s (yet)", s->name,
                            s->group);
}

int fs__redis_backlog(void *impl, void *sub, int timeout_ms, uint64_t *out)
{
    redis_broker *b = impl;
    const rsub *s = sub;
    redisReply *r = NULL;
    int rc;
    if (s->kind == FS_REDIS_LIST && !s->pattern) {
        const char *argv[] = {"LLEN", s->name};
        rc = fs__redis_pool_command(b, 2, argv, timeout_ms, "LLEN", &r);
        if (rc == FS_OK && r->type != REDIS_REPLY_INTEGER)
            rc = fs_adapter_error(FS_EPROTOCOL, "redis: LLEN %s: not an integer", s->name);
        if (rc == FS_OK)
            *out = r->integer < 0 ? 0 : (uint64_t)r->integer;
    } else if (s->kind == FS_REDIS_STREAM && s->grouped) {
        const char *argv[] = {"XINFO", "GROUPS", s->name};
        rc = fs__redis_pool_command(b, 3, argv, timeout_ms, "XINFO GROUPS", &r);
        if (rc == FS_OK)
            rc = group_backlog(s, r, out);
    } else {
        return fs_adapter_error(FS_EUNSUPPORTED, "redis: a %s keeps no backlog for its subscribers",
                                s->kind == FS_REDIS_CHANNEL ? "channel"
                                                            : "stream read without a group");
    }
    fs__redis_reply_free(r);
    return rc;
}
