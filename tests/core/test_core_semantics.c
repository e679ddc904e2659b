/*
 * The semantics of the adapter interface v2 as the core implements them:
 * redelivery delays and max deliveries (memory), delivery counts, lazily
 * generated ids and their propagation, one Prometheus middleware per
 * broker, the status rule, ordered settlement, late publish results, the
 * ops table's version check. Handlers record on the worker; asserts run on
 * the test thread.
 */
#include "core_test.h"
#include "faststream/adapter.h"

#include <sched.h>
#include <stdatomic.h>

static uint64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

/* ------------------------------------------------------------------------ */
/* Redelivery                                                               */

typedef struct redeliver_rec {
    atomic_int n;
    uint32_t counts[8];
    uint64_t at_ms[8];
    int ack_at; /* ack on this delivery (1-based); 0: always nack */
} redeliver_rec;

static fs_outcome nack_until(fs_message *m, void *user)
{
    redeliver_rec *r = user;
    int i = atomic_load(&r->n);
    if (i < 8) {
        r->counts[i] = fs_message_delivery_count(m);
        r->at_ms[i] = now_ms();
    }
    atomic_store(&r->n, i + 1);
    return (r->ack_at && i + 1 >= r->ack_at) ? FS_OUTCOME_ACK : FS_OUTCOME_NACK;
}

static void test_nack_comes_back_after_the_delay(void **state)
{
    (void)state;
    fs_broker *b = memory_broker(0, false);
    redeliver_rec r;
    memset(&r, 0, sizeof r);
    r.ack_at = 3;
    fs_subscriber_options so = FS_SUBSCRIBER_OPTIONS_INIT;
    so.redelivery.delay_ms = 40;
    fs_subscriber *sub;
    CHECK_OK(fs_subscribe(b, "q", nack_until, &r, &so, &sub));
    CHECK_OK(fs_broker_start(b));
    publish_str(b, "q", "x");
    CHECK_OK(fs_subscriber_wait_handled(sub, 3, WAIT_MS));
    CHECK_OK(fs_broker_stop(b));
    assert_int_equal(atomic_load(&r.n), 3);
    assert_int_equal(r.counts[0], 1);
    assert_int_equal(r.counts[1], 2);
    assert_int_equal(r.counts[2], 3);
    /* lower bounds only: 40 ms, then 80 ms (x2 per delivery) */
    assert_true(r.at_ms[1] - r.at_ms[0] >= 40);
    assert_true(r.at_ms[2] - r.at_ms[1] >= 80);
    assert_int_equal(fs_memory_queue_depth(b, "q", NULL), 0);
    fs_broker_free(b);
}

static char warn_line[512];
static atomic_int warn_count;

static void capture_warn(fs_log_level level, const char *component, const char *message, void *user)
{
    (void)user;
    if (level == FS_LOG_WARN && strcmp(component, "core") == 0 &&
        strstr(message, "max_deliveries")) {
        snprintf(warn_line, sizeof warn_line, "%s", message);
        atomic_fetch_add(&warn_count, 1);
    }
}

static void test_max_deliveries_then_dead_letter(void **state)
{
    (void)state;
    fs_set_log_handler(capture_warn, NULL);
    fs_set_log_level(FS_LOG_WARN);
    atomic_store(&warn_count, 0);
    fs_broker *b = memory_broker(0, false);
    redeliver_rec r;
    memset(&r, 0, sizeof r);
    fs_memory_subscriber_options mo = {NULL, "dlq"};
    fs_subscriber_options so = FS_SUBSCRIBER_OPTIONS_INIT;
    so.redelivery.delay_ms = 5;
    so.redelivery.max_deliveries = 3;
    so.broker_options = &mo;
    fs_subscriber *sub;
    CHECK_OK(fs_subscribe(b, "q", nack_until, &r, &so, &sub));
    CHECK_OK(fs_broker_start(b));
    publish_str(b, "q", "x");
    CHECK_OK(fs_subscriber_wait_handled(sub, 3, WAIT_MS));
    for (int i = 0; i < 2000 && fs_memory_published_count(b, "dlq") == 0; i++)
        test_sleep_ms(1);
    test_sleep_ms(30); /* a 4th delivery would come within 5..20 ms */
    CHECK_OK(fs_broker_stop(b));
    assert_int_equal(atomic_load(&r.n), 3);
    assert_int_equal(fs_memory_published_count(b, "dlq"), 1);
    assert_int_equal(fs_memory_queue_depth(b, "q", NULL), 0);
    assert_int_equal(atomic_load(&warn_count), 1);
    assert_non_null(strstr(warn_line, "delivered 3 times"));
    fs_broker_free(b);
    fs_set_log_handler(NULL, NULL);
    quiet_logs();
}

/* ------------------------------------------------------------------------ */
/* Ids                                                                      */

typedef struct ids_rec {
    char cid[64], mid[64], sent_cid[64];
    bool stable, uuid_shape;
    int publish_rc;
} ids_rec;

static bool uuid4_shape(const char *s)
{
    if (strlen(s) != 36 || s[14] != '4')
        return false;
    for (int i = 0; i < 36; i++) {
        bool dash = i == 8 || i == 13 || i == 18 || i == 23;
        if (dash != (s[i] == '-'))
            return false;
        if (!dash && !strchr("0123456789abcdef", s[i]))
            return false;
    }
    return strchr("89ab", s[19]) != NULL;
}

static fs_outcome ids_handler(fs_message *m, void *user)
{
    ids_rec *r = user;
    const char *c1 = fs_message_correlation_id(m), *c2 = fs_message_correlation_id(m);
    const char *mid = fs_message_id(m);
    r->stable = c1 && c1 == c2 && mid && strcmp(mid, c1) == 0;
    snprintf(r->cid, sizeof r->cid, "%s", c1 ? c1 : "");
    snprintf(r->mid, sizeof r->mid, "%s", mid ? mid : "");
    r->uuid_shape = c1 && uuid4_shape(c1);
    r->publish_rc = fs_publish_bytes(fs_message_broker(m), "out", "y", 1);
    return FS_OUTCOME_OK;
}

/* Publish `e` to "in", let ids_handler see it; *out: what it published to "out". */
static void run_ids(const fs_envelope *e, ids_rec *r, fs_message **out)
{
    fs_broker *b = memory_broker(0, true);
    memset(r, 0, sizeof *r);
    fs_subscriber *sub;
    CHECK_OK(fs_subscribe(b, "in", ids_handler, r, NULL, &sub));
    CHECK_OK(fs_broker_start(b));
    CHECK_OK(fs_publish(b, "in", e));
    CHECK_OK(fs_subscriber_wait_handled(sub, 1, WAIT_MS));
    CHECK_OK(fs_broker_stop(b));
    assert_int_equal(r->publish_rc, FS_OK);
    CHECK_OK(fs_memory_take_published(b, "out", out));
    fs_broker_free(b);
}

static void test_ids_generated_and_propagated(void **state)
{
    (void)state;
    fs_envelope e = FS_ENVELOPE_INIT; /* no correlation id, no message id */
    e.body = "x";
    e.body_len = 1;
    ids_rec r;
    fs_message *out;
    run_ids(&e, &r, &out);
    assert_true(r.stable);
    assert_true(r.uuid_shape);
    assert_string_equal(fs_message_correlation_id(out), r.cid);
    fs_message_free(out);
}

static void test_sent_ids_kept(void **state)
{
    (void)state;
    fs_envelope e = FS_ENVELOPE_INIT;
    e.body = "x";
    e.body_len = 1;
    e.correlation_id = "corr-1";
    ids_rec r;
    fs_message *out;
    run_ids(&e, &r, &out);
    assert_string_equal(r.cid, "corr-1");
    assert_string_equal(r.mid, "corr-1"); /* message id: the correlation id */
    assert_string_equal(fs_message_correlation_id(out), "corr-1");
    fs_message_free(out);
}

/* ------------------------------------------------------------------------ */
/* Prometheus: one per broker; the status rule                              */

static void test_second_prometheus_refused(void **state)
{
    (void)state;
    fs_registry *reg;
    CHECK_OK(fs_registry_new(&reg));
    fs_prometheus_options po = FS_PROMETHEUS_OPTIONS_INIT;
    po.registry = reg;
    fs_broker *a = memory_broker(0, false), *b2 = memory_broker(0, false);
    CHECK_OK(fs_broker_add_prometheus(a, &po));
    CHECK_ERR(fs_broker_add_prometheus(a, &po), FS_ECONFLICT);
    assert_non_null(strstr(fs_last_error(), "prometheus"));
    CHECK_OK(fs_broker_add_prometheus(b2, &po)); /* two brokers, one registry: fine */
    assert_int_equal(fs_broker_middleware_count(a), 1);
    fs_broker_free(a);
    fs_broker_free(b2);
    fs_registry_free(reg);
}

typedef struct status_rec {
    int act;
    char status[16];
    fs_received_status code;
} status_rec;

static fs_outcome status_mw(fs_consume_ctx *ctx)
{
    status_rec *r = ctx->state;
    fs_outcome o = fs_consume_next(ctx);
    snprintf(r->status, sizeof r->status, "%s", fs_consume_status(ctx));
    r->code = fs_consume_status_code(ctx);
    return o;
}

static fs_outcome status_handler(fs_message *m, void *user)
{
    status_rec *r = user;
    switch (r->act) {
    case 0:
        return fs_message_fail(m, "ValueError", NULL);
    case 1:
        fs_message_ack(m);
        return fs_message_fail(m, "ValueError", NULL);
    case 2:
        return FS_OUTCOME_SKIP;
    case 3:
        fs_message_reject(m);
        return FS_OUTCOME_NACK;
    case 5:
        return FS_OUTCOME_NACK;
    default:
        return FS_OUTCOME_OK;
    }
}

static void test_status_rule(void **state)
{
    (void)state;
    const char *want[] = {"error", "acked", "skipped", "rejected", "acked", "nacked"};
    const fs_received_status want_code[] = {FS_RECEIVED_ERROR,   FS_RECEIVED_ACKED,
                                            FS_RECEIVED_SKIPPED, FS_RECEIVED_REJECTED,
                                            FS_RECEIVED_ACKED,   FS_RECEIVED_NACKED};
    assert_int_equal(fs_consume_status_code(NULL), FS_RECEIVED_ACKED);
    for (int act = 0; act < 6; act++) {
        status_rec r;
        memset(&r, 0, sizeof r);
        r.act = act;
        fs_broker *b = memory_broker(0, false);
        fs_middleware mw = {.name = "status", .consume = status_mw, .state = &r};
        CHECK_OK(fs_broker_add_middleware(b, &mw));
        fs_subscriber_options so = FS_SUBSCRIBER_OPTIONS_INIT;
        so.ack_policy = act == 0 ? FS_ACK_POLICY_REJECT_ON_ERROR : FS_ACK_POLICY_ACK;
        fs_subscriber *sub;
        CHECK_OK(fs_subscribe(b, "q", status_handler, &r, &so, &sub));
        CHECK_OK(fs_broker_start(b));
        publish_str(b, "q", "x");
        CHECK_OK(fs_subscriber_wait_handled(sub, 1, WAIT_MS));
        CHECK_OK(fs_broker_stop(b));
        assert_string_equal(r.status, want[act]);
        assert_int_equal(r.code, want_code[act]);
        fs_broker_free(b);
    }
}

/* ------------------------------------------------------------------------ */
/* An adapter of our own: ordered settlement, late publish results, ABI     */

#define ORD_N 12

typedef struct ord_adapter {
    fs_message msgs[ORD_N];
    atomic_int next;
    pthread_mutex_t mu;
    int released[ORD_N];
    int nreleased;
    int settled[ORD_N];
    int nsettled;
} ord_adapter;

static ord_adapter ord;

static int ord_subscribe(void *impl, fs_subscribe_spec *spec, void **out)
{
    (void)impl;
    spec->settle_as[FS_SETTLE_NACKED] = FS_SETTLE_NONE; /* MQTT-like: nack sets nothing */
    *out = &ord;
    return FS_OK;
}

static void ord_release(fs_message *m)
{
    pthread_mutex_lock(&ord.mu);
    ord.released[ord.nreleased++] = (int)m->adapter_tag;
    pthread_mutex_unlock(&ord.mu);
}

/* Fill the recycled message of tag i as the test adapters hand it out. */
static fs_message *test_message(fs_message *m, const char *source, int i,
                                void (*release)(fs_message *))
{
    fs_message_init(m);
    m->body = "x";
    m->body_len = 1;
    m->source = source;
    m->adapter_tag = (uintptr_t)i;
    m->release = release;
    return m;
}

static int ord_fetch(void *impl, void *sub, unsigned worker, int timeout_ms, fs_message **out)
{
    (void)impl;
    (void)sub;
    (void)worker;
    int i = atomic_fetch_add(&ord.next, 1);
    if (i >= ORD_N) {
        atomic_store(&ord.next, ORD_N);
        test_sleep_ms(timeout_ms < 5 ? (unsigned)timeout_ms : 5u);
        return FS_ETIMEDOUT;
    }
    fs_message *m = test_message(&ord.msgs[i], "ord", i, ord_release);
    *out = m;
    return FS_OK;
}

static int ord_settle(void *impl, fs_message *m, const fs_settle_args *args)
{
    (void)impl;
    (void)args;
    pthread_mutex_lock(&ord.mu);
    ord.settled[ord.nsettled++] = (int)m->adapter_tag;
    pthread_mutex_unlock(&ord.mu);
    return FS_OK;
}

static atomic_int pending_publishes;

static int ord_publish(void *impl, void *dest, const char *destination, const fs_envelope *msgs,
                       size_t count, const char **error_type)
{
    (void)impl;
    (void)dest;
    (void)destination;
    (void)msgs;
    (void)count;
    (void)error_type;
    atomic_fetch_add(&pending_publishes, 1);
    return FS_PENDING;
}

static const fs_broker_ops ord_ops = {
    .abi_version = FS_ADAPTER_ABI_VERSION,
    .struct_size = sizeof(fs_broker_ops),
    .name = "ord",
    .default_ack_policy = FS_ACK_POLICY_ACK,
    .caps = FS_CAP_ORDERED_SETTLE,
    .subscribe = ord_subscribe,
    .fetch = ord_fetch,
    .settle = ord_settle,
    .publish = ord_publish,
};

/*
 * Run a subscription on ord_ops with this fetch and settle (ordered
 * settlement) until n units were handled, then stop and free the broker.
 */
static void run_ordered(const char *source, fs_handler_fn handler, const fs_subscriber_options *so,
                        uint64_t n, int (*fetch)(void *, void *, unsigned, int, fs_message **),
                        int (*settle)(void *, fs_message *, const fs_settle_args *))
{
    fs_broker_ops ops = ord_ops;
    ops.fetch = fetch;
    ops.settle = settle;
    fs_broker *b;
    CHECK_OK(fs_broker_create(&ops, NULL, "ord://", NULL, &b));
    fs_subscriber *sub;
    CHECK_OK(fs_subscribe(b, source, handler, NULL, so, &sub));
    CHECK_OK(fs_broker_start(b));
    CHECK_OK(fs_subscriber_wait_handled(sub, n, WAIT_MS));
    CHECK_OK(fs_broker_stop(b));
    fs_broker_free(b);
}

static fs_outcome slow_first(fs_message *m, void *user)
{
    (void)user;
    int i = (int)m->adapter_tag;
    test_sleep_ms((unsigned)(ORD_N - i) * 3); /* earlier messages finish later */
    if (i == 5)
        fs_message_nack(m); /* settle_as NONE: nothing, then the policy acks */
    return FS_OUTCOME_OK;
}

static void test_ordered_settlement(void **state)
{
    (void)state;
    memset(&ord, 0, sizeof ord);
    pthread_mutex_init(&ord.mu, NULL);
    fs_subscriber_options so = FS_SUBSCRIBER_OPTIONS_INIT;
    so.concurrency = 4;
    run_ordered("ord", slow_first, &so, ORD_N, ord_fetch, ord_settle);
    assert_int_equal(ord.nreleased, ORD_N);
    assert_int_equal(ord.nsettled, ORD_N);
    for (int i = 0; i < ORD_N; i++) {
        assert_int_equal(ord.released[i], i);
        assert_int_equal(ord.settled[i], i);
    }
    pthread_mutex_destroy(&ord.mu);
}

/*
 * Ordered settlement must not wait on another worker's fetch. Three
 * workers: message 1's handler returns first, message 0's once 1 returned
 * (so 1 waits for 0), and the fetch of message 2 blocks until both were
 * settled: the core has to settle them while that fetch is blocked. The
 * blocked fetch gives up after GATE_WAIT_MS (only when the core is broken;
 * it then hands message 2 out anyway so that the test ends and says why).
 */
#define GATE_N 3
#define GATE_WAIT_MS 5000

typedef struct gate_adapter {
    fs_message msgs[GATE_N];
    pthread_mutex_t mu;
    pthread_cond_t cv; /* broadcast at every change below */
    int next;          /* messages handed out */
    int settled[GATE_N];
    fs_settle_state ops[GATE_N];
    int nsettled;
    int released[GATE_N];
    int nreleased;
    int handler1_done;
    int handler0_saw_1;
    int settled_when_fetch_returned; /* by the blocked fetch, when it returned */
} gate_adapter;

static gate_adapter gate;

/* With gate.mu held: wait until *value >= at_least, up to GATE_WAIT_MS. */
static bool gate_wait_until(const int *value, int at_least)
{
    struct timespec until;
    clock_gettime(CLOCK_REALTIME, &until);
    until.tv_sec += GATE_WAIT_MS / 1000;
    while (*value < at_least)
        if (pthread_cond_timedwait(&gate.cv, &gate.mu, &until) != 0)
            return *value >= at_least;
    return true;
}

static void gate_release(fs_message *m)
{
    pthread_mutex_lock(&gate.mu);
    gate.released[gate.nreleased++] = (int)m->adapter_tag;
    pthread_cond_broadcast(&gate.cv);
    pthread_mutex_unlock(&gate.mu);
}

static int gate_settle(void *impl, fs_message *m, const fs_settle_args *args)
{
    (void)impl;
    pthread_mutex_lock(&gate.mu);
    gate.ops[gate.nsettled] = args->op;
    gate.settled[gate.nsettled++] = (int)m->adapter_tag;
    pthread_cond_broadcast(&gate.cv);
    pthread_mutex_unlock(&gate.mu);
    return FS_OK;
}

static int gate_fetch(void *impl, void *sub, unsigned worker, int timeout_ms, fs_message **out)
{
    (void)impl;
    (void)sub;
    (void)worker;
    pthread_mutex_lock(&gate.mu);
    int i = gate.next;
    if (i >= GATE_N) {
        pthread_mutex_unlock(&gate.mu);
        test_sleep_ms(timeout_ms < 5 ? (unsigned)timeout_ms : 5u);
        return FS_ETIMEDOUT;
    }
    if (i == GATE_N - 1) { /* blocked until every earlier message was settled */
        gate_wait_until(&gate.nsettled, GATE_N - 1);
        gate.settled_when_fetch_returned = gate.nsettled;
    }
    gate.next = i + 1;
    fs_message *m = test_message(&gate.msgs[i], "gate", i, gate_release);
    pthread_mutex_unlock(&gate.mu);
    *out = m;
    return FS_OK;
}

static fs_outcome gate_handler(fs_message *m, void *user)
{
    (void)user;
    pthread_mutex_lock(&gate.mu);
    if (m->adapter_tag == 0) {
        gate.handler0_saw_1 = gate_wait_until(&gate.handler1_done, 1);
    } else if (m->adapter_tag == 1) {
        gate.handler1_done = 1;
        pthread_cond_broadcast(&gate.cv);
    }
    pthread_mutex_unlock(&gate.mu);
    return FS_OUTCOME_OK;
}

static void test_ordered_settle_not_behind_blocked_fetch(void **state)
{
    (void)state;
    /* ACK settles after the handler; ACK_FIRST's early ack is deferred to the ordered point. */
    static const fs_ack_policy policies[] = {FS_ACK_POLICY_ACK, FS_ACK_POLICY_ACK_FIRST};
    for (size_t p = 0; p < sizeof policies / sizeof policies[0]; p++) {
        memset(&gate, 0, sizeof gate);
        gate.settled_when_fetch_returned = -1;
        pthread_mutex_init(&gate.mu, NULL);
        pthread_cond_init(&gate.cv, NULL);
        fs_subscriber_options so = FS_SUBSCRIBER_OPTIONS_INIT;
        so.concurrency = 3;
        so.ack_policy = policies[p];
        run_ordered("gate", gate_handler, &so, GATE_N, gate_fetch, gate_settle);
        assert_true(gate.handler0_saw_1); /* message 1 finished first */
        if (gate.settled_when_fetch_returned != GATE_N - 1)
            fail_msg("%s: the blocked fetch returned with %d of %d earlier messages settled",
                     fs_ack_policy_name(policies[p]), gate.settled_when_fetch_returned, GATE_N - 1);
        assert_int_equal(gate.nsettled, GATE_N);
        assert_int_equal(gate.nreleased, GATE_N);
        for (int i = 0; i < GATE_N; i++) {
            assert_int_equal(gate.settled[i], i);
            assert_int_equal(gate.ops[i], FS_SETTLE_ACKED);
            assert_int_equal(gate.released[i], i);
        }
        pthread_cond_destroy(&gate.cv);
        pthread_mutex_destroy(&gate.mu);
    }
}

/*
 * Many messages, eight workers, handlers of uneven length: settle and
 * release still in fetch order (single messages and batches). The record
 * is plain memory: under TSan this also checks that each settlement
 * happens after the previous one.
 */
#define MANY_N 3000

typedef struct many_adapter {
    fs_message msgs[MANY_N];
    pthread_mutex_t mu; /* fetch only: the core may call it from any worker */
    int next;
    int settled_next;  /* the tag the next settle must carry */
    int released_next; /* the tag the next release must carry */
    int out_of_order;
} many_adapter;

static many_adapter many;

static void many_release(fs_message *m)
{
    if ((int)m->adapter_tag != many.released_next++)
        many.out_of_order++;
}

static int many_settle(void *impl, fs_message *m, const fs_settle_args *args)
{
    (void)impl;
    (void)args;
    for (size_t i = 0; i < fs_message_count(m); i++)
        if ((int)fs_message_at(m, i)->adapter_tag != many.settled_next++)
            many.out_of_order++;
    return FS_OK;
}

static int many_fetch(void *impl, void *sub, unsigned worker, int timeout_ms, fs_message **out)
{
    (void)impl;
    (void)sub;
    (void)worker;
    pthread_mutex_lock(&many.mu);
    int i = many.next < MANY_N ? many.next++ : -1;
    pthread_mutex_unlock(&many.mu);
    if (i < 0) {
        test_sleep_ms(timeout_ms < 2 ? (unsigned)timeout_ms : 2u);
        return FS_ETIMEDOUT;
    }
    fs_message *m = test_message(&many.msgs[i], "many", i, many_release);
    *out = m;
    return FS_OK;
}

static fs_outcome uneven(fs_message *m, void *user)
{
    (void)user;
    unsigned k = (unsigned)fs_message_at(m, 0)->adapter_tag * 2654435761u >> 28;
    if (k == 0)
        test_sleep_ms(1);
    else
        for (unsigned i = 0; i < k; i++)
            sched_yield();
    return FS_OUTCOME_OK;
}

static void test_ordered_settlement_many(void **state)
{
    (void)state;
    static const size_t batch_sizes[] = {0, 3};
    static const fs_ack_policy policies[] = {FS_ACK_POLICY_ACK, FS_ACK_POLICY_ACK_FIRST};
    for (size_t v = 0; v < 2; v++) {
        memset(&many, 0, sizeof many);
        pthread_mutex_init(&many.mu, NULL);
        fs_subscriber_options so = FS_SUBSCRIBER_OPTIONS_INIT;
        so.concurrency = 8;
        so.batch_size = batch_sizes[v];
        so.batch_timeout_ms = 1;
        so.ack_policy = policies[v];
        run_ordered("many", uneven, &so, MANY_N, many_fetch, many_settle);
        assert_int_equal(many.out_of_order, 0);
        assert_int_equal(many.settled_next, MANY_N);
        assert_int_equal(many.released_next, MANY_N);
        pthread_mutex_destroy(&many.mu);
    }
}

static void test_late_publish_result(void **state)
{
    (void)state;
    fs_registry *reg;
    CHECK_OK(fs_registry_new(&reg));
    fs_prometheus_options po = FS_PROMETHEUS_OPTIONS_INIT;
    po.registry = reg;
    fs_broker *b;
    CHECK_OK(fs_broker_create(&ord_ops, &ord, "ord://", NULL, &b));
    CHECK_OK(fs_broker_add_prometheus(b, &po));
    CHECK_OK(fs_publish_bytes(b, "topic", "x", 1)); /* FS_PENDING: FS_OK to the caller */
    fs_buffer text = {0};
    CHECK_OK(fs_registry_render(reg, FS_FORMAT_TEXT, &text));
    assert_null(strstr(text.data, "published_messages_total{"));
    fs_buffer_free(&text);
    fs_adapter_publish_result(b, "topic", 1, FS_OK, NULL, 0.001);
    fs_adapter_publish_result(b, "topic", 2, FS_EBROKER, "MsgTimedOut", 0.002);
    CHECK_OK(fs_registry_render(reg, FS_FORMAT_TEXT, &text));
    const char *t = text.data;
    assert_non_null(strstr(t, "destination=\"topic\",status=\"success\"} 1"));
    assert_non_null(strstr(t, "destination=\"topic\",status=\"error\"} 2"));
    assert_non_null(strstr(t, "exception_type=\"MsgTimedOut\"} 1"));
    fs_buffer_free(&text);
    fs_broker_free(b);
    fs_registry_free(reg);
}

static int native_request(void *impl, const char *destination, const fs_envelope *msg,
                          int timeout_ms, fs_message **reply, const char **error_type)
{
    (void)impl;
    (void)timeout_ms;
    (void)error_type;
    fs_envelope r = *msg;
    r.body = "pong";
    r.body_len = 4;
    *reply = fs_message_new_copy(&r, destination);
    return *reply ? FS_OK : FS_ENOMEM;
}

/* A native request runs through the publish chain: counted as one publish, the reply nowhere. */
static void test_native_request_counted_as_publish(void **state)
{
    (void)state;
    fs_broker_ops ops = ord_ops;
    ops.caps |= FS_CAP_NATIVE_REQUEST;
    ops.request = native_request;
    fs_registry *reg;
    CHECK_OK(fs_registry_new(&reg));
    fs_prometheus_options po = FS_PROMETHEUS_OPTIONS_INIT;
    po.registry = reg;
    fs_broker *b;
    CHECK_OK(fs_broker_create(&ops, &ord, "ord://", NULL, &b));
    CHECK_OK(fs_broker_add_prometheus(b, &po));
    fs_envelope e = FS_ENVELOPE_INIT;
    e.body = "ping";
    e.body_len = 4;
    fs_message *reply;
    CHECK_OK(fs_request(b, "svc", &e, 1000, &reply));
    assert_memory_equal(fs_message_body(reply), "pong", 4);
    fs_message_free(reply);
    fs_buffer text = {0};
    CHECK_OK(fs_registry_render(reg, FS_FORMAT_TEXT, &text));
    assert_non_null(strstr(text.data, "destination=\"svc\",status=\"success\"} 1"));
    assert_null(strstr(text.data, "received_messages_total{"));
    fs_buffer_free(&text);
    fs_broker_free(b);
    fs_registry_free(reg);
}

static void test_ops_version_checked(void **state)
{
    (void)state;
    fs_broker *b = (fs_broker *)1;
    fs_broker_ops old = ord_ops;
    old.abi_version = 1;
    CHECK_ERR(fs_broker_create(&old, &ord, "ord://", NULL, &b), FS_EINVAL);
    assert_null(b);
    assert_non_null(strstr(fs_last_error(), "version"));
    /* a table from an older header of the same version: later ops read as NULL */
    fs_broker_ops shorter = ord_ops;
    shorter.struct_size = (uint32_t)offsetof(fs_broker_ops, backlog);
    shorter.backlog = (int (*)(void *, void *, int, uint64_t *))1; /* beyond: must be ignored */
    shorter.caps |= FS_CAP_BACKLOG;
    CHECK_OK(fs_broker_create(&shorter, &ord, "ord://", NULL, &b));
    assert_null(fs_broker_get_ops(b)->backlog);
    fs_subscriber *sub;
    CHECK_OK(fs_subscribe(b, "ord", noop, NULL, NULL, &sub));
    uint64_t n;
    CHECK_ERR(fs_subscriber_backlog(sub, 10, &n), FS_EUNSUPPORTED);
    fs_broker_free(b);
}

int main(void)
{
    quiet_logs();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_nack_comes_back_after_the_delay),
        cmocka_unit_test(test_max_deliveries_then_dead_letter),
        cmocka_unit_test(test_ids_generated_and_propagated),
        cmocka_unit_test(test_sent_ids_kept),
        cmocka_unit_test(test_second_prometheus_refused),
        cmocka_unit_test(test_status_rule),
        cmocka_unit_test(test_ordered_settlement),
        cmocka_unit_test(test_ordered_settle_not_behind_blocked_fetch),
        cmocka_unit_test(test_ordered_settlement_many),
        cmocka_unit_test(test_late_publish_result),
        cmocka_unit_test(test_native_request_counted_as_publish),
        cmocka_unit_test(test_ops_version_checked),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
