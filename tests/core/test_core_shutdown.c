/*
 * fs_app_run returns after fs_app_stop or SIGTERM even when a handler
 * blocks forever: after the graceful timeout it reports FS_ETIMEDOUT naming
 * the handlers still running, fs_app_free does not wait for them, and the
 * process exits (a forked child, killed with SIGTERM, exits on its own).
 */
#include "core_test.h"

#include <signal.h>
#include <stdatomic.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

static atomic_bool release;
static atomic_int entered;

/* Blocks until `release` (the test sets it, or never in the child). */
static fs_outcome stuck(fs_message *msg, void *user)
{
    (void)msg;
    (void)user;
    atomic_fetch_add(&entered, 1);
    while (!atomic_load(&release))
        test_sleep_ms(5);
    return FS_OUTCOME_OK;
}

typedef struct app_run {
    fs_app *app;
    pthread_t thread;
    int rc;
    char error[1024];
} app_run;

static void *run_thread(void *arg)
{
    app_run *r = arg;
    r->rc = fs_app_run(r->app);
    snprintf(r->error, sizeof r->error, "%s", fs_last_error());
    return NULL;
}

static fs_app *stuck_app(bool signals, fs_broker **out)
{
    fs_app_options o = FS_APP_OPTIONS_INIT;
    o.http_disabled = true;
    o.no_signals = !signals;
    o.graceful_timeout_ms = 100;
    fs_app *app;
    CHECK_OK(fs_app_new(&o, &app));
    fs_broker *b = memory_broker(16, false);
    fs_subscriber_options so = FS_SUBSCRIBER_OPTIONS_INIT;
    so.concurrency = 2;
    CHECK_OK(fs_subscribe(b, "stuck", stuck, NULL, &so, NULL));
    CHECK_OK(fs_subscribe(b, "fine", stuck, NULL, NULL, NULL));
    CHECK_OK(fs_app_add_broker(app, b));
    fs_publisher *p;
    CHECK_OK(fs_publisher_new(b, "stuck", NULL, &p));
    CHECK_OK(fs_publisher_publish_bytes(p, "m", 1));
    *out = b;
    return app;
}

static void test_stop_with_blocked_handler(void **state)
{
    (void)state;
    atomic_store(&release, false);
    atomic_store(&entered, 0);
    fs_broker *b;
    app_run r = {.app = stuck_app(false, &b)};
    assert_int_equal(pthread_create(&r.thread, NULL, run_thread, &r), 0);
    for (int i = 0; i < WAIT_MS && atomic_load(&entered) < 1; i++)
        test_sleep_ms(1);
    assert_int_equal(atomic_load(&entered), 1);
    fs_app_stop(r.app);
    pthread_join(r.thread, NULL); /* before the fix: never */
    assert_int_equal(r.rc, FS_ETIMEDOUT);
    print_message("fs_app_run: %s\n", r.error);
    assert_non_null(strstr(r.error, "/stuck (1 of 2 workers)"));
    assert_null(strstr(r.error, "fine"));
    /* The handler may finish later: then the broker closes and frees normally. */
    atomic_store(&release, true);
    CHECK_OK(fs_broker_close(b));
    fs_app_free(r.app);
}

/* A child process whose handler never returns exits after SIGTERM. */
static void test_sigterm_exits_process(void **state)
{
    (void)state;
    int ready[2];
    assert_int_equal(pipe(ready), 0);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        close(ready[0]);
        atomic_store(&release, false);
        atomic_store(&entered, 0);
        fs_broker *b;
        fs_app *app = stuck_app(true, &b);
        app_run r = {.app = app};
        pthread_create(&r.thread, NULL, run_thread, &r);
        for (int i = 0; i < WAIT_MS && atomic_load(&entered) < 1; i++)
            test_sleep_ms(1);
        if (write(ready[1], "r", 1) != 1)
            _exit(10);
        pthread_join(r.thread, NULL);
        fs_app_free(app); /* leaves the stuck broker alone */
        int code = r.rc == FS_ETIMEDOUT && strstr(r.error, "/stuck") ? 3 : 4;
#ifdef __SANITIZE_THREAD__
        /* ThreadSanitizer reports the workers left behind as leaked threads,
         * at exit and _exit alike: leave without its interceptors. */
        syscall(SYS_exit_group, code);
#else
        exit(code);
#endif
    }
    close(ready[1]);
    char c;
    assert_int_equal(read(ready[0], &c, 1), 1);
    close(ready[0]);
    assert_int_equal(kill(pid, SIGTERM), 0);
    int status = 0;
    pid_t got = 0;
    for (int i = 0; i < WAIT_MS && got == 0; i++) {
        got = waitpid(pid, &status, WNOHANG);
        if (got == 0)
            test_sleep_ms(1);
    }
    if (got == 0) {
        kill(pid, SIGKILL);
        waitpid(pid, &status, 0);
        fail_msg("the process did not exit after SIGTERM");
    }
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 3);
}

int main(void)
{
    quiet_logs();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_stop_with_blocked_handler),
        cmocka_unit_test(test_sigterm_exits_process),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
