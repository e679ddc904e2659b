/*
 * The core's API without worker threads: URL parsing, the scheme registry,
 * argument checks with readable messages, message copies, names.
 */
#include "core_test.h"
#include "fake_adapter.h"

static void test_url_parse(void **state)
{
    (void)state;
    fs_url u;
    CHECK_OK(fs_url_parse("redis://user:p%40ss@example.org:6380/2?timeout=5&name=a%20b", &u));
    assert_string_equal(u.scheme, "redis");
    assert_string_equal(u.user, "user");
    assert_string_equal(u.password, "p@ss");
    assert_string_equal(u.host, "example.org");
    assert_int_equal(u.port, 6380);
    assert_string_equal(u.path, "2");
    assert_string_equal(u.query, "timeout=5&name=a%20b");
    char *v = fs_url_query_param(&u, "name");
    assert_string_equal(v, "a b");
    free(v);
    v = fs_url_query_param(&u, "timeout");
    assert_string_equal(v, "5");
    free(v);
    assert_null(fs_url_query_param(&u, "missing"));
    fs_url_free(&u);

    CHECK_OK(fs_url_parse("kafka://h1:9092,h2:9093", &u));
    assert_string_equal(u.hosts, "h1:9092,h2:9093");
    assert_string_equal(u.host, "h1");
    assert_int_equal(u.port, 9092);
    assert_null(u.user);
    assert_null(u.path);
    fs_url_free(&u);

    CHECK_OK(fs_url_parse("nats://[::1]:4222", &u));
    assert_string_equal(u.host, "::1");
    assert_int_equal(u.port, 4222);
    fs_url_free(&u);

    CHECK_OK(fs_url_parse("amqp://guest@localhost/vhost", &u));
    assert_string_equal(u.user, "guest");
    assert_null(u.password);
    assert_int_equal(u.port, -1);
    assert_string_equal(u.path, "vhost");
    fs_url_free(&u);

    CHECK_OK(fs_url_parse("memory://", &u));
    assert_string_equal(u.hosts, "");
    assert_null(u.host);
    fs_url_free(&u);

    CHECK_ERR(fs_url_parse("no-scheme", &u), FS_EINVAL);
    assert_non_null(strstr(fs_last_error(), "no-scheme"));
    CHECK_ERR(fs_url_parse("://x", &u), FS_EINVAL);
    CHECK_ERR(fs_url_parse("redis://h:99999", &u), FS_EINVAL);
    assert_non_null(strstr(fs_last_error(), "port"));
    CHECK_ERR(fs_url_parse("redis://h:12a", &u), FS_EINVAL);
    CHECK_ERR(fs_url_parse("redis://h:", &u), FS_EINVAL);
    CHECK_ERR(fs_url_parse("redis://[::1:6379", &u), FS_EINVAL);
    CHECK_ERR(fs_url_parse("redis://u:%zz@h", &u), FS_EINVAL);
    assert_non_null(strstr(fs_last_error(), "credentials"));
    /* a malformed escape in the query is refused at parse time, not lost later */
    CHECK_ERR(fs_url_parse("redis://h/0?name=a%2", &u), FS_EINVAL);
    assert_non_null(strstr(fs_last_error(), "query"));
    CHECK_ERR(fs_url_parse("redis://h/0?name=%g0", &u), FS_EINVAL);
    CHECK_ERR(fs_url_parse(NULL, &u), FS_EINVAL);

    CHECK_OK(fs_url_parse("redis://h?flag&x=%41", &u));
    v = fs_url_query_param(&u, "flag");
    assert_string_equal(v, "");
    free(v);
    v = fs_url_query_param(&u, "x");
    assert_string_equal(v, "A");
    free(v);
    fs_url_free(&u);
}

static void test_broker_urls(void **state)
{
    (void)state;
    fs_broker *b = (fs_broker *)1;
    CHECK_ERR(fs_broker_new("not a url", NULL, &b), FS_EINVAL);
    assert_null(b);
    assert_non_null(strstr(fs_last_error(), "not a url"));
    CHECK_ERR(fs_broker_new("kafka://127.0.0.1:9092", NULL, &b), FS_ENOTFOUND);
    assert_non_null(strstr(fs_last_error(), "kafka"));
    CHECK_ERR(fs_broker_new("memory://somehost", NULL, &b), FS_EINVAL);
    CHECK_ERR(fs_broker_new("memory://?capacity=abc", NULL, &b), FS_EINVAL);
    assert_non_null(strstr(fs_last_error(), "capacity"));
    CHECK_ERR(fs_broker_new("memory://?capacity=%z2", NULL, &b), FS_EINVAL);
    CHECK_ERR(fs_broker_new("memory://?colour=red", NULL, &b), FS_EINVAL);
    assert_non_null(strstr(fs_last_error(), "colour"));
    CHECK_ERR(fs_broker_new(NULL, NULL, &b), FS_EINVAL);
    CHECK_ERR(fs_broker_new("memory://", NULL, NULL), FS_EINVAL);

    CHECK_OK(fs_broker_new("memory://?capacity=2", NULL, &b));
    assert_string_equal(fs_broker_name(b), "memory");
    assert_string_equal(fs_broker_url(b), "memory://?capacity=2");
    assert_true(fs_broker_is_memory(b));
    publish_str(b, "q", "1");
    publish_str(b, "q", "2");
    CHECK_ERR(fs_publish_bytes(b, "q", "3", 1), FS_EFULL); /* capacity came from the URL */
    CHECK_OK(fs_broker_ping(b, 100));                      /* connected by the first publish */
    fs_broker_free(b);

    CHECK_OK(fs_broker_new("MEMORY://", NULL, &b));
    CHECK_ERR(fs_broker_ping(b, 100), FS_ECLOSED); /* not connected yet */
    CHECK_OK(fs_broker_connect(b));
    CHECK_OK(fs_broker_ping(b, 100));
    CHECK_OK(fs_broker_close(b));
    CHECK_ERR(fs_broker_ping(b, 100), FS_ECLOSED);
    CHECK_ERR(fs_publish_bytes(b, "q", "x", 1), FS_ECLOSED);
    assert_string_equal(fs_last_publish_error_type(), "BrokerClosed");
    CHECK_ERR(fs_broker_start(b), FS_ECLOSED);
    fs_broker_free(b);
}

static const char *last_factory_url;

static int fake_factory(const char *url, const fs_broker_options *opts, fs_broker **out)
{
    last_factory_url = url;
    return fs_broker_create(&fake_ops, NULL, url, opts, out);
}

static int other_factory(const char *url, const fs_broker_options *opts, fs_broker **out)
{
    return fake_factory(url, opts, out);
}

static void test_scheme_registry(void **state)
{
    (void)state;
    assert_false(fs_broker_scheme_registered("fake"));
    assert_true(fs_broker_scheme_registered("memory"));
    CHECK_OK(fs_broker_register_scheme("fake", fake_factory));
    CHECK_OK(fs_broker_register_scheme("fake", fake_factory)); /* same factory: no-op */
    CHECK_ERR(fs_broker_register_scheme("fake", other_factory), FS_ECONFLICT);
    CHECK_ERR(fs_broker_register_scheme("fa ke", fake_factory), FS_EINVAL);
    CHECK_ERR(fs_broker_register_scheme("fake://", fake_factory), FS_EINVAL);
    CHECK_ERR(fs_broker_register_scheme(NULL, fake_factory), FS_EINVAL);
    assert_true(fs_broker_scheme_registered("fake"));

    fs_broker *b;
    CHECK_OK(fs_broker_new("fake://host:1", NULL, &b));
    assert_string_equal(last_factory_url, "fake://host:1");
    assert_string_equal(fs_broker_name(b), "fake");
    assert_false(fs_broker_is_memory(b));
    assert_int_equal(fs_memory_queue_depth(b, "q", NULL), 0);
    fs_subscriber *s;
    CHECK_OK(fs_subscribe(b, "t", noop, NULL, NULL, &s));
    assert_int_equal(fs_subscriber_ack_policy(s), FS_ACK_POLICY_ACK_FIRST); /* the type default */
    CHECK_OK(fs_publish_bytes(b, "t", "x", 1));
    atomic_store(&fake_publish_fails, true);
    CHECK_ERR(fs_publish_bytes(b, "t", "x", 1), FS_EBROKER);
    assert_string_equal(fs_last_publish_error_type(), "FakeError");
    assert_non_null(strstr(fs_last_error(), "fake adapter refuses"));
    CHECK_OK(fs_broker_start(b));
    assert_true(fs_broker_running(b));
    CHECK_ERR(fs_broker_start(b), FS_ESTATE);
    CHECK_OK(fs_broker_stop(b));
    assert_false(fs_broker_running(b));
    CHECK_OK(fs_broker_stop(b)); /* idempotent */
    fs_broker_free(b);

    fs_broker_ops bad = fake_ops;
    bad.fetch = NULL;
    CHECK_ERR(fs_broker_create(&bad, NULL, "x://", NULL, &b), FS_EINVAL);
    bad = fake_ops;
    bad.default_ack_policy = FS_ACK_POLICY_DEFAULT;
    CHECK_ERR(fs_broker_create(&bad, NULL, "x://", NULL, &b), FS_EINVAL);
}

static void test_argument_checks(void **state)
{
    (void)state;
    fs_broker *b = memory_broker(16, false);
    fs_subscriber *s;
    CHECK_ERR(fs_subscribe(NULL, "q", noop, NULL, NULL, &s), FS_EINVAL);
    CHECK_ERR(fs_subscribe(b, "", noop, NULL, NULL, &s), FS_EINVAL);
    CHECK_ERR(fs_subscribe(b, "q", NULL, NULL, NULL, &s), FS_EINVAL);
    assert_non_null(strstr(fs_last_error(), "handler"));
    fs_subscriber_options so = FS_SUBSCRIBER_OPTIONS_INIT;
    so.concurrency = 100000;
    CHECK_ERR(fs_subscribe(b, "q", noop, NULL, &so, &s), FS_EINVAL);
    assert_non_null(strstr(fs_last_error(), "concurrency"));
    so = (fs_subscriber_options)FS_SUBSCRIBER_OPTIONS_INIT;
    so.ack_policy = (fs_ack_policy)42;
    CHECK_ERR(fs_subscribe(b, "q", noop, NULL, &so, &s), FS_EINVAL);
    fs_memory_subscriber_options mo = FS_MEMORY_SUBSCRIBER_OPTIONS_INIT;
    mo.group = "";
    so = (fs_subscriber_options)FS_SUBSCRIBER_OPTIONS_INIT;
    so.broker_options = &mo;
    CHECK_ERR(fs_subscribe(b, "q", noop, NULL, &so, &s), FS_EINVAL);

    CHECK_ERR(fs_publish(b, NULL, NULL), FS_EINVAL);
    CHECK_ERR(fs_publish_bytes(b, "", "x", 1), FS_EINVAL);
    assert_non_null(strstr(fs_last_error(), "destination"));
    CHECK_ERR(fs_publish_bytes(b, "q", NULL, 3), FS_EINVAL);
    fs_envelope e = FS_ENVELOPE_INIT;
    e.header_count = 2;
    CHECK_ERR(fs_publish(b, "q", &e), FS_EINVAL);
    assert_non_null(strstr(fs_last_error(), "headers"));
    fs_header h = {"name", NULL, 0};
    e.headers = &h;
    e.header_count = 1;
    CHECK_ERR(fs_publish(b, "q", &e), FS_EINVAL);
    CHECK_ERR(fs_publish_batch(b, "q", &e, 0), FS_EINVAL);
    fs_message *reply;
    CHECK_ERR(fs_request(b, "q", NULL, 10, &reply), FS_EINVAL);
    CHECK_ERR(fs_request(b, "q", &e, 10, NULL), FS_EINVAL);
    fs_publisher *p;
    CHECK_ERR(fs_publisher_new(b, NULL, NULL, &p), FS_EINVAL);
    CHECK_ERR(fs_publisher_publish(NULL, &e), FS_EINVAL);

    CHECK_ERR(fs_message_ack(NULL), FS_EINVAL);
    CHECK_ERR(fs_message_reply(NULL, "x", 1, NULL, 0, NULL), FS_EINVAL);
    {
        /* a reply's headers are checked like any publish's */
        fs_envelope re = FS_ENVELOPE_INIT;
        re.reply_to = "inbox";
        fs_message *req = fs_message_new_copy(&re, "q");
        assert_non_null(req);
        CHECK_ERR(fs_message_reply(req, "x", 1, &h, 1, NULL), FS_EINVAL);
        assert_non_null(strstr(fs_last_error(), "header 0"));
        CHECK_ERR(fs_message_reply(req, NULL, 1, NULL, 0, NULL), FS_EINVAL);
        fs_message_free(req);
    }
    CHECK_ERR(fs_broker_add_middleware(NULL, NULL), FS_EINVAL);
    CHECK_ERR(fs_broker_start(NULL), FS_EINVAL);
    CHECK_ERR(fs_memory_take_published(b, "q", &reply), FS_ESTATE); /* recording is off */
    CHECK_ERR(fs_subscriber_wait_handled(NULL, 1, 0), FS_EINVAL);
    fs_memory_options o = FS_MEMORY_OPTIONS_INIT;
    o.capacity = (size_t)1 << 30;
    fs_broker *big;
    CHECK_ERR(fs_memory_broker_new(&o, &big), FS_EINVAL);

    /* NULL-tolerant accessors */
    assert_null(fs_message_body(NULL));
    assert_int_equal(fs_message_count(NULL), 0);
    assert_null(fs_message_header(NULL, "x"));
    assert_int_equal(fs_message_settled(NULL), FS_SETTLE_NONE);
    assert_null(fs_broker_name(NULL));
    fs_broker_free(NULL);
    fs_message_free(NULL);
    fs_publisher_free(NULL);
    fs_broker_free(b);
}

/* Public functions called with a NULL object: FS_EINVAL and a message naming the function. */
static int call_with_null(size_t i)
{
    fs_broker *b = NULL;
    fs_app *app = NULL;
    fs_publisher *p = NULL;
    fs_message *m = NULL;
    fs_subscriber *s = NULL;
    fs_http_server *srv = NULL;
    fs_envelope e = FS_ENVELOPE_INIT;
    switch (i) {
    case 0:
        return fs_broker_connect(b);
    case 1:
        return fs_broker_start(b);
    case 2:
        return fs_broker_stop(b);
    case 3:
        return fs_broker_close(b);
    case 4:
        return fs_broker_ping(b, 10);
    case 5:
        return fs_broker_new("memory://", NULL, NULL);
    case 6:
        return fs_broker_create(NULL, NULL, "x://", NULL, &b);
    case 7:
        return fs_subscribe(b, "q", noop, NULL, NULL, &s);
    case 8:
        return fs_publish(b, "q", &e);
    case 9:
        return fs_publish_batch(b, "q", &e, 1);
    case 10:
        return fs_request(b, "q", &e, 10, &m);
    case 11:
        return fs_publisher_new(b, "q", NULL, &p);
    case 12:
        return fs_publisher_publish(p, &e);
    case 13:
        return fs_publisher_publish_batch(p, &e, 1);
    case 14:
        return fs_publisher_request(p, &e, 10, &m);
    case 15:
        return fs_message_ack(m);
    case 16:
        return fs_message_reply(m, "x", 1, NULL, 0, NULL);
    case 17:
        return fs_broker_add_middleware(b, NULL);
    case 18:
        return fs_broker_add_prometheus(b, NULL);
    case 19:
        return fs_prometheus_middleware_new(NULL, NULL);
    case 20:
        return fs_subscriber_wait_handled(s, 1, 0);
    case 21:
        return fs_memory_broker_new(NULL, NULL);
    case 22:
        return fs_memory_take_published(b, "q", NULL);
    case 23:
        return fs_memory_wait_handled(b, 1, 0);
    case 24:
        return fs_app_new(NULL, NULL);
    case 25:
        return fs_app_add_broker(app, NULL);
    case 26:
        return fs_app_on_startup(app, NULL, NULL);
    case 27:
        return fs_app_after_shutdown(app, NULL, NULL);
    case 28:
        return fs_app_add_route(app, "/x", NULL, NULL);
    case 29:
        return fs_app_run(app);
    case 30:
        return fs_url_parse("memory://", NULL);
    case 31:
        return fs_broker_register_scheme(NULL, NULL);
    case 32:
        return fs_http_server_new(NULL, &srv);
    case 33:
        return fs_http_server_start(srv);
    case 34:
        return fs_http_server_stop(srv);
    case 35:
        return fs_http_server_set_health_check(srv, NULL, NULL);
    case 36:
        return fs_registry_render(NULL, FS_FORMAT_TEXT, NULL);
    case 37:
        return fs_message_fail(m, "T", NULL) == FS_OUTCOME_ERROR ? FS_EINVAL : FS_OK;
    }
    return FS_OK;
}

static void test_null_arguments(void **state)
{
    (void)state;
    static const char *const names[] = {
        "fs_broker_connect",
        "fs_broker_start",
        "fs_broker_stop",
        "fs_broker_close",
        "fs_broker_ping",
        "fs_broker_new",
        "fs_broker_create",
        "fs_subscribe",
        "fs_publish",
        "fs_publish_batch",
        "fs_request",
        "fs_publisher_new",
        "fs_publisher_publish",
        "fs_publisher_publish_batch",
        "fs_publisher_request",
        "settle", /* fs_message_ack: "cannot settle a NULL message" */
        "fs_message_reply",
        "fs_broker_add_middleware",
        "fs_broker_add_prometheus",
        "fs_prometheus_middleware_new",
        "fs_subscriber_wait_handled",
        "fs_memory_broker_new",
        "fs_memory_take_published",
        "fs_memory_wait_handled",
        "fs_app_new",
        "fs_app_add_broker",
        "fs_app_on_startup",
        "fs_app_after_shutdown",
        "fs_app_add_route",
        "fs_app_run",
        "fs_url_parse",
        "fs_broker_register_scheme",
        "fs_http_server_new",
        "fs_http_server_start",
        "fs_http_server_stop",
        "fs_http_server_set_health_check",
        "fs_registry_render",
        "fs_message_fail",
    };
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        fs_clear_error();
        int rc = call_with_null(i);
        if (rc != FS_EINVAL || !strstr(fs_last_error(), names[i]))
            fail_msg("case %zu (%s): returned %d, message \"%s\"", i, names[i], rc,
                     fs_last_error());
    }
}

static void test_copies_and_names(void **state)
{
    /* the received statuses by number, as fs_consume_status names them */
    static const char *const statuses[] = {"acked", "nacked", "rejected", "skipped", "error"};
    for (int i = FS_RECEIVED_ACKED; i <= FS_RECEIVED_ERROR; i++)
        assert_string_equal(fs_received_status_name((fs_received_status)i), statuses[i]);
    assert_null(fs_received_status_name((fs_received_status)5));
    assert_null(fs_received_status_name((fs_received_status)-1));
    (void)state;
    fs_header h[2] = {{"a", "1", 0}, {"b", "2", 0}};
    fs_envelope e = FS_ENVELOPE_INIT;
    e.body = "payload";
    e.body_len = 7;
    e.headers = h;
    e.header_count = 2;
    e.correlation_id = "c";
    fs_message *m = fs_message_new_copy(&e, "src");
    assert_non_null(m);
    assert_string_equal(fs_message_source(m), "src");
    assert_string_equal(fs_message_header(m, "b"), "2");
    assert_null(fs_message_header(m, "c"));
    assert_string_equal(fs_message_header_at(m, 0)->name, "a");
    assert_null(fs_message_header_at(m, 2));
    assert_null(fs_message_reply_to(m));
    assert_int_equal(fs_message_size(m), 7);
    fs_message *c = fs_message_copy(m);
    assert_memory_equal(fs_message_body(c), "payload", 7);
    assert_string_equal(fs_message_correlation_id(c), "c");
    assert_int_equal(fs_message_reply(c, "x", 1, NULL, 0, NULL), FS_EINVAL);
    assert_int_equal(fs_message_fail(c, "T", NULL), FS_OUTCOME_ERROR);
    assert_null(fs_message_error_type(c)); /* not being handled: nowhere to record */
    fs_message_free(c);
    fs_message_free(m);

    /* Sizes that overflow when added up are refused, never copied into a short block. */
    fs_envelope huge = e;
    huge.body_len = SIZE_MAX - 4;
    fs_clear_error();
    assert_null(fs_message_new_copy(&huge, "src"));
    assert_non_null(strstr(fs_last_error(), "too large"));
    fs_broker *b = memory_broker(4, false);
    CHECK_ERR(fs_publish(b, "q", &huge), FS_EINVAL);
    assert_non_null(strstr(fs_last_error(), "too large"));
    assert_int_equal(fs_memory_queue_depth(b, "q", NULL), 0);
    fs_broker_free(b);

    assert_string_equal(fs_outcome_name(FS_OUTCOME_SKIP), "skip");
    assert_string_equal(fs_settle_state_name(FS_SETTLE_REJECTED), "rejected");
    assert_string_equal(fs_ack_policy_name(FS_ACK_POLICY_NACK_ON_ERROR), "nack_on_error");
}

int main(void)
{
    quiet_logs();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_url_parse),        cmocka_unit_test(test_broker_urls),
        cmocka_unit_test(test_scheme_registry),  cmocka_unit_test(test_argument_checks),
        cmocka_unit_test(test_copies_and_names), cmocka_unit_test(test_null_arguments),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
