/*
 * Publishing from several threads at once through one Redis broker (single
 * messages and batches, to a list, a stream and a channel), concurrent
 * requests, and a 4-worker subscriber consuming while they publish: every
 * message arrives exactly once. Runs under ThreadSanitizer too.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "redis_test.h"

#define THREADS 4
#define PER_DEST 500 /* per thread and destination: 100 singles and 100 batches of 4 */
#define WAIT_MS 30000

static fs_broker *broker;
static char list_name[64], stream_name[64], svc[64];

static void *publisher(void *arg)
{
    int t = (int)(intptr_t)arg;
    fs_redis_publish_options pl = FS_REDIS_PUBLISH_OPTIONS_INIT, ps = pl;
    pl.kind = FS_REDIS_LIST;
    ps.kind = FS_REDIS_STREAM;
    char bodies[5][32];
    fs_envelope env[5];
    int seq = 0;
    for (int i = 0; i < 100; i++) {
        for (int round = 0; round < 2; round++) {
            const fs_redis_publish_options *po = round ? &ps : &pl;
            const char *dest = round ? stream_name : list_name;
            int s0 = seq;
            for (int k = 0; k < 5; k++) {
                snprintf(bodies[k], sizeof bodies[k], "t%d-%d", t, s0 + k);
                ts_envelope(&env[k], bodies[k], po);
            }
            if (fs_publish(broker, dest, &env[0]) != FS_OK ||
                fs_publish_batch(broker, dest, env + 1, 5 - 1) != FS_OK)
                return (void *)1;
        }
        seq += 5;
        /* and a request */
        if (i % 25 == 0) {
            fs_envelope req = FS_ENVELOPE_INIT;
            req.body = bodies[0];
            req.body_len = strlen(bodies[0]);
            fs_message *reply = NULL;
            if (fs_request(broker, svc, &req, 10000, &reply) != FS_OK ||
                fs_message_body_len(reply) != req.body_len ||
                memcmp(fs_message_body(reply), req.body, req.body_len) != 0)
                return (void *)2;
            fs_message_free(reply);
        }
    }
    return NULL;
}

static fs_outcome echo(fs_message *m, void *user)
{
    (void)user;
    fs_message_reply(m, fs_message_body(m), fs_message_body_len(m), NULL, 0, NULL);
    return FS_OUTCOME_OK;
}

static void many_publishers_one_broker(void **state)
{
    (void)state;
    rt_key(list_name, sizeof list_name, "conc-list");
    rt_key(stream_name, sizeof stream_name, "conc-stream");
    rt_key(svc, sizeof svc, "conc-rpc");
    redisContext *rc = rt_connect();
    broker = rt_broker();
    ts_log ll, ls;
    ts_log_init(&ll);
    ts_log_init(&ls);
    fs_redis_subscriber_options rl = FS_REDIS_SUBSCRIBER_OPTIONS_INIT;
    rl.kind = FS_REDIS_LIST;
    fs_redis_subscriber_options rs = FS_REDIS_SUBSCRIBER_OPTIONS_INIT;
    rs.kind = FS_REDIS_STREAM;
    rs.group = "g";
    rt_subscribe(broker, list_name, &rl, &ll, FS_ACK_POLICY_DEFAULT, 4, 0);
    rt_subscribe(broker, stream_name, &rs, &ls, FS_ACK_POLICY_DEFAULT, 4, 8);
    assert_int_equal(fs_subscribe(broker, svc, echo, NULL, NULL, NULL), FS_OK);
    assert_int_equal(fs_broker_start(broker), FS_OK);

    pthread_t th[THREADS];
    for (int t = 0; t < THREADS; t++)
        assert_int_equal(pthread_create(&th[t], NULL, publisher, (void *)(intptr_t)t), 0);
    for (int t = 0; t < THREADS; t++) {
        void *res;
        pthread_join(th[t], &res);
        if (res)
            fail_msg("publisher %d failed (%d): %s", t, (int)(intptr_t)res, fs_last_error());
    }
    size_t total = THREADS * PER_DEST;
    assert_true(ts_wait_n(&ll, total, WAIT_MS));
    assert_true(ts_wait_n(&ls, total, WAIT_MS));
    assert_int_equal(fs_broker_stop(broker), FS_OK);
    assert_int_equal(ts_log_count(&ll), total);
    assert_int_equal(ts_log_count(&ls), total);
    /* each exactly once */
    for (int t = 0; t < THREADS; t++) {
        for (int k = 0; k < PER_DEST; k++) {
            char body[32];
            snprintf(body, sizeof body, "t%d-%d", t, k);
            if (ts_count_body(&ll, body) != 1 || ts_count_body(&ls, body) != 1)
                fail_msg("%s arrived %zu times (list), %zu (stream)", body,
                         ts_count_body(&ll, body), ts_count_body(&ls, body));
        }
    }
    assert_int_equal(rt_pending(rc, stream_name, "g"), 0);
    assert_int_equal(rt_int(rc, "LLEN %s", list_name), 0);
    fs_broker_free(broker);
    ts_log_free(&ll);
    ts_log_free(&ls);
    freeReplyObject(rt_cmd(rc, "DEL %s %s", list_name, stream_name));
    redisFree(rc);
}

int main(void)
{
    fs_set_log_level(FS_LOG_WARN);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(many_publishers_one_broker),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
