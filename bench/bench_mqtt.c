/*
 * bench/bench_mqtt.c - MQTT broker throughput beside raw libmosquitto.
 *
 * QoS 0 and QoS 1, 64-byte bodies without properties:
 *   publish:  ours (fs_publish: QoS 1 waits for each PUBACK) without and with
 *             the Prometheus middleware, and raw libmosquitto doing the same
 *             (mosquitto_publish; at QoS 1 waiting for each PUBACK). A QoS 0
 *             run ends with one QoS 1 publish, so that everything was sent.
 *   consume:  a subscriber (concurrency 1, FastStream's default ack policy
 *             ACK: at QoS 1 the PUBACK follows the handler) handling N
 *             messages, without and with the middleware, and a raw
 *             libmosquitto client counting them in on_message (at QoS 1 its
 *             PUBACK leaves when on_message returns). QoS 1: the N messages
 *             wait in a persistent session first; QoS 0: a raw publisher
 *             sends them while the subscriber runs (mosquitto may drop QoS 0
 *             messages for a slow client: the rate counts what arrived).
 *
 * Under valgrind (instruction counts), QoS 0 publishers on both sides put a
 * QoS 1 publish to a topic of its own behind every WINDOW messages (--window,
 * default 100 under valgrind, 0 otherwise) and wait for its PUBACK: each
 * mosquitto_publish writes a byte to the network thread's wake-up socket pair,
 * and valgrind, which runs one thread at a time, can starve that thread until
 * the pair is full; the wake-ups written then are lost, how many depends on
 * the OS scheduler, and with them hundreds of instructions a message of
 * libmosquitto's own work (the run-to-run swing). With the window every
 * publish costs its wake-up, as when the network thread keeps up. Waiting is
 * on condition variables, never by polling (polls count instructions by
 * elapsed time).
 *
 * It starts its own mosquitto (no persistence, max_queued_messages raised) on
 * a free loopback port, or uses FS_BENCH_MQTT_PORT. Ours, ours + middleware
 * and raw run in turns; each figure is the best of --repeats runs.
 * Output: "key value" lines in msg/s (mqtt_<qos0|qos1>_<publish|consume>_<ours|prom|raw>),
 * then a table. For instruction counts (bench/run.sh uses them):
 *   valgrind --tool=callgrind bench_mqtt --case "qos1 consume" --side ours --count N
 * runs one side once with N messages; the difference of two counts over the
 * difference of their N is the cost per message.
 */
#include "bench.h"

#include "faststream/faststream.h"
#include "faststream/mqtt.h"
#include "faststream/prometheus.h"

#include <arpa/inet.h>
#include <mosquitto.h>
#include <mqtt_protocol.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>
#if defined(__has_include)
#if __has_include(<valgrind/valgrind.h>)
#include <valgrind/valgrind.h>
#endif
#endif
#ifndef RUNNING_ON_VALGRIND
#define RUNNING_ON_VALGRIND 0
#endif

static int port;
static long window = -1; /* QoS 0: a QoS 1 barrier every `window` messages (0: none) */
static int repeats = 3;
static long n_msgs = 20000;
static const char *side;
static char body[65];
static pid_t server;
static _Atomic unsigned seq;

static void die(const char *what, const char *why)
{
    fprintf(stderr, "bench_mqtt: %s: %s\n", what, why);
    if (server > 0)
        kill(server, SIGTERM);
    exit(1);
}

static void sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

/* ------------------------------------------------------------------------ */
/* Raw libmosquitto                                                         */

/*
 * What a consumer counts: its handler (ours) or on_message (raw) calls
 * counter_hit; the main thread sleeps in counter_wait until the last one.
 */
typedef struct counter {
    atomic_long n;
    long want;
    uint64_t t_first, t_last;
    pthread_mutex_t mu;
    pthread_cond_t cv;
} counter;

static void counter_init(counter *c, long want)
{
    atomic_init(&c->n, 0);
    c->want = want;
    c->t_first = c->t_last = 0;
    pthread_mutex_init(&c->mu, NULL);
    pthread_cond_init(&c->cv, NULL);
}

static void counter_destroy(counter *c)
{
    pthread_cond_destroy(&c->cv);
    pthread_mutex_destroy(&c->mu);
}

static inline void counter_hit(counter *c)
{
    long n = atomic_fetch_add(&c->n, 1) + 1;
    if (n == 1)
        c->t_first = bench_now_ns();
    if (n == c->want) {
        c->t_last = bench_now_ns();
        pthread_mutex_lock(&c->mu);
        pthread_cond_signal(&c->cv);
        pthread_mutex_unlock(&c->mu);
    }
}

/* Wait until the count reaches its want, or nothing moved for 2 s (QoS 0 may drop). */
static long counter_wait(counter *c)
{
    long last = -1;
    uint64_t moved = bench_now_ns();
    pthread_mutex_lock(&c->mu);
    for (;;) {
        long v = atomic_load(&c->n);
        if (v >= c->want)
            break;
        uint64_t now = bench_now_ns();
        if (v != last) {
            last = v;
            moved = now;
        } else if (now - moved > 2000000000ull) {
            break;
        }
        struct timespec dl;
        clock_gettime(CLOCK_REALTIME, &dl);
        dl.tv_nsec += 100000000L; /* look at the progress every 100 ms */
        if (dl.tv_nsec >= 1000000000L) {
            dl.tv_sec++;
            dl.tv_nsec -= 1000000000L;
        }
        pthread_cond_timedwait(&c->cv, &c->mu, &dl);
    }
    pthread_mutex_unlock(&c->mu);
    return atomic_load(&c->n);
}

typedef struct raw {
    struct mosquitto *m;
    pthread_mutex_t mu; /* a QoS 1 publisher waits for its PUBACK like ours: on a condvar */
    pthread_cond_t cv;
    atomic_long acked; /* on_publish: QoS 0 written, QoS 1 acknowledged */
    long sent;         /* publishes made */
    atomic_int connected;
    /* a publisher waits on cv until `acked` reaches it (0: nobody), as ours waits for its mid */
    atomic_long want_acked;
    counter got; /* a consumer's messages */
} raw;

static void raw_on_connect(struct mosquitto *m, void *u, int rc)
{
    (void)m;
    raw *r = u;
    pthread_mutex_lock(&r->mu);
    atomic_store(&r->connected, rc == 0 ? 1 : -1);
    pthread_cond_broadcast(&r->cv);
    pthread_mutex_unlock(&r->mu);
}

static void raw_on_publish(struct mosquitto *m, void *u, int mid)
{
    (void)m;
    (void)mid;
    raw *r = u;
    long n = atomic_fetch_add(&r->acked, 1) + 1;
    long want = atomic_load(&r->want_acked);
    if (!want || n < want) /* nobody waits for this one: as ours, no lock */
        return;
    pthread_mutex_lock(&r->mu);
    pthread_cond_signal(&r->cv);
    pthread_mutex_unlock(&r->mu);
}

static void raw_on_message(struct mosquitto *m, void *u, const struct mosquitto_message *msg)
{
    (void)m;
    raw *r = u;
    BENCH_KEEP(msg->payloadlen);
    counter_hit(&r->got);
}

static raw *raw_new(const char *id, bool clean, long want)
{
    raw *r = calloc(1, sizeof *r);
    pthread_mutex_init(&r->mu, NULL);
    pthread_cond_init(&r->cv, NULL);
    counter_init(&r->got, want);
    r->m = mosquitto_new(id, clean, r);
    mosquitto_int_option(r->m, MOSQ_OPT_PROTOCOL_VERSION, MQTT_PROTOCOL_V5);
    mosquitto_connect_callback_set(r->m, raw_on_connect);
    mosquitto_publish_callback_set(r->m, raw_on_publish);
    mosquitto_message_callback_set(r->m, raw_on_message);
    if (!clean) {
        mosquitto_property *p = NULL;
        mosquitto_property_add_int32(&p, MQTT_PROP_SESSION_EXPIRY_INTERVAL, 600);
        if (mosquitto_connect_bind_v5(r->m, "127.0.0.1", port, 60, NULL, p))
            die("raw connect", "failed");
        mosquitto_property_free_all(&p);
    } else if (mosquitto_connect(r->m, "127.0.0.1", port, 60)) {
        die("raw connect", "failed");
    }
    mosquitto_loop_start(r->m);
    pthread_mutex_lock(&r->mu);
    while (!atomic_load(&r->connected))
        pthread_cond_wait(&r->cv, &r->mu);
    pthread_mutex_unlock(&r->mu);
    if (atomic_load(&r->connected) < 0)
        die("raw connect", "refused");
    return r;
}

static void raw_free(raw *r)
{
    mosquitto_disconnect(r->m);
    mosquitto_loop_stop(r->m, false);
    mosquitto_destroy(r->m);
    counter_destroy(&r->got);
    pthread_cond_destroy(&r->cv);
    pthread_mutex_destroy(&r->mu);
    free(r);
}

/* Wait (on the condition variable) until every publish of r so far was acknowledged or written. */
static void raw_wait_acked(raw *r)
{
    pthread_mutex_lock(&r->mu);
    atomic_store(&r->want_acked, r->sent);
    while (atomic_load(&r->acked) < r->sent)
        pthread_cond_wait(&r->cv, &r->mu);
    atomic_store(&r->want_acked, 0);
    pthread_mutex_unlock(&r->mu);
}

static void raw_publish1(raw *r, const char *topic, int len, const void *payload, int qos)
{
    while (mosquitto_publish(r->m, NULL, topic, len, payload, qos, false) == MOSQ_ERR_NO_CONN)
        sleep_ms(1);
    r->sent++;
}

/*
 * Publish n messages at `qos` from a raw client; QoS 1 waits for each PUBACK
 * when `sync`, else for all at the end; QoS 0 puts a QoS 1 barrier behind
 * every `window` messages (see the top).
 */
static void raw_publish_n(raw *r, const char *topic, long n, int qos, bool sync)
{
    char barrier[128];
    snprintf(barrier, sizeof barrier, "%s/barrier", topic);
    for (long i = 0; i < n; i++) {
        raw_publish1(r, topic, 64, body, qos);
        if (sync && qos) {
            raw_wait_acked(r);
        } else if (!qos && window > 0 && (i + 1) % window == 0) {
            raw_publish1(r, barrier, 1, "x", 1);
            raw_wait_acked(r);
        }
    }
    if (qos) /* every PUBACK */
        raw_wait_acked(r);
}

/* The last QoS 0 publish is out once a QoS 1 one behind it is acknowledged. */
static void raw_barrier(raw *r, const char *topic)
{
    raw_publish1(r, topic, 1, "x", 1);
    raw_wait_acked(r);
}

/* ------------------------------------------------------------------------ */
/* Ours                                                                     */

static fs_broker *make_broker(bool prom, fs_registry **reg, const char *query)
{
    char url[160];
    snprintf(url, sizeof url, "mqtt://127.0.0.1:%d%s", port, query ? query : "");
    fs_broker *b;
    if (fs_broker_new(url, NULL, &b) < 0)
        die("broker", fs_last_error());
    *reg = NULL;
    if (prom) {
        fs_prometheus_options po = FS_PROMETHEUS_OPTIONS_INIT;
        fs_registry_new(reg);
        po.registry = *reg;
        if (fs_broker_add_prometheus(b, &po) < 0)
            die("prometheus", fs_last_error());
    }
    return b;
}

typedef struct run {
    int qos;
    bool prom;
} run;

static void topic_name(char *buf, size_t n, const char *what)
{
    /* fixed width: libmosquitto's topic checks cost by the byte, and pids differ per side */
    snprintf(buf, n, "bench/%07ld/%s/%04u", (long)getpid(), what, atomic_fetch_add(&seq, 1));
}

static double publish_ours(const run *r, long n)
{
    char topic[96], barrier[128];
    topic_name(topic, sizeof topic, "pub");
    snprintf(barrier, sizeof barrier, "%s/barrier", topic);
    fs_registry *reg;
    fs_broker *b = make_broker(r->prom, &reg, NULL);
    if (fs_broker_connect(b) < 0)
        die("connect", fs_last_error());
    fs_mqtt_publish_options po = FS_MQTT_PUBLISH_OPTIONS_INIT, one = FS_MQTT_PUBLISH_OPTIONS_INIT;
    po.qos = r->qos;
    one.qos = 1;
    fs_envelope e = FS_ENVELOPE_INIT, x = FS_ENVELOPE_INIT;
    e.body = body;
    e.body_len = 64;
    e.broker_options = &po;
    x.body = "x"; /* the QoS 1 barrier, as raw_barrier */
    x.body_len = 1;
    x.broker_options = &one;
    /* a publisher, as a service publishing to one topic keeps (by name, the topic's name
     * is compared each time) */
    fs_publisher *pub;
    if (fs_publisher_new(b, topic, NULL, &pub) < 0)
        die("publisher", fs_last_error());
    uint64_t t0 = bench_now_ns();
    for (long i = 0; i < n; i++) {
        if (fs_publisher_publish(pub, &e) < 0)
            die("publish", fs_last_error());
        if (r->qos == 0 && window > 0 && (i + 1) % window == 0 && fs_publish(b, barrier, &x) < 0)
            die("publish", fs_last_error());
    }
    if (r->qos == 0 && fs_publish(b, topic, &x) < 0)
        die("publish", fs_last_error());
    uint64_t ns = bench_now_ns() - t0;
    fs_publisher_free(pub);
    fs_broker_free(b);
    fs_registry_free(reg);
    return (double)n * 1e9 / (double)ns;
}

static double publish_raw(const run *r, long n)
{
    char topic[96];
    topic_name(topic, sizeof topic, "pub");
    raw *p = raw_new(NULL, true, 0);
    uint64_t t0 = bench_now_ns();
    raw_publish_n(p, topic, n, r->qos, true);
    if (r->qos == 0)
        raw_barrier(p, topic);
    uint64_t ns = bench_now_ns() - t0;
    raw_free(p);
    return (double)n * 1e9 / (double)ns;
}

static fs_outcome count_handler(fs_message *m, void *user)
{
    BENCH_KEEP(fs_message_body_len(m));
    counter_hit(user);
    return FS_OUTCOME_OK;
}

static double consume_ours(const run *r, long n)
{
    char topic[96], id[96], query[160];
    topic_name(topic, sizeof topic, "sub");
    snprintf(id, sizeof id, "bench-%07ld-%04u", (long)getpid(), atomic_fetch_add(&seq, 1));
    snprintf(query, sizeof query, "?client_id=%s&clean_start=%s", id, r->qos ? "false" : "true");
    fs_registry *reg;
    fs_broker *b = make_broker(r->prom, &reg, query);
    counter c;
    counter_init(&c, n);
    fs_mqtt_subscriber_options mo = FS_MQTT_SUBSCRIBER_OPTIONS_INIT;
    mo.qos = r->qos;
    fs_subscriber_options so = FS_SUBSCRIBER_OPTIONS_INIT;
    so.broker_options = &mo;
    if (fs_subscribe(b, topic, count_handler, &c, &so, NULL) < 0)
        die("subscribe", fs_last_error());
    raw *p = raw_new(NULL, true, 0);
    uint64_t t0 = 0;
    if (r->qos) { /* the messages wait in the persistent session */
        if (fs_broker_start(b) < 0 || fs_broker_stop(b) < 0)
            die("start", fs_last_error());
        raw_publish_n(p, topic, n, 1, false);
        t0 = bench_now_ns();
        if (fs_broker_start(b) < 0)
            die("start", fs_last_error());
    } else {
        if (fs_broker_start(b) < 0)
            die("start", fs_last_error());
        raw_publish_n(p, topic, n, 0, false);
    }
    long got = counter_wait(&c);
    uint64_t ns = (got >= n ? c.t_last : bench_now_ns()) - (r->qos ? t0 : c.t_first);
    fs_broker_free(b);
    fs_registry_free(reg);
    raw_free(p);
    counter_destroy(&c);
    return ns ? (double)got * 1e9 / (double)ns : 0;
}

static double consume_raw(const run *r, long n)
{
    char topic[96], id[96];
    topic_name(topic, sizeof topic, "sub");
    snprintf(id, sizeof id, "bench-raw-%07ld-%04u", (long)getpid(), atomic_fetch_add(&seq, 1));
    raw *p = raw_new(NULL, true, 0);
    raw *s = raw_new(id, r->qos == 0, n);
    mosquitto_subscribe(s->m, NULL, topic, r->qos);
    sleep_ms(50); /* SUBACK */
    uint64_t t0 = 0;
    if (r->qos) { /* the messages wait in the persistent session */
        raw_free(s);
        raw_publish_n(p, topic, n, 1, false);
        t0 = bench_now_ns();
        s = raw_new(id, false, n);
    } else {
        raw_publish_n(p, topic, n, 0, false);
    }
    long got = counter_wait(&s->got);
    uint64_t ns = (got >= n ? s->got.t_last : bench_now_ns()) - (r->qos ? t0 : s->got.t_first);
    raw_free(s);
    raw_free(p);
    return ns ? (double)got * 1e9 / (double)ns : 0;
}

/* ------------------------------------------------------------------------ */

/* The best of `repeats` runs of each of ours, ours + middleware and raw, in turns. */
BENCH_DEFINE_BEST3(run)

static void start_server(void)
{
    port = bench_free_port();
    if (port < 0)
        die("port", "no free port");
    char conf[300];
    snprintf(conf, sizeof conf, "%s/fs-bench-mqtt-%ld.conf",
             getenv("TMPDIR") && *getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp", (long)getpid());
    FILE *f = fopen(conf, "w");
    if (!f)
        die("config", conf);
    fprintf(f,
            "user root\nlistener %d 127.0.0.1\nallow_anonymous true\npersistence false\n"
            "max_queued_messages 1000000\nmax_inflight_messages 100\nlog_dest none\n",
            port);
    fclose(f);
    char *argv[] = {"mosquitto", "-c", conf, NULL};
    server = bench_spawn_server(argv, port);
    unlink(conf);
    if (server < 0)
        die("mosquitto", "did not start");
}

int main(int argc, char **argv)
{
    const char *only_case = NULL;
    long count = 0;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--repeats") && i + 1 < argc)
            repeats = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--count") && i + 1 < argc)
            count = atol(argv[++i]);
        else if (!strcmp(argv[i], "--case") && i + 1 < argc)
            only_case = argv[++i];
        else if (!strcmp(argv[i], "--side") && i + 1 < argc)
            side = argv[++i];
        else if (!strcmp(argv[i], "--window") && i + 1 < argc)
            window = atol(argv[++i]);
        else {
            fprintf(stderr,
                    "usage: %s [--repeats N] [--count N] [--case \"qos1 consume\"]"
                    " [--side ours|prom|raw] [--window N]\n",
                    argv[0]);
            return 2;
        }
    }
    if (repeats < 1)
        repeats = 1;
    if (count > 0)
        n_msgs = count;
    if (window < 0)
        window = RUNNING_ON_VALGRIND ? 100 : 0;
    fs_set_log_level(FS_LOG_WARN);
    signal(SIGPIPE, SIG_IGN);
    mosquitto_lib_init();
    fs_mqtt_register();
    memset(body, 'x', 64);
    const char *env = getenv("FS_BENCH_MQTT_PORT");
    if (env && *env)
        port = atoi(env);
    else
        start_server();
    printf(
        "# mqtt benchmark on mosquitto 127.0.0.1:%d, 64-byte bodies, %ld messages, best of %d%s\n",
        port, n_msgs, repeats,
        window > 0 ? " (QoS 0: a QoS 1 barrier every --window messages)" : "");
    printf("#\n# %-22s %12s %12s %12s %9s %9s\n", "msg/s", "ours", "+prometheus", "raw mosq",
           "mw cost", "ours/raw");
    for (int qos = 0; qos <= 1; qos++) {
        for (int op = 0; op < 2; op++) {
            char label[64];
            const char *opn = op ? "consume" : "publish";
            snprintf(label, sizeof label, "qos%d %s", qos, opn);
            if (only_case && strcmp(only_case, label) != 0)
                continue;
            double f[3];
            best3(op ? consume_ours : publish_ours, op ? consume_raw : publish_raw,
                  (run){qos, false}, n_msgs, f);
            char key[96];
            const char *sides[] = {"ours", "prom", "raw"};
            for (int s = 0; s < 3; s++) {
                snprintf(key, sizeof key, "mqtt_qos%d_%s_%s", qos, opn, sides[s]);
                bench_report(key, f[s]);
            }
            printf("# %-22s %12.0f %12.0f %12.0f %8.1f%% %8.0f%%\n", label, f[0], f[1], f[2],
                   f[0] > 0 ? 100.0 * (f[0] - f[1]) / f[0] : 0, f[2] > 0 ? 100.0 * f[0] / f[2] : 0);
        }
    }
    printf("# mw cost: throughput lost to the Prometheus middleware (target < 3 %%);\n"
           "# ours/raw: ours without middleware over raw libmosquitto (target >= 90 %%)\n");
    if (server > 0) {
        kill(server, SIGTERM);
        waitpid(server, NULL, 0);
    }
    return 0;
}
