/*
 * At least once across a crash: a consumer process (this program, run as
 * "child URL FILE") handles messages of a group and is killed with SIGKILL
 * mid-flow; a second consumer in the same group takes over. Every message
 * is handled at least once (the child's log of what it handled plus the
 * second consumer's), and the committed offsets cover all of them.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h>

#include "kafka/kafka_test.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>

#define PARTS 4
#define TOTAL 400
#define GROUP "g-kill"
#define TOPIC "kill.flow"

static int log_fd = -1;
static char self[4096];

static fs_outcome child_handler(fs_message *m, void *user)
{
    (void)user;
    ts_sleep_ms(5);
    char line[64];
    int n = snprintf(line, sizeof line, "%d %lld\n", (int)fs_message_partition(m),
                     (long long)fs_message_offset(m));
    if (write(log_fd, line, (size_t)n) != n)
        return fs_message_fail(m, "OSError", "log write failed");
    return FS_OUTCOME_OK;
}

static int child_main(const char *url, const char *file)
{
    log_fd = open(file, O_WRONLY | O_CREAT | O_APPEND, 0644);
    if (log_fd < 0)
        return 2;
    fs_kafka_options o = FS_KAFKA_OPTIONS_INIT;
    o.config = kt_fast_config;
    o.config_count = sizeof kt_fast_config / sizeof kt_fast_config[0];
    o.commit_interval_ms = 50;
    char u[700];
    snprintf(u, sizeof u, "%s?group_id=" GROUP, url);
    fs_broker *b;
    if (fs_kafka_broker_new(u, &o, &b))
        return 3;
    fs_kafka_subscriber_options ko = FS_KAFKA_SUBSCRIBER_OPTIONS_INIT;
    ko.start = FS_KAFKA_START_EARLIEST;
    fs_subscriber_options so = FS_SUBSCRIBER_OPTIONS_INIT;
    so.ack_policy = FS_ACK_POLICY_ACK;
    so.concurrency = 2;
    so.broker_options = &ko;
    if (fs_subscribe(b, TOPIC, child_handler, NULL, &so, NULL) || fs_broker_start(b))
        return 4;
    for (;;)
        pause(); /* until SIGKILL */
}

static int count_lines(const char *file)
{
    FILE *f = fopen(file, "r");
    if (!f)
        return 0;
    int n = 0, c;
    while ((c = fgetc(f)) != EOF)
        n += c == '\n';
    fclose(f);
    return n;
}

static _Atomic int hits[PARTS][TOTAL];

static fs_outcome second_handler(fs_message *m, void *user)
{
    (void)user;
    int32_t p = fs_message_partition(m);
    int64_t o = fs_message_offset(m);
    if (p >= 0 && p < PARTS && o >= 0 && o < TOTAL)
        atomic_fetch_add(&hits[p][o], 1);
    return FS_OUTCOME_OK;
}

static void test_sigkill_then_takeover(void **state)
{
    (void)state;
    kt_cluster cl;
    kt_cluster_start(&cl, 3);
    kt_topic(&cl, TOPIC, PARTS);
    rd_kafka_t *prod = kt_producer(&cl);
    kt_put(prod, TOPIC, -1, 0, TOTAL);
    char file[256];
    snprintf(file, sizeof file, "%s/kafka-kill-%ld.log", FS_TEST_BINARY_DIR, (long)getpid());
    unlink(file);

    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        execl(self, self, "child", cl.url, file, (char *)NULL);
        _exit(127);
    }
    double end = ts_now_s() + 30;
    while (count_lines(file) < TOTAL / 4 && ts_now_s() < end)
        ts_sleep_ms(10);
    assert_true(count_lines(file) >= TOTAL / 4);
    kill(pid, SIGKILL);
    int status;
    waitpid(pid, &status, 0);
    assert_true(WIFSIGNALED(status));
    int by_child = count_lines(file);
    assert_true(by_child < TOTAL); /* killed mid-flow */

    /* What the child handled. */
    FILE *f = fopen(file, "r");
    assert_non_null(f);
    int p;
    long long o;
    while (fscanf(f, "%d %lld", &p, &o) == 2)
        if (p >= 0 && p < PARTS && o >= 0 && o < TOTAL)
            atomic_fetch_add(&hits[p][o], 1);
    fclose(f);
    unlink(file);

    fs_broker *b = kt_broker(&cl, GROUP, NULL);
    kt_sub_fn(b, TOPIC, second_handler, NULL, FS_ACK_POLICY_ACK, 2, NULL);
    KT_OK(fs_broker_start(b));
    long committed = kt_wait_committed(&cl, GROUP, TOPIC, PARTS, TOTAL, 60);
    assert_int_equal(committed, TOTAL);
    fs_broker_free(b);
    int missing = 0, again = 0;
    for (int q = 0; q < PARTS; q++) {
        int64_t lo, hi;
        assert_int_equal(rd_kafka_query_watermark_offsets(prod, TOPIC, q, &lo, &hi, 5000), 0);
        for (int64_t k = lo; k < hi; k++) {
            missing += atomic_load(&hits[q][k]) == 0;
            again += atomic_load(&hits[q][k]) > 1;
        }
    }
    assert_int_equal(missing, 0);
    print_message("killed after %d handled; %d handled twice\n", by_child, again);
    rd_kafka_destroy(prod);
    kt_cluster_stop(&cl);
}

int main(int argc, char **argv)
{
    if (argc == 4 && strcmp(argv[1], "child") == 0)
        return child_main(argv[2], argv[3]);
    ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
    if (n <= 0)
        return 1;
    self[n] = '\0';
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_sigkill_then_takeover),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
