/*
 * Kafka client configurations, librdkafka's logs and errors through the
 * project's log callback, and the metadata round trip that checks a
 * connection (connect, ping).
 */
#include "internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

uint64_t fs__kafka_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

void fs__kafka_deadline(struct timespec *ts, int ms)
{
    clock_gettime(CLOCK_REALTIME, ts);
    ts->tv_sec += ms / 1000;
    ts->tv_nsec += (long)(ms % 1000) * 1000000L;
    if (ts->tv_nsec >= 1000000000L) {
        ts->tv_sec++;
        ts->tv_nsec -= 1000000000L;
    }
}

int fs__kafka_status(rd_kafka_resp_err_t err)
{
    switch (err) {
    case RD_KAFKA_RESP_ERR_NO_ERROR:
        return FS_OK;
    case RD_KAFKA_RESP_ERR__TIMED_OUT:
    case RD_KAFKA_RESP_ERR__MSG_TIMED_OUT:
    case RD_KAFKA_RESP_ERR_REQUEST_TIMED_OUT:
        return FS_ETIMEDOUT;
    case RD_KAFKA_RESP_ERR__TRANSPORT:
    case RD_KAFKA_RESP_ERR__ALL_BROKERS_DOWN:
    case RD_KAFKA_RESP_ERR__RESOLVE:
        return FS_EIO;
    case RD_KAFKA_RESP_ERR__QUEUE_FULL:
        return FS_EFULL;
    case RD_KAFKA_RESP_ERR__INVALID_ARG:
    case RD_KAFKA_RESP_ERR_MSG_SIZE_TOO_LARGE:
    case RD_KAFKA_RESP_ERR_TOPIC_EXCEPTION:
        return FS_EINVAL;
    case RD_KAFKA_RESP_ERR__DESTROY:
    case RD_KAFKA_RESP_ERR__FATAL:
        return FS_ECLOSED;
    default:
        return FS_EBROKER;
    }
}

/* librdkafka's syslog levels to ours. */
static fs_log_level log_level(int level)
{
    if (level <= 3)
        return FS_LOG_ERROR;
    if (level == 4)
        return FS_LOG_WARN;
    if (level <= 6)
        return FS_LOG_INFO;
    return FS_LOG_DEBUG;
}

static void on_log(const rd_kafka_t *rk, int level, const char *fac, const char *buf)
{
    fs_adapter_log(log_level(level), FS_KAFKA_COMPONENT, "%s: %s: %s", rd_kafka_name(rk), fac, buf);
}

static void on_error(rd_kafka_t *rk, int err, const char *reason, void *opaque)
{
    (void)opaque;
    /* Losing every broker is what an operator must see; the rest librdkafka retries. */
    rd_kafka_resp_err_t e = (rd_kafka_resp_err_t)err;
    fs_log_level lvl = e == RD_KAFKA_RESP_ERR__ALL_BROKERS_DOWN || e == RD_KAFKA_RESP_ERR__FATAL
                           ? FS_LOG_ERROR
                           : FS_LOG_WARN;
    fs_adapter_log(lvl, FS_KAFKA_COMPONENT, "%s: %s: %s", rd_kafka_name(rk), rd_kafka_err2name(e),
                   reason);
}

int fs__kafka_conf_set(rd_kafka_conf_t *c, const char *key, const char *value)
{
    char err[512];
    if (!key || !*key || !value)
        return fs_adapter_error(FS_EINVAL, "kafka: a configuration entry has no key or value");
    if (rd_kafka_conf_set(c, key, value, err, sizeof err) != RD_KAFKA_CONF_OK)
        return fs_adapter_error(FS_EINVAL, "kafka: librdkafka refuses the setting '%s': %s", key,
                                err);
    return FS_OK;
}

static int set_all(rd_kafka_conf_t *c, const fs_kafka_config *cfg, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        int rc = fs__kafka_conf_set(c, cfg[i].key, cfg[i].value);
        if (rc)
            return rc;
    }
    return FS_OK;
}

int fs__kafka_conf(kafka_broker *b, bool consumer, const fs_kafka_config *extra, size_t extra_count,
                   rd_kafka_conf_t **out)
{
    rd_kafka_conf_t *c = rd_kafka_conf_new();
    if (!c)
        return fs_adapter_error(FS_ENOMEM, "kafka: out of memory");
    int rc = fs__kafka_conf_set(c, "bootstrap.servers", b->bootstraps);
    if (!rc)
        rc = fs__kafka_conf_set(c, "client.id", b->client_id);
    /* Our defaults first, so that the user's settings win. */
    if (!rc && !consumer) {
        /* A publish waits for its report: linger would add its delay to each one. */
        rc = fs__kafka_conf_set(c, "linger.ms", "0");
    }
    if (!rc && consumer) {
        rc = fs__kafka_conf_set(c, "enable.auto.commit", "false");
        if (!rc)
            rc = fs__kafka_conf_set(c, "enable.auto.offset.store", "false");
        if (!rc)
            rc = fs__kafka_conf_set(c, "auto.offset.reset", "latest");
    }
    if (!rc)
        rc = set_all(c, b->config, b->config_count);
    if (!rc && consumer)
        rc = set_all(c, b->consumer_config, b->consumer_config_count);
    if (!rc && !consumer)
        rc = set_all(c, b->producer_config, b->producer_config_count);
    if (!rc)
        rc = set_all(c, extra, extra_count);
    if (rc) {
        rd_kafka_conf_destroy(c);
        return rc;
    }
    rd_kafka_conf_set_log_cb(c, on_log);
    rd_kafka_conf_set_error_cb(c, on_error);
    *out = c;
    return FS_OK;
}

int fs__kafka_config_copy(const fs_kafka_config *in, size_t n, fs_kafka_config **out)
{
    *out = NULL;
    if (!n)
        return FS_OK;
    if (!in)
        return fs_adapter_error(FS_EINVAL, "kafka: NULL configuration with a count of %zu", n);
    fs_kafka_config *c = calloc(n, sizeof *c);
    if (!c)
        return fs_adapter_error(FS_ENOMEM, "kafka: out of memory");
    for (size_t i = 0; i < n; i++) {
        if (!in[i].key || !*in[i].key || !in[i].value) {
            fs__kafka_config_free(c, n);
            return fs_adapter_error(FS_EINVAL, "kafka: configuration entry %zu has no key or value",
                                    i);
        }
        c[i].key = strdup(in[i].key);
        c[i].value = strdup(in[i].value);
        if (!c[i].key || !c[i].value) {
            fs__kafka_config_free(c, n);
            return fs_adapter_error(FS_ENOMEM, "kafka: out of memory");
        }
    }
    *out = c;
    return FS_OK;
}

void fs__kafka_config_free(fs_kafka_config *c, size_t n)
{
    if (!c)
        return;
    for (size_t i = 0; i < n; i++) {
        free((char *)c[i].key);
        free((char *)c[i].value);
    }
    free(c);
}

int fs__kafka_metadata(kafka_broker *b, rd_kafka_t *rk, const char *topic, int timeout_ms,
                       const rd_kafka_metadata_t **md)
{
    rd_kafka_topic_t *rkt = NULL;
    if (topic && !(rkt = rd_kafka_topic_new(rk, topic, NULL)))
        return fs_adapter_error(FS_EINVAL, "kafka: topic '%s': %s", topic,
                                rd_kafka_err2str(rd_kafka_last_error()));
    rd_kafka_resp_err_t err = rd_kafka_metadata(rk, 0, rkt, md, timeout_ms);
    if (rkt)
        rd_kafka_topic_destroy(rkt);
    if (err == RD_KAFKA_RESP_ERR__TIMED_OUT || err == RD_KAFKA_RESP_ERR__TRANSPORT)
        return fs_adapter_error(FS_EIO, "kafka: no broker of %s answered within %d ms: %s",
                                b->bootstraps, timeout_ms, rd_kafka_err2str(err));
    if (err)
        return fs_adapter_error(fs__kafka_status(err), "kafka: metadata from %s: %s", b->bootstraps,
                                rd_kafka_err2str(err));
    return FS_OK;
}
