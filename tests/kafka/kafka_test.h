/*
 * Helpers for the Kafka tests: an in-process librdkafka mock cluster (or
 * the stand-alone one of scripts/services.sh, via kt_services_url), raw
 * librdkafka clients to put messages and read committed offsets; the
 * recording handler is tests/support/record.h's. Header-only; include after
 * cmocka.h.
 */
#ifndef FS_TEST_KAFKA_H
#define FS_TEST_KAFKA_H

#include "faststream/faststream.h"
#include "faststream/kafka.h"
#include "support/record.h"

#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafka_mock.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/* Kafka ApiKeys (rdkafka_protocol.h is not installed). */
#define KT_API_PRODUCE 0
#define KT_API_FETCH 1
#define KT_API_OFFSET_COMMIT 8

/* Fail with fs_last_error() when a call does not return FS_OK. */
#define KT_OK(expr)                                                                                \
    do {                                                                                           \
        int kt_rc_ = (expr);                                                                       \
        if (kt_rc_ != 0)                                                                           \
            fail_msg("%s = %d: %s", #expr, kt_rc_, fs_last_error());                               \
    } while (0)

typedef struct kt_cluster {
    rd_kafka_t *rk; /* owns the mock cluster */
    rd_kafka_mock_cluster_t *mc;
    char bootstraps[512];
    char url[600];
} kt_cluster;

static inline void kt_cluster_start(kt_cluster *c, int brokers)
{
    char err[256];
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    rd_kafka_conf_set(conf, "log_level", "0", err, sizeof err);
    c->rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, err, sizeof err);
    assert_non_null(c->rk);
    c->mc = rd_kafka_mock_cluster_new(c->rk, brokers);
    assert_non_null(c->mc);
    snprintf(c->bootstraps, sizeof c->bootstraps, "%s", rd_kafka_mock_cluster_bootstraps(c->mc));
    snprintf(c->url, sizeof c->url, "kafka://%s", c->bootstraps);
}

static inline void kt_cluster_stop(kt_cluster *c)
{
    rd_kafka_mock_cluster_destroy(c->mc);
    rd_kafka_destroy(c->rk);
}

/*
 * The usual cmocka group fixture: `cl`, a 3-broker cluster, and `prod`, a
 * raw producer on it, made by kt_setup and ended by kt_teardown
 * (cmocka_run_group_tests(tests, kt_setup, kt_teardown)).
 */
#define KT_CLUSTER_FIXTURE                                                                         \
    static kt_cluster cl;                                                                          \
    static rd_kafka_t *prod;                                                                       \
    static int kt_setup(void **state)                                                              \
    {                                                                                              \
        (void)state;                                                                               \
        kt_cluster_start(&cl, 3);                                                                  \
        prod = kt_producer(&cl);                                                                   \
        return 0;                                                                                  \
    }                                                                                              \
    static int kt_teardown(void **state)                                                           \
    {                                                                                              \
        (void)state;                                                                               \
        rd_kafka_destroy(prod);                                                                    \
        kt_cluster_stop(&cl);                                                                      \
        return 0;                                                                                  \
    }

static inline void kt_topic(kt_cluster *c, const char *topic, int partitions)
{
    assert_int_equal(rd_kafka_mock_topic_create(c->mc, topic, partitions, 1), 0);
}

/* Settings that make the mock fast: short fetch waits, short sessions. */
static const fs_kafka_config kt_fast_config[] = {
    {"fetch.wait.max.ms", "10"},
    {"session.timeout.ms", "6000"},
    {"heartbeat.interval.ms", "200"},
    {"topic.metadata.refresh.interval.ms", "1000"},
    {"log_level", "3"},
};

static inline fs_broker *kt_broker(const kt_cluster *c, const char *group, fs_kafka_options *o)
{
    fs_kafka_options def = FS_KAFKA_OPTIONS_INIT;
    if (!o)
        o = &def;
    if (!o->config) {
        o->config = kt_fast_config;
        o->config_count = sizeof kt_fast_config / sizeof kt_fast_config[0];
    }
    if (!o->commit_interval_ms)
        o->commit_interval_ms = 50;
    char url[700];
    snprintf(url, sizeof url, "%s%s%s", c->url, group ? "?group_id=" : "", group ? group : "");
    fs_broker *b = NULL;
    int rc = fs_kafka_broker_new(url, o, &b);
    if (rc)
        fail_msg("fs_kafka_broker_new(%s): %s", url, fs_last_error());
    return b;
}

/* A raw producer for putting messages from outside. */
static inline rd_kafka_t *kt_producer(const kt_cluster *c)
{
    char err[256];
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    rd_kafka_conf_set(conf, "bootstrap.servers", c->bootstraps, err, sizeof err);
    rd_kafka_conf_set(conf, "linger.ms", "0", err, sizeof err);
    rd_kafka_conf_set(conf, "log_level", "3", err, sizeof err);
    rd_kafka_t *p = rd_kafka_new(RD_KAFKA_PRODUCER, conf, err, sizeof err);
    assert_non_null(p);
    return p;
}

/* Produce `n` messages "m<i>" (key "k<i>") to topic (partition -1: any), wait for all. */
static inline void kt_put(rd_kafka_t *p, const char *topic, int32_t partition, int first, int n)
{
    for (int i = first; i < first + n; i++) {
        char body[32], key[32];
        int bl = snprintf(body, sizeof body, "m%d", i);
        int kl = snprintf(key, sizeof key, "k%d", i);
        /* produceva: the RD_KAFKA_V_* macros are GNU statement expressions (-Wpedantic). */
        rd_kafka_vu_t vu[5] = {{.vtype = RD_KAFKA_VTYPE_TOPIC, .u.cstr = topic},
                               {.vtype = RD_KAFKA_VTYPE_PARTITION, .u.i32 = partition},
                               {.vtype = RD_KAFKA_VTYPE_MSGFLAGS, .u.i = RD_KAFKA_MSG_F_COPY},
                               {.vtype = RD_KAFKA_VTYPE_VALUE, .u.mem = {body, (size_t)bl}},
                               {.vtype = RD_KAFKA_VTYPE_KEY, .u.mem = {key, (size_t)kl}}};
        rd_kafka_resp_err_t e;
        for (;;) {
            rd_kafka_error_t *err = rd_kafka_produceva(p, vu, 5);
            e = err ? rd_kafka_error_code(err) : RD_KAFKA_RESP_ERR_NO_ERROR;
            if (err)
                rd_kafka_error_destroy(err);
            if (e != RD_KAFKA_RESP_ERR__QUEUE_FULL)
                break;
            rd_kafka_poll(p, 10);
        }
        assert_int_equal(e, 0);
    }
    assert_int_equal(rd_kafka_flush(p, 10000), 0);
}

/* Sum of the committed offsets of `group` on topic's partitions [0, parts). */
static inline long kt_committed(const kt_cluster *c, const char *group, const char *topic,
                                int parts)
{
    char err[256];
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    rd_kafka_conf_set(conf, "bootstrap.servers", c->bootstraps, err, sizeof err);
    rd_kafka_conf_set(conf, "group.id", group, err, sizeof err);
    rd_kafka_conf_set(conf, "log_level", "3", err, sizeof err);
    rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, err, sizeof err);
    assert_non_null(rk);
    rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(parts);
    for (int i = 0; i < parts; i++)
        rd_kafka_topic_partition_list_add(l, topic, i);
    long sum = 0;
    if (rd_kafka_committed(rk, l, 5000) == 0)
        for (int i = 0; i < parts; i++)
            if (l->elems[i].offset > 0)
                sum += (long)l->elems[i].offset;
    rd_kafka_topic_partition_list_destroy(l);
    rd_kafka_destroy(rk);
    return sum;
}

/* Wait until kt_committed reaches `want` (or timeout); returns the last value. */
static inline long kt_wait_committed(const kt_cluster *c, const char *group, const char *topic,
                                     int parts, long want, double timeout_s)
{
    double end = ts_now_s() + timeout_s;
    long got;
    while ((got = kt_committed(c, group, topic, parts)) < want && ts_now_s() < end)
        ts_sleep_ms(50);
    return got;
}

/* Wait until the log (tests/support/record.h) holds `want` messages or timeout_s passed;
 * the count then (more than `want` when more came). */
static inline int kt_wait_n(ts_log *l, int want, double timeout_s)
{
    ts_wait_n(l, (size_t)want, (int)(timeout_s * 1000));
    return (int)ts_log_count(l);
}

/* A string to compare: "" for NULL. */
static inline const char *kt_str(const char *s)
{
    return s ? s : "";
}

/* Subscribe fn(user) to `topic` (group from the broker; ko NULL: from the earliest offset),
 * with a policy and workers. */
static inline fs_subscriber *kt_sub_fn(fs_broker *b, const char *topic, fs_handler_fn fn,
                                       void *user, fs_ack_policy policy, unsigned concurrency,
                                       fs_kafka_subscriber_options *ko)
{
    fs_kafka_subscriber_options def = FS_KAFKA_SUBSCRIBER_OPTIONS_INIT;
    if (!ko) {
        def.start = FS_KAFKA_START_EARLIEST;
        ko = &def;
    }
    fs_subscriber_options so = FS_SUBSCRIBER_OPTIONS_INIT;
    so.ack_policy = policy;
    so.concurrency = concurrency;
    so.broker_options = ko;
    so.redelivery.delay_ms = 20;
    fs_subscriber *sub = NULL;
    KT_OK(fs_subscribe(b, topic, fn, user, &so, &sub));
    return sub;
}

/* Subscribe the recording handler (ts_record into `log`) to `topic`: kt_sub_fn. */
static inline fs_subscriber *kt_sub(fs_broker *b, const char *topic, ts_log *log,
                                    fs_ack_policy policy, unsigned concurrency,
                                    fs_kafka_subscriber_options *ko)
{
    return kt_sub_fn(b, topic, ts_record, log, policy, concurrency, ko);
}

#endif
