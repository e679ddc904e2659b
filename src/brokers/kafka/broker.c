/*
 * The Kafka broker: URL and options, the adapter's operations table and
 * the "kafka" URL scheme.
 */
#include "internal.h"
#include "kit/list.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ------------------------------------------------------------------------ */
/* Lifecycle                                                                */

FS_KIT_DEFINE_SUBS_SNAPSHOT(subs_snapshot, kafka_broker, ksub)

static int kafka_ping(void *impl, int timeout_ms)
{
    kafka_broker *b = impl;
    rd_kafka_t *rk = b->producer;
    if (!rk)
        return fs_adapter_error(FS_ECLOSED, "kafka: not connected");
    const rd_kafka_metadata_t *md = NULL;
    int rc =
        fs__kafka_metadata(b, rk, NULL, timeout_ms < 0 ? b->connect_timeout_ms : timeout_ms, &md);
    if (md)
        rd_kafka_metadata_destroy(md);
    return rc;
}

static int kafka_connect(void *impl)
{
    kafka_broker *b = impl;
    int rc = fs__kafka_producer_open(b);
    if (!rc)
        rc = kafka_ping(b, b->connect_timeout_ms);
    if (rc) {
        char msg[1024];
        snprintf(msg, sizeof msg, "%s", fs_last_error());
        fs__kafka_producer_close(b);
        fs_adapter_error(rc, "%s", msg);
    }
    return rc;
}

static int kafka_start(void *impl)
{
    kafka_broker *b = impl;
    ksub **v;
    size_t n = subs_snapshot(b, &v);
    int rc = FS_OK;
    for (size_t i = 0; i < n && !rc; i++)
        rc = fs__kafka_sub_start(b, v[i]);
    free(v);
    return rc;
}

static int kafka_stop(void *impl)
{
    kafka_broker *b = impl;
    ksub **v;
    size_t n = subs_snapshot(b, &v);
    for (size_t i = 0; i < n; i++)
        if (!v[i]->reply_inbox)
            fs__kafka_sub_stop(v[i]);
    free(v);
    return FS_OK;
}

static void kafka_stopped(void *impl)
{
    kafka_broker *b = impl;
    ksub **v;
    size_t n = subs_snapshot(b, &v);
    for (size_t i = 0; i < n; i++)
        if (!v[i]->reply_inbox)
            fs__kafka_sub_finish(v[i]);
    free(v);
}

static void kafka_close(void *impl)
{
    kafka_broker *b = impl;
    ksub **v;
    size_t n = subs_snapshot(b, &v);
    for (size_t i = 0; i < n; i++) {
        fs__kafka_sub_stop(v[i]);
        fs__kafka_sub_finish(v[i]);
    }
    free(v);
    fs__kafka_producer_close(b);
}

static void broker_free(kafka_broker *b)
{
    if (!b)
        return;
    while (b->subs)
        fs__kafka_unsubscribe(b, b->subs);
    fs__kafka_producer_close(b);
    free(b->bootstraps);
    free(b->group);
    free(b->client_id);
    fs__kafka_config_free(b->config, b->config_count);
    fs__kafka_config_free(b->producer_config, b->producer_config_count);
    fs__kafka_config_free(b->consumer_config, b->consumer_config_count);
    pthread_mutex_destroy(&b->mu);
    free(b);
}

static void kafka_free(void *impl)
{
    broker_free(impl);
}

static int kafka_settle(void *impl, fs_message *m, const fs_settle_args *args)
{
    if (args->op == FS_SETTLE_ACKED)
        return FS_OK; /* committed once released, in offset order: nothing to do now */
    return fs__kafka_settle(impl, m, args->op, args->delay_ms, args->reason);
}

static const fs_broker_ops kafka_ops = {
    .abi_version = FS_ADAPTER_ABI_VERSION,
    .struct_size = sizeof(fs_broker_ops),
    .name = "kafka",
    .default_ack_policy = FS_ACK_POLICY_ACK_FIRST,
    /* nack = seek back, after the delay (done here); delivery counts of seeks tracked here */
    .caps = FS_CAP_NACK | FS_CAP_NACK_DELAY | FS_CAP_DELIVERY_COUNT | FS_CAP_BACKLOG,
    .connect = kafka_connect,
    .start = kafka_start,
    .stop = kafka_stop,
    .close = kafka_close,
    .free = kafka_free,
    .ping = kafka_ping,
    .subscribe = fs__kafka_subscribe,
    .unsubscribe = fs__kafka_unsubscribe,
    .subscription_start = fs__kafka_sub_start,
    .fetch = fs__kafka_fetch,
    .fetch_batch = fs__kafka_fetch_batch,
    .settle = kafka_settle,
    .prepare_destination = fs__kafka_prepare_destination,
    .release_destination = NULL,
    .publish = fs__kafka_publish,
    .request = NULL,
    .stopped = kafka_stopped,
    .backlog = fs__kafka_backlog,
};

bool fs_broker_is_kafka(const fs_broker *broker)
{
    return broker && fs_broker_get_ops(broker) == &kafka_ops;
}

int fs_kafka_lag(fs_broker *broker, const char *source, int timeout_ms, uint64_t *out)
{
    if (!fs_broker_is_kafka(broker) || !source || !out)
        return fs_adapter_error(FS_EINVAL, "fs_kafka_lag: a Kafka broker, a source and out are "
                                           "required");
    kafka_broker *b = fs_broker_impl(broker);
    ksub *s = fs__kafka_find_sub(b, source);
    if (!s)
        return fs_adapter_error(FS_ENOTFOUND, "fs_kafka_lag: no Kafka subscription on '%s'",
                                source);
    return fs__kafka_lag_of(s, true, timeout_ms, out);
}

void *fs_kafka_producer_handle(fs_broker *broker)
{
    if (!fs_broker_is_kafka(broker))
        return NULL;
    kafka_broker *b = fs_broker_impl(broker);
    return b->producer;
}

/* ------------------------------------------------------------------------ */
/* Creation                                                                 */

static int from_url(kafka_broker *b, const char *url, const fs_kafka_options *o)
{
    fs_url u;
    int rc = fs_url_parse(url, &u);
    if (rc)
        return rc;
    char *q = NULL;
    if (strcmp(u.scheme, "kafka") != 0) {
        rc = fs_adapter_error(FS_EINVAL, "kafka: unsupported URL scheme '%s' (use kafka://)",
                              u.scheme);
        goto out;
    }
    if (u.user || u.password) {
        rc = fs_adapter_error(FS_EINVAL, "kafka: no user or password in the URL: set "
                                         "sasl.username / sasl.password in the options' config");
        goto out;
    }
    if (u.path && *u.path) {
        rc = fs_adapter_error(FS_EINVAL, "kafka: unexpected path '/%s' in the URL", u.path);
        goto out;
    }
    if (!u.hosts || !*u.hosts) {
        rc = fs_adapter_error(FS_EINVAL, "kafka: the URL names no broker (kafka://host:port)");
        goto out;
    }
    /* Every query key must be known. */
    size_t pos = 0, klen, vlen;
    const char *k, *v;
    while (fs_url_query_next(&u, &pos, &k, &klen, &v, &vlen)) {
        if (!((klen == 8 && !strncmp(k, "group_id", 8)) ||
              (klen == 9 && !strncmp(k, "client_id", 9)))) {
            rc = fs_adapter_error(FS_EINVAL,
                                  "kafka: unknown URL parameter '%.*s' (group_id, client_id; other "
                                  "settings go in fs_kafka_options.config)",
                                  (int)klen, k);
            goto out;
        }
    }
    b->bootstraps = strdup(u.hosts);
    const char *group = o->group_id;
    if (!group)
        group = q = fs_url_query_param(&u, "group_id");
    bool want_group = group && *group;
    if (want_group)
        b->group = strdup(group);
    free(q);
    q = NULL;
    const char *cid = o->client_id;
    if (!cid)
        cid = q = fs_url_query_param(&u, "client_id");
    b->client_id = strdup(cid && *cid ? cid : "faststream-c");
    if (!b->bootstraps || !b->client_id || (want_group && !b->group))
        rc = fs_adapter_error(FS_ENOMEM, "kafka: out of memory");
out:
    free(q);
    fs_url_free(&u);
    return rc;
}

/* Every setting must be one librdkafka knows: check them now, not at connect. */
static int check_config(kafka_broker *b)
{
    rd_kafka_conf_t *c;
    int rc = fs__kafka_conf(b, false, NULL, 0, &c);
    if (rc)
        return rc;
    rd_kafka_conf_destroy(c);
    if ((rc = fs__kafka_conf(b, true, NULL, 0, &c)))
        return rc;
    rd_kafka_conf_destroy(c);
    return FS_OK;
}

int fs_kafka_broker_new(const char *url, const fs_kafka_options *opts, fs_broker **out)
{
    if (!url || !out)
        return fs_adapter_error(FS_EINVAL, "fs_kafka_broker_new: url and out are required");
    static const fs_kafka_options defaults = FS_KAFKA_OPTIONS_INIT;
    if (!opts)
        opts = &defaults;
    if (opts->connect_timeout_ms < 0)
        return fs_adapter_error(FS_EINVAL, "fs_kafka_broker_new: negative connect_timeout_ms");
    kafka_broker *b = calloc(1, sizeof *b);
    if (!b)
        return fs_adapter_error(FS_ENOMEM, "kafka: out of memory");
    pthread_mutex_init(&b->mu, NULL);
    b->connect_timeout_ms = opts->connect_timeout_ms ? opts->connect_timeout_ms : 5000;
    b->commit_interval_ms = opts->commit_interval_ms ? opts->commit_interval_ms : 500;
    b->commit_every = opts->commit_every ? opts->commit_every : 1000;
    b->rebalance_timeout_ms = opts->rebalance_timeout_ms ? opts->rebalance_timeout_ms : 10000;
    int rc = from_url(b, url, opts);
    if (!rc)
        rc = fs__kafka_config_copy(opts->config, opts->config_count, &b->config);
    if (!rc)
        b->config_count = opts->config_count;
    if (!rc)
        rc = fs__kafka_config_copy(opts->producer_config, opts->producer_config_count,
                                   &b->producer_config);
    if (!rc)
        b->producer_config_count = opts->producer_config_count;
    if (!rc)
        rc = fs__kafka_config_copy(opts->consumer_config, opts->consumer_config_count,
                                   &b->consumer_config);
    if (!rc)
        b->consumer_config_count = opts->consumer_config_count;
    if (!rc)
        rc = check_config(b);
    if (!rc)
        rc = fs_broker_create(&kafka_ops, b, url, &opts->broker, &b->broker);
    if (rc) {
        broker_free(b);
        return rc;
    }
    *out = b->broker;
    return FS_OK;
}

static int kafka_factory(const char *url, const fs_broker_options *opts, fs_broker **out)
{
    fs_kafka_options o = FS_KAFKA_OPTIONS_INIT;
    o.broker = *opts;
    return fs_kafka_broker_new(url, &o, out);
}

int fs_kafka_register(void)
{
    return fs_broker_register_scheme("kafka", kafka_factory);
}

__attribute__((constructor)) static void kafka_auto_register(void)
{
    fs_kafka_register();
}
