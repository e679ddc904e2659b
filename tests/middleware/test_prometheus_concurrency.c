/*
 * The Prometheus middleware under load: a subscriber with concurrency 4
 * consumes 100,000 messages published by 2 threads while a third thread
 * scrapes the registry. Every family must hold the exact totals afterwards,
 * and no scrape may ever show more than 4 messages in process.
 *
 * FS_TEST_PROM_MESSAGES overrides the message count (a multiple of 20); the
 * CTest registration keeps the default, which also runs under TSan.
 */
#include "scrape.h"
#include "support/overlap.h"

#include <pthread.h>
#include <stdatomic.h>

#include "faststream/faststream.h"
#include "faststream/prometheus.h"

#define BODY_LEN 16
#define CONCURRENCY 4

static const char *tenant_of(const fs_message *msg, void *user)
{
    (void)user;
    if (!msg)
        return "outside";
    const char *t = fs_message_header(msg, "tenant");
    return t ? t : "unknown";
}

typedef struct run {
    fs_broker *broker;
    fs_registry *reg;
    size_t per_thread;
    atomic_bool done;
    atomic_int publish_failures;
    /* scraper results */
    size_t scrapes;
    double max_in_process;
    double min_in_process;
    int scrape_errors;
} run;

typedef struct publisher {
    run *r;
    const char *tenant;
} publisher;

/* The handlers prove they overlap: CONCURRENCY of them inside at once. */
static overlap handlers;

/* Every 10th message fails in the handler (its body starts with '!'). */
static fs_outcome on_load(fs_message *m, void *user)
{
    (void)user;
    overlap_enter(&handlers);
    overlap_leave(&handlers);
    const char *body = fs_message_body(m);
    if (fs_message_body_len(m) == BODY_LEN && body[0] == '!')
        return fs_message_fail(m, "ValueError", NULL);
    return FS_OUTCOME_OK;
}

static void *publish_thread(void *arg)
{
    publisher *p = arg;
    fs_header h = {"tenant", p->tenant, 0};
    char ok[BODY_LEN], bad[BODY_LEN];
    memset(ok, 'o', sizeof ok);
    memset(bad, '!', sizeof bad);
    fs_envelope env = FS_ENVELOPE_INIT;
    env.body_len = BODY_LEN;
    env.headers = &h;
    env.header_count = 1;
    for (size_t i = 0; i < p->r->per_thread; i++) {
        env.body = i % 10 == 0 ? bad : ok;
        if (fs_publish(p->r->broker, "load", &env) != FS_OK)
            atomic_fetch_add(&p->r->publish_failures, 1);
    }
    return NULL;
}

/* Scrape until the run is over; record the range of in-process values seen. */
static void *scrape_thread(void *arg)
{
    run *r = arg;
    static const char key[] = "faststream_received_messages_in_process{";
    while (!atomic_load(&r->done)) {
        fs_buffer b = {0};
        if (fs_registry_render(r->reg, FS_FORMAT_TEXT, &b) != FS_OK) {
            r->scrape_errors++;
            break;
        }
        for (const char *p = b.data; (p = strstr(p, key)); p++) {
            const char *sp = strchr(p, ' ');
            double v = strtod(sp + 1, NULL);
            if (v > r->max_in_process)
                r->max_in_process = v;
            if (v < r->min_in_process)
                r->min_in_process = v;
        }
        fs_buffer_free(&b);
        r->scrapes++;
    }
    return NULL;
}

static void test_concurrent_totals(void **state)
{
    (void)state;
    size_t total = 100000;
    const char *env_n = getenv("FS_TEST_PROM_MESSAGES");
    if (env_n && atol(env_n) >= 20)
        total = (size_t)atol(env_n) / 20 * 20;

    fs_set_log_level(FS_LOG_OFF); /* 10,000 handler failures would each log a line */
    run r = {0};
    r.per_thread = total / 2;
    r.min_in_process = 0;
    assert_int_equal(fs_registry_new(&r.reg), FS_OK);
    fs_memory_options mo = FS_MEMORY_OPTIONS_INIT;
    mo.capacity = total; /* room for everything: no publish may fail */
    assert_int_equal(fs_memory_broker_new(&mo, &r.broker), FS_OK);
    const fs_prometheus_label labels[] = {{"env", "load", NULL, NULL},
                                          {"tenant", NULL, tenant_of, NULL}};
    fs_prometheus_options po = FS_PROMETHEUS_OPTIONS_INIT;
    po.registry = r.reg;
    po.labels = labels;
    po.label_count = 2;
    assert_int_equal(fs_broker_add_prometheus(r.broker, &po), FS_OK);
    overlap_init(&handlers, CONCURRENCY);
    fs_subscriber_options so = FS_SUBSCRIBER_OPTIONS_INIT;
    so.concurrency = CONCURRENCY;
    fs_subscriber *sub;
    assert_int_equal(fs_subscribe(r.broker, "load", on_load, NULL, &so, &sub), FS_OK);
    assert_int_equal(fs_broker_start(r.broker), FS_OK);

    pthread_t scraper, pubs[2];
    publisher pp[2] = {{&r, "p0"}, {&r, "p1"}};
    assert_int_equal(pthread_create(&scraper, NULL, scrape_thread, &r), 0);
    for (int i = 0; i < 2; i++)
        assert_int_equal(pthread_create(&pubs[i], NULL, publish_thread, &pp[i]), 0);
    for (int i = 0; i < 2; i++)
        pthread_join(pubs[i], NULL);
    int rc = fs_subscriber_wait_handled(sub, total, 120000);
    atomic_store(&r.done, true);
    pthread_join(scraper, NULL);
    if (rc != FS_OK)
        fail_msg("%s", fs_last_error());
    assert_int_equal(atomic_load(&r.publish_failures), 0);
    assert_int_equal(r.scrape_errors, 0);
    print_message("%zu messages, %zu scrapes during the run, in_process seen in [%g, %g]\n", total,
                  r.scrapes, r.min_in_process, r.max_in_process);
    assert_true(r.scrapes >= 1);
    assert_true(r.max_in_process <= CONCURRENCY);
    if (!overlap_reached(&handlers)) /* fails when concurrency acts as 1 */
        fail_msg("at most %d handlers ran at once, expected %d", atomic_load(&handlers.max_inside),
                 CONCURRENCY);
    assert_true(r.min_in_process >= 0);

    scrape s;
    scrape_take(&s, r.reg);
    double half = (double)total / 2, failed = half / 10;
    for (int t = 0; t < 2; t++) {
        char l[512], k[512];
        snprintf(l, sizeof l,
                 "app_name=\"faststream\",broker=\"memory\",handler=\"load\",env=\"load\","
                 "tenant=\"%s\"",
                 pp[t].tenant);
        expect_sample(&s, "faststream_received_messages_total", l, half);
        expect_histogram(&s, "faststream_received_messages_size_bytes", l, half, half * BODY_LEN);
        expect_sample(&s, "faststream_received_messages_in_process", l, 0);
        expect_histogram(&s, "faststream_received_processed_messages_duration_seconds", l, half,
                         NAN);
        snprintf(k, sizeof k,
                 "app_name=\"faststream\",broker=\"memory\",handler=\"load\",status=\"acked\","
                 "env=\"load\",tenant=\"%s\"",
                 pp[t].tenant);
        expect_sample(&s, "faststream_received_processed_messages_total", k, half - failed);
        snprintf(k, sizeof k,
                 "app_name=\"faststream\",broker=\"memory\",handler=\"load\",status=\"error\","
                 "env=\"load\",tenant=\"%s\"",
                 pp[t].tenant);
        expect_sample(&s, "faststream_received_processed_messages_total", k, failed);
        snprintf(k, sizeof k,
                 "app_name=\"faststream\",broker=\"memory\",handler=\"load\","
                 "exception_type=\"ValueError\",env=\"load\",tenant=\"%s\"",
                 pp[t].tenant);
        expect_sample(&s, "faststream_received_processed_messages_exceptions_total", k, failed);
    }
    expect_sample(&s, "faststream_published_messages_total",
                  "app_name=\"faststream\",broker=\"memory\",destination=\"load\","
                  "status=\"success\",env=\"load\",tenant=\"outside\"",
                  (double)total);
    expect_histogram(&s, "faststream_published_messages_duration_seconds",
                     "app_name=\"faststream\",broker=\"memory\",destination=\"load\","
                     "env=\"load\",tenant=\"outside\"",
                     (double)total, NAN);
    expect_nothing_else(&s, "faststream_");
    scrape_free(&s);

    fs_broker_free(r.broker);
    fs_registry_free(r.reg);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_concurrent_totals),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
