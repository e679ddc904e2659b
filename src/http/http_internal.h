/*
 * Internal helpers of the HTTP endpoint, exposed for its unit tests. Not
 * installed.
 */
#ifndef FS_HTTP_INTERNAL_H
#define FS_HTTP_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>

/**
 * True when an Accept-Encoding header value accepts gzip: "gzip" (or
 * "x-gzip") listed with a non-zero q, or not listed while "*" is with a
 * non-zero q. False for NULL.
 */
bool fs__http_accepts_gzip(const char *accept_encoding);

/**
 * Compress `len` bytes of `in` into a gzip member. On success *out is a
 * malloc'ed buffer of *out_len bytes for the caller to free().
 */
int fs__http_gzip(const void *in, size_t len, void **out, size_t *out_len);

#endif
