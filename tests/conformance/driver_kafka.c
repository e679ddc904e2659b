/*
 * Kafka columns, on the mock cluster scripts/services.sh runs (a
 * stand-alone process; its bootstrap list from FS_KAFKA_BOOTSTRAP or the
 * file $FS_SERVICES_DIR/kafka/bootstrap): `kafka` (manual commit, the ACK
 * policy) and `kafka-ack-first` (auto-commit, Kafka's default). Each source
 * is a fresh topic (4 partitions, auto-created) read by its own group with
 * an explicit assignment of its partitions (no join round, which the mock
 * delays by 3 s). Messages are put with a raw librdkafka producer; the state
 * is the group's committed offsets (acked), the high watermarks minus those
 * (pending) and the dead-letter topic's size (dead), read with librdkafka.
 */
#include "conformance.h"

#include "faststream/kafka.h"

#include <librdkafka/rdkafka.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define PARTS 4 /* the mock's auto-created partitions */

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static rd_kafka_t *producer;
static char boot[512];

static bool read_bootstraps(void)
{
    const char *env = getenv("FS_KAFKA_BOOTSTRAP");
    if (env && *env) {
        snprintf(boot, sizeof boot, "%s", env);
        return true;
    }
    char path[1024];
    const char *dir = getenv("FS_SERVICES_DIR");
    if (dir && *dir)
        snprintf(path, sizeof path, "%s/kafka/bootstrap", dir);
    else
        snprintf(path, sizeof path, "%s/faststream-services-%ld/kafka/bootstrap",
                 getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp", (long)getuid());
    FILE *f = fopen(path, "r");
    if (!f)
        return false;
    bool ok = fgets(boot, sizeof boot, f) != NULL;
    fclose(f);
    boot[strcspn(boot, "\r\n")] = '\0';
    return ok && *boot;
}

static rd_kafka_conf_t *raw_conf(void)
{
    char err[256];
    rd_kafka_conf_t *c = rd_kafka_conf_new();
    rd_kafka_conf_set(c, "bootstrap.servers", boot, err, sizeof err);
    rd_kafka_conf_set(c, "log_level", "2", err, sizeof err);
    return c;
}

/* The shared raw producer (created once). */
static rd_kafka_t *raw_producer(void)
{
    pthread_mutex_lock(&mu);
    if (!producer) {
        char err[256];
        rd_kafka_conf_t *c = raw_conf();
        rd_kafka_conf_set(c, "linger.ms", "0", err, sizeof err);
        producer = rd_kafka_new(RD_KAFKA_PRODUCER, c, err, sizeof err);
    }
    pthread_mutex_unlock(&mu);
    return producer;
}

__attribute__((destructor)) static void raw_free(void)
{
    if (producer) {
        rd_kafka_flush(producer, 2000);
        rd_kafka_destroy(producer);
    }
}

static bool kafka_available(char *why, size_t n)
{
    if (!read_bootstraps()) {
        snprintf(why, n, "no Kafka mock cluster (scripts/services.sh start kafka)");
        return false;
    }
    rd_kafka_t *p = raw_producer();
    const rd_kafka_metadata_t *md = NULL;
    if (!p || rd_kafka_metadata(p, 0, NULL, &md, 2000)) {
        snprintf(why, n, "no Kafka broker answers at %s", boot);
        return false;
    }
    rd_kafka_metadata_destroy(md);
    return true;
}

static const fs_kafka_config fast[] = {
    {"fetch.wait.max.ms", "10"},
    {"log_level", "2"},
};

static int kafka_broker_new(fs_broker **out)
{
    if (!*boot && !read_bootstraps())
        return FS_EIO;
    char url[600];
    snprintf(url, sizeof url, "kafka://%s", boot);
    fs_kafka_options o = FS_KAFKA_OPTIONS_INIT;
    o.config = fast;
    o.config_count = sizeof fast / sizeof fast[0];
    o.commit_interval_ms = 20;
    return fs_kafka_broker_new(url, &o, out);
}

static void group_of(const char *source, char *buf, size_t n)
{
    snprintf(buf, n, "%s.g", source);
}

static void dlq_of(const char *source, char *buf, size_t n)
{
    snprintf(buf, n, "%s.dlq", source);
}

/* Create the topic (the producer's metadata request auto-creates it). */
static void kafka_prepare(const char *source)
{
    rd_kafka_t *p = raw_producer();
    if (!p)
        return;
    rd_kafka_topic_t *t = rd_kafka_topic_new(p, source, NULL);
    const rd_kafka_metadata_t *md = NULL;
    for (int i = 0; i < 50; i++) {
        if (!rd_kafka_metadata(p, 0, t, &md, 2000) && md->topic_cnt == 1 && !md->topics[0].err &&
            md->topics[0].partition_cnt > 0) {
            rd_kafka_metadata_destroy(md);
            break;
        }
        if (md)
            rd_kafka_metadata_destroy(md);
        md = NULL;
        usleep(20000);
    }
    rd_kafka_topic_destroy(t);
}

typedef struct sub_scratch {
    fs_kafka_subscriber_options o;
    fs_kafka_partition parts[PARTS];
    char group[256], dlq[256];
} sub_scratch;

static const void *kafka_sub_options(const char *source, void *scratch)
{
    _Static_assert(sizeof(sub_scratch) <= CONF_SCRATCH, "scratch too small");
    sub_scratch *s = scratch;
    s->o = (fs_kafka_subscriber_options)FS_KAFKA_SUBSCRIBER_OPTIONS_INIT;
    group_of(source, s->group, sizeof s->group);
    dlq_of(source, s->dlq, sizeof s->dlq);
    for (int i = 0; i < PARTS; i++)
        s->parts[i] = (fs_kafka_partition){NULL, i};
    s->o.group_id = s->group;
    s->o.partitions = s->parts;
    s->o.partition_count = PARTS;
    s->o.start = FS_KAFKA_START_EARLIEST;
    s->o.dead_letter = s->dlq;
    return &s->o;
}

static int kafka_put(fs_broker *b, const char *source, const void *body, size_t len)
{
    (void)b;
    rd_kafka_t *p = raw_producer();
    if (!p)
        return FS_EIO;
    /* Round robin over the partitions (keyless records would stick to one). */
    static _Atomic unsigned next;
    int32_t part = (int32_t)(atomic_fetch_add(&next, 1) % PARTS);
    /* produceva: the RD_KAFKA_V_* macros are GNU statement expressions (-Wpedantic). */
    rd_kafka_vu_t vu[4] = {{.vtype = RD_KAFKA_VTYPE_TOPIC, .u.cstr = source},
                           {.vtype = RD_KAFKA_VTYPE_PARTITION, .u.i32 = part},
                           {.vtype = RD_KAFKA_VTYPE_VALUE, .u.mem = {(void *)body, len}},
                           {.vtype = RD_KAFKA_VTYPE_MSGFLAGS, .u.i = RD_KAFKA_MSG_F_COPY}};
    rd_kafka_error_t *e = rd_kafka_produceva(p, vu, 4);
    if (e) {
        rd_kafka_error_destroy(e);
        return FS_EIO;
    }
    return rd_kafka_flush(p, 5000) ? FS_ETIMEDOUT : FS_OK;
}

/* Sum of the high watermarks of topic's partitions (0 when it does not exist). */
static long high_sum(rd_kafka_t *p, const char *topic)
{
    long sum = 0;
    for (int i = 0; i < PARTS; i++) {
        int64_t lo, hi;
        if (!rd_kafka_query_watermark_offsets(p, topic, i, &lo, &hi, 2000) && hi > 0)
            sum += (long)hi;
    }
    return sum;
}

static int kafka_state(fs_broker *b, const char *source, conf_broker_state *out)
{
    (void)b;
    rd_kafka_t *p = raw_producer();
    if (!p)
        return FS_EIO;
    char group[256], dlq[256], err[256];
    group_of(source, group, sizeof group);
    dlq_of(source, dlq, sizeof dlq);
    rd_kafka_conf_t *c = raw_conf();
    rd_kafka_conf_set(c, "group.id", group, err, sizeof err);
    rd_kafka_t *k = rd_kafka_new(RD_KAFKA_CONSUMER, c, err, sizeof err);
    if (!k)
        return FS_EIO;
    rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(PARTS);
    for (int i = 0; i < PARTS; i++)
        rd_kafka_topic_partition_list_add(l, source, i);
    rd_kafka_resp_err_t e = rd_kafka_committed(k, l, 5000);
    long acked = 0;
    for (int i = 0; !e && i < l->cnt; i++)
        if (l->elems[i].offset > 0)
            acked += (long)l->elems[i].offset;
    rd_kafka_topic_partition_list_destroy(l);
    rd_kafka_destroy(k);
    if (e)
        return FS_EIO;
    long high = high_sum(p, source);
    *out = (conf_broker_state){acked, high - acked, -1, high_sum(p, dlq)};
    return FS_OK;
}

/*
 * A partition the topic does not have: librdkafka refuses the record with
 * _UNKNOWN_PARTITION (the stand-alone mock cannot take fault injection
 * from this process, so the TOPIC_AUTHORIZATION_FAILED case is tested in
 * tests/kafka with the in-process mock).
 */
static int kafka_fail_setup(fs_broker *b, const char *dest, const void **opts)
{
    (void)b;
    static fs_kafka_publish_options bad = FS_KAFKA_PUBLISH_OPTIONS_INIT;
    bad.partition = 99;
    kafka_prepare(dest);
    *opts = &bad;
    return FS_OK;
}

#define KAFKA_COMMON                                                                               \
    .broker_label = "kafka",                                                                       \
    .features = CONF_HAS_BATCH | CONF_HAS_REQUEST | CONF_HAS_REDELIVERY | CONF_HAS_STATE |         \
                CONF_HAS_DELIVERY_COUNT,                                                           \
    .available = kafka_available, .broker_new = kafka_broker_new, .prepare = kafka_prepare,        \
    .sub_options = kafka_sub_options, .put = kafka_put, .state = kafka_state,                      \
    .fail_publish_setup = kafka_fail_setup

static const conf_driver kafka_driver = {
    .column = "kafka",
    .policy = FS_ACK_POLICY_ACK,
    KAFKA_COMMON,
};

static const conf_driver kafka_ack_first_driver = {
    .column = "kafka-ack-first",
    .policy = FS_ACK_POLICY_ACK_FIRST,
    KAFKA_COMMON,
};

const conf_driver *const conf_drivers_kafka[] = {&kafka_driver, &kafka_ack_first_driver, NULL};
