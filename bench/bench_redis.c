/*
 * bench/bench_redis.c - Redis broker throughput beside raw hiredis.
 *
 * For channels, lists and streams, single messages and batches of 100:
 *   publish:  ours (fs_publish / fs_publish_batch) without and with the
 *             Prometheus middleware, and raw hiredis doing the same commands
 *             (one round trip per message; a pipeline / one RPUSH per batch);
 *   consume:  a subscriber (concurrency 1, Redis' default ack policy: streams
 *             XACK each message or batch) handling N messages that wait in
 *             Redis, without and with the middleware, and raw hiredis reading
 *             (and for streams acknowledging) the same way: BLMPOP COUNT 1 or
 *             100; XREADGROUP COUNT 1 or 100 + XACK; for channels a pipelined
 *             publisher feeding the subscriber. Both sides keep one read in
 *             flight (the batch is what saves round trips); raw hiredis with 2
 *             or 4 LMPOP COUNT 100 in flight was measured 3 % and 12 % faster
 *             than with 1 on a quiet machine. Ours stops the clock in the
 *             handler of the last message.
 * The messages are 64-byte bodies in FastStream's binary format (what our
 * publisher writes; raw hiredis sends the same bytes).
 *
 * It starts its own redis-server (no persistence) on a free loopback port,
 * or uses FS_BENCH_REDIS_PORT. On a small shared machine the figures move a
 * lot with where the scheduler puts the client and the server: ours, ours +
 * middleware and raw run in turns so that they meet the same conditions. Output: "key value" lines
 * in messages per second (keys redis_<kind>_<op>_<single|batch>_<ours|prom|raw>), then a table with
 * the middleware's cost and ours/raw. Each figure is the best of
 * --repeats runs (default 3). Benchmarks print; nothing fails on a target.
 */
#include "bench.h"

#include "faststream/faststream.h"
#include "faststream/prometheus.h"
#include "faststream/redis.h"

#include <hiredis/hiredis.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <sys/wait.h>
#include <unistd.h>

#define BATCH 100

static int port;
static char url[64]; /* redis://127.0.0.1:PORT/0 */
static int repeats = 3;
static long n_single = 20000, n_batch = 200000;
static const char *side; /* --side ours|prom|raw: run only that one (profiling) */
static unsigned char payload[256];
static size_t payload_len;
static char body[65];

static pid_t server;

static void die(const char *what, const char *why)
{
    fprintf(stderr, "bench_redis: %s: %s\n", what, why);
    exit(1); /* stop_server (atexit) stops the server */
}

static redisContext *raw_connect(void)
{
    redisContext *c = redisConnect("127.0.0.1", port);
    if (!c || c->err)
        die("connect", c ? c->errstr : "out of memory");
    return c;
}

static void raw_cmd(redisContext *c, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    redisReply *r = redisvCommand(c, fmt, ap);
    va_end(ap);
    if (!r)
        die(fmt, c->errstr);
    freeReplyObject(r);
}

static void get_replies(redisContext *c, long n)
{
    for (long i = 0; i < n; i++) {
        void *r;
        if (redisGetReply(c, &r) != REDIS_OK)
            die("reply", c->errstr);
        freeReplyObject(r);
    }
}

/* The FastStream binary encoding of `body` that our publisher writes. */
static void make_payload(void)
{
    memset(body, 'x', 64);
    body[64] = 0;
    const char *hdr[][2] = {{"correlation_id", "00000000-0000-4000-8000-000000000000"}};
    size_t hlen = 4 + strlen(hdr[0][0]) + strlen(hdr[0][1]);
    unsigned char *p = payload;
    memcpy(p,
           "\x89"
           "BIN\r\n\x1a\n",
           8);
    p += 8;
    *p++ = 0, *p++ = 1;
    uint32_t hs = 18, ds = (uint32_t)(20 + hlen);
    *p++ = 0, *p++ = 0, *p++ = 0, *p++ = (unsigned char)hs;
    *p++ = (unsigned char)(ds >> 24), *p++ = (unsigned char)(ds >> 16);
    *p++ = (unsigned char)(ds >> 8), *p++ = (unsigned char)ds;
    *p++ = 0, *p++ = 1;
    for (int k = 0; k < 2; k++) {
        size_t l = strlen(hdr[0][k]);
        *p++ = (unsigned char)(l >> 8), *p++ = (unsigned char)l;
        memcpy(p, hdr[0][k], l);
        p += l;
    }
    memcpy(p, body, 64);
    p += 64;
    payload_len = (size_t)(p - payload);
}

/* ------------------------------------------------------------------------ */

typedef struct run {
    const char *kind; /* channel, list, stream */
    bool batch;
    bool prom;
} run;

static fs_redis_kind kind_of(const char *k)
{
    return k[0] == 'c' ? FS_REDIS_CHANNEL : k[0] == 'l' ? FS_REDIS_LIST : FS_REDIS_STREAM;
}

static void clear(redisContext *c)
{
    raw_cmd(c, "DEL bench");
}

/* Messages per second publishing n messages, ours. */
static double publish_ours(const run *r, long n)
{
    redisContext *c = raw_connect();
    clear(c);
    fs_registry *reg;
    fs_broker *b = bench_broker_new(url, r->prom, &reg);
    fs_redis_publish_options po = FS_REDIS_PUBLISH_OPTIONS_INIT;
    po.kind = kind_of(r->kind);
    fs_envelope env[BATCH];
    for (int i = 0; i < BATCH; i++) {
        env[i] = (fs_envelope)FS_ENVELOPE_INIT;
        env[i].body = body;
        env[i].body_len = 64;
        env[i].correlation_id = "00000000-0000-4000-8000-000000000000";
        env[i].broker_options = &po;
    }
    /* a publisher, as a service publishing to one destination keeps */
    fs_publisher *pub;
    if (fs_publisher_new(b, "bench", NULL, &pub) < 0)
        die("publisher", fs_last_error());
    uint64_t t0 = bench_now_ns();
    for (long i = 0; i < n; i += r->batch ? BATCH : 1) {
        int rc =
            r->batch ? fs_publisher_publish_batch(pub, env, BATCH) : fs_publisher_publish(pub, env);
        if (rc < 0)
            die("publish", fs_last_error());
    }
    uint64_t ns = bench_now_ns() - t0;
    fs_publisher_free(pub);
    fs_broker_free(b);
    fs_registry_free(reg);
    clear(c);
    redisFree(c);
    return (double)n * 1e9 / (double)ns;
}

static void raw_append(redisContext *c, const char *kind)
{
    if (kind[0] == 'c')
        redisAppendCommand(c, "PUBLISH bench %b", payload, payload_len);
    else if (kind[0] == 'l')
        redisAppendCommand(c, "RPUSH bench %b", payload, payload_len);
    else
        redisAppendCommand(c, "XADD bench * __data__ %b", payload, payload_len);
}

/* One RPUSH with BATCH values. */
static void raw_rpush_batch(redisContext *c)
{
    const char *argv[2 + BATCH];
    size_t len[2 + BATCH];
    argv[0] = "RPUSH";
    len[0] = 5;
    argv[1] = "bench";
    len[1] = 5;
    for (int i = 0; i < BATCH; i++) {
        argv[2 + i] = (const char *)payload;
        len[2 + i] = payload_len;
    }
    redisAppendCommandArgv(c, 2 + BATCH, argv, len);
}

static double publish_raw(const run *r, long n)
{
    redisContext *c = raw_connect();
    clear(c);
    uint64_t t0 = bench_now_ns();
    for (long i = 0; i < n; i += r->batch ? BATCH : 1) {
        if (!r->batch) {
            raw_append(c, r->kind);
            get_replies(c, 1);
        } else if (r->kind[0] == 'l') {
            raw_rpush_batch(c);
            get_replies(c, 1);
        } else {
            for (int k = 0; k < BATCH; k++)
                raw_append(c, r->kind);
            get_replies(c, BATCH);
        }
    }
    uint64_t ns = bench_now_ns() - t0;
    clear(c);
    redisFree(c);
    return (double)n * 1e9 / (double)ns;
}

/* Fill the list or stream with n messages. */
static void fill(redisContext *c, const char *kind, long n)
{
    for (long i = 0; i < n; i += BATCH) {
        if (kind[0] == 'l')
            raw_rpush_batch(c);
        else
            for (int k = 0; k < BATCH; k++)
                raw_append(c, kind);
        get_replies(c, kind[0] == 'l' ? 1 : BATCH);
    }
    if (kind[0] == 's')
        raw_cmd(c, "XGROUP CREATE bench g 0");
}

/* What the handler counts: the clock stops when the last message is handled,
 * not when the polling fs_subscriber_wait_handled notices it (up to 1 ms later). */
typedef struct tally {
    long target;
    _Atomic long handled;
    _Atomic uint64_t done_ns;
    pthread_mutex_t mu; /* the main thread sleeps until the last message: no polling */
    pthread_cond_t cv;
} tally;

static fs_outcome handler(fs_message *m, void *user)
{
    tally *t = user;
    const unsigned char *p = fs_message_body(fs_message_at(m, 0));
    if (p)
        BENCH_KEEP(p[0]);
    long n = (long)fs_message_count(m);
    if (atomic_fetch_add_explicit(&t->handled, n, memory_order_relaxed) + n >= t->target &&
        !atomic_load_explicit(&t->done_ns, memory_order_relaxed)) {
        atomic_store_explicit(&t->done_ns, bench_now_ns(), memory_order_relaxed);
        pthread_mutex_lock(&t->mu);
        pthread_cond_broadcast(&t->cv);
        pthread_mutex_unlock(&t->mu);
    }
    return FS_OUTCOME_OK;
}

typedef struct feeder {
    redisContext *c;
    long n;
    _Atomic bool stop;
} feeder;

/* Channels keep nothing: a pipelined publisher feeds the subscriber while it is timed. */
static void *feed(void *arg)
{
    feeder *f = arg;
    for (long i = 0; i < f->n && !atomic_load(&f->stop); i += BATCH) {
        for (int k = 0; k < BATCH; k++)
            raw_append(f->c, "channel");
        get_replies(f->c, BATCH);
    }
    return NULL;
}

static bool channel_subscribed(redisContext *c)
{
    redisReply *r = redisCommand(c, "PUBSUB NUMSUB bench");
    bool ok = r && r->type == REDIS_REPLY_ARRAY && r->elements == 2 && r->element[1]->integer > 0;
    if (r)
        freeReplyObject(r);
    return ok;
}

static double consume_ours(const run *r, long n)
{
    redisContext *c = raw_connect();
    clear(c);
    bool channel = r->kind[0] == 'c';
    if (!channel)
        fill(c, r->kind, n);
    fs_registry *reg;
    fs_broker *b = bench_broker_new(url, r->prom, &reg);
    fs_redis_subscriber_options ro = FS_REDIS_SUBSCRIBER_OPTIONS_INIT;
    ro.kind = kind_of(r->kind);
    if (ro.kind == FS_REDIS_STREAM)
        ro.group = "g";
    fs_subscriber_options so = FS_SUBSCRIBER_OPTIONS_INIT;
    so.broker_options = &ro;
    so.batch_size = r->batch ? BATCH : 0;
    fs_subscriber *sub;
    tally t = {n, 0, 0, PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER};
    if (fs_subscribe(b, "bench", handler, &t, &so, &sub) < 0)
        die("subscribe", fs_last_error());
    feeder f = {raw_connect(), n, false};
    pthread_t th;
    uint64_t t0 = bench_now_ns();
    if (fs_broker_start(b) < 0)
        die("start", fs_last_error());
    if (channel) {
        while (!channel_subscribed(c))
            usleep(1000);
        t0 = bench_now_ns();
        pthread_create(&th, NULL, feed, &f);
    }
    struct timespec until;
    clock_gettime(CLOCK_REALTIME, &until);
    until.tv_sec += 120;
    pthread_mutex_lock(&t.mu);
    while (!atomic_load_explicit(&t.done_ns, memory_order_relaxed) &&
           pthread_cond_timedwait(&t.cv, &t.mu, &until) == 0) {
    }
    pthread_mutex_unlock(&t.mu);
    if (fs_subscriber_wait_handled(sub, (uint64_t)n, 1000) < 0)
        die("consume", "not every message arrived in 120 s");
    uint64_t done = atomic_load_explicit(&t.done_ns, memory_order_relaxed);
    uint64_t ns = (done ? done : bench_now_ns()) - t0;
    if (channel) {
        atomic_store(&f.stop, true);
        pthread_join(th, NULL);
    }
    redisFree(f.c);
    fs_broker_free(b);
    fs_registry_free(reg);
    clear(c);
    redisFree(c);
    return (double)n * 1e9 / (double)ns;
}

static double consume_raw(const run *r, long n)
{
    redisContext *c = raw_connect();
    clear(c);
    int count = r->batch ? BATCH : 1;
    long got = 0;
    uint64_t t0;
    if (r->kind[0] == 'c') {
        redisContext *s = raw_connect();
        redisReply *rep = redisCommand(s, "SUBSCRIBE bench");
        freeReplyObject(rep);
        feeder f = {raw_connect(), n, false};
        pthread_t th;
        t0 = bench_now_ns();
        pthread_create(&th, NULL, feed, &f);
        while (got < n) {
            void *m;
            if (redisGetReply(s, &m) != REDIS_OK)
                die("subscriber", s->errstr);
            BENCH_KEEP(((redisReply *)m)->elements);
            freeReplyObject(m);
            got++;
        }
        uint64_t ns = bench_now_ns() - t0;
        pthread_join(th, NULL);
        redisFree(f.c);
        redisFree(s);
        redisFree(c);
        return (double)n * 1e9 / (double)ns;
    }
    fill(c, r->kind, n);
    t0 = bench_now_ns();
    while (got < n) {
        redisReply *rep;
        if (r->kind[0] == 'l') {
            rep = redisCommand(c, "BLMPOP 1 1 bench LEFT COUNT %d", count);
            if (!rep || rep->type != REDIS_REPLY_ARRAY)
                die("BLMPOP", c->errstr);
            got += (long)rep->element[1]->elements;
            freeReplyObject(rep);
            continue;
        }
        rep = redisCommand(c, "XREADGROUP GROUP g c COUNT %d BLOCK 1000 STREAMS bench >", count);
        if (!rep || rep->type != REDIS_REPLY_ARRAY)
            die("XREADGROUP", c->errstr);
        redisReply *e = rep->element[0]->element[1];
        const char *argv[3 + BATCH];
        argv[0] = "XACK";
        argv[1] = "bench";
        argv[2] = "g";
        for (size_t i = 0; i < e->elements; i++)
            argv[3 + i] = e->element[i]->element[0]->str;
        redisReply *ack = redisCommandArgv(c, (int)(3 + e->elements), argv, NULL);
        freeReplyObject(ack);
        got += (long)e->elements;
        freeReplyObject(rep);
    }
    uint64_t ns = bench_now_ns() - t0;
    clear(c);
    redisFree(c);
    return (double)n * 1e9 / (double)ns;
}

/* ------------------------------------------------------------------------ */

/* The best of `repeats` runs of each of ours, ours + middleware and raw, in turns. */
BENCH_DEFINE_BEST3(run)

/* The benchmark's redis-server goes with the process, however it exits. */
static void stop_server(void)
{
    if (server > 0) {
        kill(server, SIGTERM);
        waitpid(server, NULL, 0);
        server = 0;
    }
}

static pid_t start_server(void)
{
    port = bench_free_port();
    if (port < 0)
        die("port", "no free port");
    char p[16];
    snprintf(p, sizeof p, "%d", port);
    char *argv[] = {"redis-server", "--bind",    "127.0.0.1",    "--port", p,
                    "--save",       "",          "--appendonly", "no",     "--dir",
                    "/tmp",         "--logfile", "/dev/null",    NULL};
    pid_t pid = bench_spawn_server(argv, port);
    if (pid < 0)
        die("redis-server", "did not start");
    atexit(stop_server);
    return pid;
}

int main(int argc, char **argv)
{
    const char *only = NULL, *only_case = NULL;
    double scale = 1;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--repeats") && i + 1 < argc)
            repeats = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--scale") && i + 1 < argc)
            scale = atof(argv[++i]);
        else if (!strcmp(argv[i], "--only") && i + 1 < argc)
            only = argv[++i];
        else if (!strcmp(argv[i], "--case") && i + 1 < argc)
            only_case = argv[++i];
        else if (!strcmp(argv[i], "--side") && i + 1 < argc)
            side = argv[++i];
        else {
            fprintf(stderr,
                    "usage: %s [--repeats N] [--scale X] [--only channel,list,stream]\n"
                    "       [--case \"list consume batch\"] [--side ours|prom|raw]\n",
                    argv[0]);
            return 2;
        }
    }
    if (repeats < 1)
        repeats = 1;
    n_single = (long)(n_single * scale) / BATCH * BATCH;
    n_batch = (long)(n_batch * scale) / BATCH * BATCH;
    if (n_single < BATCH)
        n_single = BATCH;
    if (n_batch < BATCH)
        n_batch = BATCH;
    fs_set_log_level(FS_LOG_WARN);
    signal(SIGPIPE, SIG_IGN);
    fs_redis_register(); /* only enums of the library are used otherwise */
    make_payload();
    const char *env = getenv("FS_BENCH_REDIS_PORT");
    if (env && *env)
        port = atoi(env);
    else
        server = start_server();
    snprintf(url, sizeof url, "redis://127.0.0.1:%d/0", port);
    printf("# redis benchmark on 127.0.0.1:%d, %zu-byte values, batches of %d, best of %d\n", port,
           payload_len, BATCH, repeats);

    static const char *kinds[] = {"channel", "list", "stream"};
    printf("#\n# %-26s %12s %12s %12s %9s %9s\n", "msg/s", "ours", "+prometheus", "raw hiredis",
           "mw cost", "ours/raw");
    for (int k = 0; k < 3; k++) {
        if (only && !strstr(only, kinds[k]))
            continue;
        for (int op = 0; op < 2; op++) {
            for (int batch = 0; batch < 2; batch++) {
                char label[64];
                const char *opn = op ? "consume" : "publish", *bn = batch ? "batch" : "single";
                snprintf(label, sizeof label, "%s %s %s", kinds[k], opn, bn);
                if (only_case && strcmp(only_case, label) != 0)
                    continue;
                run r = {kinds[k], batch, false};
                long n = batch ? n_batch : n_single;
                double (*ours)(const run *, long) = op ? consume_ours : publish_ours;
                double (*raw)(const run *, long) = op ? consume_raw : publish_raw;
                double f[3];
                best3(ours, raw, r, n, f);
                double plain = f[0], prom = f[1], rawv = f[2];
                char key[96];
                snprintf(key, sizeof key, "redis_%s_%s_%s_ours", kinds[k], opn, bn);
                bench_report(key, plain);
                snprintf(key, sizeof key, "redis_%s_%s_%s_prom", kinds[k], opn, bn);
                bench_report(key, prom);
                snprintf(key, sizeof key, "redis_%s_%s_%s_raw", kinds[k], opn, bn);
                bench_report(key, rawv);
                printf("# %-26s %12.0f %12.0f %12.0f %8.1f%% %8.0f%%\n", label, plain, prom, rawv,
                       100.0 * (plain - prom) / plain, 100.0 * plain / rawv);
            }
        }
    }
    printf("# mw cost: throughput lost to the Prometheus middleware (target < 3 %%);\n"
           "# ours/raw: ours without middleware over raw hiredis doing the same commands\n"
           "# (target >= 80 %% for batch list/stream consumption)\n");
    stop_server();
    return 0;
}
