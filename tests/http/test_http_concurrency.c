/*
 * Scrapes from several threads while other threads update metrics and add
 * routes; a scrape stuck in a slow collector blocks neither updates nor other
 * scrapes. Runs under ThreadSanitizer in CI (label "concurrency").
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "faststream/http.h"
#include "support/http_client.h"

#define HOST "127.0.0.1"
#define UPDATERS 2
#define MIN_UPDATES 1000
#define SCRAPERS 4
#define SCRAPES 25

struct world {
    fs_registry *reg;
    fs_counter *ops;
    fs_counter_family *by_worker;
    fs_histogram *lat;
    fs_gauge *busy;
    fs_http_server *srv;
    uint16_t port;
    atomic_bool stop;
    atomic_int failures;
    char failure[512];
    char *paths[SCRAPES];
    pthread_mutex_t failure_lock;
};

static void record_failure(struct world *w, const char *fmt, ...)
{
    pthread_mutex_lock(&w->failure_lock);
    if (atomic_fetch_add(&w->failures, 1) == 0) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(w->failure, sizeof w->failure, fmt, ap);
        va_end(ap);
    }
    pthread_mutex_unlock(&w->failure_lock);
}

/* The value of the sample line that starts with `series` + ' ', or NAN. */
static double sample(const char *body, const char *series)
{
    size_t n = strlen(series);
    for (const char *p = body; p && *p; p = strchr(p, '\n'), p = p ? p + 1 : NULL)
        if (strncmp(p, series, n) == 0 && p[n] == ' ')
            return strtod(p + n + 1, NULL);
    return __builtin_nan("");
}

static int world_init(struct world *w, unsigned threads)
{
    memset(w, 0, sizeof *w);
    pthread_mutex_init(&w->failure_lock, NULL);
    static const char *const labels[] = {"worker"};
    const double buckets[] = {1, 2, 3};
    if (fs_registry_new(&w->reg) || fs_counter_new(w->reg, "ops_total", "Operations", &w->ops) ||
        fs_counter_family_new(w->reg, "ops_by_worker_total", "Operations by worker", 1, labels,
                              &w->by_worker) ||
        fs_histogram_new(w->reg, "lat_seconds", "Latency", buckets, 3, &w->lat) ||
        fs_gauge_new(w->reg, "busy", "Busy workers", &w->busy))
        return -1;
    fs_http_options o = FS_HTTP_OPTIONS_INIT;
    o.port = FS_HTTP_PORT_ANY;
    o.registry = w->reg;
    o.threads = threads;
    if (fs_http_server_new(&o, &w->srv) || fs_http_server_start(w->srv))
        return -1;
    w->port = fs_http_server_port(w->srv);
    return 0;
}

static void world_free(struct world *w)
{
    fs_http_server_free(w->srv);
    fs_registry_free(w->reg);
    for (int i = 0; i < SCRAPES; i++)
        free(w->paths[i]);
    pthread_mutex_destroy(&w->failure_lock);
}

struct updater {
    struct world *w;
    int id;
    long done; /* iterations made, read after join */
    long le1;  /* observations <= 1 */
};

static void *update(void *arg)
{
    struct updater *u = arg;
    char name[16];
    snprintf(name, sizeof name, "w%d", u->id);
    const char *values[] = {name};
    /* Until every scraper is done, so updates overlap every scrape. */
    long i;
    for (i = 0; i < MIN_UPDATES || !atomic_load_explicit(&u->w->stop, memory_order_relaxed); i++) {
        fs_gauge_inc(u->w->busy);
        fs_counter_inc(u->w->ops);
        fs_counter_inc(fs_counter_family_labels(u->w->by_worker, values));
        double v = (double)(i % 4) + 0.5;
        fs_histogram_observe(u->w->lat, v);
        u->le1 += v <= 1;
        fs_gauge_dec(u->w->busy);
    }
    u->done = i;
    return NULL;
}

static void route(const fs_http_request *req, fs_http_response *resp, void *user)
{
    (void)req;
    resp->body = user;
    resp->body_len = strlen(user);
}

struct scraper {
    struct world *w;
    int id;
};

static void *scrape(void *arg)
{
    struct scraper *s = arg;
    struct world *w = s->w;
    double last = 0;
    static const char *const variants[] = {
        NULL, "Accept-Encoding: gzip\r\n",
        "Accept: application/openmetrics-text; version=1.0.0\r\nAccept-Encoding: gzip\r\n",
        "Accept: application/openmetrics-text; version=1.0.0\r\n"};
    for (int i = 0; i < SCRAPES; i++) {
        const char *headers = variants[(i + s->id) % 4];
        test_http_response r;
        if (test_http_request(HOST, w->port, "GET", "/metrics", headers, &r) != 0) {
            record_failure(w, "scraper %d: %s", s->id, test_http_error());
            return NULL;
        }
        char *body = r.body;
        size_t len;
        char *plain = NULL;
        if (headers && strstr(headers, "gzip")) {
            plain = test_gunzip(r.body, r.body_len, &len);
            body = plain;
        }
        if (r.status != 200 || !body) {
            record_failure(w, "scraper %d: status %d, body %s", s->id, r.status,
                           body ? "ok" : "not gzip");
        } else {
            double count = sample(body, "lat_seconds_count");
            double inf = sample(body, "lat_seconds_bucket{le=\"+Inf\"}");
            double ops = sample(body, "ops_total");
            if (!(count == inf))
                record_failure(w, "scraper %d: +Inf bucket %g != _count %g", s->id, inf, count);
            if (!(ops >= last))
                record_failure(w, "scraper %d: ops_total went from %g to %g", s->id, last, ops);
            last = ops;
        }
        free(plain);
        test_http_response_free(&r);

        /* Scraper 0 also grows the route table while the others read it. */
        if (s->id == 0) {
            char *path = malloc(32);
            snprintf(path, 32, "/route%d", i);
            if (fs_http_server_add_route(w->srv, path, route, path + 1) != FS_OK)
                record_failure(w, "add_route %s: %s", path, fs_last_error());
            if (test_http_request(HOST, w->port, "GET", path, NULL, &r) != 0 || r.status != 200 ||
                strcmp(r.body, path + 1) != 0)
                record_failure(w, "GET %s right after adding it failed", path);
            test_http_response_free(&r);
            w->paths[i] = path; /* the route uses it until the server is freed */
        }
    }
    return NULL;
}

static void test_concurrent_scrapes_and_updates(void **state)
{
    (void)state;
    struct world w;
    assert_int_equal(world_init(&w, 2), 0);
    pthread_t up[UPDATERS], sc[SCRAPERS];
    struct updater u[UPDATERS];
    struct scraper s[SCRAPERS];
    for (int i = 0; i < SCRAPERS; i++) {
        s[i] = (struct scraper){&w, i};
        assert_int_equal(pthread_create(&sc[i], NULL, scrape, &s[i]), 0);
    }
    for (int i = 0; i < UPDATERS; i++) {
        u[i] = (struct updater){&w, i, 0, 0};
        assert_int_equal(pthread_create(&up[i], NULL, update, &u[i]), 0);
    }
    for (int i = 0; i < SCRAPERS; i++)
        pthread_join(sc[i], NULL);
    atomic_store(&w.stop, true);
    long total = 0, le1 = 0;
    for (int i = 0; i < UPDATERS; i++) {
        pthread_join(up[i], NULL);
        total += u[i].done;
        le1 += u[i].le1;
    }
    if (atomic_load(&w.failures))
        fail_msg("%d failures; first: %s", atomic_load(&w.failures), w.failure);

    /* Every update is visible in the final scrape. */
    test_http_response r;
    assert_int_equal(test_http_request(HOST, w.port, "GET", "/metrics", NULL, &r), 0);
    assert_int_equal(r.status, 200);
    assert_true(sample(r.body, "ops_total") == (double)total);
    assert_true(sample(r.body, "ops_by_worker_total{worker=\"w0\"}") == (double)u[0].done);
    assert_true(sample(r.body, "ops_by_worker_total{worker=\"w1\"}") == (double)u[1].done);
    assert_true(sample(r.body, "lat_seconds_count") == (double)total);
    assert_true(sample(r.body, "lat_seconds_bucket{le=\"1\"}") == (double)le1 ||
                sample(r.body, "lat_seconds_bucket{le=\"1.0\"}") == (double)le1);
    assert_true(sample(r.body, "busy") == 0);
    test_http_response_free(&r);
    world_free(&w);
}

/* A collector that holds its first scrape until released. */
struct gate {
    pthread_mutex_t lock;
    pthread_cond_t cond;
    bool entered, released;
    atomic_int calls;
};

static int slow_collector(fs_collect_ctx *ctx, void *user)
{
    struct gate *g = user;
    if (atomic_fetch_add(&g->calls, 1) == 0) {
        pthread_mutex_lock(&g->lock);
        g->entered = true;
        pthread_cond_broadcast(&g->cond);
        while (!g->released)
            pthread_cond_wait(&g->cond, &g->lock);
        pthread_mutex_unlock(&g->lock);
    }
    if (fs_collect_family(ctx, "slow_value", "A value from a slow source", FS_METRIC_GAUGE))
        return -1;
    return fs_collect_sample(ctx, 0, NULL, NULL, 1);
}

struct blocked_scrape {
    struct world *w;
    int status;
    char body_has_slow;
};

static void *scrape_once(void *arg)
{
    struct blocked_scrape *b = arg;
    test_http_response r;
    if (test_http_request(HOST, b->w->port, "GET", "/metrics", NULL, &r) == 0) {
        b->status = r.status;
        b->body_has_slow = strstr(r.body, "slow_value 1") != NULL;
        test_http_response_free(&r);
    }
    return NULL;
}

static void *updates_during_scrape(void *arg)
{
    struct world *w = arg;
    const char *values[] = {"during-scrape"};
    for (int i = 0; i < 1000; i++) {
        fs_counter_inc(w->ops);
        fs_histogram_observe(w->lat, 0.5);
        fs_gauge_set(w->busy, i);
        fs_counter_inc(fs_counter_family_labels(w->by_worker, values));
    }
    return NULL;
}

static int timed_join(pthread_t t, int seconds)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    ts.tv_sec += seconds;
    return pthread_timedjoin_np(t, NULL, &ts);
}

static void test_slow_scrape_blocks_nothing(void **state)
{
    (void)state;
    struct world w;
    assert_int_equal(world_init(&w, 2), 0);
    struct gate g = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, false, false, 0};
    assert_int_equal(fs_registry_add_collector(w.reg, "slow", slow_collector, &g, NULL), FS_OK);

    struct blocked_scrape first = {&w, 0, 0};
    pthread_t t1;
    assert_int_equal(pthread_create(&t1, NULL, scrape_once, &first), 0);
    pthread_mutex_lock(&g.lock);
    while (!g.entered)
        pthread_cond_wait(&g.cond, &g.lock);
    pthread_mutex_unlock(&g.lock);

    /* The first scrape is stuck in the collector. Updates go on... */
    pthread_t t2;
    assert_int_equal(pthread_create(&t2, NULL, updates_during_scrape, &w), 0);
    int rc = timed_join(t2, 60);
    /* ...and so does a second scrape, on the server's other thread. */
    struct blocked_scrape second = {&w, 0, 0};
    pthread_t t3;
    assert_int_equal(pthread_create(&t3, NULL, scrape_once, &second), 0);
    int rc3 = timed_join(t3, 60);

    pthread_mutex_lock(&g.lock);
    g.released = true;
    pthread_cond_broadcast(&g.cond);
    pthread_mutex_unlock(&g.lock);
    pthread_join(t1, NULL);
    if (rc != 0) {
        pthread_join(t2, NULL);
        fail_msg("metric updates waited for a scrape (%s)", strerror(rc));
    }
    if (rc3 != 0) {
        pthread_join(t3, NULL);
        fail_msg("a second scrape waited for the first (%s)", strerror(rc3));
    }
    assert_int_equal(first.status, 200);
    assert_true(first.body_has_slow);
    assert_int_equal(second.status, 200);
    assert_true(second.body_has_slow);
    assert_true(fs_counter_value(w.ops) == 1000);
    world_free(&w);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_concurrent_scrapes_and_updates),
        cmocka_unit_test(test_slow_scrape_blocks_nothing),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
