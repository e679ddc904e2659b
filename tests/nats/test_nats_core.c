/*
 * Core NATS on the shared nats-server: wildcards with the concrete subject
 * as the source, FastStream's headers, queue groups sharing the load,
 * native request/reply and the fast "no responders" error.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "nats_test.h"
#include "support/port.h"

static void publish_with_headers(fs_broker *b, const char *subject, const char *body)
{
    fs_header h[] = {{.name = "x-tenant", .value = "acme"}};
    fs_envelope env;
    ts_envelope(&env, body, NULL);
    env.content_type = "application/json";
    env.correlation_id = "cid-42";
    env.headers = h;
    env.header_count = 1;
    assert_int_equal(fs_publish(b, subject, &env), FS_OK);
}

static void test_wildcards(void **state)
{
    (void)state;
    fs_broker *b = nt_broker();
    char star[96], gt[96], s1[96], s2[96], base[48];
    nt_name(base, sizeof base, "wild");
    snprintf(star, sizeof star, "%s.*.created", base);
    snprintf(gt, sizeof gt, "%s.>", base);
    snprintf(s1, sizeof s1, "%s.orders.created", base);
    snprintf(s2, sizeof s2, "%s.orders.eu.paid", base);
    ts_log ls, lg;
    ts_log_init(&ls);
    ts_log_init(&lg);
    nt_subscribe(b, star, &ls, NULL);
    nt_subscribe(b, gt, &lg, NULL);
    assert_int_equal(fs_broker_start(b), FS_OK);
    publish_with_headers(b, s1, "{\"a\":1}");
    publish_with_headers(b, s2, "{\"a\":2}");
    ts_expect_n(&lg, 2, 5000);
    ts_expect_n(&ls, 1, 5000);
    ts_sleep_ms(100);
    assert_int_equal(ts_log_count(&ls), 1); /* '*' is one token */
    fs_message *m = ts_msg(&ls, 0);
    assert_string_equal(fs_message_source(m), s1); /* the concrete subject, not the pattern */
    char buf[64];
    assert_string_equal(ts_body(&ls, 0, buf, sizeof buf), "{\"a\":1}");
    assert_string_equal(ts_str(fs_message_correlation_id(m)), "cid-42");
    assert_string_equal(ts_str(fs_message_content_type(m)), "application/json");
    assert_string_equal(ts_str(fs_message_header(m, "x-tenant")), "acme");
    bool saw1 = false, saw2 = false;
    for (size_t i = 0; i < 2; i++) {
        saw1 |= strcmp(fs_message_source(ts_msg(&lg, i)), s1) == 0;
        saw2 |= strcmp(fs_message_source(ts_msg(&lg, i)), s2) == 0;
    }
    assert_true(saw1 && saw2);
    fs_broker_free(b);
    ts_log_free(&ls);
    ts_log_free(&lg);
}

static void test_queue_group(void **state)
{
    (void)state;
    /* Two services (brokers) in one queue group share the messages; a third,
     * outside the group, sees every one. */
    fs_broker *a = nt_broker(), *c = nt_broker(), *o = nt_broker();
    char subject[64];
    nt_name(subject, sizeof subject, "queue");
    fs_nats_subscriber_options no = FS_NATS_SUBSCRIBER_OPTIONS_INIT;
    no.queue = "workers";
    fs_subscriber_options so = FS_SUBSCRIBER_OPTIONS_INIT;
    so.broker_options = &no;
    so.concurrency = 2;
    static ts_log la, lc, lo;
    ts_log_init(&la);
    ts_log_init(&lc);
    ts_log_init(&lo);
    nt_subscribe(a, subject, &la, &so);
    nt_subscribe(c, subject, &lc, &so);
    nt_subscribe(o, subject, &lo, NULL);
    assert_int_equal(fs_broker_start(a), FS_OK);
    assert_int_equal(fs_broker_start(c), FS_OK);
    assert_int_equal(fs_broker_start(o), FS_OK);
    enum { N = 400 };
    for (int i = 0; i < N; i++) {
        char body[16];
        snprintf(body, sizeof body, "%d", i);
        assert_int_equal(fs_publish_bytes(o, subject, body, strlen(body)), FS_OK);
    }
    ts_expect_n(&lo, N, 10000);
    double end = ts_now_s() + 10;
    while (ts_log_count(&la) + ts_log_count(&lc) < N && ts_now_s() < end)
        ts_sleep_ms(5);
    ts_sleep_ms(100);
    size_t na = ts_log_count(&la), nc = ts_log_count(&lc);
    assert_int_equal(na + nc, N); /* each message once within the group */
    assert_true(na > 0 && nc > 0);
    static bool seen[N];
    memset(seen, 0, sizeof seen);
    char buf[16];
    for (size_t i = 0; i < na; i++)
        seen[atoi(ts_body(&la, i, buf, sizeof buf))] = true;
    for (size_t i = 0; i < nc; i++) {
        int v = atoi(ts_body(&lc, i, buf, sizeof buf));
        assert_false(seen[v]);
        seen[v] = true;
    }
    fs_broker_free(a);
    fs_broker_free(c);
    fs_broker_free(o);
    ts_log_free(&la);
    ts_log_free(&lc);
    ts_log_free(&lo);
}

static fs_outcome echo(fs_message *m, void *user)
{
    (void)user;
    char out[128];
    int n = snprintf(out, sizeof out, "re:%.*s", (int)fs_message_body_len(m),
                     (const char *)fs_message_body(m));
    fs_message_reply(m, out, (size_t)n, NULL, 0, NULL);
    return FS_OUTCOME_OK;
}

static void test_request_reply(void **state)
{
    (void)state;
    fs_broker *b = nt_broker();
    char subject[64];
    nt_name(subject, sizeof subject, "rpc");
    assert_int_equal(fs_subscribe(b, subject, echo, NULL, NULL, NULL), FS_OK);
    assert_int_equal(fs_broker_start(b), FS_OK);
    fs_envelope env;
    ts_envelope(&env, "ping", NULL);
    env.correlation_id = "req-1";
    fs_message *reply = NULL;
    assert_int_equal(fs_request(b, subject, &env, 5000, &reply), FS_OK);
    assert_int_equal(fs_message_body_len(reply), 7);
    assert_memory_equal(fs_message_body(reply), "re:ping", 7);
    assert_string_equal(fs_message_correlation_id(reply), "req-1");
    fs_message_free(reply);

    /* Nobody listens: a clear error at once, not a timeout. */
    char nobody[64];
    nt_name(nobody, sizeof nobody, "nobody");
    double t0 = ts_now_s();
    reply = NULL;
    assert_int_equal(fs_request(b, nobody, &env, 10000, &reply), FS_ENOTFOUND);
    assert_true(ts_now_s() - t0 < 5.0);
    assert_null(reply);
    assert_non_null(strstr(fs_last_error(), "no responders"));
    assert_string_equal(fs_last_publish_error_type(), "NoRespondersError");
    fs_broker_free(b);
}

/* reply_to on a core publish is the NATS reply subject (FastStream's publish(reply_to=...)). */
static char seen_reply[96];
static fs_outcome note_reply(fs_message *m, void *user)
{
    (void)user;
    const char *r = fs_message_reply_to(m);
    snprintf(seen_reply, sizeof seen_reply, "%s", r ? r : "(none)");
    return FS_OUTCOME_OK;
}

static void test_reply_subject(void **state)
{
    (void)state;
    fs_broker *b = nt_broker();
    char subject[64];
    nt_name(subject, sizeof subject, "replyto");
    fs_subscriber *sub = NULL;
    assert_int_equal(fs_subscribe(b, subject, note_reply, NULL, NULL, &sub), FS_OK);
    assert_int_equal(fs_broker_start(b), FS_OK);
    nt_raw raw = nt_raw_connect();
    natsSubscription *rs = NULL;
    assert_int_equal(natsConnection_SubscribeSync(&rs, raw.nc, subject), NATS_OK);
    natsConnection_Flush(raw.nc);
    fs_header extra[] = {{.name = "x-a", .value = "1"}, {.name = "content-type", .value = "no"}};
    fs_envelope env;
    ts_envelope(&env, "x", NULL);
    env.reply_to = "answers.here";
    env.content_type = "text/plain";
    env.correlation_id = "c-9";
    env.headers = extra;
    env.header_count = 2;
    assert_int_equal(fs_publish(b, subject, &env), FS_OK);
    assert_int_equal(fs_subscriber_wait_handled(sub, 1, 5000), FS_OK);
    assert_string_equal(seen_reply, "answers.here");
    natsMsg *m = NULL;
    assert_int_equal(natsSubscription_NextMsg(&m, rs, 5000), NATS_OK);
    assert_string_equal(natsMsg_GetReply(m), "answers.here");
    const char *v = NULL;
    assert_int_equal(natsMsgHeader_Get(m, "reply_to", &v), NATS_NOT_FOUND); /* core: no header */
    /* what raw nats.c reads of our header block */
    assert_int_equal(natsMsgHeader_Get(m, "x-a", &v), NATS_OK);
    assert_string_equal(v, "1");
    assert_int_equal(natsMsgHeader_Get(m, "content-type", &v), NATS_OK);
    assert_string_equal(v, "text/plain"); /* ours replaces the user's */
    assert_int_equal(natsMsgHeader_Get(m, "correlation_id", &v), NATS_OK);
    assert_string_equal(v, "c-9");
    assert_int_equal(natsMsg_GetDataLength(m), 1);
    natsMsg_Destroy(m);
    natsSubscription_Destroy(rs);
    nt_raw_close(&raw);
    fs_broker_free(b);
}

/*
 * What a FastStream service publishes, byte for byte as nats-py writes it on
 * the wire (HPUB; "content-type: " empty when the body has none, then
 * correlation_id), sent on a plain socket: our subscriber reads the
 * correlation id although nats.c 3.4.1 misreads the empty value before it.
 */
static void raw_hpub(const char *subject, const char *headers, const char *body)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = port_loopback(nt_port());
    assert_int_equal(connect(fd, (struct sockaddr *)&a, sizeof a), 0);
    char buf[1024];
    size_t hl = strlen(headers), bl = strlen(body);
    int n = snprintf(buf, sizeof buf,
                     "CONNECT {\"verbose\":false,\"headers\":true}\r\nHPUB %s %zu %zu\r\n%s%s\r\n"
                     "PING\r\n",
                     subject, hl, hl + bl, headers, body);
    assert_int_equal(write(fd, buf, (size_t)n), n);
    size_t got = 0; /* INFO ..., then PONG once the server handled the HPUB */
    while (got < sizeof buf - 1) {
        ssize_t r = read(fd, buf + got, sizeof buf - 1 - got);
        if (r <= 0)
            break;
        got += (size_t)r;
        buf[got] = '\0';
        if (strstr(buf, "PONG"))
            break;
    }
    assert_non_null(strstr(buf, "PONG"));
    close(fd);
}

static void test_faststream_wire(void **state)
{
    (void)state;
    fs_broker *b = nt_broker();
    char subject[64];
    nt_name(subject, sizeof subject, "fromfaststream");
    ts_log l;
    ts_log_init(&l);
    nt_subscribe(b, subject, &l, NULL);
    assert_int_equal(fs_broker_start(b), FS_OK);
    raw_hpub(subject, "NATS/1.0\r\ncontent-type: \r\ncorrelation_id: cid-py\r\n\r\n", "{\"a\":1}");
    raw_hpub(subject,
             "NATS/1.0\r\ncontent-type: application/json\r\ncorrelation_id: cid-2\r\n"
             "x-tenant: acme\r\n\r\n",
             "{}");
    ts_expect_n(&l, 2, 5000);
    char buf[64];
    assert_string_equal(ts_body(&l, 0, buf, sizeof buf), "{\"a\":1}");
    fs_message *m0 = ts_msg(&l, 0), *m1 = ts_msg(&l, 1);
    assert_string_equal(ts_str(fs_message_correlation_id(m0)), "cid-py");
    assert_string_equal(ts_str(fs_message_content_type(m0)), "");
    assert_string_equal(ts_str(fs_message_correlation_id(m1)), "cid-2");
    assert_string_equal(ts_str(fs_message_content_type(m1)), "application/json");
    assert_string_equal(ts_str(fs_message_header(m1, "x-tenant")), "acme");
    fs_broker_free(b);
    ts_log_free(&l);
}

/* A handler's settlement never reaches the wire on core NATS, whatever it does. */
static fs_outcome fail_handler(fs_message *m, void *user)
{
    atomic_fetch_add((_Atomic int *)user, 1);
    fs_message_nack(m);
    return fs_message_fail(m, "ValueError", "boom");
}

static void test_core_no_ack(void **state)
{
    (void)state;
    fs_broker *b = nt_broker();
    char subject[64];
    nt_name(subject, sizeof subject, "noack");
    _Atomic int calls = 0;
    fs_subscriber_options so = FS_SUBSCRIBER_OPTIONS_INIT;
    so.ack_policy = FS_ACK_POLICY_NACK_ON_ERROR;
    fs_subscriber *sub = NULL;
    assert_int_equal(fs_subscribe(b, subject, fail_handler, (void *)&calls, &so, &sub), FS_OK);
    assert_int_equal(fs_broker_start(b), FS_OK);
    assert_int_equal(fs_publish_bytes(b, subject, "x", 1), FS_OK);
    assert_int_equal(fs_subscriber_wait_handled(sub, 1, 5000), FS_OK);
    ts_sleep_ms(200);
    assert_int_equal(atomic_load(&calls), 1); /* no redelivery: at most once */
    uint64_t backlog = 0;
    assert_int_equal(fs_nats_subscriber_backlog(sub, 1000, &backlog), FS_EUNSUPPORTED);
    assert_int_equal(fs_broker_ping(b, 2000), FS_OK);
    fs_broker_free(b);
}

/* Stop, then start again: the subscription comes back. */
static void test_restart_broker(void **state)
{
    (void)state;
    fs_broker *b = nt_broker();
    char subject[64];
    nt_name(subject, sizeof subject, "again");
    ts_log l;
    ts_log_init(&l);
    nt_subscribe(b, subject, &l, NULL);
    assert_int_equal(fs_broker_start(b), FS_OK);
    assert_int_equal(fs_publish_bytes(b, subject, "1", 1), FS_OK);
    ts_expect_n(&l, 1, 5000);
    assert_int_equal(fs_broker_stop(b), FS_OK);
    assert_int_equal(fs_broker_start(b), FS_OK);
    assert_int_equal(fs_publish_bytes(b, subject, "2", 1), FS_OK);
    ts_expect_n(&l, 2, 5000);
    assert_int_equal(fs_broker_close(b), FS_OK);
    assert_true(fs_publish_bytes(b, subject, "3", 1) < 0 || true);
    fs_broker_free(b);
    ts_log_free(&l);
}

int main(void)
{
    fs_set_log_level(FS_LOG_WARN);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_wildcards),       cmocka_unit_test(test_queue_group),
        cmocka_unit_test(test_request_reply),   cmocka_unit_test(test_core_no_ack),
        cmocka_unit_test(test_restart_broker),  cmocka_unit_test(test_reply_subject),
        cmocka_unit_test(test_faststream_wire),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
