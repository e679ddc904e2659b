/*
 * The MQTT broker: URL and options, the adapter's operations, and the
 * "mqtt" / "mqtts" URL schemes.
 */
#include "internal.h"
#include "kit/list.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* ------------------------------------------------------------------------ */
/* Lifecycle                                                                */

FS_KIT_DEFINE_SUBS_SNAPSHOT(subs_snapshot, mq_broker, mq_sub)

static int mq_connect(void *impl)
{
    mq_broker *b = impl;
    atomic_store(&b->closed, false);
    pthread_mutex_lock(&b->mu);
    int rc = fs__mq_conn_open(&b->pub, b->client_id, b->clean_start);
    pthread_mutex_unlock(&b->mu);
    return rc;
}

static int mq_start(void *impl)
{
    mq_broker *b = impl;
    mq_sub **v;
    size_t n = subs_snapshot(b, &v);
    int rc = FS_OK;
    for (size_t i = 0; i < n && !rc; i++)
        rc = fs__mq_sub_start(b, v[i]);
    free(v);
    return rc;
}

static int mq_stop(void *impl)
{
    mq_broker *b = impl;
    mq_sub **v;
    size_t n = subs_snapshot(b, &v);
    for (size_t i = 0; i < n; i++)
        if (!v[i]->reply_inbox)
            fs__mq_sub_stop(v[i]);
    free(v);
    return FS_OK;
}

static void mq_stopped(void *impl)
{
    mq_broker *b = impl;
    mq_sub **v;
    size_t n = subs_snapshot(b, &v);
    for (size_t i = 0; i < n; i++)
        if (!v[i]->reply_inbox)
            fs__mq_sub_stopped(v[i]);
    free(v);
}

static void mq_close(void *impl)
{
    mq_broker *b = impl;
    mq_sub **v;
    size_t n = subs_snapshot(b, &v);
    for (size_t i = 0; i < n; i++)
        fs__mq_sub_stopped(v[i]);
    free(v);
    atomic_store(&b->closed, true);
    pthread_mutex_lock(&b->mu);
    fs__mq_conn_close(&b->pub);
    pthread_mutex_unlock(&b->mu);
}

static int mq_ping(void *impl, int timeout_ms)
{
    (void)timeout_ms; /* libmosquitto keeps the PINGREQs itself: report its view */
    mq_broker *b = impl;
    fs__mq_conn_revive(&b->pub);
    bool open = atomic_load(&b->pub.m) != NULL;
    int state = atomic_load(&b->pub.state);
    if (!open)
        return fs_adapter_error(FS_ECLOSED, "mqtt: not connected");
    if (state != MQ_UP)
        return fs_adapter_error(FS_EIO, "mqtt: the connection to %s:%d is down", b->host, b->port);
    return FS_OK;
}

static void broker_free(mq_broker *b)
{
    if (!b)
        return;
    while (b->subs)
        fs__mq_unsubscribe(b, b->subs);
    fs__mq_conn_destroy(&b->pub);
    free(b->host);
    free(b->client_id);
    free(b->username);
    free(b->password);
    free(b->ca_file);
    free(b->cert_file);
    free(b->key_file);
    free(b->will_topic);
    free(b->will_payload);
    pthread_mutex_destroy(&b->mu);
    free(b);
}

static void mq_free(void *impl)
{
    broker_free(impl);
}

/*
 * No FS_CAP_NACK: MQTT has no nack (FastStream's nack is a no-op). Ordered
 * settlement is not asked for: see fs__mq_subscribe. Request/reply: MQTT 5
 * uses the core's reply inbox (response topic + correlation data); 3.1.1
 * has its own request (the caller's reply_to), hence two tables.
 */
#define MQ_OPS_COMMON                                                                              \
    .abi_version = FS_ADAPTER_ABI_VERSION, .struct_size = sizeof(fs_broker_ops), .name = "mqtt",   \
    .default_ack_policy = FS_ACK_POLICY_ACK, .connect = mq_connect, .start = mq_start,             \
    .stop = mq_stop, .close = mq_close, .free = mq_free, .ping = mq_ping,                          \
    .subscribe = fs__mq_subscribe, .unsubscribe = fs__mq_unsubscribe,                              \
    .subscription_start = fs__mq_sub_start, .fetch = fs__mq_fetch, .settle = fs__mq_settle,        \
    .prepare_destination = fs__mq_prepare_destination, .publish = fs__mq_publish,                  \
    .stopped = mq_stopped

static const fs_broker_ops mqtt_ops = {MQ_OPS_COMMON, .caps = 0};

static const fs_broker_ops mqtt311_ops = {MQ_OPS_COMMON, .caps = FS_CAP_NATIVE_REQUEST,
                                          .request = fs__mq_request_311};

FS_API bool fs_broker_is_mqtt(const fs_broker *broker)
{
    const fs_broker_ops *ops = broker ? fs_broker_get_ops(broker) : NULL;
    return ops && (ops == &mqtt_ops || ops == &mqtt311_ops);
}

FS_API fs_mqtt_version fs_mqtt_broker_version(const fs_broker *broker)
{
    if (!fs_broker_is_mqtt(broker))
        return FS_MQTT_VERSION_DEFAULT;
    return (fs_mqtt_version)((mq_broker *)fs_broker_impl(broker))->version;
}

/* ------------------------------------------------------------------------ */
/* URL and options                                                          */

static int parse_bool(const char *key, const char *v, bool *out)
{
    if (!strcmp(v, "true") || !strcmp(v, "1") || !strcmp(v, "yes")) {
        *out = true;
        return FS_OK;
    }
    if (!strcmp(v, "false") || !strcmp(v, "0") || !strcmp(v, "no")) {
        *out = false;
        return FS_OK;
    }
    return fs_adapter_error(FS_EINVAL, "mqtt: %s must be true or false, not '%s'", key, v);
}

static int parse_uint(const char *key, const char *v, unsigned long max, unsigned long *out)
{
    char *end;
    unsigned long n = strtoul(v, &end, 10);
    if (!*v || *end || *v == '-' || n > max)
        return fs_adapter_error(FS_EINVAL, "mqtt: %s must be a number up to %lu, not '%s'", key,
                                max, v);
    *out = n;
    return FS_OK;
}

static int parse_version(const char *v, int *out)
{
    if (!strcmp(v, "5") || !strcmp(v, "5.0"))
        *out = FS_MQTT_V5;
    else if (!strcmp(v, "3.1.1") || !strcmp(v, "4"))
        *out = FS_MQTT_V311;
    else
        return fs_adapter_error(FS_EINVAL, "mqtt: unknown version '%s' (5 or 3.1.1)", v);
    return FS_OK;
}

static const char *const url_keys[] = {"client_id",      "version", "keepalive", "clean_start",
                                       "session_expiry", "ca",      "cert",      "key",
                                       "insecure"};

/* Refuse a query parameter we do not know, naming it. */
static int check_query(const fs_url *u)
{
    size_t pos = 0, klen, vlen;
    const char *key, *value;
    while (fs_url_query_next(u, &pos, &key, &klen, &value, &vlen)) {
        bool known = false;
        for (size_t i = 0; i < sizeof url_keys / sizeof *url_keys && !known; i++)
            known = strlen(url_keys[i]) == klen && !strncmp(url_keys[i], key, klen);
        if (!known)
            return fs_adapter_error(FS_EINVAL, "mqtt: unknown URL parameter '%.*s'", (int)klen,
                                    key);
    }
    return FS_OK;
}

/* Take the URL's value of `key` into *dst unless the options set it already. */
static int take(const fs_url *u, const char *key, char **dst)
{
    if (*dst)
        return FS_OK;
    *dst = fs_url_query_param(u, key);
    return FS_OK;
}

static int from_url(mq_broker *b, const char *url)
{
    fs_url u;
    int rc = fs_url_parse(url, &u);
    if (rc)
        return rc;
    char *v = NULL;
    if (!strcmp(u.scheme, "mqtts"))
        b->tls = true;
    else if (strcmp(u.scheme, "mqtt") != 0) {
        rc = fs_adapter_error(FS_EINVAL, "mqtt: unsupported URL scheme '%s' (mqtt:// or mqtts://)",
                              u.scheme);
        goto out;
    }
    if (u.hosts && strchr(u.hosts, ',')) {
        rc = fs_adapter_error(FS_EUNSUPPORTED, "mqtt: one host only");
        goto out;
    }
    if (u.path && *u.path) {
        rc = fs_adapter_error(FS_EINVAL, "mqtt: unexpected path '/%s' in %s", u.path, url);
        goto out;
    }
    if ((rc = check_query(&u)))
        goto out;
    b->host = strdup(u.host && *u.host ? u.host : "127.0.0.1");
    b->port = u.port > 0 ? u.port : b->tls ? 8883 : 1883;
    if (!b->username && u.user && *u.user)
        b->username = strdup(u.user);
    if (!b->password && u.password)
        b->password = strdup(u.password);
    take(&u, "client_id", &b->client_id);
    take(&u, "ca", &b->ca_file);
    take(&u, "cert", &b->cert_file);
    take(&u, "key", &b->key_file);
    if (!b->host || (u.user && *u.user && !b->username) || (u.password && !b->password)) {
        rc = fs_adapter_error(FS_ENOMEM, "mqtt: out of memory");
        goto out;
    }
    unsigned long n = 0;
    bool flag = false;
    if (!b->version && (v = fs_url_query_param(&u, "version")) &&
        (rc = parse_version(v, &b->version)))
        goto out;
    free(v);
    if (!b->keepalive_s && (v = fs_url_query_param(&u, "keepalive"))) {
        if ((rc = parse_uint("keepalive", v, 65535, &n)))
            goto out;
        b->keepalive_s = (int)n;
    }
    free(v);
    v = NULL;
    if ((v = fs_url_query_param(&u, "clean_start"))) {
        if ((rc = parse_bool("clean_start", v, &flag)))
            goto out;
        if (b->clean_start_unset)
            b->clean_start = flag;
    }
    free(v);
    v = NULL;
    if (!b->session_expiry_s && (v = fs_url_query_param(&u, "session_expiry"))) {
        if ((rc = parse_uint("session_expiry", v, UINT32_MAX, &n)))
            goto out;
        b->session_expiry_s = (uint32_t)n;
    }
    free(v);
    v = NULL;
    if ((v = fs_url_query_param(&u, "insecure"))) {
        if ((rc = parse_bool("insecure", v, &flag)))
            goto out;
        b->tls_insecure = flag;
    }
out:
    free(v);
    fs_url_free(&u);
    return rc;
}

static char *dup_opt(const char *s, bool *oom)
{
    if (!s)
        return NULL;
    char *d = strdup(s);
    if (!d)
        *oom = true;
    return d;
}

static int from_options(mq_broker *b, const fs_mqtt_options *o)
{
    if (o->version && o->version != FS_MQTT_V5 && o->version != FS_MQTT_V311)
        return fs_adapter_error(FS_EINVAL, "mqtt: unknown version %d (FS_MQTT_V5 or FS_MQTT_V311)",
                                (int)o->version);
    if (o->keepalive_s < 0 || o->keepalive_s > 65535)
        return fs_adapter_error(FS_EINVAL, "mqtt: keepalive %d out of range", o->keepalive_s);
    if (o->will_topic && (o->will_qos < 0 || o->will_qos > 2))
        return fs_adapter_error(FS_EINVAL, "mqtt: will QoS %d (0, 1 or 2)", o->will_qos);
    if (o->will_topic && fs__mq_topic_problem(o->will_topic))
        return fs_adapter_error(FS_EINVAL, "mqtt: will topic '%s': %s", o->will_topic,
                                fs__mq_topic_problem(o->will_topic));
    if (o->will_len && !o->will_payload)
        return fs_adapter_error(FS_EINVAL, "mqtt: will payload NULL with length %zu", o->will_len);
    bool oom = false;
    b->version = o->version;
    b->keepalive_s = o->keepalive_s;
    b->clean_start_unset = o->clean_start < 0;
    b->clean_start = o->clean_start != 0;
    b->session_expiry_s = o->session_expiry_s;
    b->client_id = dup_opt(o->client_id, &oom);
    b->username = dup_opt(o->username, &oom);
    b->password = dup_opt(o->password, &oom);
    b->ca_file = dup_opt(o->ca_file, &oom);
    b->cert_file = dup_opt(o->cert_file, &oom);
    b->key_file = dup_opt(o->key_file, &oom);
    b->will_topic = dup_opt(o->will_topic, &oom);
    if (o->will_topic && o->will_len) {
        b->will_payload = malloc(o->will_len);
        if (b->will_payload)
            memcpy(b->will_payload, o->will_payload, o->will_len);
        else
            oom = true;
    }
    b->will_len = o->will_len;
    b->will_qos = o->will_qos;
    b->will_retain = o->will_retain;
    b->connect_timeout_ms = o->connect_timeout_ms > 0 ? o->connect_timeout_ms : 5000;
    b->publish_timeout_ms = o->publish_timeout_ms > 0 ? o->publish_timeout_ms : 10000;
    return oom ? fs_adapter_error(FS_ENOMEM, "mqtt: out of memory") : FS_OK;
}

static int default_client_id(mq_broker *b)
{
    static _Atomic unsigned seq;
    char host[64] = "host";
    gethostname(host, sizeof host - 1);
    host[sizeof host - 1] = '\0';
    char id[128];
    snprintf(id, sizeof id, "faststream-c-%s-%ld-%u", host, (long)getpid(),
             atomic_fetch_add(&seq, 1) + 1);
    b->client_id = strdup(id);
    return b->client_id ? FS_OK : fs_adapter_error(FS_ENOMEM, "mqtt: out of memory");
}

static pthread_once_t lib_once = PTHREAD_ONCE_INIT;

static void lib_init(void)
{
    mosquitto_lib_init(); /* once for the process; never cleaned up (brokers may outlive main) */
}

FS_API int fs_mqtt_broker_new(const char *url, const fs_mqtt_options *opts, fs_broker **out)
{
    if (!url || !out)
        return fs_adapter_error(FS_EINVAL, "fs_mqtt_broker_new: url and out are required");
    static const fs_mqtt_options defaults = FS_MQTT_OPTIONS_INIT;
    if (!opts)
        opts = &defaults;
    pthread_once(&lib_once, lib_init); /* libmosquitto's own count is not thread-safe */
    mq_broker *b = calloc(1, sizeof *b);
    if (!b)
        return fs_adapter_error(FS_ENOMEM, "mqtt: out of memory");
    pthread_mutex_init(&b->mu, NULL);
    fs__mq_conn_init(&b->pub, b, NULL);
    int rc = from_options(b, opts);
    if (!rc)
        rc = from_url(b, url);
    if (!rc && !b->client_id)
        rc = default_client_id(b);
    if (!rc && !*b->client_id)
        rc = fs_adapter_error(FS_EINVAL, "mqtt: empty client_id");
    if (!rc && !b->tls && (b->ca_file || b->cert_file || b->key_file))
        rc = fs_adapter_error(FS_EINVAL, "mqtt: ca/cert/key need mqtts://");
    if (!rc && (!b->cert_file) != (!b->key_file))
        rc = fs_adapter_error(FS_EINVAL, "mqtt: a client certificate needs its key (cert and key)");
    if (!b->version)
        b->version = FS_MQTT_V5;
    if (!b->keepalive_s)
        b->keepalive_s = 60;
    if (!rc)
        rc = fs_broker_create(b->version == FS_MQTT_V5 ? &mqtt_ops : &mqtt311_ops, b, url,
                              &opts->broker, &b->broker);
    if (rc) {
        broker_free(b);
        return rc;
    }
    *out = b->broker;
    return FS_OK;
}

static int mqtt_factory(const char *url, const fs_broker_options *opts, fs_broker **out)
{
    fs_mqtt_options o = FS_MQTT_OPTIONS_INIT;
    o.broker = *opts;
    return fs_mqtt_broker_new(url, &o, out);
}

FS_API int fs_mqtt_register(void)
{
    int rc = fs_broker_register_scheme("mqtt", mqtt_factory);
    return rc ? rc : fs_broker_register_scheme("mqtts", mqtt_factory);
}

__attribute__((constructor)) static void mqtt_auto_register(void)
{
    fs_mqtt_register();
}
