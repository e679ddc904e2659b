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

#include "port.h"

#include <fcntl.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

typedef struct ts_server {
    char dir[256]; /* its state directory (mkdtemp) */
    int port;      /* a free port on 127.0.0.1 */
    pid_t pid;     /* the process ts_server_spawn started, or 0 */
    bool quiet;    /* spawn it with stdin, stdout and stderr on /dev/null */
} ts_server;

/*
 * A free port in 29000-32767 (tests/support/port.h: below the ephemeral
 * range, above the fixed ports of scripts/services.sh). Fails the test when
 * none is free.
 */
static inline int ts_free_port(void)
{
    int port = port_pick(PORT_TESTS_FIRST, PORT_TESTS_COUNT);
    if (port < 0)
        fail_msg("no free port in %d-%d", PORT_TESTS_FIRST,
                 PORT_TESTS_FIRST + PORT_TESTS_COUNT - 1);
    return port;
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

/*
 * Start argv[0] (looked up in PATH) with argv; its pid is kept in s->pid.
 * The server is killed when the thread that started it ends, however the
 * test ends (a sanitizer's report exits without running atexit handlers).
 */
static inline void ts_server_spawn(ts_server *s, char *const argv[])
{
    pid_t parent = getpid();
    s->pid = fork();
    if (s->pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        if (getppid() != parent) /* the test ended before prctl */
            _exit(127);
        if (s->quiet) {
            int fd = open("/dev/null", O_RDWR);
            dup2(fd, 0);
            dup2(fd, 1);
            dup2(fd, 2);
        }
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
