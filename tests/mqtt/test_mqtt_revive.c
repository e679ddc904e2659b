/*
 * libmosquitto's network thread ends for good after a protocol error (and
 * after a DISCONNECT from the server, or a refused MQTT 5 CONNACK); the
 * adapter must start it again. A fake server on a free port answers the
 * first connection's CONNECT, then sends a packet of no known type; the
 * second connection it serves properly (CONNACK, PINGRESP). The broker's
 * ping must come back to FS_OK on that second connection.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include "mqtt_test.h"
#include "support/server.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>

static int listen_fd, port;
static atomic_int accepted;
static atomic_bool quit;

/* Read one MQTT packet (fixed header, remaining length, body); its type byte or -1. */
static int read_packet(int fd)
{
    unsigned char h;
    if (recv(fd, &h, 1, MSG_WAITALL) != 1)
        return -1;
    size_t len = 0, mult = 1;
    for (int i = 0; i < 4; i++) {
        unsigned char b;
        if (recv(fd, &b, 1, MSG_WAITALL) != 1)
            return -1;
        len += (b & 127) * mult;
        mult *= 128;
        if (!(b & 128))
            break;
    }
    unsigned char body[512];
    while (len) {
        size_t n = len < sizeof body ? len : sizeof body;
        if (recv(fd, body, n, MSG_WAITALL) != (ssize_t)n)
            return -1;
        len -= n;
    }
    return h;
}

static void *fake_server(void *arg)
{
    (void)arg;
    while (!atomic_load(&quit)) {
        struct pollfd p = {listen_fd, POLLIN, 0};
        if (poll(&p, 1, 100) != 1)
            continue;
        int fd = accept(listen_fd, NULL, NULL);
        if (fd < 0)
            continue;
        int n = atomic_fetch_add(&accepted, 1) + 1;
        if (read_packet(fd) == 0x10 && send(fd, "\x20\x02\x00\x00", 4, MSG_NOSIGNAL) == 4) {
            if (n == 1) { /* then nonsense: packet type 0 */
                ts_sleep_ms(100);
                if (send(fd, "\x00\x00", 2, MSG_NOSIGNAL) != 2)
                    break;
                ts_sleep_ms(200);
            } else {
                while (!atomic_load(&quit)) {
                    struct pollfd q = {fd, POLLIN, 0};
                    if (poll(&q, 1, 100) != 1)
                        continue;
                    int t = read_packet(fd);
                    if (t < 0)
                        break;
                    if ((t & 0xF0) == 0xC0 && send(fd, "\xd0\x00", 2, MSG_NOSIGNAL) != 2)
                        break;
                }
            }
        }
        close(fd);
    }
    return NULL;
}

static void restarts_the_network_thread(void **state)
{
    (void)state;
    port = ts_free_port(); /* outside the ephemeral range (support/port.h) */
    listen_fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = port_loopback(port);
    assert_int_equal(bind(listen_fd, (struct sockaddr *)&a, sizeof a), 0);
    assert_int_equal(listen(listen_fd, 4), 0);
    pthread_t t;
    pthread_create(&t, NULL, fake_server, NULL);

    char url[128];
    snprintf(url, sizeof url, "mqtt://127.0.0.1:%d?version=3.1.1&client_id=fsrevive", port);
    fs_broker *b = NULL;
    assert_int_equal(fs_broker_new(url, NULL, &b), FS_OK);
    assert_int_equal(fs_broker_connect(b), FS_OK);
    ts_sleep_ms(250); /* the nonsense arrived: libmosquitto's thread is gone */
    int rc = FS_EIO;
    for (int i = 0; i < 100 && rc != FS_OK; i++) {
        rc = fs_broker_ping(b, 100);
        if (rc != FS_OK)
            ts_sleep_ms(50);
    }
    assert_int_equal(rc, FS_OK);
    assert_int_equal(atomic_load(&accepted), 2);
    fs_broker_free(b);
    atomic_store(&quit, true);
    pthread_join(t, NULL);
    close(listen_fd);
}

int main(void)
{
    fs_set_log_level(getenv("FS_TEST_LOG") ? FS_LOG_DEBUG : FS_LOG_OFF);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(restarts_the_network_thread),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
