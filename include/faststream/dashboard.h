/*
 * faststream/dashboard.h - the live dashboard page: the panels of
 * FastStream's Grafana dashboard (22130) drawn in the browser from this
 * process's own /metrics, once a second, with no Prometheus and no network
 * beyond the metrics server itself.
 *
 *   fs_http_server_add_dashboard(srv, "/", NULL);   // next to /metrics
 *
 * or, in an application, fs_app_options.dashboard = true. The page (HTML,
 * its script and uPlot, built into the library) keeps the last 10 minutes in
 * the browser and filters by app, handler and destination.
 */
#ifndef FASTSTREAM_DASHBOARD_H
#define FASTSTREAM_DASHBOARD_H

#include "faststream/http.h"

#include <stdbool.h>

#ifdef __cplusplus
extern "C" {
#endif

/** True when the library was built with the page (npm was present at build time). */
FS_API bool fs_dashboard_available(void);

/**
 * Serve the page at `path` (NULL: "/") of `srv`, reading `metrics_path`
 * (NULL: "/metrics"; it must stay valid while the server runs, and contain
 * only letters, digits and "/._-~"). FS_EINVAL for a bad path, FS_ECONFLICT
 * when the path is taken, FS_EUNSUPPORTED when the library was built without the
 * page.
 */
FS_API int fs_http_server_add_dashboard(fs_http_server *srv, const char *path,
                                        const char *metrics_path);

#ifdef __cplusplus
}
#endif

#endif
