/*
 * faststream/app.h - an application: brokers, the HTTP endpoint (/metrics,
 * health, user routes), lifecycle hooks, signal handling and graceful
 * shutdown.
 *
 *   fs_app_options ao = FS_APP_OPTIONS_INIT;   // or {0}: the same, every default
 *   ao.http_port = 9000;
 *   fs_app *app;
 *   fs_app_new(&ao, &app);
 *   fs_app_add_broker(app, broker);   // the app now owns the broker
 *   int rc = fs_app_run(app);         // until SIGINT / SIGTERM / fs_app_stop
 *   fs_app_free(app);
 *
 * fs_app_run:
 *   1. on_startup hooks (in the order added; a failing hook aborts the run)
 *   2. start every broker not running yet (connect, start subscribers),
 *      then the HTTP server
 *   3. after_startup hooks
 *   4. wait for SIGINT, SIGTERM or fs_app_stop
 *   5. on_shutdown hooks
 *   6. stop every broker gracefully (no new messages, in-flight handlers
 *      finish up to graceful_timeout_ms, their messages are settled), then
 *      close their connections and stop the HTTP server
 *   7. after_shutdown hooks
 * Signals are caught with a self-pipe (the handler only writes a byte);
 * the previous handlers are restored when fs_app_run returns. Only one
 * running app at a time handles signals (a second one logs a warning and
 * relies on fs_app_stop).
 */
#ifndef FASTSTREAM_APP_H
#define FASTSTREAM_APP_H

#include "faststream/broker.h"
#include "faststream/http.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct fs_app fs_app;

/** fs_app_options.http_port: bind any free port (see fs_app_http_port). */
#define FS_APP_PORT_ANY (-1)

/**
 * Application options. A zeroed struct (or NULL, or FS_APP_OPTIONS_INIT)
 * means every default: HTTP on 127.0.0.1:8000 with /metrics and /health,
 * SIGINT/SIGTERM handled. NULL strings mean their default.
 */
typedef struct fs_app_options {
    /** Do not serve HTTP (metrics, health, routes). Default false: serve it. */
    bool http_disabled;
    /** Bind address; NULL: "127.0.0.1". */
    const char *http_address;
    /** Port; 0: 8000; FS_APP_PORT_ANY picks a free one (see fs_app_http_port). */
    int http_port;
    /** Registry served at metrics_path; NULL: the default registry. */
    fs_registry *registry;
    /** NULL: "/metrics". */
    const char *metrics_path;
    /** NULL: "/health" (204 when every broker pings, 500 otherwise); "" disables it. */
    const char *health_path;
    /** Per-broker wait for in-flight handlers at shutdown; 0: each broker's own setting. */
    int graceful_timeout_ms;
    /** Do not catch SIGINT and SIGTERM during fs_app_run. Default false: catch them. */
    bool no_signals;
    /**
     * Serve the live dashboard page (faststream/dashboard.h) at "/" beside
     * metrics_path. Default false. fs_app_run fails with FS_EUNSUPPORTED when
     * the library was built without the page.
     */
    bool dashboard;
    /**
     * More settings of the HTTP endpoint: limits, TLS, basic auth (see
     * fs_http_options); NULL: the defaults. Its address, port, registry and
     * paths are ignored (the fields above win). Read when fs_app_run starts
     * the endpoint: it and its strings must stay valid until then.
     */
    const fs_http_options *http_options;
} fs_app_options;

#define FS_APP_OPTIONS_INIT                                                                        \
    {                                                                                              \
        false, NULL, 0, NULL, NULL, NULL, 0, false, false, NULL                                    \
    }

/** A lifecycle hook. A non-zero return from on_startup aborts fs_app_run with that status. */
typedef int (*fs_app_hook)(fs_app *app, void *user);

/** Create an application. `opts` may be NULL for the defaults. */
FS_API int fs_app_new(const fs_app_options *opts, fs_app **out);

/**
 * Add a broker. The app owns it from now on (fs_app_free frees it).
 * Not while running (FS_ESTATE).
 */
FS_API int fs_app_add_broker(fs_app *app, fs_broker *broker);

/*
 * Lifecycle hooks, run in the order added (steps 1, 3, 5 and 7 above). Each
 * adder returns FS_EINVAL for a NULL app or hook, FS_ESTATE while the app
 * runs, FS_ENOMEM when out of memory.
 */

/** Add a hook run before the brokers start; a non-zero return aborts fs_app_run. */
FS_API int fs_app_on_startup(fs_app *app, fs_app_hook fn, void *user);

/** Add a hook run once brokers and HTTP are up; a failure is logged, the run goes on. */
FS_API int fs_app_after_startup(fs_app *app, fs_app_hook fn, void *user);

/** Add a hook run when shutdown begins, before the brokers stop; failures are logged. */
FS_API int fs_app_on_shutdown(fs_app *app, fs_app_hook fn, void *user);

/** Add a hook run after everything stopped (after a clean run only); failures are logged. */
FS_API int fs_app_after_shutdown(fs_app *app, fs_app_hook fn, void *user);

/** Add a user HTTP route (GET/HEAD at the exact path). Before or during the run. */
FS_API int fs_app_add_route(fs_app *app, const char *path, fs_http_route_fn fn, void *user);

/**
 * Run the application (steps above) and return when it has shut down:
 * FS_OK after a clean shutdown, the failing step's status otherwise
 * (everything started is stopped again). FS_ESTATE when already running.
 * It always returns once the graceful timeout is over (unless that is -1):
 * when handlers are still running then, FS_ETIMEDOUT with a message naming
 * them ("broker/subscriber (k of n workers)"); their brokers are left open,
 * fs_app_free leaves them allocated, and the process may exit.
 */
FS_API int fs_app_run(fs_app *app);

/**
 * Ask a running fs_app_run to shut down. Returns at once. Safe from any
 * thread, from a handler, and from a signal handler. Before the run starts
 * it makes the next fs_app_run shut down right after starting.
 */
FS_API void fs_app_stop(fs_app *app);

/** True while fs_app_run is between startup and shutdown. */
FS_API bool fs_app_running(const fs_app *app);

/** The bound HTTP port while running (useful with FS_APP_PORT_ANY), else 0. */
FS_API uint16_t fs_app_http_port(const fs_app *app);

/**
 * True when every broker answers fs_broker_ping (the health route's
 * verdict). `timeout_ms` per broker.
 */
FS_API bool fs_app_healthy(const fs_app *app, int timeout_ms);

/** Number of brokers added (0 for NULL). */
FS_API size_t fs_app_broker_count(const fs_app *app);

/** The i-th broker added (NULL out of range or for NULL). */
FS_API fs_broker *fs_app_broker(const fs_app *app, size_t i);

/**
 * Free the app and its brokers. Must not be running. NULL is ignored. A
 * broker whose handlers are still running (see fs_app_run) is not freed:
 * that would wait for them, or pull memory from under them.
 */
FS_API void fs_app_free(fs_app *app);

#ifdef __cplusplus
}
#endif

#endif /* FASTSTREAM_APP_H */
