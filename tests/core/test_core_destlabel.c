/*
 * The destination label (fs_broker_ops.destination_label): a publisher is
 * labelled once, at fs_publisher_new; fs_publish, fs_publish_batch and
 * fs_request per call; the adapter still publishes to the name; an adapter
 * without the op (or built before it) keeps the name as the label; the
 * Prometheus families carry the label; many threads at once.
 */
#include "core_test.h"
#include "label_adapter.h"

#include "faststream/prometheus.h"

/* A publish middleware recording the labels it sees. */
typedef struct probe {
    pthread_mutex_t lock;
    unsigned publishes;
    char label[8][64];
    char name[8][64];  /* destination_name */
    atomic_uint wrong; /* concurrent test: a label that does not match its envelope */
} probe;

static int probe_publish(fs_publish_ctx *ctx)
{
    probe *p = ctx->state;
    pthread_mutex_lock(&p->lock);
    if (p->publishes < 8)
        snprintf(p->label[p->publishes], sizeof p->label[0], "%s", ctx->destination);
    snprintf(p->name[p->publishes], sizeof p->name[0], "%s", ctx->destination_name);
    p->publishes++;
    pthread_mutex_unlock(&p->lock);
    return fs_publish_next(ctx);
}

static fs_broker *probed(lbl_adapter *a, probe *p)
{
    memset(p, 0, sizeof *p);
    pthread_mutex_init(&p->lock, NULL);
    fs_broker *b = lbl_broker(a, &lbl_ops);
    fs_middleware mw = {.name = "probe", .publish = probe_publish, .state = p};
    CHECK_OK(fs_broker_add_middleware(b, &mw));
    return b;
}

static void test_publisher_labelled_once(void **state)
{
    (void)state;
    lbl_adapter a;
    probe p;
    fs_broker *b = probed(&a, &p);
    static const lbl_options shop = {"shop"}, other = {"other"};
    fs_publisher_options po = FS_PUBLISHER_OPTIONS_INIT;
    po.broker_options = &shop;
    fs_publisher *pub;
    CHECK_OK(fs_publisher_new(b, "orders", &po, &pub));
    assert_int_equal(atomic_load(&a.label_calls), 1);
    assert_ptr_equal(a.label_dest, &lbl_prepared); /* the prepared destination */
    assert_ptr_equal(a.label_options, &shop);

    CHECK_OK(fs_publisher_publish_bytes(pub, "1", 1));
    fs_envelope e = FS_ENVELOPE_INIT;
    e.body = "2";
    e.body_len = 1;
    CHECK_OK(fs_publisher_publish(pub, &e));
    fs_envelope two[2] = {e, e};
    CHECK_OK(fs_publisher_publish_batch(pub, two, 2));
    assert_int_equal(atomic_load(&a.label_calls), 1); /* kept, not asked again */
    assert_string_equal(a.published_to, "orders");    /* the adapter publishes to the name */
    assert_ptr_equal(a.publish_dest, &lbl_prepared);

    e.broker_options = &other; /* other options than the publisher's: labelled for them */
    CHECK_OK(fs_publisher_publish(pub, &e));
    assert_int_equal(atomic_load(&a.label_calls), 2);
    assert_ptr_equal(a.label_dest, &lbl_prepared);
    assert_ptr_equal(a.label_options, &other);
    e.broker_options = &shop; /* the publisher's own, given again: the kept label */
    CHECK_OK(fs_publisher_publish(pub, &e));
    assert_int_equal(atomic_load(&a.label_calls), 2);

    e.broker_options = NULL;
    fs_message *reply = NULL;
    CHECK_OK(fs_publisher_request(pub, &e, 1000, &reply));
    assert_int_equal(fs_message_body_len(reply), 4);
    assert_memory_equal(fs_message_body(reply), "pong", 4);
    fs_message_free(reply);
    assert_string_equal(a.published_to, "orders");
    assert_int_equal(atomic_load(&a.label_calls), 2);

    assert_int_equal(p.publishes, 6);
    static const char *const want[6] = {"shop.orders",  "shop.orders", "shop.orders",
                                        "other.orders", "shop.orders", "shop.orders"};
    for (int i = 0; i < 6; i++) {
        assert_string_equal(p.label[i], want[i]);
        assert_string_equal(p.name[i], "orders"); /* the name it was published to */
    }
    fs_publisher_free(pub);
    fs_broker_free(b);
    pthread_mutex_destroy(&p.lock);
}

static void test_plain_publish_labelled_per_call(void **state)
{
    (void)state;
    lbl_adapter a;
    probe p;
    fs_broker *b = probed(&a, &p);
    static const lbl_options shop = {"shop"}, same = {"="};
    fs_envelope e = FS_ENVELOPE_INIT;
    e.body = "x";
    e.body_len = 1;
    CHECK_OK(fs_publish(b, "orders", &e)); /* no options: the default exchange */
    assert_int_equal(atomic_load(&a.label_calls), 1);
    assert_null(a.label_dest);
    assert_null(a.label_options);
    e.broker_options = &shop;
    CHECK_OK(fs_publish(b, "orders", &e));
    assert_ptr_equal(a.label_options, &shop);
    assert_string_equal(a.published_to, "orders");
    CHECK_OK(fs_publish_bytes(b, "audit", "y", 1));
    fs_envelope two[2] = {e, e};
    two[1].broker_options = NULL; /* a batch is labelled by its first message's options */
    CHECK_OK(fs_publish_batch(b, "orders", two, 2));
    fs_message *reply = NULL;
    CHECK_OK(fs_request(b, "rpc", &e, 1000, &reply)); /* native: counted as one publish */
    fs_message_free(reply);
    assert_string_equal(a.published_to, "rpc");
    e.broker_options = &same; /* the adapter says: the name itself */
    CHECK_OK(fs_publish(b, "orders", &e));
    assert_int_equal(atomic_load(&a.label_calls), 6);

    assert_int_equal(p.publishes, 6);
    static const char *const want[6] = {"default.orders", "shop.orders", "default.audit",
                                        "shop.orders",    "shop.rpc",    "orders"};
    static const char *const names[6] = {"orders", "orders", "audit", "orders", "rpc", "orders"};
    for (int i = 0; i < 6; i++) {
        assert_string_equal(p.label[i], want[i]);
        assert_string_equal(p.name[i], names[i]);
    }
    fs_broker_free(b);
    pthread_mutex_destroy(&p.lock);
}

static void test_label_failure_fails_the_publish(void **state)
{
    (void)state;
    lbl_adapter a;
    probe p;
    fs_broker *b = probed(&a, &p);
    static const lbl_options bad = {"!"};
    fs_publisher_options po = FS_PUBLISHER_OPTIONS_INIT;
    po.broker_options = &bad;
    fs_publisher *pub = (fs_publisher *)&a;
    CHECK_ERR(fs_publisher_new(b, "orders", &po, &pub), FS_EINVAL);
    assert_null(pub);
    assert_non_null(strstr(fs_last_error(), "no such exchange for 'orders'"));
    fs_envelope e = FS_ENVELOPE_INIT;
    e.broker_options = &bad;
    CHECK_ERR(fs_publish(b, "orders", &e), FS_EINVAL);
    assert_int_equal(p.publishes, 0); /* before the chain */
    assert_int_equal(atomic_load(&a.publishes), 0);
    fs_broker_free(b);
    pthread_mutex_destroy(&p.lock);
}

static void test_adapter_without_the_op(void **state)
{
    (void)state;
    /* Built before the op existed: its table ends before destination_label. */
    static fs_broker_ops old;
    old = lbl_ops;
    old.struct_size = (uint32_t)offsetof(fs_broker_ops, destination_label);
    static fs_broker_ops none;
    none = lbl_ops;
    none.destination_label = NULL;
    const fs_broker_ops *tables[2] = {&old, &none};
    for (int t = 0; t < 2; t++) {
        lbl_adapter a;
        fs_broker *b = lbl_broker(&a, tables[t]);
        probe p;
        memset(&p, 0, sizeof p);
        pthread_mutex_init(&p.lock, NULL);
        fs_middleware mw = {.name = "probe", .publish = probe_publish, .state = &p};
        CHECK_OK(fs_broker_add_middleware(b, &mw));
        static const lbl_options shop = {"shop"};
        fs_publisher_options po = FS_PUBLISHER_OPTIONS_INIT;
        po.broker_options = &shop;
        fs_publisher *pub;
        CHECK_OK(fs_publisher_new(b, "orders", &po, &pub));
        CHECK_OK(fs_publisher_publish_bytes(pub, "1", 1));
        CHECK_OK(fs_publish_bytes(b, "audit", "2", 1));
        assert_int_equal(atomic_load(&a.label_calls), 0);
        assert_int_equal(p.publishes, 2);
        assert_string_equal(p.label[0], "orders");
        assert_string_equal(p.label[1], "audit");
        fs_publisher_free(pub);
        fs_broker_free(b);
        pthread_mutex_destroy(&p.lock);
    }
}

static void test_prometheus_families_carry_the_label(void **state)
{
    (void)state;
    fs_registry *reg;
    lbl_adapter a;
    fs_publisher *pub;
    fs_broker *b = lbl_metered(&a, "orders", &reg, &pub);
    CHECK_OK(fs_publisher_publish_bytes(pub, "1", 1));
    fs_envelope e = FS_ENVELOPE_INIT;
    e.broker_options = &lbl_shop;
    CHECK_OK(fs_publish(b, "orders", &e));
    CHECK_OK(fs_publish_bytes(b, "orders", "3", 1));
    fs_buffer text = {0};
    CHECK_OK(fs_registry_render(reg, FS_FORMAT_TEXT, &text));
    const char *t = text.data;
    assert_non_null(strstr(t, "published_messages_total{app_name=\"faststream\",broker=\"lbl\","
                              "destination=\"shop.orders\",status=\"success\"} 2"));
    assert_non_null(strstr(t, "published_messages_total{app_name=\"faststream\",broker=\"lbl\","
                              "destination=\"default.orders\",status=\"success\"} 1"));
    assert_non_null(strstr(t, "published_messages_duration_seconds_count{app_name=\"faststream\","
                              "broker=\"lbl\",destination=\"shop.orders\"} 2"));
    assert_null(strstr(t, "destination=\"orders\""));
    fs_buffer_free(&text);
    fs_publisher_free(pub);
    fs_broker_free(b);
    fs_registry_free(reg);
}

/* ------------------------------------------------------------------------ */
/* Many threads                                                             */

#define THREADS 4
#define PER_THREAD 2000

static const lbl_options conc_opts[2] = {{"left"}, {"right"}};

/* Checks each label against its envelope's options, without a lock. */
static int check_publish_hook(fs_publish_ctx *ctx)
{
    probe *p = ctx->state;
    const lbl_options *o = ctx->messages[0].broker_options;
    const char *want = o == &conc_opts[0] ? "left.conc" : "right.conc";
    if (strcmp(ctx->destination, want) != 0)
        atomic_fetch_add(&p->wrong, 1);
    return fs_publish_next(ctx);
}

typedef struct conc_arg {
    fs_broker *b;
    fs_publisher *pub; /* "right" options */
    int index;
} conc_arg;

static void *conc_main(void *arg)
{
    conc_arg *c = arg;
    for (int i = 0; i < PER_THREAD; i++) {
        fs_envelope e = FS_ENVELOPE_INIT;
        e.body = "x";
        e.body_len = 1;
        int rc;
        if ((i + c->index) % 2) {
            rc = fs_publisher_publish(c->pub, &e);
        } else {
            e.broker_options = &conc_opts[0];
            rc = fs_publish(c->b, "conc", &e);
        }
        if (rc != FS_OK)
            return (void *)1;
    }
    return NULL;
}

static void test_concurrent_labels(void **state)
{
    (void)state;
    lbl_adapter a;
    probe p;
    memset(&p, 0, sizeof p);
    fs_broker *b = lbl_broker(&a, &lbl_ops);
    a.record = false; /* the threads share it */
    fs_middleware mw = {.name = "check", .publish = check_publish_hook, .state = &p};
    CHECK_OK(fs_broker_add_middleware(b, &mw));
    fs_publisher_options po = FS_PUBLISHER_OPTIONS_INIT;
    po.broker_options = &conc_opts[1];
    fs_publisher *pub;
    CHECK_OK(fs_publisher_new(b, "conc", &po, &pub));
    pthread_t th[THREADS];
    conc_arg args[THREADS];
    for (int i = 0; i < THREADS; i++) {
        args[i] = (conc_arg){b, pub, i};
        assert_int_equal(pthread_create(&th[i], NULL, conc_main, &args[i]), 0);
    }
    for (int i = 0; i < THREADS; i++) {
        void *ret;
        pthread_join(th[i], &ret);
        assert_null(ret);
    }
    assert_int_equal(atomic_load(&a.publishes), THREADS * PER_THREAD);
    assert_int_equal(atomic_load(&p.wrong), 0);
    /* once for the publisher, once per plain publish */
    assert_int_equal(atomic_load(&a.label_calls), 1 + THREADS * PER_THREAD / 2);
    fs_publisher_free(pub);
    fs_broker_free(b);
}

int main(void)
{
    quiet_logs();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_publisher_labelled_once),
        cmocka_unit_test(test_plain_publish_labelled_per_call),
        cmocka_unit_test(test_label_failure_fails_the_publish),
        cmocka_unit_test(test_adapter_without_the_op),
        cmocka_unit_test(test_prometheus_families_carry_the_label),
        cmocka_unit_test(test_concurrent_labels),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
