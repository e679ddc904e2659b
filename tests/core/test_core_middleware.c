/*
 * Middleware chains (order, what hooks see, scratch and the current
 * message, short-circuits) and request/reply (replies flagged, not
 * consumed through the chain, timeouts).
 */
#include "core_test.h"

#include <stdatomic.h>

/* A log of hook events, shared by the middlewares of one test. */
typedef struct event_log {
    pthread_mutex_t lock;
    char text[4096];
} event_log;

static void log_event(event_log *l, const char *fmt, ...) FS_PRINTF(2, 3);

static void log_event(event_log *l, const char *fmt, ...)
{
    pthread_mutex_lock(&l->lock);
    size_t n = strlen(l->text);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(l->text + n, sizeof l->text - n, fmt, ap);
    va_end(ap);
    pthread_mutex_unlock(&l->lock);
}

typedef struct named_mw {
    const char *name;
    event_log *log;
} named_mw;

static fs_outcome order_consume(fs_consume_ctx *ctx)
{
    named_mw *m = ctx->state;
    log_event(m->log, "%s>", m->name);
    fs_outcome o = fs_consume_next(ctx);
    log_event(m->log, "<%s ", m->name);
    return o;
}

static int order_publish(fs_publish_ctx *ctx)
{
    named_mw *m = ctx->state;
    log_event(m->log, "%s(", m->name);
    int rc = fs_publish_next(ctx);
    log_event(m->log, ")%s ", m->name);
    return rc;
}

static fs_outcome log_handler(fs_message *msg, void *user)
{
    (void)msg;
    log_event(user, "H ");
    return FS_OUTCOME_OK;
}

static void test_order(void **state)
{
    (void)state;
    event_log log;
    memset(&log, 0, sizeof log);
    pthread_mutex_init(&log.lock, NULL);
    named_mw a = {"A", &log}, bm = {"B", &log}, c = {"C", &log};
    fs_broker *b = memory_broker(16, false);
    fs_middleware mws[3] = {
        {.name = "A", .consume = order_consume, .publish = order_publish, .state = &a},
        {.name = "B", .consume = order_consume, .publish = order_publish, .state = &bm},
        {.name = "C", .consume = order_consume, .publish = order_publish, .state = &c},
    };
    for (int i = 0; i < 3; i++)
        CHECK_OK(fs_broker_add_middleware(b, &mws[i]));
    assert_int_equal(fs_broker_middleware_count(b), 3);
    fs_subscriber *sub;
    CHECK_OK(fs_subscribe(b, "q", log_handler, &log, NULL, &sub));
    publish_str(b, "q", "m");
    assert_string_equal(log.text, "A(B(C()C )B )A ");
    log.text[0] = '\0';
    CHECK_OK(fs_broker_start(b));
    CHECK_OK(fs_subscriber_wait_handled(sub, 1, WAIT_MS));
    CHECK_OK(fs_broker_stop(b));
    assert_string_equal(log.text, "A>B>C>H <C <B <A ");
    /* the chain is fixed once started */
    CHECK_ERR(fs_broker_add_middleware(b, &mws[0]), FS_ESTATE);
    fs_broker_free(b);
    pthread_mutex_destroy(&log.lock);
}

/* ------------------------------------------------------------------------ */
/* What the hooks see; scratch shared between consume and publish hooks.    */

typedef struct probe {
    pthread_mutex_t lock;
    /* consume */
    char broker_name[32], handler[64];
    size_t count, size;
    bool scratch_zeroed;
    /* publishes: destination, is_reply, current set, scratch seen */
    int publishes;
    char dest[4][64];
    bool is_reply[4];
    bool has_current[4];
    unsigned scratch_tag[4];
    int status[4];
    char error_type[4][32];
} probe;

static fs_outcome probe_consume(fs_consume_ctx *ctx)
{
    probe *p = ctx->state;
    unsigned *tag = ctx->scratch;
    pthread_mutex_lock(&p->lock);
    snprintf(p->broker_name, sizeof p->broker_name, "%s", ctx->broker_name);
    snprintf(p->handler, sizeof p->handler, "%s", ctx->handler);
    p->count = ctx->count;
    p->size = ctx->size;
    p->scratch_zeroed = tag && *tag == 0;
    pthread_mutex_unlock(&p->lock);
    if (tag)
        *tag = 0xC0FFEEu; /* the publish hook must find this for the current message */
    return fs_consume_next(ctx);
}

static int probe_publish(fs_publish_ctx *ctx)
{
    probe *p = ctx->state;
    /* take the slot on entry: a reply made by the handler can finish before
       the request's own publish call returns */
    pthread_mutex_lock(&p->lock);
    int i = p->publishes++;
    if (i < 4) {
        snprintf(p->dest[i], sizeof p->dest[i], "%s", ctx->destination);
        p->is_reply[i] = ctx->is_reply;
        p->has_current[i] = ctx->current != NULL;
        p->scratch_tag[i] = ctx->scratch ? *(unsigned *)ctx->scratch : 0;
    }
    pthread_mutex_unlock(&p->lock);
    int rc = fs_publish_next(ctx);
    pthread_mutex_lock(&p->lock);
    if (i < 4) {
        p->status[i] = ctx->status;
        snprintf(p->error_type[i], sizeof p->error_type[i], "%s",
                 ctx->error_type ? ctx->error_type : "");
    }
    pthread_mutex_unlock(&p->lock);
    return rc;
}

static fs_outcome echo_upper(fs_message *m, void *user)
{
    (void)user;
    char buf[64];
    size_t n = fs_message_body_len(m) < sizeof buf ? fs_message_body_len(m) : sizeof buf;
    const char *body = fs_message_body(m);
    for (size_t i = 0; i < n; i++)
        buf[i] = (char)((body[i] >= 'a' && body[i] <= 'z') ? body[i] - 32 : body[i]);
    fs_header h = {"x-echo", "1", 0};
    int rc = fs_message_reply(m, buf, n, &h, 1, "text/plain");
    if (rc < 0)
        return fs_message_fail(m, "ReplyFailed", "%s", fs_last_error());
    return FS_OUTCOME_OK;
}

static void test_request_reply(void **state)
{
    (void)state;
    probe p;
    memset(&p, 0, sizeof p);
    pthread_mutex_init(&p.lock, NULL);
    fs_broker *b = memory_broker(64, false);
    fs_middleware mw = {.name = "probe",
                        .consume = probe_consume,
                        .publish = probe_publish,
                        .scratch_size = sizeof(unsigned),
                        .state = &p};
    CHECK_OK(fs_broker_add_middleware(b, &mw));
    fs_subscriber *sub;
    CHECK_OK(fs_subscribe(b, "rpc.upper", echo_upper, NULL, NULL, &sub));
    CHECK_OK(fs_broker_start(b));

    fs_envelope req = FS_ENVELOPE_INIT;
    req.body = "hello";
    req.body_len = 5;
    fs_message *reply = NULL;
    CHECK_OK(fs_request(b, "rpc.upper", &req, WAIT_MS, &reply));
    assert_non_null(reply);
    assert_int_equal(fs_message_body_len(reply), 5);
    assert_memory_equal(fs_message_body(reply), "HELLO", 5);
    assert_string_equal(fs_message_header(reply, "x-echo"), "1");
    assert_string_equal(fs_message_content_type(reply), "text/plain");
    assert_non_null(fs_message_correlation_id(reply));
    fs_message_free(reply);

    /* a given correlation id is kept */
    req.correlation_id = "my-corr-7";
    CHECK_OK(fs_request(b, "rpc.upper", &req, WAIT_MS, &reply));
    assert_string_equal(fs_message_correlation_id(reply), "my-corr-7");
    fs_message_free(reply);
    CHECK_OK(fs_subscriber_wait_handled(sub, 2, WAIT_MS));
    CHECK_OK(fs_broker_stop(b));

    pthread_mutex_lock(&p.lock);
    /* consumed: only the requests (2), never the replies */
    assert_int_equal(fs_subscriber_handled(sub), 2);
    assert_string_equal(p.broker_name, "memory");
    assert_string_equal(p.handler, "rpc.upper");
    assert_int_equal(p.count, 1);
    assert_int_equal(p.size, 5);
    assert_true(p.scratch_zeroed);
    /* published: request (outside a handler), reply (inside, flagged), twice */
    assert_int_equal(p.publishes, 4);
    for (int i = 0; i < 4; i += 2) {
        assert_string_equal(p.dest[i], "rpc.upper");
        assert_false(p.is_reply[i]);
        assert_false(p.has_current[i]);
        assert_int_equal(p.scratch_tag[i], 0);
        assert_true(strncmp(p.dest[i + 1], "faststream.inbox.", 17) == 0);
        assert_true(p.is_reply[i + 1]);
        assert_true(p.has_current[i + 1]);
        assert_int_equal(p.scratch_tag[i + 1], 0xC0FFEEu);
        assert_int_equal(p.status[i + 1], FS_OK);
        assert_string_equal(p.error_type[i + 1], "");
    }
    pthread_mutex_unlock(&p.lock);
    fs_broker_free(b);
    pthread_mutex_destroy(&p.lock);
}

/* A started broker whose "rpc.silent" subscriber never replies. */
static fs_broker *silent_rpc(fs_subscriber **sub)
{
    fs_broker *b = memory_broker(16, false);
    CHECK_OK(fs_subscribe(b, "rpc.silent", noop, NULL, NULL, sub));
    CHECK_OK(fs_broker_start(b));
    return b;
}

static void test_request_timeout(void **state)
{
    (void)state;
    fs_subscriber *sub;
    fs_broker *b = silent_rpc(&sub);
    fs_envelope req = FS_ENVELOPE_INIT;
    req.body = "?";
    req.body_len = 1;
    fs_message *reply = (fs_message *)&req; /* must be reset to NULL */
    CHECK_ERR(fs_request(b, "rpc.silent", &req, 50, &reply), FS_ETIMEDOUT);
    assert_null(reply);
    assert_non_null(strstr(fs_last_error(), "rpc.silent"));
    fs_broker_free(b);
}

typedef struct pending_request {
    fs_broker *broker;
    int rc;
    char error[256];
} pending_request;

static void *request_forever(void *arg)
{
    pending_request *p = arg;
    fs_envelope req = FS_ENVELOPE_INIT;
    fs_message *reply = NULL;
    p->rc = fs_request(p->broker, "rpc.silent", &req, -1, &reply);
    snprintf(p->error, sizeof p->error, "%s", fs_last_error());
    fs_message_free(reply);
    return NULL;
}

/* A request waiting without a time limit ends when its broker is closed. */
static void test_request_ends_at_close(void **state)
{
    (void)state;
    fs_subscriber *sub;
    fs_broker *b = silent_rpc(&sub);
    pending_request p = {.broker = b};
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, request_forever, &p), 0);
    CHECK_OK(fs_subscriber_wait_handled(sub, 1, WAIT_MS)); /* the request was published */
    CHECK_OK(fs_broker_close(b));
    pthread_join(t, NULL);
    assert_int_equal(p.rc, FS_ECLOSED);
    assert_non_null(strstr(p.error, "closed"));
    fs_broker_free(b);
}

static atomic_int stop_from_handler_rc;

static fs_outcome reply_without_reply_to(fs_message *m, void *user)
{
    atomic_int *rc = user;
    atomic_store(rc, fs_message_reply(m, "x", 1, NULL, 0, NULL));
    /* a handler cannot stop its own broker (it would wait for itself) */
    atomic_store(&stop_from_handler_rc, fs_broker_stop(fs_message_broker(m)));
    return FS_OUTCOME_OK;
}

static void test_reply_needs_reply_to(void **state)
{
    (void)state;
    atomic_int rc = 1;
    fs_broker *b = memory_broker(16, false);
    fs_subscriber *sub;
    CHECK_OK(fs_subscribe(b, "q", reply_without_reply_to, &rc, NULL, &sub));
    publish_str(b, "q", "no reply-to");
    CHECK_OK(fs_broker_start(b));
    CHECK_OK(fs_subscriber_wait_handled(sub, 1, WAIT_MS));
    assert_int_equal(atomic_load(&rc), FS_ENOTFOUND);
    assert_int_equal(atomic_load(&stop_from_handler_rc), FS_ESTATE);
    fs_broker_free(b);
}

/* ------------------------------------------------------------------------ */
/* Publish failures reach the middleware; hooks may short-circuit.          */

static void test_publish_error_seen(void **state)
{
    (void)state;
    probe p;
    memset(&p, 0, sizeof p);
    pthread_mutex_init(&p.lock, NULL);
    fs_broker *b = memory_broker(2, false);
    fs_middleware mw = {.name = "probe", .publish = probe_publish, .state = &p};
    CHECK_OK(fs_broker_add_middleware(b, &mw));
    publish_str(b, "small", "1");
    publish_str(b, "small", "2");
    CHECK_ERR(fs_publish_bytes(b, "small", "3", 1), FS_EFULL);
    assert_int_equal(p.publishes, 3);
    assert_int_equal(p.status[2], FS_EFULL);
    assert_string_equal(p.error_type[2], "QueueFull");
    assert_string_equal(p.error_type[0], "");
    fs_broker_free(b);
    pthread_mutex_destroy(&p.lock);
}

static int block_publish(fs_publish_ctx *ctx)
{
    (void)ctx;
    return FS_EUNSUPPORTED; /* refused without calling next */
}

static fs_outcome skip_all(fs_consume_ctx *ctx)
{
    (void)ctx;
    return FS_OUTCOME_SKIP; /* never calls next: the handler does not run */
}

static atomic_int handler_runs;

static fs_outcome count_runs(fs_message *m, void *user)
{
    (void)m;
    (void)user;
    atomic_fetch_add(&handler_runs, 1);
    return FS_OUTCOME_OK;
}

static void test_short_circuit(void **state)
{
    (void)state;
    atomic_store(&handler_runs, 0);
    fs_broker *b = memory_broker(16, false);
    fs_middleware block = {.name = "block", .publish = block_publish};
    CHECK_OK(fs_broker_add_middleware(b, &block));
    assert_int_equal(fs_publish_bytes(b, "q", "x", 1), FS_EUNSUPPORTED);
    assert_string_equal(fs_last_publish_error_type(), "Error");
    assert_int_equal(fs_memory_published_count(b, "q"), 0);
    fs_broker_free(b);

    b = memory_broker(16, false);
    fs_middleware skip = {.name = "skip", .consume = skip_all};
    CHECK_OK(fs_broker_add_middleware(b, &skip));
    fs_subscriber *sub;
    CHECK_OK(fs_subscribe(b, "q", count_runs, NULL, NULL, &sub));
    publish_str(b, "q", "x");
    CHECK_OK(fs_broker_start(b));
    CHECK_OK(fs_subscriber_wait_handled(sub, 1, WAIT_MS));
    CHECK_OK(fs_broker_stop(b));
    assert_int_equal(atomic_load(&handler_runs), 0);
    /* skipped: unsettled, requeued when the broker stopped */
    assert_int_equal(fs_memory_queue_depth(b, "q", NULL), 1);
    fs_broker_free(b);
}

/* ------------------------------------------------------------------------ */
/* A hook calling next twice: the rest of the chain runs once.              */

typedef struct twice_probe {
    atomic_int consume_calls; /* hook invocations */
    atomic_int inner_calls;   /* invocations of the middleware inside it */
    atomic_int handler_runs;
    atomic_int ack_rc;
    fs_outcome first, second;
    int first_status, second_status;
    char second_type[32];
    char error[256];
} twice_probe;

static fs_outcome next_twice_consume(fs_consume_ctx *ctx)
{
    twice_probe *p = ctx->state;
    atomic_fetch_add(&p->consume_calls, 1);
    p->first = fs_consume_next(ctx);
    fs_clear_error();
    p->second = fs_consume_next(ctx);
    snprintf(p->error, sizeof p->error, "%s", fs_last_error());
    return p->second;
}

static fs_outcome inner_consume(fs_consume_ctx *ctx)
{
    twice_probe *p = ctx->state;
    atomic_fetch_add(&p->inner_calls, 1);
    return fs_consume_next(ctx);
}

/* Acks explicitly; a second run would fail the ack and return ERROR. */
static fs_outcome ack_once(fs_message *m, void *user)
{
    twice_probe *p = user;
    int run = atomic_fetch_add(&p->handler_runs, 1);
    atomic_store(&p->ack_rc, fs_message_ack(m));
    if (run > 0)
        return fs_message_fail(m, "RanTwice", "the handler ran %d times", run + 1);
    return FS_OUTCOME_ACK;
}

static void test_consume_next_twice(void **state)
{
    (void)state;
    twice_probe p;
    memset(&p, 0, sizeof p);
    fs_broker *b = memory_broker(16, false);
    fs_middleware twice = {.name = "twice", .consume = next_twice_consume, .state = &p};
    fs_middleware inner = {.name = "inner", .consume = inner_consume, .state = &p};
    CHECK_OK(fs_broker_add_middleware(b, &twice));
    CHECK_OK(fs_broker_add_middleware(b, &inner));
    fs_subscriber *sub;
    CHECK_OK(fs_subscribe(b, "q", ack_once, &p, NULL, &sub));
    publish_str(b, "q", "once");
    CHECK_OK(fs_broker_start(b));
    CHECK_OK(fs_subscriber_wait_handled(sub, 1, WAIT_MS));
    CHECK_OK(fs_broker_stop(b));
    assert_int_equal(atomic_load(&p.consume_calls), 1);
    assert_int_equal(atomic_load(&p.inner_calls), 1);
    assert_int_equal(atomic_load(&p.handler_runs), 1);
    assert_int_equal(atomic_load(&p.ack_rc), FS_OK);
    assert_int_equal(p.first, FS_OUTCOME_ACK);
    assert_int_equal(p.second, FS_OUTCOME_ACK);
    assert_non_null(strstr(p.error, "middleware twice called fs_consume_next twice"));
    /* settled once, acked: nothing requeued, nothing in flight */
    assert_int_equal(fs_memory_queue_depth(b, "q", NULL), 0);
    assert_int_equal(fs_memory_queue_in_flight(b, "q", NULL), 0);
    assert_int_equal(fs_subscriber_handled(sub), 1);
    fs_broker_free(b);
}

static int next_twice_publish(fs_publish_ctx *ctx)
{
    twice_probe *p = ctx->state;
    p->first_status = fs_publish_next(ctx);
    fs_clear_error();
    p->second_status = fs_publish_next(ctx);
    snprintf(p->error, sizeof p->error, "%s", fs_last_error());
    snprintf(p->second_type, sizeof p->second_type, "%s", ctx->error_type ? ctx->error_type : "");
    return p->second_status;
}

static int inner_publish(fs_publish_ctx *ctx)
{
    twice_probe *p = ctx->state;
    atomic_fetch_add(&p->inner_calls, 1);
    return fs_publish_next(ctx);
}

static void test_publish_next_twice(void **state)
{
    (void)state;
    twice_probe p;
    memset(&p, 0, sizeof p);
    fs_broker *b = memory_broker(2, false);
    fs_middleware twice = {.name = "twice", .publish = next_twice_publish, .state = &p};
    fs_middleware inner = {.name = "inner", .publish = inner_publish, .state = &p};
    CHECK_OK(fs_broker_add_middleware(b, &twice));
    CHECK_OK(fs_broker_add_middleware(b, &inner));

    CHECK_OK(fs_publish_bytes(b, "q", "1", 1));
    assert_int_equal(p.first_status, FS_OK);
    assert_int_equal(p.second_status, FS_OK);
    assert_int_equal(atomic_load(&p.inner_calls), 1);
    assert_int_equal(fs_memory_published_count(b, "q"), 1);
    assert_int_equal(fs_memory_queue_depth(b, "q", NULL), 1);
    assert_non_null(strstr(p.error, "middleware twice called fs_publish_next twice"));
    assert_non_null(strstr(p.error, "to q"));

    /* a failed first call: the second returns the same status and type */
    CHECK_OK(fs_publish_bytes(b, "q", "2", 1));
    assert_int_equal(fs_publish_bytes(b, "q", "3", 1), FS_EFULL);
    assert_int_equal(p.first_status, FS_EFULL);
    assert_int_equal(p.second_status, FS_EFULL);
    assert_string_equal(p.second_type, "QueueFull");
    assert_string_equal(fs_last_publish_error_type(), "QueueFull");
    assert_int_equal(atomic_load(&p.inner_calls), 3);
    assert_int_equal(fs_memory_published_count(b, "q"), 2);
    fs_broker_free(b);
}

static void free_state_counter(void *state)
{
    atomic_fetch_add((atomic_int *)state, 1);
}

static void test_state_freed(void **state)
{
    (void)state;
    atomic_int freed = 0;
    fs_broker *b = memory_broker(16, false);
    fs_middleware mw = {
        .name = "x", .consume = skip_all, .state = &freed, .free_state = free_state_counter};
    CHECK_OK(fs_broker_add_middleware(b, &mw));
    fs_middleware bad = mw;
    bad.scratch_size = FS_MIDDLEWARE_SCRATCH_MAX + 1;
    CHECK_ERR(fs_broker_add_middleware(b, &bad), FS_EINVAL);
    bad = (fs_middleware){.name = "none"};
    CHECK_ERR(fs_broker_add_middleware(b, &bad), FS_EINVAL);
    fs_broker_free(b);
    assert_int_equal(atomic_load(&freed), 1);
}

int main(void)
{
    quiet_logs();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_order),
        cmocka_unit_test(test_request_reply),
        cmocka_unit_test(test_request_timeout),
        cmocka_unit_test(test_request_ends_at_close),
        cmocka_unit_test(test_reply_needs_reply_to),
        cmocka_unit_test(test_publish_error_seen),
        cmocka_unit_test(test_short_circuit),
        cmocka_unit_test(test_consume_next_twice),
        cmocka_unit_test(test_publish_next_twice),
        cmocka_unit_test(test_state_freed),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
