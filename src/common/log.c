#include "internal.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>

static void default_sink(fs_log_level level, const char *component, const char *message, void *user)
{
    (void)user;
    fprintf(stderr, "faststream %s %s: %s\n", fs_log_level_name(level), component, message);
}

/*
 * The sink (function + user pointer) changes rarely and is read for every
 * line, from any thread, including a worker reporting a handler failure:
 * readers take no lock (a sequence lock). Writers serialise on sink_lock
 * and make sink_seq odd while they change the pair; a reader retries when
 * it saw an odd sequence or the sequence changed under it.
 */
static pthread_mutex_t sink_lock = PTHREAD_MUTEX_INITIALIZER;
static atomic_uint sink_seq;
static _Atomic(fs_log_fn) sink_fn = default_sink;
static _Atomic(void *) sink_user;
static atomic_int min_level = FS_LOG_INFO;

void fs_set_log_handler(fs_log_fn fn, void *user)
{
    pthread_mutex_lock(&sink_lock);
    unsigned seq = atomic_load_explicit(&sink_seq, memory_order_relaxed);
    atomic_store_explicit(&sink_seq, seq + 1, memory_order_relaxed);
    /* release: a reader that sees either new value also sees the odd sequence */
    atomic_store_explicit(&sink_fn, fn ? fn : default_sink, memory_order_release);
    atomic_store_explicit(&sink_user, fn ? user : NULL, memory_order_release);
    atomic_store_explicit(&sink_seq, seq + 2, memory_order_release);
    pthread_mutex_unlock(&sink_lock);
}

/* The current sink, as one consistent pair. */
static void sink_get(fs_log_fn *fn, void **user)
{
    for (;;) {
        unsigned seq = atomic_load_explicit(&sink_seq, memory_order_acquire);
        /* acquire: the second read of the sequence stays after these */
        *fn = atomic_load_explicit(&sink_fn, memory_order_acquire);
        *user = atomic_load_explicit(&sink_user, memory_order_acquire);
        if (!(seq & 1u) && atomic_load_explicit(&sink_seq, memory_order_relaxed) == seq)
            return;
    }
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

int fs_adapter_log_enabled(fs_log_level level)
{
    return (int)level >= atomic_load_explicit(&min_level, memory_order_relaxed) &&
           level != FS_LOG_OFF;
}

void fs_adapter_log(fs_log_level level, const char *component, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fs_adapter_vlog(level, component, fmt, ap);
    va_end(ap);
}

void fs_adapter_vlog(fs_log_level level, const char *component, const char *fmt, va_list ap)
{
    if (!fs_adapter_log_enabled(level))
        return;
    char line[1024];
    vsnprintf(line, sizeof line, fmt, ap);
    fs_log_fn fn;
    void *user;
    sink_get(&fn, &user);
    fn(level, component ? component : "faststream", line, user);
}
