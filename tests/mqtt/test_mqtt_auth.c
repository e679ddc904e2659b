/*
 * Credentials, on a mosquitto of its own (free port, a password file made
 * with mosquitto_passwd, no anonymous clients): the right user and password
 * (percent-encoded in the URL) connect, publish and consume; a wrong
 * password or none is refused with the server's reason, as FS_EBROKER.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include "mqtt_test.h"
#include "support/server.h"

/* This test's mosquitto: its state directory (password file, configuration) and port. */
static ts_server srv;

static int setup(void **state)
{
    (void)state;
    if (ts_server_prepare(&srv, "mqtt-auth") != 0)
        return -1;
    char cmd[1024], conf[300];
    snprintf(cmd, sizeof cmd, "mosquitto_passwd -c -b '%s/passwd' svc 'p@ss w0rd' >/dev/null 2>&1",
             srv.dir);
    if (system(cmd) != 0)
        fail_msg("mosquitto_passwd failed");
    snprintf(conf, sizeof conf, "%s/mosquitto.conf", srv.dir);
    FILE *f = fopen(conf, "w");
    assert_non_null(f);
    fprintf(f,
            "user root\nlistener %d 127.0.0.1\nallow_anonymous false\npassword_file %s/passwd\n"
            "persistence false\nlog_dest none\n",
            srv.port, srv.dir);
    fclose(f);
    char *argv[] = {"mosquitto", "-c", conf, NULL};
    ts_server_spawn(&srv, argv);
    for (int i = 0; i < 200; i++) {
        if (port_answers(srv.port))
            return 0;
        ts_sleep_ms(25);
    }
    fail_msg("mosquitto with a password file did not start");
    return -1;
}

static int teardown(void **state)
{
    (void)state;
    return ts_server_cleanup(&srv);
}

static fs_broker *with_url(const char *userinfo)
{
    char url[256];
    snprintf(url, sizeof url, "mqtt://%s127.0.0.1:%d", userinfo, srv.port);
    fs_broker *b = NULL;
    assert_int_equal(fs_broker_new(url, NULL, &b), FS_OK);
    return b;
}

static void right_credentials(void **state)
{
    (void)state;
    char t[128];
    mt_topic(t, sizeof t, "auth");
    fs_broker *b = with_url("svc:p%40ss%20w0rd@"); /* percent-decoded: "p@ss w0rd" */
    mt_rec r;
    mt_rec_init(&r);
    mt_subscribe(b, t, &r, 1, 1, NULL);
    assert_int_equal(fs_broker_start(b), FS_OK); /* the subscription's connection too */
    assert_int_equal(fs_publish_bytes(b, t, "in", 2), FS_OK);
    assert_int_equal(mt_rec_wait(&r, 1, 5000), 1);
    fs_broker_free(b);

    /* The options win over the URL. */
    char url[128];
    snprintf(url, sizeof url, "mqtt://nobody:nothing@127.0.0.1:%d", srv.port);
    fs_mqtt_options o = FS_MQTT_OPTIONS_INIT;
    o.username = "svc";
    o.password = "p@ss w0rd";
    assert_int_equal(fs_mqtt_broker_new(url, &o, &b), FS_OK);
    assert_int_equal(fs_broker_connect(b), FS_OK);
    fs_broker_free(b);
}

static void refused(void **state)
{
    (void)state;
    fs_broker *b = with_url("svc:wrong@");
    assert_int_equal(fs_broker_connect(b), FS_EBROKER);
    assert_non_null(strstr(fs_last_error(), "refused"));
    fs_broker_free(b);
    b = with_url("");
    assert_int_equal(fs_broker_connect(b), FS_EBROKER);
    fs_broker_free(b);
}

int main(void)
{
    fs_set_log_level(getenv("FS_TEST_LOG") ? FS_LOG_DEBUG : FS_LOG_OFF);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(right_credentials),
        cmocka_unit_test(refused),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
