/*
 * The connection guard of the HTTP endpoint: the cap on open connections
 * and the deadline of every request, which libmicrohttpd 0.9.75 lacks (its
 * connection timeout restarts with every byte received, so a client that
 * trickles a header line every few seconds is never closed).
 *
 * Every connection is on one list, oldest first. It carries a deadline: the
 * moment by which its current request must have been answered, counted
 * from its first byte or from the end of the previous request. A reaper
 * thread wakes a few times per timeout and shuts down connections past
 * their deadline; a connection opened above the cap shuts down the oldest
 * one that has not been answered yet (a slow or idle client, never one
 * whose response is being sent unless nothing else is left).
 *
 * Closing is shutdown(2) on our own dup of the socket: libmicrohttpd sees
 * the end of the stream and closes the connection itself, and since the
 * dup is only closed when libmicrohttpd reports the connection closed, the
 * descriptor can never name another socket meanwhile.
 */
#include "common/internal.h"
#include "http/http_internal.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define COMPONENT "http"

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void fs__http_guard_init(fs__http_guard *g, size_t max_live, int64_t timeout_ms)
{
    memset(g, 0, sizeof *g);
    pthread_mutex_init(&g->lock, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&g->wake, &ca);
    pthread_condattr_destroy(&ca);
    g->list.prev = g->list.next = &g->list;
    g->max_live = max_live;
    g->timeout_ms = timeout_ms;
    atomic_init(&g->evicted, 0);
    atomic_init(&g->timed_out, 0);
}

/* Shut c down; the caller holds the lock. */
static void close_conn(fs__http_guard *g, fs__http_conn *c)
{
    if (c->closing)
        return;
    c->closing = true;
    g->live--;
    if (c->fd >= 0)
        shutdown(c->fd, SHUT_RDWR);
}

static void *reaper_main(void *arg)
{
    fs__http_guard *g = arg;
    /* Four sweeps per timeout, at least one a second: a connection lives
     * at most a quarter timeout past its deadline. */
    int64_t period = g->timeout_ms / 4;
    if (period > 1000)
        period = 1000;
    if (period < 10)
        period = 10;
    pthread_mutex_lock(&g->lock);
    while (!g->stopping) {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        int64_t ns = ts.tv_nsec + (period % 1000) * 1000000;
        ts.tv_sec += (time_t)(period / 1000 + ns / 1000000000);
        ts.tv_nsec = (long)(ns % 1000000000);
        pthread_cond_timedwait(&g->wake, &g->lock, &ts);
        if (g->stopping)
            break;
        int64_t now = now_ms();
        size_t n = 0;
        for (fs__http_conn *c = g->list.next; c != &g->list; c = c->next)
            if (!c->closing && c->deadline_ms <= now) {
                close_conn(g, c);
                n++;
            }
        if (n) {
            atomic_fetch_add(&g->timed_out, n);
            fs__log(FS_LOG_DEBUG, COMPONENT, "closed %zu connection(s) past their deadline", n);
        }
    }
    pthread_mutex_unlock(&g->lock);
    return NULL;
}

int fs__http_guard_start(fs__http_guard *g)
{
    g->stopping = false;
    int e = pthread_create(&g->reaper, NULL, reaper_main, g);
    if (e)
        return fs__error(FS_EIO, "http: cannot start the connection reaper: %s", strerror(e));
    g->reaper_running = true;
    return FS_OK;
}

void fs__http_guard_stop(fs__http_guard *g)
{
    if (!g->reaper_running)
        return;
    pthread_mutex_lock(&g->lock);
    g->stopping = true;
    pthread_cond_signal(&g->wake);
    pthread_mutex_unlock(&g->lock);
    pthread_join(g->reaper, NULL);
    g->reaper_running = false;
}

void fs__http_guard_destroy(fs__http_guard *g)
{
    fs__http_guard_stop(g);
    /* libmicrohttpd reported every close before MHD_stop_daemon returned;
     * anything left is a connection it never reported. */
    for (fs__http_conn *c = g->list.next, *next; c != &g->list; c = next) {
        next = c->next;
        if (c->fd >= 0)
            close(c->fd);
        free(c);
    }
    g->list.prev = g->list.next = &g->list;
    pthread_cond_destroy(&g->wake);
    pthread_mutex_destroy(&g->lock);
}

fs__http_conn *fs__http_guard_opened(fs__http_guard *g, int fd)
{
    fs__http_conn *c = calloc(1, sizeof *c);
    if (!c)
        return NULL; /* unguarded: libmicrohttpd's own timeout still applies */
    c->fd = fd >= 0 ? fcntl(fd, F_DUPFD_CLOEXEC, 0) : -1;
    c->deadline_ms = now_ms() + g->timeout_ms;
    pthread_mutex_lock(&g->lock);
    c->prev = g->list.prev;
    c->next = &g->list;
    g->list.prev->next = c;
    g->list.prev = c;
    g->live++;
    size_t evicted = 0;
    /* Make room: the oldest unanswered connections go first, then (when
     * every other one is being answered) this one. */
    for (fs__http_conn *o = g->list.next; g->live > g->max_live && o != &g->list; o = o->next)
        if (!o->closing && !o->answered) {
            close_conn(g, o);
            evicted++;
        }
    pthread_mutex_unlock(&g->lock);
    if (evicted)
        atomic_fetch_add(&g->evicted, evicted);
    return c;
}

void fs__http_guard_closed(fs__http_guard *g, fs__http_conn *c)
{
    if (!c)
        return;
    pthread_mutex_lock(&g->lock);
    c->prev->next = c->next;
    c->next->prev = c->prev;
    if (!c->closing)
        g->live--;
    pthread_mutex_unlock(&g->lock);
    if (c->fd >= 0)
        close(c->fd);
    free(c);
}

void fs__http_guard_answered(fs__http_guard *g, fs__http_conn *c)
{
    if (!c)
        return;
    pthread_mutex_lock(&g->lock);
    c->answered = true;
    pthread_mutex_unlock(&g->lock);
}

void fs__http_guard_completed(fs__http_guard *g, fs__http_conn *c)
{
    if (!c)
        return;
    int64_t deadline = now_ms() + g->timeout_ms;
    pthread_mutex_lock(&g->lock);
    c->answered = false;
    c->deadline_ms = deadline;
    pthread_mutex_unlock(&g->lock);
}

/* ------------------------------------------------------------------------ */
/* libmicrohttpd's log                                                      */

/* libmicrohttpd warnings logged per LOG_WINDOW_S at most; the rest are counted. */
#define LOG_BURST 10
#define LOG_WINDOW_S 60

fs_log_level fs__http_log_level(fs__http_log_limit *l, const char *line, unsigned long *suppressed)
{
    /* A client's malformed, oversized or abandoned request is the client's
     * problem: keep it out of the default log level, where a bad scraper
     * could flood it. Everything else (accept failures, fd exhaustion...)
     * is a warning. */
    static const char *const client_faults[] = {"Error processing request",
                                                "Closing connection",
                                                "closed by remote side",
                                                "Connection reset",
                                                "connection reset",
                                                "Failed to send data",
                                                "Failed to receive data",
                                                "timed out",
                                                "Connection timed out",
                                                "connection limit",
                                                "per IP",
                                                "too large",
                                                "too big",
                                                "TLS",
                                                "handshake",
                                                "header",
                                                "Header",
                                                "connection closure",
                                                "closed when reading",
                                                "closed when sending"};
    *suppressed = 0;
    for (size_t i = 0; i < sizeof client_faults / sizeof *client_faults; i++)
        if (strstr(line, client_faults[i]))
            return FS_LOG_DEBUG;
    /* Whatever else a client may provoke must not flood the log either: at
     * most LOG_BURST warnings per window, then a count of what was left out. */
    time_t now = time(NULL);
    bool log = false;
    pthread_mutex_lock(&l->lock);
    if (now - l->window >= LOG_WINDOW_S) {
        *suppressed = l->suppressed;
        l->suppressed = 0;
        l->window = now;
        l->count = 0;
    }
    if (l->count < LOG_BURST) {
        l->count++;
        log = true;
    } else {
        l->suppressed++;
    }
    pthread_mutex_unlock(&l->lock);
    return log ? FS_LOG_WARN : FS_LOG_DEBUG;
}
