/*
 * A tiny blocking HTTP/1.1 client for tests, on plain POSIX sockets.
 *
 *   test_http_response r;
 *   if (test_http_request("127.0.0.1", port, "GET", "/metrics",
 *                         "Accept-Encoding: gzip\r\n", &r) == 0) {
 *       ... r.status, test_http_header(&r, "Content-Type"), r.body, r.body_len
 *       test_http_response_free(&r);
 *   }
 *
 * Every request is sent with "Connection: close" and read to EOF, so the body
 * is whatever follows the header block (no chunked decoding: the server under
 * test always sends a Content-Length). Sockets time out after 10 seconds.
 */
#ifndef FS_TEST_HTTP_CLIENT_H
#define FS_TEST_HTTP_CLIENT_H

#include <stddef.h>
#include <stdint.h>

typedef struct test_http_response {
    int status;
    char *head; /* the status line and headers, NUL-terminated */
    char *body; /* NUL-terminated (the NUL is not counted in body_len) */
    size_t body_len;
} test_http_response;

/*
 * Send `method path` to host:port (an IPv4 or IPv6 literal) with the raw
 * `extra_headers` ("Name: value\r\n" lines, may be NULL) and an optional
 * request body. Returns 0, or -1 with a message in test_http_error().
 */
int test_http_request_body(const char *host, uint16_t port, const char *method, const char *path,
                           const char *extra_headers, const void *body, size_t body_len,
                           test_http_response *out);

int test_http_request(const char *host, uint16_t port, const char *method, const char *path,
                      const char *extra_headers, test_http_response *out);

/* Send `raw` bytes as they are (a whole request) and read the response. */
int test_http_raw(const char *host, uint16_t port, const char *raw, test_http_response *out);

/* Connect a TCP socket to host:port; returns the fd or -1. */
int test_http_connect(const char *host, uint16_t port);

/* The calling thread's last failure message. */
const char *test_http_error(void);

/*
 * The value of header `name` (case-insensitive) copied to buf, or NULL when
 * absent. With several headers of that name the first wins.
 */
const char *test_http_header(const test_http_response *r, const char *name, char *buf, size_t size);

void test_http_response_free(test_http_response *r);

/* Inflate a gzip member; returns a malloc'ed NUL-terminated buffer or NULL. */
char *test_gunzip(const void *data, size_t len, size_t *out_len);

#endif
