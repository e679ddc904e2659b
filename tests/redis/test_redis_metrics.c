/*
 * The Prometheus middleware on the Redis broker: the full metric set of
 * METRICS.md for channel, list (batch) and stream subscribers and for
 * publishers (single, batch, a failing publish), with broker="redis", the
 * channel / list / stream names as handler and destination, one static and
 * one per-message custom label. No Redis-specific code in the middleware:
 * the adapter only says its name and each message's source.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "middleware/scrape.h"
#include "redis_test.h"

#include "faststream/prometheus.h"

#include <math.h>

#define WAIT_MS 10000

static const char *kind_label(const fs_message *msg, void *user)
{
    (void)user;
    if (!msg)
        return "none"; /* a publish made outside a handler */
    const fs_redis_message_info *info = fs_message_raw(fs_message_at(msg, 0));
    return info ? fs_redis_kind_name(info->kind) : "unknown";
}

static fs_outcome ok_or_fail(fs_message *msg, void *user)
{
    (void)user;
    const char *b = fs_message_body(fs_message_at(msg, 0));
    if (fs_message_body_len(fs_message_at(msg, 0)) && b[0] == '!')
        return fs_message_fail(msg, "ValueError", "refused");
    return FS_OUTCOME_OK;
}

static fs_envelope env_of(const char *body, const fs_redis_publish_options *po)
{
    fs_envelope e = FS_ENVELOPE_INIT;
    e.body = body;
    e.body_len = strlen(body);
    e.broker_options = po;
    return e;
}

static void labels(char *out, size_t n, const char *who, const char *name, const char *status,
                   const char *status_name, const char *kind)
{
    if (status)
        snprintf(out, n,
                 "app_name=\"redis-test\",broker=\"redis\",%s=\"%s\",%s=\"%s\",env=\"test\","
                 "kind=\"%s\"",
                 who, name, status_name, status, kind);
    else
        snprintf(out, n,
                 "app_name=\"redis-test\",broker=\"redis\",%s=\"%s\",env=\"test\",kind=\"%s\"", who,
                 name, kind);
}

static void received(scrape *s, const char *handler, const char *kind, double count, double units,
                     double size)
{
    char l[512];
    labels(l, sizeof l, "handler", handler, NULL, NULL, kind);
    expect_sample(s, "fs_received_messages_total", l, count);
    expect_histogram(s, "fs_received_messages_size_bytes", l, units, size);
    expect_sample(s, "fs_received_messages_in_process", l, 0);
    expect_histogram(s, "fs_received_processed_messages_duration_seconds", l, units, NAN);
}

static void processed(scrape *s, const char *handler, const char *kind, const char *status,
                      double count)
{
    char l[512];
    labels(l, sizeof l, "handler", handler, status, "status", kind);
    expect_sample(s, "fs_received_processed_messages_total", l, count);
}

static void published(scrape *s, const char *dest, const char *status, double count, double calls)
{
    char l[512];
    labels(l, sizeof l, "destination", dest, status, "status", "none");
    expect_sample(s, "fs_published_messages_total", l, count);
    labels(l, sizeof l, "destination", dest, NULL, NULL, "none");
    if (calls >= 0)
        expect_histogram(s, "fs_published_messages_duration_seconds", l, calls, NAN);
}

static void metric_set_for_channel_list_stream(void **state)
{
    (void)state;
    char ch[64], q[64], st[64], bad[64];
    rt_key(ch, sizeof ch, "m-chan");
    rt_key(q, sizeof q, "m-list");
    rt_key(st, sizeof st, "m-stream");
    rt_key(bad, sizeof bad, "m-wrongtype");
    redisContext *rc = rt_connect();
    rt_ok(rc, "SET %s 1", bad);

    fs_registry *reg;
    assert_int_equal(fs_registry_new(&reg), FS_OK);
    fs_prometheus_label custom[] = {{"env", "test", NULL, NULL}, {"kind", NULL, kind_label, NULL}};
    fs_prometheus_options po = FS_PROMETHEUS_OPTIONS_INIT;
    po.registry = reg;
    po.prefix = "fs";
    po.app_name = "redis-test";
    po.labels = custom;
    po.label_count = 2;
    fs_broker *b = rt_broker();
    assert_int_equal(fs_broker_add_prometheus(b, &po), FS_OK);

    fs_redis_subscriber_options rch = FS_REDIS_SUBSCRIBER_OPTIONS_INIT;
    fs_redis_subscriber_options rl = FS_REDIS_SUBSCRIBER_OPTIONS_INIT;
    rl.kind = FS_REDIS_LIST;
    fs_redis_subscriber_options rs = FS_REDIS_SUBSCRIBER_OPTIONS_INIT;
    rs.kind = FS_REDIS_STREAM;
    rs.group = "g";
    fs_subscriber_options so = FS_SUBSCRIBER_OPTIONS_INIT;
    fs_subscriber *sc, *sl, *ss;
    so.broker_options = &rch;
    assert_int_equal(fs_subscribe(b, ch, ok_or_fail, NULL, &so, &sc), FS_OK);
    so.broker_options = &rs;
    assert_int_equal(fs_subscribe(b, st, ok_or_fail, NULL, &so, &ss), FS_OK);
    so.broker_options = &rl;
    so.batch_size = 5;
    so.batch_timeout_ms = 1000;
    assert_int_equal(fs_subscribe(b, q, ok_or_fail, NULL, &so, &sl), FS_OK);

    /* a batch of 5 (17 bytes) waits in the list before the subscriber starts */
    fs_redis_publish_options pl = FS_REDIS_PUBLISH_OPTIONS_INIT;
    pl.kind = FS_REDIS_LIST;
    fs_envelope batch[5] = {env_of("a", &pl), env_of("bb", &pl), env_of("ccc", &pl),
                            env_of("dddd", &pl), env_of("eeeeeee", &pl)};
    assert_int_equal(fs_broker_connect(b), FS_OK);
    assert_int_equal(fs_publish_batch(b, q, batch, 5), FS_OK);
    assert_int_equal(fs_broker_start(b), FS_OK);
    assert_int_equal(fs_subscriber_wait_handled(sl, 5, WAIT_MS), FS_OK);

    fs_redis_publish_options ps = FS_REDIS_PUBLISH_OPTIONS_INIT;
    ps.kind = FS_REDIS_STREAM;
    fs_envelope e1 = env_of("hello", NULL), e2 = env_of("!world", NULL);
    assert_int_equal(fs_publish(b, ch, &e1), FS_OK);
    assert_int_equal(fs_publish(b, ch, &e2), FS_OK);
    fs_envelope s1 = env_of("fine", &ps), s2 = env_of("!broken", &ps);
    assert_int_equal(fs_publish(b, st, &s1), FS_OK);
    assert_int_equal(fs_publish(b, st, &s2), FS_OK);
    fs_envelope wrong = env_of("x", &pl);
    assert_int_equal(fs_publish(b, bad, &wrong), FS_EBROKER);
    assert_int_equal(fs_subscriber_wait_handled(sc, 2, WAIT_MS), FS_OK);
    assert_int_equal(fs_subscriber_wait_handled(ss, 2, WAIT_MS), FS_OK);
    assert_int_equal(fs_broker_stop(b), FS_OK);

    scrape s;
    scrape_take(&s, reg);
    /*
     * channel: 2 messages of 5 + 6 bytes; nothing to settle on the wire, yet
     * the status says what the handler did: one acked, one error (FastStream)
     */
    received(&s, ch, "channel", 2, 2, 11);
    processed(&s, ch, "channel", "acked", 1);
    processed(&s, ch, "channel", "error", 1);
    char l[512];
    labels(l, sizeof l, "handler", ch, "ValueError", "exception_type", "channel");
    expect_sample(&s, "fs_received_processed_messages_exceptions_total", l, 1);
    /* list: one batch of 5 messages, size observed once with the summed bodies */
    received(&s, q, "list", 5, 1, 17);
    processed(&s, q, "list", "acked", 5);
    /* stream: one acked, one failed (counted "error", rejected by the policy) */
    received(&s, st, "stream", 2, 2, 11);
    processed(&s, st, "stream", "acked", 1);
    processed(&s, st, "stream", "error", 1);
    labels(l, sizeof l, "handler", st, "ValueError", "exception_type", "stream");
    expect_sample(&s, "fs_received_processed_messages_exceptions_total", l, 1);
    /* publishers: the batch counts 5 in one call; the refused publish is an error */
    published(&s, q, "success", 5, 1);
    published(&s, ch, "success", 2, 2);
    published(&s, st, "success", 2, 2);
    published(&s, bad, "error", 1, 1);
    labels(l, sizeof l, "destination", bad, "ResponseError", "exception_type", "none");
    expect_sample(&s, "fs_published_messages_exceptions_total", l, 1);
    if (getenv("FS_TEST_SHOW"))
        fputs(s.text, stderr);
    expect_nothing_else(&s, "fs_");
    scrape_free(&s);

    fs_broker_free(b);
    fs_registry_free(reg);
    redisReply *r = rt_cmd(rc, "DEL %s %s %s", q, st, bad);
    freeReplyObject(r);
    redisFree(rc);
}

int main(void)
{
    fs_set_log_level(FS_LOG_OFF);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(metric_set_for_channel_list_stream),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
