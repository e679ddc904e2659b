/*
 * bench/bench_nats.c - NATS broker throughput beside raw nats.c, same run.
 *
 * Cases (64-byte bodies with FastStream's headers "content-type" and
 * "correlation_id", which the raw side sets too):
 *   core publish   fs_publish / natsConnection_PublishMsg, n messages, then a flush;
 *   core pubsub    the same publisher and a subscriber in this process
 *                  (ours: fs_subscribe, concurrency 1; raw: a thread calling
 *                  NextMsg on a synchronous subscription and reading what
 *                  FastStream's parser reads: content-type, message_id,
 *                  correlation_id): time until the last one is handled;
 *   js publish     one PubAck awaited per message (fs_publish with a stream /
 *                  js_PublishMsg);
 *   js pull        n messages waiting in a stream, consumed by a durable pull
 *                  consumer with explicit acks (ours: fs_subscribe, 64 per
 *                  fetch; raw: Fetch(64) + natsMsg_Ack).
 * Each for ours, ours + the Prometheus middleware and raw nats.c, in turns.
 * Output: "key value" lines in messages per second (keys
 * nats_<case>_<ours|prom|raw>, case with '_' for ' '), then a table.
 *
 * --callgrind (under valgrind --tool=callgrind --instr-atstart=no) instruments
 * only the timed part of the run selected with --case and --side: bench/run.sh
 * divides the instructions by the messages for instructions per message,
 * which the machine's load does not move.
 *
 * It starts its own nats-server -js (memory streams) on a free loopback port,
 * or uses FS_BENCH_NATS_PORT. Benchmarks print; nothing fails on a target.
 */
#include "bench.h"

#include "faststream/faststream.h"
#include "faststream/nats.h"
#include "faststream/prometheus.h"

#include <nats/nats.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <sys/wait.h>
#include <unistd.h>
#include <valgrind/callgrind.h>

#define PULL_BATCH 64
#define CORR "00000000-0000-4000-8000-000000000000"

static int port;
static int repeats = 3;
static double scale = 1;
static const char *side; /* ours | prom | raw: that side alone */
static bool callgrind;
static char body[65];
static pid_t server = -1;
static char url[64];
static _Atomic unsigned stream_seq;

static void die(const char *what, const char *why)
{
    fprintf(stderr, "bench_nats: %s: %s\n", what, why);
    if (server > 0)
        kill(server, SIGTERM);
    exit(1);
}

/* Instrumentation on/off for every thread (collection toggles are per thread). */
static void collect(bool on)
{
    if (callgrind && on)
        CALLGRIND_START_INSTRUMENTATION;
    else if (callgrind)
        CALLGRIND_STOP_INSTRUMENTATION;
}

/* ------------------------------------------------------------------------ */
/* Both sides                                                               */

static natsConnection *raw_connect(jsCtx **js)
{
    natsConnection *nc = NULL;
    if (natsConnection_ConnectTo(&nc, url) != NATS_OK)
        die("connect", nats_GetLastError(NULL));
    if (js && natsConnection_JetStream(js, nc, NULL) != NATS_OK)
        die("jetstream", nats_GetLastError(NULL));
    return nc;
}

/* What FastStream's parser reads of a message: content-type, message_id, correlation_id. */
static void raw_read(natsMsg *m)
{
    const char *ct = NULL, *mid = NULL, *cid = NULL;
    natsMsgHeader_Get(m, "content-type", &ct);
    natsMsgHeader_Get(m, "message_id", &mid);
    natsMsgHeader_Get(m, "correlation_id", &cid);
    BENCH_KEEP(ct != NULL);
    BENCH_KEEP(cid != NULL);
    BENCH_KEEP(natsMsg_GetDataLength(m));
}

static natsMsg *raw_msg(const char *subject)
{
    natsMsg *m = NULL;
    natsMsg_Create(&m, subject, NULL, body, 64);
    natsMsgHeader_Set(m, "content-type", "application/json");
    natsMsgHeader_Set(m, "correlation_id", CORR);
    return m;
}

/* A fresh memory stream BENCHn on "benchn.>"; its subject in `subject`. */
static void fresh_stream(jsCtx *js, char *name, char *subject)
{
    unsigned k = atomic_fetch_add(&stream_seq, 1);
    char subj[32];
    sprintf(name, "BENCH%u", k);
    sprintf(subj, "bench%u.>", k);
    sprintf(subject, "bench%u.orders", k);
    const char *subjects[] = {subj};
    jsStreamConfig sc;
    jsStreamConfig_Init(&sc);
    sc.Name = name;
    sc.Subjects = subjects;
    sc.SubjectsLen = 1;
    sc.Storage = js_MemoryStorage;
    jsStreamInfo *si = NULL;
    if (js_AddStream(&si, js, &sc, NULL, NULL) != NATS_OK)
        die("add stream", nats_GetLastError(NULL));
    jsStreamInfo_Destroy(si);
}

/* A raw connection and a fresh stream for one JetStream run. */
typedef struct jsenv {
    natsConnection *nc;
    jsCtx *js;
    char name[32], subject[48];
} jsenv;

static void fill_stream(jsCtx *js, const char *subject, long n);

static void js_open(jsenv *e, long fill)
{
    e->nc = raw_connect(&e->js);
    fresh_stream(e->js, e->name, e->subject);
    if (fill)
        fill_stream(e->js, e->subject, fill);
}

/* Delete the stream, close, and return msg/s for n messages in ns. */
static double js_close(jsenv *e, long n, uint64_t ns)
{
    js_DeleteStream(e->js, e->name, NULL, NULL);
    jsCtx_Destroy(e->js);
    natsConnection_Destroy(e->nc);
    return (double)n * 1e9 / (double)ns;
}

/* Fill a stream with n messages (async publishes, all acked), outside the timing. */
static void fill_stream(jsCtx *js, const char *subject, long n)
{
    for (long i = 0; i < n; i++) {
        natsMsg *m = raw_msg(subject);
        if (js_PublishMsgAsync(js, &m, NULL) != NATS_OK)
            die("fill", nats_GetLastError(NULL));
    }
    jsPubOptions po;
    jsPubOptions_Init(&po);
    po.MaxWait = 60000;
    if (js_PublishAsyncComplete(js, &po) != NATS_OK)
        die("fill", "PubAcks missing");
}

static fs_broker *make_broker(bool prom, fs_registry **reg)
{
    return bench_broker_new(url, prom, reg);
}

static void free_broker(fs_broker *b, fs_registry *reg)
{
    fs_broker_free(b);
    fs_registry_free(reg);
}

/* ------------------------------------------------------------------------ */
/* Ours                                                                     */

/* Messages handled; the waiting thread sleeps until the last (no polling: it
 * would add instructions to ours alone under callgrind). */
typedef struct counter {
    _Atomic long n;
    long want;
    _Atomic uint64_t done_ns;
    pthread_mutex_t mu;
    pthread_cond_t cv;
} counter;

#define COUNTER_INIT(want)                                                                         \
    {                                                                                              \
        0, want, 0, PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER                            \
    }

static fs_outcome count(fs_message *m, void *user)
{
    (void)m;
    counter *c = user;
    if (atomic_fetch_add_explicit(&c->n, 1, memory_order_relaxed) + 1 == c->want) {
        pthread_mutex_lock(&c->mu);
        atomic_store(&c->done_ns, bench_now_ns());
        pthread_cond_signal(&c->cv);
        pthread_mutex_unlock(&c->mu);
    }
    return FS_OUTCOME_OK;
}

static void wait_done(counter *c)
{
    pthread_mutex_lock(&c->mu);
    while (!atomic_load(&c->done_ns))
        pthread_cond_wait(&c->cv, &c->mu);
    pthread_mutex_unlock(&c->mu);
}

static void ours_publish_n(fs_broker *b, const char *subject, const char *stream, long n)
{
    fs_nats_publish_options po = FS_NATS_PUBLISH_OPTIONS_INIT;
    po.stream = stream;
    fs_envelope env = FS_ENVELOPE_INIT;
    env.body = body;
    env.body_len = 64;
    env.content_type = "application/json";
    env.correlation_id = CORR;
    env.broker_options = stream ? &po : NULL;
    /* a publisher, as a service publishing to one subject keeps (fs_publish by name would
     * also compare the subject's name each time) */
    fs_publisher *pub;
    if (fs_publisher_new(b, subject, NULL, &pub) < 0)
        die("publisher", fs_last_error());
    for (long i = 0; i < n; i++)
        if (fs_publisher_publish(pub, &env) < 0)
            die("publish", fs_last_error());
    fs_publisher_free(pub);
}

static double ours_core_publish(bool prom, long n)
{
    fs_registry *reg;
    fs_broker *b = make_broker(prom, &reg);
    collect(true);
    uint64_t t0 = bench_now_ns();
    ours_publish_n(b, "bench.core", NULL, n);
    fs_broker_ping(b, 10000); /* flush: everything reached the server */
    uint64_t ns = bench_now_ns() - t0;
    collect(false);
    free_broker(b, reg);
    return (double)n * 1e9 / (double)ns;
}

static double ours_core_pubsub(bool prom, long n)
{
    fs_registry *reg;
    fs_broker *b = make_broker(prom, &reg);
    counter c = COUNTER_INIT(n);
    if (fs_subscribe(b, "bench.pubsub", count, &c, NULL, NULL) < 0 || fs_broker_start(b) < 0)
        die("subscribe", fs_last_error());
    collect(true);
    uint64_t t0 = bench_now_ns();
    ours_publish_n(b, "bench.pubsub", NULL, n);
    wait_done(&c);
    uint64_t ns = atomic_load(&c.done_ns) - t0;
    collect(false);
    free_broker(b, reg);
    return (double)n * 1e9 / (double)ns;
}

static double ours_js_publish(bool prom, long n)
{
    jsenv e;
    js_open(&e, 0);
    fs_registry *reg;
    fs_broker *b = make_broker(prom, &reg);
    collect(true);
    uint64_t t0 = bench_now_ns();
    ours_publish_n(b, e.subject, e.name, n);
    uint64_t ns = bench_now_ns() - t0;
    collect(false);
    free_broker(b, reg);
    return js_close(&e, n, ns);
}

static double ours_js_pull(bool prom, long n)
{
    jsenv e;
    js_open(&e, n);
    fs_registry *reg;
    fs_broker *b = make_broker(prom, &reg);
    counter c = COUNTER_INIT(n);
    fs_nats_subscriber_options no = FS_NATS_SUBSCRIBER_OPTIONS_INIT;
    no.stream = e.name;
    no.durable = "bench";
    no.pull_batch = PULL_BATCH;
    no.max_ack_pending = 20000;
    fs_subscriber_options so = FS_SUBSCRIBER_OPTIONS_INIT;
    so.broker_options = &no;
    if (fs_subscribe(b, e.subject, count, &c, &so, NULL) < 0)
        die("subscribe", fs_last_error());
    collect(true);
    uint64_t t0 = bench_now_ns();
    if (fs_broker_start(b) < 0)
        die("start", fs_last_error());
    wait_done(&c);
    uint64_t ns = atomic_load(&c.done_ns) - t0;
    collect(false);
    free_broker(b, reg);
    return js_close(&e, n, ns);
}

/* ------------------------------------------------------------------------ */
/* Raw nats.c                                                               */

static double raw_core_publish(bool prom, long n)
{
    (void)prom;
    natsConnection *nc = raw_connect(NULL);
    collect(true);
    uint64_t t0 = bench_now_ns();
    for (long i = 0; i < n; i++) {
        natsMsg *m = raw_msg("bench.core");
        natsConnection_PublishMsg(nc, m);
        natsMsg_Destroy(m);
    }
    natsConnection_FlushTimeout(nc, 10000);
    uint64_t ns = bench_now_ns() - t0;
    collect(false);
    natsConnection_Destroy(nc);
    return (double)n * 1e9 / (double)ns;
}

typedef struct raw_rx {
    natsSubscription *sub;
    long n;
    uint64_t done_ns;
} raw_rx;

static void *raw_receiver(void *arg)
{
    raw_rx *r = arg;
    for (long got = 0; got < r->n;) {
        natsMsg *m = NULL;
        if (natsSubscription_NextMsg(&m, r->sub, 10000) != NATS_OK)
            die("receive", "timeout");
        raw_read(m);
        natsMsg_Destroy(m);
        got++;
    }
    r->done_ns = bench_now_ns();
    return NULL;
}

static double raw_core_pubsub(bool prom, long n)
{
    (void)prom;
    natsConnection *nc = raw_connect(NULL);
    raw_rx r = {NULL, n, 0};
    natsConnection_SubscribeSync(&r.sub, nc, "bench.pubsub");
    natsSubscription_SetPendingLimits(r.sub, 4 * 1024 * 1024, 1024 * 1024 * 1024);
    natsConnection_Flush(nc);
    pthread_t t;
    pthread_create(&t, NULL, raw_receiver, &r);
    collect(true);
    uint64_t t0 = bench_now_ns();
    for (long i = 0; i < n; i++) {
        natsMsg *m = raw_msg("bench.pubsub");
        natsConnection_PublishMsg(nc, m);
        natsMsg_Destroy(m);
    }
    pthread_join(t, NULL);
    uint64_t ns = r.done_ns - t0;
    collect(false);
    natsSubscription_Destroy(r.sub);
    natsConnection_Destroy(nc);
    return (double)n * 1e9 / (double)ns;
}

static double raw_js_publish(bool prom, long n)
{
    (void)prom;
    jsenv e;
    js_open(&e, 0);
    jsPubOptions po;
    jsPubOptions_Init(&po);
    po.ExpectStream = e.name;
    collect(true);
    uint64_t t0 = bench_now_ns();
    for (long i = 0; i < n; i++) {
        natsMsg *m = raw_msg(e.subject);
        jsPubAck *pa = NULL;
        if (js_PublishMsg(&pa, e.js, m, &po, NULL) != NATS_OK)
            die("js publish", nats_GetLastError(NULL));
        jsPubAck_Destroy(pa);
        natsMsg_Destroy(m);
    }
    uint64_t ns = bench_now_ns() - t0;
    collect(false);
    return js_close(&e, n, ns);
}

static double raw_js_pull(bool prom, long n)
{
    (void)prom;
    jsenv e;
    js_open(&e, n);
    collect(true);
    uint64_t t0 = bench_now_ns();
    jsConsumerConfig cc;
    jsConsumerConfig_Init(&cc);
    cc.Durable = "bench";
    cc.AckPolicy = js_AckExplicit;
    cc.MaxAckPending = 20000;
    cc.FilterSubject = e.subject;
    jsConsumerInfo *ci = NULL;
    if (js_AddConsumer(&ci, e.js, e.name, &cc, NULL, NULL) != NATS_OK)
        die("consumer", nats_GetLastError(NULL));
    jsConsumerInfo_Destroy(ci);
    jsSubOptions so;
    jsSubOptions_Init(&so);
    so.Stream = e.name;
    so.Consumer = "bench";
    natsSubscription *sub = NULL;
    if (js_PullSubscribe(&sub, e.js, e.subject, NULL, NULL, &so, NULL) != NATS_OK)
        die("pull subscribe", nats_GetLastError(NULL));
    for (long got = 0; got < n;) {
        natsMsgList l = {0};
        natsStatus s = natsSubscription_Fetch(&l, sub, PULL_BATCH, 5000, NULL);
        if (s != NATS_OK && s != NATS_TIMEOUT)
            die("fetch", natsStatus_GetText(s));
        for (int i = 0; i < l.Count; i++) {
            raw_read(l.Msgs[i]);
            natsMsg_Ack(l.Msgs[i], NULL);
        }
        got += l.Count;
        natsMsgList_Destroy(&l);
    }
    uint64_t ns = bench_now_ns() - t0;
    collect(false);
    natsSubscription_Destroy(sub);
    return js_close(&e, n, ns);
}

/* ------------------------------------------------------------------------ */

typedef struct bcase {
    const char *name, *key;
    double (*ours)(bool, long);
    double (*raw)(bool, long);
    long n;
} bcase;

/* One side of a case (bench_best_of_sides): 0 ours, 1 ours + middleware, 2 raw. */
static double run_side(void *ctx, int which, long n)
{
    const bcase *bc = ctx;
    return which == 2 ? bc->raw(false, n) : bc->ours(which == 1, n);
}

static void start_server(void)
{
    port = bench_free_port();
    if (port < 0)
        die("port", "no free port");
    char p[16], dir[] = "/tmp/fs-bench-nats-XXXXXX";
    if (!mkdtemp(dir))
        die("mkdtemp", "failed");
    snprintf(p, sizeof p, "%d", port);
    server = fork();
    if (server == 0) {
        if (!freopen("/dev/null", "w", stdout) || !freopen("/dev/null", "w", stderr))
            _exit(127);
        execlp("nats-server", "nats-server", "-a", "127.0.0.1", "-p", p, "-js", "-sd", dir,
               (char *)NULL);
        _exit(127);
    }
    snprintf(url, sizeof url, "nats://127.0.0.1:%d", port);
    for (int i = 0; i < 200; i++) {
        natsConnection *nc = NULL;
        if (natsConnection_ConnectTo(&nc, url) == NATS_OK) {
            natsConnection_Destroy(nc);
            return;
        }
        usleep(50000);
    }
    die("nats-server", "did not start");
}

int main(int argc, char **argv)
{
    const char *only_case = NULL;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--repeats") && i + 1 < argc)
            repeats = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--scale") && i + 1 < argc)
            scale = atof(argv[++i]);
        else if (!strcmp(argv[i], "--case") && i + 1 < argc)
            only_case = argv[++i];
        else if (!strcmp(argv[i], "--side") && i + 1 < argc)
            side = argv[++i];
        else if (!strcmp(argv[i], "--callgrind"))
            callgrind = true;
        else {
            fprintf(stderr,
                    "usage: %s [--repeats N] [--scale X] [--case \"core pubsub\"]\n"
                    "       [--side ours|prom|raw] [--callgrind]\n",
                    argv[0]);
            return 2;
        }
    }
    if (repeats < 1)
        repeats = 1;
    /*
     * nats.c's locks spin (2000 trylocks by default) before they block. Under
     * valgrind, which runs one thread at a time, a thread that finds a lock
     * taken spins until the scheduler switches threads: tens of thousands of
     * instructions a message that measure valgrind's time slices, not the
     * work (JetStream publish swung 35,000-82,000 per message from run to
     * run, on either side). Without the spin the counts are the work; msg/s
     * runs keep nats.c's default.
     */
    if (callgrind && nats_Open(0) != NATS_OK)
        die("nats_Open", "failed");
    fs_set_log_level(FS_LOG_WARN);
    signal(SIGPIPE, SIG_IGN);
    fs_nats_register();
    memset(body, 'x', 64);
    const char *env = getenv("FS_BENCH_NATS_PORT");
    if (env && *env) {
        port = atoi(env);
        snprintf(url, sizeof url, "nats://127.0.0.1:%d", port);
    } else {
        start_server();
    }
    bcase cases[] = {
        {"core publish", "core_publish", ours_core_publish, raw_core_publish, 200000},
        {"core pubsub", "core_pubsub", ours_core_pubsub, raw_core_pubsub, 200000},
        {"js publish", "js_publish", ours_js_publish, raw_js_publish, 10000},
        {"js pull", "js_pull", ours_js_pull, raw_js_pull, 50000},
    };
    printf("# nats benchmark on %s, 64-byte bodies + 2 headers, best of %d\n", url, repeats);
    printf("#\n# %-14s %12s %12s %12s %9s %9s\n", "msg/s", "ours", "+prometheus", "raw nats.c",
           "mw cost", "ours/raw");
    for (size_t c = 0; c < sizeof cases / sizeof *cases; c++) {
        const bcase *bc = &cases[c];
        if (only_case && strcmp(only_case, bc->name) != 0)
            continue;
        long n = (long)((double)bc->n * scale);
        if (n < 100)
            n = 100;
        double best[3];
        bench_best_of_sides(run_side, (void *)bc, n, repeats, side, best); /* in turns */
        static const char *sides[] = {"ours", "prom", "raw"};
        for (int s = 0; s < 3; s++) {
            char key[64];
            snprintf(key, sizeof key, "nats_%s_%s", bc->key, sides[s]);
            if (best[s] > 0)
                bench_report(key, best[s]);
        }
        printf("# %-14s %12.0f %12.0f %12.0f %8.1f%% %8.0f%%   (n=%ld)\n", bc->name, best[0],
               best[1], best[2], best[0] > 0 ? 100.0 * (best[0] - best[1]) / best[0] : 0.0,
               best[2] > 0 ? 100.0 * best[0] / best[2] : 0.0, n);
    }
    printf("# mw cost: throughput lost to the Prometheus middleware (target < 3 %%);\n"
           "# ours/raw: ours without middleware over raw nats.c doing the same work (target >= 90 "
           "%%)\n");
    if (server > 0) {
        kill(server, SIGTERM);
        waitpid(server, NULL, 0);
    }
    return 0;
}
