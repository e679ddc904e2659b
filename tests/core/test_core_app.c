/*
 * Applications: run/stop from another thread and by signal, hook order,
 * the health route over real HTTP (204 / 500), user routes, graceful
 * shutdown settling in-flight messages, startup failures.
 */
#include "core_test.h"
#include "fake_adapter.h"
#include "support/http_client.h"

#include <signal.h>
#include <stdatomic.h>
#include <unistd.h>

typedef struct app_run {
    fs_app *app;
    pthread_t thread;
    int rc;
} app_run;

static void *run_thread(void *arg)
{
    app_run *r = arg;
    r->rc = fs_app_run(r->app);
    return NULL;
}

static void start_app(app_run *r)
{
    r->rc = -100;
    assert_int_equal(pthread_create(&r->thread, NULL, run_thread, r), 0);
    for (int i = 0; i < WAIT_MS && !fs_app_running(r->app); i++)
        test_sleep_ms(1);
    assert_true(fs_app_running(r->app));
}

static int join_app(app_run *r)
{
    pthread_join(r->thread, NULL);
    return r->rc;
}

static fs_app *new_app(bool http)
{
    fs_app_options o = FS_APP_OPTIONS_INIT;
    o.http_disabled = !http;
    o.http_port = FS_APP_PORT_ANY;
    o.no_signals = true;
    fs_app *app;
    CHECK_OK(fs_app_new(&o, &app));
    return app;
}

/* ------------------------------------------------------------------------ */

typedef struct hook_log {
    char text[256];
    fs_broker *broker;
} hook_log;

static void hook_note(hook_log *l, const char *what)
{
    size_t n = strlen(l->text);
    snprintf(l->text + n, sizeof l->text - n, "%s%s ", what,
             fs_broker_running(l->broker) ? "+" : "-");
}

/* A hook that notes its name (and whether the broker runs) in a log. */
typedef struct hook_tag {
    hook_log *log;
    const char *name;
} hook_tag;

static int note_hook(fs_app *app, void *u)
{
    (void)app;
    const hook_tag *t = u;
    hook_note(t->log, t->name);
    return 0;
}

static void test_hooks_and_stop(void **state)
{
    (void)state;
    hook_log log = {.text = ""};
    fs_app *app = new_app(false);
    fs_broker *b = memory_broker(16, false);
    log.broker = b;
    CHECK_OK(fs_subscribe(b, "q", noop, NULL, NULL, NULL));
    CHECK_OK(fs_app_add_broker(app, b));
    CHECK_ERR(fs_app_add_broker(app, b), FS_ECONFLICT);
    hook_tag start1 = {&log, "start1"}, start2 = {&log, "start2"},
             after_start = {&log, "after_start"}, shutdown = {&log, "shutdown"},
             after_shutdown = {&log, "after_shutdown"};
    CHECK_OK(fs_app_on_startup(app, note_hook, &start1));
    CHECK_OK(fs_app_on_startup(app, note_hook, &start2));
    CHECK_OK(fs_app_after_startup(app, note_hook, &after_start));
    CHECK_OK(fs_app_on_shutdown(app, note_hook, &shutdown));
    CHECK_OK(fs_app_after_shutdown(app, note_hook, &after_shutdown));
    assert_int_equal(fs_app_broker_count(app), 1);
    assert_ptr_equal(fs_app_broker(app, 0), b);
    assert_null(fs_app_broker(app, 1));

    app_run r = {.app = app};
    start_app(&r);
    CHECK_ERR(fs_app_run(app), FS_ESTATE);
    CHECK_ERR(fs_app_on_startup(app, note_hook, &start1), FS_ESTATE);
    assert_true(fs_broker_running(b));
    publish_str(b, "q", "during the run");
    CHECK_OK(fs_memory_wait_handled(b, 1, WAIT_MS));
    fs_app_stop(app);
    assert_int_equal(join_app(&r), FS_OK);
    assert_false(fs_app_running(app));
    assert_string_equal(log.text, "start1- start2- after_start+ shutdown+ after_shutdown- ");
    fs_app_free(app); /* frees the broker too */
}

static void test_stop_before_run(void **state)
{
    (void)state;
    fs_app *app = new_app(false);
    fs_broker *b = memory_broker(16, false);
    CHECK_OK(fs_broker_start(b)); /* a broker the user started already is fine */
    CHECK_OK(fs_app_add_broker(app, b));
    fs_app_stop(app);
    CHECK_OK(fs_app_run(app)); /* starts, sees the stop, shuts down */
    assert_false(fs_broker_running(b));
    fs_app_free(app);
}

static int failing_hook(fs_app *app, void *u)
{
    (void)app;
    (void)u;
    return FS_EIO;
}

static void test_startup_failure(void **state)
{
    (void)state;
    hook_log log = {.text = ""};
    fs_app *app = new_app(false);
    fs_broker *b = memory_broker(16, false);
    log.broker = b;
    CHECK_OK(fs_app_add_broker(app, b));
    CHECK_OK(fs_app_on_startup(app, failing_hook, NULL));
    hook_tag after_shutdown = {&log, "after_shutdown"};
    CHECK_OK(fs_app_after_shutdown(app, note_hook, &after_shutdown));
    assert_int_equal(fs_app_run(app), FS_EIO);
    assert_false(fs_broker_running(b));
    assert_string_equal(log.text, ""); /* after_shutdown only follows a real startup */
    fs_app_free(app);
}

static void test_signal_stops(void **state)
{
    (void)state;
    fs_app_options o = {0}; /* zeroed: every default, signals caught among them */
    o.http_disabled = true;
    fs_app *app;
    CHECK_OK(fs_app_new(&o, &app));
    CHECK_OK(fs_app_add_broker(app, memory_broker(16, false)));
    app_run r = {.app = app};
    start_app(&r);
    kill(getpid(), SIGTERM);
    assert_int_equal(join_app(&r), FS_OK);
    /* the previous disposition is back */
    struct sigaction sa;
    sigaction(SIGTERM, NULL, &sa);
    assert_true(sa.sa_handler == SIG_DFL);
    fs_app_free(app);
}

/* ------------------------------------------------------------------------ */
/* Health over HTTP                                                          */

static void hello_route(const fs_http_request *req, fs_http_response *resp, void *user)
{
    (void)req;
    resp->status = 200;
    resp->body = user;
    resp->body_len = strlen(user);
}

static int get_status(uint16_t port, const char *path, char *body, size_t body_size)
{
    test_http_response r;
    if (test_http_request("127.0.0.1", port, "GET", path, NULL, &r) != 0)
        fail_msg("GET %s: %s", path, test_http_error());
    int status = r.status;
    if (body)
        snprintf(body, body_size, "%s", r.body ? r.body : "");
    test_http_response_free(&r);
    return status;
}

static void test_health_route(void **state)
{
    (void)state;
    atomic_store(&fake_healthy, true);
    fs_app *app = new_app(true);
    fs_broker *mem = memory_broker(16, false), *fake;
    CHECK_OK(fs_broker_create(&fake_ops, NULL, "fake://", NULL, &fake));
    CHECK_OK(fs_app_add_broker(app, mem));
    CHECK_OK(fs_app_add_broker(app, fake));
    CHECK_OK(fs_app_add_route(app, "/hello", hello_route, "hi there"));
    CHECK_ERR(fs_app_add_route(app, "/hello", hello_route, "again"), FS_ECONFLICT);
    CHECK_ERR(fs_app_add_route(app, "nope", hello_route, "x"), FS_EINVAL);
    app_run r = {.app = app};
    start_app(&r);
    uint16_t port = fs_app_http_port(app);
    assert_true(port > 0);
    char body[256];
    assert_int_equal(get_status(port, "/health", NULL, 0), 204);
    assert_true(fs_app_healthy(app, 100));
    atomic_store(&fake_healthy, false);
    assert_int_equal(get_status(port, "/health", NULL, 0), 500);
    assert_false(fs_app_healthy(app, 100));
    atomic_store(&fake_healthy, true);
    assert_int_equal(get_status(port, "/health", NULL, 0), 204);
    assert_int_equal(get_status(port, "/hello", body, sizeof body), 200);
    assert_string_equal(body, "hi there");
    CHECK_OK(fs_app_add_route(app, "/late", hello_route, "added while running"));
    assert_int_equal(get_status(port, "/late", body, sizeof body), 200);
    assert_string_equal(body, "added while running");
    assert_int_equal(get_status(port, "/metrics", NULL, 0), 200);
    fs_app_stop(app);
    assert_int_equal(join_app(&r), FS_OK);
    assert_int_equal(fs_app_http_port(app), 0);
    fs_app_free(app);
}

/* ------------------------------------------------------------------------ */
/* Graceful shutdown                                                         */

typedef struct slow_state {
    atomic_int entered;
    atomic_int finished;
    atomic_bool release;
} slow_state;

static fs_outcome slow(fs_message *m, void *user)
{
    (void)m;
    slow_state *s = user;
    atomic_fetch_add(&s->entered, 1);
    while (!atomic_load(&s->release))
        test_sleep_ms(1);
    atomic_fetch_add(&s->finished, 1);
    return FS_OUTCOME_OK;
}

static int release_on_shutdown(fs_app *app, void *u)
{
    (void)app;
    slow_state *s = u;
    /* the handlers are still running here; let them finish during the stop */
    if (atomic_load(&s->finished) != 0)
        return FS_ESTATE;
    atomic_store(&s->release, true);
    return 0;
}

static void test_graceful_shutdown(void **state)
{
    (void)state;
    slow_state s;
    memset(&s, 0, sizeof s);
    fs_app *app = new_app(false);
    fs_broker *b = memory_broker(64, false);
    fs_subscriber_options so = FS_SUBSCRIBER_OPTIONS_INIT;
    so.concurrency = 3;
    fs_subscriber *sub;
    CHECK_OK(fs_subscribe(b, "slow", slow, &s, &so, &sub));
    CHECK_OK(fs_app_add_broker(app, b));
    CHECK_OK(fs_app_on_shutdown(app, release_on_shutdown, &s));
    for (int i = 0; i < 10; i++)
        publish_str(b, "slow", "m");
    app_run r = {.app = app};
    start_app(&r);
    for (int i = 0; i < WAIT_MS && atomic_load(&s.entered) < 3; i++)
        test_sleep_ms(1);
    assert_int_equal(atomic_load(&s.entered), 3);
    fs_app_stop(app);
    assert_int_equal(join_app(&r), FS_OK);
    /* every message that reached a handler finished and was settled (acked) */
    int entered = atomic_load(&s.entered);
    assert_int_equal(atomic_load(&s.finished), entered);
    assert_int_equal(fs_subscriber_handled(sub), (uint64_t)entered);
    assert_int_equal(fs_memory_queue_in_flight(b, "slow", NULL), 0);
    assert_int_equal(fs_memory_queue_depth(b, "slow", NULL), (size_t)(10 - entered));
    fs_app_free(app);
}

/* fs_broker_stop with a timeout shorter than a handler: reported, then finished at free. */
static void test_stop_timeout(void **state)
{
    (void)state;
    slow_state s;
    memset(&s, 0, sizeof s);
    fs_broker_options bo = FS_BROKER_OPTIONS_INIT;
    bo.graceful_timeout_ms = 20;
    fs_broker *b;
    CHECK_OK(fs_broker_new("memory://", &bo, &b));
    fs_subscriber *sub;
    CHECK_OK(fs_subscribe(b, "slow", slow, &s, NULL, &sub));
    publish_str(b, "slow", "m");
    CHECK_OK(fs_broker_start(b));
    for (int i = 0; i < WAIT_MS && atomic_load(&s.entered) < 1; i++)
        test_sleep_ms(1);
    CHECK_ERR(fs_broker_stop(b), FS_ETIMEDOUT);
    CHECK_ERR(fs_broker_start(b), FS_ESTATE); /* its handler still runs */
    atomic_store(&s.release, true);
    CHECK_OK(fs_broker_close(b)); /* waits for it and settles */
    assert_int_equal(fs_subscriber_handled(sub), 1);
    assert_int_equal(fs_memory_queue_in_flight(b, "slow", NULL), 0);
    fs_broker_free(b);
}

int main(void)
{
    quiet_logs();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_hooks_and_stop),  cmocka_unit_test(test_stop_before_run),
        cmocka_unit_test(test_startup_failure), cmocka_unit_test(test_signal_stops),
        cmocka_unit_test(test_health_route),    cmocka_unit_test(test_graceful_shutdown),
        cmocka_unit_test(test_stop_timeout),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
