/*
 * Faults, on a rabbitmq-server of its own (scripts/services.sh with a
 * private state dir, on the configured ports + 10, so that restarting it
 * disturbs no other test): a consumer process killed with SIGKILL
 * mid-flow, and the server stopped and started again mid-flow. Every
 * message must be handled at least once; nothing lost.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "rabbitmq_test.h"

#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>

#define N 300

static char state_dir[256];
static char env_prefix[1024];
static int port;

static int services(const char *cmd)
{
    char line[2048];
    snprintf(line, sizeof line, "%s %s/../scripts/services.sh %s rabbitmq >>%s/services.log 2>&1",
             env_prefix, FS_TEST_SOURCE_DIR, cmd, state_dir);
    return system(line);
}

static int group_setup(void **state)
{
    (void)state;
    int base = qt_port() + 10, tls = qt_tls_port() + 10;
    const char *d = getenv("FS_RABBITMQ_DIST_PORT"), *e = getenv("FS_RABBITMQ_EPMD_PORT");
    int dist = (d && *d ? atoi(d) : 26673) + 10, epmd = (e && *e ? atoi(e) : 24369) + 10;
    port = base;
    snprintf(state_dir, sizeof state_dir, "%s/rabbitmq-faults-%d", FS_TEST_BINARY_DIR, base);
    mkdir(state_dir, 0755);
    snprintf(env_prefix, sizeof env_prefix,
             "FS_SERVICES_DIR=%s FS_RABBITMQ_PORT=%d FS_RABBITMQ_TLS_PORT=%d "
             "FS_RABBITMQ_DIST_PORT=%d FS_RABBITMQ_EPMD_PORT=%d",
             state_dir, base, tls, dist, epmd);
    /* Retried once: a server of a previous run may still be stopping. */
    if (services("start") != 0 && (services("stop"), services("start")) != 0) {
        fprintf(stderr, "cannot start a rabbitmq-server of our own, see %s\n", state_dir);
        return -1;
    }
    return 0;
}

static int group_teardown(void **state)
{
    (void)state;
    services("stop");
    return 0;
}

static void url_of(char *buf, size_t n)
{
    snprintf(buf, n, "amqp://guest:guest@127.0.0.1:%d/?heartbeat=2", port);
}

static fs_rabbitmq_subscriber_options durable_queue(void)
{
    fs_rabbitmq_subscriber_options ro = FS_RABBITMQ_SUBSCRIBER_OPTIONS_INIT;
    ro.queue.durable = true;
    return ro;
}

static void publish_all(fs_broker *b, const char *q, int from, int to)
{
    fs_rabbitmq_publish_options po = FS_RABBITMQ_PUBLISH_OPTIONS_INIT;
    po.persist = true;
    for (int i = from; i < to; i++) {
        char body[16];
        int n = snprintf(body, sizeof body, "%d", i);
        fs_envelope env = FS_ENVELOPE_INIT;
        env.body = body;
        env.body_len = (size_t)n;
        env.broker_options = &po;
        int tries = 0;
        while (fs_publish(b, q, &env) != FS_OK) { /* at least once: retry until confirmed */
            if (++tries > 600)
                fail_msg("publish %d never confirmed: %s", i, fs_last_error());
            ts_sleep_ms(100);
        }
    }
}

/* ------------------------------------------------------------------------ */
/* The consumer process                                                     */

static int out_fd = -1;

static fs_outcome append_handler(fs_message *m, void *user)
{
    (void)user;
    char line[32];
    int n = snprintf(line, sizeof line, "%.*s\n", (int)fs_message_body_len(m),
                     (const char *)fs_message_body(m));
    ssize_t w = write(out_fd, line, (size_t)n);
    (void)w;
    ts_sleep_ms(2);
    return FS_OUTCOME_OK;
}

static int consumer_main(const char *url, const char *queue, const char *file)
{
    out_fd = open(file, O_WRONLY | O_APPEND | O_CREAT, 0644);
    fs_broker *b;
    if (out_fd < 0 || fs_broker_new(url, NULL, &b))
        return 2;
    fs_rabbitmq_subscriber_options ro = durable_queue();
    fs_subscriber_options so = FS_SUBSCRIBER_OPTIONS_INIT;
    so.concurrency = 2;
    so.broker_options = &ro;
    /* SIGTERM: stop cleanly (every handled message acked); SIGKILL: die mid-flow */
    sigset_t term;
    sigemptyset(&term);
    sigaddset(&term, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &term, NULL); /* before the broker's threads exist */
    if (fs_subscribe(b, queue, append_handler, NULL, &so, NULL) || fs_broker_start(b))
        return 3;
    int sig = 0;
    sigwait(&term, &sig);
    fs_broker_stop(b);
    fs_broker_free(b);
    return 0;
}

static pid_t spawn_consumer(const char *url, const char *queue, const char *file)
{
    pid_t pid = fork();
    if (pid == 0) {
        execl("/proc/self/exe", "test_rabbitmq_faults", "--consumer", url, queue, file,
              (char *)NULL);
        _exit(127);
    }
    return pid;
}

/* How many times each id appears in the file; the number of lines. */
static int read_counts(const char *file, int *counts)
{
    memset(counts, 0, N * sizeof *counts);
    FILE *f = fopen(file, "r");
    int lines = 0, v;
    if (!f)
        return 0;
    while (fscanf(f, "%d", &v) == 1) {
        if (v >= 0 && v < N)
            counts[v]++;
        lines++;
    }
    fclose(f);
    return lines;
}

static void sigkill_consumer_mid_flow(void **state)
{
    (void)state;
    char url[160], q[96], file[512];
    url_of(url, sizeof url);
    qt_name(q, sizeof q, "kill");
    snprintf(file, sizeof file, "%s/handled-%ld.txt", state_dir, (long)getpid());
    unlink(file);
    int counts[N];
    pid_t c1 = spawn_consumer(url, q, file);
    fs_broker *b;
    assert_int_equal(fs_broker_new(url, NULL, &b), FS_OK);
    assert_int_equal(fs_broker_connect(b), FS_OK);
    fs_rabbitmq_subscriber_options ro = durable_queue();
    fs_rabbitmq_queue dq = ro.queue;
    dq.name = q;
    assert_int_equal(fs_rabbitmq_declare(b, NULL, &dq), FS_OK);
    publish_all(b, q, 0, N);
    int lines = 0;
    for (int i = 0; i < 1000 && (lines = read_counts(file, counts)) < N / 3; i++)
        ts_sleep_ms(10);
    assert_true(lines >= N / 3);
    kill(c1, SIGKILL);
    waitpid(c1, NULL, 0);
    int after_kill = read_counts(file, counts);
    assert_true(after_kill < N); /* killed mid-flow */
    pid_t c2 = spawn_consumer(url, q, file);
    bool all = false;
    for (int i = 0; i < 3000 && !all; i++) {
        read_counts(file, counts);
        all = true;
        for (int k = 0; k < N && all; k++)
            all = counts[k] >= 1;
        if (!all)
            ts_sleep_ms(10);
    }
    /* stopped cleanly: the acks of what it handled reach the server before it exits */
    kill(c2, SIGTERM);
    waitpid(c2, NULL, 0);
    read_counts(file, counts);
    for (int k = 0; k < N; k++)
        if (counts[k] < 1)
            fail_msg("message %d was never handled", k);
    uint64_t depth = 99;
    for (int i = 0; i < 200 && depth; i++) {
        fs_rabbitmq_queue_depth(b, q, &depth, NULL);
        if (depth)
            ts_sleep_ms(10);
    }
    assert_int_equal(depth, 0);
    fs_rabbitmq_delete_queue(b, q);
    fs_broker_free(b);
}

static atomic_int handled[N];

static fs_outcome count_handler(fs_message *m, void *user)
{
    (void)user;
    int v = atoi((const char *)fs_message_body(m));
    if (v >= 0 && v < N)
        atomic_fetch_add(&handled[v], 1);
    ts_sleep_ms(1);
    return FS_OUTCOME_OK;
}

typedef struct pub_arg {
    fs_broker *b;
    const char *q;
} pub_arg;

static void *publisher(void *arg)
{
    pub_arg *a = arg;
    for (int i = 0; i < N; i += 10) {
        publish_all(a->b, a->q, i, i + 10);
        ts_sleep_ms(10);
    }
    return NULL;
}

static void server_restart_mid_flow(void **state)
{
    (void)state;
    char url[160], q[96];
    url_of(url, sizeof url);
    qt_name(q, sizeof q, "restart");
    fs_broker *b;
    assert_int_equal(fs_broker_new(url, NULL, &b), FS_OK);
    fs_rabbitmq_subscriber_options ro = durable_queue();
    fs_subscriber_options so = FS_SUBSCRIBER_OPTIONS_INIT;
    so.concurrency = 2;
    so.broker_options = &ro;
    assert_int_equal(fs_subscribe(b, q, count_handler, NULL, &so, NULL), FS_OK);
    assert_int_equal(fs_broker_start(b), FS_OK);
    fs_broker *pb;
    assert_int_equal(fs_broker_new(url, NULL, &pb), FS_OK);
    assert_int_equal(fs_broker_connect(pb), FS_OK);
    pub_arg a = {pb, q};
    pthread_t t;
    pthread_create(&t, NULL, publisher, &a);
    for (int i = 0; i < 1000; i++) {
        int n = 0;
        for (int k = 0; k < N; k++)
            n += atomic_load(&handled[k]) > 0;
        if (n >= N / 4)
            break;
        ts_sleep_ms(10);
    }
    assert_int_equal(services("stop"), 0);
    if (services("start") != 0) /* retried once, as at setup */
        assert_int_equal((services("stop"), services("start")), 0);
    pthread_join(t, NULL);
    bool all = false;
    for (int i = 0; i < 3000 && !all; i++) {
        all = true;
        for (int k = 0; k < N && all; k++)
            all = atomic_load(&handled[k]) >= 1;
        if (!all)
            ts_sleep_ms(10);
    }
    for (int k = 0; k < N; k++)
        if (atomic_load(&handled[k]) < 1)
            fail_msg("message %d was never handled", k);
    fs_rabbitmq_delete_queue(pb, q);
    fs_broker_free(pb);
    fs_broker_free(b);
}

static atomic_int lost_lines;

static void count_lost(fs_log_level level, const char *component, const char *message, void *user)
{
    (void)level;
    (void)user;
    if (!strcmp(component, "rabbitmq") && strstr(message, "lost"))
        atomic_fetch_add(&lost_lines, 1);
}

/* A server that stops answering (SIGSTOP): the heartbeat notices, and the
 * connection is reopened and consuming resumes once it answers again. */
static void silent_server_found_by_heartbeat(void **state)
{
    (void)state;
    char url[160], q[96], pidfile[400];
    snprintf(url, sizeof url, "amqp://guest:guest@127.0.0.1:%d/?heartbeat=1", port);
    qt_name(q, sizeof q, "silent");
    fs_broker *b;
    assert_int_equal(fs_broker_new(url, NULL, &b), FS_OK);
    fs_rabbitmq_subscriber_options ro = durable_queue();
    fs_subscriber_options so = FS_SUBSCRIBER_OPTIONS_INIT;
    so.broker_options = &ro;
    fs_subscriber *sub;
    memset(handled, 0, sizeof handled);
    assert_int_equal(fs_subscribe(b, q, count_handler, NULL, &so, &sub), FS_OK);
    assert_int_equal(fs_broker_start(b), FS_OK);
    publish_all(b, q, 0, 1);
    assert_int_equal(fs_subscriber_wait_handled(sub, 1, 10000), FS_OK);
    snprintf(pidfile, sizeof pidfile, "%s/rabbitmq/beam.pid", state_dir);
    FILE *f = fopen(pidfile, "r");
    assert_non_null(f);
    int pid = 0;
    assert_int_equal(fscanf(f, "%d", &pid), 1);
    fclose(f);
    atomic_store(&lost_lines, 0);
    fs_set_log_handler(count_lost, NULL);
    kill(pid, SIGSTOP);
    ts_sleep_ms(4000);
    kill(pid, SIGCONT);
    assert_true(atomic_load(&lost_lines) >= 1); /* noticed while it was silent */
    publish_all(b, q, 1, 2);                    /* retried until the connection is back */
    assert_int_equal(fs_subscriber_wait_handled(sub, 2, 30000), FS_OK);
    fs_set_log_handler(NULL, NULL);
    fs_rabbitmq_delete_queue(b, q);
    fs_broker_free(b);
}

int main(int argc, char **argv)
{
    if (argc == 5 && !strcmp(argv[1], "--consumer"))
        return consumer_main(argv[2], argv[3], argv[4]);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(sigkill_consumer_mid_flow),
        cmocka_unit_test(server_restart_mid_flow),
        cmocka_unit_test(silent_server_found_by_heartbeat),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
