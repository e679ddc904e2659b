/*
 * The Redis broker against the redis-server of scripts/services.sh:
 * connection errors, URLs, every consume mode and ack outcome, batches,
 * patterns, FastStream's formats both ways over the server, request/reply,
 * reconnection, pending entries (own and claimed), ping and close.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "faststream_ref.h"
#include "redis_test.h"

#define WAIT_MS 10000

static redisContext *rc;

static int setup(void **state)
{
    (void)state;
    rc = rt_connect();
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    redisReply *r = rt_cmd(rc, "KEYS fstest:%ld:*", (long)getpid());
    for (size_t i = 0; r->type == REDIS_REPLY_ARRAY && i < r->elements; i++)
        freeReplyObject(rt_cmd(rc, "DEL %s", r->element[i]->str));
    freeReplyObject(r);
    redisFree(rc);
    return 0;
}

static fs_redis_subscriber_options sub_opts(fs_redis_kind kind)
{
    fs_redis_subscriber_options o = FS_REDIS_SUBSCRIBER_OPTIONS_INIT;
    o.kind = kind;
    return o;
}

static int publish_kind(fs_broker *b, const char *dest, fs_redis_kind kind, const char *body,
                        const fs_header *h, size_t hn)
{
    fs_redis_publish_options po = FS_REDIS_PUBLISH_OPTIONS_INIT;
    po.kind = kind;
    fs_envelope env = FS_ENVELOPE_INIT;
    env.body = body;
    env.body_len = strlen(body);
    env.headers = h;
    env.header_count = hn;
    env.broker_options = &po;
    return fs_publish(b, dest, &env);
}

/* ------------------------------------------------------------------------ */

static void unreachable_server_is_a_clear_error(void **state)
{
    (void)state;
    fs_broker *b;
    assert_int_equal(fs_broker_new("redis://127.0.0.1:1/0", NULL, &b), FS_OK);
    assert_true(fs_broker_is_redis(b));
    assert_string_equal(fs_broker_name(b), "redis");
    assert_int_equal(fs_broker_connect(b), FS_EIO);
    assert_non_null(strstr(fs_last_error(), "cannot connect to 127.0.0.1:1"));
    assert_int_equal(fs_broker_start(b), FS_EIO);
    assert_int_equal(fs_publish_bytes(b, "x", "y", 1), FS_EIO);
    assert_string_equal(fs_last_publish_error_type(), "ConnectionError");
    fs_broker_free(b);
}

static void urls(void **state)
{
    (void)state;
    fs_broker *b;
    assert_int_equal(fs_broker_new("redis://127.0.0.1:6379/notanumber", NULL, &b), FS_EINVAL);
    assert_non_null(strstr(fs_last_error(), "database"));
    assert_int_equal(fs_broker_new("redis://127.0.0.1/0?format=xml", NULL, &b), FS_EINVAL);
    assert_int_equal(fs_broker_new("redis://127.0.0.1/0?client_name=a%20b", NULL, &b), FS_EINVAL);
    assert_int_equal(fs_redis_broker_new("rediss://127.0.0.1/0", NULL, &b), FS_EUNSUPPORTED);
    assert_int_equal(fs_redis_broker_new("amqp://127.0.0.1/0", NULL, &b), FS_EINVAL);
    /* a password the server does not expect: AUTH fails and says why */
    char url[96];
    snprintf(url, sizeof url, "redis://:secret@127.0.0.1:%d/0", rt_port());
    assert_int_equal(fs_broker_new(url, NULL, &b), FS_OK);
    assert_int_equal(fs_broker_connect(b), FS_EBROKER);
    assert_non_null(strstr(fs_last_error(), "AUTH"));
    fs_broker_free(b);
    /* an ACL user with a password: AUTH user password */
    char user[64];
    snprintf(user, sizeof user, "fstest-%ld", (long)getpid());
    rt_ok(rc, "ACL SETUSER %s on >pw%%20x ~* &* +@all", user);
    snprintf(url, sizeof url, "redis://%s:pw%%2520x@127.0.0.1:%d/0", user, rt_port());
    assert_int_equal(fs_broker_new(url, NULL, &b), FS_OK);
    int auth_rc = fs_broker_connect(b);
    rt_ok(rc, "ACL DELUSER %s", user);
    if (auth_rc != FS_OK)
        fail_msg("AUTH as %s: %s", user, fs_last_error());
    fs_broker_free(b);
    /* another database: what we publish lands there */
    snprintf(url, sizeof url, "redis://127.0.0.1:%d/3", rt_port());
    assert_int_equal(fs_broker_new(url, NULL, &b), FS_OK);
    assert_int_equal(fs_broker_connect(b), FS_OK);
    assert_int_equal(fs_broker_ping(b, 1000), FS_OK);
    char key[64];
    rt_key(key, sizeof key, "db3");
    assert_int_equal(publish_kind(b, key, FS_REDIS_LIST, "x", NULL, 0), FS_OK);
    rt_ok(rc, "SELECT 3");
    assert_int_equal(rt_int(rc, "LLEN %s", key), 1);
    rt_ok(rc, "DEL %s", key);
    rt_ok(rc, "SELECT 0");
    fs_broker_free(b);
}

static void channel_subscribe_publish(void **state)
{
    (void)state;
    char ch[64];
    rt_key(ch, sizeof ch, "chan");
    fs_broker *b = rt_broker();
    ts_log l;
    ts_log_init(&l);
    l.outcome = FS_OUTCOME_ERROR; /* no acknowledgement: nothing comes back */
    fs_redis_subscriber_options ro = sub_opts(FS_REDIS_CHANNEL);
    rt_subscribe(b, ch, &ro, &l, FS_ACK_POLICY_NACK_ON_ERROR, 2, 0);
    assert_int_equal(fs_broker_start(b), FS_OK);
    fs_header h[] = {{"x-tenant", "acme", 0}};
    fs_envelope env = FS_ENVELOPE_INIT;
    env.body = "hello";
    env.body_len = 5;
    env.headers = h;
    env.header_count = 1;
    env.correlation_id = "corr-1";
    env.reply_to = "back";
    env.content_type = "text/plain";
    assert_int_equal(fs_publish(b, ch, &env), FS_OK); /* default kind: channel */
    assert_int_equal(fs_publish_bytes(b, ch, "two", 3), FS_OK);
    assert_true(ts_wait_n(&l, 2, WAIT_MS));
    ts_sleep_ms(100);
    assert_int_equal(ts_log_count(&l), 2); /* errors under NACK_ON_ERROR: no redelivery */
    /* two workers: the order they record in is not the order of arrival */
    size_t first = fs_message_body_len(l.msgs[0]) == 5 ? 0 : 1;
    fs_message *m = l.msgs[first];
    assert_memory_equal(fs_message_body(m), "hello", 5);
    assert_string_equal(fs_message_source(m), ch);
    assert_string_equal(fs_message_header(m, "x-tenant"), "acme");
    assert_string_equal(fs_message_correlation_id(m), "corr-1");
    assert_string_equal(fs_message_reply_to(m), "back");
    assert_string_equal(fs_message_content_type(m), "text/plain");
    /* a correlation id is generated when none is given (uuid4) */
    const char *cid = fs_message_correlation_id(l.msgs[1 - first]);
    assert_non_null(cid);
    assert_int_equal(strlen(cid), 36);
    assert_int_equal(cid[14], '4');
    fs_broker_free(b);
    ts_log_free(&l);
}

static void channel_pattern_reports_the_concrete_channel(void **state)
{
    (void)state;
    char pat[64], a[64], c[64];
    rt_key(pat, sizeof pat, "ev.*");
    rt_key(a, sizeof a, "ev.created");
    rt_key(c, sizeof c, "ev.deleted");
    fs_broker *b = rt_broker();
    ts_log l;
    ts_log_init(&l);
    fs_redis_subscriber_options ro = sub_opts(FS_REDIS_CHANNEL);
    ro.pattern = true;
    rt_subscribe(b, pat, &ro, &l, FS_ACK_POLICY_DEFAULT, 1, 0);
    assert_int_equal(fs_broker_start(b), FS_OK);
    assert_int_equal(fs_publish_bytes(b, a, "1", 1), FS_OK);
    assert_int_equal(fs_publish_bytes(b, c, "2", 1), FS_OK);
    assert_true(ts_wait_n(&l, 2, WAIT_MS));
    assert_string_equal(fs_message_source(l.msgs[0]), a);
    assert_string_equal(fs_message_source(l.msgs[1]), c);
    fs_broker_free(b);
    ts_log_free(&l);
}

static const char *seen_pattern;
static char seen_pattern_buf[64], seen_entry_buf[64];
static fs_outcome info_handler(fs_message *m, void *user)
{
    (void)user;
    const fs_redis_message_info *info = fs_message_raw(m);
    if (info && info->pattern)
        snprintf(seen_pattern_buf, sizeof seen_pattern_buf, "%s", info->pattern);
    if (info && info->entry_id)
        snprintf(seen_entry_buf, sizeof seen_entry_buf, "%s", info->entry_id);
    seen_pattern = seen_pattern_buf;
    return FS_OUTCOME_OK;
}

static void raw_info(void **state)
{
    (void)state;
    char pat[64], a[64];
    rt_key(pat, sizeof pat, "info.*");
    rt_key(a, sizeof a, "info.x");
    fs_broker *b = rt_broker();
    fs_redis_subscriber_options ro = sub_opts(FS_REDIS_CHANNEL);
    ro.pattern = true;
    fs_subscriber_options so = FS_SUBSCRIBER_OPTIONS_INIT;
    so.broker_options = &ro;
    fs_subscriber *sub;
    assert_int_equal(fs_subscribe(b, pat, info_handler, NULL, &so, &sub), FS_OK);
    assert_int_equal(fs_broker_start(b), FS_OK);
    assert_int_equal(fs_publish_bytes(b, a, "1", 1), FS_OK);
    assert_int_equal(fs_subscriber_wait_handled(sub, 1, WAIT_MS), FS_OK);
    assert_string_equal(seen_pattern_buf, pat);
    fs_broker_free(b);
}

static void list_single_and_batch(void **state)
{
    (void)state;
    char q[64];
    rt_key(q, sizeof q, "list");
    fs_broker *b = rt_broker();
    assert_int_equal(fs_broker_connect(b), FS_OK);
    /* published before anyone consumes: a list keeps them */
    for (int i = 0; i < 5; i++) {
        char body[16];
        snprintf(body, sizeof body, "m%d", i);
        assert_int_equal(publish_kind(b, q, FS_REDIS_LIST, body, NULL, 0), FS_OK);
    }
    assert_int_equal(rt_int(rc, "LLEN %s", q), 5);
    ts_log l;
    ts_log_init(&l);
    fs_redis_subscriber_options ro = sub_opts(FS_REDIS_LIST);
    rt_subscribe(b, q, &ro, &l, FS_ACK_POLICY_DEFAULT, 1, 0);
    assert_int_equal(fs_broker_start(b), FS_OK);
    assert_true(ts_wait_n(&l, 5, WAIT_MS));
    char buf[64];
    for (int i = 0; i < 5; i++) { /* FIFO */
        char want[16];
        snprintf(want, sizeof want, "m%d", i);
        assert_string_equal(ts_body(&l, (size_t)i, buf, sizeof buf), want);
        assert_string_equal(fs_message_source(l.msgs[i]), q);
    }
    fs_broker_free(b);
    ts_log_free(&l);

    /* batch: one RPUSH publishes 25; the subscriber takes up to 10 at once */
    b = rt_broker();
    ts_log_init(&l);
    rt_subscribe(b, q, &ro, &l, FS_ACK_POLICY_DEFAULT, 1, 10);
    fs_redis_publish_options po = FS_REDIS_PUBLISH_OPTIONS_INIT;
    po.kind = FS_REDIS_LIST;
    fs_envelope envs[25];
    char bodies[25][16];
    for (int i = 0; i < 25; i++) {
        snprintf(bodies[i], sizeof bodies[i], "b%02d", i);
        ts_envelope(&envs[i], bodies[i], &po);
    }
    assert_int_equal(fs_broker_connect(b), FS_OK);
    assert_int_equal(fs_publish_batch(b, q, envs, 25), FS_OK);
    assert_int_equal(rt_int(rc, "LLEN %s", q), 25);
    assert_int_equal(fs_broker_start(b), FS_OK);
    assert_true(ts_wait_n(&l, 25, WAIT_MS));
    assert_true(l.max_batch > 1 && l.max_batch <= 10);
    for (int i = 0; i < 25; i++)
        assert_string_equal(ts_body(&l, (size_t)i, buf, sizeof buf), bodies[i]);
    assert_int_equal(rt_int(rc, "LLEN %s", q), 0);
    fs_broker_free(b);
    ts_log_free(&l);
}

/*
 * Replies are built in blocks (src/brokers/redis/conn.c): a batch whose
 * values outgrow the first block (4 KB), one larger than a block's cap
 * (1 MB), and small values after them, from a list and from a stream, come
 * out whole and in order, also after the reply that held them is freed.
 */
static void large_values_span_reply_blocks(void **state)
{
    (void)state;
    static const size_t sizes[] = {10, 5000, 3 << 20, 100, 70000, 1, 4096};
    enum { N = sizeof sizes / sizeof sizes[0] };
    char *bodies[N];
    for (size_t i = 0; i < N; i++) {
        bodies[i] = malloc(sizes[i] + 1);
        assert_non_null(bodies[i]);
        for (size_t k = 0; k < sizes[i]; k++)
            bodies[i][k] = (char)('a' + (k * 7 + i) % 26);
        bodies[i][sizes[i]] = '\0';
    }
    for (int kind = FS_REDIS_LIST; kind <= FS_REDIS_STREAM; kind++) {
        char q[64];
        rt_key(q, sizeof q, kind == FS_REDIS_LIST ? "biglist" : "bigstream");
        freeReplyObject(rt_cmd(rc, "DEL %s", q));
        fs_broker *b = rt_broker();
        ts_log l;
        ts_log_init(&l);
        fs_redis_subscriber_options ro = sub_opts((fs_redis_kind)kind);
        if (kind == FS_REDIS_STREAM) {
            ro.group = "g";
            ro.start_id = "0";
        }
        assert_int_equal(fs_broker_connect(b), FS_OK);
        for (size_t i = 0; i < N; i++)
            assert_int_equal(publish_kind(b, q, (fs_redis_kind)kind, bodies[i], NULL, 0), FS_OK);
        rt_subscribe(b, q, &ro, &l, FS_ACK_POLICY_DEFAULT, 1, 10);
        assert_int_equal(fs_broker_start(b), FS_OK);
        assert_true(ts_wait_n(&l, N, WAIT_MS));
        assert_true(l.max_batch > 1);
        for (size_t i = 0; i < N; i++) {
            assert_int_equal(fs_message_body_len(l.msgs[i]), sizes[i]);
            assert_memory_equal(fs_message_body(l.msgs[i]), bodies[i], sizes[i]);
            assert_string_equal(fs_message_source(l.msgs[i]), q);
        }
        fs_broker_free(b);
        ts_log_free(&l);
        freeReplyObject(rt_cmd(rc, "DEL %s", q));
    }
    for (size_t i = 0; i < N; i++)
        free(bodies[i]);
}

static _Atomic int slow_handled;
static fs_outcome slow(fs_message *m, void *user)
{
    (void)m;
    (void)user;
    ts_sleep_ms(5);
    atomic_fetch_add(&slow_handled, 1);
    return FS_OUTCOME_OK;
}

static bool slow_at_least_20(void *arg)
{
    (void)arg;
    return atomic_load(&slow_handled) >= 20;
}

/* Stopping in the middle loses nothing: what was popped but not handled goes back. */
static void list_shutdown_loses_nothing(void **state)
{
    (void)state;
    char q[64];
    rt_key(q, sizeof q, "list-stop");
    fs_broker *b = rt_broker();
    fs_redis_publish_options po = FS_REDIS_PUBLISH_OPTIONS_INIT;
    po.kind = FS_REDIS_LIST;
    fs_envelope envs[200];
    for (int i = 0; i < 200; i++) {
        ts_envelope(&envs[i], "x", &po);
    }
    assert_int_equal(fs_broker_connect(b), FS_OK);
    assert_int_equal(fs_publish_batch(b, q, envs, 200), FS_OK);
    fs_redis_subscriber_options ro = sub_opts(FS_REDIS_LIST);
    fs_subscriber_options so = FS_SUBSCRIBER_OPTIONS_INIT;
    so.broker_options = &ro;
    so.concurrency = 4;
    atomic_store(&slow_handled, 0);
    assert_int_equal(fs_subscribe(b, q, slow, NULL, &so, NULL), FS_OK);
    assert_int_equal(fs_broker_start(b), FS_OK);
    assert_true(ts_wait(slow_at_least_20, NULL, WAIT_MS));
    assert_int_equal(fs_broker_stop(b), FS_OK);
    fs_broker_free(b); /* closes: popped-but-unhandled messages are pushed back */
    int handled = atomic_load(&slow_handled);
    assert_true(handled < 200);
    assert_int_equal(handled + rt_int(rc, "LLEN %s", q), 200);
}

/* A stream subscriber with a group; `dlq` may be NULL. */
static fs_broker *stream_setup(const char *stream, const char *group, const char *dlq, ts_log *l,
                               fs_ack_policy policy, size_t batch)
{
    fs_broker *b = rt_broker();
    fs_redis_subscriber_options ro = sub_opts(FS_REDIS_STREAM);
    ro.group = group;
    ro.dead_letter = dlq;
    rt_subscribe(b, stream, &ro, l, policy, 2, batch);
    if (fs_broker_start(b) < 0)
        fail_msg("start: %s", fs_last_error());
    return b;
}

static void stream_ack(void **state)
{
    (void)state;
    char s[64];
    rt_key(s, sizeof s, "stream-ack");
    ts_log l;
    ts_log_init(&l);
    fs_broker *b = stream_setup(s, "g", NULL, &l, FS_ACK_POLICY_DEFAULT, 0);
    for (int i = 0; i < 10; i++) {
        char body[16];
        snprintf(body, sizeof body, "s%d", i);
        assert_int_equal(publish_kind(b, s, FS_REDIS_STREAM, body, NULL, 0), FS_OK);
    }
    assert_true(ts_wait_n(&l, 10, WAIT_MS));
    fs_broker_stop(b);
    assert_int_equal(rt_pending(rc, s, "g"), 0);
    assert_int_equal(rt_int(rc, "XLEN %s", s), 10);
    /* no message_id header: FastStream's rule, the (generated) correlation id, not the entry id */
    assert_non_null(fs_message_id(l.msgs[0]));
    assert_string_equal(fs_message_id(l.msgs[0]), fs_message_correlation_id(l.msgs[0]));
    fs_broker_free(b);
    ts_log_free(&l);
}

/*
 * A nacked entry comes back after the redelivery delay (not in a hot loop),
 * with the pending entry's delivery count, and after max_deliveries it is
 * rejected: moved to the dead-letter stream and acknowledged.
 */
static void stream_nack_delay_count_max(void **state)
{
    (void)state;
    char s[64], dlq[64];
    rt_key(s, sizeof s, "stream-nack-max");
    rt_key(dlq, sizeof dlq, "stream-nack-dlq");
    ts_log l;
    ts_log_init(&l);
    l.outcome = FS_OUTCOME_NACK;
    fs_broker *b = rt_broker();
    fs_redis_subscriber_options ro = sub_opts(FS_REDIS_STREAM);
    ro.group = "g";
    ro.dead_letter = dlq;
    fs_subscriber_options so = FS_SUBSCRIBER_OPTIONS_INIT;
    so.broker_options = &ro;
    so.redelivery.delay_ms = 30;
    so.redelivery.max_deliveries = 3;
    fs_subscriber *sub;
    assert_int_equal(fs_subscribe(b, s, ts_record, &l, &so, &sub), FS_OK);
    assert_int_equal(fs_broker_start(b), FS_OK);
    assert_int_equal(publish_kind(b, s, FS_REDIS_STREAM, "n", NULL, 0), FS_OK);
    assert_true(ts_wait_n(&l, 3, WAIT_MS));
    for (int i = 0; i < 400 && rt_int(rc, "XLEN %s", dlq) < 1; i++)
        ts_sleep_ms(5);
    ts_sleep_ms(150); /* a hot loop would have delivered it thousands of times by now */
    fs_broker_stop(b);
    assert_int_equal(ts_log_count(&l), 3);
    for (size_t i = 0; i < 3; i++)
        assert_int_equal(fs_message_delivery_count(l.msgs[i]), i + 1);
    assert_int_equal(rt_int(rc, "XLEN %s", dlq), 1);
    assert_int_equal(rt_pending(rc, s, "g"), 0);
    fs_broker_free(b);
    ts_log_free(&l);
    redisReply *r = rt_cmd(rc, "DEL %s %s", s, dlq);
    freeReplyObject(r);
}

static void stream_nack_redelivers(void **state)
{
    (void)state;
    char s[64];
    rt_key(s, sizeof s, "stream-nack");
    ts_log l;
    ts_log_init(&l);
    l.nack_first = true;
    fs_broker *b = stream_setup(s, "g", NULL, &l, FS_ACK_POLICY_DEFAULT, 0);
    assert_int_equal(publish_kind(b, s, FS_REDIS_STREAM, "a", NULL, 0), FS_OK);
    assert_int_equal(publish_kind(b, s, FS_REDIS_STREAM, "b", NULL, 0), FS_OK);
    assert_true(ts_wait_n(&l, 4, WAIT_MS)); /* each twice: nacked, then acked */
    fs_broker_stop(b);
    assert_int_equal(ts_count_body(&l, "a"), 2);
    assert_int_equal(ts_count_body(&l, "b"), 2);
    assert_int_equal(rt_pending(rc, s, "g"), 0);
    fs_broker_free(b);
    ts_log_free(&l);

    /* NACK_ON_ERROR: a failing handler sees the entry again, and again */
    ts_log_init(&l);
    l.outcome = FS_OUTCOME_ERROR;
    b = stream_setup(s, "g2", NULL, &l, FS_ACK_POLICY_NACK_ON_ERROR, 0);
    assert_int_equal(publish_kind(b, s, FS_REDIS_STREAM, "c", NULL, 0), FS_OK);
    assert_true(ts_wait_n(&l, 3, WAIT_MS));
    fs_broker_stop(b);
    assert_true(ts_count_body(&l, "c") >= 3);
    assert_int_equal(rt_pending(rc, s, "g2"), 1); /* still pending */
    fs_broker_free(b);
    ts_log_free(&l);
}

static void stream_reject_dead_letters(void **state)
{
    (void)state;
    char s[64], dlq[64];
    rt_key(s, sizeof s, "stream-rej");
    rt_key(dlq, sizeof dlq, "stream-rej-dlq");
    ts_log l;
    ts_log_init(&l);
    l.outcome = FS_OUTCOME_ERROR; /* REJECT_ON_ERROR (Redis' default) rejects */
    fs_broker *b = stream_setup(s, "g", dlq, &l, FS_ACK_POLICY_DEFAULT, 0);
    fs_header h[] = {{"k", "v", 0}};
    assert_int_equal(publish_kind(b, s, FS_REDIS_STREAM, "bad", h, 1), FS_OK);
    assert_true(ts_wait_n(&l, 1, WAIT_MS));
    fs_broker_stop(b);
    assert_int_equal(ts_count_body(&l, "bad"), 1);
    assert_int_equal(rt_pending(rc, s, "g"), 0);
    /* the dead-letter stream holds the same __data__ value */
    redisReply *orig = rt_cmd(rc, "XRANGE %s - +", s);
    redisReply *dead = rt_cmd(rc, "XRANGE %s - +", dlq);
    assert_int_equal(dead->elements, 1);
    redisReply *of = orig->element[0]->element[1], *df = dead->element[0]->element[1];
    assert_int_equal(df->elements, of->elements);
    assert_string_equal(df->element[0]->str, "__data__");
    assert_int_equal(df->element[1]->len, of->element[1]->len);
    assert_memory_equal(df->element[1]->str, of->element[1]->str, of->element[1]->len);
    freeReplyObject(orig);
    freeReplyObject(dead);
    fs_broker_free(b);
    ts_log_free(&l);

    /* explicit reject without a dead-letter stream: acked and dropped */
    ts_log_init(&l);
    l.settle = TS_SETTLE_REJECT;
    b = stream_setup(s, "g3", NULL, &l, FS_ACK_POLICY_DEFAULT, 0);
    assert_int_equal(publish_kind(b, s, FS_REDIS_STREAM, "rej", NULL, 0), FS_OK);
    assert_true(ts_wait_n(&l, 1, WAIT_MS));
    fs_broker_stop(b);
    assert_int_equal(rt_pending(rc, s, "g3"), 0);
    assert_int_equal(rt_int(rc, "XLEN %s", dlq), 1);
    fs_broker_free(b);
    ts_log_free(&l);
}

static void stream_manual_and_skip_leave_pending(void **state)
{
    (void)state;
    char s[64];
    rt_key(s, sizeof s, "stream-manual");
    ts_log l;
    ts_log_init(&l);
    fs_broker *b = stream_setup(s, "g", NULL, &l, FS_ACK_POLICY_MANUAL, 0);
    assert_int_equal(publish_kind(b, s, FS_REDIS_STREAM, "m", NULL, 0), FS_OK);
    assert_true(ts_wait_n(&l, 1, WAIT_MS));
    fs_broker_stop(b);
    assert_int_equal(rt_pending(rc, s, "g"), 1);
    fs_broker_free(b);
    ts_log_free(&l);
    /* ACK_FIRST: acked before the handler runs, even when it fails */
    ts_log_init(&l);
    l.outcome = FS_OUTCOME_ERROR;
    b = stream_setup(s, "g2", NULL, &l, FS_ACK_POLICY_ACK_FIRST, 0);
    assert_int_equal(publish_kind(b, s, FS_REDIS_STREAM, "f", NULL, 0), FS_OK);
    assert_true(ts_wait_n(&l, 1, WAIT_MS));
    fs_broker_stop(b);
    assert_int_equal(rt_pending(rc, s, "g2"), 0);
    fs_broker_free(b);
    ts_log_free(&l);
}

static void stream_batches(void **state)
{
    (void)state;
    char s[64];
    rt_key(s, sizeof s, "stream-batch");
    ts_log l;
    ts_log_init(&l);
    fs_broker *b = rt_broker();
    fs_redis_subscriber_options ro = sub_opts(FS_REDIS_STREAM);
    ro.group = "g";
    ro.start_id = "0"; /* the group starts at the beginning: published first */
    rt_subscribe(b, s, &ro, &l, FS_ACK_POLICY_DEFAULT, 1, 5);
    assert_int_equal(fs_broker_connect(b), FS_OK);
    fs_redis_publish_options po = FS_REDIS_PUBLISH_OPTIONS_INIT;
    po.kind = FS_REDIS_STREAM;
    fs_envelope envs[12];
    char bodies[12][8];
    for (int i = 0; i < 12; i++) {
        snprintf(bodies[i], sizeof bodies[i], "e%d", i);
        ts_envelope(&envs[i], bodies[i], &po);
    }
    assert_int_equal(fs_publish_batch(b, s, envs, 12), FS_OK);
    assert_int_equal(fs_broker_start(b), FS_OK);
    assert_true(ts_wait_n(&l, 12, WAIT_MS));
    fs_broker_stop(b);
    assert_true(l.max_batch > 1 && l.max_batch <= 5);
    assert_int_equal(rt_pending(rc, s, "g"), 0);
    char buf[16];
    for (int i = 0; i < 12; i++)
        assert_string_equal(ts_body(&l, (size_t)i, buf, sizeof buf), bodies[i]);
    fs_broker_free(b);
    ts_log_free(&l);
}

static void stream_without_group_and_maxlen(void **state)
{
    (void)state;
    char s[64];
    rt_key(s, sizeof s, "stream-nogroup");
    rt_ok(rc, "XADD %s * __data__ old", s); /* before the subscriber: not read ("$") */
    ts_log l;
    ts_log_init(&l);
    fs_broker *b = rt_broker();
    fs_redis_subscriber_options ro = sub_opts(FS_REDIS_STREAM);
    rt_subscribe(b, s, &ro, &l, FS_ACK_POLICY_DEFAULT, 1, 0);
    assert_int_equal(fs_broker_start(b), FS_OK);
    for (int i = 0; i < 3; i++)
        assert_int_equal(publish_kind(b, s, FS_REDIS_STREAM, "new", NULL, 0), FS_OK);
    assert_true(ts_wait_n(&l, 3, WAIT_MS));
    ts_sleep_ms(100);
    assert_int_equal(ts_count_body(&l, "old"), 0);
    assert_int_equal(ts_count_body(&l, "new"), 3);
    fs_broker_free(b);
    ts_log_free(&l);

    /* MAXLEN ~: the stream is trimmed (at node granularity) */
    char t[64];
    rt_key(t, sizeof t, "stream-maxlen");
    b = rt_broker();
    fs_redis_publish_options po = FS_REDIS_PUBLISH_OPTIONS_INIT;
    po.kind = FS_REDIS_STREAM;
    po.maxlen = 10;
    for (int i = 0; i < 1000; i++)
        assert_int_equal(ts_publish_with(b, t, "x", &po), FS_OK);
    assert_true(rt_int(rc, "XLEN %s", t) < 1000);
    fs_broker_free(b);
}

/* ------------------------------------------------------------------------ */
/* FastStream's formats over the server                                     */

static void our_bytes_parse_by_faststream_rules(void **state)
{
    (void)state;
    char q[64];
    rt_key(q, sizeof q, "fmt-out");
    fs_broker *b = rt_broker();
    fs_header h[] = {{"x", "1", 0}};
    fs_redis_publish_options po = FS_REDIS_PUBLISH_OPTIONS_INIT;
    po.kind = FS_REDIS_LIST;
    fs_envelope env = FS_ENVELOPE_INIT;
    env.body = "{\"a\":1}";
    env.body_len = 7;
    env.headers = h;
    env.header_count = 1;
    env.correlation_id = "cid";
    env.reply_to = "rt";
    env.content_type = "application/json";
    env.broker_options = &po;
    assert_int_equal(fs_publish(b, q, &env), FS_OK); /* default format: binary v1 */
    redisReply *r = rt_cmd(rc, "LPOP %s", q);
    assert_int_equal(r->type, REDIS_REPLY_STRING);
    ref_msg m;
    ref_parse(r->str, r->len, &m);
    assert_string_equal(m.keys[0], "correlation_id");
    assert_string_equal(ref_header(&m, "correlation_id"), "cid");
    assert_string_equal(ref_header(&m, "content-type"), "application/json");
    assert_string_equal(ref_header(&m, "reply_to"), "rt");
    assert_string_equal(ref_header(&m, "x"), "1");
    assert_int_equal(m.data_len, 7);
    assert_memory_equal(m.data, "{\"a\":1}", 7);
    freeReplyObject(r);

    /* JSON envelope, chosen per message */
    po.format = FS_REDIS_FORMAT_JSON;
    assert_int_equal(fs_publish(b, q, &env), FS_OK);
    r = rt_cmd(rc, "LPOP %s", q);
    assert_string_equal(r->str, "{\"data\":\"{\\\"a\\\":1}\",\"headers\":{\"correlation_id\":"
                                "\"cid\",\"content-type\":\"application/json\",\"reply_to\":"
                                "\"rt\",\"x\":\"1\"}}");
    freeReplyObject(r);
    /* raw: the body alone */
    po.format = FS_REDIS_FORMAT_RAW;
    assert_int_equal(fs_publish(b, q, &env), FS_OK);
    r = rt_cmd(rc, "LPOP %s", q);
    assert_string_equal(r->str, "{\"a\":1}");
    freeReplyObject(r);
    /* a stream entry carries it in __data__ */
    po.kind = FS_REDIS_STREAM;
    po.format = FS_REDIS_FORMAT_DEFAULT;
    assert_int_equal(fs_publish(b, q, &env), FS_OK);
    r = rt_cmd(rc, "XRANGE %s - +", q);
    redisReply *f = r->element[0]->element[1];
    assert_int_equal(f->elements, 2);
    assert_string_equal(f->element[0]->str, "__data__");
    ref_parse(f->element[1]->str, f->element[1]->len, &m);
    assert_string_equal(ref_header(&m, "correlation_id"), "cid");
    freeReplyObject(r);
    fs_broker_free(b);

    /* the broker-wide format from the URL */
    char url[96];
    snprintf(url, sizeof url, "redis://127.0.0.1:%d/0?format=json", rt_port());
    assert_int_equal(fs_broker_new(url, NULL, &b), FS_OK);
    po.kind = FS_REDIS_LIST;
    po.format = FS_REDIS_FORMAT_DEFAULT;
    char q2[64];
    rt_key(q2, sizeof q2, "fmt-url");
    assert_int_equal(fs_publish(b, q2, &env), FS_OK);
    r = rt_cmd(rc, "LPOP %s", q2);
    assert_memory_equal(r->str, "{\"data\":", 8);
    freeReplyObject(r);
    /* a body that is not UTF-8 cannot go into JSON: FastStream's error type name */
    fs_envelope bad = env;
    bad.body = "\xff\xfe";
    bad.body_len = 2;
    assert_int_equal(fs_publish(b, q2, &bad), FS_EINVAL);
    assert_string_equal(fs_last_publish_error_type(), "UnicodeDecodeError");
    fs_broker_free(b);
}

static void faststream_bytes_parse_in_ours(void **state)
{
    (void)state;
    char q[64], s[64], ch[64];
    rt_key(q, sizeof q, "fmt-in-list");
    rt_key(s, sizeof s, "fmt-in-stream");
    rt_key(ch, sizeof ch, "fmt-in-chan");
    fs_broker *b = rt_broker();
    ts_log lq, ls, lc;
    ts_log_init(&lq);
    ts_log_init(&ls);
    ts_log_init(&lc);
    fs_redis_subscriber_options rl = sub_opts(FS_REDIS_LIST);
    fs_redis_subscriber_options rs = sub_opts(FS_REDIS_STREAM);
    rs.group = "g";
    fs_redis_subscriber_options rch = sub_opts(FS_REDIS_CHANNEL);
    rt_subscribe(b, q, &rl, &lq, FS_ACK_POLICY_DEFAULT, 1, 0);
    rt_subscribe(b, s, &rs, &ls, FS_ACK_POLICY_DEFAULT, 1, 0);
    rt_subscribe(b, ch, &rch, &lc, FS_ACK_POLICY_DEFAULT, 1, 0);
    assert_int_equal(fs_broker_start(b), FS_OK);

    ref_bytes bin;
    const char *pairs[] = {"correlation_id",   "py-1",     "content-type",
                           "application/json", "reply_to", "py-replies",
                           "message_id",       "mid-7",    NULL};
    ref_binary(&bin, pairs, "[1,2]", 5);
    freeReplyObject(rt_cmd(rc, "RPUSH %s %b", q, bin.d, bin.n));
    freeReplyObject(rt_cmd(rc, "XADD %s * __data__ %b", s, bin.d, bin.n));
    freeReplyObject(rt_cmd(rc, "PUBLISH %s %b", ch, bin.d, bin.n));
    /* JSON envelope as Python's json.dumps writes it */
    const char *js = "{\"data\": \"caf\\u00e9\", \"headers\": {\"correlation_id\": \"py-2\"}}";
    freeReplyObject(rt_cmd(rc, "RPUSH %s %s", q, js));
    /* raw bodies */
    freeReplyObject(rt_cmd(rc, "RPUSH %s %s", q, "plain"));
    /* a stream entry without __data__: its fields as a JSON object */
    freeReplyObject(rt_cmd(rc, "XADD %s * temp 21", s));
    assert_true(ts_wait_n(&lq, 3, WAIT_MS));
    assert_true(ts_wait_n(&ls, 2, WAIT_MS));
    assert_true(ts_wait_n(&lc, 1, WAIT_MS));
    fs_broker_stop(b);

    fs_message *ms[] = {lq.msgs[0], ls.msgs[0], lc.msgs[0]};
    for (int i = 0; i < 3; i++) {
        assert_int_equal(fs_message_body_len(ms[i]), 5);
        assert_memory_equal(fs_message_body(ms[i]), "[1,2]", 5);
        assert_string_equal(fs_message_correlation_id(ms[i]), "py-1");
        assert_string_equal(fs_message_reply_to(ms[i]), "py-replies");
        assert_string_equal(fs_message_content_type(ms[i]), "application/json");
        assert_string_equal(fs_message_id(ms[i]), "mid-7");
    }
    char buf[64];
    assert_string_equal(ts_body(&lq, 1, buf, sizeof buf), "caf\xc3\xa9");
    assert_string_equal(fs_message_correlation_id(lq.msgs[1]), "py-2");
    assert_string_equal(ts_body(&lq, 2, buf, sizeof buf), "plain");
    assert_int_equal(fs_message_header_count(lq.msgs[2]), 0);
    assert_string_equal(ts_body(&ls, 1, buf, sizeof buf), "{\"temp\":\"21\"}");
    assert_int_equal(rt_pending(rc, s, "g"), 0);
    fs_broker_free(b);
    ts_log_free(&lq);
    ts_log_free(&ls);
    ts_log_free(&lc);
}

/* ------------------------------------------------------------------------ */

static fs_outcome echo(fs_message *m, void *user)
{
    (void)user;
    char buf[128];
    int n = snprintf(buf, sizeof buf, "re:%.*s", (int)fs_message_body_len(m),
                     (const char *)fs_message_body(m));
    fs_message_reply(m, buf, (size_t)n, NULL, 0, NULL);
    return FS_OUTCOME_OK;
}

static void request_reply(void **state)
{
    (void)state;
    char svc[64];
    rt_key(svc, sizeof svc, "rpc");
    fs_broker *b = rt_broker();
    assert_int_equal(fs_subscribe(b, svc, echo, NULL, NULL, NULL), FS_OK);
    assert_int_equal(fs_broker_start(b), FS_OK);
    fs_envelope env = FS_ENVELOPE_INIT;
    env.body = "ping";
    env.body_len = 4;
    for (int i = 0; i < 3; i++) {
        fs_message *reply = NULL;
        assert_int_equal(fs_request(b, svc, &env, 5000, &reply), FS_OK);
        assert_int_equal(fs_message_body_len(reply), 7);
        assert_memory_equal(fs_message_body(reply), "re:ping", 7);
        fs_message_free(reply);
    }
    /* no responder: a timeout */
    char none[64];
    rt_key(none, sizeof none, "nobody");
    fs_message *reply = NULL;
    assert_int_equal(fs_request(b, none, &env, 200, &reply), FS_ETIMEDOUT);
    fs_broker_free(b);
}

/* ------------------------------------------------------------------------ */

static bool numsub_is_1(void *arg)
{
    redisReply *r = rt_cmd(rc, "PUBSUB NUMSUB %s", (const char *)arg);
    bool ok = r->type == REDIS_REPLY_ARRAY && r->elements == 2 && r->element[1]->integer == 1;
    freeReplyObject(r);
    return ok;
}

/* CLIENT KILL every connection named `name`; returns how many. */
static int kill_clients(const char *name)
{
    redisReply *r = rt_cmd(rc, "CLIENT LIST");
    int killed = 0;
    char want[96];
    snprintf(want, sizeof want, " name=%s ", name);
    for (char *line = strtok(r->str, "\n"); line; line = strtok(NULL, "\n")) {
        long long id;
        if (strstr(line, want) && sscanf(line, "id=%lld", &id) == 1) {
            redisReply *k = rt_cmd(rc, "CLIENT KILL ID %lld", id);
            killed += k->type == REDIS_REPLY_INTEGER ? (int)k->integer : 0;
            freeReplyObject(k);
        }
    }
    freeReplyObject(r);
    return killed;
}

static void reconnects_after_client_kill(void **state)
{
    (void)state;
    char ch[64], q[64], s[64];
    rt_key(ch, sizeof ch, "rc-chan");
    rt_key(q, sizeof q, "rc-list");
    rt_key(s, sizeof s, "rc-stream");
    char name[64], url[128];
    snprintf(name, sizeof name, "fstest-%ld", (long)getpid());
    snprintf(url, sizeof url, "redis://127.0.0.1:%d/0?client_name=%s", rt_port(), name);
    fs_broker *b;
    assert_int_equal(fs_broker_new(url, NULL, &b), FS_OK);
    ts_log lc, lq, ls;
    ts_log_init(&lc);
    ts_log_init(&lq);
    ts_log_init(&ls);
    fs_redis_subscriber_options rch = sub_opts(FS_REDIS_CHANNEL);
    fs_redis_subscriber_options rl = sub_opts(FS_REDIS_LIST);
    fs_redis_subscriber_options rs = sub_opts(FS_REDIS_STREAM);
    rs.group = "g";
    rt_subscribe(b, ch, &rch, &lc, FS_ACK_POLICY_DEFAULT, 1, 0);
    rt_subscribe(b, q, &rl, &lq, FS_ACK_POLICY_DEFAULT, 1, 0);
    rt_subscribe(b, s, &rs, &ls, FS_ACK_POLICY_DEFAULT, 1, 0);
    assert_int_equal(fs_broker_start(b), FS_OK);
    assert_int_equal(fs_publish_bytes(b, ch, "c1", 2), FS_OK);
    assert_int_equal(publish_kind(b, q, FS_REDIS_LIST, "l1", NULL, 0), FS_OK);
    assert_int_equal(publish_kind(b, s, FS_REDIS_STREAM, "s1", NULL, 0), FS_OK);
    assert_true(ts_wait_n(&lc, 1, WAIT_MS) && ts_wait_n(&lq, 1, WAIT_MS) &&
                ts_wait_n(&ls, 1, WAIT_MS));

    /* drop every connection of the broker: readers, pooled publishers, ackers */
    assert_true(kill_clients(name) >= 4);
    assert_true(ts_wait(numsub_is_1, ch, WAIT_MS)); /* resubscribed */
    assert_int_equal(fs_publish_bytes(b, ch, "c2", 2), FS_OK);
    assert_int_equal(publish_kind(b, q, FS_REDIS_LIST, "l2", NULL, 0), FS_OK);
    assert_int_equal(publish_kind(b, s, FS_REDIS_STREAM, "s2", NULL, 0), FS_OK);
    assert_true(ts_wait_n(&lc, 2, WAIT_MS));
    assert_true(ts_wait_n(&lq, 2, WAIT_MS));
    assert_true(ts_wait_n(&ls, 2, WAIT_MS));
    assert_int_equal(fs_broker_ping(b, 1000), FS_OK);
    fs_broker_stop(b);
    assert_int_equal(rt_pending(rc, s, "g"), 0);
    fs_broker_free(b);
    ts_log_free(&lc);
    ts_log_free(&lq);
    ts_log_free(&ls);
}

/* ------------------------------------------------------------------------ */
/* Pending entries: left by this consumer, and claimed from a dead one      */

static void own_pending_entries_are_delivered_again(void **state)
{
    (void)state;
    char s[64];
    rt_key(s, sizeof s, "own-pending");
    rt_ok(rc, "XGROUP CREATE %s g $ MKSTREAM", s);
    rt_ok(rc, "XADD %s * __data__ crashed", s);
    rt_ok(rc, "XADD %s 99999999999999-0 __data__ deleted", s);
    /* "c1" read them and died before acknowledging; one was deleted since */
    freeReplyObject(rt_cmd(rc, "XREADGROUP GROUP g c1 COUNT 10 STREAMS %s >", s));
    assert_int_equal(rt_int(rc, "XDEL %s 99999999999999-0", s), 1);
    assert_int_equal(rt_pending(rc, s, "g"), 2);
    ts_log l;
    ts_log_init(&l);
    fs_broker *b = rt_broker();
    fs_redis_subscriber_options ro = sub_opts(FS_REDIS_STREAM);
    ro.group = "g";
    ro.consumer = "c1"; /* restarts under the same name */
    rt_subscribe(b, s, &ro, &l, FS_ACK_POLICY_DEFAULT, 2, 0);
    assert_int_equal(fs_broker_start(b), FS_OK);
    assert_true(ts_wait_n(&l, 1, WAIT_MS));
    fs_broker_stop(b);
    assert_int_equal(ts_count_body(&l, "crashed"), 1);
    assert_int_equal(ts_count_body(&l, "deleted"), 0);
    assert_int_equal(rt_pending(rc, s, "g"), 0); /* the deleted one was cleared */
    fs_broker_free(b);
    ts_log_free(&l);
}

static void idle_entries_of_a_dead_consumer_are_claimed(void **state)
{
    (void)state;
    char s[64];
    rt_key(s, sizeof s, "claim");
    rt_ok(rc, "XGROUP CREATE %s g $ MKSTREAM", s);
    rt_ok(rc, "XADD %s * __data__ stranded", s);
    freeReplyObject(rt_cmd(rc, "XREADGROUP GROUP g dead COUNT 10 STREAMS %s >", s));
    ts_log l;
    ts_log_init(&l);
    fs_broker *b = rt_broker();
    fs_redis_subscriber_options ro = sub_opts(FS_REDIS_STREAM);
    ro.group = "g";
    ro.claim_min_idle_ms = 200;
    rt_subscribe(b, s, &ro, &l, FS_ACK_POLICY_DEFAULT, 1, 0);
    assert_int_equal(fs_broker_start(b), FS_OK);
    assert_true(ts_wait_n(&l, 1, WAIT_MS));
    fs_broker_stop(b);
    assert_int_equal(ts_count_body(&l, "stranded"), 1);
    assert_int_equal(rt_pending(rc, s, "g"), 0);
    fs_broker_free(b);
    ts_log_free(&l);
}

/* ------------------------------------------------------------------------ */

static void bad_options_are_refused(void **state)
{
    (void)state;
    fs_broker *b = rt_broker();
    ts_log l;
    ts_log_init(&l);
    fs_subscriber_options so = FS_SUBSCRIBER_OPTIONS_INIT;
    fs_redis_subscriber_options ro = sub_opts(FS_REDIS_LIST);
    ro.pattern = true;
    so.broker_options = &ro;
    assert_int_equal(fs_subscribe(b, "x", ts_record, &l, &so, NULL), FS_EINVAL);
    ro = sub_opts(FS_REDIS_CHANNEL);
    ro.group = "g";
    assert_int_equal(fs_subscribe(b, "x", ts_record, &l, &so, NULL), FS_EINVAL);
    ro = sub_opts(FS_REDIS_STREAM);
    ro.dead_letter = "d"; /* needs a group */
    assert_int_equal(fs_subscribe(b, "x", ts_record, &l, &so, NULL), FS_EINVAL);
    ro = sub_opts((fs_redis_kind)7);
    assert_int_equal(fs_subscribe(b, "x", ts_record, &l, &so, NULL), FS_EINVAL);
    /* a body the JSON format cannot carry: FastStream's UnicodeDecodeError */
    fs_redis_publish_options po = FS_REDIS_PUBLISH_OPTIONS_INIT;
    po.format = FS_REDIS_FORMAT_JSON;
    assert_int_equal(ts_publish_with(b, "x", "\xff", &po), FS_EINVAL);
    assert_string_equal(fs_last_publish_error_type(), "UnicodeDecodeError");
    /* a command the server refuses: a list name that holds a string */
    char k[64];
    rt_key(k, sizeof k, "wrongtype");
    rt_ok(rc, "SET %s 1", k);
    assert_int_equal(publish_kind(b, k, FS_REDIS_LIST, "x", NULL, 0), FS_EBROKER);
    assert_string_equal(fs_last_publish_error_type(), "ResponseError");
    assert_non_null(strstr(fs_last_error(), "WRONGTYPE"));
    /* a subscription the server refuses keeps failing politely (no busy loop, no crash) */
    fs_broker *b2 = rt_broker();
    ro = sub_opts(FS_REDIS_LIST);
    so.broker_options = &ro;
    assert_int_equal(fs_subscribe(b2, k, ts_record, &l, &so, NULL), FS_OK);
    assert_int_equal(fs_broker_start(b2), FS_OK);
    ts_sleep_ms(300);
    assert_int_equal(ts_log_count(&l), 0);
    fs_broker_free(b2);
    /* closed: no more publishing */
    assert_int_equal(fs_broker_close(b), FS_OK);
    assert_int_not_equal(fs_publish_bytes(b, "x", "y", 1), FS_OK);
    assert_int_equal(fs_broker_ping(b, 100), FS_ECLOSED);
    fs_broker_free(b);
    ts_log_free(&l);
}

int main(void)
{
    fs_set_log_level(FS_LOG_ERROR);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(unreachable_server_is_a_clear_error),
        cmocka_unit_test(urls),
        cmocka_unit_test(channel_subscribe_publish),
        cmocka_unit_test(channel_pattern_reports_the_concrete_channel),
        cmocka_unit_test(raw_info),
        cmocka_unit_test(list_single_and_batch),
        cmocka_unit_test(list_shutdown_loses_nothing),
        cmocka_unit_test(large_values_span_reply_blocks),
        cmocka_unit_test(stream_ack),
        cmocka_unit_test(stream_nack_redelivers),
        cmocka_unit_test(stream_nack_delay_count_max),
        cmocka_unit_test(stream_reject_dead_letters),
        cmocka_unit_test(stream_manual_and_skip_leave_pending),
        cmocka_unit_test(stream_batches),
        cmocka_unit_test(stream_without_group_and_maxlen),
        cmocka_unit_test(our_bytes_parse_by_faststream_rules),
        cmocka_unit_test(faststream_bytes_parse_in_ours),
        cmocka_unit_test(request_reply),
        cmocka_unit_test(reconnects_after_client_kill),
        cmocka_unit_test(own_pending_entries_are_delivered_again),
        cmocka_unit_test(idle_entries_of_a_dead_consumer_are_claimed),
        cmocka_unit_test(bad_options_are_refused),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
