/*
 * tests/support/server.h - a private server for a test group (cmocka group
 * setup/teardown): a state directory of its own, a free port outside
 * Linux's ephemeral range, the server process started and killed.
 *
 *   static ts_server srv;
 *   static int setup(void **state) {
 *       if (ts_server_prepare(&srv, "redis-restart") != 0) return -1;
 *       ... ts_server_spawn(&srv, argv) ...
 *   }
 *   static int teardown(void **state) { return ts_server_cleanup(&srv); }
 *
 * Header-only; include after cmocka.h.
 */
#ifndef FS_TEST_SUPPORT_SERVER_H
#define FS_TEST_SUPPORT_SERVER_H

#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

typedef struct ts_server {
    char dir[256]; /* its state directory (mkdtemp) */
    int port;      /* a free port on 127.0.0.1 */
    pid_t pid;     /* the process ts_server_spawn started, or 0 */
} ts_server;

/* True when nothing listens on 127.0.0.1:port (a bind succeeds). */
static inline int ts_port_free(int port)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0)
        return 0;
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    struct sockaddr_in a;
    memset(&a, 0, sizeof a);
    a.sin_family = AF_INET;
    a.sin_port = htons((unsigned short)port);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    int ok = bind(fd, (struct sockaddr *)&a, sizeof a) == 0;
    close(fd);
    return ok;
}

/*
 * A free port in 29000-32767: below Linux's ephemeral range (32768-60999),
 * so no client's outgoing port can take it, and above the fixed ports of
 * scripts/services.sh. Where the search starts depends on the process id,
 * so tests running side by side take different ports. Fails the test when
 * none is free.
 */
static inline int ts_free_port(void)
{
    enum { FIRST = 29000, COUNT = 32768 - 29000 };
    static int next = -1;
    if (next < 0)
        next = (int)(((unsigned)getpid() * 7919u) % COUNT);
    for (int i = 0; i < COUNT; i++) {
        int port = FIRST + (next + i) % COUNT;
        if (ts_port_free(port)) {
            next = (next + i + 1) % COUNT;
            return port;
        }
    }
    fail_msg("no free port in %d-%d", FIRST, FIRST + COUNT - 1);
    return -1;
}

/* A state directory ($TMPDIR or /tmp)/fs-WHAT-XXXXXX and a free port; 0 or -1. */
static inline int ts_server_prepare(ts_server *s, const char *what)
{
    const char *tmp = getenv("TMPDIR");
    memset(s, 0, sizeof *s);
    snprintf(s->dir, sizeof s->dir, "%s/fs-%s-XXXXXX", tmp && *tmp ? tmp : "/tmp", what);
    if (!mkdtemp(s->dir)) {
        fprintf(stderr, "mkdtemp %s failed\n", s->dir);
        return -1;
    }
    s->port = ts_free_port();
    return 0;
}

/* Start argv[0] (looked up in PATH) with argv; its pid is kept in s->pid. */
static inline void ts_server_spawn(ts_server *s, char *const argv[])
{
    s->pid = fork();
    if (s->pid == 0) {
        execvp(argv[0], argv);
        _exit(127);
    }
    if (s->pid < 0)
        fail_msg("fork for %s failed", argv[0]);
}

/* SIGKILL the spawned process and reap it. */
static inline void ts_server_kill(ts_server *s)
{
    if (s->pid > 0) {
        kill(s->pid, SIGKILL);
        waitpid(s->pid, NULL, 0);
    }
    s->pid = 0;
}

/* Kill the process (if any) and remove the state directory; 0 or -1. */
static inline int ts_server_cleanup(ts_server *s)
{
    ts_server_kill(s);
    if (!s->dir[0])
        return 0;
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", s->dir);
    return system(cmd) == 0 ? 0 : -1;
}

#endif
