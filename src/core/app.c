/*
 * Applications: brokers + HTTP endpoint + lifecycle hooks + signals.
 *
 * Signals use a self-pipe: the handler only writes one byte to a pipe
 * (async-signal-safe); fs_app_run polls the pipe's read end. fs_app_stop
 * writes to the same pipe, so it is safe from any thread and from a signal
 * handler.
 */
#include "core/core.h"
#include "faststream/app.h"
#include "faststream/dashboard.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define HEALTH_PING_MS 2000

typedef struct hook {
    fs_app_hook fn;
    void *user;
} hook;

typedef struct hook_list {
    hook *v;
    size_t n;
} hook_list;

typedef struct route {
    char *path;
    fs_http_route_fn fn;
    void *user;
} route;

struct fs_app {
    fs_app_options opts;
    char *http_address;
    char *metrics_path;
    char *health_path;
    fs_broker **brokers;
    size_t broker_count;
    hook_list on_startup, after_startup, on_shutdown, after_shutdown;
    route *routes;
    size_t route_count;
    pthread_mutex_t lock;
    fs_http_server *http;
    int pipe_fd[2];
    _Atomic bool running;
    _Atomic bool in_run;
    _Atomic bool stop_requested;
};

/* The pipe that the signal handler writes to (one app runs with signals at a time). */
static _Atomic int signal_fd = -1;

static void on_signal(int sig)
{
    (void)sig;
    int saved = errno;
    int fd = atomic_load(&signal_fd);
    if (fd >= 0) {
        ssize_t w = write(fd, "s", 1);
        (void)w;
    }
    errno = saved;
}

int fs_app_new(const fs_app_options *opts, fs_app **out)
{
    FS_CHECK_ARG(out, "fs_app_new: out is NULL");
    *out = NULL;
    fs_app_options o = FS_APP_OPTIONS_INIT;
    if (opts)
        o = *opts;
    FS_CHECK_ARG(o.http_port == FS_APP_PORT_ANY || (o.http_port >= 0 && o.http_port <= 65535),
                 "fs_app_new: http_port %d is invalid (1..65535, 0 = 8000, FS_APP_PORT_ANY)",
                 o.http_port);
    FS_CHECK_ARG(o.graceful_timeout_ms >= -1,
                 "fs_app_new: graceful_timeout_ms %d is invalid (0 = each broker's, -1 = forever)",
                 o.graceful_timeout_ms);
    fs_app *app = calloc(1, sizeof *app);
    if (!app)
        return fs__error(FS_ENOMEM, "out of memory creating an app");
    app->pipe_fd[0] = app->pipe_fd[1] = -1;
    pthread_mutex_init(&app->lock, NULL);
    app->opts = o;
    app->http_address = fs_kit_strdup(o.http_address ? o.http_address : "127.0.0.1");
    app->metrics_path = fs_kit_strdup(o.metrics_path ? o.metrics_path : "/metrics");
    app->health_path = fs_kit_strdup(o.health_path ? o.health_path : "/health");
    if (!app->http_address || !app->metrics_path || !app->health_path) {
        fs_app_free(app);
        return fs__error(FS_ENOMEM, "out of memory creating an app");
    }
    if (pipe2(app->pipe_fd, O_CLOEXEC | O_NONBLOCK) != 0) {
        int e = errno;
        app->pipe_fd[0] = app->pipe_fd[1] = -1;
        fs_app_free(app);
        return fs__error(FS_EIO, "fs_app_new: pipe: %s", strerror(e));
    }
    *out = app;
    return FS_OK;
}

int fs_app_add_broker(fs_app *app, fs_broker *broker)
{
    FS_CHECK_ARG(app, "fs_app_add_broker: app is NULL");
    FS_CHECK_ARG(broker, "fs_app_add_broker: broker is NULL");
    if (atomic_load(&app->in_run))
        return fs__error(FS_ESTATE, "fs_app_add_broker: the app is running");
    for (size_t i = 0; i < app->broker_count; i++)
        if (app->brokers[i] == broker)
            return fs__error(FS_ECONFLICT, "fs_app_add_broker: broker already added");
    fs_broker **v = realloc(app->brokers, (app->broker_count + 1) * sizeof *v);
    if (!v)
        return fs__error(FS_ENOMEM, "out of memory adding a broker");
    app->brokers = v;
    app->brokers[app->broker_count++] = broker;
    return FS_OK;
}

static int hook_add(fs_app *app, hook_list *l, fs_app_hook fn, void *user, const char *what)
{
    FS_CHECK_ARG(app, "fs_app_%s: app is NULL", what);
    FS_CHECK_ARG(fn, "fs_app_%s: hook is NULL", what);
    if (atomic_load(&app->in_run))
        return fs__error(FS_ESTATE, "fs_app_%s: the app is running", what);
    hook *v = realloc(l->v, (l->n + 1) * sizeof *v);
    if (!v)
        return fs__error(FS_ENOMEM, "out of memory adding a hook");
    l->v = v;
    l->v[l->n].fn = fn;
    l->v[l->n].user = user;
    l->n++;
    return FS_OK;
}

int fs_app_on_startup(fs_app *app, fs_app_hook fn, void *user)
{
    return hook_add(app, app ? &app->on_startup : NULL, fn, user, "on_startup");
}

int fs_app_after_startup(fs_app *app, fs_app_hook fn, void *user)
{
    return hook_add(app, app ? &app->after_startup : NULL, fn, user, "after_startup");
}

int fs_app_on_shutdown(fs_app *app, fs_app_hook fn, void *user)
{
    return hook_add(app, app ? &app->on_shutdown : NULL, fn, user, "on_shutdown");
}

int fs_app_after_shutdown(fs_app *app, fs_app_hook fn, void *user)
{
    return hook_add(app, app ? &app->after_shutdown : NULL, fn, user, "after_shutdown");
}

int fs_app_add_route(fs_app *app, const char *path, fs_http_route_fn fn, void *user)
{
    FS_CHECK_ARG(app, "fs_app_add_route: app is NULL");
    FS_CHECK_ARG(path && path[0] == '/', "fs_app_add_route: path must start with '/'");
    FS_CHECK_ARG(fn, "fs_app_add_route: route function is NULL");
    pthread_mutex_lock(&app->lock);
    int rc = FS_OK;
    for (size_t i = 0; i < app->route_count; i++)
        if (strcmp(app->routes[i].path, path) == 0)
            rc = fs__error(FS_ECONFLICT, "fs_app_add_route: route %s already exists", path);
    route *v = rc == FS_OK ? realloc(app->routes, (app->route_count + 1) * sizeof *v) : NULL;
    if (rc == FS_OK && !v)
        rc = fs__error(FS_ENOMEM, "out of memory adding a route");
    if (rc == FS_OK) {
        app->routes = v;
        route *r = &app->routes[app->route_count];
        r->path = fs_kit_strdup(path);
        r->fn = fn;
        r->user = user;
        if (!r->path)
            rc = fs__error(FS_ENOMEM, "out of memory adding a route");
        else
            app->route_count++;
    }
    if (rc == FS_OK && app->http) {
        rc = fs_http_server_add_route(app->http, path, fn, user);
        if (rc < 0)
            free(app->routes[--app->route_count].path);
    }
    pthread_mutex_unlock(&app->lock);
    return rc;
}

bool fs_app_healthy(const fs_app *app, int timeout_ms)
{
    if (!app)
        return false;
    for (size_t i = 0; i < app->broker_count; i++)
        if (fs_broker_ping(app->brokers[i], timeout_ms) != FS_OK)
            return false;
    return true;
}

static bool health_check(void *user)
{
    return fs_app_healthy(user, HEALTH_PING_MS);
}

static int run_hooks(fs_app *app, const hook_list *l, const char *what, bool stop_on_error)
{
    for (size_t i = 0; i < l->n; i++) {
        int rc = l->v[i].fn(app, l->v[i].user);
        if (rc != 0) {
            fs__log(FS_LOG_ERROR, "app", "%s hook %zu failed (%d): %s", what, i + 1, rc,
                    fs_last_error());
            if (stop_on_error)
                return rc < 0 ? rc
                              : fs__error(FS_ESTATE, "%s hook %zu failed with %d", what, i + 1, rc);
        }
    }
    return FS_OK;
}

static int http_start(fs_app *app)
{
    fs_http_options ho = FS_HTTP_OPTIONS_INIT;
    if (app->opts.http_options)
        ho = *app->opts.http_options;
    ho.address = app->http_address;
    ho.port = app->opts.http_port == FS_APP_PORT_ANY ? FS_HTTP_PORT_ANY : app->opts.http_port;
    ho.registry = app->opts.registry;
    ho.metrics_path = app->metrics_path;
    ho.health_path = app->health_path;
    fs_http_server *srv = NULL;
    int rc = fs_http_server_new(&ho, &srv);
    if (rc < 0)
        return rc;
    if (*app->health_path)
        rc = fs_http_server_set_health_check(srv, health_check, app);
    pthread_mutex_lock(&app->lock);
    for (size_t i = 0; rc >= 0 && i < app->route_count; i++)
        rc = fs_http_server_add_route(srv, app->routes[i].path, app->routes[i].fn,
                                      app->routes[i].user);
    if (rc >= 0 && app->opts.dashboard)
        rc = fs_http_server_add_dashboard(srv, "/", app->metrics_path);
    if (rc >= 0)
        rc = fs_http_server_start(srv);
    if (rc >= 0)
        app->http = srv;
    pthread_mutex_unlock(&app->lock);
    if (rc < 0) {
        fs_http_server_free(srv);
        return rc;
    }
    fs__log(FS_LOG_INFO, "app", "serving %s%s%s%s on %s://%s:%u", app->metrics_path,
            *app->health_path ? " and " : "", app->health_path,
            app->opts.dashboard ? ", the dashboard page at /" : "",
            ho.tls_cert_file ? "https" : "http", app->http_address,
            (unsigned)fs_http_server_port(srv));
    return FS_OK;
}

static void http_stop(fs_app *app)
{
    pthread_mutex_lock(&app->lock);
    fs_http_server *srv = app->http;
    app->http = NULL;
    pthread_mutex_unlock(&app->lock);
    fs_http_server_free(srv);
}

/*
 * Append "broker/subscriber (k of n workers)" for every subscriber of `b`
 * whose handlers still run to buf; returns how many there were.
 */
static size_t busy_handlers(fs_broker *b, char *buf, size_t size)
{
    size_t count = 0;
    pthread_mutex_lock(&b->lock);
    for (struct fs_subscriber *s = b->subs; s; s = s->next) {
        if (!s->live_workers)
            continue;
        size_t n = strlen(buf);
        snprintf(buf + n, size - n, "%s%s/%s (%u of %u workers)", n ? ", " : "", fs_broker_name(b),
                 s->name, s->live_workers, s->concurrency);
        count++;
    }
    pthread_mutex_unlock(&b->lock);
    return count;
}

static bool has_live_workers(fs_broker *b)
{
    pthread_mutex_lock(&b->lock);
    bool busy = b->live_workers > 0;
    pthread_mutex_unlock(&b->lock);
    return busy;
}

/*
 * Stop consuming everywhere first, then close connections. A broker whose
 * handlers outlive the graceful timeout is left open (closing it would wait
 * for them without a limit): FS_ETIMEDOUT naming those handlers.
 */
static int stop_brokers(fs_app *app, size_t n)
{
    char busy[512] = "";
    size_t stuck = 0;
    for (size_t i = n; i-- > 0;) {
        fs_broker *b = app->brokers[i];
        int rc = app->opts.graceful_timeout_ms != 0
                     ? fs__broker_stop_timeout(b, app->opts.graceful_timeout_ms)
                     : fs_broker_stop(b);
        if (rc < 0)
            fs__log(FS_LOG_WARN, "app", "broker %s: %s", fs_broker_name(b), fs_last_error());
    }
    for (size_t i = n; i-- > 0;) {
        size_t k = busy_handlers(app->brokers[i], busy, sizeof busy);
        if (k == 0)
            fs_broker_close(app->brokers[i]);
        stuck += k;
    }
    if (!stuck)
        return FS_OK;
    fs__log(FS_LOG_ERROR, "app", "handlers still running after the graceful timeout: %s", busy);
    return fs__error(FS_ETIMEDOUT,
                     "fs_app_run: %zu handler(s) still running after the graceful timeout: %s; "
                     "their brokers are left open (the process may exit)",
                     stuck, busy);
}

static void drain_pipe(fs_app *app)
{
    char buf[64];
    while (read(app->pipe_fd[0], buf, sizeof buf) > 0) {
    }
}

int fs_app_run(fs_app *app)
{
    FS_CHECK_ARG(app, "fs_app_run: app is NULL");
    bool expected = false;
    if (!atomic_compare_exchange_strong(&app->in_run, &expected, true))
        return fs__error(FS_ESTATE, "fs_app_run: the app is already running");

    struct sigaction old_int, old_term;
    bool signals = !app->opts.no_signals;
    if (signals) {
        int none = -1;
        if (!atomic_compare_exchange_strong(&signal_fd, &none, app->pipe_fd[1])) {
            fs__log(FS_LOG_WARN, "app", "another app handles signals; this one does not");
            signals = false;
        } else {
            struct sigaction sa;
            memset(&sa, 0, sizeof sa);
            sa.sa_handler = on_signal;
            sigemptyset(&sa.sa_mask);
            sa.sa_flags = SA_RESTART;
            sigaction(SIGINT, &sa, &old_int);
            sigaction(SIGTERM, &sa, &old_term);
        }
    }

    int rc = run_hooks(app, &app->on_startup, "on_startup", true);
    size_t started = 0;
    for (; rc == FS_OK && started < app->broker_count; started++) {
        if (fs_broker_running(app->brokers[started]))
            continue; /* the user started it already */
        rc = fs_broker_start(app->brokers[started]);
        if (rc < 0) {
            fs__log(FS_LOG_ERROR, "app", "broker %s failed to start: %s",
                    fs_broker_name(app->brokers[started]), fs_last_error());
            break;
        }
    }
    if (rc == FS_OK && !app->opts.http_disabled) {
        rc = http_start(app);
        if (rc < 0)
            fs__log(FS_LOG_ERROR, "app", "HTTP server failed to start: %s", fs_last_error());
    }
    if (rc == FS_OK) {
        atomic_store(&app->running, true);
        run_hooks(app, &app->after_startup, "after_startup", false);
        fs__log(FS_LOG_INFO, "app", "started with %zu broker(s)", app->broker_count);
        while (!atomic_load(&app->stop_requested)) {
            struct pollfd pfd = {.fd = app->pipe_fd[0], .events = POLLIN};
            int n = poll(&pfd, 1, 1000);
            if (n > 0) {
                drain_pipe(app);
                break;
            }
        }
        fs__log(FS_LOG_INFO, "app", "shutting down");
        atomic_store(&app->running, false);
        run_hooks(app, &app->on_shutdown, "on_shutdown", false);
    }
    char errbuf[1024];
    snprintf(errbuf, sizeof errbuf, "%s", fs_last_error());
    int stop_rc = stop_brokers(app, started);
    if (rc == FS_OK && stop_rc < 0) {
        rc = stop_rc;
        snprintf(errbuf, sizeof errbuf, "%s", fs_last_error());
    }
    http_stop(app);
    if (rc == FS_OK)
        run_hooks(app, &app->after_shutdown, "after_shutdown", false);

    if (signals) {
        sigaction(SIGINT, &old_int, NULL);
        sigaction(SIGTERM, &old_term, NULL);
        atomic_store(&signal_fd, -1);
    }
    drain_pipe(app);
    atomic_store(&app->stop_requested, false);
    atomic_store(&app->in_run, false);
    if (rc < 0) {
        fs__error(rc, "%s", errbuf);
        return rc;
    }
    fs__log(FS_LOG_INFO, "app", "stopped");
    return FS_OK;
}

void fs_app_stop(fs_app *app)
{
    if (!app)
        return;
    atomic_store(&app->stop_requested, true);
    if (app->pipe_fd[1] >= 0) {
        ssize_t w = write(app->pipe_fd[1], "x", 1);
        (void)w;
    }
}

bool fs_app_running(const fs_app *app)
{
    return app && atomic_load(&((fs_app *)app)->running);
}

uint16_t fs_app_http_port(const fs_app *app)
{
    if (!app)
        return 0;
    fs_app *a = (fs_app *)app;
    pthread_mutex_lock(&a->lock);
    uint16_t port = a->http ? fs_http_server_port(a->http) : 0;
    pthread_mutex_unlock(&a->lock);
    return port;
}

size_t fs_app_broker_count(const fs_app *app)
{
    return app ? app->broker_count : 0;
}

fs_broker *fs_app_broker(const fs_app *app, size_t i)
{
    return app && i < app->broker_count ? app->brokers[i] : NULL;
}

void fs_app_free(fs_app *app)
{
    if (!app)
        return;
    if (atomic_load(&app->in_run)) {
        fs__log(FS_LOG_ERROR, "app", "fs_app_free called while the app runs; ignored");
        return;
    }
    for (size_t i = 0; i < app->broker_count; i++) {
        /* Freeing a broker whose handler never returns would wait forever
         * (and freeing it under the handler is not an option): leave it. */
        if (has_live_workers(app->brokers[i])) {
            fs__log(FS_LOG_ERROR, "app", "broker %s: handlers still running; not freed",
                    fs_broker_name(app->brokers[i]));
            continue;
        }
        fs_broker_free(app->brokers[i]);
    }
    free(app->brokers);
    free(app->on_startup.v);
    free(app->after_startup.v);
    free(app->on_shutdown.v);
    free(app->after_shutdown.v);
    for (size_t i = 0; i < app->route_count; i++)
        free(app->routes[i].path);
    free(app->routes);
    if (app->pipe_fd[0] >= 0)
        close(app->pipe_fd[0]);
    if (app->pipe_fd[1] >= 0)
        close(app->pipe_fd[1]);
    pthread_mutex_destroy(&app->lock);
    free(app->http_address);
    free(app->metrics_path);
    free(app->health_path);
    free(app);
}
