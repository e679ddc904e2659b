/*
 * Every ack policy x every handler outcome x explicit settlements, on the
 * in-process broker: what the broker finally did (acked: gone; nacked:
 * redelivered; rejected: dead-lettered; nothing: pending, requeued at stop)
 * and what a middleware saw (outcome, error type, explicit settled state).
 */
#include "core_test.h"

#include <stdatomic.h>

typedef enum action {
    A_OK,
    A_ACK,
    A_NACK,
    A_REJECT,
    A_SKIP,
    A_ERROR,
    A_ERROR_UNNAMED,
    A_X_ACK,         /* fs_message_ack, return OK */
    A_X_NACK,        /* fs_message_nack, return OK */
    A_X_REJECT,      /* fs_message_reject, return OK */
    A_X_ACK_NACK,    /* ack then nack: first wins */
    A_X_NACK_ACK,    /* nack then ack */
    A_X_ACK_ERROR,   /* ack then fail */
    A_X_REJECT_ACKO, /* reject then return the ACK outcome */
    A_COUNT
} action;

static const char *action_names[A_COUNT] = {
    "ok",          "ack",
    "nack",        "reject",
    "skip",        "error",
    "error0",      "x-ack",
    "x-nack",      "x-reject",
    "x-ack-nack",  "x-nack-ack",
    "x-ack-error", "x-reject-ack-outcome",
};

typedef struct run_state {
    action act;
    atomic_int deliveries;
    /* seen by the middleware on the first delivery */
    fs_outcome mw_outcome;
    char mw_error_type[64];
    fs_settle_state mw_settled;
    int second_settle_rc;
} run_state;

static fs_outcome handler(fs_message *m, void *user)
{
    run_state *st = user;
    if (atomic_fetch_add(&st->deliveries, 1) > 0) {
        fs_message_ack(m); /* redelivery: settle explicitly under every policy */
        return FS_OUTCOME_OK;
    }
    switch (st->act) {
    case A_OK:
        return FS_OUTCOME_OK;
    case A_ACK:
        return FS_OUTCOME_ACK;
    case A_NACK:
        return FS_OUTCOME_NACK;
    case A_REJECT:
        return FS_OUTCOME_REJECT;
    case A_SKIP:
        return FS_OUTCOME_SKIP;
    case A_ERROR:
        return fs_message_fail(m, "ValueError", "bad value %d", 42);
    case A_ERROR_UNNAMED:
        return fs_message_fail(m, NULL, NULL);
    case A_X_ACK:
        fs_message_ack(m);
        return FS_OUTCOME_OK;
    case A_X_NACK:
        fs_message_nack(m);
        return FS_OUTCOME_OK;
    case A_X_REJECT:
        fs_message_reject(m);
        return FS_OUTCOME_OK;
    case A_X_ACK_NACK:
        fs_message_ack(m);
        st->second_settle_rc = fs_message_nack(m);
        return FS_OUTCOME_OK;
    case A_X_NACK_ACK:
        fs_message_nack(m);
        st->second_settle_rc = fs_message_ack(m);
        return FS_OUTCOME_OK;
    case A_X_ACK_ERROR:
        fs_message_ack(m);
        return fs_message_fail(m, "KeyError", "missing");
    case A_X_REJECT_ACKO:
        fs_message_reject(m);
        return FS_OUTCOME_ACK;
    default:
        return FS_OUTCOME_OK;
    }
}

static fs_outcome observe(fs_consume_ctx *ctx)
{
    run_state *st = ctx->state;
    bool first = atomic_load(&st->deliveries) == 0;
    fs_outcome o = fs_consume_next(ctx);
    if (first) {
        st->mw_outcome = ctx->outcome;
        snprintf(st->mw_error_type, sizeof st->mw_error_type, "%s",
                 ctx->error_type ? ctx->error_type : "");
        st->mw_settled = fs_message_settled(ctx->message);
    }
    return o;
}

/*
 * The explicit settled state a middleware sees after the handler. Under
 * ACK_FIRST too: the broker got its ack on receipt, but the state (and the
 * status) still says what the handler did, as in FastStream.
 */
static fs_settle_state expected_explicit(fs_ack_policy p, action a)
{
    (void)p;
    switch (a) {
    case A_X_ACK:
    case A_X_ACK_NACK:
    case A_X_ACK_ERROR:
        return FS_SETTLE_ACKED;
    case A_X_NACK:
    case A_X_NACK_ACK:
        return FS_SETTLE_NACKED;
    case A_X_REJECT:
    case A_X_REJECT_ACKO:
        return FS_SETTLE_REJECTED;
    default:
        return FS_SETTLE_NONE;
    }
}

/* What the broker finally received. */
static fs_settle_state expected_final(fs_ack_policy p, action a)
{
    if (p == FS_ACK_POLICY_ACK_FIRST)
        return FS_SETTLE_ACKED;
    switch (a) {
    case A_OK:
        return p == FS_ACK_POLICY_MANUAL ? FS_SETTLE_NONE : FS_SETTLE_ACKED;
    case A_ACK:
        return FS_SETTLE_ACKED;
    case A_NACK:
        return FS_SETTLE_NACKED;
    case A_REJECT:
        return FS_SETTLE_REJECTED;
    case A_SKIP:
        return FS_SETTLE_NONE;
    case A_ERROR:
    case A_ERROR_UNNAMED:
        return p == FS_ACK_POLICY_ACK               ? FS_SETTLE_ACKED
               : p == FS_ACK_POLICY_REJECT_ON_ERROR ? FS_SETTLE_REJECTED
               : p == FS_ACK_POLICY_NACK_ON_ERROR   ? FS_SETTLE_NACKED
                                                    : FS_SETTLE_NONE;
    default: /* settled explicitly in the handler: that stands */
        return expected_explicit(p, a);
    }
}

static fs_outcome expected_outcome(action a)
{
    switch (a) {
    case A_ACK:
        return FS_OUTCOME_ACK;
    case A_NACK:
        return FS_OUTCOME_NACK;
    case A_REJECT:
        return FS_OUTCOME_REJECT;
    case A_SKIP:
        return FS_OUTCOME_SKIP;
    case A_ERROR:
    case A_ERROR_UNNAMED:
    case A_X_ACK_ERROR:
        return FS_OUTCOME_ERROR;
    case A_X_REJECT_ACKO:
        return FS_OUTCOME_ACK;
    default:
        return FS_OUTCOME_OK;
    }
}

static void run_case(fs_ack_policy policy, action act)
{
    run_state st;
    memset(&st, 0, sizeof st);
    st.act = act;
    st.second_settle_rc = -100;
    atomic_init(&st.deliveries, 0);

    fs_broker *b = memory_broker(16, false);
    fs_middleware mw = {.name = "observe", .consume = observe, .state = &st};
    CHECK_OK(fs_broker_add_middleware(b, &mw));
    fs_memory_subscriber_options mo = FS_MEMORY_SUBSCRIBER_OPTIONS_INIT;
    mo.dead_letter = "dlq";
    fs_subscriber_options so = FS_SUBSCRIBER_OPTIONS_INIT;
    so.ack_policy = policy;
    so.broker_options = &mo;
    fs_subscriber *sub = NULL;
    CHECK_OK(fs_subscribe(b, "q", handler, &st, &so, &sub));
    assert_int_equal(fs_subscriber_ack_policy(sub), policy);
    publish_str(b, "q", action_names[act]);
    CHECK_OK(fs_broker_start(b));

    fs_settle_state want = expected_final(policy, act);
    uint64_t handled = want == FS_SETTLE_NACKED ? 2 : 1;
    CHECK_OK(fs_subscriber_wait_handled(sub, handled, WAIT_MS));
    CHECK_OK(fs_broker_stop(b));

    const char *ctx = fs_ack_policy_name(policy);
    if (fs_subscriber_handled(sub) != handled)
        fail_msg("%s/%s: handled %llu, want %llu", ctx, action_names[act],
                 (unsigned long long)fs_subscriber_handled(sub), (unsigned long long)handled);
    assert_int_equal(fs_memory_queue_in_flight(b, "q", NULL), 0);
    size_t depth = fs_memory_queue_depth(b, "q", NULL);
    uint64_t dead = fs_memory_published_count(b, "dlq");
    switch (want) {
    case FS_SETTLE_ACKED:
    case FS_SETTLE_NACKED: /* redelivered once, then acked */
        if (depth != 0 || dead != 0)
            fail_msg("%s/%s: want acked, depth %zu dead %llu", ctx, action_names[act], depth,
                     (unsigned long long)dead);
        break;
    case FS_SETTLE_REJECTED:
        if (depth != 0 || dead != 1)
            fail_msg("%s/%s: want rejected, depth %zu dead %llu", ctx, action_names[act], depth,
                     (unsigned long long)dead);
        break;
    case FS_SETTLE_NONE:
        if (depth != 1 || dead != 0)
            fail_msg("%s/%s: want unsettled (requeued at stop), depth %zu dead %llu", ctx,
                     action_names[act], depth, (unsigned long long)dead);
        break;
    }
    assert_int_equal(atomic_load(&st.deliveries), (int)handled);

    /* What the middleware saw on the first delivery. */
    if (st.mw_settled != expected_explicit(policy, act))
        fail_msg("%s/%s: middleware saw settled=%s, want %s", ctx, action_names[act],
                 fs_settle_state_name(st.mw_settled),
                 fs_settle_state_name(expected_explicit(policy, act)));
    assert_int_equal(st.mw_outcome, expected_outcome(act));
    if (act == A_ERROR)
        assert_string_equal(st.mw_error_type, "ValueError");
    else if (act == A_ERROR_UNNAMED)
        assert_string_equal(st.mw_error_type, "Error");
    else if (act == A_X_ACK_ERROR)
        assert_string_equal(st.mw_error_type, "KeyError");
    else
        assert_string_equal(st.mw_error_type, "");
    if (act == A_X_ACK_NACK || act == A_X_NACK_ACK)
        assert_int_equal(st.second_settle_rc, FS_OK); /* ignored without error */
    fs_broker_free(b);
}

/* Every action under one policy: the test's state points at it (policies[]). */
static void test_policy(void **state)
{
    fs_ack_policy p = *(const fs_ack_policy *)*state;
    for (int a = 0; a < A_COUNT; a++)
        run_case(p, (action)a);
}

static fs_ack_policy policies[] = {FS_ACK_POLICY_ACK_FIRST, FS_ACK_POLICY_ACK,
                                   FS_ACK_POLICY_REJECT_ON_ERROR, FS_ACK_POLICY_NACK_ON_ERROR,
                                   FS_ACK_POLICY_MANUAL};

/* A cmocka test named NAME running test_policy on policies[I]. */
#define POLICY_TEST(NAME, I)                                                                       \
    {                                                                                              \
        .name = NAME, .test_func = test_policy, .initial_state = &policies[I]                      \
    }

/* subscriber > broker default > broker type default (memory: REJECT_ON_ERROR) */
static void test_policy_resolution(void **state)
{
    (void)state;
    fs_broker *b = memory_broker(0, false);
    fs_subscriber *s = NULL;
    CHECK_OK(fs_subscribe(b, "a", noop, NULL, NULL, &s));
    assert_int_equal(fs_subscriber_ack_policy(s), FS_ACK_POLICY_REJECT_ON_ERROR);
    fs_broker_free(b);

    fs_memory_options mo = FS_MEMORY_OPTIONS_INIT;
    mo.broker.ack_policy = FS_ACK_POLICY_NACK_ON_ERROR;
    CHECK_OK(fs_memory_broker_new(&mo, &b));
    CHECK_OK(fs_subscribe(b, "a", noop, NULL, NULL, &s));
    assert_int_equal(fs_subscriber_ack_policy(s), FS_ACK_POLICY_NACK_ON_ERROR);
    fs_subscriber_options so = FS_SUBSCRIBER_OPTIONS_INIT;
    so.ack_policy = FS_ACK_POLICY_MANUAL;
    CHECK_OK(fs_subscribe(b, "b", noop, NULL, &so, &s));
    assert_int_equal(fs_subscriber_ack_policy(s), FS_ACK_POLICY_MANUAL);
    fs_broker_free(b);

    fs_broker_options bo = FS_BROKER_OPTIONS_INIT;
    bo.ack_policy = FS_ACK_POLICY_ACK;
    CHECK_OK(fs_broker_new("memory://", &bo, &b));
    CHECK_OK(fs_subscribe(b, "a", noop, NULL, NULL, &s));
    assert_int_equal(fs_subscriber_ack_policy(s), FS_ACK_POLICY_ACK);
    fs_broker_free(b);
}

int main(void)
{
    quiet_logs();
    const struct CMUnitTest tests[] = {
        POLICY_TEST("test_ack_first", 0),       POLICY_TEST("test_ack", 1),
        POLICY_TEST("test_reject_on_error", 2), POLICY_TEST("test_nack_on_error", 3),
        POLICY_TEST("test_manual", 4),          cmocka_unit_test(test_policy_resolution),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
