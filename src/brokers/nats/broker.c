/*
 * The NATS broker: options, the adapter's operations, the public
 * functions of nats.h and the "nats" / "tls" URL schemes.
 */
#include "internal.h"

#include <stdlib.h>
#include <string.h>

/* ------------------------------------------------------------------------ */
/* Lifecycle                                                                */

static int nats_connect(void *impl)
{
    return fs__nats_connect(impl);
}

static int nats_ping(void *impl, int timeout_ms)
{
    nats_broker *b = impl;
    int rc;
    natsConnection *nc = fs__nats_conn(b, NULL, &rc);
    if (!nc)
        return rc;
    if (timeout_ms <= 0)
        timeout_ms = 5000;
    natsStatus st = natsConnection_FlushTimeout(nc, timeout_ms); /* PING / PONG */
    if (st == NATS_TIMEOUT)
        return fs_adapter_error(FS_ETIMEDOUT, "nats: no PONG from %s within %d ms", b->url,
                                timeout_ms);
    return fs__nats_status(st, "ping");
}

/*
 * Run `fn` on every subscription, under the broker's lock (the keep-alive
 * thread takes it too, never the other way round); stop at the first error.
 */
static int each_sub(nats_broker *b, int (*fn)(nats_broker *, nsub *))
{
    int rc = FS_OK;
    pthread_mutex_lock(&b->mu);
    for (nsub *s = b->subs; s && !rc; s = s->next)
        rc = fn(b, s);
    pthread_mutex_unlock(&b->mu);
    return rc;
}

static int start_one(nats_broker *b, nsub *s)
{
    return fs__nats_sub_start(b, s);
}

static int stop_one(nats_broker *b, nsub *s)
{
    (void)b;
    fs__nats_sub_stop(s);
    return FS_OK;
}

static int stopped_one(nats_broker *b, nsub *s)
{
    (void)b;
    fs__nats_sub_stopped(s);
    return FS_OK;
}

static int nats_start(void *impl)
{
    return each_sub(impl, start_one);
}

static int nats_stop(void *impl)
{
    return each_sub(impl, stop_one);
}

static void nats_stopped(void *impl)
{
    nats_broker *b = impl;
    each_sub(b, stopped_one);
    /* In-flight acknowledgements leave before stop returns. */
    int rc;
    natsConnection *nc = fs__nats_conn(b, NULL, &rc);
    if (nc)
        natsConnection_FlushTimeout(nc, 2000);
}

static void nats_close(void *impl)
{
    nats_broker *b = impl;
    fs__nats_keepalive_stop(b);
    each_sub(b, stop_one);
    fs__nats_disconnect(b);
}

static void broker_free(nats_broker *b)
{
    if (!b)
        return;
    fs__nats_keepalive_stop(b);
    while (b->subs)
        fs__nats_unsubscribe(b, b->subs);
    fs__nats_conn_free(b);
    for (int i = 0; b->servers && i < b->server_count; i++)
        free(b->servers[i]);
    free(b->servers);
    free(b->url);
    free(b->user);
    free(b->password);
    free(b->token);
    free(b->name);
    free(b->tls_ca);
    free(b->tls_cert);
    free(b->tls_key);
    pthread_mutex_destroy(&b->mu);
    pthread_mutex_destroy(&b->ka_mu);
    pthread_mutex_destroy(&b->cb_mu);
    pthread_cond_destroy(&b->cb_cv);
    pthread_cond_destroy(&b->ka_cv);
    free(b);
}

static void nats_free(void *impl)
{
    broker_free(impl);
}

/* ------------------------------------------------------------------------ */
/* Consuming                                                                */

static int settle_all(fs_message *m, fs_settle_state op, unsigned delay_ms)
{
    if (!fs_message_is_batch(m))
        return fs__nats_settle_one(m, op, delay_ms);
    int rc = FS_OK;
    for (size_t i = 0, n = fs_message_count(m); i < n; i++) {
        int one = fs__nats_settle_one(fs_message_at(m, i), op, delay_ms);
        if (one && !rc)
            rc = one;
    }
    return rc;
}

static int nats_fetch(void *impl, void *sub, unsigned worker, int timeout_ms, fs_message **out)
{
    (void)impl;
    return fs__nats_fetch(sub, worker, timeout_ms, out);
}

static int nats_fetch_batch(void *impl, void *sub, unsigned worker, fs_message **out, size_t max,
                            unsigned batch_timeout_ms, int timeout_ms, size_t *n)
{
    (void)impl;
    return fs__nats_fetch_batch(sub, worker, out, max, batch_timeout_ms, timeout_ms, n);
}

static int nats_settle(void *impl, fs_message *m, const fs_settle_args *args)
{
    (void)impl;
    return settle_all(m, args->op, args->delay_ms);
}

static int nats_in_progress(void *impl, fs_message *m)
{
    (void)impl;
    return fs__nats_in_progress(m);
}

static int nats_backlog(void *impl, void *sub, int timeout_ms, uint64_t *out)
{
    return fs__nats_backlog(impl, sub, timeout_ms, out);
}

static const fs_broker_ops nats_ops = {
    .abi_version = FS_ADAPTER_ABI_VERSION,
    .struct_size = sizeof(fs_broker_ops),
    .caps = FS_CAP_NATIVE_REQUEST | FS_CAP_NACK | FS_CAP_NACK_DELAY | FS_CAP_IN_PROGRESS |
            FS_CAP_DELIVERY_COUNT | FS_CAP_BACKLOG,
    .settle = nats_settle,
    .in_progress = nats_in_progress,
    .backlog = nats_backlog,
    .name = "nats",
    .default_ack_policy = FS_ACK_POLICY_REJECT_ON_ERROR,
    .connect = nats_connect,
    .start = nats_start,
    .stop = nats_stop,
    .close = nats_close,
    .free = nats_free,
    .ping = nats_ping,
    .subscribe = fs__nats_subscribe,
    .unsubscribe = fs__nats_unsubscribe,
    .subscription_start = fs__nats_sub_start,
    .fetch = nats_fetch,
    .fetch_batch = nats_fetch_batch,
    .prepare_destination = fs__nats_prepare_destination,
    .release_destination = fs__nats_release_destination,
    .publish = fs__nats_publish,
    .request = fs__nats_request,
    .stopped = nats_stopped,
};

bool fs_broker_is_nats(const fs_broker *broker)
{
    return broker && fs_broker_get_ops(broker) == &nats_ops;
}

int fs_nats_subscriber_backlog(fs_subscriber *sub, int timeout_ms, uint64_t *out)
{
    FS_CHECK_ARG(sub && out, "fs_nats_subscriber_backlog: sub and out are required");
    FS_CHECK_ARG(fs_broker_is_nats(fs_subscriber_broker(sub)),
                 "fs_nats_subscriber_backlog: not a NATS subscriber");
    return fs_subscriber_backlog(sub, timeout_ms, out);
}

/* ------------------------------------------------------------------------ */
/* Creation                                                                 */

static int copy_opt(char **dst, const char *src)
{
    if (!src)
        return FS_OK;
    free(*dst);
    *dst = strdup(src);
    return *dst ? FS_OK : fs_adapter_error(FS_ENOMEM, "nats: out of memory");
}

int fs_nats_broker_new(const char *url, const fs_nats_options *opts, fs_broker **out)
{
    FS_CHECK_ARG(url && out, "fs_nats_broker_new: url and out are required");
    static const fs_nats_options defaults = FS_NATS_OPTIONS_INIT;
    if (!opts)
        opts = &defaults;
    FS_CHECK_ARG(opts->connect_timeout_ms >= 0 && opts->reconnect_wait_ms >= 0 &&
                     opts->reconnect_buffer_bytes >= 0,
                 "fs_nats_broker_new: negative timeout or buffer size");
    FS_CHECK_ARG(!opts->token || !opts->user,
                 "fs_nats_broker_new: a token and a user exclude each other");
    FS_CHECK_ARG((opts->tls_cert_file != NULL) == (opts->tls_key_file != NULL),
                 "fs_nats_broker_new: tls_cert_file and tls_key_file go together");
    nats_broker *b = calloc(1, sizeof *b);
    if (!b)
        return fs_adapter_error(FS_ENOMEM, "nats: out of memory");
    pthread_mutex_init(&b->mu, NULL);
    pthread_mutex_init(&b->ka_mu, NULL);
    pthread_mutex_init(&b->cb_mu, NULL);
    pthread_cond_init(&b->cb_cv, NULL);
    fs_kit_cond_init_monotonic(&b->ka_cv); /* the keep-alive's ticks */
    atomic_store(&b->closed, true);
    b->connect_timeout_ms = opts->connect_timeout_ms ? opts->connect_timeout_ms : 2000;
    b->max_reconnect = opts->max_reconnect;
    b->reconnect_wait_ms = opts->reconnect_wait_ms ? opts->reconnect_wait_ms : 250;
    b->reconnect_buf = opts->reconnect_buffer_bytes ? opts->reconnect_buffer_bytes : 8 << 20;
    int rc = copy_opt(&b->url, url);
    if (!rc && opts->token) { /* options override the URL's credentials */
        rc = copy_opt(&b->token, opts->token);
    } else if (!rc && opts->user) {
        rc = copy_opt(&b->user, opts->user);
        if (!rc)
            rc = copy_opt(&b->password, opts->password ? opts->password : "");
    }
    if (!rc)
        rc = copy_opt(&b->name, opts->name);
    if (!rc)
        rc = copy_opt(&b->tls_ca, opts->tls_ca_file);
    if (!rc)
        rc = copy_opt(&b->tls_cert, opts->tls_cert_file);
    if (!rc)
        rc = copy_opt(&b->tls_key, opts->tls_key_file);
    if (!rc)
        rc = fs__nats_parse_url(b, url);
    if (!rc)
        rc = fs_broker_create(&nats_ops, b, url, &opts->broker, &b->broker);
    if (rc) {
        broker_free(b);
        return rc;
    }
    *out = b->broker;
    return FS_OK;
}

static int nats_factory(const char *url, const fs_broker_options *opts, fs_broker **out)
{
    fs_nats_options o = FS_NATS_OPTIONS_INIT;
    o.broker = *opts;
    return fs_nats_broker_new(url, &o, out);
}

int fs_nats_register(void)
{
    int rc = fs_broker_register_scheme("nats", nats_factory);
    return rc ? rc : fs_broker_register_scheme("tls", nats_factory);
}

__attribute__((constructor)) static void nats_auto_register(void)
{
    fs_nats_register();
}
