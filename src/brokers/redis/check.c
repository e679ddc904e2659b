/*
 * The shape of every reply the readers turn into messages, checked before
 * any of it is used: a Redis server is a remote party, and a reply of the
 * wrong shape (an integer where a key belongs, a nil among the values, an
 * entry without an id) is a protocol error that drops the connection, never
 * a message with a NULL source. Pure functions of a reply (fuzzed by
 * tests/fuzz/fuzz_redis_reply.c); each failure records a message naming the
 * command, the source and what is wrong, and returns FS_EPROTOCOL.
 */
#include "internal.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

static const char *type_name(const redisReply *r)
{
    if (!r)
        return "nothing";
    switch (r->type) {
    case REDIS_REPLY_STRING:
        return "a string";
    case REDIS_REPLY_ARRAY:
        return "an array";
    case REDIS_REPLY_INTEGER:
        return "an integer";
    case REDIS_REPLY_NIL:
        return "nil";
    case REDIS_REPLY_STATUS:
        return "a status";
    case REDIS_REPLY_ERROR:
        return "an error";
    default:
        return "of an unknown type";
    }
}

static int bad(const char *cmd, const char *name, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int bad(const char *cmd, const char *name, const char *fmt, ...)
{
    char why[160];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(why, sizeof why, fmt, ap);
    va_end(ap);
    return fs_adapter_error(FS_EPROTOCOL, "redis: malformed %s reply for %s: %s", cmd, name, why);
}

static bool bulk(const redisReply *r)
{
    return r && r->type == REDIS_REPLY_STRING && r->str;
}

static bool is_array(const redisReply *r)
{
    return r && r->type == REDIS_REPLY_ARRAY && (r->elements == 0 || r->element);
}

static bool names(const redisReply *r, const char *name, size_t name_len)
{
    return bulk(r) && r->len == name_len && memcmp(r->str, name, name_len) == 0;
}

int fs__redis_check_pop(const redisReply *r, const char *name, size_t name_len)
{
    if (r->type == REDIS_REPLY_NIL)
        return FS_OK; /* the block timed out */
    if (!is_array(r) || r->elements != 2)
        return bad("BLMPOP", name, "expected [list, values], got %s", type_name(r));
    if (!names(r->element[0], name, name_len))
        return bad("BLMPOP", name, "the list's name is %s, not this list's",
                   type_name(r->element[0]));
    const redisReply *v = r->element[1];
    if (!is_array(v) || v->elements == 0)
        return bad("BLMPOP", name, "the values are %s, not a non-empty array", type_name(v));
    for (size_t i = 0; i < v->elements; i++)
        if (!bulk(v->element[i]))
            return bad("BLMPOP", name, "value %zu is %s", i, type_name(v->element[i]));
    return FS_OK;
}

/* [id, [field, value, ...]] (or, with `deleted_ok`, [id, nil]: deleted while pending). */
static int check_entry(const char *cmd, const char *name, const redisReply *e, size_t i,
                       bool deleted_ok)
{
    sid id;
    if (!is_array(e) || e->elements != 2)
        return bad(cmd, name, "entry %zu is %s, not [id, fields]", i, type_name(e));
    if (!bulk(e->element[0]) || !fs__redis_sid_parse(e->element[0]->str, e->element[0]->len, &id))
        return bad(cmd, name, "the id of entry %zu is %s, not an entry id", i,
                   type_name(e->element[0]));
    const redisReply *f = e->element[1];
    if (deleted_ok && f && f->type == REDIS_REPLY_NIL)
        return FS_OK;
    if (!is_array(f) || f->elements % 2)
        return bad(cmd, name, "the fields of entry %zu are %s, not field/value pairs", i,
                   type_name(f));
    for (size_t k = 0; k < f->elements; k++)
        if (!bulk(f->element[k]))
            return bad(cmd, name, "a field or value of entry %zu is %s", i,
                       type_name(f->element[k]));
    return FS_OK;
}

int fs__redis_check_entries(const char *cmd, const char *name, const redisReply *e, bool deleted_ok,
                            bool nil_ok)
{
    if (!is_array(e))
        return bad(cmd, name, "the entries are %s, not an array", type_name(e));
    for (size_t i = 0; i < e->elements; i++) {
        if (nil_ok && e->element[i] && e->element[i]->type == REDIS_REPLY_NIL)
            continue; /* XCLAIM of an entry deleted meanwhile (Redis 6) */
        int rc = check_entry(cmd, name, e->element[i], i, deleted_ok);
        if (rc)
            return rc;
    }
    return FS_OK;
}

int fs__redis_check_streams(const char *cmd, const char *name, size_t name_len, const redisReply *r)
{
    if (r->type == REDIS_REPLY_NIL)
        return FS_OK; /* the block timed out */
    if (!is_array(r) || r->elements != 1)
        return bad(cmd, name, "expected one [stream, entries], got %s", type_name(r));
    const redisReply *s0 = r->element[0];
    if (!is_array(s0) || s0->elements != 2)
        return bad(cmd, name, "the stream part is %s, not [stream, entries]", type_name(s0));
    if (!names(s0->element[0], name, name_len))
        return bad(cmd, name, "the stream's name is %s, not this stream's",
                   type_name(s0->element[0]));
    return fs__redis_check_entries(cmd, name, s0->element[1], true, false);
}

int fs__redis_check_autoclaim(const char *name, const redisReply *r)
{
    sid id;
    if (!is_array(r) || r->elements < 2 || r->elements > 3)
        return bad("XAUTOCLAIM", name, "expected [cursor, entries(, deleted)], got %s",
                   type_name(r));
    if (!bulk(r->element[0]) || !fs__redis_sid_parse(r->element[0]->str, r->element[0]->len, &id))
        return bad("XAUTOCLAIM", name, "the cursor is %s, not an entry id",
                   type_name(r->element[0]));
    int rc = fs__redis_check_entries("XAUTOCLAIM", name, r->element[1], true, false);
    if (rc || r->elements == 2)
        return rc;
    const redisReply *d = r->element[2];
    if (!is_array(d))
        return bad("XAUTOCLAIM", name, "the deleted ids are %s, not an array", type_name(d));
    for (size_t i = 0; i < d->elements; i++)
        if (!bulk(d->element[i]))
            return bad("XAUTOCLAIM", name, "deleted id %zu is %s", i, type_name(d->element[i]));
    return FS_OK;
}

int fs__redis_check_pending(const char *name, const redisReply *r)
{
    if (!is_array(r))
        return bad("XPENDING", name, "expected an array, got %s", type_name(r));
    for (size_t i = 0; i < r->elements; i++) {
        const redisReply *e = r->element[i];
        sid id;
        if (!is_array(e) || e->elements != 4 || !bulk(e->element[0]) ||
            !fs__redis_sid_parse(e->element[0]->str, e->element[0]->len, &id) ||
            !bulk(e->element[1]) || !e->element[2] || e->element[2]->type != REDIS_REPLY_INTEGER ||
            !e->element[3] || e->element[3]->type != REDIS_REPLY_INTEGER ||
            e->element[3]->integer < 0)
            return bad("XPENDING", name, "entry %zu is %s, not [id, consumer, idle, count]", i,
                       type_name(e));
    }
    return FS_OK;
}

int fs__redis_check_push(const char *name, const redisReply *r)
{
    if (!is_array(r) || r->elements < 3 || !bulk(r->element[0]))
        return bad("SUBSCRIBE", name, "expected a [kind, ...] message, got %s", type_name(r));
    const char *kind = r->element[0]->str;
    size_t want = strcmp(kind, "message") == 0 ? 3 : strcmp(kind, "pmessage") == 0 ? 4 : 0;
    if (want) {
        if (r->elements != want)
            return bad("SUBSCRIBE", name, "a %s of %zu parts", kind, r->elements);
        for (size_t i = 1; i < want; i++)
            if (!bulk(r->element[i]))
                return bad("SUBSCRIBE", name, "part %zu of a message is %s", i,
                           type_name(r->element[i]));
        return FS_OK;
    }
    if ((strcmp(kind, "subscribe") == 0 || strcmp(kind, "psubscribe") == 0 ||
         strcmp(kind, "unsubscribe") == 0 || strcmp(kind, "punsubscribe") == 0) &&
        r->elements == 3 && r->element[2] && r->element[2]->type == REDIS_REPLY_INTEGER)
        return FS_OK;
    return bad("SUBSCRIBE", name, "an unknown push message (first part %s)",
               type_name(r->element[0]));
}
