/*
 * The Redis broker: URL and options, the adapter's operations, publishing,
 * and the "redis" URL scheme.
 */
#include "internal.h"
#include "kit/list.h"
#include "kit/pack.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

const char *fs_redis_kind_name(fs_redis_kind kind)
{
    switch (kind) {
    case FS_REDIS_CHANNEL:
        return "channel";
    case FS_REDIS_LIST:
        return "list";
    case FS_REDIS_STREAM:
        return "stream";
    }
    return "unknown";
}

/* redis-py's exception names, as FastStream services report them. */
static const char *error_type(int status)
{
    switch (status) {
    case FS_ETIMEDOUT:
        return "TimeoutError";
    case FS_EBROKER:
        return "ResponseError";
    case FS_EINVAL:
        return "ValueError";
    case FS_ECLOSED:
        return "IncorrectState";
    case FS_ENOMEM:
        return "MemoryError";
    default:
        return "ConnectionError";
    }
}

/* ------------------------------------------------------------------------ */
/* Publishing                                                               */

static int encode_one(rconn *c, const fs_envelope *e, fs_redis_format format)
{
    FS_CHECK_ARG(e->body || !e->body_len, "redis: publish: NULL body with length %zu", e->body_len);
    FS_CHECK_ARG(e->headers || !e->header_count, "redis: publish: NULL headers");
    int rc = fs_kit_grow((void **)&c->kv, &c->kvcap, e->header_count + 1, sizeof *c->kv);
    if (rc)
        return rc;
    size_t n = 0;
    for (size_t i = 0; i < e->header_count; i++) {
        const fs_header *h = &e->headers[i];
        FS_CHECK_ARG(h->name && h->value, "redis: publish: header %zu has a NULL name or value", i);
        c->kv[n++] = (fs__redis_kv){h->name, strlen(h->name), h->value,
                                    h->value_len ? h->value_len : strlen(h->value)};
    }
    if (e->message_id)
        c->kv[n++] = (fs__redis_kv){"message_id", 10, e->message_id, strlen(e->message_id)};
    char cid[37];
    const char *corr = e->correlation_id;
    if (!corr) {
        fs_adapter_uuid4(cid);
        corr = cid;
    }
    fs__redis_envelope env = {e->body, e->body_len, corr, e->reply_to, e->content_type, c->kv, n};
    return fs__redis_encode(format, &env, &c->scratch, &c->enc);
}

/* Send the prepared commands (`per` arguments each, value last) and read every reply. */
static int run_pipeline(rconn *c, const char *what, int type, size_t count, size_t per,
                        const char **head, const size_t *head_len)
{
    int rc = fs__redis_conn_args(c, per);
    for (size_t i = 0; i < count && !rc; i++) {
        for (size_t k = 0; k + 1 < per; k++) {
            c->argv[k] = head[k];
            c->argvlen[k] = head_len[k];
        }
        c->argv[per - 1] = c->enc.data + c->offs[i];
        c->argvlen[per - 1] = c->offs[i + 1] - c->offs[i];
        rc = fs__redis_conn_send(c, (int)per, c->argv, c->argvlen);
    }
    if (!rc)
        rc = fs__redis_conn_flush(c);
    return rc ? rc : fs__redis_conn_replies(c, count, type, what);
}

static int publish_with(redis_broker *b, rconn *c, const char *destination, const fs_envelope *msgs,
                        size_t count)
{
    const fs_redis_publish_options *po = msgs[0].broker_options;
    fs_redis_kind kind = po ? po->kind : FS_REDIS_CHANNEL;
    fs_redis_format format = po && po->format ? po->format : b->format;
    FS_CHECK_ARG(kind == FS_REDIS_CHANNEL || kind == FS_REDIS_LIST || kind == FS_REDIS_STREAM,
                 "redis: publish to %s: unknown kind %d", destination, (int)kind);
    FS_CHECK_ARG(format >= FS_REDIS_FORMAT_DEFAULT && format <= FS_REDIS_FORMAT_RAW,
                 "redis: publish to %s: unknown format %d", destination, (int)format);
    int rc = fs_kit_grow((void **)&c->offs, &c->offcap, count + 1, sizeof *c->offs);
    if (rc)
        return rc;
    c->enc.len = 0;
    for (size_t i = 0; i < count; i++) {
        c->offs[i] = c->enc.len;
        if ((rc = encode_one(c, &msgs[i], format)))
            return rc;
    }
    c->offs[count] = c->enc.len;
    size_t dlen = strlen(destination);

    if (kind == FS_REDIS_LIST) { /* one RPUSH for the whole batch */
        if ((rc = fs__redis_conn_args(c, 2 + count)))
            return rc;
        c->argv[0] = "RPUSH";
        c->argvlen[0] = 5;
        c->argv[1] = destination;
        c->argvlen[1] = dlen;
        for (size_t i = 0; i < count; i++) {
            c->argv[2 + i] = c->enc.data + c->offs[i];
            c->argvlen[2 + i] = c->offs[i + 1] - c->offs[i];
        }
        redisReply *r;
        if ((rc = fs__redis_conn_command(c, (int)(2 + count), c->argv, c->argvlen, &r)))
            return rc;
        rc = fs__redis_reply_type(r, REDIS_REPLY_INTEGER, "RPUSH");
        fs__redis_reply_free(r);
        if (rc == FS_EPROTOCOL)
            fs__redis_conn_close(c);
        return rc;
    }
    if (kind == FS_REDIS_CHANNEL) {
        const char *head[] = {"PUBLISH", destination};
        const size_t len[] = {7, dlen};
        return run_pipeline(c, "PUBLISH", REDIS_REPLY_INTEGER, count, 3, head, len);
    }
    char maxlen[24];
    if (po && po->maxlen) {
        snprintf(maxlen, sizeof maxlen, "%zu", po->maxlen);
        const char *head[] = {"XADD", destination,           "MAXLEN", "~", maxlen,
                              "*",    FS__REDIS_STREAM_FIELD};
        const size_t len[] = {4, dlen, 6, 1, strlen(maxlen), 1, strlen(FS__REDIS_STREAM_FIELD)};
        return run_pipeline(c, "XADD", REDIS_REPLY_STRING, count, 8, head, len);
    }
    const char *head[] = {"XADD", destination, "*", FS__REDIS_STREAM_FIELD};
    const size_t len[] = {4, dlen, 1, strlen(FS__REDIS_STREAM_FIELD)};
    return run_pipeline(c, "XADD", REDIS_REPLY_STRING, count, 5, head, len);
}

/*
 * FastStream's JSON format decodes the body as UTF-8 and names the failure
 * UnicodeDecodeError: so does a publish refused for that reason here.
 */
static bool json_not_utf8(const redis_broker *b, const fs_envelope *msgs, size_t count)
{
    const fs_redis_publish_options *po = msgs[0].broker_options;
    fs_redis_format format = po && po->format ? po->format : b->format;
    if (format != FS_REDIS_FORMAT_JSON)
        return false;
    for (size_t i = 0; i < count; i++) {
        if (msgs[i].body && !fs_kit_utf8_valid(msgs[i].body, msgs[i].body_len))
            return true;
        for (size_t h = 0; msgs[i].headers && h < msgs[i].header_count; h++) {
            const fs_header *hd = &msgs[i].headers[h];
            if (hd->value && !fs_kit_utf8_valid(hd->value, fs_kit_header_value_len(hd)))
                return true;
        }
    }
    return false;
}

static int redis_publish(void *impl, void *dest, const char *destination, const fs_envelope *msgs,
                         size_t count, const char **etype)
{
    (void)dest;
    redis_broker *b = impl;
    int rc;
    if (!destination || !*destination || !msgs || !count) {
        *etype = "ValueError";
        return fs_adapter_error(FS_EINVAL, "redis: publish needs a destination and messages");
    }
    rconn *c = fs__redis_pool_get(b, &rc);
    if (!c) {
        *etype = error_type(rc);
        return rc;
    }
    rc = publish_with(b, c, destination, msgs, count);
    fs__redis_pool_put(b, c);
    if (rc)
        *etype = json_not_utf8(b, msgs, count) ? "UnicodeDecodeError" : error_type(rc);
    return rc;
}

static int redis_prepare_destination(void *impl, const char *destination, const void *options,
                                     void **dest_out)
{
    (void)impl;
    const fs_redis_publish_options *po = options;
    *dest_out = NULL;
    FS_CHECK_ARG(destination && *destination, "redis: empty destination");
    FS_CHECK_ARG(!po || po->kind == FS_REDIS_CHANNEL || po->kind == FS_REDIS_LIST ||
                     po->kind == FS_REDIS_STREAM,
                 "redis: publisher for %s: unknown kind %d", destination, po ? (int)po->kind : 0);
    FS_CHECK_ARG(
        !po || (po->format >= FS_REDIS_FORMAT_DEFAULT && po->format <= FS_REDIS_FORMAT_RAW),
        "redis: publisher for %s: unknown format %d", destination, po ? (int)po->format : 0);
    return FS_OK;
}

/* ------------------------------------------------------------------------ */
/* Lifecycle                                                                */

/* PING on a pooled connection, waiting up to timeout_ms for the answer. */
static int redis_ping(void *impl, int timeout_ms)
{
    redis_broker *b = impl;
    const char *argv[] = {"PING"};
    redisReply *r = NULL;
    int rc = fs__redis_pool_command(b, 1, argv, timeout_ms, "PING", &r);
    fs__redis_reply_free(r);
    return rc;
}

static int redis_connect(void *impl)
{
    redis_broker *b = impl;
    atomic_store(&b->closed, false);
    return redis_ping(impl, b->connect_timeout_ms);
}

FS_KIT_DEFINE_SUBS_SNAPSHOT(subs_snapshot, redis_broker, rsub)

static int redis_start(void *impl)
{
    redis_broker *b = impl;
    rsub **v;
    size_t n = subs_snapshot(b, &v);
    int rc = FS_OK;
    for (size_t i = 0; i < n && !rc; i++)
        rc = fs__redis_sub_start(b, v[i]);
    free(v);
    return rc;
}

static int redis_stop(void *impl)
{
    redis_broker *b = impl;
    rsub **v;
    size_t n = subs_snapshot(b, &v);
    for (size_t i = 0; i < n; i++)
        fs__redis_sub_stop(v[i]);
    free(v);
    return FS_OK;
}

static void redis_close(void *impl)
{
    redis_broker *b = impl;
    rsub **v;
    size_t n = subs_snapshot(b, &v);
    for (size_t i = 0; i < n; i++)
        fs__redis_sub_close(v[i]);
    free(v);
    atomic_store(&b->closed, true);
    fs__redis_pool_drain(b);
}

static void broker_free(redis_broker *b)
{
    if (!b)
        return;
    while (b->subs)
        fs__redis_unsubscribe(b, b->subs);
    fs__redis_pool_drain(b);
    free(b->host);
    free(b->user);
    free(b->password);
    free(b->client_name);
    pthread_mutex_destroy(&b->mu);
    free(b);
}

static void redis_free(void *impl)
{
    broker_free(impl);
}

static const fs_broker_ops redis_ops = {
    .abi_version = FS_ADAPTER_ABI_VERSION,
    .struct_size = sizeof(fs_broker_ops),
    .name = "redis",
    .default_ack_policy = FS_ACK_POLICY_REJECT_ON_ERROR,
    .caps = FS_CAP_NACK | FS_CAP_NACK_DELAY | FS_CAP_DELIVERY_COUNT | FS_CAP_BACKLOG,
    .connect = redis_connect,
    .start = redis_start,
    .stop = redis_stop,
    .close = redis_close,
    .free = redis_free,
    .ping = redis_ping,
    .subscribe = fs__redis_subscribe,
    .unsubscribe = fs__redis_unsubscribe,
    .subscription_start = fs__redis_sub_start,
    .fetch = fs__redis_fetch,
    .fetch_batch = fs__redis_fetch_batch,
    .settle = fs__redis_settle,
    .prepare_destination = redis_prepare_destination,
    .release_destination = NULL,
    .publish = redis_publish,
    .request = NULL,
    .backlog = fs__redis_backlog,
};

bool fs_broker_is_redis(const fs_broker *broker)
{
    return broker && fs_broker_get_ops(broker) == &redis_ops;
}

/* ------------------------------------------------------------------------ */
/* Creation                                                                 */

static int parse_format(const char *s, fs_redis_format *out)
{
    static const char *const names[] = {"default", "binary", "json", "raw"};
    for (int i = 0; i < 4; i++) {
        if (strcmp(s, names[i]) == 0) {
            *out = (fs_redis_format)i;
            return FS_OK;
        }
    }
    return fs_adapter_error(FS_EINVAL, "redis: unknown format '%s' (binary, json or raw)", s);
}

static int from_url(redis_broker *b, const char *url)
{
    fs_url u;
    int rc = fs_url_parse(url, &u);
    if (rc)
        return rc;
    if (strcmp(u.scheme, "redis") != 0) {
        rc = fs_adapter_error(strcmp(u.scheme, "rediss") == 0 ? FS_EUNSUPPORTED : FS_EINVAL,
                              "redis: unsupported URL scheme '%s' (use redis://)", u.scheme);
        goto out;
    }
    if (u.hosts && strchr(u.hosts, ',')) {
        rc = fs_adapter_error(FS_EUNSUPPORTED,
                              "redis: one host only (cluster URLs are not supported)");
        goto out;
    }
    b->host = strdup(u.host && *u.host ? u.host : "127.0.0.1");
    b->port = u.port > 0 ? u.port : 6379;
    static const char *const known[] = {"format", "client_name", NULL};
    if ((rc = fs_url_check_query(&u, "redis://", known)))
        goto out;
    if (u.path && *u.path) {
        uint64_t db; /* digits only: " 1", "+1", "1x" are refused */
        if (!fs_url_parse_uint(u.path, strlen(u.path), 65535, &db)) {
            rc = fs_adapter_error(FS_EINVAL,
                                  "redis: bad database number '%s' (digits, 0 to 65535) in %s",
                                  u.path, url);
            goto out;
        }
        b->db = (int)db;
    }
    if (u.user && *u.user)
        b->user = strdup(u.user);
    if (u.password && *u.password)
        b->password = strdup(u.password);
    if (!b->host || (u.user && *u.user && !b->user) ||
        (u.password && *u.password && !b->password)) {
        /* not silently connecting as someone else, or without a password */
        rc = fs_adapter_error(FS_ENOMEM, "redis: out of memory");
        goto out;
    }
    if (b->user && !b->password) { /* redis://secret@host: the password alone, as redis-py */
        b->password = b->user;
        b->user = NULL;
    }
    /* Refused here rather than at the first connect (CLIENT SETNAME would). */
    rc = fs_url_query_text(&u, "client_name", &b->client_name);
    if (rc == FS_ENOTFOUND)
        rc = FS_OK;
    else if (rc == FS_OK && (!*b->client_name || strchr(b->client_name, ' ')))
        rc = fs_adapter_error(FS_EINVAL, "redis: client_name must be non-empty, without spaces");
    if (rc)
        goto out;
    char *fmt = NULL;
    fs_redis_format f = FS_REDIS_FORMAT_DEFAULT;
    rc = fs_url_query_get(&u, "format", &fmt);
    if (rc == FS_ENOTFOUND)
        rc = FS_OK;
    else if (rc == FS_OK)
        rc = parse_format(fmt, &f); /* checked even when the options choose the format */
    if (rc == FS_OK && b->format == FS_REDIS_FORMAT_DEFAULT)
        b->format = f;
    free(fmt);
out:
    fs_url_free(&u);
    return rc;
}

int fs_redis_broker_new(const char *url, const fs_redis_options *opts, fs_broker **out)
{
    FS_CHECK_ARG(out, "fs_redis_broker_new: out is NULL");
    *out = NULL;
    FS_CHECK_ARG(url, "fs_redis_broker_new: url is NULL");
    static const fs_redis_options defaults = FS_REDIS_OPTIONS_INIT;
    if (!opts)
        opts = &defaults;
    FS_CHECK_ARG(opts->format >= FS_REDIS_FORMAT_DEFAULT && opts->format <= FS_REDIS_FORMAT_RAW,
                 "fs_redis_broker_new: unknown format %d", (int)opts->format);
    redis_broker *b = calloc(1, sizeof *b);
    if (!b)
        return fs_adapter_error(FS_ENOMEM, "redis: out of memory");
    pthread_mutex_init(&b->mu, NULL);
    b->format = opts->format;
    b->connect_timeout_ms = opts->connect_timeout_ms > 0 ? opts->connect_timeout_ms : 2000;
    b->command_timeout_ms = opts->command_timeout_ms > 0 ? opts->command_timeout_ms : 5000;
    int rc = from_url(b, url);
    if (!b->format)
        b->format = FS_REDIS_FORMAT_BINARY;
    if (!rc)
        rc = fs_broker_create(&redis_ops, b, url, &opts->broker, &b->broker);
    if (rc) {
        broker_free(b);
        return rc;
    }
    *out = b->broker;
    return FS_OK;
}

static int redis_factory(const char *url, const fs_broker_options *opts, fs_broker **out)
{
    fs_redis_options o = FS_REDIS_OPTIONS_INIT;
    o.broker = *opts;
    return fs_redis_broker_new(url, &o, out);
}

int fs_redis_register(void)
{
    return fs_broker_register_scheme("redis", redis_factory);
}

__attribute__((constructor)) static void redis_auto_register(void)
{
    fs_redis_register();
}
