/*
 * faststream/common.h - status codes, error messages, logging and version.
 *
 * Every public function that can fail returns an int status: FS_OK (0) on
 * success, a negative FS_E* code on failure. A failing call also records a
 * readable message for the calling thread, which fs_last_error() returns until
 * the next failure in that thread. Functions that return a pointer return NULL
 * on failure and set the message the same way.
 */
#ifndef FASTSTREAM_COMMON_H
#define FASTSTREAM_COMMON_H

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define FASTSTREAM_VERSION_MAJOR 0
#define FASTSTREAM_VERSION_MINOR 1
#define FASTSTREAM_VERSION_PATCH 0
#define FASTSTREAM_VERSION_STRING "0.1.0"

/*
 * FS_API marks the library's public functions: the libraries are built with
 * hidden visibility, so only what is marked is exported (a program or an
 * adapter library that reaches for an internal fs__* symbol fails to link).
 */
#if defined(__GNUC__)
#define FS_API __attribute__((visibility("default")))
#else
#define FS_API
#endif

#if defined(__GNUC__) && !defined(FS_NO_ATTRIBUTES)
#define FS_PRINTF(fmt, args) __attribute__((format(printf, fmt, args)))
#define FS_NODISCARD __attribute__((warn_unused_result))
#else
#define FS_PRINTF(fmt, args)
#define FS_NODISCARD
#endif

/** Status codes. FS_OK is 0; every error is negative. */
typedef enum fs_status {
    FS_OK = 0,
    FS_EINVAL = -1,        /**< an argument is invalid (NULL, bad name, wrong count...) */
    FS_ENOMEM = -2,        /**< out of memory */
    FS_ECONFLICT = -3,     /**< conflicts with something already registered */
    FS_ENOTFOUND = -4,     /**< no such metric, route, queue... */
    FS_ESTATE = -5,        /**< the object is not in a state that allows the call */
    FS_EIO = -6,           /**< I/O, socket or connection failure */
    FS_ETIMEDOUT = -7,     /**< the operation timed out */
    FS_EFULL = -8,         /**< a bounded queue or buffer is full */
    FS_ECLOSED = -9,       /**< the object was closed or stopped */
    FS_EUNSUPPORTED = -10, /**< not supported by this broker or build */
    FS_EBROKER = -11,      /**< the broker or its client library reported an error */
    FS_EPROTOCOL = -12,    /**< malformed data on the wire */
} fs_status;

/** A static, human-readable name for a status code ("invalid argument"...). */
FS_API const char *fs_strerror(int status);

/**
 * The message recorded by the last failing faststream call in this thread,
 * or "" when none failed yet. The string stays valid until the next failing
 * call in the same thread.
 */
FS_API const char *fs_last_error(void);

/** Forget the calling thread's last error message. */
FS_API void fs_clear_error(void);

/** Log levels, in increasing severity. */
typedef enum fs_log_level {
    FS_LOG_DEBUG = 0,
    FS_LOG_INFO = 1,
    FS_LOG_WARN = 2,
    FS_LOG_ERROR = 3,
    FS_LOG_OFF = 4,
} fs_log_level;

/**
 * A log sink. `component` names the part of the library that speaks
 * ("http", "app", "redis"...); `message` is one line without a newline.
 * It may be called from any thread, so it must be thread-safe.
 */
typedef void (*fs_log_fn)(fs_log_level level, const char *component, const char *message,
                          void *user);

/**
 * Route the library's log lines to `fn` (NULL restores the default, which
 * writes "faststream LEVEL component: message" lines to stderr).
 */
FS_API void fs_set_log_handler(fs_log_fn fn, void *user);

/** Drop log lines below `level` (default FS_LOG_INFO). */
FS_API void fs_set_log_level(fs_log_level level);

/** The current minimum log level. */
FS_API fs_log_level fs_get_log_level(void);

/** "debug", "info", "warn", "error" or "off". */
FS_API const char *fs_log_level_name(fs_log_level level);

/** The library version as "MAJOR.MINOR.PATCH". */
FS_API const char *fs_version(void);

#ifdef __cplusplus
}
#endif

#endif /* FASTSTREAM_COMMON_H */
