/* A tiny blocking HTTP/1.1 client for tests; see http_client.h. */
#include "support/http_client.h"

#include <zlib.h>

#include <errno.h>
#include <netdb.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

static _Thread_local char last_error[256];

static int fail(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(last_error, sizeof last_error, fmt, ap);
    va_end(ap);
    return -1;
}

const char *test_http_error(void)
{
    return last_error;
}

int test_http_connect(const char *host, uint16_t port)
{
    char service[8];
    snprintf(service, sizeof service, "%u", (unsigned)port);
    struct addrinfo hints, *res;
    memset(&hints, 0, sizeof hints);
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_NUMERICHOST | AI_NUMERICSERV;
    int rc = getaddrinfo(host, service, &hints, &res);
    if (rc != 0)
        return fail("getaddrinfo(%s): %s", host, gai_strerror(rc));
    int fd = socket(res->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        freeaddrinfo(res);
        return fail("socket: %s", strerror(errno));
    }
    struct timeval tv = {10, 0};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    if (connect(fd, res->ai_addr, res->ai_addrlen) != 0) {
        int e = errno;
        close(fd);
        freeaddrinfo(res);
        return fail("connect %s port %u: %s", host, (unsigned)port, strerror(e));
    }
    freeaddrinfo(res);
    return fd;
}

static int send_all(int fd, const void *data, size_t len)
{
    const char *p = data;
    while (len) {
        ssize_t n = send(fd, p, len, MSG_NOSIGNAL);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return fail("send: %s", strerror(errno));
        p += n;
        len -= (size_t)n;
    }
    return 0;
}

static int exchange(const char *host, uint16_t port, const void *head, size_t head_len,
                    const void *body, size_t body_len, test_http_response *out);

int test_http_request_body(const char *host, uint16_t port, const char *method, const char *path,
                           const char *extra_headers, const void *body, size_t body_len,
                           test_http_response *out)
{
    memset(out, 0, sizeof *out);
    char head[4096];
    int n;
    if (body)
        n = snprintf(head, sizeof head,
                     "%s %s HTTP/1.1\r\nHost: test\r\nConnection: close\r\n%s"
                     "Content-Length: %zu\r\n\r\n",
                     method, path, extra_headers ? extra_headers : "", body_len);
    else
        n = snprintf(head, sizeof head,
                     "%s %s HTTP/1.1\r\nHost: test\r\nConnection: close\r\n%s\r\n", method, path,
                     extra_headers ? extra_headers : "");
    if (n < 0 || (size_t)n >= sizeof head)
        return fail("request head too long");
    return exchange(host, port, head, (size_t)n, body, body_len, out);
}

int test_http_raw(const char *host, uint16_t port, const char *raw, test_http_response *out)
{
    memset(out, 0, sizeof *out);
    return exchange(host, port, raw, strlen(raw), NULL, 0, out);
}

static int exchange(const char *host, uint16_t port, const void *head, size_t head_len,
                    const void *body, size_t body_len, test_http_response *out)
{
    int fd = test_http_connect(host, port);
    if (fd < 0)
        return -1;
    if (send_all(fd, head, head_len) != 0 || (body && send_all(fd, body, body_len) != 0)) {
        close(fd);
        return -1;
    }

    size_t cap = 16384, len = 0;
    char *buf = malloc(cap);
    if (!buf) {
        close(fd);
        return fail("out of memory");
    }
    for (;;) {
        if (cap - len < 4096) {
            char *p = realloc(buf, cap * 2);
            if (!p) {
                free(buf);
                close(fd);
                return fail("out of memory");
            }
            buf = p;
            cap *= 2;
        }
        ssize_t r = recv(fd, buf + len, cap - len - 1, 0);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0) {
            int e = errno;
            free(buf);
            close(fd);
            return fail("recv: %s", strerror(e));
        }
        if (r == 0)
            break;
        len += (size_t)r;
    }
    close(fd);
    buf[len] = '\0';

    char *sep = strstr(buf, "\r\n\r\n");
    if (!sep || sscanf(buf, "HTTP/1.%*d %d", &out->status) != 1) {
        free(buf);
        return fail("malformed response");
    }
    size_t hlen = (size_t)(sep - buf) + 2; /* keep the last header's CRLF */
    out->head = malloc(hlen + 1);
    out->body_len = len - (hlen + 2);
    out->body = malloc(out->body_len + 1);
    if (!out->head || !out->body) {
        free(buf);
        test_http_response_free(out);
        return fail("out of memory");
    }
    memcpy(out->head, buf, hlen);
    out->head[hlen] = '\0';
    memcpy(out->body, sep + 4, out->body_len);
    out->body[out->body_len] = '\0';
    free(buf);
    return 0;
}

int test_http_request(const char *host, uint16_t port, const char *method, const char *path,
                      const char *extra_headers, test_http_response *out)
{
    return test_http_request_body(host, port, method, path, extra_headers, NULL, 0, out);
}

const char *test_http_header(const test_http_response *r, const char *name, char *buf, size_t size)
{
    size_t nlen = strlen(name);
    const char *line = strstr(r->head, "\r\n");
    while (line) {
        line += 2;
        const char *eol = strstr(line, "\r\n");
        if (!eol)
            break;
        if ((size_t)(eol - line) > nlen && strncasecmp(line, name, nlen) == 0 &&
            line[nlen] == ':') {
            const char *v = line + nlen + 1;
            while (*v == ' ' || *v == '\t')
                v++;
            size_t vlen = (size_t)(eol - v);
            if (vlen >= size)
                vlen = size - 1;
            memcpy(buf, v, vlen);
            buf[vlen] = '\0';
            return buf;
        }
        line = eol;
    }
    return NULL;
}

void test_http_response_free(test_http_response *r)
{
    free(r->head);
    free(r->body);
    r->head = r->body = NULL;
    r->body_len = 0;
}

char *test_gunzip(const void *data, size_t len, size_t *out_len)
{
    z_stream zs;
    memset(&zs, 0, sizeof zs);
    if (inflateInit2(&zs, 15 + 16) != Z_OK)
        return NULL;
    size_t cap = len * 4 + 1024, have = 0;
    char *out = malloc(cap);
    zs.next_in = (Bytef *)(uintptr_t)data;
    zs.avail_in = (uInt)len;
    int rc = Z_OK;
    while (out && rc != Z_STREAM_END) {
        if (cap - have < 1024) {
            char *p = realloc(out, cap * 2);
            if (!p)
                break;
            out = p;
            cap *= 2;
        }
        zs.next_out = (Bytef *)out + have;
        zs.avail_out = (uInt)(cap - have - 1);
        rc = inflate(&zs, Z_NO_FLUSH);
        have = (size_t)zs.total_out;
        if (rc != Z_OK && rc != Z_STREAM_END)
            break;
    }
    inflateEnd(&zs);
    if (!out || rc != Z_STREAM_END || zs.avail_in != 0) {
        free(out);
        return NULL;
    }
    out[have] = '\0';
    *out_len = have;
    return out;
}
