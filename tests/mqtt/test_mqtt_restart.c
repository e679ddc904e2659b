/*
 * Faults, on a mosquitto of its OWN (the project's recipe, started through
 * scripts/services.sh on free ports with a private state directory):
 *   - a persistent session gets the QoS 1 messages published while its
 *     consumer was away;
 *   - mosquitto restarted mid-flow: the connections come back (backoff),
 *     subscriptions are renewed, and every publish that was confirmed is
 *     delivered (at least once).
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include "mqtt_test.h"
#include "support/server.h"

#include <fcntl.h>
#include <sys/wait.h>

/* The state directory and port of this test's mosquitto (the recipe starts it). */
static ts_server srv;
static char port_s[16], tls_port_s[16];

/* scripts/services.sh CMD mqtt, with this test's state dir and ports. */
static void services(const char *cmd)
{
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        setenv("FS_SERVICES_DIR", srv.dir, 1);
        setenv("FS_MQTT_PORT", port_s, 1);
        setenv("FS_MQTT_TLS_PORT", tls_port_s, 1);
        int devnull = open("/dev/null", O_WRONLY);
        dup2(devnull, 1);
        execl("/bin/bash", "bash", FS_TEST_SOURCE_DIR "/../scripts/services.sh", cmd, "mqtt",
              (char *)NULL);
        _exit(127);
    }
    int st = 0;
    waitpid(pid, &st, 0);
    if (!WIFEXITED(st) || WEXITSTATUS(st) != 0)
        fail_msg("scripts/services.sh %s mqtt failed (state in %s)", cmd, srv.dir);
}

static int setup(void **state)
{
    (void)state;
    if (ts_server_prepare(&srv, "mqtt-restart") != 0)
        return -1;
    snprintf(port_s, sizeof port_s, "%d", srv.port);
    snprintf(tls_port_s, sizeof tls_port_s, "%d", ts_free_port());
    setenv("FS_MQTT_PORT", port_s, 1); /* for the helpers of mqtt_test.h */
    services("start");
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    services("stop");
    return ts_server_cleanup(&srv);
}

static fs_broker *consumer(const char *id, mt_rec *rec, const char *topic)
{
    char url[256];
    snprintf(url, sizeof url, "mqtt://127.0.0.1:%s?client_id=%s&clean_start=false", port_s, id);
    fs_broker *b = NULL;
    assert_int_equal(fs_broker_new(url, NULL, &b), FS_OK);
    mt_subscribe(b, topic, rec, 1, 1, NULL);
    return b;
}

static int publish1(fs_broker *b, const char *topic, int i)
{
    char body[16];
    snprintf(body, sizeof body, "%d", i);
    return mt_publish(b, topic, body, 1, false);
}

static void persistent_session_gets_what_came_while_away(void **state)
{
    (void)state;
    char topic[128], id[64];
    mt_topic(topic, sizeof topic, "away");
    snprintf(id, sizeof id, "fsaway-%ld", (long)getpid());
    mt_rec rec;
    mt_rec_init(&rec);
    fs_broker *c = consumer(id, &rec, topic);
    assert_int_equal(fs_broker_start(c), FS_OK);
    assert_int_equal(fs_broker_stop(c), FS_OK); /* away: the session stays on the server */
    fs_broker *p = mt_broker(NULL);
    assert_int_equal(fs_broker_connect(p), FS_OK);
    for (int i = 0; i < 50; i++)
        assert_int_equal(publish1(p, topic, i), FS_OK);
    assert_int_equal(fs_broker_start(c), FS_OK);
    assert_int_equal(mt_rec_wait(&rec, 50, 10000), 50);
    fs_broker_free(c);
    fs_broker_free(p);
}

static void server_restarted_mid_flow(void **state)
{
    (void)state;
    char topic[128], id[64];
    mt_topic(topic, sizeof topic, "restart");
    snprintf(id, sizeof id, "fsrestart-%ld", (long)getpid());
    mt_rec rec, fresh;
    mt_rec_init(&rec);
    mt_rec_init(&fresh);
    fs_broker *c = consumer(id, &rec, topic);
    assert_int_equal(fs_broker_start(c), FS_OK);
    /* A clean session: after the restart the server knows nothing of it, so it must resubscribe. */
    fs_broker *f = mt_broker(NULL);
    char fresh_topic[160];
    snprintf(fresh_topic, sizeof fresh_topic, "%s/fresh", topic);
    assert_int_equal(fs_subscribe(f, fresh_topic, mt_rec_handler, &fresh, NULL, NULL), FS_OK);
    assert_int_equal(fs_broker_start(f), FS_OK);
    fs_broker *p = mt_broker(NULL);
    assert_int_equal(fs_broker_connect(p), FS_OK);
    bool confirmed[120] = {0};
    int ok = 0;
    for (int i = 0; i < 120; i++) {
        if (i == 40) {
            services("stop"); /* SIGTERM: mosquitto saves its database */
            services("start");
        }
        if (publish1(p, topic, i) == FS_OK) {
            confirmed[i] = true;
            ok++;
        } else {
            ts_sleep_ms(50); /* down: the publisher's connection comes back with backoff */
        }
    }
    assert_true(ok >= 80);
    for (int i = 0; i < 400; i++) { /* every confirmed message arrives */
        int missing = 0;
        pthread_mutex_lock(&rec.mu);
        bool got[120] = {0};
        for (int k = 0; k < rec.n; k++)
            got[atoi(rec.got[k].body)] = true;
        pthread_mutex_unlock(&rec.mu);
        for (int k = 0; k < 120; k++)
            missing += confirmed[k] && !got[k];
        if (!missing)
            break;
        if (i == 399)
            fail_msg("%d confirmed messages never arrived", missing);
        ts_sleep_ms(50);
    }
    assert_int_equal(fs_broker_ping(c, 1000), FS_OK);
    /* The clean-session subscriber came back and subscribed again (QoS 0: retry until one lands).
     */
    for (int i = 0; i < 300 && mt_rec_count(&fresh) == 0; i++) {
        assert_int_equal(fs_publish_bytes(p, fresh_topic, "again", 5), FS_OK);
        ts_sleep_ms(20);
    }
    assert_true(mt_rec_count(&fresh) > 0);
    fs_broker_free(f);
    fs_broker_free(c);
    fs_broker_free(p);
}

int main(void)
{
    fs_set_log_level(getenv("FS_TEST_LOG") ? FS_LOG_DEBUG : FS_LOG_OFF);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(persistent_session_gets_what_came_while_away),
        cmocka_unit_test(server_restarted_mid_flow),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
