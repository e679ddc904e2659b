/*
 * Many threads at once on one RabbitMQ broker: publishers whose confirms
 * are pipelined on the pool of publishing channels, `concurrency` handlers
 * acking from their threads, and requests from several threads (direct
 * reply-to replies matched by correlation id); a publishing channel closed
 * by the server (a publish to a missing exchange) while other threads
 * publish: every publish confirmed or failed with its type, none lost, the
 * other channels undisturbed. Also run under ThreadSanitizer.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "rabbitmq_test.h"

#define THREADS 4
#define PER_THREAD 300

typedef struct ctx {
    fs_broker *b;
    const char *queue;
    int id;
    int failures;
} ctx;

static atomic_int seen[THREADS * PER_THREAD];

static fs_outcome count_handler(fs_message *m, void *user)
{
    (void)user;
    int n = atoi((const char *)fs_message_body(m));
    if (n >= 0 && n < THREADS * PER_THREAD)
        atomic_fetch_add(&seen[n], 1);
    if (fs_message_reply_to(m))
        fs_message_reply(m, "ok", 2, NULL, 0, NULL);
    return FS_OUTCOME_OK;
}

static void *publisher(void *arg)
{
    ctx *c = arg;
    for (int i = 0; i < PER_THREAD; i++) {
        char body[32];
        int n = snprintf(body, sizeof body, "%d", c->id * PER_THREAD + i);
        if (fs_publish_bytes(c->b, c->queue, body, (size_t)n) != FS_OK)
            c->failures++;
    }
    return NULL;
}

static void *requester(void *arg)
{
    ctx *c = arg;
    for (int i = 0; i < 20; i++) {
        fs_envelope env;
        ts_envelope(&env, "-1", NULL);
        fs_message *reply = NULL;
        if (fs_request(c->b, c->queue, &env, 10000, &reply) != FS_OK)
            c->failures++;
        else if (fs_message_body_len(reply) != 2)
            c->failures++;
        fs_message_free(reply);
    }
    return NULL;
}

/* `pubs` publishers and `reqs` requesters on the broker that consumes. */
static void publish_consume_request(int pubs, int reqs)
{
    char q[96];
    qt_name(q, sizeof q, "conc");
    fs_broker *b = qt_broker();
    fs_subscriber_options so = FS_SUBSCRIBER_OPTIONS_INIT;
    so.concurrency = 4;
    fs_subscriber *sub;
    assert_int_equal(fs_subscribe(b, q, count_handler, NULL, &so, &sub), FS_OK);
    assert_int_equal(fs_broker_start(b), FS_OK);
    pthread_t t[THREADS + 2];
    ctx c[THREADS + 2];
    for (int i = 0; i < THREADS * PER_THREAD; i++)
        atomic_store(&seen[i], 0);
    for (int i = 0; i < pubs + reqs; i++) {
        c[i] = (ctx){b, q, i, 0};
        pthread_create(&t[i], NULL, i < pubs ? publisher : requester, &c[i]);
    }
    for (int i = 0; i < pubs + reqs; i++) {
        pthread_join(t[i], NULL);
        assert_int_equal(c[i].failures, 0);
    }
    assert_int_equal(
        fs_subscriber_wait_handled(sub, (uint64_t)(pubs * PER_THREAD + 20 * reqs), 30000), FS_OK);
    for (int i = 0; i < THREADS * PER_THREAD; i++)
        assert_int_equal(atomic_load(&seen[i]), i < pubs * PER_THREAD ? 1 : 0);
    fs_broker_free(b);
    assert_int_equal(qt_depth(q), 0);
    qt_delete_queue(q);
}

static void publishers_consumers_and_requests_at_once(void **state)
{
    (void)state;
    publish_consume_request(THREADS, 2);
}

/*
 * One publisher at a time: it takes the connection itself while the owner
 * sleeps (reading the deliveries of the subscription, the replies of the
 * requester and the settlements' effects as the owner would); every
 * message is handled exactly once, none lost, none twice.
 */
static void a_lone_publisher_reads_for_the_owner(void **state)
{
    (void)state;
    publish_consume_request(1, 0);
    publish_consume_request(1, 1);
}

/* ------------------------------------------------------------------------ */
/* The pool of publishing channels                                          */

#define POOL_PER_THREAD 300
#define BAD_PUBLISHES 40

typedef struct pctx {
    fs_broker *b;
    const char *queue; /* NULL: publish to a missing exchange */
    const char *bad_exchange;
    pthread_barrier_t *go;
    int ok, failed, wrong_type, other_rc;
    char first_wrong[160];
} pctx;

static void record_failure(pctx *c, int rc, const char *want_type)
{
    c->failed++;
    const char *t = fs_last_publish_error_type();
    if (!t || strcmp(t, want_type) != 0) {
        if (!c->wrong_type++)
            snprintf(c->first_wrong, sizeof c->first_wrong, "rc %d type %s: %s", rc,
                     t ? t : "(none)", fs_last_error());
    }
}

static void *pool_publisher(void *arg)
{
    pctx *c = arg;
    pthread_barrier_wait(c->go);
    int n = c->queue ? POOL_PER_THREAD : BAD_PUBLISHES;
    for (int i = 0; i < n; i++) {
        int rc = c->queue ? fs_publish_bytes(c->b, c->queue, "p", 1)
                          : qt_publish(c->b, c->bad_exchange, "k", "x");
        if (rc == FS_OK)
            c->ok++;
        else if (c->queue) /* in flight on the channel the bad publish closed */
            record_failure(c, rc, "ChannelClosed");
        else
            record_failure(c, rc, "ChannelNotFoundEntity");
        if (!c->queue && rc != FS_ENOTFOUND)
            c->other_rc++;
    }
    return NULL;
}

/* A broker with a pool of `channels` and the queue q declared. */
static fs_broker *pool_broker(unsigned channels, const char *q)
{
    char url[160];
    snprintf(url, sizeof url, "amqp://guest:guest@127.0.0.1:%d/?publish_channels=%u", qt_port(),
             channels);
    fs_broker *b = NULL;
    if (fs_broker_new(url, NULL, &b) != FS_OK || fs_broker_connect(b) != FS_OK)
        fail_msg("cannot use rabbitmq-server at %s: %s", url, fs_last_error());
    fs_rabbitmq_queue dq = FS_RABBITMQ_QUEUE_INIT;
    dq.name = q;
    assert_int_equal(fs_rabbitmq_declare(b, NULL, &dq), FS_OK);
    return b;
}

/* `good` threads (+ 1 bad one) at once; returns the messages confirmed */
static int run_pool(fs_broker *b, const char *q, int good, bool with_bad, pctx *c)
{
    int all = good + (with_bad ? 1 : 0);
    char bad[96];
    qt_name(bad, sizeof bad, "no.such.exchange");
    pthread_barrier_t go;
    pthread_barrier_init(&go, NULL, (unsigned)all);
    pthread_t t[16];
    for (int i = 0; i < all; i++) {
        c[i] = (pctx){b, i < good ? q : NULL, bad, &go, 0, 0, 0, 0, ""};
        pthread_create(&t[i], NULL, pool_publisher, &c[i]);
    }
    int confirmed = 0;
    for (int i = 0; i < all; i++) {
        pthread_join(t[i], NULL);
        if (i < good)
            confirmed += c[i].ok;
    }
    pthread_barrier_destroy(&go);
    for (int i = 0; i < all; i++)
        if (c[i].wrong_type)
            fail_msg("thread %d: %d failures of the wrong type, first: %s", i, c[i].wrong_type,
                     c[i].first_wrong);
    if (!with_bad)
        return confirmed;
    /* the bad thread: every publish failed, each with the server's 404 */
    assert_int_equal(c[good].ok, 0);
    assert_int_equal(c[good].failed, BAD_PUBLISHES);
    assert_int_equal(c[good].other_rc, 0);
    return confirmed;
}

/*
 * As many threads as channels: each thread keeps to its own channel, so
 * the bad thread's channel, closed by the server 40 times, disturbs nobody.
 */
static void closed_channel_leaves_the_others_alone(void **state)
{
    (void)state;
    char q[96];
    qt_name(q, sizeof q, "pool.alone");
    fs_broker *b = pool_broker(4, q);
    pctx c[4];
    int confirmed = run_pool(b, q, 3, true, c);
    for (int i = 0; i < 3; i++) {
        assert_int_equal(c[i].failed, 0);
        assert_int_equal(c[i].ok, POOL_PER_THREAD);
    }
    assert_int_equal(confirmed, 3 * POOL_PER_THREAD);
    /* reopened: every channel publishes again (fresh threads cover them all) */
    assert_int_equal(run_pool(b, q, 4, false, c), 4 * POOL_PER_THREAD);
    fs_broker_free(b);
    assert_int_equal(qt_depth(q), 7 * POOL_PER_THREAD);
    qt_delete_queue(q);
}

/*
 * More threads than channels (8 + 1 on 2): threads share channels, so a
 * publish in flight on the channel the bad one closes fails with
 * "ChannelClosed"; every publish is confirmed or failed, none is lost (the
 * queue holds every confirmed one, and at most the failed ones more).
 */
static void shared_channels_every_publish_confirmed_or_failed(void **state)
{
    (void)state;
    char q[96];
    qt_name(q, sizeof q, "pool.shared");
    fs_broker *b = pool_broker(2, q);
    pctx c[9];
    int confirmed = run_pool(b, q, 8, true, c);
    int failed = 0;
    for (int i = 0; i < 8; i++) {
        assert_int_equal(c[i].ok + c[i].failed, POOL_PER_THREAD);
        failed += c[i].failed;
    }
    fs_broker_free(b);
    long depth = qt_depth(q);
    print_message("pool of 2, 8 threads: %d confirmed, %d failed (ChannelClosed), queue %ld\n",
                  confirmed, failed, depth);
    assert_true(depth >= confirmed);
    assert_true(depth <= confirmed + failed);
    qt_delete_queue(q);
}

static void pool_size_is_checked(void **state)
{
    (void)state;
    fs_broker *b = NULL;
    assert_int_equal(fs_broker_new("amqp://127.0.0.1/?publish_channels=0", NULL, &b), FS_EINVAL);
    assert_non_null(strstr(fs_last_error(), "publish_channels"));
    assert_int_equal(fs_broker_new("amqp://127.0.0.1/?publish_channels=65", NULL, &b), FS_EINVAL);
    fs_rabbitmq_options o = FS_RABBITMQ_OPTIONS_INIT;
    o.publish_channels = 65;
    assert_int_equal(fs_rabbitmq_broker_new("amqp://127.0.0.1/", &o, &b), FS_EINVAL);
    assert_null(b);
    o.publish_channels = 64;
    assert_int_equal(fs_rabbitmq_broker_new("amqp://127.0.0.1/", &o, &b), FS_OK);
    fs_broker_free(b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(publishers_consumers_and_requests_at_once),
        cmocka_unit_test(a_lone_publisher_reads_for_the_owner),
        cmocka_unit_test(closed_channel_leaves_the_others_alone),
        cmocka_unit_test(shared_channels_every_publish_confirmed_or_failed),
        cmocka_unit_test(pool_size_is_checked),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
