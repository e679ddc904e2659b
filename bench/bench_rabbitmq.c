/*
 * bench/bench_rabbitmq.c - RabbitMQ broker throughput beside raw rabbitmq-c.
 *
 * Workloads (64-byte bodies with FastStream's properties and 2 headers):
 *   publish_single: one publisher, each publish waiting for its confirm
 *                   (fs_publish; raw: basic.publish, then read frames until
 *                   its basic.ack);
 *   publish_batch:  batches of 100 confirmed at once (fs_publish_batch; raw:
 *                   100 basic.publish, then read until all are confirmed);
 *   consume:        N messages waiting in a queue, consumed with prefetch
 *                   1000 and acked one by one (ours: a subscriber,
 *                   concurrency 1, REJECT_ON_ERROR; raw: basic.consume +
 *                   amqp_consume_message + basic.ack per message). Ours stops
 *                   the clock in the handler of the last message.
 * The raw client logs in with our frame_max and heartbeat (60 s: rabbitmq-c
 * then keeps heartbeat times on every send and read, as it does for ours).
 * Each of ours runs without and with the Prometheus middleware; ours, ours +
 * middleware and raw take turns so that they meet the same conditions. Each
 * figure is the best of --repeats runs (default 3). Output: "key value"
 * lines in messages per second (rabbitmq_<workload>_<ours|prom|raw>), then
 * a table. Benchmarks print; nothing fails on a target.
 *
 *   --side ours|prom|raw --workload W --count N   run one side once (for
 *   callgrind: bench/run.sh runs two counts under valgrind and reports the
 *   client's instructions per message from the difference). Raw then runs
 *   in a process that has had a second thread, as in the full run (where
 *   ours ran before it in the same process): glibc's send/recv/poll carry
 *   their cancellation bookkeeping once a process has had threads (about
 *   150 instructions a message here). --raw-single-threaded skips that
 *   thread: raw as a single-threaded program.
 *
 * The server: FS_BENCH_RABBITMQ_URL, else amqp://guest:guest@127.0.0.1:
 * $FS_RABBITMQ_PORT (default 26672), as scripts/services.sh runs it.
 */
#include "bench.h"

#include "faststream/faststream.h"
#include "faststream/prometheus.h"
#include "faststream/rabbitmq.h"

#include <amqp.h>
#include <amqp_tcp_socket.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <unistd.h>

#if defined(__has_include)
#if __has_include(<valgrind/callgrind.h>)
#include <valgrind/callgrind.h>
#endif
#endif
#ifdef CALLGRIND_ZERO_STATS
/* Under callgrind: the timed part (every thread) is dumped alone (OUT.1). */
#define CG_ON() CALLGRIND_ZERO_STATS
#define CG_OFF() CALLGRIND_DUMP_STATS
#else
#define CG_ON()
#define CG_OFF()
#endif

#define BATCH 100
#define QUEUE "fs.bench"

static int port = 26672;
static char url[256];
static char body[65];
static const fs_header headers[] = {{"x-tenant", "acme", 0}, {"x-attempt", "1", 0}};

static void *no_op(void *arg)
{
    return arg;
}

static void die(const char *what, const char *why)
{
    fprintf(stderr, "bench_rabbitmq: %s: %s\n", what, why);
    exit(1);
}

/* ------------------------------------------------------------------------ */
/* Raw rabbitmq-c                                                           */

static amqp_connection_state_t raw_connect(void)
{
    amqp_connection_state_t c = amqp_new_connection();
    amqp_socket_t *s = amqp_tcp_socket_new(c);
    if (amqp_socket_open(s, "127.0.0.1", port))
        die("raw", "cannot connect");
    /* frame_max and heartbeat as ours (rabbitmq-c keeps heartbeat times on every send and read) */
    if (amqp_login(c, "/", 0, 131072, 60, AMQP_SASL_METHOD_PLAIN, "guest", "guest").reply_type !=
        AMQP_RESPONSE_NORMAL)
        die("raw", "login failed");
    amqp_channel_open(c, 1);
    if (amqp_get_rpc_reply(c).reply_type != AMQP_RESPONSE_NORMAL)
        die("raw", "channel.open failed");
    return c;
}

static void raw_close(amqp_connection_state_t c)
{
    amqp_connection_close(c, AMQP_REPLY_SUCCESS);
    amqp_destroy_connection(c);
}

static void reset_queue(void)
{
    amqp_connection_state_t c = raw_connect();
    amqp_queue_delete(c, 1, amqp_cstring_bytes(QUEUE), 0, 0);
    amqp_queue_declare(c, 1, amqp_cstring_bytes(QUEUE), 0, 0, 0, 0, amqp_empty_table);
    if (amqp_get_rpc_reply(c).reply_type != AMQP_RESPONSE_NORMAL)
        die("raw", "queue.declare failed");
    raw_close(c);
}

/* The properties our publisher sends (FastStream's), built the same way. */
static void raw_props(amqp_basic_properties_t *p, amqp_table_entry_t *e)
{
    memset(p, 0, sizeof *p);
    for (int i = 0; i < 2; i++) {
        e[i].key = amqp_cstring_bytes(headers[i].name);
        e[i].value.kind = AMQP_FIELD_KIND_UTF8;
        e[i].value.value.bytes = amqp_cstring_bytes(headers[i].value);
    }
    p->_flags = AMQP_BASIC_CORRELATION_ID_FLAG | AMQP_BASIC_MESSAGE_ID_FLAG |
                AMQP_BASIC_DELIVERY_MODE_FLAG | AMQP_BASIC_TIMESTAMP_FLAG |
                AMQP_BASIC_HEADERS_FLAG | AMQP_BASIC_CONTENT_TYPE_FLAG;
    p->correlation_id = amqp_cstring_bytes("00000000-0000-4000-8000-000000000000");
    p->message_id = p->correlation_id;
    p->content_type = amqp_cstring_bytes("application/json");
    p->delivery_mode = 1;
    p->timestamp = (uint64_t)time(NULL);
    p->headers.num_entries = 2;
    p->headers.entries = e;
}

/* Read frames until every tag <= want is confirmed. */
static void raw_wait_confirms(amqp_connection_state_t c, uint64_t want, uint64_t *acked)
{
    while (*acked < want) {
        amqp_frame_t f;
        if (amqp_simple_wait_frame(c, &f) != AMQP_STATUS_OK)
            die("raw", "wait frame");
        if (f.frame_type == AMQP_FRAME_METHOD && f.payload.method.id == AMQP_BASIC_ACK_METHOD) {
            amqp_basic_ack_t *a = f.payload.method.decoded;
            *acked = a->delivery_tag > *acked ? a->delivery_tag : *acked;
        }
        amqp_maybe_release_buffers(c);
    }
}

static double publish_raw(bool batch, long n)
{
    reset_queue();
    amqp_connection_state_t c = raw_connect();
    amqp_confirm_select(c, 1);
    if (amqp_get_rpc_reply(c).reply_type != AMQP_RESPONSE_NORMAL)
        die("raw", "confirm.select");
    amqp_basic_properties_t p;
    amqp_table_entry_t e[2];
    amqp_bytes_t b = {64, body};
    uint64_t tag = 0, acked = 0;
    uint64_t t0 = bench_now_ns();
    CG_ON();
    for (long i = 0; i < n; i += batch ? BATCH : 1) {
        for (int k = 0; k < (batch ? BATCH : 1); k++) {
            raw_props(&p, e);
            if (amqp_basic_publish(c, 1, amqp_empty_bytes, amqp_cstring_bytes(QUEUE), 1, 0, &p, b))
                die("raw", "publish");
            tag++;
        }
        raw_wait_confirms(c, tag, &acked);
    }
    CG_OFF();
    uint64_t ns = bench_now_ns() - t0;
    raw_close(c);
    return (double)n * 1e9 / (double)ns;
}

/* Put n messages in the queue (pipelined, confirmed at the end). */
static void fill(long n)
{
    reset_queue();
    amqp_connection_state_t c = raw_connect();
    amqp_confirm_select(c, 1);
    amqp_get_rpc_reply(c);
    amqp_basic_properties_t p;
    amqp_table_entry_t e[2];
    amqp_bytes_t b = {64, body};
    uint64_t acked = 0;
    for (long i = 0; i < n; i++) {
        raw_props(&p, e);
        amqp_basic_publish(c, 1, amqp_empty_bytes, amqp_cstring_bytes(QUEUE), 0, 0, &p, b);
        if ((i + 1) % 1000 == 0)
            raw_wait_confirms(c, (uint64_t)i + 1 - 500, &acked);
    }
    raw_wait_confirms(c, (uint64_t)n, &acked);
    raw_close(c);
}

static double consume_raw(long n)
{
    fill(n);
    amqp_connection_state_t c = raw_connect();
    amqp_basic_qos(c, 1, 0, 1000, 0);
    amqp_basic_consume(c, 1, amqp_cstring_bytes(QUEUE), amqp_empty_bytes, 0, 0, 0,
                       amqp_empty_table);
    if (amqp_get_rpc_reply(c).reply_type != AMQP_RESPONSE_NORMAL)
        die("raw", "basic.consume");
    uint64_t t0 = bench_now_ns();
    CG_ON();
    for (long i = 0; i < n; i++) {
        amqp_envelope_t env;
        amqp_maybe_release_buffers(c);
        if (amqp_consume_message(c, &env, NULL, 0).reply_type != AMQP_RESPONSE_NORMAL)
            die("raw", "consume");
        BENCH_KEEP(env.message.body.len);
        amqp_basic_ack(c, 1, env.delivery_tag, 0);
        amqp_destroy_envelope(&env);
    }
    CG_OFF();
    uint64_t ns = bench_now_ns() - t0;
    raw_close(c);
    return (double)n * 1e9 / (double)ns;
}

/* ------------------------------------------------------------------------ */
/* Ours                                                                     */

static double publish_ours(bool prom, bool batch, long n)
{
    reset_queue();
    fs_registry *reg;
    fs_broker *b = bench_broker_new(url, prom, &reg);
    fs_envelope env[BATCH];
    for (int i = 0; i < BATCH; i++) {
        env[i] = (fs_envelope)FS_ENVELOPE_INIT;
        env[i].body = body;
        env[i].body_len = 64;
        env[i].headers = headers;
        env[i].header_count = 2;
        env[i].content_type = "application/json";
        env[i].correlation_id = "00000000-0000-4000-8000-000000000000";
    }
    /* a publisher, as a service publishing to one queue keeps (by name, the queue's name is
     * compared each time) */
    fs_publisher *pub;
    if (fs_publisher_new(b, QUEUE, NULL, &pub) < 0)
        die("publisher", fs_last_error());
    uint64_t t0 = bench_now_ns();
    CG_ON();
    for (long i = 0; i < n; i += batch ? BATCH : 1) {
        int rc =
            batch ? fs_publisher_publish_batch(pub, env, BATCH) : fs_publisher_publish(pub, env);
        if (rc < 0)
            die("publish", fs_last_error());
    }
    CG_OFF();
    uint64_t ns = bench_now_ns() - t0;
    fs_publisher_free(pub);
    fs_broker_free(b);
    fs_registry_free(reg);
    return (double)n * 1e9 / (double)ns;
}

typedef struct consume_ctx {
    long n;
    atomic_long seen;
    uint64_t t_end;
} consume_ctx;

static fs_outcome handler(fs_message *m, void *user)
{
    consume_ctx *x = user;
    BENCH_KEEP(fs_message_body_len(m));
    if (atomic_fetch_add(&x->seen, 1) + 1 == x->n)
        x->t_end = bench_now_ns();
    return FS_OUTCOME_OK;
}

static double consume_ours(bool prom, long n)
{
    fill(n);
    fs_registry *reg;
    fs_broker *b = bench_broker_new(url, prom, &reg);
    consume_ctx x = {n, 0, 0};
    fs_rabbitmq_subscriber_options ro = FS_RABBITMQ_SUBSCRIBER_OPTIONS_INIT;
    ro.prefetch = 1000;
    fs_subscriber_options so = FS_SUBSCRIBER_OPTIONS_INIT;
    so.broker_options = &ro;
    fs_subscriber *sub;
    if (fs_subscribe(b, QUEUE, handler, &x, &so, &sub) < 0)
        die("subscribe", fs_last_error());
    uint64_t t0 = bench_now_ns();
    CG_ON();
    if (fs_broker_start(b) < 0)
        die("start", fs_last_error());
    if (fs_subscriber_wait_handled(sub, (uint64_t)n, 120000) < 0)
        die("consume", "timed out");
    while (!x.t_end)
        usleep(100);
    CG_OFF();
    uint64_t ns = x.t_end - t0;
    fs_broker_free(b);
    fs_registry_free(reg);
    return (double)n * 1e9 / (double)ns;
}

/* ------------------------------------------------------------------------ */

static double run_one(const char *workload, const char *side, long n)
{
    bool prom = !strcmp(side, "prom"), raw = !strcmp(side, "raw");
    if (!strcmp(workload, "publish_single"))
        return raw ? publish_raw(false, n) : publish_ours(prom, false, n);
    if (!strcmp(workload, "publish_batch"))
        return raw ? publish_raw(true, n) : publish_ours(prom, true, n);
    if (!strcmp(workload, "consume"))
        return raw ? consume_raw(n) : consume_ours(prom, n);
    die("workload", workload);
    return 0;
}

int main(int argc, char **argv)
{
    int repeats = 3;
    const char *only_side = NULL, *only_workload = NULL;
    long count = 0;
    bool raw_single = false;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--repeats") && i + 1 < argc)
            repeats = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--side") && i + 1 < argc)
            only_side = argv[++i];
        else if (!strcmp(argv[i], "--workload") && i + 1 < argc)
            only_workload = argv[++i];
        else if (!strcmp(argv[i], "--count") && i + 1 < argc)
            count = atol(argv[++i]);
        else if (!strcmp(argv[i], "--raw-single-threaded"))
            raw_single = true;
        else {
            fprintf(stderr,
                    "usage: %s [--repeats N] [--side ours|prom|raw --workload W --count N "
                    "[--raw-single-threaded]]\n",
                    argv[0]);
            return 2;
        }
    }
    const char *p = getenv("FS_RABBITMQ_PORT"), *u = getenv("FS_BENCH_RABBITMQ_URL");
    if (p && *p)
        port = atoi(p);
    if (u && *u)
        snprintf(url, sizeof url, "%s", u);
    else
        snprintf(url, sizeof url, "amqp://guest:guest@127.0.0.1:%d/", port);
    memset(body, 'x', 64);
    body[0] = '{';
    body[63] = '}';
    fs_set_log_level(FS_LOG_WARN);
    fs_rabbitmq_register(); /* only enums of the library are used otherwise */
    if (only_side) {
        if (!strcmp(only_side, "raw") && !raw_single) { /* see the top of the file */
            pthread_t t;
            if (pthread_create(&t, NULL, no_op, NULL) == 0)
                pthread_join(t, NULL);
        }
        double r =
            run_one(only_workload ? only_workload : "consume", only_side, count ? count : 1000);
        printf("# %s %s %ld: %.0f msg/s\n", only_workload, only_side, count, r);
        return 0;
    }
    static const char *const workloads[] = {"publish_single", "publish_batch", "consume"};
    static const long counts[] = {5000, 50000, 50000};
    static const char *const sides[] = {"ours", "prom", "raw"};
    double best[3][3] = {{0}};
    for (int w = 0; w < 3; w++)
        for (int r = 0; r < repeats; r++)
            for (int s = 0; s < 3; s++) {
                double v = run_one(workloads[w], sides[s], counts[w]);
                if (v > best[w][s])
                    best[w][s] = v;
            }
    for (int w = 0; w < 3; w++)
        for (int s = 0; s < 3; s++)
            printf("rabbitmq_%s_%s %.0f\n", workloads[w], sides[s], best[w][s]);
    printf("# RabbitMQ (msg/s, best of %d; server %s)\n", repeats, url);
    printf("# %-34s %10s %10s %10s %9s %9s\n", "workload", "ours", "ours+prom", "raw", "ours/raw",
           "mw cost");
    static const char *const labels[] = {"confirmed publish, one at a time",
                                         "confirmed publish, batches of 100",
                                         "consume + ack, prefetch 1000"};
    for (int w = 0; w < 3; w++)
        printf("# %-34s %10.0f %10.0f %10.0f %8.0f%% %8.1f%%\n", labels[w], best[w][0], best[w][1],
               best[w][2], 100 * best[w][0] / best[w][2], 100 * (best[w][0] / best[w][1] - 1));
    return 0;
}
