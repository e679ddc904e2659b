/*
 * bench/bench_broker.h - a connected broker for the broker benchmarks,
 * with or without the Prometheus middleware (on a registry of its own).
 */
#ifndef FS_BENCH_BROKER_H
#define FS_BENCH_BROKER_H

#include "faststream/faststream.h"
#include "faststream/prometheus.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>

/*
 * Create and connect a broker for `url`; with `prom`, the Prometheus
 * middleware on a new registry returned in *reg (else *reg = NULL). On
 * failure: prints what failed and exits (benchmarks only).
 */
static inline fs_broker *bench_broker_new(const char *url, bool prom, fs_registry **reg)
{
    fs_broker *b;
    const char *what = "broker";
    *reg = NULL;
    if (fs_broker_new(url, NULL, &b) < 0)
        goto fail;
    if (prom) {
        fs_prometheus_options po = FS_PROMETHEUS_OPTIONS_INIT;
        what = "prometheus";
        if (fs_registry_new(reg) < 0)
            goto fail;
        po.registry = *reg;
        if (fs_broker_add_prometheus(b, &po) < 0)
            goto fail;
    }
    what = "connect";
    if (fs_broker_connect(b) < 0)
        goto fail;
    return b;
fail:
    fprintf(stderr, "bench: %s (%s): %s\n", what, url, fs_last_error());
    exit(1);
}

#endif
