/*
 * MQTT connections: one libmosquitto client each, with its network thread
 * (which reconnects with backoff), its CONNACK/SUBACK/PUBACK bookkeeping
 * and the log lines for losses and recoveries. See internal.h.
 */
#include "internal.h"

#include <errno.h>
#include <mqtt_protocol.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

uint64_t fs__mq_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

void fs__mq_sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

void fs__mq_deadline(struct timespec *dl, int ms)
{
    clock_gettime(CLOCK_MONOTONIC, dl);
    dl->tv_sec += ms / 1000;
    dl->tv_nsec += (long)(ms % 1000) * 1000000L;
    if (dl->tv_nsec >= 1000000000L) {
        dl->tv_sec++;
        dl->tv_nsec -= 1000000000L;
    }
}

void fs__mq_cond_init(pthread_cond_t *cv)
{
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(cv, &ca);
    pthread_condattr_destroy(&ca);
}

int fs__mq_error(int mosq_rc, const char *what)
{
    int status;
    switch (mosq_rc) {
    case MOSQ_ERR_NOMEM:
        status = FS_ENOMEM;
        break;
    case MOSQ_ERR_INVAL:
    case MOSQ_ERR_PAYLOAD_SIZE:
    case MOSQ_ERR_MALFORMED_UTF8:
    case MOSQ_ERR_QOS_NOT_SUPPORTED:
    case MOSQ_ERR_OVERSIZE_PACKET:
    case MOSQ_ERR_DUPLICATE_PROPERTY:
        status = FS_EINVAL;
        break;
    case MOSQ_ERR_NOT_SUPPORTED:
        status = FS_EUNSUPPORTED;
        break;
    case MOSQ_ERR_NO_CONN:
    case MOSQ_ERR_CONN_LOST:
    case MOSQ_ERR_ERRNO:
    case MOSQ_ERR_TLS:
    case MOSQ_ERR_EAI:
        status = FS_EIO;
        break;
    default:
        status = FS_EBROKER;
        break;
    }
    if (mosq_rc == MOSQ_ERR_ERRNO)
        return fs_adapter_error(status, "mqtt: %s: %s", what, strerror(errno));
    return fs_adapter_error(status, "mqtt: %s: %s", what, mosquitto_strerror(mosq_rc));
}

/* The exception type names the metrics report (FastStream's where it has one). */
const char *fs__mq_error_type(int status)
{
    switch (status) {
    case FS_ETIMEDOUT:
        return "TimeoutError";
    case FS_EINVAL:
        return "ValueError";
    case FS_EUNSUPPORTED:
        return "FeatureNotSupportedException";
    case FS_EBROKER:
        return "MQTTError";
    case FS_ENOMEM:
        return "MemoryError";
    default:
        return "ConnectionError";
    }
}

static const char *conn_name(const mq_conn *c)
{
    return c->client_id ? c->client_id : "?";
}

/* ------------------------------------------------------------------------ */
/* Callbacks (network thread)                                               */

static void on_connect(struct mosquitto *m, void *obj, int rc, int flags,
                       const mosquitto_property *props)
{
    (void)m;
    (void)props;
    mq_conn *c = obj;
    mq_broker *b = c->b;
    pthread_mutex_lock(&c->mu);
    bool first = !c->ever_up, recovered = false, refused_logged = false;
    if (rc == 0) {
        c->state = MQ_UP;
        c->session_present = (flags & 1) != 0;
        recovered = c->down_logged;
        c->down_logged = false;
        c->ever_up = true;
    } else {
        c->state = MQ_REFUSED;
        c->refused_rc = rc;
        refused_logged = c->down_logged;
        c->down_logged = true;
    }
    pthread_cond_broadcast(&c->cv);
    pthread_mutex_unlock(&c->mu);
    if (recovered)
        fs_adapter_log(FS_LOG_INFO, MQ_COMPONENT, "connection %s to %s:%d restored%s", conn_name(c),
                       b->host, b->port, c->session_present ? " (session kept)" : "");
    if (rc != 0 && !first && !refused_logged)
        fs_adapter_log(FS_LOG_WARN, MQ_COMPONENT, "%s:%d refused connection %s: %s", b->host,
                       b->port, conn_name(c), mosquitto_reason_string(rc));
    if (rc == 0 && c->sub)
        fs__mq_sub_on_connect(c);
}

/* The errors after which mosquitto_loop_forever (the network thread) returns for good. */
static bool fatal_for_libmosquitto(int rc)
{
    switch (rc) {
    case MOSQ_ERR_NOMEM:
    case MOSQ_ERR_PROTOCOL:
    case MOSQ_ERR_INVAL:
    case MOSQ_ERR_NOT_FOUND:
    case MOSQ_ERR_TLS:
    case MOSQ_ERR_PAYLOAD_SIZE:
    case MOSQ_ERR_NOT_SUPPORTED:
    case MOSQ_ERR_AUTH:
    case MOSQ_ERR_ACL_DENIED:
    case MOSQ_ERR_UNKNOWN:
    case MOSQ_ERR_EAI:
    case MOSQ_ERR_PROXY:
        return true;
    default:
        return false;
    }
}

static void on_disconnect(struct mosquitto *m, void *obj, int rc, const mosquitto_property *props)
{
    (void)m;
    (void)props;
    mq_conn *c = obj;
    pthread_mutex_lock(&c->mu);
    bool log = rc != 0 && c->state == MQ_UP && !c->down_logged;
    if (c->state != MQ_REFUSED) /* keep the refusal for whoever waits for the CONNACK */
        c->state = MQ_DOWN;
    if (log)
        c->down_logged = true;
    pthread_cond_broadcast(&c->cv);
    pthread_mutex_unlock(&c->mu);
    /*
     * libmosquitto's network thread ends after a fatal error, and after a
     * DISCONNECT from the server (an MQTT reason code: 0 or >= 0x80); a lost
     * socket (MOSQ_ERR_*) it reconnects itself. Our own close sets `closing`.
     */
    bool gone = !atomic_load(&c->closing) && (fatal_for_libmosquitto(rc) || rc == 0 || rc >= 0x80);
    if (gone) {
        atomic_store(&c->thread_gone, true);
        fs_adapter_log(FS_LOG_WARN, MQ_COMPONENT,
                       "connection %s to %s:%d ended (%s); connecting again with backoff",
                       conn_name(c), c->b->host, c->b->port,
                       rc >= 0x80 ? mosquitto_reason_string(rc) : mosquitto_strerror(rc));
    } else if (log)
        fs_adapter_log(FS_LOG_WARN, MQ_COMPONENT,
                       "connection %s to %s:%d lost (%s); reconnecting with backoff", conn_name(c),
                       c->b->host, c->b->port,
                       rc >= 0x80 ? mosquitto_reason_string(rc) : mosquitto_strerror(rc));
}

static void on_publish(struct mosquitto *m, void *obj, int mid, int reason,
                       const mosquitto_property *props)
{
    (void)m;
    (void)props;
    fs__mq_on_publish(obj, mid, reason);
}

static void on_subscribe(struct mosquitto *m, void *obj, int mid, int count, const int *granted,
                         const mosquitto_property *props)
{
    (void)m;
    (void)props;
    mq_conn *c = obj;
    pthread_mutex_lock(&c->mu);
    int g = count > 0 ? granted[0] : MQTT_RC_UNSPECIFIED;
    bool mine = mid == c->sub_mid;
    if (mine) {
        c->sub_granted = g;
        c->subscribed++;
        pthread_cond_broadcast(&c->cv);
    }
    pthread_mutex_unlock(&c->mu);
    if (mine && g >= 0x80)
        fs_adapter_log(FS_LOG_ERROR, MQ_COMPONENT, "subscription to %s refused: %s",
                       c->sub ? c->sub->filter : "?", mosquitto_reason_string(g));
}

/* ------------------------------------------------------------------------ */
/* Open and close                                                           */

void fs__mq_conn_init(mq_conn *c, mq_broker *b, mq_sub *sub)
{
    memset(c, 0, sizeof *c);
    c->b = b;
    c->sub = sub;
    c->sub_granted = -1;
    pthread_mutex_init(&c->mu, NULL);
    fs__mq_cond_init(&c->cv);
}

/* Set everything on a new client before its first connection. */
static int configure(mq_conn *c, bool clean_start, mosquitto_property **props)
{
    mq_broker *b = c->b;
    struct mosquitto *m = c->m;
    int rc = mosquitto_int_option(m, MOSQ_OPT_PROTOCOL_VERSION,
                                  b->version == FS_MQTT_V5 ? MQTT_PROTOCOL_V5 : MQTT_PROTOCOL_V311);
    if (!rc && (b->username || b->password))
        rc = mosquitto_username_pw_set(m, b->username, b->password);
    if (!rc && b->tls) {
        rc = mosquitto_tls_set(m, b->ca_file, b->ca_file ? NULL : "/etc/ssl/certs", b->cert_file,
                               b->key_file, NULL);
        if (!rc && b->tls_insecure)
            rc = mosquitto_tls_insecure_set(m, true);
    }
    if (rc)
        return fs__mq_error(rc, "setting up the client");
    if (!c->sub && b->will_topic) {
        rc = mosquitto_will_set_v5(m, b->will_topic, (int)b->will_len, b->will_payload, b->will_qos,
                                   b->will_retain, NULL);
        if (rc)
            return fs__mq_error(rc, "will message");
    }
    mosquitto_reconnect_delay_set(m, MQ_RECONNECT_MIN_S, MQ_RECONNECT_MAX_S, true);
    mosquitto_connect_v5_callback_set(m, on_connect);
    mosquitto_disconnect_v5_callback_set(m, on_disconnect);
    mosquitto_publish_v5_callback_set(m, on_publish);
    mosquitto_subscribe_v5_callback_set(m, on_subscribe);
    if (c->sub)
        mosquitto_message_v5_callback_set(m, fs__mq_on_message);
    *props = NULL;
    if (b->version == FS_MQTT_V5 && !clean_start) {
        uint32_t exp = b->session_expiry_s ? b->session_expiry_s : UINT32_MAX;
        if (mosquitto_property_add_int32(props, MQTT_PROP_SESSION_EXPIRY_INTERVAL, exp))
            return fs_adapter_error(FS_ENOMEM, "mqtt: out of memory");
    } else if (b->version == FS_MQTT_V5 && b->session_expiry_s) {
        if (mosquitto_property_add_int32(props, MQTT_PROP_SESSION_EXPIRY_INTERVAL,
                                         b->session_expiry_s))
            return fs_adapter_error(FS_ENOMEM, "mqtt: out of memory");
    }
    return FS_OK;
}

/* Wait until the state leaves CONNECTING, up to `ms`. Holds c->mu. */
static bool wait_state(mq_conn *c, int ms)
{
    uint64_t end = fs__mq_now_ms() + (uint64_t)ms;
    while (c->state == MQ_CONNECTING) {
        /*
         * A TLS handshake that fails in the network thread closes the socket
         * without calling on_disconnect: look every 50 ms.
         */
        if (mosquitto_socket(c->m) < 0)
            return false;
        uint64_t now = fs__mq_now_ms();
        if (now >= end)
            break;
        struct timespec dl;
        fs__mq_deadline(&dl, (int)(end - now < 50 ? end - now : 50));
        pthread_cond_timedwait(&c->cv, &c->mu, &dl);
    }
    return true;
}

int fs__mq_conn_open(mq_conn *c, const char *client_id, bool clean_start)
{
    mq_broker *b = c->b;
    if (c->m)
        return FS_OK;
    free(c->client_id);
    c->client_id = strdup(client_id);
    if (!c->client_id)
        return fs_adapter_error(FS_ENOMEM, "mqtt: out of memory");
    c->m = mosquitto_new(client_id, clean_start, c);
    if (!c->m)
        return fs_adapter_error(errno == EINVAL ? FS_EINVAL : FS_ENOMEM,
                                "mqtt: cannot create client %s", client_id);
    mosquitto_property *props = NULL;
    int rc = configure(c, clean_start, &props);
    if (rc) {
        mosquitto_property_free_all(&props);
        fs__mq_conn_close(c);
        return rc;
    }
    pthread_mutex_lock(&c->mu);
    c->state = MQ_CONNECTING;
    c->ever_up = false;
    c->down_logged = false;
    pthread_mutex_unlock(&c->mu);
    int mrc = mosquitto_connect_bind_v5(c->m, b->host, b->port, b->keepalive_s, NULL, props);
    mosquitto_property_free_all(&props);
    if (mrc) {
        int err = errno;
        fs__mq_conn_close(c);
        if (mrc == MOSQ_ERR_ERRNO)
            return fs_adapter_error(FS_EIO, "mqtt: cannot connect to %s:%d: %s", b->host, b->port,
                                    strerror(err));
        return fs_adapter_error(FS_EIO, "mqtt: cannot connect to %s:%d: %s", b->host, b->port,
                                mosquitto_strerror(mrc));
    }
    mrc = mosquitto_loop_start(c->m);
    if (mrc) {
        fs__mq_conn_close(c);
        return fs__mq_error(mrc, "cannot start the network thread");
    }
    c->loop_running = true;
    pthread_mutex_lock(&c->mu);
    bool socket_open = wait_state(c, b->connect_timeout_ms);
    int state = c->state, refused = c->refused_rc;
    pthread_mutex_unlock(&c->mu);
    if (state == MQ_UP)
        return FS_OK;
    fs__mq_conn_close(c);
    if (state == MQ_REFUSED)
        return fs_adapter_error(FS_EBROKER, "mqtt: %s:%d refused the connection of %s: %s", b->host,
                                b->port, client_id, mosquitto_reason_string(refused));
    if (!socket_open || state == MQ_DOWN)
        return fs_adapter_error(FS_EIO,
                                "mqtt: cannot connect to %s:%d: the connection closed before the "
                                "CONNACK%s",
                                b->host, b->port,
                                b->tls ? " (TLS handshake refused: check ca, cert and key)" : "");
    return fs_adapter_error(FS_ETIMEDOUT, "mqtt: no CONNACK from %s:%d within %d ms", b->host,
                            b->port, b->connect_timeout_ms);
}

void fs__mq_conn_close(mq_conn *c)
{
    if (!c->m)
        return;
    pthread_mutex_lock(&c->mu);
    c->state = MQ_DOWN;
    for (mq_wait *w = c->waiters; w; w = w->next) { /* closed under a waiting publish */
        w->done = true;
        w->reason = -1;
    }
    pthread_cond_broadcast(&c->cv);
    pthread_mutex_unlock(&c->mu);
    atomic_store(&c->closing, true); /* publishers keep away, then the ones inside leave */
    while (atomic_load(&c->users) > 0)
        fs__mq_sleep_ms(1);
    struct mosquitto *m = c->m;
    mosquitto_disconnect_v5(m, 0, NULL);
    if (c->loop_running)
        mosquitto_loop_stop(m, false);
    c->loop_running = false;
    c->m = NULL;
    mosquitto_destroy(m);
    c->state = MQ_DOWN;
    atomic_store(&c->thread_gone, false);
    atomic_store(&c->closing, false);
}

void fs__mq_conn_revive(mq_conn *c)
{
    if (!atomic_load_explicit(&c->thread_gone, memory_order_relaxed))
        return;
    bool expected = false;
    if (!atomic_compare_exchange_strong(&c->reviving, &expected, true))
        return;                                 /* someone else does it */
    struct mosquitto *m = fs__mq_conn_enter(c); /* close waits for us */
    uint64_t now = fs__mq_now_ms();
    if (m && now >= c->revive_at_ms && atomic_load(&c->thread_gone)) {
        /*
         * The thread has ended (or ends now: a disconnected client's loop
         * returns, and loop_stop wakes it), so this join cannot hang.
         */
        mosquitto_disconnect_v5(m, 0, NULL);
        if (c->loop_running)
            mosquitto_loop_stop(m, false);
        c->loop_running = false;
        pthread_mutex_lock(&c->mu);
        c->state = MQ_CONNECTING;
        pthread_mutex_unlock(&c->mu);
        int rc = mosquitto_reconnect(m); /* not threaded now: CONNECT is written at once */
        if (rc == MOSQ_ERR_SUCCESS && mosquitto_loop_start(m) == MOSQ_ERR_SUCCESS) {
            c->loop_running = true;
            atomic_store(&c->thread_gone, false);
            c->revive_backoff_ms = 0;
        } else {
            pthread_mutex_lock(&c->mu);
            c->state = MQ_DOWN;
            pthread_mutex_unlock(&c->mu);
            c->revive_backoff_ms = c->revive_backoff_ms ? c->revive_backoff_ms * 2 : 1000;
            if (c->revive_backoff_ms > MQ_RECONNECT_MAX_S * 1000u)
                c->revive_backoff_ms = MQ_RECONNECT_MAX_S * 1000u;
            c->revive_at_ms = now + c->revive_backoff_ms;
        }
    }
    if (m)
        fs__mq_conn_leave(c);
    atomic_store(&c->reviving, false);
}

void fs__mq_conn_destroy(mq_conn *c)
{
    fs__mq_conn_close(c);
    free(c->client_id);
    c->client_id = NULL;
    pthread_cond_destroy(&c->cv);
    pthread_mutex_destroy(&c->mu);
}
