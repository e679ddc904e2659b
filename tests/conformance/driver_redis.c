/*
 * Redis columns: a channel, a list and a stream read by a consumer group.
 * Messages are put and the server's state is read with hiredis on its own
 * connection (PUBLISH / RPUSH / XADD; LLEN, XINFO GROUPS, XPENDING, XLEN).
 */
#include "conformance.h"

#include <hiredis/hiredis.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define GROUP "conf"

static int port(void)
{
    const char *p = getenv("FS_REDIS_PORT");
    return p && *p ? atoi(p) : 6379;
}

static redisContext *raw(void)
{
    struct timeval tv = {2, 0};
    redisContext *c = redisConnectWithTimeout("127.0.0.1", port(), tv);
    if (!c || c->err) {
        redisFree(c);
        return NULL;
    }
    redisSetTimeout(c, tv);
    return c;
}

/* Run a command; the reply, or NULL on an I/O error. */
static redisReply *cmd(redisContext *c, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    redisReply *r = redisvCommand(c, fmt, ap);
    va_end(ap);
    return r;
}

static long long cmd_int(redisContext *c, const char *fmt, const char *arg)
{
    redisReply *r = cmd(c, fmt, arg);
    long long v = r && r->type == REDIS_REPLY_INTEGER ? r->integer : -1;
    freeReplyObject(r);
    return v;
}

static bool redis_available(char *why, size_t n)
{
    redisContext *c = raw();
    if (!c) {
        snprintf(why, n, "no redis-server on 127.0.0.1:%d (scripts/services.sh start redis)",
                 port());
        return false;
    }
    redisFree(c);
    return true;
}

/* Each broker names its connections (CLIENT SETNAME), so that wait_ready can find them. */
static int redis_broker_new(fs_broker **out)
{
    static atomic_uint seq;
    char url[128];
    snprintf(url, sizeof url, "redis://127.0.0.1:%d/0?client_name=conf-%ld-%u", port(),
             (long)getpid(), atomic_fetch_add(&seq, 1));
    return fs_broker_new(url, NULL, out);
}

static void dlq_name(const char *source, char *buf, size_t n)
{
    snprintf(buf, n, "%s:dlq", source);
}

static const void *sub_options(fs_redis_kind kind, const char *source, void *scratch)
{
    fs_redis_subscriber_options *o = scratch;
    *o = (fs_redis_subscriber_options)FS_REDIS_SUBSCRIBER_OPTIONS_INIT;
    o->kind = kind;
    if (kind == FS_REDIS_STREAM) {
        char *dlq = (char *)(o + 1);
        dlq_name(source, dlq, CONF_SCRATCH - sizeof *o);
        o->group = GROUP;
        o->start_id = "0";
        o->dead_letter = dlq;
    }
    return o;
}

static const void *pub_options(fs_redis_kind kind, void *scratch)
{
    fs_redis_publish_options *o = scratch;
    *o = (fs_redis_publish_options)FS_REDIS_PUBLISH_OPTIONS_INIT;
    o->kind = kind;
    return o;
}

static int put(fs_redis_kind kind, const char *source, const void *body, size_t len)
{
    redisContext *c = raw();
    if (!c)
        return FS_EIO;
    static const char *const fmt[] = {"PUBLISH %s %b", "RPUSH %s %b", "XADD %s * __data__ %b"};
    redisReply *r = cmd(c, fmt[kind], source, body, len);
    int rc = r && r->type != REDIS_REPLY_ERROR ? FS_OK : FS_EIO;
    freeReplyObject(r);
    redisFree(c);
    return rc;
}

/* True when one of this broker's connections has a pattern subscription (CLIENT LIST). */
static bool pattern_subscribed(redisContext *c, fs_broker *b)
{
    const char *name = strstr(fs_broker_url(b), "client_name=");
    if (!name)
        return false;
    char want[96];
    snprintf(want, sizeof want, " name=%.*s ", (int)strcspn(name + 12, "&"), name + 12);
    redisReply *r = cmd(c, "CLIENT LIST TYPE pubsub");
    bool found = false;
    for (const char *line = r && r->type == REDIS_REPLY_STRING ? r->str : NULL; line && !found;
         line = strchr(line, '\n') ? strchr(line, '\n') + 1 : NULL) {
        const char *end = strchr(line, '\n'), *hit = strstr(line, want),
                   *ps = strstr(line, " psub=");
        found = hit && ps && (!end || (hit < end && ps < end)) && ps[6] != '0';
    }
    freeReplyObject(r);
    return found;
}

/* A channel subscriber receives only once (P)SUBSCRIBE took effect. */
static int channel_ready(fs_broker *b, const char *source)
{
    redisContext *c = raw();
    if (!c)
        return FS_EIO;
    bool pattern = strchr(source, '*') != NULL;
    int rc = FS_ETIMEDOUT;
    for (int i = 0; i < 1000 && rc != FS_OK; i++) {
        if (pattern) {
            rc = pattern_subscribed(c, b) ? FS_OK : FS_ETIMEDOUT;
        } else {
            redisReply *r = cmd(c, "PUBSUB NUMSUB %s", source);
            if (r && r->type == REDIS_REPLY_ARRAY && r->elements == 2 && r->element[1]->integer > 0)
                rc = FS_OK;
            freeReplyObject(r);
        }
        if (rc != FS_OK)
            nanosleep(&(struct timespec){0, 5000000}, NULL);
    }
    redisFree(c);
    return rc;
}

/* PSUBSCRIBE SOURCE.*; the message goes to SOURCE.x */
static const void *channel_pattern(const char *source, char *pattern, char *concrete, size_t n,
                                   void *scratch)
{
    snprintf(pattern, n, "%.*s.*", (int)(n - 3), source);
    snprintf(concrete, n, "%.*s.x", (int)(n - 3), source);
    fs_redis_subscriber_options *o = scratch;
    *o = (fs_redis_subscriber_options)FS_REDIS_SUBSCRIBER_OPTIONS_INIT;
    o->pattern = true;
    return o;
}

static void stream_prepare(const char *source)
{
    redisContext *c = raw();
    if (!c)
        return;
    freeReplyObject(cmd(c, "XGROUP CREATE %s " GROUP " 0 MKSTREAM", source));
    redisFree(c);
}

/* A field of an XINFO GROUPS entry (a flat name/value array). */
static long long info_field(const redisReply *g, const char *name)
{
    for (size_t i = 0; i + 1 < g->elements; i += 2)
        if (g->element[i]->type == REDIS_REPLY_STRING && strcmp(g->element[i]->str, name) == 0)
            return g->element[i + 1]->type == REDIS_REPLY_INTEGER ? g->element[i + 1]->integer : -1;
    return -1;
}

static int stream_state(fs_broker *b, const char *source, conf_broker_state *out)
{
    (void)b;
    redisContext *c = raw();
    if (!c)
        return FS_EIO;
    char dlq[256];
    dlq_name(source, dlq, sizeof dlq);
    long long pending = -1, read = -1, lag = -1;
    redisReply *r = cmd(c, "XINFO GROUPS %s", source);
    for (size_t i = 0; r && r->type == REDIS_REPLY_ARRAY && i < r->elements; i++) {
        const redisReply *g = r->element[i];
        bool ours = false;
        for (size_t k = 0; k + 1 < g->elements; k += 2)
            ours = ours || (strcmp(g->element[k]->str, "name") == 0 &&
                            g->element[k + 1]->type == REDIS_REPLY_STRING &&
                            strcmp(g->element[k + 1]->str, GROUP) == 0);
        if (ours) {
            pending = info_field(g, "pending");
            read = info_field(g, "entries-read");
            lag = info_field(g, "lag");
        }
    }
    freeReplyObject(r);
    long long dead = cmd_int(c, "XLEN %s", dlq);
    /* redelivered: pending entries delivered more than once */
    long long again = 0;
    r = cmd(c, "XPENDING %s " GROUP " - + 1000", source);
    for (size_t i = 0; r && r->type == REDIS_REPLY_ARRAY && i < r->elements; i++)
        if (r->element[i]->elements == 4 && r->element[i]->element[3]->integer > 1)
            again++;
    freeReplyObject(r);
    redisFree(c);
    if (pending < 0 || read < 0 || lag < 0 || dead < 0)
        return FS_EIO;
    out->pending = (long)(pending + lag);
    out->dead_lettered = (long)dead;
    /* XACKed entries: read by the group and no longer pending; minus those dead-lettered */
    out->acked = (long)(read - pending - dead);
    out->redelivered = (long)again;
    return FS_OK;
}

static int list_state(fs_broker *b, const char *source, conf_broker_state *out)
{
    (void)b;
    redisContext *c = raw();
    if (!c)
        return FS_EIO;
    long long n = cmd_int(c, "LLEN %s", source);
    redisFree(c);
    *out = (conf_broker_state){-1, (long)n, -1, -1};
    return n < 0 ? FS_EIO : FS_OK;
}

/* Make `dest` a list: a stream publish (XADD) to it then fails with WRONGTYPE. */
static int fail_setup(fs_broker *b, const char *dest, const void **opts)
{
    (void)b;
    static const fs_redis_publish_options as_stream = {FS_REDIS_STREAM, 0, FS_REDIS_FORMAT_DEFAULT};
    redisContext *c = raw();
    if (!c)
        return FS_EIO;
    long long n = cmd_int(c, "RPUSH %s x", dest);
    redisFree(c);
    *opts = &as_stream;
    return n > 0 ? FS_OK : FS_EIO;
}

static const void *json_options(const char *dest, void *scratch)
{
    (void)dest;
    fs_redis_publish_options *o = scratch;
    *o = (fs_redis_publish_options)FS_REDIS_PUBLISH_OPTIONS_INIT;
    o->format = FS_REDIS_FORMAT_JSON;
    return o;
}

static void cleanup(const char *source)
{
    redisContext *c = raw();
    if (!c)
        return;
    char dlq[256];
    dlq_name(source, dlq, sizeof dlq);
    freeReplyObject(cmd(c, "DEL %s %s", source, dlq));
    redisFree(c);
}

/* One set of wrappers per kind. */
#define KIND_FNS(tag, KIND)                                                                        \
    static const void *tag##_sub_options(const char *source, void *scratch)                        \
    {                                                                                              \
        return sub_options(KIND, source, scratch);                                                 \
    }                                                                                              \
    static const void *tag##_pub_options(const char *source, void *scratch)                        \
    {                                                                                              \
        (void)source;                                                                              \
        return pub_options(KIND, scratch);                                                         \
    }                                                                                              \
    static int tag##_put(fs_broker *b, const char *source, const void *body, size_t len)           \
    {                                                                                              \
        (void)b;                                                                                   \
        return put(KIND, source, body, len);                                                       \
    }
KIND_FNS(channel, FS_REDIS_CHANNEL)
KIND_FNS(list, FS_REDIS_LIST)
KIND_FNS(stream, FS_REDIS_STREAM)

#define COMMON                                                                                     \
    .broker_label = "redis", .policy = FS_ACK_POLICY_DEFAULT, .available = redis_available,        \
    .broker_new = redis_broker_new, .fail_publish_setup = fail_setup,                              \
    .json_pub_options = json_options, .cleanup = cleanup

static const conf_driver channel_driver = {
    .column = "redis-channel",
    .features = CONF_HAS_BATCH | CONF_HAS_REQUEST,
    .sub_options = channel_sub_options,
    .pub_options = channel_pub_options,
    .wait_ready = channel_ready,
    .put = channel_put,
    .pattern_sub = channel_pattern,
    COMMON,
};

static const conf_driver list_driver = {
    .column = "redis-list",
    .features = CONF_HAS_BATCH | CONF_HAS_REQUEST | CONF_HAS_STATE,
    .sub_options = list_sub_options,
    .pub_options = list_pub_options,
    .put = list_put,
    .state = list_state,
    COMMON,
};

static const conf_driver stream_driver = {
    .column = "redis-stream",
    .features = CONF_HAS_BATCH | CONF_HAS_REQUEST | CONF_HAS_REDELIVERY | CONF_HAS_STATE |
                CONF_HAS_DELIVERY_COUNT,
    .prepare = stream_prepare,
    .sub_options = stream_sub_options,
    .pub_options = stream_pub_options,
    .put = stream_put,
    .state = stream_state,
    COMMON,
};

const conf_driver *const conf_drivers_redis[] = {&channel_driver, &list_driver, &stream_driver,
                                                 NULL};
