/*
 * At least once across failures, on a nats-server of its own (file storage,
 * a free port of tests/support/server.h):
 *   - the server is killed with SIGKILL mid-flow and restarted on the same
 *     storage, while a publisher retries (same Nats-Msg-Id) until PubAck and
 *     a durable pull consumer handles: every message handled at least once;
 *   - a consumer process is killed with SIGKILL mid-flow and another takes
 *     over its durable consumer: every message handled at least once.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "nats_test.h"
#include "support/server.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>

static ts_server srv; /* our nats-server: its storage directory, port and pid */
static int port;      /* its port (the consumer child is told it) */

/* nats.c's reconnection, as the project's log handler hears it. */
static _Atomic int logged_down, logged_up;
static void on_log(fs_log_level level, const char *component, const char *message, void *user)
{
    (void)level;
    (void)user;
    if (strcmp(component, "nats") != 0)
        return;
    if (strstr(message, "disconnected from"))
        atomic_fetch_add(&logged_down, 1);
    if (strstr(message, "reconnected to"))
        atomic_fetch_add(&logged_up, 1);
}
static bool server_up(void *arg)
{
    (void)arg;
    char url[64];
    nt_url_port(url, sizeof url, port);
    natsConnection *nc = NULL;
    natsOptions *o = NULL;
    natsOptions_Create(&o);
    natsOptions_SetURL(o, url);
    natsOptions_SetTimeout(o, 200);
    natsOptions_SetAllowReconnect(o, false);
    bool ok = natsConnection_Connect(&nc, o) == NATS_OK;
    jsCtx *js = NULL;
    jsAccountInfo *ai = NULL;
    if (ok) { /* JetStream answers too */
        ok = natsConnection_JetStream(&js, nc, NULL) == NATS_OK &&
             js_GetAccountInfo(&ai, js, NULL, NULL) == NATS_OK;
        jsAccountInfo_Destroy(ai);
        jsCtx_Destroy(js);
    }
    natsConnection_Destroy(nc);
    natsOptions_Destroy(o);
    return ok;
}

static void server_start(void)
{
    char p[16], log[300];
    snprintf(p, sizeof p, "%d", port);
    snprintf(log, sizeof log, "%s/nats.log", srv.dir);
    char *argv[] = {"nats-server", "-a",    "127.0.0.1", "-p", p,   "-js",
                    "-sd",         srv.dir, "-l",        log,  NULL};
    ts_server_spawn(&srv, argv);
    if (!ts_wait(server_up, NULL, 20000))
        fail_msg("nats-server on port %d did not start (see %s)", port, log);
}

static void server_kill(void)
{
    ts_server_kill(&srv);
}

static int setup(void **state)
{
    (void)state;
    if (ts_server_prepare(&srv, "nats-restart") != 0)
        return -1;
    srv.quiet = true;
    port = srv.port;
    atexit(server_kill); /* whatever way the run ends, the server goes with it */
    server_start();
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    return ts_server_cleanup(&srv);
}

static fs_broker *own_broker(void)
{
    char url[64];
    nt_url_port(url, sizeof url, port);
    fs_nats_options o = FS_NATS_OPTIONS_INIT;
    o.reconnect_wait_ms = 100;
    fs_broker *b = NULL;
    if (fs_nats_broker_new(url, &o, &b) != FS_OK)
        fail_msg("broker: %s", fs_last_error());
    return b;
}

/* ------------------------------------------------------------------------ */
/* Handled ids                                                              */

enum { N = 1500 };
static _Atomic int handled[N];

static fs_outcome count_id(fs_message *m, void *user)
{
    (void)user;
    char buf[16];
    size_t n = fs_message_body_len(m) < 15 ? fs_message_body_len(m) : 15;
    memcpy(buf, fs_message_body(m), n);
    buf[n] = '\0';
    int id = atoi(buf);
    if (id >= 0 && id < N)
        atomic_fetch_add(&handled[id], 1);
    return FS_OUTCOME_OK;
}

static fs_outcome count_core(fs_message *m, void *user)
{
    (void)m;
    atomic_fetch_add((_Atomic int *)user, 1);
    return FS_OUTCOME_OK;
}

static int missing(int n)
{
    int miss = 0;
    for (int i = 0; i < n; i++)
        miss += atomic_load(&handled[i]) == 0;
    return miss;
}

static bool none_missing(void *n)
{
    return missing(*(int *)n) == 0;
}

static void wait_all(int n, int ms)
{
    if (!ts_wait(none_missing, &n, ms))
        fail_msg("%d of %d messages never handled", missing(n), n);
}

/* Publish ids [from, to) with PubAck, retrying each (same Nats-Msg-Id) until acknowledged. */
typedef struct pub_job {
    fs_broker *b;
    const char *stream, *subject;
    int from, to;
    _Atomic int done;
    int retries;
} pub_job;

static void *publisher(void *arg)
{
    pub_job *j = arg;
    fs_nats_publish_options po = FS_NATS_PUBLISH_OPTIONS_INIT;
    po.stream = j->stream;
    po.timeout_ms = 1000;
    for (int i = j->from; i < j->to; i++) {
        char body[16], id[32];
        snprintf(body, sizeof body, "%d", i);
        snprintf(id, sizeof id, "m-%d", i);
        fs_envelope env;
        ts_envelope(&env, body, &po);
        env.message_id = id;
        while (fs_publish(j->b, j->subject, &env) != FS_OK) {
            j->retries++;
            ts_sleep_ms(50);
        }
        atomic_store(&j->done, i + 1 - j->from);
    }
    return NULL;
}

static void declare(fs_broker *b, const char *stream, const char *subjects)
{
    const char *s[] = {subjects};
    fs_nats_stream_config sc = FS_NATS_STREAM_CONFIG_INIT;
    sc.name = stream;
    sc.subjects = s;
    sc.subject_count = 1;
    sc.storage = FS_NATS_STORAGE_FILE;
    if (fs_nats_declare_stream(b, &sc) != FS_OK)
        fail_msg("declare: %s", fs_last_error());
}

/* Subscribe `fn` to `subject` through the durable pull consumer `durable` of `stream`. */
static int subscribe_durable(fs_broker *b, const char *subject, const char *stream,
                             const char *durable, int ack_wait_ms, unsigned concurrency,
                             fs_handler_fn fn, void *user)
{
    fs_nats_subscriber_options no = FS_NATS_SUBSCRIBER_OPTIONS_INIT;
    no.stream = stream;
    no.durable = durable;
    no.ack_wait_ms = ack_wait_ms;
    fs_subscriber_options so = FS_SUBSCRIBER_OPTIONS_INIT;
    so.broker_options = &no;
    so.concurrency = concurrency;
    return fs_subscribe(b, subject, fn, user, &so, NULL);
}

static void test_server_killed(void **state)
{
    (void)state;
    for (int i = 0; i < N; i++)
        atomic_store(&handled[i], 0);
    fs_broker *b = own_broker();
    declare(b, "KILLS", "kills.>");
    assert_int_equal(
        subscribe_durable(b, "kills.orders", "KILLS", "survivor", 2000, 2, count_id, NULL), FS_OK);
    _Atomic int core_got = 0; /* core NATS on the same connection */
    fs_subscriber *core = NULL;
    assert_int_equal(fs_subscribe(b, "kills.core", count_core, (void *)&core_got, NULL, &core),
                     FS_OK);
    assert_int_equal(fs_broker_start(b), FS_OK);
    pub_job j = {.b = b, .stream = "KILLS", .subject = "kills.orders", .from = 0, .to = N};
    pthread_t t;
    pthread_create(&t, NULL, publisher, &j);
    while (atomic_load(&j.done) < N / 3)
        ts_sleep_ms(2);
    server_kill(); /* mid-flow */
    ts_sleep_ms(300);
    /* While the server is away, core publishes wait in nats.c's reconnect buffer. */
    for (int i = 0; i < 10; i++)
        assert_int_equal(fs_publish_bytes(b, "kills.core", "c", 1), FS_OK);
    server_start();
    pthread_join(t, NULL);
    wait_all(N, 30000);
    assert_int_equal(fs_subscriber_wait_handled(core, 10, 10000), FS_OK); /* delivered after */
    int dup = 0;
    for (int i = 0; i < N; i++)
        dup += atomic_load(&handled[i]) > 1;
    print_message("server killed at %d/%d: publisher retried %d times, %d handled more than once\n",
                  N / 3, N, j.retries, dup);
    assert_true(atomic_load(&logged_down) >= 1); /* through fs_set_log_handler */
    assert_true(atomic_load(&logged_up) >= 1);
    fs_broker_free(b);
}

/* ------------------------------------------------------------------------ */
/* A consumer process killed mid-flow                                       */

static const char *child_file;

static fs_outcome append_id(fs_message *m, void *user)
{
    int fd = *(int *)user;
    char line[24];
    int n = snprintf(line, sizeof line, "%.*s\n", (int)fs_message_body_len(m),
                     (const char *)fs_message_body(m));
    if (write(fd, line, (size_t)n) != n)
        return FS_OUTCOME_ERROR;
    ts_sleep_ms(2); /* slow enough to be killed half-way */
    return FS_OUTCOME_OK;
}

/* The child: consume "hand.orders" with the durable "hand" until killed. */
static int child_main(void)
{
    int fd = open(child_file, O_WRONLY | O_CREAT | O_APPEND, 0600);
    fs_broker *b = own_broker();
    if (subscribe_durable(b, "hand.orders", "HANDS", "hand", 1000, 1, append_id, &fd) ||
        fs_broker_start(b))
        return 2;
    for (;;)
        ts_sleep_ms(1000);
}

static int lines_in(const char *path)
{
    FILE *f = fopen(path, "r");
    if (!f)
        return 0;
    int n = 0;
    char line[32];
    while (fgets(line, sizeof line, f)) {
        int id = atoi(line);
        if (id >= 0 && id < N)
            atomic_fetch_add(&handled[id], 1);
        n++;
    }
    fclose(f);
    return n;
}

static void test_consumer_killed(void **state)
{
    (void)state;
    enum { M = 600 };
    char file[300];
    snprintf(file, sizeof file, "%s/handled.txt", srv.dir);
    fs_broker *b = own_broker();
    declare(b, "HANDS", "hand.>");
    pub_job j = {.b = b, .stream = "HANDS", .subject = "hand.orders", .from = 0, .to = M};
    publisher(&j);
    pid_t child = fork();
    if (child == 0) {
        char p[16];
        snprintf(p, sizeof p, "%d", port);
        execl("/proc/self/exe", "test_nats_restart", "--consume", p, file, (char *)NULL);
        _exit(127);
    }
    /* Kill it once it handled about a third. */
    for (int i = 0; i < 1000; i++) {
        struct stat st;
        if (stat(file, &st) == 0 && st.st_size > (M / 3) * 4)
            break;
        ts_sleep_ms(10);
    }
    kill(child, SIGKILL);
    waitpid(child, NULL, 0);
    for (int i = 0; i < N; i++)
        atomic_store(&handled[i], 0);
    int by_child = lines_in(file);
    assert_true(by_child > 0 && by_child < M);
    /* Another process (here: this one) takes over the durable consumer. */
    assert_int_equal(subscribe_durable(b, "hand.orders", "HANDS", "hand", 1000, 1, count_id, NULL),
                     FS_OK);
    assert_int_equal(fs_broker_start(b), FS_OK);
    wait_all(M, 30000);
    print_message("consumer killed after %d/%d handled; the rest handled by its successor\n",
                  by_child, M);
    fs_broker_free(b);
}

int main(int argc, char **argv)
{
    if (argc == 4 && strcmp(argv[1], "--consume") == 0) {
        port = atoi(argv[2]);
        child_file = argv[3];
        fs_set_log_level(FS_LOG_OFF);
        return child_main();
    }
    fs_set_log_level(FS_LOG_INFO);
    fs_set_log_handler(on_log, NULL);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_server_killed),
        cmocka_unit_test(test_consumer_killed),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
