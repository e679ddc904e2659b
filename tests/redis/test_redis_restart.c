/*
 * At-least-once delivery on a stream across server crashes. The test runs
 * its OWN redis-server (appendonly yes, appendfsync always) on a free port,
 * publishes stream messages from a thread while a 4-worker group subscriber
 * handles them, and kills the server with SIGKILL twice, restarting it on
 * the same data directory. Afterwards:
 *   - every published message was handled at least once;
 *   - nothing is left pending in the group (every entry was acked);
 *   - no entry was acked (XACK confirmed) twice;
 *   - no handler saw an entry after its acknowledgement was confirmed.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "redis_test.h"
#include "support/server.h"

#include <stdatomic.h>

#define N_MESSAGES 3000
#define SET_CAP 16384 /* power of two, > every entry id we can see */

static ts_server srv; /* our redis-server: its data directory, port and pid */

static bool server_answers(void *arg)
{
    (void)arg;
    struct timeval tv = {1, 0};
    redisContext *c = redisConnectWithTimeout("127.0.0.1", srv.port, tv);
    bool ok = false;
    if (c && !c->err) {
        redisReply *r = redisCommand(c, "PING");
        /* still loading the AOF answers -LOADING: not ready */
        ok = r && r->type == REDIS_REPLY_STATUS;
        if (r)
            freeReplyObject(r);
    }
    if (c)
        redisFree(c);
    return ok;
}

static void server_start(void)
{
    char portstr[16], log[300];
    snprintf(portstr, sizeof portstr, "%d", srv.port);
    snprintf(log, sizeof log, "%s/redis.log", srv.dir);
    char *argv[] = {"redis-server",
                    "--bind",
                    "127.0.0.1",
                    "--port",
                    portstr,
                    "--dir",
                    srv.dir,
                    "--appendonly",
                    "yes",
                    "--appendfsync",
                    "always",
                    "--save",
                    "",
                    "--logfile",
                    log,
                    "--daemonize",
                    "no",
                    NULL};
    ts_server_spawn(&srv, argv);
    if (!ts_wait(server_answers, NULL, 20000))
        fail_msg("redis-server on port %d did not start (see %s)", srv.port, log);
}

/* ------------------------------------------------------------------------ */
/* What the handlers saw                                                    */

typedef struct idtab {
    char ids[SET_CAP][32];
    unsigned char used[SET_CAP];
} idtab;

static bool idtab_has(idtab *t, const char *id)
{
    size_t h = 5381;
    for (const char *p = id; *p; p++)
        h = h * 33 + (unsigned char)*p;
    for (size_t i = h & (SET_CAP - 1);; i = (i + 1) & (SET_CAP - 1)) {
        if (!t->used[i])
            return false;
        if (strcmp(t->ids[i], id) == 0)
            return true;
    }
}

/* Adds `id`; false when it was there already. */
static bool idtab_add(idtab *t, const char *id)
{
    size_t h = 5381;
    for (const char *p = id; *p; p++)
        h = h * 33 + (unsigned char)*p;
    for (size_t i = h & (SET_CAP - 1);; i = (i + 1) & (SET_CAP - 1)) {
        if (!t->used[i]) {
            t->used[i] = 1;
            snprintf(t->ids[i], sizeof t->ids[i], "%s", id);
            return true;
        }
        if (strcmp(t->ids[i], id) == 0)
            return false;
    }
}

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static idtab acked;                  /* entries whose XACK was confirmed */
static unsigned handled[N_MESSAGES]; /* deliveries per published message */
static unsigned seen_after_ack, acked_twice, handled_total, ack_failures, bad_bodies;
static _Atomic int published;

static fs_outcome on_entry(fs_message *m, void *user)
{
    (void)user;
    const fs_redis_message_info *info = fs_message_raw(m);
    int idx = -1;
    char body[32];
    size_t n = fs_message_body_len(m) < sizeof body - 1 ? fs_message_body_len(m) : sizeof body - 1;
    memcpy(body, fs_message_body(m), n);
    body[n] = 0;
    pthread_mutex_lock(&mu);
    if (!info || !info->entry_id || sscanf(body, "m%d", &idx) != 1 || idx < 0 ||
        idx >= N_MESSAGES) {
        bad_bodies++;
        pthread_mutex_unlock(&mu);
        return FS_OUTCOME_OK;
    }
    char entry[32];
    snprintf(entry, sizeof entry, "%s", info->entry_id);
    if (idtab_has(&acked, entry))
        seen_after_ack++;
    handled[idx]++;
    handled_total++;
    pthread_mutex_unlock(&mu);
    ts_sleep_ms(1); /* some work: entries are in flight when the server dies */

    int rc = fs_message_ack(m);
    pthread_mutex_lock(&mu);
    if (rc == FS_OK) {
        if (!idtab_add(&acked, entry))
            acked_twice++;
    } else {
        ack_failures++;
    }
    pthread_mutex_unlock(&mu);
    return FS_OUTCOME_OK;
}

static void *publisher(void *arg)
{
    fs_broker *b = arg;
    fs_redis_publish_options po = FS_REDIS_PUBLISH_OPTIONS_INIT;
    po.kind = FS_REDIS_STREAM;
    for (int i = 0; i < N_MESSAGES; i++) {
        char body[32];
        snprintf(body, sizeof body, "m%d", i);
        /* retried until the server takes it: a lost reply may publish it twice */
        while (ts_publish_with(b, "orders", body, &po) != FS_OK)
            ts_sleep_ms(20);
        atomic_store(&published, i + 1);
        if (i % 5 == 0)
            ts_sleep_ms(1); /* about the consumers' pace: entries are always in flight */
    }
    return NULL;
}

static bool all_handled(void *arg)
{
    (void)arg;
    pthread_mutex_lock(&mu);
    bool ok = true;
    for (int i = 0; i < N_MESSAGES && ok; i++)
        ok = handled[i] > 0;
    pthread_mutex_unlock(&mu);
    return ok;
}

static bool published_at_least(void *arg)
{
    return atomic_load(&published) >= *(int *)arg;
}

static bool handled_at_least(void *arg)
{
    pthread_mutex_lock(&mu);
    bool ok = handled_total >= *(unsigned *)arg;
    pthread_mutex_unlock(&mu);
    return ok;
}

static bool nothing_pending(void *arg)
{
    (void)arg;
    redisContext *c = rt_connect_port(srv.port);
    long long n = rt_pending(c, "orders", "g");
    redisFree(c);
    return n == 0;
}

static void survives_server_crashes(void **state)
{
    (void)state;
    char url[64];
    rt_url(url, sizeof url, srv.port);
    fs_broker *b;
    assert_int_equal(fs_broker_new(url, NULL, &b), FS_OK);
    fs_redis_subscriber_options ro = FS_REDIS_SUBSCRIBER_OPTIONS_INIT;
    ro.kind = FS_REDIS_STREAM;
    ro.group = "g";
    fs_subscriber_options so = FS_SUBSCRIBER_OPTIONS_INIT;
    so.broker_options = &ro;
    so.concurrency = 4;
    assert_int_equal(fs_subscribe(b, "orders", on_entry, NULL, &so, NULL), FS_OK);
    assert_int_equal(fs_broker_start(b), FS_OK);

    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, publisher, b), 0);
    for (int crash = 1; crash <= 2; crash++) {
        /* crash while messages flow and the consumers are busy (reconnected) */
        int at = crash * N_MESSAGES / 3;
        unsigned busy = (unsigned)at - 100;
        assert_true(ts_wait(published_at_least, &at, 60000));
        assert_true(ts_wait(handled_at_least, &busy, 60000));
        ts_server_kill(&srv);
        if (getenv("FS_TEST_LOG"))
            fprintf(stderr, "crash %d after %d published\n", crash, atomic_load(&published));
        ts_sleep_ms(300);
        server_start();
    }
    pthread_join(th, NULL);
    if (!ts_wait(all_handled, NULL, 60000)) {
        for (int i = 0; i < N_MESSAGES; i++)
            if (!handled[i])
                fail_msg("message m%d was never handled", i);
    }
    assert_true(ts_wait(nothing_pending, NULL, 60000));
    assert_int_equal(fs_broker_stop(b), FS_OK);

    pthread_mutex_lock(&mu);
    print_message("handled %u deliveries of %d messages; %u acks failed during the outages\n",
                  handled_total, N_MESSAGES, ack_failures);
    assert_int_equal(bad_bodies, 0);
    assert_int_equal(seen_after_ack, 0);
    assert_int_equal(acked_twice, 0);
    pthread_mutex_unlock(&mu);
    assert_true(nothing_pending(NULL));
    fs_broker_free(b);
}

static int setup(void **state)
{
    (void)state;
    if (ts_server_prepare(&srv, "redis-restart") != 0)
        return -1;
    server_start();
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    return ts_server_cleanup(&srv);
}

int main(void)
{
    fs_set_log_level(getenv("FS_TEST_LOG") ? FS_LOG_INFO : FS_LOG_OFF);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(survives_server_crashes),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
