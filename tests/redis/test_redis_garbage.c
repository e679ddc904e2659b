/*
 * The Redis adapter against a fake server that answers garbage
 * (fake_redis.h): every malformed reply is a protocol error that drops the
 * connection and reconnects, never a message, and a well-formed reply after
 * them is delivered intact; a reply header announcing 100,000,000 elements
 * commits no memory before they arrive. No real server needed.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "brokers/redis/internal.h"
#include "fake_redis.h"
#include "faststream/faststream.h"
#include "faststream/redis.h"
#include "support/record.h"

#include <time.h>

#define WAIT_MS 20000

static atomic_int delivered, bad_source, bad_body;

static fs_outcome record(fs_message *msg, void *user)
{
    (void)user;
    atomic_fetch_add(&delivered, 1);
    const char *src = fs_message_source(msg);
    if (!src || strcmp(src, "q") != 0)
        atomic_fetch_add(&bad_source, 1);
    if (fs_message_body_len(msg) != 2 || memcmp(fs_message_body(msg), "ok", 2) != 0)
        atomic_fetch_add(&bad_body, 1);
    return FS_OUTCOME_OK;
}

/* A list subscriber on "q" of a broker on the fake server, started. */
static fs_broker *list_broker(const fake_redis *f)
{
    char url[64];
    snprintf(url, sizeof url, "redis://127.0.0.1:%u/0?format=raw", (unsigned)f->port);
    fs_broker *b;
    if (fs_broker_new(url, NULL, &b) != FS_OK)
        fail_msg("%s: %s", url, fs_last_error());
    fs_redis_subscriber_options ro = FS_REDIS_SUBSCRIBER_OPTIONS_INIT;
    ro.kind = FS_REDIS_LIST;
    fs_subscriber_options so = FS_SUBSCRIBER_OPTIONS_INIT;
    so.broker_options = &ro;
    if (fs_subscribe(b, "q", record, NULL, &so, NULL) != FS_OK || fs_broker_start(b) != FS_OK)
        fail_msg("start: %s", fs_last_error());
    return b;
}

/* BLMPOP replies that are well-formed RESP but not what BLMPOP answers. */
static const char *const garbage[] = {
    "*2\r\n:5\r\n*1\r\n$2\r\nok\r\n",                 /* the key is an integer */
    "*2\r\n$-1\r\n*1\r\n$2\r\nok\r\n",                /* the key is nil */
    "*2\r\n*0\r\n*1\r\n$2\r\nok\r\n",                 /* the key is an array */
    "*2\r\n$1\r\nq\r\n*1\r\n:7\r\n",                  /* an element is an integer */
    "*2\r\n$1\r\nq\r\n*1\r\n$-1\r\n",                 /* an element is nil */
    "*2\r\n$1\r\nq\r\n*1\r\n*1\r\n$2\r\nok\r\n",      /* an element is an array */
    "*2\r\n$1\r\nq\r\n$2\r\nok\r\n",                  /* the elements are not an array */
    "*3\r\n$1\r\nq\r\n*1\r\n$2\r\nok\r\n$1\r\nx\r\n", /* three parts */
    "*1\r\n$1\r\nq\r\n",                              /* one part */
    "+OK\r\n",                                        /* a status */
    ":1\r\n",                                         /* an integer */
    "$2\r\nok\r\n",                                   /* a string */
    "*2\r\n$1\r\nz\r\n*1\r\n$2\r\nok\r\n",            /* another list's name */
    "%1\r\n$1\r\nq\r\n$2\r\nok\r\n",                  /* not RESP2 at all */
    "*2\r\n$9\r\nq\r\n*1\r\n$2\r\nok\r\n",            /* a length that lies */
};
#define NGARBAGE (sizeof garbage / sizeof *garbage)

static void test_garbage_replies_are_never_messages(void **state)
{
    (void)state;
    const char *script[NGARBAGE + 2];
    for (size_t i = 0; i < NGARBAGE; i++)
        script[i] = garbage[i];
    script[NGARBAGE] = "*2\r\n$1\r\nq\r\n*1\r\n$2\r\nok\r\n"; /* one good message */
    script[NGARBAGE + 1] = NULL;
    fake_redis f;
    assert_int_equal(fake_redis_start(&f, script), 0);
    atomic_store(&delivered, 0);
    atomic_store(&bad_source, 0);
    atomic_store(&bad_body, 0);
    fs_broker *b = list_broker(&f);
    for (int i = 0; i < WAIT_MS / 10 && atomic_load(&delivered) < 1; i++)
        ts_sleep_ms(10);
    ts_sleep_ms(100);
    fs_broker_free(b);
    fake_redis_stop(&f);
    print_message("%d messages, %d with a bad source, %d with a bad body; %d connections for "
                  "%zu malformed replies\n",
                  atomic_load(&delivered), atomic_load(&bad_source), atomic_load(&bad_body),
                  atomic_load(&f.connections), NGARBAGE);
    assert_int_equal(atomic_load(&bad_source), 0);
    assert_int_equal(atomic_load(&bad_body), 0);
    assert_int_equal(atomic_load(&delivered), 1);
    /* Each malformed reply dropped its connection (one more for the pool). */
    assert_true(atomic_load(&f.connections) >= (int)NGARBAGE);
}

/* Resident set size in bytes (Linux). */
static size_t rss_bytes(void)
{
    FILE *fp = fopen("/proc/self/statm", "r");
    long pages = 0, resident = 0;
    if (fp) {
        if (fscanf(fp, "%ld %ld", &pages, &resident) != 2)
            resident = 0;
        fclose(fp);
    }
    return (size_t)resident * (size_t)sysconf(_SC_PAGESIZE);
}

static void test_huge_array_header_commits_no_memory(void **state)
{
    (void)state;
    /* 100,000,000 elements announced, then three, then nothing. */
    const char *script[] = {"*100000000\r\n$1\r\nq\r\n$1\r\nx\r\n$1\r\ny\r\n", "HOLD", NULL};
    fake_redis f;
    assert_int_equal(fake_redis_start(&f, script), 0);
    size_t before = rss_bytes();
    fs_broker *b = list_broker(&f);
    for (int i = 0; i < WAIT_MS / 10 && atomic_load(&f.scripted_sent) < 1; i++)
        ts_sleep_ms(10);
    ts_sleep_ms(300); /* the reply header has been read by now */
    size_t during = rss_bytes();
    print_message("resident memory grew by %zu KiB after a *100000000 header\n",
                  (during > before ? during - before : 0) / 1024);
    fs_broker_free(b);
    fake_redis_stop(&f);
    assert_true(during < before + 64 * 1024 * 1024); /* 800 MB before the fix */
}

/* A reply over the limit is a protocol error too; the next one is delivered. */
static void test_reply_limit(void **state)
{
    (void)state;
    static char big[128 * 1024];
    int n = snprintf(big, sizeof big, "*2\r\n$1\r\nq\r\n*1\r\n$%d\r\n", 100 * 1024);
    memset(big + n, 'x', 100 * 1024);
    memcpy(big + n + 100 * 1024, "\r\n", 3);
    const char *script[] = {big, "*2\r\n$1\r\nq\r\n*1\r\n$2\r\nok\r\n", NULL};
    size_t old = fs__redis_reply_limit(64 * 1024);
    fake_redis f;
    assert_int_equal(fake_redis_start(&f, script), 0);
    atomic_store(&delivered, 0);
    atomic_store(&bad_body, 0);
    fs_broker *b = list_broker(&f);
    for (int i = 0; i < WAIT_MS / 10 && atomic_load(&delivered) < 1; i++)
        ts_sleep_ms(10);
    fs_broker_free(b);
    fake_redis_stop(&f);
    fs__redis_reply_limit(old);
    assert_int_equal(atomic_load(&delivered), 1);
    assert_int_equal(atomic_load(&bad_body), 0);
    assert_true(atomic_load(&f.connections) >= 2);
}

static int publish_kind(fs_broker *b, fs_redis_kind kind)
{
    fs_redis_publish_options po = FS_REDIS_PUBLISH_OPTIONS_INIT;
    po.kind = kind;
    return ts_publish_with(b, "q", "ok", &po);
}

/* Publish replies of the wrong type are protocol errors, not successes. */
static void test_publish_reply_types(void **state)
{
    (void)state;
    const char *script[] = {"$2\r\nok\r\n", "+OK\r\n", ":1\r\n", ":1\r\n", NULL};
    fake_redis f;
    assert_int_equal(fake_redis_start(&f, script), 0);
    char url[64];
    snprintf(url, sizeof url, "redis://127.0.0.1:%u/0", (unsigned)f.port);
    fs_broker *b;
    assert_int_equal(fs_broker_new(url, NULL, &b), FS_OK);
    assert_int_equal(fs_broker_connect(b), FS_OK);
    assert_int_equal(publish_kind(b, FS_REDIS_CHANNEL), FS_EPROTOCOL); /* PUBLISH -> a string */
    assert_non_null(strstr(fs_last_error(), "PUBLISH"));
    assert_int_equal(publish_kind(b, FS_REDIS_LIST), FS_EPROTOCOL);   /* RPUSH -> a status */
    assert_int_equal(publish_kind(b, FS_REDIS_STREAM), FS_EPROTOCOL); /* XADD -> an integer */
    assert_int_equal(publish_kind(b, FS_REDIS_CHANNEL), FS_OK);
    fs_broker_free(b);
    fake_redis_stop(&f);
}

int main(void)
{
    fs_set_log_level(FS_LOG_OFF);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_garbage_replies_are_never_messages),
        cmocka_unit_test(test_huge_array_header_commits_no_memory),
        cmocka_unit_test(test_reply_limit),
        cmocka_unit_test(test_publish_reply_types),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
