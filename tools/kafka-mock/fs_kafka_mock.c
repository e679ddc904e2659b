/*
 * fs_kafka_mock - librdkafka's mock cluster as a stand-alone test server.
 *
 *   fs_kafka_mock BOOTSTRAP_FILE [BROKERS] [TOPIC:PARTITIONS ...]
 *
 * Starts a mock cluster of BROKERS (default 3) brokers on ephemeral
 * 127.0.0.1 ports (librdkafka 2.0.2 has no fixed-port option), creates the
 * topics named, writes the bootstrap list ("127.0.0.1:P1,127.0.0.1:P2,...")
 * atomically to BOOTSTRAP_FILE, and serves until SIGTERM or SIGINT; then it
 * removes the file. Topics not created here are created on first use with
 * the mock's default of 4 partitions.
 *
 * A test server for scripts/services.sh (scripts/services.d/kafka.sh), the
 * demo, the examples and the tests; never installed.
 */
#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafka_mock.h>

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static volatile sig_atomic_t stop;

static void on_signal(int s)
{
    (void)s;
    stop = 1;
}

static int write_file(const char *path, const char *text)
{
    char tmp[4096];
    if (snprintf(tmp, sizeof tmp, "%s.tmp", path) >= (int)sizeof tmp)
        return -1;
    FILE *f = fopen(tmp, "w");
    if (!f)
        return -1;
    int bad = fprintf(f, "%s\n", text) < 0;
    bad |= fclose(f) != 0;
    return bad || rename(tmp, path) ? -1 : 0;
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: %s BOOTSTRAP_FILE [BROKERS] [TOPIC:PARTITIONS ...]\n", argv[0]);
        return 2;
    }
    int brokers = argc > 2 ? atoi(argv[2]) : 3;
    if (brokers < 1 || brokers > 16) {
        fprintf(stderr, "%s: BROKERS must be 1..16\n", argv[0]);
        return 2;
    }
    char err[512];
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    rd_kafka_conf_set(conf, "log_level", "3", err, sizeof err);
    rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, err, sizeof err);
    if (!rk) {
        fprintf(stderr, "%s: rd_kafka_new: %s\n", argv[0], err);
        return 1;
    }
    rd_kafka_mock_cluster_t *mc = rd_kafka_mock_cluster_new(rk, brokers);
    if (!mc) {
        fprintf(stderr, "%s: rd_kafka_mock_cluster_new failed\n", argv[0]);
        rd_kafka_destroy(rk);
        return 1;
    }
    int rc = 0;
    for (int i = 3; i < argc && !rc; i++) {
        char name[256];
        int n = 1;
        snprintf(name, sizeof name, "%s", argv[i]);
        char *colon = strrchr(name, ':');
        if (colon) {
            *colon = '\0';
            n = atoi(colon + 1);
        }
        rd_kafka_resp_err_t e =
            rd_kafka_mock_topic_create(mc, name, n > 0 ? n : 1, brokers < 3 ? brokers : 3);
        if (e) {
            fprintf(stderr, "%s: topic %s: %s\n", argv[0], name, rd_kafka_err2str(e));
            rc = 1;
        }
    }
    if (!rc && write_file(argv[1], rd_kafka_mock_cluster_bootstraps(mc))) {
        perror(argv[1]);
        rc = 1;
    }
    if (!rc) {
        signal(SIGTERM, on_signal);
        signal(SIGINT, on_signal);
        while (!stop)
            pause();
        unlink(argv[1]);
    }
    rd_kafka_mock_cluster_destroy(mc);
    rd_kafka_destroy(rk);
    return rc;
}
