/*
 * bench/bench_kafka.c - the Kafka broker beside raw librdkafka, on
 * librdkafka's mock cluster (in this process, or the cluster named by
 * FS_KAFKA_BOOTSTRAP, e.g. the stand-alone one of scripts/services.sh).
 *
 *   produce        N records of 64 bytes with FastStream's headers
 *                  (content-type, correlation_id), queued without waiting,
 *                  then flushed: ours fs_publish with no_wait, raw producev
 *                  with the same headers (linger.ms 0 on both);
 *   produce_sync   one record at a time, waiting for its delivery report:
 *                  ours fs_publish (the default), raw producev + poll;
 *   consume_single N records waiting in a 1-partition topic, read from the
 *                  start by a fresh group on partition 0 assigned
 *                  explicitly: ours a subscriber (concurrency 1, its
 *                  handler counts, the adapter committing the finished
 *                  offsets every 1000 messages or 500 ms), raw
 *                  rd_kafka_consumer_poll reading each record's headers
 *                  and committing the same way (rd_kafka_commit, sync);
 *                  the clock runs from the first record to the last (so
 *                  consumer start-up is left out);
 *   consume_batch  the same in batches of 100: ours batch_size 100, raw
 *                  rd_kafka_consume_batch_queue(100).
 * Sides: ours, prom (ours + the Prometheus middleware), raw, in turns.
 * Output: "kafka_<op>_<side> MSG_PER_S" lines, then a table ('#' lines).
 *
 * --side S --only OP --callgrind: run one side of one op, with callgrind's
 * counters zeroed at the first record and dumped at the last
 * (CALLGRIND_ZERO_STATS / CALLGRIND_DUMP_STATS, always from the main thread:
 * ours' main thread watches the handler's count, and kafka_cg_messages_OP
 * says how many messages' work the dump holds): bench/run.sh divides the
 * instructions by the messages to compare instructions per message, which
 * do not swing with the machine's load as wall clock does.
 *
 * What the dump's "summary" (run.sh's figure) holds: the costs of every
 * thread after the zeroing, plus everything the *other* threads did before
 * it since they started (callgrind 3.19 resets only the zeroing thread's
 * "last dump" mark; threads that exited count too, e.g. the fill's
 * producer, alike on both sides; a 2-thread test program shows it: a
 * thread's 6M instructions before a zero from main appear in the summary,
 * not in "totals"). So ours, whose work all runs in the reader and worker
 * threads, has the work of every message in the dump, the first ones
 * handled before the zeroing included: ours counts all messages handled by
 * the dump; raw, whose work runs in the zeroing main thread, counts those
 * after the first record. Also in ours' dump: librdkafka's handling of the
 * connect's metadata request, which (no topic known yet) asks for every
 * topic of the cluster: ours' figures grow with the topics the mock holds
 * (about 10,000 instructions a topic: consume_batch 8,600 a message at 300
 * topics against 7,975 on a fresh mock), raw's do not; compare on a fresh
 * mock.
 */
#include "bench.h"

#include "faststream/faststream.h"
#include "faststream/kafka.h"
#include "faststream/prometheus.h"

#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafka_mock.h>
#include <pthread.h>
#include <stdatomic.h>
#include <unistd.h>
#include <valgrind/callgrind.h>

#define BATCH 100
/* The adapter's defaults (fs_kafka_options commit_every, commit_interval_ms). */
#define COMMIT_EVERY 1000
#define COMMIT_MS 500
#define CID "0b7e4b4e-5a1f-4c5e-9d2a-2f0c8f6f1a11"

static char boot[512];
static rd_kafka_t *mock_rk;
static rd_kafka_mock_cluster_t *mock;
static int repeats = 3;
/* The 2.0.2 mock stalls a reader somewhere past 30,000 records in a partition (seen). */
static long n_produce = 100000, n_sync = 2000, n_consume = 25000;
static bool callgrind;
static char body[65];
static unsigned topic_seq;

static void die(const char *what, const char *why)
{
    fprintf(stderr, "bench_kafka: %s: %s\n", what, why);
    exit(1);
}

static rd_kafka_conf_t *conf(void)
{
    char err[256];
    rd_kafka_conf_t *c = rd_kafka_conf_new();
    rd_kafka_conf_set(c, "bootstrap.servers", boot, err, sizeof err);
    rd_kafka_conf_set(c, "log_level", "2", err, sizeof err);
    rd_kafka_conf_set(c, "linger.ms", "0", err, sizeof err);
    rd_kafka_conf_set(c, "fetch.wait.max.ms", "10", err, sizeof err);
    return c;
}

static void new_topic(char *buf, size_t n, const char *what)
{
    snprintf(buf, n, "bench.%s.%ld.%u", what, (long)getpid(), topic_seq++);
    if (mock)
        rd_kafka_mock_topic_create(mock, buf, 1, 1);
}

static rd_kafka_headers_t *headers(void)
{
    rd_kafka_headers_t *h = rd_kafka_headers_new(2);
    rd_kafka_header_add(h, "content-type", -1, "", 0);
    rd_kafka_header_add(h, "correlation_id", -1, CID, -1);
    return h;
}

static _Atomic long dr_count;

static void on_dr(rd_kafka_t *rk, const rd_kafka_message_t *m, void *opaque)
{
    (void)rk;
    (void)opaque;
    if (m->err)
        die("delivery", rd_kafka_err2str(m->err));
    atomic_fetch_add(&dr_count, 1);
}

static rd_kafka_t *raw_producer(void)
{
    char err[256];
    rd_kafka_conf_t *c = conf();
    rd_kafka_conf_set_dr_msg_cb(c, on_dr);
    rd_kafka_t *p = rd_kafka_new(RD_KAFKA_PRODUCER, c, err, sizeof err);
    if (!p)
        die("producer", err);
    return p;
}

static void raw_produce_one(rd_kafka_t *p, const char *topic)
{
    rd_kafka_headers_t *h = headers();
    /* Partition 0: the consumers read it (an auto-created topic has 4). produceva:
     * the RD_KAFKA_V_* macros are GNU statement expressions (clang -Wpedantic). */
    rd_kafka_vu_t vu[5] = {{.vtype = RD_KAFKA_VTYPE_TOPIC, .u.cstr = topic},
                           {.vtype = RD_KAFKA_VTYPE_PARTITION, .u.i32 = 0},
                           {.vtype = RD_KAFKA_VTYPE_VALUE, .u.mem = {body, 64}},
                           {.vtype = RD_KAFKA_VTYPE_MSGFLAGS, .u.i = RD_KAFKA_MSG_F_COPY},
                           {.vtype = RD_KAFKA_VTYPE_HEADERS, .u.headers = h}};
    rd_kafka_error_t *e;
    while ((e = rd_kafka_produceva(p, vu, 5)) &&
           rd_kafka_error_code(e) == RD_KAFKA_RESP_ERR__QUEUE_FULL) {
        rd_kafka_error_destroy(e);
        rd_kafka_poll(p, 1);
    }
    if (e)
        die("produceva", rd_kafka_error_string(e));
}

/* Fill `topic` with n records (not measured). */
static void fill(const char *topic, long n)
{
    rd_kafka_t *p = raw_producer();
    for (long i = 0; i < n; i++) {
        raw_produce_one(p, topic);
        if ((i & 1023) == 0)
            rd_kafka_poll(p, 0);
    }
    rd_kafka_flush(p, 60000);
    rd_kafka_destroy(p);
}

static const fs_kafka_config fast[] = {{"fetch.wait.max.ms", "10"}, {"log_level", "2"}};

static fs_broker *ours_broker(bool prom, fs_registry **reg)
{
    char url[600];
    snprintf(url, sizeof url, "kafka://%s", boot);
    fs_kafka_options o = FS_KAFKA_OPTIONS_INIT;
    o.config = fast;
    o.config_count = 2;
    fs_broker *b;
    if (fs_kafka_broker_new(url, &o, &b))
        die("broker", fs_last_error());
    *reg = NULL;
    if (prom) {
        if (fs_registry_new(reg))
            die("registry", fs_last_error());
        fs_prometheus_options po = FS_PROMETHEUS_OPTIONS_INIT;
        po.registry = *reg;
        if (fs_broker_add_prometheus(b, &po))
            die("prometheus", fs_last_error());
    }
    if (fs_broker_connect(b))
        die("connect", fs_last_error());
    return b;
}

static void ours_free(fs_broker *b, fs_registry *reg)
{
    fs_broker_free(b);
    if (reg)
        fs_registry_free(reg);
}

/* ------------------------------------------------------------------------ */
/* Produce                                                                  */

static double produce_raw(bool sync)
{
    char topic[128];
    new_topic(topic, sizeof topic, "produce");
    rd_kafka_t *p = raw_producer();
    raw_produce_one(p, topic); /* connected, metadata known, as for ours */
    rd_kafka_flush(p, 10000);
    long n = sync ? n_sync : n_produce;
    atomic_store(&dr_count, 0);
    rd_kafka_poll(p, 0);
    atomic_store(&dr_count, 0);
    uint64_t t0 = bench_now_ns();
    if (callgrind)
        CALLGRIND_ZERO_STATS;
    for (long i = 0; i < n; i++) {
        raw_produce_one(p, topic);
        if (sync)
            while (atomic_load(&dr_count) <= i)
                rd_kafka_poll(p, 10);
        else if ((i & 255) == 0)
            rd_kafka_poll(p, 0);
    }
    rd_kafka_flush(p, 60000);
    if (callgrind)
        CALLGRIND_DUMP_STATS;
    uint64_t dt = bench_now_ns() - t0;
    rd_kafka_destroy(p);
    return (double)n * 1e9 / (double)dt;
}

static double produce_ours(bool prom, bool sync)
{
    char topic[128];
    new_topic(topic, sizeof topic, "produce");
    fs_registry *reg;
    fs_broker *b = ours_broker(prom, &reg);
    fs_kafka_publish_options po = FS_KAFKA_PUBLISH_OPTIONS_INIT;
    po.no_wait = !sync;
    po.partition = 0; /* as raw: the partitioner left out on both sides */
    fs_envelope e = FS_ENVELOPE_INIT;
    e.body = body;
    e.body_len = 64;
    e.correlation_id = CID;
    e.broker_options = &po;
    fs_kafka_publish_options first = FS_KAFKA_PUBLISH_OPTIONS_INIT;
    first.partition = 0;
    fs_envelope e0 = e;
    e0.broker_options = &first;
    if (fs_publish(b, topic, &e0)) /* metadata known */
        die("publish", fs_last_error());
    /* a publisher, as a service producing to one topic keeps (by name, the topic's name is
     * compared each time) */
    fs_publisher *pub;
    if (fs_publisher_new(b, topic, NULL, &pub))
        die("publisher", fs_last_error());
    long n = sync ? n_sync : n_produce;
    uint64_t t0 = bench_now_ns();
    if (callgrind)
        CALLGRIND_ZERO_STATS;
    for (long i = 0; i < n; i++)
        if (fs_publisher_publish(pub, &e))
            die("publish", fs_last_error());
    rd_kafka_flush(fs_kafka_producer_handle(b), 60000);
    if (callgrind)
        CALLGRIND_DUMP_STATS;
    uint64_t dt = bench_now_ns() - t0;
    fs_publisher_free(pub);
    ours_free(b, reg);
    return (double)n * 1e9 / (double)dt;
}

/* ------------------------------------------------------------------------ */
/* Consume                                                                  */

static char consume_topic[128];
/* Callgrind window of a consume: the messages handled before the counters were
 * zeroed and when they were dumped (ours: the main thread watches the count). */
static long cg_from = 1, cg_to;

static double consume_raw(bool batch)
{
    char err[256];
    rd_kafka_conf_t *c = conf();
    char g[64];
    snprintf(g, sizeof g, "bench-raw-%ld-%u", (long)getpid(), topic_seq++);
    rd_kafka_conf_set(c, "group.id", g, err, sizeof err);
    rd_kafka_conf_set(c, "enable.auto.commit", "false", err, sizeof err);
    rd_kafka_t *k = rd_kafka_new(RD_KAFKA_CONSUMER, c, err, sizeof err);
    if (!k)
        die("consumer", err);
    rd_kafka_poll_set_consumer(k);
    rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(1);
    rd_kafka_topic_partition_list_add(l, consume_topic, 0)->offset = RD_KAFKA_OFFSET_BEGINNING;
    rd_kafka_assign(k, l);
    rd_kafka_queue_t *q = rd_kafka_queue_get_consumer(k);
    long got = 0, uncommitted = 0;
    int64_t next = -1;
    uint64_t t0 = 0, last_commit = bench_now_ns();
    size_t bytes = 0;
    rd_kafka_message_t *v[BATCH];
    while (got < n_consume) {
        ssize_t n;
        if (batch) {
            n = rd_kafka_consume_batch_queue(q, 100, v, BATCH);
        } else {
            v[0] = rd_kafka_consumer_poll(k, 100);
            n = v[0] ? 1 : 0;
        }
        for (ssize_t i = 0; i < n; i++) {
            if (!v[i]->err) {
                if (!got++) {
                    t0 = bench_now_ns();
                    if (callgrind)
                        CALLGRIND_ZERO_STATS;
                }
                rd_kafka_headers_t *h;
                if (!rd_kafka_message_headers(v[i], &h)) {
                    const char *name;
                    const void *val;
                    size_t len;
                    for (size_t j = 0; !rd_kafka_header_get_all(h, j, &name, &val, &len); j++)
                        bytes += len;
                }
                bytes += v[i]->len;
                next = v[i]->offset + 1;
                uncommitted++;
            }
            rd_kafka_message_destroy(v[i]);
        }
        /* As ours: the handled offsets committed (synchronously) every
         * COMMIT_EVERY messages or COMMIT_MS, and at the end. */
        if (uncommitted && (uncommitted >= COMMIT_EVERY || got >= n_consume ||
                            bench_now_ns() - last_commit >= COMMIT_MS * 1000000ull)) {
            l->elems[0].offset = next;
            rd_kafka_resp_err_t e = rd_kafka_commit(k, l, 0);
            if (e)
                die("commit", rd_kafka_err2str(e));
            uncommitted = 0;
            last_commit = bench_now_ns();
        }
    }
    if (callgrind) {
        CALLGRIND_DUMP_STATS;
        cg_from = 1;
        cg_to = n_consume;
    }
    rd_kafka_topic_partition_list_destroy(l);
    uint64_t dt = bench_now_ns() - t0;
    BENCH_KEEP(bytes);
    rd_kafka_queue_destroy(q);
    rd_kafka_consumer_close(k);
    rd_kafka_destroy(k);
    return (double)(n_consume - 1) * 1e9 / (double)dt;
}

typedef struct counter {
    _Atomic long n;
    uint64_t t0, t1;
    _Atomic int done;
    _Atomic int zeroed; /* callgrind: the main thread zeroed the counters */
} counter;

static fs_outcome count(fs_message *m, void *user)
{
    counter *c = user;
    long k = (long)fs_message_count(m);
    long before = atomic_fetch_add(&c->n, k);
    if (before == 0) {
        /* Callgrind: the first record waits until the main thread zeroed the
         * counters, so that the window starts at the first record as raw's does
         * (wherever the main thread happened to be scheduled). */
        for (int i = 0; callgrind && !atomic_load(&c->zeroed) && i < 10000; i++)
            nanosleep(&(struct timespec){0, 100000}, NULL);
        c->t0 = bench_now_ns();
    }
    if (before < n_consume && before + k >= n_consume) {
        c->t1 = bench_now_ns();
        atomic_store(&c->done, 1);
    }
    return FS_OUTCOME_OK;
}

static double consume_ours(bool prom, bool batch)
{
    fs_registry *reg;
    fs_broker *b = ours_broker(prom, &reg);
    static counter c;
    atomic_store(&c.n, 0);
    atomic_store(&c.done, 0);
    atomic_store(&c.zeroed, 0);
    fs_kafka_subscriber_options ko = FS_KAFKA_SUBSCRIBER_OPTIONS_INIT;
    ko.start = FS_KAFKA_START_EARLIEST;
    /* A group, so that the finished offsets are committed (as raw does), on
     * partition 0 assigned explicitly (no join wait). */
    char g[64];
    snprintf(g, sizeof g, "bench-ours-%ld-%u", (long)getpid(), topic_seq++);
    fs_kafka_partition part0 = {consume_topic, 0};
    ko.group_id = g;
    ko.partitions = &part0;
    ko.partition_count = 1;
    fs_subscriber_options so = FS_SUBSCRIBER_OPTIONS_INIT;
    so.broker_options = &ko;
    if (batch) {
        so.batch_size = BATCH;
        so.batch_timeout_ms = 100;
    }
    if (fs_subscribe(b, consume_topic, count, &c, &so, NULL) || fs_broker_start(b))
        die("subscribe", fs_last_error());
    /* Callgrind's counters are zeroed and dumped by this (main) thread: a
     * CALLGRIND_ZERO_STATS issued by a worker thread was seen to leave the main
     * thread's earlier costs (the fill) in the dump. */
    while (callgrind && !atomic_load(&c.n))
        nanosleep(&(struct timespec){0, 100000}, NULL);
    if (callgrind) {
        CALLGRIND_ZERO_STATS;
        cg_from = 0; /* the worker's work on the first batch is in the dump (see the top) */
        atomic_store(&c.zeroed, 1);
    }
    while (!atomic_load(&c.done))
        nanosleep(&(struct timespec){0, callgrind ? 100000 : 1000000}, NULL);
    if (callgrind) {
        CALLGRIND_DUMP_STATS;
        cg_to = atomic_load(&c.n);
    }
    double r = (double)(n_consume - 1) * 1e9 / (double)(c.t1 - c.t0);
    ours_free(b, reg);
    return r;
}

/* ------------------------------------------------------------------------ */

typedef struct op {
    const char *name;
    double (*ours)(bool prom, bool variant);
    double (*raw)(bool variant);
    bool variant;
} op;

static const op ops[] = {
    {"produce", produce_ours, produce_raw, false},
    {"produce_sync", produce_ours, produce_raw, true},
    {"consume_single", consume_ours, consume_raw, false},
    {"consume_batch", consume_ours, consume_raw, true},
};

static double best(double a, double b)
{
    return a > b ? a : b;
}

int main(int argc, char **argv)
{
    const char *only = NULL, *side = NULL;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--repeats") && i + 1 < argc)
            repeats = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--only") && i + 1 < argc)
            only = argv[++i];
        else if (!strcmp(argv[i], "--side") && i + 1 < argc)
            side = argv[++i];
        else if (!strcmp(argv[i], "--callgrind"))
            callgrind = true;
        else if (!strcmp(argv[i], "--messages") && i + 1 < argc) {
            n_produce = n_consume = atol(argv[++i]);
            n_sync = n_produce / 20 + 1;
            if (n_consume > 25000)
                n_consume = 25000;
        } else
            die("usage", "[--repeats N] [--only OP] [--side ours|prom|raw] [--callgrind] "
                         "[--messages N]");
    }
    memset(body, 'x', 64);
    const char *env = getenv("FS_KAFKA_BOOTSTRAP");
    if (env && *env) {
        snprintf(boot, sizeof boot, "%s", env);
    } else {
        char err[256];
        rd_kafka_conf_t *c = rd_kafka_conf_new();
        rd_kafka_conf_set(c, "log_level", "0", err, sizeof err);
        mock_rk = rd_kafka_new(RD_KAFKA_PRODUCER, c, err, sizeof err);
        mock = mock_rk ? rd_kafka_mock_cluster_new(mock_rk, 1) : NULL;
        if (!mock)
            die("mock cluster", "cannot start");
        snprintf(boot, sizeof boot, "%s", rd_kafka_mock_cluster_bootstraps(mock));
    }
    fs_set_log_level(FS_LOG_WARN);
    /* FS_BENCH_KAFKA_TOPIC: consume a topic filled beforehand with at least
     * --messages records (profiling per thread without the filling's threads). */
    const char *pre = getenv("FS_BENCH_KAFKA_TOPIC");
    if (pre && *pre) {
        snprintf(consume_topic, sizeof consume_topic, "%s", pre);
    } else {
        new_topic(consume_topic, sizeof consume_topic, "consume");
        fill(consume_topic, n_consume);
    }
    if (getenv("FS_BENCH_KAFKA_FILL_ONLY")) {
        printf("%s\n", consume_topic);
        return 0;
    }

    printf("# Kafka on librdkafka %s's mock cluster (%s), 64-byte records\n",
           rd_kafka_version_str(), mock ? "in this process" : boot);
    printf("# %-16s %12s %12s %12s %9s %10s\n", "msg/s", "ours", "ours+prom", "raw", "ours/raw",
           "middleware");
    for (size_t i = 0; i < sizeof ops / sizeof ops[0]; i++) {
        const op *o = &ops[i];
        if (only && strcmp(only, o->name))
            continue;
        double r_ours = 0, r_prom = 0, r_raw = 0;
        for (int k = 0; k < (side ? 1 : repeats); k++) {
            if (!side || !strcmp(side, "ours"))
                r_ours = best(r_ours, o->ours(false, o->variant));
            if (!side || !strcmp(side, "prom"))
                r_prom = best(r_prom, o->ours(true, o->variant));
            if (!side || !strcmp(side, "raw"))
                r_raw = best(r_raw, o->raw(o->variant));
        }
        if (callgrind) /* the messages between CALLGRIND_ZERO_STATS and CALLGRIND_DUMP_STATS */
            printf("kafka_cg_messages_%s %ld\n", o->name,
                   !strcmp(o->name, "produce")        ? n_produce
                   : !strcmp(o->name, "produce_sync") ? n_sync
                                                      : cg_to - cg_from);
        if (r_ours > 0)
            printf("kafka_%s_ours %.0f\n", o->name, r_ours);
        if (r_prom > 0)
            printf("kafka_%s_prom %.0f\n", o->name, r_prom);
        if (r_raw > 0)
            printf("kafka_%s_raw %.0f\n", o->name, r_raw);
        if (!side)
            printf("# %-16s %12.0f %12.0f %12.0f %8.0f%% %9.1f%%\n", o->name, r_ours, r_prom, r_raw,
                   100 * r_ours / r_raw, 100 * (r_ours / r_prom - 1));
    }
    if (!side)
        printf("# middleware: extra time per message with the Prometheus middleware (wall clock; "
               "see the callgrind figures for instructions)\n");
    if (mock) {
        rd_kafka_mock_cluster_destroy(mock);
        rd_kafka_destroy(mock_rk);
    }
    return 0;
}
