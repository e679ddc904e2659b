/*
 * The Prometheus middleware's per-thread tallies (prometheus_internal.h):
 * messages are counted in the thread's own tally and folded into the
 * families when the registry is rendered. These tests hold that to the
 * promise of the children themselves:
 *
 * - every scrape taken during a run is consistent (no processed message
 *   missing from received, in_process = received - processed, histogram
 *   counts equal to the processed ones, counters never going back), and
 *   the totals are exact afterwards, through publishers (label ids), by
 *   name, and through a fixed-source subscription;
 * - threads that exit give their slot to the next ones (tallies taken
 *   over), and threads beyond the slots count in the children directly;
 * - values fall in the same buckets as fs_histogram_observe would put them;
 * - the last counts are folded when the broker is freed, with no scrape
 *   before.
 */
#include "scrape.h"

#include <pthread.h>
#include <stdatomic.h>
#include <time.h>

#include "faststream/faststream.h"
#include "faststream/prometheus.h"

#define L_PUB "app_name=\"faststream\",broker=\"memory\",destination=\"%s\""
#define L_RECV "app_name=\"faststream\",broker=\"memory\",handler=\"%s\""

static fs_outcome on_ok(fs_message *m, void *user)
{
    (void)m;
    (void)user;
    return FS_OUTCOME_OK;
}

/* Every 7th message fails (its body starts with '!'). */
static fs_outcome on_mixed(fs_message *m, void *user)
{
    (void)user;
    if (fs_message_body_len(m) > 0 && ((const char *)fs_message_body(m))[0] == '!')
        return fs_message_fail(m, "ValueError", NULL);
    return FS_OUTCOME_OK;
}

typedef struct env {
    fs_registry *reg;
    fs_broker *broker;
} env;

static void env_open(env *e, size_t capacity)
{
    fs_set_log_level(FS_LOG_OFF);
    assert_int_equal(fs_registry_new(&e->reg), FS_OK);
    fs_memory_options mo = FS_MEMORY_OPTIONS_INIT;
    mo.capacity = capacity;
    assert_int_equal(fs_memory_broker_new(&mo, &e->broker), FS_OK);
    fs_prometheus_options po = FS_PROMETHEUS_OPTIONS_INIT;
    po.registry = e->reg;
    assert_int_equal(fs_broker_add_prometheus(e->broker, &po), FS_OK);
}

/* env_open with one subscriber to `source`, started. */
static fs_subscriber *env_start(env *e, size_t capacity, const char *source, fs_handler_fn fn)
{
    env_open(e, capacity);
    fs_subscriber *sub;
    assert_int_equal(fs_subscribe(e->broker, source, fn, NULL, NULL, &sub), FS_OK);
    assert_int_equal(fs_broker_start(e->broker), FS_OK);
    return sub;
}

static void env_close(env *e)
{
    fs_broker_free(e->broker);
    fs_registry_free(e->reg);
}

/* The value of sample `name{labels}` (labels formatted with `arg`), 0 when absent. */
static double sample_or_zero(scrape *s, const char *name, const char *fmt, const char *arg)
{
    char labels[512], key[1024];
    scrape_key(labels, sizeof labels, fmt, arg);
    scrape_key(key, sizeof key, "%s{%s}", name, labels);
    ssize_t i = scrape_find(s, key);
    return i < 0 ? 0 : s->vals[i];
}

/* ------------------------------------------------------------------------ */
/* Consistent scrapes during a run, exact totals after it                   */

#define RUN_THREADS 3
#define RUN_EACH 20000

typedef struct run {
    env e;
    fs_publisher *pub; /* "a" through a publisher: a label id */
    atomic_bool done;
    atomic_int failures;
    /* the scraper's findings */
    size_t scrapes;
    char problem[512];
} run;

typedef struct pub_arg {
    run *r;
    int index;
} pub_arg;

static void *publish_run(void *arg)
{
    pub_arg *a = arg;
    char ok[24] = "ok", bad[24] = "!bad";
    fs_envelope env = FS_ENVELOPE_INIT;
    for (int i = 0; i < RUN_EACH; i++) {
        env.body = i % 7 == 0 ? bad : ok;
        env.body_len = 1 + (size_t)(i % 23);
        int rc;
        if (a->index == 0) /* through the publisher, by id */
            rc = fs_publisher_publish(a->r->pub, &env);
        else /* by name, the name in a buffer rewritten each time */
        {
            char dest[8];
            snprintf(dest, sizeof dest, "%s", "b");
            rc = fs_publish(a->r->e.broker, dest, &env);
        }
        if (rc != FS_OK)
            atomic_fetch_add(&a->r->failures, 1);
    }
    return NULL;
}

typedef struct side {
    double received, processed, in_process, dur_count, size_count, published, pub_count;
} side;

static void read_side(scrape *s, const char *dest, side *out)
{
    out->received = sample_or_zero(s, "faststream_received_messages_total", L_RECV, dest);
    out->in_process = sample_or_zero(s, "faststream_received_messages_in_process", L_RECV, dest);
    out->dur_count = sample_or_zero(
        s, "faststream_received_processed_messages_duration_seconds_count", L_RECV, dest);
    out->size_count =
        sample_or_zero(s, "faststream_received_messages_size_bytes_count", L_RECV, dest);
    out->processed = 0;
    static const char *const statuses[] = {"acked", "error"};
    for (int i = 0; i < 2; i++) {
        char fmt[256];
        snprintf(fmt, sizeof fmt, "%s,status=\"%s\"", L_RECV, statuses[i]);
        out->processed +=
            sample_or_zero(s, "faststream_received_processed_messages_total", fmt, dest);
    }
    char fmt[256];
    snprintf(fmt, sizeof fmt, "%s,status=\"success\"", L_PUB);
    out->published = sample_or_zero(s, "faststream_published_messages_total", fmt, dest);
    out->pub_count =
        sample_or_zero(s, "faststream_published_messages_duration_seconds_count", L_PUB, dest);
}

static void *scrape_run(void *arg)
{
    run *r = arg;
    side last[2] = {{0}};
    static const char *const dests[2] = {"a", "b"};
    while (!atomic_load(&r->done) && !r->problem[0]) {
        scrape s;
        scrape_take(&s, r->e.reg);
        for (int d = 0; d < 2 && !r->problem[0]; d++) {
            side v;
            read_side(&s, dests[d], &v);
            if (v.processed > v.received || v.in_process != v.received - v.processed ||
                v.dur_count != v.processed || v.size_count != v.received)
                snprintf(r->problem, sizeof r->problem,
                         "%s: received %g processed %g in_process %g durations %g sizes %g",
                         dests[d], v.received, v.processed, v.in_process, v.dur_count,
                         v.size_count);
            else if (v.pub_count != v.published)
                snprintf(r->problem, sizeof r->problem, "%s: published %g, durations %g", dests[d],
                         v.published, v.pub_count);
            else if (v.received < last[d].received || v.processed < last[d].processed ||
                     v.published < last[d].published)
                snprintf(r->problem, sizeof r->problem, "%s: a counter went back", dests[d]);
            last[d] = v;
        }
        scrape_free(&s);
        r->scrapes++;
    }
    return NULL;
}

static void test_scrapes_consistent_totals_exact(void **state)
{
    (void)state;
    run r = {0};
    env_open(&r.e, 2 * RUN_THREADS * RUN_EACH);
    /* 4 workers and 3 publishers: every thread that counts has a slot (at least 8), so
     * that every count goes through a tally and each scrape is one consistent fold */
    fs_subscriber_options so = FS_SUBSCRIBER_OPTIONS_INIT;
    so.concurrency = 2;
    fs_subscriber *sa, *sb;
    assert_int_equal(fs_subscribe(r.e.broker, "a", on_mixed, NULL, &so, &sa), FS_OK);
    assert_int_equal(fs_subscribe(r.e.broker, "b", on_mixed, NULL, &so, &sb), FS_OK);
    assert_int_equal(fs_publisher_new(r.e.broker, "a", NULL, &r.pub), FS_OK);
    assert_int_equal(fs_broker_start(r.e.broker), FS_OK);

    pthread_t scraper, pubs[RUN_THREADS];
    pub_arg args[RUN_THREADS];
    assert_int_equal(pthread_create(&scraper, NULL, scrape_run, &r), 0);
    for (int i = 0; i < RUN_THREADS; i++) {
        args[i] = (pub_arg){&r, i == 0 ? 0 : 1};
        assert_int_equal(pthread_create(&pubs[i], NULL, publish_run, &args[i]), 0);
    }
    for (int i = 0; i < RUN_THREADS; i++)
        pthread_join(pubs[i], NULL);
    double na = RUN_EACH, nb = (double)(RUN_THREADS - 1) * RUN_EACH;
    assert_int_equal(fs_subscriber_wait_handled(sa, (uint64_t)na, 120000), FS_OK);
    assert_int_equal(fs_subscriber_wait_handled(sb, (uint64_t)nb, 120000), FS_OK);
    atomic_store(&r.done, true);
    pthread_join(scraper, NULL);
    if (r.problem[0])
        fail_msg("scrape %zu: %s", r.scrapes, r.problem);
    assert_int_equal(atomic_load(&r.failures), 0);
    print_message("%zu consistent scrapes during the run\n", r.scrapes);

    /* failures: i % 7 == 0 of each thread's RUN_EACH */
    double fail_each = (RUN_EACH + 6) / 7;
    scrape s;
    scrape_take(&s, r.e.reg);
    static const char *const dests[2] = {"a", "b"};
    for (int d = 0; d < 2; d++) {
        double n = d == 0 ? na : nb, failed = fail_each * (d == 0 ? 1 : RUN_THREADS - 1);
        char l[256], k[320];
        snprintf(l, sizeof l, L_RECV, dests[d]);
        expect_sample(&s, "faststream_received_messages_total", l, n);
        expect_sample(&s, "faststream_received_messages_in_process", l, 0);
        /* sizes: 1 + i % 23 bytes */
        double sum = 0;
        for (int i = 0; i < RUN_EACH; i++)
            sum += 1 + i % 23;
        expect_histogram(&s, "faststream_received_messages_size_bytes", l, n,
                         sum * (d == 0 ? 1 : RUN_THREADS - 1));
        expect_histogram(&s, "faststream_received_processed_messages_duration_seconds", l, n, NAN);
        snprintf(k, sizeof k, "%s,status=\"acked\"", l);
        expect_sample(&s, "faststream_received_processed_messages_total", k, n - failed);
        snprintf(k, sizeof k, "%s,status=\"error\"", l);
        expect_sample(&s, "faststream_received_processed_messages_total", k, failed);
        snprintf(k, sizeof k, "%s,exception_type=\"ValueError\"", l);
        expect_sample(&s, "faststream_received_processed_messages_exceptions_total", k, failed);
        snprintf(l, sizeof l, L_PUB, dests[d]);
        snprintf(k, sizeof k, "%s,status=\"success\"", l);
        expect_sample(&s, "faststream_published_messages_total", k, n);
        expect_histogram(&s, "faststream_published_messages_duration_seconds", l, n, NAN);
    }
    expect_nothing_else(&s, "faststream_");
    scrape_free(&s);
    fs_publisher_free(r.pub);
    env_close(&r.e);
}

/* ------------------------------------------------------------------------ */
/* Threads that come and go, and more threads than slots                    */

#define CHURN_EACH 500

typedef struct churn_arg {
    fs_publisher *pub;
    fs_broker *broker;
    atomic_int *failures;
    atomic_int *inside; /* threads alive at once, for the many-threads test */
    int hold;           /* wait until this many are inside */
} churn_arg;

static void *churn_thread(void *arg)
{
    churn_arg *a = arg;
    if (a->hold) {
        atomic_fetch_add(a->inside, 1);
        while (atomic_load(a->inside) < a->hold)
            sched_yield();
    }
    fs_envelope env = FS_ENVELOPE_INIT;
    env.body = "x";
    env.body_len = 1;
    for (int i = 0; i < CHURN_EACH; i++) {
        int rc = i % 2 ? fs_publisher_publish(a->pub, &env) : fs_publish(a->broker, "c", &env);
        if (rc != FS_OK)
            atomic_fetch_add(a->failures, 1);
    }
    return NULL;
}

/* `rounds` rounds of `width` threads each (all alive at once when hold). */
static void churn(int rounds, int width, bool hold)
{
    env e;
    env_open(&e, (size_t)rounds * (size_t)width * CHURN_EACH);
    fs_subscriber *sub;
    fs_subscriber_options so = FS_SUBSCRIBER_OPTIONS_INIT;
    so.concurrency = 2;
    assert_int_equal(fs_subscribe(e.broker, "c", on_ok, NULL, &so, &sub), FS_OK);
    fs_publisher *pub;
    assert_int_equal(fs_publisher_new(e.broker, "c", NULL, &pub), FS_OK);
    assert_int_equal(fs_broker_start(e.broker), FS_OK);
    atomic_int failures = 0, inside = 0;
    pthread_t *t = calloc((size_t)width, sizeof *t);
    assert_non_null(t);
    for (int round = 0; round < rounds; round++) {
        atomic_store(&inside, 0);
        churn_arg a = {pub, e.broker, &failures, &inside, hold ? width : 0};
        for (int i = 0; i < width; i++)
            assert_int_equal(pthread_create(&t[i], NULL, churn_thread, &a), 0);
        for (int i = 0; i < width; i++)
            pthread_join(t[i], NULL);
        if (round % 4 == 0) { /* scrapes in between, folding what the exited threads counted */
            scrape s;
            scrape_take(&s, e.reg);
            scrape_free(&s);
        }
    }
    free(t);
    double n = (double)rounds * width * CHURN_EACH;
    assert_int_equal(fs_subscriber_wait_handled(sub, (uint64_t)n, 120000), FS_OK);
    assert_int_equal(atomic_load(&failures), 0);
    scrape s;
    scrape_take(&s, e.reg);
    char l[256], k[320];
    snprintf(l, sizeof l, L_PUB, "c");
    snprintf(k, sizeof k, "%s,status=\"success\"", l);
    expect_sample(&s, "faststream_published_messages_total", k, n);
    expect_histogram(&s, "faststream_published_messages_duration_seconds", l, n, NAN);
    snprintf(l, sizeof l, L_RECV, "c");
    expect_sample(&s, "faststream_received_messages_total", l, n);
    expect_sample(&s, "faststream_received_messages_in_process", l, 0);
    snprintf(k, sizeof k, "%s,status=\"acked\"", l);
    expect_sample(&s, "faststream_received_processed_messages_total", k, n);
    scrape_free(&s);
    fs_publisher_free(pub);
    env_close(&e);
}

/* 40 rounds of 4 short-lived threads: 160 threads through a few slots. */
static void test_threads_come_and_go(void **state)
{
    (void)state;
    churn(40, 4, false);
}

/* 40 threads alive at once: beyond the slots (at most 32), some count in the children. */
static void test_more_threads_than_slots(void **state)
{
    (void)state;
    churn(2, 40, true);
}

/* ------------------------------------------------------------------------ */
/* Buckets                                                                  */

static fs_outcome on_sleep(fs_message *m, void *user)
{
    (void)user;
    if (fs_message_body_len(m) == 3) { /* "zzz": 30 ms */
        struct timespec ts = {0, 30 * 1000 * 1000};
        nanosleep(&ts, NULL);
    }
    return FS_OUTCOME_OK;
}

static void test_bucket_boundaries(void **state)
{
    (void)state;
    env e;
    fs_subscriber *sub = env_start(&e, 100, "k", on_sleep);
    /* sizes on and next to the bounds 16, 64, 256: each lands where observe would put it */
    static const size_t sizes[] = {0, 16, 17, 64, 65, 256, 257, 3};
    char body[300];
    memset(body, 'z', sizeof body);
    fs_envelope env = FS_ENVELOPE_INIT;
    env.body = body;
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
        env.body_len = sizes[i];
        assert_int_equal(fs_publish(e.broker, "k", &env), FS_OK);
    }
    assert_int_equal(fs_subscriber_wait_handled(sub, 8, 10000), FS_OK);
    scrape s;
    scrape_take(&s, e.reg);
    char l[256], k[320];
    snprintf(l, sizeof l, L_RECV, "k");
    static const struct {
        const char *le;
        double n;
    } want[] = {{"16", 3}, {"64", 5}, {"256", 7}, {"1024", 8}, {"+Inf", 8}};
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++) {
        snprintf(k, sizeof k, "%s,le=\"%s\"", l, want[i].le);
        double v = scrape_value(&s, "faststream_received_messages_size_bytes_bucket", k);
        if (v != want[i].n)
            fail_msg("size bucket le=%s holds %g, expected %g", want[i].le, v, want[i].n);
    }
    /* the 30 ms handler: above 0.025, at most 0.25 (a slow machine); the others far below */
    snprintf(k, sizeof k, "%s,le=\"0.025\"", l);
    double below =
        scrape_value(&s, "faststream_received_processed_messages_duration_seconds_bucket", k);
    snprintf(k, sizeof k, "%s,le=\"0.25\"", l);
    double upto =
        scrape_value(&s, "faststream_received_processed_messages_duration_seconds_bucket", k);
    assert_true(below == 7);
    assert_true(upto == 8);
    double sum = scrape_value(&s, "faststream_received_processed_messages_duration_seconds_sum", l);
    assert_true(sum >= 0.03 && sum < 0.25 * 8);
    scrape_free(&s);
    env_close(&e);
}

/* ------------------------------------------------------------------------ */
/* The last fold                                                            */

static void test_folded_when_freed(void **state)
{
    (void)state;
    env e;
    fs_subscriber *sub = env_start(&e, 1000, "f", on_ok);
    fs_envelope env = FS_ENVELOPE_INIT;
    env.body = "1234";
    env.body_len = 4;
    for (int i = 0; i < 500; i++)
        assert_int_equal(fs_publish(e.broker, "f", &env), FS_OK);
    assert_int_equal(fs_subscriber_wait_handled(sub, 500, 10000), FS_OK);
    fs_broker_free(e.broker); /* no scrape before: the state's last fold */
    scrape s;
    scrape_take(&s, e.reg);
    char l[256], k[320];
    snprintf(l, sizeof l, L_RECV, "f");
    expect_sample(&s, "faststream_received_messages_total", l, 500);
    expect_histogram(&s, "faststream_received_messages_size_bytes", l, 500, 2000);
    snprintf(k, sizeof k, "%s,status=\"acked\"", l);
    expect_sample(&s, "faststream_received_processed_messages_total", k, 500);
    snprintf(l, sizeof l, L_PUB, "f");
    snprintf(k, sizeof k, "%s,status=\"success\"", l);
    expect_sample(&s, "faststream_published_messages_total", k, 500);
    scrape_free(&s);
    fs_registry_free(e.reg);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_scrapes_consistent_totals_exact),
        cmocka_unit_test(test_threads_come_and_go),
        cmocka_unit_test(test_more_threads_than_slots),
        cmocka_unit_test(test_bucket_boundaries),
        cmocka_unit_test(test_folded_when_freed),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
