/*
 * The in-process broker: message content, batches, concurrency limit,
 * competing consumers, fan-out, dead-lettering, bounded capacity and the
 * test-harness functions.
 */
#include "core_test.h"
#include "support/overlap.h"
#include "support/record.h"
#include "support/worker_check.h"

#include <stdatomic.h>

/* ------------------------------------------------------------------------ */
/* Content: body, headers, metadata and source survive the trip.            */

typedef struct seen {
    pthread_mutex_t lock;
    char body[2048];
    size_t body_len;
    char hdr_a[32], hdr_b[32];
    size_t header_count;
    char content_type[64], corr[64], msg_id[64], reply_to[64], source[64];
    bool batch;
    size_t count;
} seen;

static void copy_str(char *dst, size_t n, const char *s)
{
    snprintf(dst, n, "%s", s ? s : "(null)");
}

static fs_outcome capture(fs_message *m, void *user)
{
    seen *s = user;
    pthread_mutex_lock(&s->lock);
    s->body_len = fs_message_body_len(m);
    if (s->body_len < sizeof s->body)
        memcpy(s->body, fs_message_body(m), s->body_len);
    copy_str(s->hdr_a, sizeof s->hdr_a, fs_message_header(m, "a"));
    copy_str(s->hdr_b, sizeof s->hdr_b, fs_message_header(m, "b"));
    s->header_count = fs_message_header_count(m);
    copy_str(s->content_type, sizeof s->content_type, fs_message_content_type(m));
    copy_str(s->corr, sizeof s->corr, fs_message_correlation_id(m));
    copy_str(s->msg_id, sizeof s->msg_id, fs_message_id(m));
    copy_str(s->reply_to, sizeof s->reply_to, fs_message_reply_to(m));
    copy_str(s->source, sizeof s->source, fs_message_source(m));
    s->batch = fs_message_is_batch(m);
    s->count = fs_message_count(m);
    WORKER_CHECK(fs_message_at(m, 0) == m);
    WORKER_CHECK(fs_message_at(m, 1) == NULL);
    WORKER_CHECK(fs_current_message() == m);
    WORKER_CHECK(fs_message_broker(m) != NULL);
    WORKER_CHECK(fs_message_subscriber(m) != NULL);
    pthread_mutex_unlock(&s->lock);
    return FS_OUTCOME_OK;
}

static void roundtrip(size_t body_len)
{
    seen s;
    memset(&s, 0, sizeof s);
    pthread_mutex_init(&s.lock, NULL);
    fs_broker *b = memory_broker(8, false);
    fs_subscriber *sub;
    CHECK_OK(fs_subscribe(b, "orders", capture, &s, NULL, &sub));
    char *body = malloc(body_len + 1);
    for (size_t i = 0; i < body_len; i++)
        body[i] = (char)('a' + i % 26);
    fs_header h[2] = {{"a", "1", 0}, {"b", "two", 0}};
    fs_envelope e = FS_ENVELOPE_INIT;
    e.body = body;
    e.body_len = body_len;
    e.headers = h;
    e.header_count = 2;
    e.content_type = "text/plain";
    e.correlation_id = "corr-1";
    e.message_id = "id-1";
    e.reply_to = "replies";
    CHECK_OK(fs_publish(b, "orders", &e));
    CHECK_OK(fs_broker_start(b));
    CHECK_OK(fs_subscriber_wait_handled(sub, 1, WAIT_MS));
    assert_worker_checks();
    pthread_mutex_lock(&s.lock);
    assert_int_equal(s.body_len, body_len);
    assert_memory_equal(s.body, body, body_len);
    assert_string_equal(s.hdr_a, "1");
    assert_string_equal(s.hdr_b, "two");
    assert_int_equal(s.header_count, 2);
    assert_string_equal(s.content_type, "text/plain");
    assert_string_equal(s.corr, "corr-1");
    assert_string_equal(s.msg_id, "id-1");
    assert_string_equal(s.reply_to, "replies");
    assert_string_equal(s.source, "orders");
    assert_false(s.batch);
    assert_int_equal(s.count, 1);
    pthread_mutex_unlock(&s.lock);
    assert_null(fs_current_message()); /* not inside a handler here */
    fs_broker_free(b);
    free(body);
    pthread_mutex_destroy(&s.lock);
}

static void test_content_inline(void **state)
{
    (void)state;
    roundtrip(10);
}

static void test_content_large(void **state)
{
    (void)state;
    roundtrip(1500); /* beyond the inline storage: heap path */
}

/* ------------------------------------------------------------------------ */
/* Batches                                                                  */

typedef struct batch_state {
    pthread_mutex_t lock;
    size_t batches;
    size_t messages;
    size_t max_count;
    size_t bytes;
    bool size_ok;
    bool order_ok;
    int next_expected;
} batch_state;

static fs_outcome on_batch(fs_message *m, void *user)
{
    batch_state *s = user;
    pthread_mutex_lock(&s->lock);
    WORKER_CHECK(fs_message_is_batch(m));
    size_t n = fs_message_count(m), sum = 0;
    for (size_t i = 0; i < n; i++) {
        fs_message *item = fs_message_at(m, i);
        sum += fs_message_body_len(item);
        char num[16] = "";
        size_t len = fs_message_body_len(item) < 15 ? fs_message_body_len(item) : 15;
        memcpy(num, fs_message_body(item), len);
        int v = atoi(num);
        if (v != s->next_expected)
            s->order_ok = false;
        s->next_expected = v + 1;
        /* messages of a batch cannot be settled one by one */
        WORKER_CHECK(fs_message_ack(item) == FS_EINVAL);
    }
    WORKER_CHECK(fs_message_at(m, n) == NULL);
    if (sum != fs_message_size(m) || fs_message_body_len(m) != 0)
        s->size_ok = false;
    WORKER_CHECK(strcmp(fs_message_source(m), "events") == 0);
    s->batches++;
    s->messages += n;
    s->bytes += sum;
    if (n > s->max_count)
        s->max_count = n;
    pthread_mutex_unlock(&s->lock);
    return FS_OUTCOME_OK;
}

static void test_batch_size(void **state)
{
    (void)state;
    batch_state s = {.size_ok = true, .order_ok = true};
    pthread_mutex_init(&s.lock, NULL);
    fs_broker *b = memory_broker(64, false);
    fs_subscriber_options so = FS_SUBSCRIBER_OPTIONS_INIT;
    so.batch_size = 5;
    so.batch_timeout_ms = 50;
    fs_subscriber *sub;
    CHECK_OK(fs_subscribe(b, "events", on_batch, &s, &so, &sub));
    size_t bytes = 0;
    char buf[16];
    for (int i = 0; i < 12; i++) {
        snprintf(buf, sizeof buf, "%d", i);
        bytes += strlen(buf);
        publish_str(b, "events", buf);
    }
    CHECK_OK(fs_broker_start(b));
    CHECK_OK(fs_subscriber_wait_handled(sub, 12, WAIT_MS));
    CHECK_OK(fs_broker_stop(b));
    assert_worker_checks();
    pthread_mutex_lock(&s.lock);
    assert_int_equal(s.messages, 12);
    assert_int_equal(s.bytes, bytes);
    assert_int_equal(s.max_count, 5); /* 12 queued before start: full batches first */
    assert_int_equal(s.batches, 3);   /* 5 + 5 + 2 */
    assert_true(s.size_ok);
    assert_true(s.order_ok);
    pthread_mutex_unlock(&s.lock);
    assert_int_equal(fs_memory_queue_depth(b, "events", NULL), 0);
    assert_int_equal(fs_memory_queue_in_flight(b, "events", NULL), 0);
    fs_broker_free(b);
    pthread_mutex_destroy(&s.lock);
}

static void test_batch_timeout_flush(void **state)
{
    (void)state;
    batch_state s = {.size_ok = true, .order_ok = true};
    pthread_mutex_init(&s.lock, NULL);
    fs_broker *b = memory_broker(64, false);
    fs_subscriber_options so = FS_SUBSCRIBER_OPTIONS_INIT;
    so.batch_size = 100; /* never reached: only the timeout delivers */
    so.batch_timeout_ms = 20;
    fs_subscriber *sub;
    CHECK_OK(fs_subscribe(b, "events", on_batch, &s, &so, &sub));
    publish_str(b, "events", "0");
    publish_str(b, "events", "1");
    publish_str(b, "events", "2");
    CHECK_OK(fs_broker_start(b));
    CHECK_OK(fs_subscriber_wait_handled(sub, 3, WAIT_MS));
    publish_str(b, "events", "3"); /* a later, partial batch of one */
    CHECK_OK(fs_subscriber_wait_handled(sub, 4, WAIT_MS));
    CHECK_OK(fs_broker_stop(b));
    assert_worker_checks();
    pthread_mutex_lock(&s.lock);
    assert_int_equal(s.messages, 4);
    assert_int_equal(s.batches, 2);
    assert_int_equal(s.max_count, 3);
    assert_true(s.order_ok);
    pthread_mutex_unlock(&s.lock);
    fs_broker_free(b);
    pthread_mutex_destroy(&s.lock);
}

/* A batch that fails under NACK_ON_ERROR is redelivered as a whole. */
static atomic_int batch_calls;

static fs_outcome fail_first_batch(fs_message *m, void *user)
{
    (void)user;
    if (atomic_fetch_add(&batch_calls, 1) == 0)
        return fs_message_fail(m, "BatchError", "first batch fails");
    return FS_OUTCOME_OK;
}

static void test_batch_nack(void **state)
{
    (void)state;
    atomic_store(&batch_calls, 0);
    fs_broker *b = memory_broker(64, false);
    fs_subscriber_options so = FS_SUBSCRIBER_OPTIONS_INIT;
    so.batch_size = 3;
    so.ack_policy = FS_ACK_POLICY_NACK_ON_ERROR;
    fs_subscriber *sub;
    CHECK_OK(fs_subscribe(b, "events", fail_first_batch, NULL, &so, &sub));
    for (int i = 0; i < 3; i++)
        publish_str(b, "events", "x");
    CHECK_OK(fs_broker_start(b));
    CHECK_OK(fs_subscriber_wait_handled(sub, 6, WAIT_MS)); /* 3 failed + 3 redelivered */
    CHECK_OK(fs_broker_stop(b));
    assert_int_equal(fs_subscriber_handled(sub), 6);
    assert_int_equal(fs_memory_queue_depth(b, "events", NULL), 0);
    fs_broker_free(b);
}

/* ------------------------------------------------------------------------ */
/* Concurrency limit and competing consumers                                */

typedef struct conc_state {
    overlap handlers; /* 4 at once, never more */
    atomic_int total;
    atomic_int per_sub[2];
} conc_state;

static fs_outcome busy(fs_message *m, void *user)
{
    (void)m;
    conc_state *s = user;
    overlap_enter(&s->handlers);
    test_sleep_ms(1);
    atomic_fetch_add(&s->total, 1);
    overlap_leave(&s->handlers);
    return FS_OUTCOME_OK;
}

static void test_concurrency_limit(void **state)
{
    (void)state;
    conc_state s;
    memset(&s, 0, sizeof s);
    overlap_init(&s.handlers, 4);
    fs_broker *b = memory_broker(1024, false);
    fs_subscriber_options so = FS_SUBSCRIBER_OPTIONS_INIT;
    so.concurrency = 4;
    fs_subscriber *sub;
    CHECK_OK(fs_subscribe(b, "jobs", busy, &s, &so, &sub));
    for (int i = 0; i < 300; i++)
        publish_str(b, "jobs", "job");
    CHECK_OK(fs_broker_start(b));
    CHECK_OK(fs_subscriber_wait_handled(sub, 300, WAIT_MS));
    CHECK_OK(fs_broker_stop(b));
    assert_int_equal(atomic_load(&s.total), 300);
    /* overlap: 4 handlers were inside together (fails if concurrency acts as 1), never 5 */
    if (!overlap_reached(&s.handlers))
        fail_msg("at most %d handlers ran at once (barrier %s), expected 4",
                 atomic_load(&s.handlers.max_inside),
                 atomic_load(&s.handlers.broken) ? "broken" : "held");
    fs_broker_free(b);
}

/* Counts its messages into the atomic_int given as user data. */
static fs_outcome count_into(fs_message *m, void *user)
{
    (void)m;
    atomic_fetch_add((atomic_int *)user, 1);
    return FS_OUTCOME_OK;
}

static void test_competing_consumers(void **state)
{
    (void)state;
    conc_state s;
    memset(&s, 0, sizeof s);
    fs_broker *b = memory_broker(4096, false);
    fs_subscriber *s1, *s2;
    /* same name, same (default) group: they compete */
    CHECK_OK(fs_subscribe(b, "work", count_into, &s.per_sub[0], NULL, &s1));
    CHECK_OK(fs_subscribe(b, "work", count_into, &s.per_sub[1], NULL, &s2));
    CHECK_OK(fs_broker_start(b));
    for (int i = 0; i < 2000; i++)
        publish_str(b, "work", "w");
    CHECK_OK(fs_memory_wait_handled(b, 2000, WAIT_MS));
    CHECK_OK(fs_broker_stop(b));
    assert_int_equal(atomic_load(&s.per_sub[0]) + atomic_load(&s.per_sub[1]), 2000);
    assert_int_equal(fs_broker_handled(b), 2000);
    assert_int_equal(fs_memory_queue_depth(b, "work", NULL), 0);
    fs_broker_free(b);
}

static void test_fan_out(void **state)
{
    (void)state;
    conc_state s;
    memset(&s, 0, sizeof s);
    fs_broker *b = memory_broker(1024, false);
    fs_memory_subscriber_options ga = FS_MEMORY_SUBSCRIBER_OPTIONS_INIT,
                                 gb = FS_MEMORY_SUBSCRIBER_OPTIONS_INIT;
    ga.group = "audit";
    gb.group = "billing";
    fs_subscriber_options oa = FS_SUBSCRIBER_OPTIONS_INIT, ob = FS_SUBSCRIBER_OPTIONS_INIT;
    oa.broker_options = &ga;
    ob.broker_options = &gb;
    ob.concurrency = 2;
    fs_subscriber *s1, *s2;
    CHECK_OK(fs_subscribe(b, "trades", count_into, &s.per_sub[0], &oa, &s1));
    CHECK_OK(fs_subscribe(b, "trades", count_into, &s.per_sub[1], &ob, &s2));
    CHECK_OK(fs_broker_start(b));
    for (int i = 0; i < 500; i++)
        publish_str(b, "trades", "t");
    CHECK_OK(fs_subscriber_wait_handled(s1, 500, WAIT_MS));
    CHECK_OK(fs_subscriber_wait_handled(s2, 500, WAIT_MS));
    CHECK_OK(fs_broker_stop(b));
    assert_int_equal(atomic_load(&s.per_sub[0]), 500);
    assert_int_equal(atomic_load(&s.per_sub[1]), 500);
    assert_int_equal(fs_memory_published_count(b, "trades"), 500);
    fs_broker_free(b);
}

/* ------------------------------------------------------------------------ */
/* Dead-lettering, capacity, harness                                        */

static fs_outcome always_fail(fs_message *m, void *user)
{
    (void)user;
    return fs_message_fail(m, "Boom", "always");
}

static void test_reject_to_dead_letter(void **state)
{
    (void)state;
    ts_log dl;
    ts_log_init(&dl);
    fs_broker *b = memory_broker(16, true);
    fs_memory_subscriber_options mo = FS_MEMORY_SUBSCRIBER_OPTIONS_INIT;
    mo.dead_letter = "orders.dlq";
    fs_subscriber_options so = FS_SUBSCRIBER_OPTIONS_INIT;
    so.broker_options = &mo; /* memory's default policy: REJECT_ON_ERROR */
    fs_subscriber *sub, *dsub;
    CHECK_OK(fs_subscribe(b, "orders", always_fail, NULL, &so, &sub));
    CHECK_OK(fs_subscribe(b, "orders.dlq", ts_record, &dl, NULL, &dsub));
    fs_header h = {"k", "v", 0};
    fs_envelope e = FS_ENVELOPE_INIT;
    e.body = "poison";
    e.body_len = 6;
    e.headers = &h;
    e.header_count = 1;
    e.correlation_id = "c9";
    CHECK_OK(fs_publish(b, "orders", &e));
    CHECK_OK(fs_broker_start(b));
    CHECK_OK(fs_subscriber_wait_handled(dsub, 1, WAIT_MS));
    CHECK_OK(fs_broker_stop(b));
    assert_int_equal(ts_log_count(&dl), 1);
    fs_message *dead = ts_msg(&dl, 0);
    assert_int_equal(fs_message_body_len(dead), 6);
    assert_memory_equal(fs_message_body(dead), "poison", 6);
    assert_string_equal(fs_message_correlation_id(dead), "c9");
    assert_string_equal(fs_message_source(dead), "orders.dlq");
    assert_int_equal(fs_message_header_count(dead), 1);
    assert_int_equal(fs_memory_published_count(b, "orders.dlq"), 1);
    assert_int_equal(fs_subscriber_handled(sub), 1);
    fs_message *copy = NULL;
    CHECK_OK(fs_memory_take_published(b, "orders", &copy));
    assert_int_equal(fs_message_body_len(copy), 6);
    assert_string_equal(fs_message_header(copy, "k"), "v");
    assert_int_equal(fs_message_ack(copy), FS_EINVAL); /* copies cannot be settled */
    fs_message_free(copy);
    CHECK_ERR(fs_memory_take_published(b, "orders", &copy), FS_ENOTFOUND);
    fs_broker_free(b);
    ts_log_free(&dl);
}

static void test_reject_without_dead_letter_drops(void **state)
{
    (void)state;
    fs_broker *b = memory_broker(16, false);
    fs_subscriber *sub;
    CHECK_OK(fs_subscribe(b, "orders", always_fail, NULL, NULL, &sub));
    publish_str(b, "orders", "x");
    CHECK_OK(fs_broker_start(b));
    CHECK_OK(fs_subscriber_wait_handled(sub, 1, WAIT_MS));
    CHECK_OK(fs_broker_stop(b));
    assert_int_equal(fs_subscriber_handled(sub), 1);
    assert_int_equal(fs_memory_queue_depth(b, "orders", NULL), 0);
    assert_int_equal(fs_memory_queue_in_flight(b, "orders", NULL), 0);
    fs_broker_free(b);
}

static void test_full_queue(void **state)
{
    (void)state;
    fs_broker *b = memory_broker(4, false);
    for (int i = 0; i < 4; i++)
        publish_str(b, "q", "x");
    assert_null(fs_last_publish_error_type());
    CHECK_ERR(fs_publish_bytes(b, "q", "y", 1), FS_EFULL);
    assert_string_equal(fs_last_publish_error_type(), "QueueFull");
    assert_non_null(strstr(fs_last_error(), "full"));
    assert_int_equal(fs_memory_queue_depth(b, "q", NULL), 4);
    assert_int_equal(fs_memory_published_count(b, "q"), 4);

    /* a batch stops at the first message that does not fit */
    fs_envelope batch[3];
    for (int i = 0; i < 3; i++) {
        ts_envelope(&batch[i], "z", NULL);
    }
    CHECK_OK(fs_publish_batch(b, "other", batch, 3));
    assert_int_equal(fs_memory_queue_depth(b, "other", NULL), 3);
    CHECK_ERR(fs_publish_batch(b, "other", batch, 3), FS_EFULL);
    assert_string_equal(fs_last_publish_error_type(), "QueueFull");
    assert_int_equal(fs_memory_queue_depth(b, "other", NULL), 4);
    assert_int_equal(fs_memory_published_count(b, "other"), 4);
    /* a success clears the thread's error type */
    publish_str(b, "third", "ok");
    assert_null(fs_last_publish_error_type());
    fs_broker_free(b);
}

static void test_publisher_object(void **state)
{
    (void)state;
    fs_broker *b = memory_broker(16, true);
    fs_publisher_options po = FS_PUBLISHER_OPTIONS_INIT;
    po.reply_to = "back";
    fs_publisher *p;
    CHECK_OK(fs_publisher_new(b, "dest", &po, &p));
    assert_string_equal(fs_publisher_destination(p), "dest");
    CHECK_OK(fs_publisher_publish_bytes(p, "one", 3));
    fs_envelope batch[2] = {FS_ENVELOPE_INIT, FS_ENVELOPE_INIT};
    batch[0].body = "two";
    batch[0].body_len = 3;
    batch[1].body = "three";
    batch[1].body_len = 5;
    batch[1].reply_to = "elsewhere";
    CHECK_OK(fs_publisher_publish_batch(p, batch, 2));
    assert_int_equal(fs_memory_published_count(b, "dest"), 3);
    const char *want_reply[3] = {"back", "back", "elsewhere"};
    for (int i = 0; i < 3; i++) {
        fs_message *m;
        CHECK_OK(fs_memory_take_published(b, "dest", &m));
        assert_string_equal(fs_message_reply_to(m), want_reply[i]);
        fs_message_free(m);
    }
    fs_publisher_free(p);
    fs_broker_free(b);

    /* a batch larger than the publisher's stack copy gets its defaults too */
    b = memory_broker(64, true);
    CHECK_OK(fs_publisher_new(b, "dest", &po, &p));
    fs_envelope big[40];
    for (int i = 0; i < 40; i++) {
        ts_envelope(&big[i], "x", NULL);
    }
    CHECK_OK(fs_publisher_publish_batch(p, big, 40));
    assert_int_equal(fs_memory_published_count(b, "dest"), 40);
    for (int i = 0; i < 40; i++) {
        fs_message *m;
        CHECK_OK(fs_memory_take_published(b, "dest", &m));
        assert_string_equal(fs_message_reply_to(m), "back");
        fs_message_free(m);
    }
    fs_publisher_free(p);
    fs_broker_free(b);
}

/* ------------------------------------------------------------------------ */
/* Subscribing to a running broker; settling from another thread (MANUAL).   */

static void test_subscribe_while_running(void **state)
{
    (void)state;
    conc_state s;
    memset(&s, 0, sizeof s);
    fs_broker *b = memory_broker(64, false);
    CHECK_OK(fs_broker_start(b));
    publish_str(b, "late", "waiting"); /* waits in the default group */
    fs_subscriber *sub;
    CHECK_OK(fs_subscribe(b, "late", count_into, &s.per_sub[0], NULL, &sub));
    publish_str(b, "late", "after");
    CHECK_OK(fs_subscriber_wait_handled(sub, 2, WAIT_MS));
    CHECK_OK(fs_broker_stop(b));
    assert_int_equal(atomic_load(&s.per_sub[0]), 2);
    fs_broker_free(b);
}

typedef struct settle_job {
    fs_message *msg;
    int rc;
} settle_job;

static void *settle_elsewhere(void *arg)
{
    settle_job *j = arg;
    j->rc = fs_message_reject(j->msg);
    return NULL;
}

static fs_outcome hand_over(fs_message *m, void *user)
{
    atomic_int *seen_state = user;
    settle_job job = {m, -100};
    pthread_t t;
    pthread_create(&t, NULL, settle_elsewhere, &job);
    pthread_join(t, NULL);
    atomic_store(seen_state, job.rc == FS_OK ? (int)fs_message_settled(m) : -1);
    return FS_OUTCOME_OK; /* MANUAL: nothing more happens */
}

static void test_settle_from_other_thread(void **state)
{
    (void)state;
    atomic_int seen_state = -100;
    fs_broker *b = memory_broker(16, false);
    fs_memory_subscriber_options mo = FS_MEMORY_SUBSCRIBER_OPTIONS_INIT;
    mo.dead_letter = "dead";
    fs_subscriber_options so = FS_SUBSCRIBER_OPTIONS_INIT;
    so.ack_policy = FS_ACK_POLICY_MANUAL;
    so.broker_options = &mo;
    fs_subscriber *sub;
    CHECK_OK(fs_subscribe(b, "jobs", hand_over, &seen_state, &so, &sub));
    publish_str(b, "jobs", "j");
    CHECK_OK(fs_broker_start(b));
    CHECK_OK(fs_subscriber_wait_handled(sub, 1, WAIT_MS));
    CHECK_OK(fs_broker_stop(b));
    assert_int_equal(atomic_load(&seen_state), FS_SETTLE_REJECTED);
    assert_int_equal(fs_memory_published_count(b, "dead"), 1);
    assert_int_equal(fs_memory_queue_depth(b, "jobs", NULL), 0);
    fs_broker_free(b);
}

/* ------------------------------------------------------------------------ */
/* No loss, no duplicate: 2 publishing threads, 4 workers, every id once.    */

#ifdef __SANITIZE_THREAD__
#define STRESS_PER_THREAD 10000
#else
#define STRESS_PER_THREAD 50000
#endif

typedef struct stress {
    fs_broker *broker;
    int thread;
    atomic_uchar *seen; /* 2 * STRESS_PER_THREAD counters */
    atomic_int dupes;
} stress;

static fs_outcome stress_handler(fs_message *m, void *user)
{
    stress *s = user;
    unsigned id;
    WORKER_CHECK(fs_message_body_len(m) == sizeof id);
    memcpy(&id, fs_message_body(m), sizeof id);
    if (atomic_fetch_add(&s->seen[id], 1) != 0)
        atomic_fetch_add(&s->dupes, 1);
    return FS_OUTCOME_OK;
}

static void *stress_publisher(void *arg)
{
    stress *s = arg;
    for (unsigned i = 0; i < STRESS_PER_THREAD; i++) {
        unsigned id = (unsigned)s->thread * STRESS_PER_THREAD + i;
        int rc;
        while ((rc = fs_publish_bytes(s->broker, "stress", &id, sizeof id)) == FS_EFULL)
            test_sleep_ms(1);
        if (rc != FS_OK)
            return (void *)1;
    }
    return NULL;
}

static void test_no_loss_no_duplicate(void **state)
{
    (void)state;
    stress shared;
    memset(&shared, 0, sizeof shared);
    shared.seen = calloc(2 * STRESS_PER_THREAD, sizeof *shared.seen);
    shared.broker = memory_broker(1024, false);
    fs_subscriber_options so = FS_SUBSCRIBER_OPTIONS_INIT;
    so.concurrency = 4;
    fs_subscriber *sub;
    CHECK_OK(fs_subscribe(shared.broker, "stress", stress_handler, &shared, &so, &sub));
    CHECK_OK(fs_broker_start(shared.broker));
    stress per[2] = {shared, shared};
    pthread_t t[2];
    for (int i = 0; i < 2; i++) {
        per[i].thread = i;
        assert_int_equal(pthread_create(&t[i], NULL, stress_publisher, &per[i]), 0);
    }
    for (int i = 0; i < 2; i++) {
        void *ret;
        pthread_join(t[i], &ret);
        assert_null(ret);
    }
    CHECK_OK(fs_subscriber_wait_handled(sub, 2 * STRESS_PER_THREAD, 4 * WAIT_MS));
    CHECK_OK(fs_broker_stop(shared.broker));
    assert_worker_checks();
    assert_int_equal(fs_subscriber_handled(sub), 2 * STRESS_PER_THREAD);
    assert_int_equal(atomic_load(&shared.dupes), 0);
    for (unsigned i = 0; i < 2 * STRESS_PER_THREAD; i++)
        if (atomic_load(&shared.seen[i]) != 1)
            fail_msg("id %u handled %d times", i, (int)atomic_load(&shared.seen[i]));
    assert_int_equal(fs_memory_queue_depth(shared.broker, "stress", NULL), 0);
    assert_int_equal(fs_memory_queue_in_flight(shared.broker, "stress", NULL), 0);
    fs_broker_free(shared.broker);
    free(shared.seen);
}

int main(void)
{
    quiet_logs();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_content_inline),
        cmocka_unit_test(test_content_large),
        cmocka_unit_test(test_batch_size),
        cmocka_unit_test(test_batch_timeout_flush),
        cmocka_unit_test(test_batch_nack),
        cmocka_unit_test(test_concurrency_limit),
        cmocka_unit_test(test_competing_consumers),
        cmocka_unit_test(test_fan_out),
        cmocka_unit_test(test_reject_to_dead_letter),
        cmocka_unit_test(test_reject_without_dead_letter_drops),
        cmocka_unit_test(test_full_queue),
        cmocka_unit_test(test_publisher_object),
        cmocka_unit_test(test_subscribe_while_running),
        cmocka_unit_test(test_settle_from_other_thread),
        cmocka_unit_test(test_no_loss_no_duplicate),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
