/*
 * Which MQTT client library can give at-least-once on QoS 1?
 *
 * A consumer process subscribes at QoS 1 with a persistent session
 * (clean session off), receives one message and is killed with SIGKILL
 * while its handler runs. The test then connects with the same client id:
 * if the PUBACK had not gone out, mosquitto delivers the message again.
 *
 * Cases (what each one shows):
 *   mosquitto_blocking   libmosquitto 2.0.11, threaded loop, the handler runs
 *                        inside on_message: redelivered. handle__publish
 *                        queues the PUBACK before calling on_message, but in
 *                        threaded mode only the loop thread writes the queue,
 *                        after on_message returned.
 *   mosquitto_handoff    the same library, on_message hands the message to a
 *                        worker thread and returns: the PUBACK goes out while
 *                        the handler still runs: LOST.
 *   paho_sync            Paho C 1.3.12 MQTTClient: the PUBACK is sent as the
 *                        publish is read, before the callback runs: LOST.
 *   paho_async_blocking  Paho C MQTTAsync, handler inside messageArrived:
 *                        redelivered (the callback runs on the receive thread
 *                        before the PUBACK is sent), but that callback holds
 *                        Paho's process-wide mutex on its single receive
 *                        thread: a publish on ANOTHER Paho client from the
 *                        handler cannot complete (checked here), and every
 *                        other client of the process stalls meanwhile.
 *
 * So the adapter uses libmosquitto with the handler's completion awaited
 * inside on_message (one connection and loop thread per subscription,
 * publishers on their own connection).
 *
 * Runs against the mosquitto of scripts/services.sh (FS_MQTT_PORT).
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#ifdef FS_PAHO_ASYNC /* Paho's two libraries define the same internals: one per executable */
#include <MQTTAsync.h>
#else
#include <MQTTClient.h>
#endif
#include <errno.h>
#include <mosquitto.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static int port;
static int report_fd = -1; /* child -> parent */

static void report(const char *s)
{
    if (write(report_fd, s, strlen(s)) < 0)
        _exit(3);
}

static void hang(void)
{
    for (;;)
        pause();
}

/* ------------------------------------------------------------------------ */
/* Consumers (run in the child)                                             */

static bool handoff;
static pthread_mutex_t ho_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t ho_cv = PTHREAD_COND_INITIALIZER;
static bool ho_have;

static void *ho_worker(void *arg)
{
    (void)arg;
    pthread_mutex_lock(&ho_mu);
    while (!ho_have)
        pthread_cond_wait(&ho_cv, &ho_mu);
    pthread_mutex_unlock(&ho_mu);
    report("G"); /* the handler runs... and never finishes */
    hang();
    return NULL;
}

static void mq_on_subscribe(struct mosquitto *m, void *u, int mid, int n, const int *q)
{
    (void)m, (void)u, (void)mid, (void)n, (void)q;
    report("R");
}

static void mq_on_message(struct mosquitto *m, void *u, const struct mosquitto_message *msg)
{
    (void)m, (void)u, (void)msg;
    if (!handoff) {
        report("G");
        hang(); /* the handler, inside the callback */
    }
    pthread_mutex_lock(&ho_mu);
    ho_have = true;
    pthread_cond_signal(&ho_cv);
    pthread_mutex_unlock(&ho_mu);
}

static void run_mosquitto(const char *id, const char *topic)
{
    pthread_t t;
    if (handoff)
        pthread_create(&t, NULL, ho_worker, NULL);
    mosquitto_lib_init();
    struct mosquitto *m = mosquitto_new(id, false, NULL);
    mosquitto_subscribe_callback_set(m, mq_on_subscribe);
    mosquitto_message_callback_set(m, mq_on_message);
    if (mosquitto_connect(m, "127.0.0.1", port, 30) != MOSQ_ERR_SUCCESS)
        _exit(2);
    mosquitto_subscribe(m, NULL, topic, 1);
    mosquitto_loop_start(m);
    hang();
}

#ifndef FS_PAHO_ASYNC
static int ps_arrived(void *ctx, char *topic, int len, MQTTClient_message *msg)
{
    (void)ctx, (void)topic, (void)len, (void)msg;
    report("G");
    hang();
    return 1;
}

static void ps_lost(void *ctx, char *cause)
{
    (void)ctx, (void)cause;
}

static void run_paho_sync(const char *id, const char *topic)
{
    char uri[64];
    snprintf(uri, sizeof uri, "tcp://127.0.0.1:%d", port);
    MQTTClient c;
    MQTTClient_create(&c, uri, id, MQTTCLIENT_PERSISTENCE_NONE, NULL);
    MQTTClient_setCallbacks(c, NULL, ps_lost, ps_arrived, NULL);
    MQTTClient_connectOptions o = MQTTClient_connectOptions_initializer;
    o.cleansession = 0;
    if (MQTTClient_connect(c, &o) != MQTTCLIENT_SUCCESS)
        _exit(2);
    if (MQTTClient_subscribe(c, topic, 1) != MQTTCLIENT_SUCCESS)
        _exit(2);
    report("R");
    hang();
}

#else
/* Paho async: a second client, publishing from inside the handler. */
static MQTTAsync pa_other;
static char pa_topic[128];
static atomic_int pa_stage;

static void pa_subscribed(void *ctx, MQTTAsync_successData *d)
{
    (void)ctx, (void)d;
    atomic_store(&pa_stage, 2);
}

static void pa_connected(void *ctx, MQTTAsync_successData *d)
{
    (void)d;
    MQTTAsync c = ctx;
    if (c == pa_other) {
        return;
    }
    MQTTAsync_responseOptions r = MQTTAsync_responseOptions_initializer;
    r.onSuccess = pa_subscribed;
    r.context = c;
    MQTTAsync_subscribe(c, pa_topic, 1, &r);
}

static void pa_failed(void *ctx, MQTTAsync_failureData *d)
{
    (void)ctx, (void)d;
    _exit(2);
}

static int pa_arrived(void *ctx, char *topic, int len, MQTTAsync_message *msg)
{
    (void)ctx, (void)topic, (void)len, (void)msg;
    report("G");
    /* A handler that publishes (QoS 1) through another client and waits for it. */
    MQTTAsync_message out = MQTTAsync_message_initializer;
    out.payload = "x";
    out.payloadlen = 1;
    out.qos = 1;
    MQTTAsync_responseOptions r = MQTTAsync_responseOptions_initializer;
    int rc = MQTTAsync_sendMessage(pa_other, "fs/ack/other", &out, &r);
    if (rc == MQTTASYNC_SUCCESS)
        rc = MQTTAsync_waitForCompletion(pa_other, r.token, 1500);
    report(rc == MQTTASYNC_SUCCESS ? "P" : "B"); /* published / blocked */
    hang();
    return 1;
}

static void run_paho_async(const char *id, const char *topic)
{
    char uri[64], other_id[96];
    snprintf(uri, sizeof uri, "tcp://127.0.0.1:%d", port);
    snprintf(other_id, sizeof other_id, "%s-pub", id);
    snprintf(pa_topic, sizeof pa_topic, "%s", topic);
    MQTTAsync c;
    MQTTAsync_create(&pa_other, uri, other_id, MQTTCLIENT_PERSISTENCE_NONE, NULL);
    MQTTAsync_create(&c, uri, id, MQTTCLIENT_PERSISTENCE_NONE, NULL);
    MQTTAsync_setCallbacks(c, c, NULL, pa_arrived, NULL);
    MQTTAsync_connectOptions o = MQTTAsync_connectOptions_initializer;
    o.onSuccess = pa_connected;
    o.onFailure = pa_failed;
    o.context = pa_other;
    MQTTAsync_connect(pa_other, &o);
    o.cleansession = 0;
    o.context = c;
    MQTTAsync_connect(c, &o);
    for (int i = 0; i < 500 && atomic_load(&pa_stage) < 2; i++)
        usleep(10000);
    if (atomic_load(&pa_stage) < 2)
        _exit(2);
    report("R");
    hang();
}
#endif

/* ------------------------------------------------------------------------ */
/* The parent: publish, kill mid-handler, reconnect                         */

typedef struct drain {
    atomic_int got, connected;
} drain;

static void dr_on_connect(struct mosquitto *m, void *u, int rc)
{
    (void)m;
    atomic_store(&((drain *)u)->connected, rc == 0 ? 1 : -1);
}

static void dr_on_message(struct mosquitto *m, void *u, const struct mosquitto_message *msg)
{
    (void)m, (void)msg;
    atomic_fetch_add(&((drain *)u)->got, 1);
}

static void wait_until(atomic_int *v, int want, int ms)
{
    for (int i = 0; i < ms / 10 && atomic_load(v) < want; i++)
        usleep(10000);
}

/* Connect as `id` (clean: drop the session afterwards), count what arrives within ms. */
static int reconnect_count(const char *id, bool clean, int ms)
{
    drain d = {0};
    struct mosquitto *m = mosquitto_new(id, clean, &d);
    mosquitto_connect_callback_set(m, dr_on_connect);
    mosquitto_message_callback_set(m, dr_on_message);
    assert_int_equal(mosquitto_connect(m, "127.0.0.1", port, 30), MOSQ_ERR_SUCCESS);
    mosquitto_loop_start(m);
    wait_until(&d.connected, 1, 3000);
    assert_int_equal(atomic_load(&d.connected), 1);
    wait_until(&d.got, 1, ms);
    mosquitto_disconnect(m);
    mosquitto_loop_stop(m, false);
    mosquitto_destroy(m);
    return atomic_load(&d.got);
}

static void publish_one(const char *topic)
{
    struct mosquitto *m = mosquitto_new(NULL, true, NULL);
    assert_int_equal(mosquitto_connect(m, "127.0.0.1", port, 30), MOSQ_ERR_SUCCESS);
    mosquitto_loop_start(m);
    assert_int_equal(mosquitto_publish(m, NULL, topic, 3, "one", 1, false), MOSQ_ERR_SUCCESS);
    usleep(100000);
    mosquitto_disconnect(m);
    mosquitto_loop_stop(m, false);
    mosquitto_destroy(m);
}

/* Read one report byte from the child, waiting up to ms. */
static int read_report(int fd, int ms)
{
    struct pollfd p = {fd, POLLIN, 0};
    if (poll(&p, 1, ms) != 1)
        return -1;
    char c;
    return read(fd, &c, 1) == 1 ? c : -1;
}

/* Run consumer `mode`, kill it mid-handler; the number of deliveries after restart. */
static int kill_mid_handler(const char *mode, void (*run)(const char *, const char *),
                            int *extra_report)
{
    char id[96], topic[128];
    snprintf(id, sizeof id, "fsack-%ld-%s", (long)getpid(), mode);
    snprintf(topic, sizeof topic, "fs/ack/%ld/%s", (long)getpid(), mode);
    int fds[2];
    assert_int_equal(pipe(fds), 0);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        close(fds[0]);
        report_fd = fds[1];
        run(id, topic);
        _exit(0);
    }
    close(fds[1]);
    assert_int_equal(read_report(fds[0], 10000), 'R');
    publish_one(topic);
    assert_int_equal(read_report(fds[0], 10000), 'G');
    int extra = extra_report ? read_report(fds[0], 4000) : 0;
    usleep(300000); /* the handler runs; whatever the library would send, it sent */
    kill(pid, SIGKILL);
    waitpid(pid, NULL, 0);
    close(fds[0]);
    if (extra_report)
        *extra_report = extra;
    int again = reconnect_count(id, false, 2000);
    reconnect_count(id, true, 0); /* drop the session */
    return again;
}

#ifndef FS_PAHO_ASYNC
static void mosquitto_blocking(void **state)
{
    (void)state;
    handoff = false;
    assert_int_equal(kill_mid_handler("mosq-block", run_mosquitto, NULL), 1);
}

static void mosquitto_handoff(void **state)
{
    (void)state;
    handoff = true;
    assert_int_equal(kill_mid_handler("mosq-handoff", run_mosquitto, NULL), 0);
}

static void paho_sync(void **state)
{
    (void)state;
    assert_int_equal(kill_mid_handler("paho-sync", run_paho_sync, NULL), 0);
}

#else
static void paho_async_blocking(void **state)
{
    (void)state;
    int published = 0;
    assert_int_equal(kill_mid_handler("paho-async", run_paho_async, &published), 1);
    assert_int_equal(published, 'B'); /* another client's publish stalls behind the handler */
}

#endif

int main(void)
{
    const char *p = getenv("FS_MQTT_PORT");
    port = p && *p ? atoi(p) : 11883;
    mosquitto_lib_init();
    const struct CMUnitTest tests[] = {
#ifndef FS_PAHO_ASYNC
        cmocka_unit_test(mosquitto_blocking),
        cmocka_unit_test(mosquitto_handoff),
        cmocka_unit_test(paho_sync),
#else
        cmocka_unit_test(paho_async_blocking),
#endif
    };
#ifdef FS_PAHO_ASYNC
    (void)run_mosquitto; /* the libmosquitto cases run in the other executable */
#endif
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    mosquitto_lib_cleanup();
    return rc;
}
