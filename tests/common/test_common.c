/* Status codes, per-thread error messages and the logging callback. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>

#include "common/internal.h"
#include "faststream/common.h"

static void test_strerror_names_every_code(void **state)
{
    (void)state;
    for (int s = FS_EPROTOCOL; s <= FS_OK; s++)
        assert_string_not_equal(fs_strerror(s), "unknown error");
    assert_string_equal(fs_strerror(-999), "unknown error");
}

static void *fail_in_thread(void *arg)
{
    (void)arg;
    fs__error(FS_EIO, "other thread");
    return NULL;
}

static void test_last_error_is_per_thread(void **state)
{
    (void)state;
    fs_clear_error();
    assert_string_equal(fs_last_error(), "");
    assert_int_equal(fs__error(FS_EINVAL, "bad %s %d", "thing", 7), FS_EINVAL);
    pthread_t t;
    pthread_create(&t, NULL, fail_in_thread, NULL);
    pthread_join(t, NULL);
    assert_string_equal(fs_last_error(), "bad thing 7");
}

/* The last error may be an argument of the next one: context is added, nothing garbled. */
static void test_error_wraps_last_error(void **state)
{
    (void)state;
    fs__error(FS_EIO, "connection refused by %s:%d", "127.0.0.1", 6379);
    assert_int_equal(fs__error(FS_EBROKER, "cannot publish to '%s': %s", "orders", fs_last_error()),
                     FS_EBROKER);
    assert_string_equal(fs_last_error(),
                        "cannot publish to 'orders': connection refused by 127.0.0.1:6379");
    char long_text[600];
    memset(long_text, 'x', sizeof long_text - 1);
    long_text[sizeof long_text - 1] = '\0';
    fs__error(FS_EIO, "%s", long_text); /* truncated to the buffer */
    fs__error(FS_EIO, "ctx: %s", fs_last_error());
    assert_memory_equal(fs_last_error(), "ctx: xxxx", 9);
    assert_int_equal(strspn(fs_last_error() + 5, "x"), strlen(fs_last_error()) - 5);
}

struct captured {
    int calls;
    fs_log_level level;
    char component[32];
    char message[128];
};

static void capture(fs_log_level level, const char *component, const char *message, void *user)
{
    struct captured *c = user;
    c->calls++;
    c->level = level;
    snprintf(c->component, sizeof c->component, "%s", component);
    snprintf(c->message, sizeof c->message, "%s", message);
}

static void test_log_handler_and_level(void **state)
{
    (void)state;
    struct captured c = {0};
    fs_set_log_handler(capture, &c);
    fs_set_log_level(FS_LOG_WARN);
    fs__log(FS_LOG_INFO, "test", "dropped");
    assert_int_equal(c.calls, 0);
    fs__log(FS_LOG_ERROR, "test", "kept %d", 42);
    assert_int_equal(c.calls, 1);
    assert_int_equal(c.level, FS_LOG_ERROR);
    assert_string_equal(c.component, "test");
    assert_string_equal(c.message, "kept 42");
    fs_set_log_level(FS_LOG_OFF);
    fs__log(FS_LOG_ERROR, "test", "off");
    assert_int_equal(c.calls, 1);
    fs_set_log_handler(NULL, NULL);
    fs_set_log_level(FS_LOG_INFO);
    assert_int_equal(fs_get_log_level(), FS_LOG_INFO);
    assert_string_equal(fs_log_level_name(FS_LOG_WARN), "warn");
    assert_string_equal(fs_version(), FASTSTREAM_VERSION_STRING);
}

/* Swapping the log handler while other threads log: every line reaches a
 * handler together with that handler's own user pointer. */
static int user_a, user_b;
static atomic_int lines_a, lines_b, lines_torn;

static void sink_a(fs_log_level level, const char *component, const char *message, void *user)
{
    (void)level, (void)component, (void)message;
    atomic_fetch_add(user == &user_a ? &lines_a : &lines_torn, 1);
}

static void sink_b(fs_log_level level, const char *component, const char *message, void *user)
{
    (void)level, (void)component, (void)message;
    atomic_fetch_add(user == &user_b ? &lines_b : &lines_torn, 1);
}

#define LOG_LINES 20000

static void *log_lines(void *arg)
{
    (void)arg;
    for (int i = 0; i < LOG_LINES; i++)
        fs__log(FS_LOG_ERROR, "test", "line %d", i);
    return NULL;
}

static void test_log_handler_swapped_while_logging(void **state)
{
    (void)state;
    fs_set_log_level(FS_LOG_INFO);
    fs_set_log_handler(sink_a, &user_a);
    pthread_t t[2];
    for (int i = 0; i < 2; i++)
        assert_int_equal(pthread_create(&t[i], NULL, log_lines, NULL), 0);
    for (int i = 0; i < 2000; i++) {
        if (i % 2)
            fs_set_log_handler(sink_a, &user_a);
        else
            fs_set_log_handler(sink_b, &user_b);
    }
    for (int i = 0; i < 2; i++)
        pthread_join(t[i], NULL);
    fs_set_log_handler(NULL, NULL);
    assert_int_equal(atomic_load(&lines_torn), 0);
    assert_int_equal(atomic_load(&lines_a) + atomic_load(&lines_b), 2 * LOG_LINES);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_strerror_names_every_code),
        cmocka_unit_test(test_last_error_is_per_thread),
        cmocka_unit_test(test_error_wraps_last_error),
        cmocka_unit_test(test_log_handler_and_level),
        cmocka_unit_test(test_log_handler_swapped_while_logging),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
