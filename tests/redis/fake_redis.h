/*
 * A fake Redis server for tests: a thread on 127.0.0.1 (a free port) that
 * reads RESP commands and answers PING, AUTH, CLIENT, SELECT, HELLO with
 * what a server would, and every other command with the next of the
 * scripted raw replies (garbage on purpose); when the script is exhausted
 * it answers a nil array after a short pause (an empty BLMPOP/XREAD). A
 * reply of "" closes the connection; "HOLD" sends nothing more on it.
 *
 *   fake_redis f;
 *   fake_redis_start(&f, (const char *[]){"*2\r\n:5\r\n*1\r\n$1\r\nx\r\n", NULL});
 *   ... redis://127.0.0.1:f.port ...
 *   fake_redis_stop(&f);
 *
 * Counters (atomic): connections accepted, scripted replies sent.
 */
#ifndef FS_TEST_FAKE_REDIS_H
#define FS_TEST_FAKE_REDIS_H

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#define FAKE_REDIS_MAX_SCRIPT 64

typedef struct fake_redis {
    int listen_fd;
    uint16_t port;
    pthread_t thread;
    atomic_bool stop;
    const char *script[FAKE_REDIS_MAX_SCRIPT];
    size_t script_len;
    atomic_size_t next;       /* the next scripted reply */
    atomic_int connections;   /* accepted so far */
    atomic_int scripted_sent; /* scripted replies sent */
    pthread_t conns[64];      /* one thread per connection */
    int conn_fds[64];
    int nconns;
} fake_redis;

typedef struct fake_redis_conn {
    fake_redis *f;
    int fd;
} fake_redis_conn;

/* One RESP command (an array of bulk strings) from buf[0..len); its first word in cmd. */
static size_t fake_redis_parse(const char *buf, size_t len, char *cmd, size_t cmd_size)
{
    if (len < 4 || buf[0] != '*')
        return 0;
    const char *p = buf + 1, *end = buf + len;
    long n = strtol(p, NULL, 10);
    const char *nl = memchr(p, '\n', (size_t)(end - p));
    if (!nl)
        return 0;
    p = nl + 1;
    cmd[0] = '\0';
    for (long i = 0; i < n; i++) {
        if (p >= end || *p != '$')
            return 0;
        long blen = strtol(p + 1, NULL, 10);
        nl = memchr(p, '\n', (size_t)(end - p));
        if (!nl || blen < 0 || (size_t)(end - (nl + 1)) < (size_t)blen + 2)
            return 0;
        if (i == 0) {
            size_t c = (size_t)blen < cmd_size - 1 ? (size_t)blen : cmd_size - 1;
            memcpy(cmd, nl + 1, c);
            cmd[c] = '\0';
        }
        p = nl + 1 + blen + 2;
    }
    return (size_t)(p - buf);
}

static void fake_redis_send(int fd, const char *s, size_t n)
{
    while (n) {
        ssize_t w = send(fd, s, n, MSG_NOSIGNAL);
        if (w <= 0)
            return;
        s += w;
        n -= (size_t)w;
    }
}

/* Serves one connection until it closes, the script closes it or the server stops. */
static void fake_redis_serve(fake_redis *f, int fd)
{
    char buf[65536];
    size_t len = 0;
    bool hold = false;
    while (!atomic_load(&f->stop)) {
        struct pollfd p = {.fd = fd, .events = POLLIN};
        if (poll(&p, 1, 50) <= 0)
            continue;
        ssize_t n = recv(fd, buf + len, sizeof buf - len, 0);
        if (n <= 0)
            return;
        len += (size_t)n;
        char cmd[32];
        size_t used;
        while (!hold && (used = fake_redis_parse(buf, len, cmd, sizeof cmd)) > 0) {
            memmove(buf, buf + used, len - used);
            len -= used;
            if (strcasecmp(cmd, "PING") == 0) {
                fake_redis_send(fd, "+PONG\r\n", 7);
            } else if (strcasecmp(cmd, "AUTH") == 0 || strcasecmp(cmd, "CLIENT") == 0 ||
                       strcasecmp(cmd, "SELECT") == 0) {
                fake_redis_send(fd, "+OK\r\n", 5);
            } else if (strcasecmp(cmd, "HELLO") == 0) {
                fake_redis_send(fd, "-ERR unknown command 'HELLO'\r\n", 30);
            } else {
                size_t i = atomic_fetch_add(&f->next, 1);
                if (i >= f->script_len) {
                    usleep(20000);
                    fake_redis_send(fd, "*-1\r\n", 5);
                    continue;
                }
                atomic_fetch_add(&f->scripted_sent, 1);
                const char *r = f->script[i];
                if (!*r)
                    return; /* "" closes the connection */
                if (strcmp(r, "HOLD") == 0) {
                    hold = true;
                    break;
                }
                fake_redis_send(fd, r, strlen(r));
            }
        }
        if (len == sizeof buf)
            return;
    }
}

static void *fake_redis_conn_main(void *arg)
{
    fake_redis_conn *c = arg;
    fake_redis_serve(c->f, c->fd);
    shutdown(c->fd, SHUT_RDWR); /* closed by fake_redis_stop */
    free(c);
    return NULL;
}

static void *fake_redis_main(void *arg)
{
    fake_redis *f = arg;
    while (!atomic_load(&f->stop)) {
        struct pollfd p = {.fd = f->listen_fd, .events = POLLIN};
        if (poll(&p, 1, 50) <= 0)
            continue;
        int fd = accept(f->listen_fd, NULL, NULL);
        if (fd < 0)
            continue;
        atomic_fetch_add(&f->connections, 1);
        fake_redis_conn *c = malloc(sizeof *c);
        if (f->nconns == 64 || !c) {
            free(c);
            close(fd);
            continue;
        }
        c->f = f;
        c->fd = fd;
        f->conn_fds[f->nconns] = fd;
        if (pthread_create(&f->conns[f->nconns], NULL, fake_redis_conn_main, c) != 0) {
            free(c);
            close(fd);
            continue;
        }
        f->nconns++;
    }
    for (int i = 0; i < f->nconns; i++) {
        pthread_join(f->conns[i], NULL);
        close(f->conn_fds[i]);
    }
    return NULL;
}

/* `script`: raw replies, NULL-terminated. Returns 0 or -1. */
static int fake_redis_start(fake_redis *f, const char *const *script)
{
    memset(f, 0, sizeof *f);
    for (; script && *script && f->script_len < FAKE_REDIS_MAX_SCRIPT; script++)
        f->script[f->script_len++] = *script;
    f->listen_fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in a = {.sin_family = AF_INET};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t al = sizeof a;
    if (f->listen_fd < 0 || bind(f->listen_fd, (struct sockaddr *)&a, sizeof a) != 0 ||
        listen(f->listen_fd, 16) != 0 || getsockname(f->listen_fd, (struct sockaddr *)&a, &al) != 0)
        return -1;
    f->port = ntohs(a.sin_port);
    return pthread_create(&f->thread, NULL, fake_redis_main, f) == 0 ? 0 : -1;
}

static void fake_redis_stop(fake_redis *f)
{
    atomic_store(&f->stop, true);
    pthread_join(f->thread, NULL);
    close(f->listen_fd);
}

#endif
