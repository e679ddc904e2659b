/*
 * Many threads at once on one RabbitMQ broker: publishers whose confirms
 * are pipelined on the one confirm channel, `concurrency` handlers acking
 * from their threads, and requests from several threads (direct reply-to
 * replies matched by correlation id). Also run under ThreadSanitizer.
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
        fs_envelope env = FS_ENVELOPE_INIT;
        env.body = "-1";
        env.body_len = 2;
        fs_message *reply = NULL;
        if (fs_request(c->b, c->queue, &env, 10000, &reply) != FS_OK)
            c->failures++;
        else if (fs_message_body_len(reply) != 2)
            c->failures++;
        fs_message_free(reply);
    }
    return NULL;
}

static void publishers_consumers_and_requests_at_once(void **state)
{
    (void)state;
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
    for (int i = 0; i < THREADS + 2; i++) {
        c[i] = (ctx){b, q, i, 0};
        pthread_create(&t[i], NULL, i < THREADS ? publisher : requester, &c[i]);
    }
    for (int i = 0; i < THREADS + 2; i++) {
        pthread_join(t[i], NULL);
        assert_int_equal(c[i].failures, 0);
    }
    assert_int_equal(fs_subscriber_wait_handled(sub, THREADS * PER_THREAD + 40, 30000), FS_OK);
    for (int i = 0; i < THREADS * PER_THREAD; i++)
        assert_int_equal(atomic_load(&seen[i]), 1);
    fs_broker_free(b);
    assert_int_equal(qt_depth(q), 0);
    qt_delete_queue(q);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(publishers_consumers_and_requests_at_once),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
