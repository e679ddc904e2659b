/*
 * faststream/exposition.h - rendering a registry in the Prometheus text
 * format 0.0.4 or OpenMetrics 1.0.0.
 */
#ifndef FASTSTREAM_EXPOSITION_H
#define FASTSTREAM_EXPOSITION_H

#include "faststream/metrics.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum fs_format {
    FS_FORMAT_TEXT = 0,        /**< text/plain; version=0.0.4 */
    FS_FORMAT_OPENMETRICS = 1, /**< application/openmetrics-text; version=1.0.0 */
} fs_format;

/**
 * The format a scraper asked for in its Accept header: OpenMetrics when it
 * lists application/openmetrics-text (with version 1.0.0 or none) with a
 * non-zero q that is not lower than the best q of the text format
 * (text/plain with version 0.0.4 or none, or the text and catch-all
 * wildcards); the text format otherwise (also for NULL).
 */
FS_API fs_format fs_format_negotiate(const char *accept);

/** The Content-Type header value for `format`, charset included. */
FS_API const char *fs_format_content_type(fs_format format);

/** A growable byte buffer. Zero-initialise it; release with fs_buffer_free. */
typedef struct fs_buffer {
    char *data; /**< NUL-terminated after every successful render */
    size_t len;
    size_t cap;
} fs_buffer;

/** Free the buffer's data and zero it (ready for reuse). NULL is ignored. */
FS_API void fs_buffer_free(fs_buffer *buf);

/**
 * Append the exposition of every family and collector of `reg` (NULL: the
 * default registry) to `out`, families in name order, children in
 * label-value order (bytewise, value by value). Safe while other threads
 * update metrics; never blocks them (label sets created since the last
 * render are sorted in under their family's lock, which only the creation
 * of new label sets waits for). Each histogram is read whole: its buckets,
 * _count and _sum belong to the same observations. Families past their
 * series limit add metrics_series_overflow_updates_total (metrics.h). On
 * failure `out` may hold part of it.
 */
FS_API int fs_registry_render(fs_registry *reg, fs_format format, fs_buffer *out);

#ifdef __cplusplus
}
#endif

#endif
