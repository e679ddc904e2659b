/*
 * The RabbitMQ broker: URL and options, the adapter's operations, the
 * topology and queue-depth functions of rabbitmq.h, and the "amqp" /
 * "amqps" URL schemes.
 */
#include "internal.h"
#include "kit/list.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* ------------------------------------------------------------------------ */
/* Lifecycle                                                                */

FS_KIT_DEFINE_SUBS_SNAPSHOT(subs_snapshot, rmq_broker, rsub)

static int rmq_connect(void *impl)
{
    rmq_broker *b = impl;
    atomic_store(&b->closed, false);
    return fs__rmq_conn_start(b);
}

static int rmq_start(void *impl)
{
    rmq_broker *b = impl;
    rsub **v;
    size_t n = subs_snapshot(b, &v);
    int rc = FS_OK;
    for (size_t i = 0; i < n && !rc; i++)
        rc = fs__rmq_sub_start(b, v[i]);
    free(v);
    return rc;
}

static int rmq_stop(void *impl)
{
    rmq_broker *b = impl;
    rsub **v;
    size_t n = subs_snapshot(b, &v);
    for (size_t i = 0; i < n; i++)
        fs__rmq_sub_stop(b, v[i]);
    free(v);
    return FS_OK;
}

/* Every worker exited: what they did not fetch goes back to the server now. */
static void rmq_stopped(void *impl)
{
    rmq_broker *b = impl;
    rsub **v;
    size_t n = subs_snapshot(b, &v);
    for (size_t i = 0; i < n; i++)
        fs__rmq_sub_giveback(b, v[i]);
    free(v);
}

static void rmq_close(void *impl)
{
    rmq_broker *b = impl;
    rmq_stop(b);
    atomic_store(&b->closed, true);
    fs__rmq_conn_shutdown(b);
}

static void broker_free(rmq_broker *b)
{
    if (!b)
        return;
    fs__rmq_conn_shutdown(b);
    while (b->subs)
        fs__rmq_unsubscribe(b, b->subs);
    if (b->conn.wake_fd >= 0)
        close(b->conn.wake_fd);
    if (b->conn.ep_fd >= 0)
        close(b->conn.ep_fd);
    fs__rmq_pub_free(&b->conn);
    free(b->conn.tbl);
    fs_kit_buf_free(&b->conn.frames);
    fs_kit_buf_free(&b->conn.rep_buf);
    free(b->conn.rep_dec.hdr_off);
    free(b->host);
    free(b->vhost);
    free(b->user);
    free(b->password);
    free(b->cafile);
    free(b->certfile);
    free(b->keyfile);
    free(b->conn_name);
    pthread_mutex_destroy(&b->mu);
    free(b);
}

static void rmq_free(void *impl)
{
    broker_free(impl);
}

static int topo_channel(rconn *c, char *err, size_t n)
{
    if (!c->st) {
        snprintf(err, n, "rabbitmq: not connected to %s:%d%s%.200s", c->b->host, c->b->port,
                 c->last_error[0] ? ": " : "", c->last_error);
        return FS_EIO;
    }
    if (!c->topo_open) {
        int rc = fs__rmq_channel_open(c, RMQ_CH_TOPO, err, n);
        if (rc)
            return rc;
        c->topo_open = true;
    }
    return FS_OK;
}

static int ping_call(rconn *c, rcall *call)
{
    int rc = topo_channel(c, call->err, sizeof call->err);
    if (rc)
        return rc;
    amqp_exchange_declare(c->st, RMQ_CH_TOPO, amqp_cstring_bytes("amq.direct"),
                          amqp_cstring_bytes("direct"), 1, 0, 0, 0, amqp_empty_table);
    return fs__rmq_rpc_error(c, RMQ_CH_TOPO, "ping", call->err, sizeof call->err);
}

static int rmq_ping(void *impl, int timeout_ms)
{
    (void)timeout_ms;
    rcall call;
    call.async = false;
    return fs__rmq_call(impl, ping_call, &call);
}

/* ------------------------------------------------------------------------ */
/* Settlement and the rest of the ops                                       */

static int rmq_prepare_destination(void *impl, const char *destination, const void *options,
                                   void **dest_out)
{
    (void)impl;
    (void)options;
    *dest_out = NULL;
    if (!destination)
        return fs_adapter_error(FS_EINVAL, "rabbitmq: NULL routing key");
    return FS_OK;
}

/* FastStream's "{exchange or 'default'}.{routing_key}" (fs__rmq_target's exchange and key). */
static int rmq_destination_label(void *impl, void *dest, const char *destination,
                                 const void *options, char *buf, size_t cap, const char **label)
{
    (void)impl;
    (void)dest;
    if (!destination)
        return fs_adapter_error(FS_EINVAL, "rabbitmq: NULL routing key");
    *label = fs__rmq_destination_label(destination, options, buf, cap);
    return FS_OK;
}

static int depth_call(rconn *c, rcall *call)
{
    int rc = topo_channel(c, call->err, sizeof call->err);
    if (rc)
        return rc;
    return fs__rmq_topo_depth(c, RMQ_CH_TOPO, call->in, &call->out[0], &call->out[1], call->err,
                              sizeof call->err);
}

static int rmq_fetch(void *impl, void *sub, unsigned worker, int timeout_ms, fs_message **out)
{
    (void)worker;
    return fs__rmq_fetch(impl, sub, timeout_ms, out);
}

static int rmq_settle(void *impl, fs_message *m, const fs_settle_args *args)
{
    (void)impl;
    size_t n = fs_message_count(m); /* a batch: each of its messages */
    for (size_t i = 0; i < n; i++)
        fs__rmq_settle_op(fs_message_at(m, i)->adapter_data, (int)args->op, args->delay_ms);
    return FS_OK;
}

static int rmq_backlog(void *impl, void *sub, int timeout_ms, uint64_t *out)
{
    (void)timeout_ms;
    rsub *s = sub;
    rcall call;
    call.async = false;
    call.in = s->queue;
    int rc = fs__rmq_call(impl, depth_call, &call);
    if (!rc)
        *out = call.out[0];
    return rc;
}

static const fs_broker_ops rmq_ops = {
    .abi_version = FS_ADAPTER_ABI_VERSION,
    .struct_size = sizeof(fs_broker_ops),
    .name = "rabbitmq",
    .default_ack_policy = FS_ACK_POLICY_REJECT_ON_ERROR,
    .caps = FS_CAP_NATIVE_REQUEST | FS_CAP_NACK | FS_CAP_NACK_DELAY | FS_CAP_DELIVERY_COUNT |
            FS_CAP_BACKLOG,
    .connect = rmq_connect,
    .start = rmq_start,
    .stop = rmq_stop,
    .close = rmq_close,
    .free = rmq_free,
    .ping = rmq_ping,
    .subscribe = fs__rmq_subscribe,
    .unsubscribe = fs__rmq_unsubscribe,
    .subscription_start = fs__rmq_sub_start,
    .fetch = rmq_fetch,
    .settle = rmq_settle,
    .prepare_destination = rmq_prepare_destination,
    .publish = fs__rmq_publish,
    .request = fs__rmq_request,
    .stopped = rmq_stopped,
    .backlog = rmq_backlog,
    .destination_label = rmq_destination_label,
};

bool fs_broker_is_rabbitmq(const fs_broker *broker)
{
    return broker && fs_broker_get_ops(broker) == &rmq_ops;
}

/* ------------------------------------------------------------------------ */
/* rabbitmq.h: topology and queue depth                                     */

static rmq_broker *impl_of(fs_broker *broker, const char *fn)
{
    if (!fs_broker_is_rabbitmq(broker)) {
        fs_adapter_error(FS_EINVAL, "%s: not a RabbitMQ broker", fn);
        return NULL;
    }
    return fs_broker_impl(broker);
}

static int declare_call(rconn *c, rcall *call)
{
    int rc = topo_channel(c, call->err, sizeof call->err);
    return rc ? rc : fs__rmq_topo_declare(c, RMQ_CH_TOPO, call->in, call->err, sizeof call->err);
}

int fs_rabbitmq_declare(fs_broker *broker, const fs_rabbitmq_exchange *exchange,
                        const fs_rabbitmq_queue *queue)
{
    rmq_broker *b = impl_of(broker, "fs_rabbitmq_declare");
    if (!b)
        return FS_EINVAL;
    if (queue && (!queue->name || !*queue->name))
        queue = NULL;
    rtopo t;
    int rc = fs__rmq_topo_copy(&t, exchange, queue, NULL);
    if (rc)
        return rc;
    rcall call;
    call.async = false;
    call.in = &t;
    rc = fs__rmq_call(b, declare_call, &call);
    fs__rmq_topo_free(&t);
    return rc;
}

static int delete_call(rconn *c, rcall *call)
{
    int rc = topo_channel(c, call->err, sizeof call->err);
    if (rc)
        return rc;
    if (call->out[0])
        amqp_queue_delete(c->st, RMQ_CH_TOPO, amqp_cstring_bytes(call->in), 0, 0);
    else
        amqp_exchange_delete(c->st, RMQ_CH_TOPO, amqp_cstring_bytes(call->in), 0);
    return fs__rmq_rpc_error(c, RMQ_CH_TOPO, call->out[0] ? "queue.delete" : "exchange.delete",
                             call->err, sizeof call->err);
}

static int delete_thing(fs_broker *broker, const char *name, bool queue, const char *fn)
{
    rmq_broker *b = impl_of(broker, fn);
    if (!b)
        return FS_EINVAL;
    if (!name || !*name)
        return fs_adapter_error(FS_EINVAL, "%s: empty name", fn);
    rcall call;
    call.async = false;
    call.in = name;
    call.out[0] = queue;
    return fs__rmq_call(b, delete_call, &call);
}

int fs_rabbitmq_delete_queue(fs_broker *broker, const char *queue)
{
    return delete_thing(broker, queue, true, "fs_rabbitmq_delete_queue");
}

int fs_rabbitmq_delete_exchange(fs_broker *broker, const char *exchange)
{
    return delete_thing(broker, exchange, false, "fs_rabbitmq_delete_exchange");
}

int fs_rabbitmq_queue_depth(fs_broker *broker, const char *queue, uint64_t *messages,
                            uint64_t *consumers)
{
    rmq_broker *b = impl_of(broker, "fs_rabbitmq_queue_depth");
    if (!b)
        return FS_EINVAL;
    if (!queue || !*queue || !messages)
        return fs_adapter_error(FS_EINVAL, "fs_rabbitmq_queue_depth: queue and messages needed");
    rcall call;
    call.async = false;
    call.in = queue;
    int rc = fs__rmq_call(b, depth_call, &call);
    if (!rc) {
        *messages = call.out[0];
        if (consumers)
            *consumers = call.out[1];
    }
    return rc;
}

/* ------------------------------------------------------------------------ */
/* URL                                                                      */

static int hexval(int ch)
{
    if (ch >= '0' && ch <= '9')
        return ch - '0';
    ch = tolower(ch);
    return ch >= 'a' && ch <= 'f' ? ch - 'a' + 10 : -1;
}

static char *pct_decode(const char *s)
{
    size_t n = strlen(s);
    char *out = malloc(n + 1), *o = out;
    if (!out)
        return NULL;
    for (size_t i = 0; i < n; i++) {
        if (s[i] == '%' && i + 2 < n + 1 && hexval(s[i + 1]) >= 0 && hexval(s[i + 2]) >= 0) {
            *o++ = (char)(hexval(s[i + 1]) * 16 + hexval(s[i + 2]));
            i += 2;
        } else {
            *o++ = s[i];
        }
    }
    *o = '\0';
    return out;
}

static int parse_int(const char *key, const char *v, long lo, long hi, long *out)
{
    char *end;
    long x = strtol(v, &end, 10);
    if (!*v || *end || x < lo || x > hi)
        return fs_adapter_error(FS_EINVAL, "rabbitmq: URL parameter %s=%s: want %ld..%ld", key, v,
                                lo, hi);
    *out = x;
    return FS_OK;
}

static bool parse_bool(const char *v, bool *out)
{
    if (!strcmp(v, "true") || !strcmp(v, "1") || !strcmp(v, "yes") || !*v)
        *out = true;
    else if (!strcmp(v, "false") || !strcmp(v, "0") || !strcmp(v, "no"))
        *out = false;
    else
        return false;
    return true;
}

static int set_param(rmq_broker *b, const char *key, const char *v)
{
    long x = 0;
    int rc = FS_OK;
    char **str = NULL;
    if (!strcmp(key, "heartbeat")) {
        if (!(rc = parse_int(key, v, 0, 3600, &x)))
            b->heartbeat = (int)x;
    } else if (!strcmp(key, "prefetch") || !strcmp(key, "prefetch_count")) {
        if (!(rc = parse_int(key, v, 0, 65535, &x)))
            b->prefetch = (unsigned)x;
    } else if (!strcmp(key, "publish_channels")) {
        if (!(rc = parse_int(key, v, 1, RMQ_PUB_CHANNELS_MAX, &x)))
            b->pub_channels = (unsigned)x;
    } else if (!strcmp(key, "frame_max")) {
        if (!(rc = parse_int(key, v, 4096, 1 << 24, &x)))
            b->frame_max = (int)x;
    } else if (!strcmp(key, "connect_timeout")) {
        if (!(rc = parse_int(key, v, 1, 600000, &x)))
            b->connect_timeout_ms = (int)x;
    } else if (!strcmp(key, "connection_name") || !strcmp(key, "name")) {
        str = &b->conn_name;
    } else if (!strcmp(key, "cafile")) {
        str = &b->cafile;
    } else if (!strcmp(key, "certfile")) {
        str = &b->certfile;
    } else if (!strcmp(key, "keyfile")) {
        str = &b->keyfile;
    } else if (!strcmp(key, "verify")) {
        if (!parse_bool(v, &b->verify))
            rc = fs_adapter_error(FS_EINVAL, "rabbitmq: URL parameter verify=%s: true or false", v);
    } else {
        rc = fs_adapter_error(FS_EINVAL,
                              "rabbitmq: unknown URL parameter '%s' (known: heartbeat, "
                              "connection_name, prefetch, publish_channels, frame_max, "
                              "connect_timeout, cafile, certfile, keyfile, verify)",
                              key);
    }
    if (str) {
        free(*str);
        if (!(*str = strdup(v)))
            rc = fs_adapter_error(FS_ENOMEM, "rabbitmq: out of memory");
    }
    return rc;
}

static int parse_query(rmq_broker *b, const fs_url *u)
{
    size_t pos = 0, nlen, vlen;
    const char *name, *raw;
    int rc = FS_OK;
    while (!rc && fs_url_query_next(u, &pos, &name, &nlen, &raw, &vlen)) {
        char key[64];
        if (nlen >= sizeof key)
            return fs_adapter_error(FS_EINVAL, "rabbitmq: unknown URL parameter '%.*s'", (int)nlen,
                                    name);
        memcpy(key, name, nlen);
        key[nlen] = '\0';
        char *val = NULL;
        rc = fs_url_query_get(u, key, &val);
        if (!rc)
            rc = set_param(b, key, val);
        free(val);
    }
    return rc;
}

static int from_url(rmq_broker *b, const char *url)
{
    fs_url u;
    int rc = fs_url_parse(url, &u);
    if (rc)
        return rc;
    if (strcmp(u.scheme, "amqp") && strcmp(u.scheme, "amqps")) {
        rc = fs_adapter_error(
            FS_EINVAL, "rabbitmq: unsupported URL scheme '%s' (use amqp:// or amqps://)", u.scheme);
        goto out;
    }
    if (u.hosts && strchr(u.hosts, ',')) {
        rc = fs_adapter_error(FS_EUNSUPPORTED, "rabbitmq: one host only in %s", url);
        goto out;
    }
    b->tls = !strcmp(u.scheme, "amqps");
    b->host = strdup(u.host && *u.host ? u.host : "localhost");
    b->port = u.port > 0 ? u.port : b->tls ? 5671 : 5672;
    b->vhost = u.path && *u.path ? pct_decode(u.path) : strdup("/");
    b->user = strdup(u.user && *u.user ? u.user : "guest");
    b->password = strdup(u.password ? u.password : "guest");
    if (!b->host || !b->vhost || !b->user || !b->password) {
        rc = fs_adapter_error(FS_ENOMEM, "rabbitmq: out of memory");
        goto out;
    }
    rc = parse_query(b, &u);
    if (!rc && !b->tls && (b->cafile || b->certfile || b->keyfile))
        rc = fs_adapter_error(FS_EINVAL, "rabbitmq: cafile/certfile/keyfile need amqps://");
    if (!rc && (!b->certfile) != (!b->keyfile))
        rc = fs_adapter_error(FS_EINVAL, "rabbitmq: certfile and keyfile go together");
out:
    fs_url_free(&u);
    return rc;
}

int fs_rabbitmq_broker_new(const char *url, const fs_rabbitmq_options *opts, fs_broker **out)
{
    if (!url || !out)
        return fs_adapter_error(FS_EINVAL, "fs_rabbitmq_broker_new: url and out are required");
    static const fs_rabbitmq_options defaults = FS_RABBITMQ_OPTIONS_INIT;
    if (!opts)
        opts = &defaults;
    rmq_broker *b = calloc(1, sizeof *b);
    if (!b)
        return fs_adapter_error(FS_ENOMEM, "rabbitmq: out of memory");
    pthread_mutexattr_t ma;
    pthread_mutexattr_init(&ma);
    pthread_mutexattr_settype(&ma, PTHREAD_MUTEX_RECURSIVE);
    pthread_mutex_init(&b->mu, &ma);
    pthread_mutexattr_destroy(&ma);
    b->conn.wake_fd = -1;
    b->conn.ep_fd = -1;
    b->conn.fd = -1;
    b->conn.b = b;
    b->heartbeat = 60;
    b->frame_max = 131072;
    b->verify = true;
    b->connect_timeout_ms = 5000;
    b->confirm_timeout_ms = opts->confirm_timeout_ms > 0 ? opts->confirm_timeout_ms : 10000;
    int rc = from_url(b, url);
    if (!rc && opts->publish_channels > RMQ_PUB_CHANNELS_MAX)
        rc = fs_adapter_error(FS_EINVAL, "rabbitmq: publish_channels %u: want 1..%d",
                              opts->publish_channels, RMQ_PUB_CHANNELS_MAX);
    if (!rc && opts->publish_channels)
        b->pub_channels = opts->publish_channels;
    if (!b->pub_channels)
        b->pub_channels = RMQ_PUB_CHANNELS_DEFAULT;
    if (!rc)
        rc = fs__rmq_pub_init(&b->conn, b->pub_channels);
    if (!rc)
        rc = fs_broker_create(&rmq_ops, b, url, &opts->broker, &b->broker);
    if (rc) {
        broker_free(b);
        return rc;
    }
    *out = b->broker;
    return FS_OK;
}

static int rmq_factory(const char *url, const fs_broker_options *opts, fs_broker **out)
{
    fs_rabbitmq_options o = FS_RABBITMQ_OPTIONS_INIT;
    o.broker = *opts;
    return fs_rabbitmq_broker_new(url, &o, out);
}

int fs_rabbitmq_register(void)
{
    int rc = fs_broker_register_scheme("amqp", rmq_factory);
    return rc ? rc : fs_broker_register_scheme("amqps", rmq_factory);
}

__attribute__((constructor)) static void rmq_auto_register(void)
{
    fs_rabbitmq_register();
}
