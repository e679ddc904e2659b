/*
 * The Prometheus middleware on the in-process broker: every handler path,
 * batches, publishes, replies, shared registries and setup errors. Each test
 * renders the registry and accounts for EVERY sample of the nine families
 * (expect_nothing_else), with one static custom label (env) and one computed
 * per message (tenant, from the "tenant" header).
 */
#include "scrape.h"
#include "support/worker_check.h"

#include <stdatomic.h>
#include <time.h>

#include "faststream/faststream.h"
#include "faststream/prometheus.h"

#define APP "test-app"
#define WAIT_MS 10000

/* ------------------------------------------------------------------------ */
/* Fixture                                                                  */

/* The per-message custom label: the message's "tenant" header. */
static const char *tenant_of(const fs_message *msg, void *user)
{
    (void)user;
    if (!msg)
        return "outside"; /* a publish made outside any handler */
    const fs_message *first = fs_message_is_batch(msg) ? fs_message_at(msg, 0) : msg;
    const char *t = fs_message_header(first, "tenant");
    return t ? t : "unknown";
}

static const fs_prometheus_label LABELS[] = {
    {"env", "test", NULL, NULL},
    {"tenant", NULL, tenant_of, NULL},
};

typedef struct fixture {
    fs_registry *reg;
    fs_broker *broker;
} fixture;

static fs_broker *new_broker(fs_registry *reg, size_t capacity)
{
    fs_memory_options mo = FS_MEMORY_OPTIONS_INIT;
    mo.capacity = capacity;
    fs_broker *b;
    assert_int_equal(fs_memory_broker_new(&mo, &b), FS_OK);
    fs_prometheus_options po = FS_PROMETHEUS_OPTIONS_INIT;
    po.registry = reg;
    po.app_name = APP;
    po.labels = LABELS;
    po.label_count = 2;
    if (fs_broker_add_prometheus(b, &po) != FS_OK)
        fail_msg("fs_broker_add_prometheus: %s", fs_last_error());
    return b;
}

static int setup(void **state)
{
    fixture *fx = calloc(1, sizeof *fx);
    if (!fx || fs_registry_new(&fx->reg) != FS_OK)
        return -1;
    fx->broker = new_broker(fx->reg, 0);
    *state = fx;
    return 0;
}

static int teardown(void **state)
{
    fixture *fx = *state;
    fs_broker_free(fx->broker); /* waits for the handlers */
    fs_registry_free(fx->reg);
    free(fx);
    assert_worker_checks(); /* what the handlers checked, reported on this thread */
    return 0;
}

/* Label strings as the text exposition writes them. */
static const char *L(char *buf, const char *broker, const char *where, const char *name,
                     const char *extra_name, const char *extra, const char *tenant)
{
    if (extra_name)
        snprintf(buf, 512,
                 "app_name=\"" APP "\",broker=\"%s\",%s=\"%s\",%s=\"%s\",env=\"test\","
                 "tenant=\"%s\"",
                 broker, where, name, extra_name, extra, tenant);
    else
        snprintf(buf, 512,
                 "app_name=\"" APP "\",broker=\"%s\",%s=\"%s\",env=\"test\",tenant=\"%s\"", broker,
                 where, name, tenant);
    return buf;
}

#define P "faststream_"

/* Publish one message with a tenant header, outside any handler. */
static void publish_one(fs_broker *b, const char *dest, const char *body, const char *tenant)
{
    fs_header h = {"tenant", tenant, 0};
    fs_envelope env = FS_ENVELOPE_INIT;
    env.body = body;
    env.body_len = strlen(body);
    env.headers = &h;
    env.header_count = 1;
    if (fs_publish(b, dest, &env) != FS_OK)
        fail_msg("fs_publish: %s", fs_last_error());
}

/*
 * The receive-side samples of one handler/tenant: `deliveries` units of
 * `count` messages each of total size `size`, processed statuses, and at
 * most one exception type.
 */
typedef struct recv_expect {
    const char *handler;
    const char *tenant;
    double units, messages, size_sum;
    double acked, nacked, rejected, skipped, error;
    const char *exception_type;
    double exceptions;
} recv_expect;

static void expect_received(scrape *s, const recv_expect *e)
{
    char l[512];
    expect_sample(s, P "received_messages_total",
                  L(l, "memory", "handler", e->handler, NULL, NULL, e->tenant), e->messages);
    expect_histogram(s, P "received_messages_size_bytes", l, e->units, e->size_sum);
    expect_sample(s, P "received_messages_in_process", l, 0); /* back to 0 on every path */
    expect_histogram(s, P "received_processed_messages_duration_seconds", l, e->units, NAN);
    const char *names[] = {"acked", "nacked", "rejected", "skipped", "error"};
    const double vals[] = {e->acked, e->nacked, e->rejected, e->skipped, e->error};
    for (int i = 0; i < 5; i++)
        if (vals[i] > 0)
            expect_sample(s, P "received_processed_messages_total",
                          L(l, "memory", "handler", e->handler, "status", names[i], e->tenant),
                          vals[i]);
    if (e->exception_type)
        expect_sample(
            s, P "received_processed_messages_exceptions_total",
            L(l, "memory", "handler", e->handler, "exception_type", e->exception_type, e->tenant),
            e->exceptions);
}

static void expect_published(scrape *s, const char *dest, const char *tenant, double calls,
                             double success, double error, const char *exception_type,
                             double exceptions)
{
    char l[512];
    expect_histogram(s, P "published_messages_duration_seconds",
                     L(l, "memory", "destination", dest, NULL, NULL, tenant), calls, NAN);
    if (success > 0)
        expect_sample(s, P "published_messages_total",
                      L(l, "memory", "destination", dest, "status", "success", tenant), success);
    if (error > 0)
        expect_sample(s, P "published_messages_total",
                      L(l, "memory", "destination", dest, "status", "error", tenant), error);
    if (exception_type)
        expect_sample(s, P "published_messages_exceptions_total",
                      L(l, "memory", "destination", dest, "exception_type", exception_type, tenant),
                      exceptions);
}

/* ------------------------------------------------------------------------ */
/* Handlers                                                                 */

typedef enum action {
    ACT_ACK_EXPLICIT,
    ACT_NACK_EXPLICIT_ONCE, /* nack the first delivery, then return OK */
    ACT_REJECT_EXPLICIT,
    ACT_RETURN_ACK,
    ACT_RETURN_NACK_ONCE, /* return NACK on the first delivery, then OK */
    ACT_RETURN_REJECT,
    ACT_RETURN_SKIP,
    ACT_FAIL,
    ACT_ACK_THEN_FAIL,
    ACT_OK_AND_FORWARD, /* publish to "forwarded" from inside the handler */
} action;

typedef struct probe {
    action act;
    atomic_int calls;
    fs_broker *broker;
} probe;

static fs_outcome on_message(fs_message *m, void *user)
{
    probe *p = user;
    int call = atomic_fetch_add(&p->calls, 1);
    switch (p->act) {
    case ACT_ACK_EXPLICIT:
        WORKER_CHECK(fs_message_ack(m) == FS_OK);
        return FS_OUTCOME_OK;
    case ACT_NACK_EXPLICIT_ONCE:
        if (call == 0)
            WORKER_CHECK(fs_message_nack(m) == FS_OK);
        return FS_OUTCOME_OK;
    case ACT_REJECT_EXPLICIT:
        WORKER_CHECK(fs_message_reject(m) == FS_OK);
        return FS_OUTCOME_OK;
    case ACT_RETURN_ACK:
        return FS_OUTCOME_ACK;
    case ACT_RETURN_NACK_ONCE:
        return call == 0 ? FS_OUTCOME_NACK : FS_OUTCOME_OK;
    case ACT_RETURN_REJECT:
        return FS_OUTCOME_REJECT;
    case ACT_RETURN_SKIP:
        return FS_OUTCOME_SKIP;
    case ACT_FAIL:
        return fs_message_fail(m, "ValueError", "amount %d is negative", -5);
    case ACT_ACK_THEN_FAIL:
        WORKER_CHECK(fs_message_ack(m) == FS_OK);
        return fs_message_fail(m, "DecodeError", NULL);
    case ACT_OK_AND_FORWARD:
        WORKER_CHECK(fs_publish_bytes(p->broker, "forwarded", "fwd", 3) == FS_OK);
        return FS_OUTCOME_OK;
    }
    return FS_OUTCOME_OK;
}

/*
 * Subscribe to "q" with `act`, publish one 5-byte message of tenant t1,
 * wait for `deliveries` handler calls to be handled, and scrape.
 */
static void run_one(fixture *fx, action act, int deliveries, probe *p, scrape *s)
{
    p->act = act;
    atomic_init(&p->calls, 0);
    p->broker = fx->broker;
    fs_subscriber *sub;
    assert_int_equal(fs_subscribe(fx->broker, "q", on_message, p, NULL, &sub), FS_OK);
    assert_int_equal(fs_broker_start(fx->broker), FS_OK);
    publish_one(fx->broker, "q", "hello", "t1");
    if (fs_subscriber_wait_handled(sub, (uint64_t)deliveries, WAIT_MS) != FS_OK)
        fail_msg("%s", fs_last_error());
    assert_worker_checks();
    assert_int_equal(atomic_load(&p->calls), deliveries);
    scrape_take(s, fx->reg);
}

/* What every run_one test published: one message to "q" from outside. */
static void expect_the_publish(scrape *s)
{
    expect_published(s, "q", "outside", 1, 1, 0, NULL, 0);
}

/* Exactly `e` on the receiving side, the one publish from outside, nothing else; frees `s`. */
static void expect_only(scrape *s, const recv_expect *e)
{
    expect_received(s, e);
    expect_the_publish(s);
    expect_nothing_else(s, P);
    scrape_free(s);
}

/* run_one, then expect_only(e). */
static void check_one(fixture *fx, action act, int deliveries, const recv_expect *e)
{
    probe p;
    scrape s;
    run_one(fx, act, deliveries, &p, &s);
    expect_only(&s, e);
}

/* ------------------------------------------------------------------------ */
/* Handler paths                                                            */

static void test_ack_explicit(void **state)
{
    recv_expect e = {"q", "t1", 1, 1, 5, .acked = 1};
    check_one(*state, ACT_ACK_EXPLICIT, 1, &e);
}

static void test_nack_explicit(void **state)
{
    /* nacked once (redelivered by the broker), then acked by the policy */
    recv_expect e = {"q", "t1", 2, 2, 10, .acked = 1, .nacked = 1};
    check_one(*state, ACT_NACK_EXPLICIT_ONCE, 2, &e);
}

static void test_reject_explicit(void **state)
{
    recv_expect e = {"q", "t1", 1, 1, 5, .rejected = 1};
    check_one(*state, ACT_REJECT_EXPLICIT, 1, &e);
}

static void test_return_ack(void **state)
{
    recv_expect e = {"q", "t1", 1, 1, 5, .acked = 1};
    check_one(*state, ACT_RETURN_ACK, 1, &e);
}

static void test_return_nack(void **state)
{
    recv_expect e = {"q", "t1", 2, 2, 10, .acked = 1, .nacked = 1};
    check_one(*state, ACT_RETURN_NACK_ONCE, 2, &e);
}

static void test_return_reject(void **state)
{
    recv_expect e = {"q", "t1", 1, 1, 5, .rejected = 1};
    check_one(*state, ACT_RETURN_REJECT, 1, &e);
}

static void test_return_skip(void **state)
{
    recv_expect e = {"q", "t1", 1, 1, 5, .skipped = 1};
    check_one(*state, ACT_RETURN_SKIP, 1, &e);
}

static void test_fail(void **state)
{
    /* REJECT_ON_ERROR (the in-process default) rejects it afterwards: still "error" */
    recv_expect e = {
        "q", "t1", 1, 1, 5, .error = 1, .exception_type = "ValueError", .exceptions = 1};
    check_one(*state, ACT_FAIL, 1, &e);
}

static void test_ack_then_fail(void **state)
{
    recv_expect e = {
        "q", "t1", 1, 1, 5, .acked = 1, .exception_type = "DecodeError", .exceptions = 1};
    check_one(*state, ACT_ACK_THEN_FAIL, 1, &e);
}

/* Under ACK_FIRST the message is acked before the handler runs; a failure still counts "error". */
static void test_ack_first_then_fail(void **state)
{
    fixture *fx = *state;
    probe p = {ACT_FAIL, 0, fx->broker};
    fs_subscriber_options so = FS_SUBSCRIBER_OPTIONS_INIT;
    so.ack_policy = FS_ACK_POLICY_ACK_FIRST;
    fs_subscriber *sub;
    assert_int_equal(fs_subscribe(fx->broker, "q", on_message, &p, &so, &sub), FS_OK);
    assert_int_equal(fs_broker_start(fx->broker), FS_OK);
    publish_one(fx->broker, "q", "hello", "t1");
    assert_int_equal(fs_subscriber_wait_handled(sub, 1, WAIT_MS), FS_OK);
    scrape s;
    scrape_take(&s, fx->reg);
    /* The broker got its ack on receipt; the status says what the handler did (METRICS.md). */
    recv_expect e = {
        "q", "t1", 1, 1, 5, .error = 1, .exception_type = "ValueError", .exceptions = 1};
    expect_only(&s, &e);
}

static fs_outcome slow_20ms(fs_message *m, void *user)
{
    (void)m;
    (void)user;
    struct timespec ts = {0, 20 * 1000000L};
    nanosleep(&ts, NULL);
    return FS_OUTCOME_OK;
}

/*
 * A handler taking 20 ms lands at or above the 0.025 bucket: nothing at or
 * below 0.01, the sum at least 0.02 (a build observing 0 fails). Only lower
 * bounds: the machine may be slower, never faster.
 */
static void test_duration_of_a_20ms_handler(void **state)
{
    fixture *fx = *state;
    fs_subscriber *sub;
    assert_int_equal(fs_subscribe(fx->broker, "slow", slow_20ms, NULL, NULL, &sub), FS_OK);
    assert_int_equal(fs_broker_start(fx->broker), FS_OK);
    publish_one(fx->broker, "slow", "hello", "t1");
    assert_int_equal(fs_subscriber_wait_handled(sub, 1, WAIT_MS), FS_OK);
    scrape s;
    scrape_take(&s, fx->reg);
    char l[512], b[600];
    L(l, "memory", "handler", "slow", NULL, NULL, "t1");
    const char *name = P "received_processed_messages_duration_seconds";
    expect_histogram(&s, name, l, 1, NAN);
    char key[256];
    snprintf(key, sizeof key, "%s_sum", name);
    double sum = scrape_value(&s, key, l);
    if (sum < 0.02)
        fail_msg("a 20 ms handler observed %g s", sum);
    snprintf(key, sizeof key, "%s_bucket", name);
    snprintf(b, sizeof b, "%s,le=\"0.005\"", l);
    expect_sample(&s, key, b, 0);
    snprintf(b, sizeof b, "%s,le=\"0.01\"", l);
    expect_sample(&s, key, b, 0);
    snprintf(b, sizeof b, "%s,le=\"10\"", l);
    expect_sample(&s, key, b, 1);
    scrape_free(&s);
}

/* A publish from inside a handler carries the labels of the message being handled. */
static void test_publish_inside_handler_carries_labels(void **state)
{
    fixture *fx = *state;
    probe p;
    scrape s;
    run_one(fx, ACT_OK_AND_FORWARD, 1, &p, &s);
    recv_expect e = {"q", "t1", 1, 1, 5, .acked = 1};
    expect_received(&s, &e);
    expect_the_publish(&s);
    expect_published(&s, "forwarded", "t1", 1, 1, 0, NULL, 0);
    expect_nothing_else(&s, P);
    scrape_free(&s);
}

/* ------------------------------------------------------------------------ */
/* Batches                                                                  */

static atomic_size_t batch_seen;

static fs_outcome on_batch(fs_message *batch, void *user)
{
    (void)user;
    atomic_store(&batch_seen, fs_message_count(batch));
    return FS_OUTCOME_OK;
}

static void test_batch_subscriber(void **state)
{
    fixture *fx = *state;
    fs_subscriber_options so = FS_SUBSCRIBER_OPTIONS_INIT;
    so.batch_size = 5;
    so.batch_timeout_ms = 2000;
    fs_subscriber *sub;
    assert_int_equal(fs_subscribe(fx->broker, "bq", on_batch, NULL, &so, &sub), FS_OK);
    /* five messages of 100, 50, 30, 10 and 10 bytes waiting before the start: one batch */
    static char body[100];
    memset(body, 'x', sizeof body);
    const size_t lens[5] = {100, 50, 30, 10, 10};
    fs_header h = {"tenant", "t2", 0};
    fs_envelope envs[5];
    for (int i = 0; i < 5; i++) {
        fs_envelope e = FS_ENVELOPE_INIT;
        e.body = body;
        e.body_len = lens[i];
        e.headers = &h;
        e.header_count = 1;
        envs[i] = e;
    }
    assert_int_equal(fs_publish_batch(fx->broker, "bq", envs, 5), FS_OK);
    assert_int_equal(fs_broker_start(fx->broker), FS_OK);
    if (fs_subscriber_wait_handled(sub, 5, WAIT_MS) != FS_OK)
        fail_msg("%s", fs_last_error());
    assert_int_equal(atomic_load(&batch_seen), 5);

    scrape s;
    scrape_take(&s, fx->reg);
    /* counts = batch size; size observed once, with the summed body length (200 bytes) */
    recv_expect e = {"bq", "t2", 1, 5, 200, .acked = 5};
    expect_received(&s, &e);
    char l[512];
    L(l, "memory", "handler", "bq", NULL, NULL, "t2");
    char key[600];
    snprintf(key, sizeof key, "%s,le=\"64\"", l);
    expect_sample(&s, P "received_messages_size_bytes_bucket", key, 0);
    snprintf(key, sizeof key, "%s,le=\"256\"", l);
    expect_sample(&s, P "received_messages_size_bytes_bucket", key, 1);
    /* one publish call of 5 messages */
    expect_published(&s, "bq", "outside", 1, 5, 0, NULL, 0);
    expect_nothing_else(&s, P);
    scrape_free(&s);
}

/* ------------------------------------------------------------------------ */
/* Publishing                                                               */

static void test_publish_success_and_full_queue(void **state)
{
    fixture *fx = *state;
    fs_broker_free(fx->broker);
    fx->broker = new_broker(fx->reg, 2); /* 2 messages per queue, nobody consuming */
    assert_int_equal(fs_broker_connect(fx->broker), FS_OK);

    publish_one(fx->broker, "small", "a", "t1");
    publish_one(fx->broker, "small", "b", "t1");
    /* the queue is full now */
    fs_envelope env = FS_ENVELOPE_INIT;
    env.body = "c";
    env.body_len = 1;
    assert_int_equal(fs_publish(fx->broker, "small", &env), FS_EFULL);
    assert_string_equal(fs_last_publish_error_type(), "QueueFull");
    fs_envelope two[2] = {env, env};
    assert_int_equal(fs_publish_batch(fx->broker, "small", two, 2), FS_EFULL);
    /* a batch that fits, elsewhere */
    assert_int_equal(fs_publish_batch(fx->broker, "other", two, 2), FS_OK);

    scrape s;
    scrape_take(&s, fx->reg);
    /* 4 calls to "small": 2 single successes, 1 single failure, 1 failed batch of 2 */
    expect_published(&s, "small", "outside", 4, 2, 3, "QueueFull", 2);
    expect_published(&s, "other", "outside", 1, 2, 0, NULL, 0);
    expect_nothing_else(&s, P);
    scrape_free(&s);
}

/*
 * The per-thread last-hit cache must go by the destination's content, not
 * its address: a buffer rewritten in place names another destination, and
 * another buffer with the same text names the same one.
 */
static void test_destination_buffer_reused(void **state)
{
    fixture *fx = *state;
    assert_int_equal(fs_broker_connect(fx->broker), FS_OK);
    char dest[16], same[16];
    strcpy(dest, "first");
    publish_one(fx->broker, dest, "a", "t1");
    publish_one(fx->broker, dest, "a", "t1");
    strcpy(dest, "second"); /* same address, another destination */
    publish_one(fx->broker, dest, "a", "t1");
    strcpy(dest, "firsT"); /* same length, differs in the last byte */
    publish_one(fx->broker, dest, "a", "t1");
    strcpy(same, "first"); /* another address, the same destination */
    publish_one(fx->broker, same, "a", "t1");
    strcpy(dest, "first");
    publish_one(fx->broker, dest, "a", "t1");

    scrape s;
    scrape_take(&s, fx->reg);
    expect_published(&s, "first", "outside", 4, 4, 0, NULL, 0);
    expect_published(&s, "second", "outside", 1, 1, 0, NULL, 0);
    expect_published(&s, "firsT", "outside", 1, 1, 0, NULL, 0);
    expect_nothing_else(&s, P);
    scrape_free(&s);
}

/* ------------------------------------------------------------------------ */
/* Request / reply                                                          */

static fs_outcome on_rpc(fs_message *m, void *user)
{
    (void)user;
    WORKER_CHECK(fs_message_reply(m, "pong", 4, NULL, 0, NULL) == FS_OK);
    return FS_OUTCOME_OK;
}

static void test_reply_not_counted(void **state)
{
    fixture *fx = *state;
    fs_subscriber *sub;
    assert_int_equal(fs_subscribe(fx->broker, "rpc", on_rpc, NULL, NULL, &sub), FS_OK);
    assert_int_equal(fs_broker_start(fx->broker), FS_OK);
    fs_header h = {"tenant", "t3", 0};
    fs_envelope env = FS_ENVELOPE_INIT;
    env.body = "ping";
    env.body_len = 4;
    env.headers = &h;
    env.header_count = 1;
    fs_message *reply = NULL;
    if (fs_request(fx->broker, "rpc", &env, WAIT_MS, &reply) != FS_OK)
        fail_msg("fs_request: %s", fs_last_error());
    assert_int_equal(fs_message_body_len(reply), 4);
    assert_memory_equal(fs_message_body(reply), "pong", 4);
    fs_message_free(reply);
    assert_int_equal(fs_subscriber_wait_handled(sub, 1, WAIT_MS), FS_OK);

    scrape s;
    scrape_take(&s, fx->reg);
    /* the request is counted (published and received), the reply in neither direction */
    recv_expect e = {"rpc", "t3", 1, 1, 4, .acked = 1};
    expect_received(&s, &e);
    expect_published(&s, "rpc", "outside", 1, 1, 0, NULL, 0);
    expect_nothing_else(&s, P);
    scrape_free(&s);
}

/* ------------------------------------------------------------------------ */
/* Registries and setup                                                     */

static void test_two_brokers_share_registry(void **state)
{
    fixture *fx = *state;
    fs_broker *b2 = new_broker(fx->reg, 0); /* same registry, same prefix */
    probe p1 = {ACT_ACK_EXPLICIT, 0, fx->broker}, p2 = {ACT_FAIL, 0, b2};
    fs_subscriber *s1, *s2;
    assert_int_equal(fs_subscribe(fx->broker, "left", on_message, &p1, NULL, &s1), FS_OK);
    assert_int_equal(fs_subscribe(b2, "right", on_message, &p2, NULL, &s2), FS_OK);
    assert_int_equal(fs_broker_start(fx->broker), FS_OK);
    assert_int_equal(fs_broker_start(b2), FS_OK);
    publish_one(fx->broker, "left", "abc", "t1");
    publish_one(b2, "right", "abcd", "t2");
    assert_int_equal(fs_subscriber_wait_handled(s1, 1, WAIT_MS), FS_OK);
    assert_int_equal(fs_subscriber_wait_handled(s2, 1, WAIT_MS), FS_OK);

    scrape s;
    scrape_take(&s, fx->reg);
    recv_expect e1 = {"left", "t1", 1, 1, 3, .acked = 1};
    recv_expect e2 = {"right",        "t2", 1, 1, 4, .error = 1, .exception_type = "ValueError",
                      .exceptions = 1};
    expect_received(&s, &e1);
    expect_received(&s, &e2);
    expect_published(&s, "left", "outside", 1, 1, 0, NULL, 0);
    expect_published(&s, "right", "outside", 1, 1, 0, NULL, 0);
    expect_nothing_else(&s, P);
    /* every family is exposed once */
    size_t types = 0;
    for (const char *q = s.text; (q = strstr(q, "# TYPE " P)); q++)
        types++;
    assert_int_equal(types, 9);
    scrape_free(&s);
    fs_broker_free(b2);
}

static void test_schema(void **state)
{
    fixture *fx = *state;
    fs_buffer b = {0};
    assert_int_equal(fs_registry_render(fx->reg, FS_FORMAT_TEXT, &b), FS_OK);
    static const char *const lines[] = {
        "# HELP faststream_received_messages_total Count of received messages by broker and "
        "handler\n# TYPE faststream_received_messages_total counter\n",
        "# HELP faststream_received_messages_size_bytes Histogram of received messages size in "
        "bytes by broker and handler\n# TYPE faststream_received_messages_size_bytes histogram\n",
        "# HELP faststream_received_messages_in_process Gauge of received messages in process by "
        "broker and handler\n# TYPE faststream_received_messages_in_process gauge\n",
        "# HELP faststream_received_processed_messages_total Count of received processed messages "
        "by broker, handler and status\n# TYPE faststream_received_processed_messages_total "
        "counter\n",
        "# HELP faststream_received_processed_messages_duration_seconds Histogram of received "
        "processed messages duration in seconds by broker and handler\n# TYPE "
        "faststream_received_processed_messages_duration_seconds histogram\n",
        "# HELP faststream_received_processed_messages_exceptions_total Count of received "
        "processed messages exceptions by broker, handler and exception_type\n# TYPE "
        "faststream_received_processed_messages_exceptions_total counter\n",
        "# HELP faststream_published_messages_total Count of published messages by destination "
        "and status\n# TYPE faststream_published_messages_total counter\n",
        "# HELP faststream_published_messages_duration_seconds Histogram of published messages "
        "duration in seconds by broker and destination\n# TYPE "
        "faststream_published_messages_duration_seconds histogram\n",
        "# HELP faststream_published_messages_exceptions_total Count of published messages "
        "exceptions by broker, destination and exception_type\n# TYPE "
        "faststream_published_messages_exceptions_total counter\n",
    };
    for (size_t i = 0; i < sizeof lines / sizeof lines[0]; i++)
        if (!strstr(b.data, lines[i]))
            fail_msg("missing:\n%s\nin:\n%s", lines[i], b.data);
    fs_buffer_free(&b);

    /* buckets: size 2^4..2^24, durations the Prometheus defaults */
    probe p;
    scrape s;
    run_one(fx, ACT_ACK_EXPLICIT, 1, &p, &s);
    const double size_b[] = {16,    64,     256,     1024,    4096,     16384,
                             65536, 262144, 1048576, 4194304, 16777216, INFINITY};
    const double dur_b[] = {.005, .01, .025, .05, .075, .1, .25,     .5,
                            .75,  1,   2.5,  5,   7.5,  10, INFINITY};
    const char *fams[] = {P "received_messages_size_bytes_bucket{",
                          P "received_processed_messages_duration_seconds_bucket{",
                          P "published_messages_duration_seconds_bucket{"};
    const double *want[] = {size_b, dur_b, dur_b};
    const size_t nwant[] = {12, 15, 15};
    for (int f = 0; f < 3; f++) {
        size_t k = 0;
        for (size_t i = 0; i < s.n; i++) {
            if (strncmp(s.keys[i], fams[f], strlen(fams[f])) != 0)
                continue;
            const char *le = strstr(s.keys[i], "le=\"");
            assert_non_null(le);
            assert_true(k < nwant[f]);
            assert_true(strtod(le + 4, NULL) == want[f][k]);
            k++;
        }
        assert_int_equal(k, nwant[f]);
    }
    /* label order: standard labels, the extra one, then custom labels in the order given */
    char l[512];
    expect_sample(&s, P "received_processed_messages_total",
                  L(l, "memory", "handler", "q", "status", "acked", "t1"), 1);
    scrape_free(&s);
}

/* A connected broker with the middleware on a new registry: prefix "shop", no custom labels. */
static fs_broker *shop_broker(fs_registry **reg)
{
    assert_int_equal(fs_registry_new(reg), FS_OK);
    fs_broker *b;
    assert_int_equal(fs_memory_broker_new(NULL, &b), FS_OK);
    fs_prometheus_options po = FS_PROMETHEUS_OPTIONS_INIT;
    po.registry = *reg;
    po.prefix = "shop";
    assert_int_equal(fs_broker_add_prometheus(b, &po), FS_OK);
    assert_int_equal(fs_broker_connect(b), FS_OK);
    return b;
}

/* The publish side of shop_broker's families for `dest`: n successful publishes. */
static void expect_shop_published(scrape *s, const char *dest, double n)
{
    char l[256];
    snprintf(l, sizeof l, "app_name=\"shop\",broker=\"memory\",destination=\"%s\"", dest);
    expect_histogram(s, "shop_published_messages_duration_seconds", l, n, NAN);
    snprintf(l, sizeof l,
             "app_name=\"shop\",broker=\"memory\",destination=\"%s\",status=\"success\"", dest);
    expect_sample(s, "shop_published_messages_total", l, n);
}

static void test_defaults_app_name_is_prefix(void **state)
{
    (void)state;
    fs_registry *reg;
    fs_broker *b = shop_broker(&reg);
    assert_int_equal(fs_publish_bytes(b, "x", "1", 1), FS_OK);
    scrape s;
    scrape_take(&s, reg);
    expect_sample(&s, "shop_published_messages_total",
                  "app_name=\"shop\",broker=\"memory\",destination=\"x\",status=\"success\"", 1);
    expect_histogram(&s, "shop_published_messages_duration_seconds",
                     "app_name=\"shop\",broker=\"memory\",destination=\"x\"", 1, NAN);
    expect_nothing_else(&s, "shop_");
    assert_null(strstr(s.text, "faststream_"));
    scrape_free(&s);
    fs_broker_free(b);
    fs_registry_free(reg);
}

/*
 * Without custom labels the hooks take the last-hit fast path: it must also
 * tell a destination buffer rewritten in place from the one it held.
 */
static void test_no_custom_labels_destination_reused(void **state)
{
    (void)state;
    fs_registry *reg;
    fs_broker *b = shop_broker(&reg);
    char dest[8], other[8];
    const char *order[] = {"x", "x", "y", "x", "z", "z"};
    for (size_t i = 0; i < sizeof order / sizeof order[0]; i++) {
        strcpy(dest, order[i]);
        assert_int_equal(fs_publish_bytes(b, dest, "1", 1), FS_OK);
    }
    strcpy(other, "y"); /* another address, the same destination */
    assert_int_equal(fs_publish_bytes(b, other, "1", 1), FS_OK);
    scrape s;
    scrape_take(&s, reg);
    const char *name[] = {"x", "y", "z"};
    const double n[] = {3, 2, 2};
    for (int i = 0; i < 3; i++)
        expect_shop_published(&s, name[i], n[i]);
    expect_nothing_else(&s, "shop_");
    scrape_free(&s);
    fs_broker_free(b);
    fs_registry_free(reg);
}

static fs_outcome on_any(fs_message *m, void *user)
{
    (void)m;
    (void)user;
    return FS_OUTCOME_OK;
}

/*
 * Publishers' labels and fixed-source subscriptions carry ids that the
 * hooks' last-hit check uses instead of comparing strings: alternating
 * publishers, a publish by name beside a publisher, a freed publisher whose
 * memory the next one may take, and two subscriptions must each count under
 * their own label.
 */
static void test_label_ids(void **state)
{
    (void)state;
    fs_registry *reg;
    fs_broker *b = shop_broker(&reg);
    fs_subscriber *qa, *qb;
    assert_int_equal(fs_subscribe(b, "a", on_any, NULL, NULL, &qa), FS_OK);
    assert_int_equal(fs_subscribe(b, "b", on_any, NULL, NULL, &qb), FS_OK);
    assert_int_equal(fs_broker_start(b), FS_OK);
    fs_publisher *pa, *pb, *pc, *pa2;
    assert_int_equal(fs_publisher_new(b, "a", NULL, &pa), FS_OK);
    assert_int_equal(fs_publisher_new(b, "b", NULL, &pb), FS_OK);
    fs_publisher *order[] = {pa, pb, pa, pa, pb};
    for (size_t i = 0; i < sizeof order / sizeof order[0]; i++)
        assert_int_equal(fs_publisher_publish_bytes(order[i], "1", 1), FS_OK);
    assert_int_equal(fs_publish_bytes(b, "a", "1", 1), FS_OK); /* by name, after pa */
    fs_publisher_free(pa);
    assert_int_equal(fs_publisher_new(b, "c", NULL, &pc), FS_OK); /* may take pa's memory */
    assert_int_equal(fs_publisher_publish_bytes(pc, "1", 1), FS_OK);
    assert_int_equal(fs_publisher_publish_bytes(pc, "1", 1), FS_OK);
    assert_int_equal(fs_publish_bytes(b, "c", "1", 1), FS_OK);
    assert_int_equal(fs_publisher_new(b, "a", NULL, &pa2), FS_OK); /* another id, the same label */
    assert_int_equal(fs_publisher_publish_bytes(pa2, "1", 1), FS_OK);
    assert_int_equal(fs_publisher_publish_bytes(pb, "1", 1), FS_OK);
    assert_int_equal(fs_subscriber_wait_handled(qa, 5, WAIT_MS), FS_OK);
    assert_int_equal(fs_subscriber_wait_handled(qb, 3, WAIT_MS), FS_OK);
    assert_int_equal(fs_broker_stop(b), FS_OK);

    scrape s;
    scrape_take(&s, reg);
    const char *name[] = {"a", "b", "c"};
    const double published[] = {5, 3, 3}, received[] = {5, 3, 0};
    for (int i = 0; i < 3; i++) {
        expect_shop_published(&s, name[i], published[i]);
        if (!received[i])
            continue;
        char l[256];
        snprintf(l, sizeof l, "app_name=\"shop\",broker=\"memory\",handler=\"%s\"", name[i]);
        expect_sample(&s, "shop_received_messages_total", l, received[i]);
        expect_sample(&s, "shop_received_messages_in_process", l, 0);
        expect_histogram(&s, "shop_received_messages_size_bytes", l, received[i], received[i]);
        expect_histogram(&s, "shop_received_processed_messages_duration_seconds", l, received[i],
                         NAN);
        snprintf(l, sizeof l, "app_name=\"shop\",broker=\"memory\",handler=\"%s\",status=\"acked\"",
                 name[i]);
        expect_sample(&s, "shop_received_processed_messages_total", l, received[i]);
    }
    expect_nothing_else(&s, "shop_");
    scrape_free(&s);
    fs_publisher_free(pb);
    fs_publisher_free(pc);
    fs_publisher_free(pa2);
    fs_broker_free(b);
    fs_registry_free(reg);
}

static void expect_setup_error(fs_registry *reg, const fs_prometheus_label *labels, size_t n,
                               int code, const char *needle)
{
    fs_broker *b;
    assert_int_equal(fs_memory_broker_new(NULL, &b), FS_OK);
    fs_prometheus_options po = FS_PROMETHEUS_OPTIONS_INIT;
    po.registry = reg;
    po.labels = labels;
    po.label_count = n;
    assert_int_equal(fs_broker_add_prometheus(b, &po), code);
    if (!strstr(fs_last_error(), needle))
        fail_msg("error '%s' does not mention '%s'", fs_last_error(), needle);
    assert_int_equal(fs_broker_middleware_count(b), 0);
    fs_broker_free(b);
}

static void test_setup_errors(void **state)
{
    fixture *fx = *state;
    static const char *const reserved[] = {"app_name", "broker",         "handler", "destination",
                                           "status",   "exception_type", "le"};
    for (size_t i = 0; i < sizeof reserved / sizeof reserved[0]; i++) {
        fs_prometheus_label l = {reserved[i], "x", NULL, NULL};
        expect_setup_error(fx->reg, &l, 1, FS_EINVAL, "reserved");
    }
    fs_prometheus_label bad[] = {{"1tenant", "x", NULL, NULL},
                                 {"__x", "x", NULL, NULL},
                                 {"a-b", "x", NULL, NULL},
                                 {"", "x", NULL, NULL}};
    for (size_t i = 0; i < 4; i++)
        expect_setup_error(fx->reg, &bad[i], 1, FS_EINVAL, "not a valid Prometheus label name");
    fs_prometheus_label dup[] = {{"env", "a", NULL, NULL}, {"env", "b", NULL, NULL}};
    expect_setup_error(fx->reg, dup, 2, FS_EINVAL, "given twice");
    fs_prometheus_label neither = {"env", NULL, NULL, NULL};
    expect_setup_error(fx->reg, &neither, 1, FS_EINVAL, "exactly one");

    /* The fixture registered the families with (env, tenant): another label set conflicts. */
    fs_prometheus_label other = {"region", "eu", NULL, NULL};
    expect_setup_error(fx->reg, &other, 1, FS_ECONFLICT, "faststream_received_messages_total");
    fs_prometheus_label fewer = {"env", "test", NULL, NULL};
    expect_setup_error(fx->reg, &fewer, 1, FS_ECONFLICT, "faststream_received_messages_total");

    /* A conflict on a later family leaves no family of that call behind. */
    fs_registry *reg;
    assert_int_equal(fs_registry_new(&reg), FS_OK);
    fs_counter *c;
    assert_int_equal(fs_counter_new(reg, "faststream_published_messages_total", "other", &c),
                     FS_OK);
    expect_setup_error(reg, NULL, 0, FS_ECONFLICT, "faststream_published_messages_total");
    assert_false(fs_registry_contains(reg, "faststream_received_messages_total"));
    assert_false(fs_registry_contains(reg, "faststream_received_messages_in_process"));
    assert_true(fs_registry_contains(reg, "faststream_published_messages_total"));

    /* Other option errors. */
    fs_middleware mw;
    fs_prometheus_options po = FS_PROMETHEUS_OPTIONS_INIT;
    po.registry = reg;
    po.prefix = "bad prefix";
    assert_int_equal(fs_prometheus_middleware_new(&po, &mw), FS_EINVAL);
    po.prefix = "p2";
    const double desc[] = {10, 5};
    po.size_buckets = desc;
    po.size_bucket_count = 2;
    assert_int_equal(fs_prometheus_middleware_new(&po, &mw), FS_EINVAL);
    assert_false(fs_registry_contains(reg, "p2_received_messages_total"));
    assert_int_equal(fs_prometheus_middleware_new(NULL, NULL), FS_EINVAL);
    assert_int_equal(fs_broker_add_prometheus(NULL, NULL), FS_EINVAL);
    fs_registry_free(reg);
}

/* Custom size buckets and a middleware built by hand, added with fs_broker_add_middleware. */
static void test_custom_buckets_and_manual_add(void **state)
{
    (void)state;
    fs_registry *reg;
    assert_int_equal(fs_registry_new(&reg), FS_OK);
    const double buckets[] = {10, 100};
    fs_prometheus_options po = FS_PROMETHEUS_OPTIONS_INIT;
    po.registry = reg;
    po.size_buckets = buckets;
    po.size_bucket_count = 2;
    fs_middleware mw;
    assert_int_equal(fs_prometheus_middleware_new(&po, &mw), FS_OK);
    fs_broker *b;
    assert_int_equal(fs_memory_broker_new(NULL, &b), FS_OK);
    assert_int_equal(fs_broker_add_middleware(b, &mw), FS_OK);
    probe p = {ACT_RETURN_ACK, 0, b};
    fs_subscriber *sub;
    assert_int_equal(fs_subscribe(b, "c", on_message, &p, NULL, &sub), FS_OK);
    assert_int_equal(fs_broker_start(b), FS_OK);
    assert_int_equal(fs_publish_bytes(b, "c", "0123456789abcdef", 16), FS_OK);
    assert_int_equal(fs_subscriber_wait_handled(sub, 1, WAIT_MS), FS_OK);
    scrape s;
    scrape_take(&s, reg);
    const char *l = "app_name=\"faststream\",broker=\"memory\",handler=\"c\"";
    assert_int_equal(expect_histogram(&s, P "received_messages_size_bytes", l, 1, 16), 3);
    expect_sample(&s, P "received_messages_size_bytes_bucket",
                  "app_name=\"faststream\",broker=\"memory\",handler=\"c\",le=\"10\"", 0);
    expect_sample(&s, P "received_messages_size_bytes_bucket",
                  "app_name=\"faststream\",broker=\"memory\",handler=\"c\",le=\"100\"", 1);
    scrape_free(&s);
    fs_broker_free(b);

    /* other size buckets for the same families: a conflict */
    po.size_buckets = NULL;
    assert_int_equal(fs_prometheus_middleware_new(&po, &mw), FS_ECONFLICT);
    assert_non_null(strstr(fs_last_error(), "faststream_received_messages_size_bytes"));
    /* built and never added: released by the caller */
    po.prefix = "other";
    assert_int_equal(fs_prometheus_middleware_new(&po, &mw), FS_OK);
    fs_prometheus_middleware_release(&mw);
    fs_prometheus_middleware_release(NULL);
    fs_registry_free(reg);
}

/*
 * More label combinations than the middleware caches (1024 slots): the
 * ones beyond are looked up by label values on every message, with the same
 * results. Alternating handlers also defeat the per-thread last hit.
 */
static void test_many_label_combinations(void **state)
{
    fixture *fx = *state;
    enum { TENANTS = 1500, ROUNDS = 2 };
    probe pa = {ACT_RETURN_ACK, 0, fx->broker}, pb = {ACT_FAIL, 0, fx->broker};
    fs_subscriber *sa, *sb;
    assert_int_equal(fs_subscribe(fx->broker, "a", on_message, &pa, NULL, &sa), FS_OK);
    assert_int_equal(fs_subscribe(fx->broker, "b", on_message, &pb, NULL, &sb), FS_OK);
    fs_set_log_level(FS_LOG_OFF); /* 1,500 handler failures */
    assert_int_equal(fs_broker_start(fx->broker), FS_OK);
    char tenant[32];
    for (int r = 0; r < ROUNDS; r++)
        for (int i = 0; i < TENANTS; i++) {
            snprintf(tenant, sizeof tenant, "t%d", i);
            publish_one(fx->broker, i % 2 ? "b" : "a", "xy", tenant);
        }
    assert_int_equal(fs_subscriber_wait_handled(sa, ROUNDS * TENANTS / 2, 60000), FS_OK);
    assert_int_equal(fs_subscriber_wait_handled(sb, ROUNDS * TENANTS / 2, 60000), FS_OK);

    fs_set_log_level(FS_LOG_INFO);
    scrape s;
    scrape_take(&s, fx->reg);
    for (int i = 0; i < TENANTS; i++) {
        snprintf(tenant, sizeof tenant, "t%d", i);
        recv_expect ea = {"a", tenant, ROUNDS, ROUNDS, 2 * ROUNDS, .acked = ROUNDS};
        recv_expect eb = {"b",
                          tenant,
                          ROUNDS,
                          ROUNDS,
                          2 * ROUNDS,
                          .error = ROUNDS,
                          .exception_type = "ValueError",
                          .exceptions = ROUNDS};
        expect_received(&s, i % 2 ? &eb : &ea);
    }
    expect_published(&s, "a", "outside", ROUNDS * TENANTS / 2, ROUNDS * TENANTS / 2, 0, NULL, 0);
    expect_published(&s, "b", "outside", ROUNDS * TENANTS / 2, ROUNDS * TENANTS / 2, 0, NULL, 0);
    expect_nothing_else(&s, P);
    scrape_free(&s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_ack_explicit, setup, teardown),
        cmocka_unit_test_setup_teardown(test_nack_explicit, setup, teardown),
        cmocka_unit_test_setup_teardown(test_reject_explicit, setup, teardown),
        cmocka_unit_test_setup_teardown(test_return_ack, setup, teardown),
        cmocka_unit_test_setup_teardown(test_return_nack, setup, teardown),
        cmocka_unit_test_setup_teardown(test_return_reject, setup, teardown),
        cmocka_unit_test_setup_teardown(test_return_skip, setup, teardown),
        cmocka_unit_test_setup_teardown(test_fail, setup, teardown),
        cmocka_unit_test_setup_teardown(test_ack_then_fail, setup, teardown),
        cmocka_unit_test_setup_teardown(test_ack_first_then_fail, setup, teardown),
        cmocka_unit_test_setup_teardown(test_duration_of_a_20ms_handler, setup, teardown),
        cmocka_unit_test_setup_teardown(test_publish_inside_handler_carries_labels, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_batch_subscriber, setup, teardown),
        cmocka_unit_test_setup_teardown(test_publish_success_and_full_queue, setup, teardown),
        cmocka_unit_test_setup_teardown(test_destination_buffer_reused, setup, teardown),
        cmocka_unit_test_setup_teardown(test_reply_not_counted, setup, teardown),
        cmocka_unit_test_setup_teardown(test_two_brokers_share_registry, setup, teardown),
        cmocka_unit_test_setup_teardown(test_schema, setup, teardown),
        cmocka_unit_test(test_no_custom_labels_destination_reused),
        cmocka_unit_test(test_label_ids),
        cmocka_unit_test_setup_teardown(test_setup_errors, setup, teardown),
        cmocka_unit_test_setup_teardown(test_many_label_combinations, setup, teardown),
        cmocka_unit_test(test_defaults_app_name_is_prefix),
        cmocka_unit_test(test_custom_buckets_and_manual_add),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
