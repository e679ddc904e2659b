/*
 * tests/support/port.h - loopback ports for the servers the tests and the
 * benchmarks start (bench/bench.h includes it): a free one picked outside
 * Linux's ephemeral range (32768-60999), where a client's own outgoing port
 * could collide with the server's, and whether a server answers on one.
 * Header-only, no cmocka.
 */
#ifndef FS_TEST_SUPPORT_PORT_H
#define FS_TEST_SUPPORT_PORT_H

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

/* The port in environment variable `name` (a services.sh port), or `def` when unset. */
static inline int port_env(const char *name, int def)
{
    const char *p = getenv(name);
    return p && *p ? atoi(p) : def;
}

static inline struct sockaddr_in port_loopback(int port)
{
    struct sockaddr_in a;
    memset(&a, 0, sizeof a);
    a.sin_family = AF_INET;
    a.sin_port = htons((unsigned short)port);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    return a;
}

/* True when nothing listens on 127.0.0.1:port (a bind succeeds). */
static inline int port_is_free(int port)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0)
        return 0;
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    struct sockaddr_in a = port_loopback(port);
    int ok = bind(fd, (struct sockaddr *)&a, sizeof a) == 0;
    close(fd);
    return ok;
}

/* True when a TCP connection to 127.0.0.1:port is accepted. */
static inline int port_answers(int port)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0)
        return 0;
    struct sockaddr_in a = port_loopback(port);
    int ok = connect(fd, (struct sockaddr *)&a, sizeof a) == 0;
    close(fd);
    return ok;
}

/*
 * A free port in [first, first + count), or -1. The search starts at an
 * offset of the process id and goes on from the last port handed out, so
 * processes running side by side take different ports.
 */
static inline int port_pick(int first, int count)
{
    static int next = -1;
    if (next < 0)
        next = (int)(((unsigned)getpid() * 7919u) % (unsigned)count);
    for (int i = 0; i < count; i++) {
        int k = (next + i) % count;
        if (port_is_free(first + k)) {
            next = k + 1;
            return first + k;
        }
    }
    return -1;
}

/* The ranges: clear of scripts/services.sh's ports and of each other. */
#define PORT_TESTS_FIRST 29000 /* tests/support/server.h: 29000-32767 */
#define PORT_TESTS_COUNT 3768
#define PORT_BENCH_FIRST 26000 /* bench/bench.h: 26000-27999 */
#define PORT_BENCH_COUNT 2000

#endif
