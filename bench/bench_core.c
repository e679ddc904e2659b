/*
 * bench/bench_core.c - messages per second through the in-process broker,
 * from publish to handled, without and with the Prometheus middleware.
 *
 *   core_plain_ns      ns per message (1e9 / throughput), no middleware
 *   core_prom_ns       the same on a broker with the Prometheus middleware
 *   core_added_ns      core_prom_ns - core_plain_ns: what the middleware adds
 *                      to each message, publish and consume sides together
 *   core_plain_cpu_ns  CPU time of the process per message (both threads),
 *   core_prom_cpu_ns   without and with the middleware
 *
 * One subscriber (concurrency 1, the in-process broker's default ack
 * policy) with a handler that only reads the body; the main thread publishes
 * 64-byte messages through a publisher object and, at the end, waits until
 * the subscriber has handled every one of them. The publisher never lets
 * more than WINDOW messages wait in the queue, so no publish fails on a full
 * queue (a failure would be counted, and retried, and distort the figure).
 * Each figure is the best of --repeats runs of at least --min-time seconds;
 * the two brokers run one after the other in the same process.
 * (--callgrind: see callgrind_run.)
 */
#include "bench.h"

#include "faststream/broker.h"
#include "faststream/memory.h"
#include "faststream/metrics.h"
#include "faststream/prometheus.h"
#include "faststream/publisher.h"
#include "faststream/subscriber.h"

#define QUEUE_CAPACITY 65536
#define WINDOW (QUEUE_CAPACITY / 2)

typedef struct core_ctx {
    fs_broker *broker;
    fs_subscriber *sub;
    fs_publisher *pub;
    fs_registry *registry; /* the middleware's, or NULL */
    uint64_t published;    /* messages published so far on this broker */
    uint64_t min_run_ns;   /* runs at least this long count for the CPU figure */
    double cpu_per_msg;    /* the least process CPU ns per message of those runs */
    bool by_name;          /* publish with fs_publish by name, not through the publisher */
    char body[64];
} core_ctx;

static void die(const char *what)
{
    fprintf(stderr, "bench_core: %s: %s\n", what, fs_last_error());
    exit(1);
}

static fs_outcome handler(fs_message *msg, void *user)
{
    (void)user;
    const unsigned char *body = fs_message_body(msg);
    if (fs_message_body_len(msg))
        BENCH_KEEP(body[0]);
    return FS_OUTCOME_OK;
}

static uint64_t cpu_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static uint64_t run_core(uint64_t iters, void *arg)
{
    core_ctx *x = arg;
    const uint64_t first = x->published, last = first + iters;
    uint64_t cpu0 = cpu_now_ns();
    uint64_t t0 = bench_now_ns();
    for (uint64_t n = first; n < last; n++) {
        /* Keep the queue below WINDOW (checked every 256 messages). */
        if ((n & 255) == 0)
            while (n - fs_subscriber_handled(x->sub) >= WINDOW)
                BENCH_CLOBBER();
        if (x->by_name) {
            fs_envelope e = FS_ENVELOPE_INIT;
            e.body = x->body;
            e.body_len = sizeof x->body;
            if (fs_publish(x->broker, "bench", &e) < 0)
                die("fs_publish");
        } else if (fs_publisher_publish_bytes(x->pub, x->body, sizeof x->body) < 0) {
            die("fs_publisher_publish_bytes");
        }
    }
    if (fs_subscriber_wait_handled(x->sub, last, 60000))
        die("fs_subscriber_wait_handled");
    uint64_t elapsed = bench_now_ns() - t0;
    double cpu = (double)(cpu_now_ns() - cpu0) / (double)iters;
    if (elapsed >= x->min_run_ns && (x->cpu_per_msg == 0 || cpu < x->cpu_per_msg))
        x->cpu_per_msg = cpu;
    x->published = last;
    return elapsed;
}

/* Set up a broker; `prometheus` adds the middleware (on its own registry). */
static void broker_setup(core_ctx *x, int prometheus, const bench_config *cfg)
{
    memset(x, 0, sizeof *x);
    memset(x->body, 'x', sizeof x->body);
    x->min_run_ns = (uint64_t)(cfg->min_time_s * 1e9 / 2);

    fs_memory_options mo = FS_MEMORY_OPTIONS_INIT;
    mo.capacity = QUEUE_CAPACITY;
    if (fs_memory_broker_new(&mo, &x->broker))
        die("fs_memory_broker_new");
    if (prometheus) {
        fs_prometheus_options po = FS_PROMETHEUS_OPTIONS_INIT;
        if (fs_registry_new(&x->registry))
            die("fs_registry_new");
        po.registry = x->registry;
        if (fs_broker_add_prometheus(x->broker, &po) < 0)
            die("fs_broker_add_prometheus");
    }
    if (fs_subscribe(x->broker, "bench", handler, NULL, NULL, &x->sub) ||
        fs_publisher_new(x->broker, "bench", NULL, &x->pub) || fs_broker_start(x->broker))
        die("setting up the broker");
}

static void broker_teardown(core_ctx *x)
{
    fs_broker_free(x->broker);
    fs_registry_free(x->registry);
}

/*
 * --callgrind publisher|name --side plain|prom --count N: N messages the one
 * way, for a profile of the middleware's own work (bench/run.sh reads it
 * with bench/mw_cost.py): through the publisher (its label id) or with
 * fs_publish by name (the name compared on each publish).
 */
static int callgrind_run(int argc, char **argv)
{
    const char *how = argv[2], *side = "prom";
    long count = 100000;
    for (int i = 3; i + 1 < argc; i += 2) {
        if (!strcmp(argv[i], "--side"))
            side = argv[i + 1];
        else if (!strcmp(argv[i], "--count"))
            count = atol(argv[i + 1]);
    }
    bench_config cfg = {.min_time_s = 0.2, .repeats = 1};
    core_ctx x;
    broker_setup(&x, !strcmp(side, "prom"), &cfg);
    x.by_name = !strcmp(how, "name");
    run_core((uint64_t)count, &x);
    broker_teardown(&x);
    return 0;
}

int main(int argc, char **argv)
{
    if (argc >= 3 && !strcmp(argv[1], "--callgrind"))
        return callgrind_run(argc, argv);
    bench_config cfg;
    if (bench_parse_args(argc, argv, &cfg))
        return 2;
    fs_set_log_level(FS_LOG_WARN);
    printf("# faststream %s core: in-process broker, 1 subscriber, 64-byte bodies\n", fs_version());

    /* Both brokers live side by side (the idle one's worker sleeps) and their
     * runs alternate, so that a slow spell of the machine hits both alike. */
    core_ctx plain, prom;
    broker_setup(&plain, 0, &cfg);
    broker_setup(&prom, 1, &cfg);
    double best_plain, best_prom;
    uint64_t n_plain = bench_calibrate(&cfg, run_core, &plain, &best_plain);
    uint64_t n_prom = bench_calibrate(&cfg, run_core, &prom, &best_prom);
    for (int r = 1; r < cfg.repeats; r++) {
        double ns = (double)run_core(n_plain, &plain) / (double)n_plain;
        if (ns < best_plain)
            best_plain = ns;
        ns = (double)run_core(n_prom, &prom) / (double)n_prom;
        if (ns < best_prom)
            best_prom = ns;
    }
    bench_report("core_plain_ns", best_plain);
    bench_report("core_prom_ns", best_prom);
    bench_report("core_added_ns", best_prom - best_plain);
    bench_report("core_plain_cpu_ns", plain.cpu_per_msg);
    bench_report("core_prom_cpu_ns", prom.cpu_per_msg);
    bench_report("core_added_cpu_ns", prom.cpu_per_msg - plain.cpu_per_msg);
    broker_teardown(&prom);
    broker_teardown(&plain);
    return 0;
}
