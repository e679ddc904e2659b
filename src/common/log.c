#include "internal.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>

static void default_sink(fs_log_level level, const char *component, const char *message, void *user)
{
    (void)user;
    fprintf(stderr, "faststream %s %s: %s\n", fs_log_level_name(level), component, message);
}

static pthread_mutex_t sink_lock = PTHREAD_MUTEX_INITIALIZER;
static fs_log_fn sink = default_sink;
static void *sink_user;
static atomic_int min_level = FS_LOG_INFO;

void fs_set_log_handler(fs_log_fn fn, void *user)
{
    pthread_mutex_lock(&sink_lock);
    sink = fn ? fn : default_sink;
    sink_user = fn ? user : NULL;
    pthread_mutex_unlock(&sink_lock);
}

void fs_set_log_level(fs_log_level level)
{
    if (level < FS_LOG_DEBUG)
        level = FS_LOG_DEBUG;
    if (level > FS_LOG_OFF)
        level = FS_LOG_OFF;
    atomic_store(&min_level, (int)level);
}

fs_log_level fs_get_log_level(void)
{
    return (fs_log_level)atomic_load(&min_level);
}

const char *fs_log_level_name(fs_log_level level)
{
    switch (level) {
    case FS_LOG_DEBUG:
        return "debug";
    case FS_LOG_INFO:
        return "info";
    case FS_LOG_WARN:
        return "warn";
    case FS_LOG_ERROR:
        return "error";
    case FS_LOG_OFF:
        return "off";
    }
    return "?";
}

int fs__log_enabled(fs_log_level level)
{
    return (int)level >= atomic_load_explicit(&min_level, memory_order_relaxed) &&
           level != FS_LOG_OFF;
}

void fs__log(fs_log_level level, const char *component, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fs__vlog(level, component, fmt, ap);
    va_end(ap);
}

void fs__vlog(fs_log_level level, const char *component, const char *fmt, va_list ap)
{
    if (!fs__log_enabled(level))
        return;
    char line[1024];
    vsnprintf(line, sizeof line, fmt, ap);
    pthread_mutex_lock(&sink_lock);
    fs_log_fn fn = sink;
    void *user = sink_user;
    pthread_mutex_unlock(&sink_lock);
    fn(level, component ? component : "faststream", line, user);
}
