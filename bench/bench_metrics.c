/*
 * bench/bench_metrics.c - ns per operation of the metrics library.
 *
 *   counter_inc          (a) fs_counter_inc on a kept child, 1 thread
 *   counter_inc_2t       (b) the same, 2 threads on one child at once:
 *                            wall time / per-thread increments
 *   labels_inc           (c) fs_counter_family_labels by 3 values + inc
 *   hist_observe         (d) fs_histogram_observe on a kept child
 *                            (default buckets, values spread over them)
 *   middleware           (e) the per-message updates of METRICS.md steps 1-8,
 *                            every child looked up by its values, with two
 *                            CLOCK_MONOTONIC reads around the (empty) handler
 *   middleware_kept      (e) with children kept from one lookup (what the real
 *                            middleware's cache does): the lookups' share of (e)
 *   render_1000          (f) fs_registry_render (text format) of a registry
 *                            holding 1,000 label sets of a counter and a
 *                            12-bucket histogram (ns per render)
 *   baseline_atomic_add  an uncontended relaxed atomic add on a uint64_t
 *   baseline_clock       one clock_gettime(CLOCK_MONOTONIC)
 *
 * At scale (issue 12):
 *   create_N             ns per new child of a 3-label counter family, N
 *                        (10k, 100k, 1M) distinct random label values
 *                        created in random order into a fresh family
 *   mem_counter          bytes of heap per child (malloc's own count, in
 *   mem_histogram        use and mmapped, mallinfo2) of 100k children of a
 *                        3-label counter / 12-bucket histogram family, each
 *                        updated once and rendered once (table, order, arena,
 *                        label texts: everything the family holds)
 *   render_N             ns per text render of N (1k, 10k, 100k) label sets of
 *                        a counter and a 12-bucket histogram ((f) is N = 1k)
 *
 * --iters N runs each selected workload once with exactly N operations and
 * no timing (with N children for create): bench/run.sh runs it under
 * callgrind, collecting only inside the functions measured, for instruction
 * counts per operation that a loaded machine does not disturb.
 *
 * bench_metrics.py runs the same workloads with Python's prometheus_client;
 * bench/run.sh puts both side by side.
 */
#include "bench.h"

#include "faststream/exposition.h"
#include "faststream/metrics.h"

#include <malloc.h>
#include <pthread.h>
#include <stdatomic.h>

static const char *const LABELS3[] = {"app_name", "broker", "handler"};
static const char *const LABELS_STATUS[] = {"app_name", "broker", "handler", "status"};
static const char *const LABELS_EXC[] = {"app_name", "broker", "handler", "exception_type"};
static const char *const VALUES3[] = {"faststream", "memory", "orders"};
static const char *const VALUES_ACKED[] = {"faststream", "memory", "orders", "acked"};

/* 16, 64, ... 16777216: 11 finite bounds, 12 buckets with +Inf (METRICS.md size buckets). */
static double size_buckets[11];

static const double observations[16] = {0.001, 0.007, 0.02, 0.03, 0.06, 0.08, 0.2,  0.3,
                                        0.6,   0.9,   2.0,  3.0,  6.0,  9.0,  20.0, 0.004};

static void die(const char *what)
{
    fprintf(stderr, "bench_metrics: %s: %s\n", what, fs_last_error());
    exit(1);
}

/* The label values {"faststream", "memory", HANDLER}, HANDLER being `prefix` and i. */
typedef struct label_set {
    char handler[32];
    const char *values[3];
} label_set;

static const char *const *label_set_make(label_set *s, const char *prefix, int i)
{
    snprintf(s->handler, sizeof s->handler, "%s%04d", prefix, i);
    s->values[0] = "faststream";
    s->values[1] = "memory";
    s->values[2] = s->handler;
    return s->values;
}

/* A 3-label counter family with 8 neighbours of the child under test, so that
 * lookups do not run against a one-entry table. */
static fs_counter_family *counter_family(fs_registry *reg)
{
    fs_counter_family *fam;
    if (fs_counter_family_new(reg, "bench_requests_total", "Requests.", 3, LABELS3, &fam))
        die("fs_counter_family_new");
    for (int i = 0; i < 8; i++) {
        label_set s;
        fs_counter *c = fs_counter_family_labels(fam, label_set_make(&s, "other-", i));
        if (!c)
            die("fs_counter_family_labels");
        fs_counter_inc(c);
    }
    return fam;
}

/* ---- baselines --------------------------------------------------------- */

static _Atomic uint64_t baseline_cell;

static uint64_t run_atomic_add(uint64_t iters, void *ctx)
{
    (void)ctx;
    uint64_t t0 = bench_now_ns();
    for (uint64_t i = 0; i < iters; i++)
        atomic_fetch_add_explicit(&baseline_cell, 1, memory_order_relaxed);
    return bench_now_ns() - t0;
}

static uint64_t run_clock(uint64_t iters, void *ctx)
{
    (void)ctx;
    uint64_t sum = 0;
    uint64_t t0 = bench_now_ns();
    for (uint64_t i = 0; i < iters; i++) {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        sum += (uint64_t)ts.tv_nsec;
    }
    uint64_t elapsed = bench_now_ns() - t0;
    BENCH_KEEP(sum);
    return elapsed;
}

/* ---- (a) counter inc on a kept child ------------------------------------ */

/* Increments made on the child of VALUES3 by (a), (b) and (c): checked
 * against its value afterwards, so that a figure never comes from lost work. */
static uint64_t expected_incs;

static uint64_t run_counter_inc(uint64_t iters, void *ctx)
{
    fs_counter *c = ctx;
    uint64_t t0 = bench_now_ns();
    for (uint64_t i = 0; i < iters; i++)
        fs_counter_inc(c);
    uint64_t elapsed = bench_now_ns() - t0;
    expected_incs += iters;
    return elapsed;
}

/* ---- (b) two threads on one counter ------------------------------------- */

typedef struct inc2_ctx {
    fs_counter *counter;
    uint64_t iters;
    _Atomic int ready;
    _Atomic int go;
} inc2_ctx;

static void *inc2_worker(void *arg)
{
    inc2_ctx *x = arg;
    fs_counter *c = x->counter;
    uint64_t n = x->iters;
    atomic_fetch_add(&x->ready, 1);
    while (!atomic_load_explicit(&x->go, memory_order_acquire))
        ;
    for (uint64_t i = 0; i < n; i++)
        fs_counter_inc(c);
    return NULL;
}

static uint64_t run_counter_inc_2t(uint64_t iters, void *ctx)
{
    inc2_ctx x = {.counter = ctx, .iters = iters};
    pthread_t t[2];
    for (int i = 0; i < 2; i++)
        if (pthread_create(&t[i], NULL, inc2_worker, &x)) {
            fprintf(stderr, "bench_metrics: pthread_create failed\n");
            exit(1);
        }
    while (atomic_load(&x.ready) < 2)
        ;
    uint64_t t0 = bench_now_ns();
    atomic_store_explicit(&x.go, 1, memory_order_release);
    for (int i = 0; i < 2; i++)
        pthread_join(t[i], NULL);
    uint64_t elapsed = bench_now_ns() - t0; /* wall time; divided by the per-thread count */
    expected_incs += 2 * iters;
    return elapsed;
}

/* ---- (c) labelled lookup by 3 values + inc ------------------------------ */

static uint64_t run_labels_inc(uint64_t iters, void *ctx)
{
    fs_counter_family *fam = ctx;
    uint64_t t0 = bench_now_ns();
    for (uint64_t i = 0; i < iters; i++) {
        BENCH_CLOBBER(); /* the values could have changed: look them up again */
        fs_counter_inc(fs_counter_family_labels(fam, VALUES3));
    }
    uint64_t elapsed = bench_now_ns() - t0;
    expected_incs += iters;
    return elapsed;
}

/* ---- (d) histogram observe on a kept child ------------------------------ */

static uint64_t run_hist_observe(uint64_t iters, void *ctx)
{
    fs_histogram *h = ctx;
    uint64_t t0 = bench_now_ns();
    for (uint64_t i = 0; i < iters; i++)
        fs_histogram_observe(h, observations[i & 15]);
    return bench_now_ns() - t0;
}

/* ---- (e) the middleware's per-message work ------------------------------ */

typedef struct mw_families {
    fs_counter_family *received;
    fs_histogram_family *size;
    fs_gauge_family *in_process;
    fs_counter_family *processed;
    fs_histogram_family *duration;
    fs_counter_family *exceptions;
} mw_families;

static void mw_register(fs_registry *reg, mw_families *m)
{
    if (fs_counter_family_new(reg, "faststream_received_messages_total",
                              "Count of received messages by broker and handler", 3, LABELS3,
                              &m->received) ||
        fs_histogram_family_new(
            reg, "faststream_received_messages_size_bytes",
            "Histogram of received messages size in bytes by broker and handler", 3, LABELS3,
            size_buckets, 11, &m->size) ||
        fs_gauge_family_new(reg, "faststream_received_messages_in_process",
                            "Gauge of received messages in process by broker and handler", 3,
                            LABELS3, &m->in_process) ||
        fs_counter_family_new(reg, "faststream_received_processed_messages_total",
                              "Count of received processed messages by broker, handler and status",
                              4, LABELS_STATUS, &m->processed) ||
        fs_histogram_family_new(reg, "faststream_received_processed_messages_duration_seconds",
                                "Histogram of received processed messages duration in seconds by "
                                "broker and handler",
                                3, LABELS3, NULL, 0, &m->duration) ||
        fs_counter_family_new(reg, "faststream_received_processed_messages_exceptions_total",
                              "Count of received processed messages exceptions by broker, handler "
                              "and exception_type",
                              4, LABELS_EXC, &m->exceptions))
        die("registering the middleware families");
}

static inline double mono_seconds(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* Every child is looked up by its label values, as a middleware that keeps no
 * children would: the values (app_name, broker, handler) are hashed once into a
 * label key used for the four families labelled by them, and extended by the
 * status for the processed counter (the path without error: no exception
 * type). */
static uint64_t run_middleware(uint64_t iters, void *ctx)
{
    const mw_families *m = ctx;
    const double count = 1, size = 100;
    uint64_t t0 = bench_now_ns();
    for (uint64_t i = 0; i < iters; i++) {
        BENCH_CLOBBER(); /* a new message: its label values are read afresh */
        fs_label_key key, key_status;
        fs_label_key_init(&key, 3, VALUES3);
        fs_counter_add(fs_counter_family_labels_key(m->received, &key), count);    /* 1 */
        fs_histogram_observe(fs_histogram_family_labels_key(m->size, &key), size); /* 2 */
        fs_gauge_add(fs_gauge_family_labels_key(m->in_process, &key), count);      /* 3 */
        double start = mono_seconds();                                             /* 4 */
        BENCH_CLOBBER();                                                           /* the handler */
        double elapsed = mono_seconds() - start;
        /* 5: no error on this path, the exceptions family is not touched */
        fs_histogram_observe(fs_histogram_family_labels_key(m->duration, &key), elapsed); /* 6 */
        fs_gauge_sub(fs_gauge_family_labels_key(m->in_process, &key), count);             /* 7 */
        fs_label_key_extend(&key_status, &key, VALUES_ACKED[3]);
        fs_counter_add(fs_counter_family_labels_key(m->processed, &key_status), count); /* 8 */
    }
    return bench_now_ns() - t0;
}

/* The same updates through children kept from one lookup, as the real
 * middleware does with its per-(broker, handler) cache: the lookups' share. */
typedef struct mw_children {
    fs_counter *received, *processed;
    fs_histogram *size, *duration;
    fs_gauge *in_process;
} mw_children;

static uint64_t run_middleware_kept(uint64_t iters, void *ctx)
{
    const mw_children *k = ctx;
    const double count = 1, size = 100;
    uint64_t t0 = bench_now_ns();
    for (uint64_t i = 0; i < iters; i++) {
        fs_counter_add(k->received, count);
        fs_histogram_observe(k->size, size);
        fs_gauge_add(k->in_process, count);
        double start = mono_seconds();
        BENCH_CLOBBER();
        double elapsed = mono_seconds() - start;
        fs_histogram_observe(k->duration, elapsed);
        fs_gauge_sub(k->in_process, count);
        fs_counter_add(k->processed, count);
    }
    return bench_now_ns() - t0;
}

/* ---- (f) rendering 1,000 label sets ------------------------------------- */

typedef struct render_ctx {
    fs_registry *reg;
    fs_buffer buf;
} render_ctx;

static void render_setup(render_ctx *r, int n)
{
    fs_counter_family *requests;
    fs_histogram_family *sizes;
    if (fs_registry_new(&r->reg) ||
        fs_counter_family_new(r->reg, "bench_requests_total", "Requests by broker and handler.", 3,
                              LABELS3, &requests) ||
        fs_histogram_family_new(r->reg, "bench_request_size_bytes",
                                "Request sizes by broker and handler.", 3, LABELS3, size_buckets,
                                11, &sizes))
        die("render setup");
    for (int i = 0; i < n; i++) {
        label_set s;
        const char *const *values = label_set_make(&s, "handler-", i);
        fs_counter *c = fs_counter_family_labels(requests, values);
        fs_histogram *h = fs_histogram_family_labels(sizes, values);
        if (!c || !h || fs_counter_add(c, (double)(i + 1)))
            die("render setup");
        fs_histogram_observe(h, (double)(37 * i % 5000 + 1));
    }
    memset(&r->buf, 0, sizeof r->buf);
}

static uint64_t run_render(uint64_t iters, void *ctx)
{
    render_ctx *r = ctx;
    uint64_t t0 = bench_now_ns();
    for (uint64_t i = 0; i < iters; i++) {
        r->buf.len = 0; /* reuse the buffer, as a server rendering scrape after scrape would */
        if (fs_registry_render(r->reg, FS_FORMAT_TEXT, &r->buf))
            die("fs_registry_render");
        BENCH_KEEP(r->buf.len);
    }
    return bench_now_ns() - t0;
}

/* ---- at scale: creation, memory ---------------------------------------- */

#define FS_BENCH_NOINLINE __attribute__((noinline))

/* n distinct label values in random order: a bijective 64-bit mix of 0..n-1
 * (splitmix64's finaliser) in hex. 17 bytes each. */
static char *random_values(size_t n)
{
    char *v = malloc(n * 17);
    if (!v)
        die("out of memory");
    for (size_t i = 0; i < n; i++) {
        uint64_t z = i + 0x9E3779B97F4A7C15ULL;
        z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
        z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
        z ^= z >> 31;
        snprintf(v + i * 17, 17, "%016llx", (unsigned long long)z);
    }
    return v;
}

typedef struct create_ctx {
    fs_counter_family *fam;
    const char *values; /* random_values() */
} create_ctx;

/* Create `n` children by the values (what callgrind measures for create). */
static FS_BENCH_NOINLINE uint64_t run_create(uint64_t n, void *ctx)
{
    create_ctx *x = ctx;
    uint64_t t0 = bench_now_ns();
    for (uint64_t i = 0; i < n; i++) {
        const char *v[] = {"faststream", "memory", x->values + i * 17};
        if (!fs_counter_family_labels(x->fam, v))
            die("fs_counter_family_labels");
    }
    return bench_now_ns() - t0;
}

/* ns per new child: `n` random label values into a fresh family, best of `repeats`. */
static double measure_create(size_t n, int repeats, bool once)
{
    create_ctx x = {.values = random_values(n)};
    double best = 0;
    for (int r = 0; r < (once ? 1 : repeats); r++) {
        fs_registry *reg;
        if (fs_registry_new(&reg) ||
            fs_counter_family_new(reg, "bench_created_total", "Created.", 3, LABELS3, &x.fam))
            die("create setup");
        double ns = (double)run_create(n, &x) / (double)n;
        if (r == 0 || ns < best)
            best = ns;
        fs_registry_free(reg);
    }
    free((void *)x.values);
    return best;
}

static size_t heap_in_use(void)
{
    struct mallinfo2 mi = mallinfo2();
    return mi.uordblks + mi.hblkhd;
}

/* Heap bytes per child of `n` children of a 3-label counter or 12-bucket histogram family. */
static double measure_memory(bool histogram, size_t n)
{
    char *values = random_values(n);
    size_t before = heap_in_use();
    fs_registry *reg;
    fs_counter_family *cf = NULL;
    fs_histogram_family *hf = NULL;
    if (fs_registry_new(&reg) ||
        (histogram ? fs_histogram_family_new(reg, "bench_mem_bytes", "Memory.", 3, LABELS3,
                                             size_buckets, 11, &hf)
                   : fs_counter_family_new(reg, "bench_mem_total", "Memory.", 3, LABELS3, &cf)))
        die("memory setup");
    for (size_t i = 0; i < n; i++) {
        const char *v[] = {"faststream", "memory", values + i * 17};
        if (histogram)
            fs_histogram_observe(fs_histogram_family_labels(hf, v), (double)i);
        else
            fs_counter_inc(fs_counter_family_labels(cf, v));
    }
    fs_buffer b = {0};
    if (fs_registry_render(reg, FS_FORMAT_TEXT, &b))
        die("fs_registry_render");
    fs_buffer_free(&b); /* the render sorted the children in; its text is not the family's */
    size_t after = heap_in_use();
    fs_registry_free(reg);
    free(values);
    return (double)(after - before) / (double)n;
}

/* ---- main --------------------------------------------------------------- */

/* --iters N: one run of exactly N operations per workload, no timing. */
static uint64_t fixed_iters;

static double measure(const bench_config *cfg, bench_fn fn, void *ctx)
{
    if (fixed_iters) {
        fn(fixed_iters, ctx);
        return 0;
    }
    return bench_measure(cfg, fn, ctx);
}

static void report(const char *key, double value)
{
    if (!fixed_iters)
        bench_report(key, value);
}

int main(int argc, char **argv)
{
    /* --iters N is ours; the rest is bench.h's */
    for (int i = 1; i + 1 < argc; i++)
        if (!strcmp(argv[i], "--iters")) {
            fixed_iters = strtoull(argv[i + 1], NULL, 10);
            memmove(argv + i, argv + i + 2, (size_t)(argc - i - 1) * sizeof *argv);
            argc -= 2;
            break;
        }
    bench_config cfg;
    if (bench_parse_args(argc, argv, &cfg))
        return 2;
    if (fs_buckets_exponential(16, 4, 11, size_buckets))
        die("fs_buckets_exponential");

    printf("# faststream %s, min time %.3f s per run, best of %d\n", fs_version(), cfg.min_time_s,
           cfg.repeats);

    if (bench_selected(&cfg, "baseline_atomic_add"))
        report("baseline_atomic_add", measure(&cfg, run_atomic_add, NULL));
    if (bench_selected(&cfg, "baseline_clock"))
        report("baseline_clock", measure(&cfg, run_clock, NULL));

    fs_registry *reg;
    if (fs_registry_new(&reg))
        die("fs_registry_new");
    fs_counter_family *fam = counter_family(reg);
    fs_counter *kept = fs_counter_family_labels(fam, VALUES3);
    if (!kept)
        die("fs_counter_family_labels");

    if (bench_selected(&cfg, "counter_inc"))
        report("counter_inc", measure(&cfg, run_counter_inc, kept));
    if (bench_selected(&cfg, "counter_inc_2t")) {
        /* The main thread updates the child first, as (a) does in a full run:
         * both threads are then other threads than its owner. */
        fs_counter_inc(kept);
        expected_incs++;
        report("counter_inc_2t", measure(&cfg, run_counter_inc_2t, kept));
    }
    if (bench_selected(&cfg, "labels_inc"))
        report("labels_inc", measure(&cfg, run_labels_inc, fam));
    if (fs_counter_value(kept) != (double)expected_incs) {
        printf("# WARNING: the counter holds %.0f after %llu increments\n", fs_counter_value(kept),
               (unsigned long long)expected_incs);
        fprintf(stderr, "bench_metrics: the counter holds %.0f after %llu increments\n",
                fs_counter_value(kept), (unsigned long long)expected_incs);
    }

    if (bench_selected(&cfg, "hist_observe")) {
        fs_histogram_family *hf;
        if (fs_histogram_family_new(reg, "bench_latency_seconds", "Latency.", 3, LABELS3, NULL, 0,
                                    &hf))
            die("fs_histogram_family_new");
        fs_histogram *h = fs_histogram_family_labels(hf, VALUES3);
        if (!h)
            die("fs_histogram_family_labels");
        report("hist_observe", measure(&cfg, run_hist_observe, h));
    }

    if (bench_selected(&cfg, "middleware")) {
        mw_families m;
        mw_register(reg, &m);
        report("middleware", measure(&cfg, run_middleware, &m));
    }
    if (bench_selected(&cfg, "middleware_kept")) {
        mw_families m;
        mw_register(reg, &m); /* finds the families registered above, or registers them */
        mw_children k = {fs_counter_family_labels(m.received, VALUES3),
                         fs_counter_family_labels(m.processed, VALUES_ACKED),
                         fs_histogram_family_labels(m.size, VALUES3),
                         fs_histogram_family_labels(m.duration, VALUES3),
                         fs_gauge_family_labels(m.in_process, VALUES3)};
        if (!k.received || !k.processed || !k.size || !k.duration || !k.in_process)
            die("looking up the middleware children");
        report("middleware_kept", measure(&cfg, run_middleware_kept, &k));
    }

    static const struct {
        const char *key;
        int n;
    } renders[] = {{"render_1000", 1000}, {"render_10000", 10000}, {"render_100000", 100000}};
    for (size_t i = 0; i < sizeof renders / sizeof renders[0]; i++) {
        if (!bench_selected(&cfg, renders[i].key))
            continue;
        render_ctx r;
        render_setup(&r, renders[i].n);
        report(renders[i].key, measure(&cfg, run_render, &r));
        fs_buffer_free(&r.buf);
        fs_registry_free(r.reg);
    }

    static const struct {
        const char *key;
        size_t n;
    } creates[] = {{"create_10000", 10000}, {"create_100000", 100000}, {"create_1000000", 1000000}};
    for (size_t i = 0; i < sizeof creates / sizeof creates[0]; i++)
        if (bench_selected(&cfg, creates[i].key))
            report(creates[i].key, measure_create(creates[i].n, cfg.repeats, false));
    if (fixed_iters && bench_selected(&cfg, "create"))
        measure_create(fixed_iters, 1, true);
    if (bench_selected(&cfg, "mem_counter"))
        report("mem_counter", measure_memory(false, 100000));
    if (bench_selected(&cfg, "mem_histogram"))
        report("mem_histogram", measure_memory(true, 100000));

    fs_registry_free(reg);
    return 0;
}
