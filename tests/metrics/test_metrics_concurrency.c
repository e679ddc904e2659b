/*
 * Several threads hammer one counter, one gauge, one histogram and labelled
 * lookups (creating the same children concurrently) while another thread
 * scrapes. Exact totals afterwards; every scrape self-consistent. Also runs
 * under ThreadSanitizer (CTest label "concurrency").
 */
#include "metrics_test_util.h"

#include <pthread.h>
#include <stdatomic.h>

enum { THREADS = 4, ITERS = 160000, KEYS = 64 };

struct shared {
    fs_registry *reg;
    fs_counter *counter;
    fs_gauge *gauge;
    fs_histogram *hist;
    fs_counter_family *fam;
    fs_gauge_family *churn;
    fs_histogram *ones;        /* observes 1 only: a whole scrape has _sum == _count */
    fs_counter_family *capped; /* a series limit far below the label sets used */
    atomic_int next_id;
    pthread_barrier_t start;
    atomic_bool stop;
    atomic_int scrapes;
    atomic_int scrapes_during_updates;
    atomic_int workers_done;
    atomic_int bad_scrapes;
    char bad[512];
};

static void *worker(void *arg)
{
    struct shared *s = arg;
    char key[KEYS][8], mine[KEYS][16];
    int id = atomic_fetch_add(&s->next_id, 1);
    for (int k = 0; k < KEYS; k++) {
        snprintf(key[k], sizeof key[k], "k%d", k);
        snprintf(mine[k], sizeof mine[k], "t%d-%d", id, k);
    }
    pthread_barrier_wait(&s->start);
    for (int i = 0; i < ITERS; i++) {
        fs_counter_inc(s->counter);
        fs_gauge_inc(s->gauge);
        fs_histogram_observe(s->hist, i % 7);
        const char *v[] = {"app", "memory", key[i % KEYS]};
        fs_counter_inc(fs_counter_family_labels(s->fam, v));
        if (i % 16 == 0) {
            const char *c[] = {key[(i / 16) % KEYS]};
            fs_gauge_inc(fs_gauge_family_labels(s->churn, c));
        }
        fs_histogram_observe(s->ones, 1);
        if (i % 4 == 0) {
            const char *c[] = {mine[(i / 4) % KEYS]};
            fs_counter_inc(fs_counter_family_labels(s->capped, c));
        }
        fs_gauge_dec(s->gauge);
    }
    atomic_fetch_add(&s->workers_done, 1);
    return NULL;
}

/* Removes and clears children of the churn family while workers use it. */
static void *churner(void *arg)
{
    struct shared *s = arg;
    pthread_barrier_wait(&s->start);
    for (int i = 0; !atomic_load(&s->stop); i++) {
        char k[8];
        snprintf(k, sizeof k, "k%d", i % KEYS);
        const char *v[] = {k};
        fs_gauge_family_remove(s->churn, v);
        if (i % 50 == 0)
            fs_gauge_family_clear(s->churn);
    }
    return NULL;
}

static void *scraper(void *arg)
{
    struct shared *s = arg;
    pthread_barrier_wait(&s->start);
    double last_counter = 0;
    while (!atomic_load(&s->stop)) {
        bool updating = atomic_load(&s->workers_done) < THREADS;
        fs_buffer b = {0};
        if (fs_registry_render(s->reg, FS_FORMAT_OPENMETRICS, &b) != FS_OK) {
            atomic_fetch_add(&s->bad_scrapes, 1);
            break;
        }
        const char *inf = find_series(b.data, "conc_hist_bucket{le=\"+Inf\"}");
        const char *cnt = find_series(b.data, "conc_hist_count");
        const char *ctr = find_series(b.data, "conc_total");
        double vinf = inf ? strtod(inf + strlen("conc_hist_bucket{le=\"+Inf\"} "), NULL) : -1;
        double vcnt = cnt ? strtod(cnt + strlen("conc_hist_count "), NULL) : -2;
        double vctr = ctr ? strtod(ctr + strlen("conc_total "), NULL) : -1;
        const char *osum = find_series(b.data, "conc_ones_sum");
        const char *ocnt = find_series(b.data, "conc_ones_count");
        double vosum = osum ? strtod(osum + strlen("conc_ones_sum "), NULL) : -1;
        double vocnt = ocnt ? strtod(ocnt + strlen("conc_ones_count "), NULL) : -2;
        if (vinf != vcnt || vctr < last_counter || vosum != vocnt) {
            if (atomic_fetch_add(&s->bad_scrapes, 1) == 0)
                snprintf(s->bad, sizeof s->bad,
                         "+Inf %g, count %g, counter %g after %g, ones: sum %g count %g", vinf,
                         vcnt, vctr, last_counter, vosum, vocnt);
        }
        last_counter = vctr;
        atomic_fetch_add(&s->scrapes, 1);
        if (updating && atomic_load(&s->workers_done) < THREADS)
            atomic_fetch_add(&s->scrapes_during_updates, 1);
        fs_buffer_free(&b);
    }
    return NULL;
}

static void test_hammer(void **state)
{
    (void)state;
    struct shared s = {0};
    assert_int_equal(fs_registry_new(&s.reg), FS_OK);
    assert_int_equal(fs_counter_new(s.reg, "conc", "C.", &s.counter), FS_OK);
    assert_int_equal(fs_gauge_new(s.reg, "conc_gauge", "G.", &s.gauge), FS_OK);
    const double b[] = {0.5, 1.5, 2.5, 3.5, 4.5, 5.5};
    assert_int_equal(fs_histogram_new(s.reg, "conc_hist", "H.", b, 6, &s.hist), FS_OK);
    const char *ln[] = {"app_name", "broker", "handler"};
    assert_int_equal(fs_counter_family_new(s.reg, "conc_labelled", "L.", 3, ln, &s.fam), FS_OK);
    const char *cn[] = {"k"};
    assert_int_equal(fs_gauge_family_new(s.reg, "conc_churn", "C.", 1, cn, &s.churn), FS_OK);
    const double one[] = {0.5, 2};
    assert_int_equal(fs_histogram_new(s.reg, "conc_ones", "O.", one, 2, &s.ones), FS_OK);
    assert_int_equal(fs_counter_family_new(s.reg, "conc_capped", "C.", 1, cn, &s.capped), FS_OK);
    assert_int_equal(fs_counter_family_set_series_limit(s.capped, 16), FS_OK);
    pthread_barrier_init(&s.start, NULL, THREADS + 2);
    pthread_t w[THREADS], sc, ch;
    for (int i = 0; i < THREADS; i++)
        pthread_create(&w[i], NULL, worker, &s);
    pthread_create(&sc, NULL, scraper, &s);
    pthread_create(&ch, NULL, churner, &s);
    for (int i = 0; i < THREADS; i++)
        pthread_join(w[i], NULL);
    atomic_store(&s.stop, true);
    pthread_join(sc, NULL);
    pthread_join(ch, NULL);
    pthread_barrier_destroy(&s.start);

    if (atomic_load(&s.bad_scrapes))
        fail_msg("%d inconsistent scrapes, first: %s", atomic_load(&s.bad_scrapes), s.bad);
    /* scrapes ran while the workers updated (the point of the test) */
    assert_true(atomic_load(&s.scrapes_during_updates) > 0);
    assert_true(fs_counter_value(s.counter) == (double)THREADS * ITERS);
    assert_true(fs_gauge_value(s.gauge) == 0);
    assert_int_equal(fs_histogram_count(s.hist), (uint64_t)THREADS * ITERS);
    double sum = 0;
    for (int i = 0; i < ITERS; i++)
        sum += i % 7;
    assert_true(fs_histogram_sum(s.hist) == THREADS * sum);
    char *t = render(s.reg, FS_FORMAT_TEXT);
    for (int k = 0; k < KEYS; k++) {
        char series[128];
        snprintf(series, sizeof series,
                 "conc_labelled_total{app_name=\"app\",broker=\"memory\",handler=\"k%d\"}", k);
        if (sample_value(t, series) != (double)THREADS * ITERS / KEYS)
            fail_msg("%s = %g", series, sample_value(t, series));
    }
    /* per-bucket: i % 7 == 0..6, the last (6) above every bound */
    assert_true(sample_value(t, "conc_hist_bucket{le=\"0.5\"}") ==
                (double)THREADS * ((ITERS + 6) / 7));
    assert_true(sample_value(t, "conc_hist_bucket{le=\"+Inf\"}") == (double)THREADS * ITERS);
    assert_true(sample_value(t, "conc_ones_sum") == (double)THREADS * ITERS);
    /* the capped family: 16 label sets and the overflow child hold every increment */
    double capped = 0;
    int series = 0;
    for (const char *p = strstr(t, "\nconc_capped_total{"); p;
         p = strstr(p + 1, "\nconc_capped_total{")) {
        capped += strtod(strchr(p, '}') + 2, NULL);
        series++;
    }
    assert_int_equal(series, 17);
    assert_true(capped == (double)THREADS * ITERS / 4);
    double over = sample_value(t, "conc_capped_total{k=\"__overflow__\"}");
    assert_true(over ==
                sample_value(t, "metrics_series_overflow_updates_total{metric=\"conc_capped\"}"));
    assert_true(over > 0);
    free(t);
    fs_registry_free(s.reg);
}

struct many {
    fs_counter *counter;
    fs_histogram *hist;
    pthread_barrier_t *start;
};

static void *many_worker(void *arg)
{
    struct many *m = arg;
    pthread_barrier_wait(m->start);
    for (int i = 0; i < 20000; i++) {
        fs_counter_inc(m->counter);
        fs_histogram_observe(m->hist, 1);
    }
    fs_counter_add(m->counter, 0.5);
    return NULL;
}

/* More threads than exclusive shards (some share the atomic one), in rounds,
 * so shards are handed back at thread exit and reused: nothing is lost. */
static void test_more_threads_than_shards(void **state)
{
    (void)state;
    enum { N = 12, ROUNDS = 3 };
    fs_registry *reg;
    assert_int_equal(fs_registry_new(&reg), FS_OK);
    struct many m;
    pthread_barrier_t start;
    m.start = &start;
    assert_int_equal(fs_counter_new(reg, "many", "M.", &m.counter), FS_OK);
    assert_int_equal(fs_histogram_new(reg, "many_h", "H.", NULL, 0, &m.hist), FS_OK);
    for (int r = 0; r < ROUNDS; r++) {
        pthread_barrier_init(&start, NULL, N);
        pthread_t t[N];
        for (int i = 0; i < N; i++)
            pthread_create(&t[i], NULL, many_worker, &m);
        for (int i = 0; i < N; i++)
            pthread_join(t[i], NULL);
        pthread_barrier_destroy(&start);
    }
    assert_true(fs_counter_value(m.counter) == ROUNDS * N * 20000.5);
    assert_int_equal(fs_histogram_count(m.hist), ROUNDS * N * 20000);
    assert_true(fs_histogram_sum(m.hist) == ROUNDS * N * 20000.0);
    fs_registry_free(reg);
}

/* Creators and scrapers at once: snapshots sort new children while others
 * are created; in the end every label set is there once, in order. */
enum { CREATORS = 2, PER_CREATOR = 5000 };

struct creating {
    fs_registry *reg;
    fs_counter_family *fam;
    atomic_int next;
    atomic_bool done;
    atomic_int renders;
};

static void *creator(void *arg)
{
    struct creating *x = arg;
    int id = atomic_fetch_add(&x->next, 1);
    for (int i = 0; i < PER_CREATOR; i++) {
        char v[32];
        snprintf(v, sizeof v, "%05d-%d", (i * 7919) % PER_CREATOR, id);
        const char *vals[] = {v};
        fs_counter_inc(fs_counter_family_labels(x->fam, vals));
    }
    return NULL;
}

static void *render_loop(void *arg)
{
    struct creating *x = arg;
    fs_buffer b = {0};
    while (!atomic_load(&x->done)) {
        b.len = 0;
        if (fs_registry_render(x->reg, FS_FORMAT_TEXT, &b) == FS_OK)
            atomic_fetch_add(&x->renders, 1);
    }
    fs_buffer_free(&b);
    return NULL;
}

static void test_create_while_scraping(void **state)
{
    (void)state;
    struct creating x = {0};
    assert_int_equal(fs_registry_new(&x.reg), FS_OK);
    const char *ln[] = {"k"};
    assert_int_equal(fs_counter_family_new(x.reg, "made_total", "M.", 1, ln, &x.fam), FS_OK);
    pthread_t c[CREATORS], r[2];
    for (int i = 0; i < 2; i++)
        pthread_create(&r[i], NULL, render_loop, &x);
    for (int i = 0; i < CREATORS; i++)
        pthread_create(&c[i], NULL, creator, &x);
    for (int i = 0; i < CREATORS; i++)
        pthread_join(c[i], NULL);
    atomic_store(&x.done, true);
    for (int i = 0; i < 2; i++)
        pthread_join(r[i], NULL);
    assert_true(atomic_load(&x.renders) > 0);
    char *t = render(x.reg, FS_FORMAT_TEXT);
    int n = 0;
    const char *prev = NULL;
    for (const char *p = strstr(t, "\nmade_total{"); p; p = strstr(p + 1, "\nmade_total{")) {
        if (prev && strncmp(prev, p, (size_t)(strchr(p, '}') - p)) >= 0)
            fail_msg("series out of order or twice: %.40s after %.40s", p + 1, prev + 1);
        assert_true(strtod(strchr(p, '}') + 2, NULL) == 1);
        prev = p;
        n++;
    }
    assert_int_equal(n, CREATORS * PER_CREATOR);
    free(t);
    fs_registry_free(x.reg);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_hammer),
        cmocka_unit_test(test_more_threads_than_shards),
        cmocka_unit_test(test_create_while_scraping),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
