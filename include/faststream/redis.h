/*
 * faststream/redis.h - the Redis broker: channels (pub/sub), lists and
 * streams on a redis-server, reading and writing FastStream's own Redis
 * message formats so a C service and a Python FastStream service share one
 * Redis.
 */
#ifndef FASTSTREAM_REDIS_H
#define FASTSTREAM_REDIS_H

#include "faststream/common.h"

#ifdef __cplusplus
extern "C" {
#endif

/**
 * How a publisher lays a message out in Redis. Subscribers read every
 * format whatever this says.
 */
typedef enum fs_redis_format {
    /** FastStream's binary format v1 (its default since FastStream 0.6): headers and body. */
    FS_REDIS_FORMAT_BINARY = 0,
    /** FastStream's JSON envelope {"data": ..., "headers": {...}}; body must be UTF-8. */
    FS_REDIS_FORMAT_JSON = 1,
    /** The body alone, no headers (for non-FastStream consumers). */
    FS_REDIS_FORMAT_RAW = 2,
} fs_redis_format;

/** "binary", "json" or "raw". */
const char *fs_redis_format_name(fs_redis_format format);

#ifdef __cplusplus
}
#endif

#endif /* FASTSTREAM_REDIS_H */
