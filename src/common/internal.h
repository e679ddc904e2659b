/*
 * Internal helpers shared by every part of the library: error recording and
 * logging. Not installed.
 */
#ifndef FS_INTERNAL_COMMON_H
#define FS_INTERNAL_COMMON_H

#include "faststream/common.h"

#include <stdarg.h>

/**
 * Record `fmt` as this thread's last error and return `status`. The
 * arguments may include fs_last_error() itself (to add context to it).
 */
int fs__error(int status, const char *fmt, ...) FS_PRINTF(2, 3);

/** fs__error with a va_list. */
int fs__verror(int status, const char *fmt, va_list ap) FS_PRINTF(2, 0);

/** Emit a log line through the user's handler, if `level` passes the filter. */
void fs__log(fs_log_level level, const char *component, const char *fmt, ...) FS_PRINTF(3, 4);

/** fs__log with a va_list. */
void fs__vlog(fs_log_level level, const char *component, const char *fmt, va_list ap)
    FS_PRINTF(3, 0);

/** True when a line at `level` would be emitted (cheap; check before formatting). */
int fs__log_enabled(fs_log_level level);

/*
 * For thread-locals read on hot paths: the initial-exec model makes an
 * access one segment-relative load instead of a __tls_get_addr call from a
 * shared library. Keep such variables small: they take static TLS space,
 * which a late dlopen of the library must still find.
 */
#if defined(__GNUC__)
#define FS_TLS_MODEL __attribute__((tls_model("initial-exec")))
#else
#define FS_TLS_MODEL
#endif

#define FS_CHECK_ARG(cond, ...)                                                                    \
    do {                                                                                           \
        if (!(cond))                                                                               \
            return fs__error(FS_EINVAL, __VA_ARGS__);                                              \
    } while (0)

#endif
