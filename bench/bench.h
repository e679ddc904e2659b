/*
 * bench/bench.h - the tiny timing harness shared by the C benchmarks.
 *
 * A workload is a function that performs `iters` operations and returns the
 * nanoseconds they took (it times itself, so that a multi-threaded workload
 * can leave thread start-up out). bench_measure() grows the iteration count
 * until one run lasts at least the minimum time (200 ms by default), then
 * runs the workload `repeats` times (3 by default) and keeps the best
 * ns/op: the least disturbed run on a shared machine.
 *
 * Results are printed as "key value" lines (ns per op unless the key says
 * otherwise); anything else starts with '#'. bench/run.sh reads them.
 *
 * The broker benchmarks also find here: a free port and a server started on
 * it (bench_free_port, bench_spawn_server), the best of the three sides (ours,
 * ours + the Prometheus middleware, the raw client) and a connected broker
 * with or without the middleware (bench_broker_new).
 */
#ifndef FS_BENCH_H
#define FS_BENCH_H

#include "../tests/support/port.h"
#include "faststream/faststream.h"
#include "faststream/prometheus.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

typedef uint64_t (*bench_fn)(uint64_t iters, void *ctx);

typedef struct bench_config {
    double min_time_s; /* one timed run lasts at least this long */
    int repeats;       /* timed runs per figure; the best is kept */
    const char *only;  /* comma-separated keys to run, or NULL for all */
} bench_config;

static inline uint64_t bench_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* Keep a value alive so that the compiler cannot drop the work producing it. */
static volatile uint64_t bench_sink;
#define BENCH_KEEP(x) (bench_sink += (uint64_t)(x))

/* A compiler barrier: memory may have changed, so nothing is hoisted across it. */
#define BENCH_CLOBBER() __asm__ __volatile__("" ::: "memory")

/* Parse --min-time SECONDS, --repeats N and --only KEY[,KEY...]. */
static inline int bench_parse_args(int argc, char **argv, bench_config *cfg)
{
    cfg->min_time_s = 0.2;
    cfg->repeats = 3;
    cfg->only = NULL;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--min-time") && i + 1 < argc) {
            cfg->min_time_s = atof(argv[++i]);
        } else if (!strcmp(argv[i], "--repeats") && i + 1 < argc) {
            cfg->repeats = atoi(argv[++i]);
        } else if (!strcmp(argv[i], "--only") && i + 1 < argc) {
            cfg->only = argv[++i];
        } else {
            fprintf(stderr, "usage: %s [--min-time SECONDS] [--repeats N] [--only KEY,KEY]\n",
                    argv[0]);
            return -1;
        }
    }
    if (cfg->min_time_s <= 0)
        cfg->min_time_s = 0.2;
    if (cfg->repeats < 1)
        cfg->repeats = 1;
    return 0;
}

/* True when `key` was selected by --only (or no selection was made). */
static inline int bench_selected(const bench_config *cfg, const char *key)
{
    if (!cfg->only)
        return 1;
    size_t n = strlen(key);
    for (const char *p = cfg->only; *p;) {
        const char *end = strchr(p, ',');
        size_t len = end ? (size_t)(end - p) : strlen(p);
        if (len == n && !strncmp(p, key, n))
            return 1;
        if (!end)
            break;
        p = end + 1;
    }
    return 0;
}

/*
 * Warm `fn` up, then grow the iteration count until one run lasts at least
 * cfg->min_time_s. Returns that count; *ns_per_op gets that run's ns/op.
 */
static inline uint64_t bench_calibrate(const bench_config *cfg, bench_fn fn, void *ctx,
                                       double *ns_per_op)
{
    const double target_ns = cfg->min_time_s * 1e9;
    uint64_t iters = 1;
    uint64_t elapsed;
    fn(1000, ctx); /* warm-up: caches, branch predictors, lazily created state */
    for (;;) {
        elapsed = fn(iters, ctx);
        if ((double)elapsed >= target_ns)
            break;
        if ((double)elapsed < target_ns / 100)
            iters *= 10;
        else
            iters = (uint64_t)((double)iters * target_ns * 1.1 / (double)elapsed) + 1;
    }
    *ns_per_op = (double)elapsed / (double)iters;
    return iters;
}

/* The best ns/op of cfg->repeats runs of `fn`, each lasting >= cfg->min_time_s. */
static inline double bench_measure(const bench_config *cfg, bench_fn fn, void *ctx)
{
    double best;
    uint64_t iters = bench_calibrate(cfg, fn, ctx, &best); /* the first timed run */
    for (int r = 1; r < cfg->repeats; r++) {
        double ns = (double)fn(iters, ctx) / (double)iters;
        if (ns < best)
            best = ns;
    }
    return best;
}

/* Print one result line. */
static inline void bench_report(const char *key, double value)
{
    printf("%s %.3f\n", key, value);
    fflush(stdout);
}

/*
 * A free TCP port on 127.0.0.1 for a server the benchmark starts, or -1: one
 * in 26000-27999 (tests/support/port.h: below Linux's ephemeral range, so no
 * client's outgoing port can take it; clear of scripts/services.sh's ports
 * and of the tests').
 */
static inline int bench_free_port(void)
{
    return port_pick(PORT_BENCH_FIRST, PORT_BENCH_COUNT);
}

/*
 * Start a server: argv[0] (looked up in PATH) with argv, its output to
 * /dev/null, then wait up to 10 s until it accepts connections on `port`.
 * Returns its pid, or -1 (it did not start; it is killed).
 */
static inline pid_t bench_spawn_server(char *const argv[], int port)
{
    pid_t pid = fork();
    if (pid == 0) {
        /* keep the benchmark's output pipes free of the server */
        if (!freopen("/dev/null", "w", stdout) || !freopen("/dev/null", "w", stderr))
            _exit(127);
        execvp(argv[0], argv);
        _exit(127);
    }
    if (pid < 0)
        return -1;
    for (int i = 0; i < 200; i++) {
        if (port_answers(port))
            return pid;
        if (waitpid(pid, NULL, WNOHANG) == pid)
            return -1; /* it exited */
        struct timespec ts = {0, 50000000L};
        nanosleep(&ts, NULL);
    }
    kill(pid, SIGKILL);
    waitpid(pid, NULL, 0);
    return -1;
}

/*
 * Broker benchmarks: the best (highest msg/s) of `repeats` runs of each side,
 * taken in turns so that a busy spell of the machine hits all of them alike.
 * Sides: 0 ours, 1 ours with the Prometheus middleware, 2 the raw client.
 * `run(ctx, side, n)` returns msg/s; `only` ("ours", "prom", "raw" or NULL
 * for all) runs one side (profiling); the others stay 0.
 */
static inline void bench_best_of_sides(double (*run)(void *ctx, int side, long n), void *ctx,
                                       long n, int repeats, const char *only, double out[3])
{
    static const char *const names[3] = {"ours", "prom", "raw"};
    out[0] = out[1] = out[2] = 0;
    for (int i = 0; i < repeats; i++) {
        for (int s = 0; s < 3; s++) {
            if (only && strcmp(only, names[s]) != 0)
                continue;
            double v = run(ctx, s, n);
            out[s] = v > out[s] ? v : out[s];
        }
    }
}

/*
 * Defines `static void best3(ours, raw, r, n, out)` for a benchmark whose
 * sides are `double fn(const RUN *, long n)` and whose RUN has a `bool prom`
 * (the middleware side sets it), over bench_best_of_sides; `repeats` and
 * `side` are the benchmark's statics.
 */
#define BENCH_DEFINE_BEST3(RUN)                                                                    \
    typedef struct bench_sides {                                                                   \
        double (*ours)(const RUN *, long);                                                         \
        double (*raw)(const RUN *, long);                                                          \
        RUN r;                                                                                     \
    } bench_sides;                                                                                 \
    static double bench_run_side(void *ctx, int side_index, long n)                                \
    {                                                                                              \
        bench_sides *x = ctx;                                                                      \
        x->r.prom = side_index == 1;                                                               \
        return side_index == 2 ? x->raw(&x->r, n) : x->ours(&x->r, n);                             \
    }                                                                                              \
    static void best3(double (*ours)(const RUN *, long), double (*raw)(const RUN *, long), RUN r,  \
                      long n, double out[3])                                                       \
    {                                                                                              \
        bench_sides x = {ours, raw, r};                                                            \
        bench_best_of_sides(bench_run_side, &x, n, repeats, side, out);                            \
    }

/*
 * Create and connect a broker for `url`; with `prom`, the Prometheus
 * middleware on a new registry returned in *reg (else *reg = NULL). On
 * failure: prints what failed and exits (benchmarks only).
 */
static inline fs_broker *bench_broker_new(const char *url, bool prom, fs_registry **reg)
{
    fs_broker *b;
    const char *what = "broker";
    *reg = NULL;
    if (fs_broker_new(url, NULL, &b) < 0)
        goto fail;
    if (prom) {
        fs_prometheus_options po = FS_PROMETHEUS_OPTIONS_INIT;
        what = "prometheus";
        if (fs_registry_new(reg) < 0)
            goto fail;
        po.registry = *reg;
        if (fs_broker_add_prometheus(b, &po) < 0)
            goto fail;
    }
    what = "connect";
    if (fs_broker_connect(b) < 0)
        goto fail;
    return b;
fail:
    fprintf(stderr, "bench: %s (%s): %s\n", what, url, fs_last_error());
    exit(1);
}

#endif /* FS_BENCH_H */
