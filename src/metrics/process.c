/*
 * The process collector, computed from /proc the way Prometheus' Go client
 * (procfs) and Python client do.
 */
#include "metrics_internal.h"

#include <dirent.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/resource.h>
#include <unistd.h>

/* The whole of a small /proc file, NUL-terminated, into buf. */
static int read_file(const char *path, char *buf, size_t size)
{
    FILE *f = fopen(path, "r");
    if (!f)
        return fs__error(FS_EIO, "process collector: cannot open %s", path);
    size_t n = fread(buf, 1, size - 1, f);
    fclose(f);
    buf[n] = '\0';
    return n ? FS_OK : fs__error(FS_EIO, "process collector: %s is empty", path);
}

/*
 * The boot time, from the "btime" line of /proc/stat. Read line by line: the
 * file outgrows any fixed buffer on hosts with many CPUs and interrupts (the
 * "intr" line before btime alone can take tens of KiB).
 */
static int boot_time(double *out)
{
    FILE *f = fopen("/proc/stat", "r");
    if (!f)
        return fs__error(FS_EIO, "process collector: cannot open /proc/stat");
    char line[256];
    bool line_start = true; /* `line` begins a line (not the rest of a long one) */
    while (fgets(line, sizeof line, f)) {
        if (line_start && strncmp(line, "btime ", 6) == 0) {
            fclose(f);
            *out = strtod(line + 6, NULL);
            return FS_OK;
        }
        line_start = strchr(line, '\n') != NULL;
    }
    fclose(f);
    return fs__error(FS_EIO, "process collector: no btime in /proc/stat");
}

static double max_fds(void)
{
    char buf[4096];
    if (read_file("/proc/self/limits", buf, sizeof buf) == FS_OK) {
        const char *p = strstr(buf, "Max open files");
        if (p) {
            p += strlen("Max open files");
            while (*p == ' ')
                p++;
            if (strncmp(p, "unlimited", 9) == 0)
                return INFINITY;
            return strtod(p, NULL);
        }
    }
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0)
        return rl.rlim_cur == RLIM_INFINITY ? INFINITY : (double)rl.rlim_cur;
    return NAN;
}

static int open_fds(double *out)
{
    DIR *d = opendir("/proc/self/fd");
    if (!d)
        return fs__error(FS_EIO, "process collector: cannot list /proc/self/fd");
    size_t n = 0;
    struct dirent *e;
    while ((e = readdir(d)))
        if (e->d_name[0] != '.')
            n++;
    closedir(d);
    *out = (double)n;
    return FS_OK;
}

static int add(fs_collect_ctx *ctx, const char *name, const char *help, fs_metric_type type,
               double v)
{
    int rc = fs_collect_family(ctx, name, help, type);
    return rc == FS_OK ? fs_collect_sample(ctx, 0, NULL, NULL, v) : rc;
}

static int process_collect(fs_collect_ctx *ctx, void *user)
{
    (void)user;
    char stat[2048];
    int rc = read_file("/proc/self/stat", stat, sizeof stat);
    if (rc != FS_OK)
        return rc;
    /* Fields after "pid (comm) "; the command may hold spaces and parens. */
    const char *p = strrchr(stat, ')');
    if (!p)
        return fs__error(FS_EIO, "process collector: malformed /proc/self/stat");
    p += 2;
    /* p points at field 3 (state); we need fields 14, 15, 22, 23, 24. */
    double f[25] = {0};
    for (int field = 3; field <= 24 && *p; field++) {
        f[field] = strtod(p, NULL);
        while (*p && *p != ' ')
            p++;
        while (*p == ' ')
            p++;
    }
    double ticks = (double)sysconf(_SC_CLK_TCK);
    double page = (double)sysconf(_SC_PAGESIZE);
    double btime = 0, fds = 0;
    if ((rc = boot_time(&btime)) != FS_OK || (rc = open_fds(&fds)) != FS_OK)
        return rc;
    if ((rc = add(ctx, "process_cpu_seconds_total",
                  "Total user and system CPU time spent in seconds.", FS_METRIC_COUNTER,
                  (f[14] + f[15]) / ticks)) != FS_OK ||
        (rc = add(ctx, "process_max_fds", "Maximum number of open file descriptors.",
                  FS_METRIC_GAUGE, max_fds())) != FS_OK ||
        (rc = add(ctx, "process_open_fds", "Number of open file descriptors.", FS_METRIC_GAUGE,
                  fds)) != FS_OK ||
        (rc = add(ctx, "process_resident_memory_bytes", "Resident memory size in bytes.",
                  FS_METRIC_GAUGE, f[24] * page)) != FS_OK ||
        (rc = add(ctx, "process_start_time_seconds",
                  "Start time of the process since unix epoch in seconds.", FS_METRIC_GAUGE,
                  btime + f[22] / ticks)) != FS_OK ||
        (rc = add(ctx, "process_virtual_memory_bytes", "Virtual memory size in bytes.",
                  FS_METRIC_GAUGE, f[23])) != FS_OK)
        return rc;
    return FS_OK;
}

int fs_process_collector_register(fs_registry *reg)
{
    return fs_registry_add_collector(reg, "process", process_collect, NULL, NULL);
}
