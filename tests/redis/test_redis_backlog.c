/*
 * The Redis adapter's backlog op (the backlog family of the Prometheus
 * middleware): a list's length, a grouped stream's lag plus pending
 * entries, checked against what redis-server itself says; channels and
 * streams without a group cannot tell.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "redis_test.h"

static void test_list_length(void **state)
{
    (void)state;
    redisContext *c = rt_connect();
    char list[64];
    rt_key(list, sizeof list, "backlog-list");
    fs_broker *b = rt_broker();
    fs_redis_subscriber_options ro = FS_REDIS_SUBSCRIBER_OPTIONS_INIT;
    ro.kind = FS_REDIS_LIST;
    ts_log l;
    ts_log_init(&l);
    fs_subscriber *sub = rt_subscribe(b, list, &ro, &l, FS_ACK_POLICY_DEFAULT, 1, 0);
    assert_int_equal(fs_broker_connect(b), FS_OK);
    uint64_t v = 99;
    assert_int_equal(fs_subscriber_backlog(sub, 1000, &v), FS_OK);
    assert_int_equal(v, 0);
    for (int i = 0; i < 3; i++)
        rt_ok(c, "RPUSH %s m%d", list, i);
    assert_int_equal(fs_subscriber_backlog(sub, 1000, &v), FS_OK);
    assert_int_equal(v, (uint64_t)rt_int(c, "LLEN %s", list));
    assert_int_equal(v, 3);
    assert_int_equal(fs_broker_start(b), FS_OK);
    assert_true(ts_wait_n(&l, 3, 10000));
    assert_int_equal(fs_subscriber_backlog(sub, 1000, &v), FS_OK);
    assert_int_equal(v, 0);
    fs_broker_free(b);
    ts_log_free(&l);
    freeReplyObject(rt_cmd(c, "DEL %s", list));
    redisFree(c);
}

static void test_stream_group_lag_and_pending(void **state)
{
    (void)state;
    redisContext *c = rt_connect();
    char stream[64];
    rt_key(stream, sizeof stream, "backlog-stream");
    fs_broker *b = rt_broker();
    fs_redis_subscriber_options ro = FS_REDIS_SUBSCRIBER_OPTIONS_INIT;
    ro.kind = FS_REDIS_STREAM;
    ro.group = "g";
    ts_log l;
    ts_log_init(&l);
    /* MANUAL and a handler that settles nothing: what it read stays pending. */
    fs_subscriber *sub = rt_subscribe(b, stream, &ro, &l, FS_ACK_POLICY_MANUAL, 1, 0);
    assert_int_equal(fs_broker_start(b), FS_OK);
    uint64_t v = 99;
    /* The group appears when the reader starts: wait for it. */
    for (int i = 0; fs_subscriber_backlog(sub, 1000, &v) != FS_OK; i++) {
        assert_true(i < 500);
        ts_sleep_ms(10);
    }
    assert_int_equal(v, 0);
    for (int i = 0; i < 4; i++)
        rt_ok(c, "XADD %s * __data__ m%d", stream, i);
    assert_true(ts_wait_n(&l, 4, 10000));
    assert_int_equal(fs_subscriber_backlog(sub, 1000, &v), FS_OK);
    assert_int_equal(v, (uint64_t)rt_pending(c, stream, "g"));
    assert_int_equal(v, 4);
    /* Stopped: new entries add to the lag. */
    assert_int_equal(fs_broker_stop(b), FS_OK);
    rt_ok(c, "XADD %s * __data__ late", stream);
    assert_int_equal(fs_subscriber_backlog(sub, 1000, &v), FS_OK);
    assert_int_equal(v, 5);
    fs_broker_free(b);
    ts_log_free(&l);
    freeReplyObject(rt_cmd(c, "DEL %s", stream));
    redisFree(c);
}

static void test_cannot_tell(void **state)
{
    (void)state;
    fs_broker *b = rt_broker();
    ts_log l;
    ts_log_init(&l);
    fs_subscriber *ch = rt_subscribe(b, "backlog-channel", NULL, &l, FS_ACK_POLICY_DEFAULT, 1, 0);
    fs_redis_subscriber_options ro = FS_REDIS_SUBSCRIBER_OPTIONS_INIT;
    ro.kind = FS_REDIS_STREAM;
    fs_subscriber *st = rt_subscribe(b, "backlog-nogroup", &ro, &l, FS_ACK_POLICY_DEFAULT, 1, 0);
    assert_int_equal(fs_broker_connect(b), FS_OK);
    uint64_t v;
    assert_int_equal(fs_subscriber_backlog(ch, 1000, &v), FS_EUNSUPPORTED);
    assert_non_null(strstr(fs_last_error(), "channel"));
    assert_int_equal(fs_subscriber_backlog(st, 1000, &v), FS_EUNSUPPORTED);
    fs_broker_free(b);
    ts_log_free(&l);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_list_length),
        cmocka_unit_test(test_stream_group_lag_and_pending),
        cmocka_unit_test(test_cannot_tell),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
