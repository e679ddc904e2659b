/*
 * Internal parts of the HTTP endpoint, shared by its files and exposed for
 * its unit tests and fuzz targets. Not installed.
 */
#ifndef FS_HTTP_INTERNAL_H
#define FS_HTTP_INTERNAL_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "faststream/common.h"

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

/* ------------------------------------------------------------------------ */
/* Connection guard (guard.c): the connection cap and the request deadline. */

/* One open connection, in arrival order on the guard's list. */
typedef struct fs__http_conn {
    struct fs__http_conn *prev, *next;
    int fd;              /* our dup of the socket: shutdown() on it ends the connection */
    int64_t deadline_ms; /* CLOCK_MONOTONIC: the current request must be answered by then */
    bool answered;       /* a response is queued for the current request */
    bool closing;        /* shut down by the guard; MHD has yet to notice */
} fs__http_conn;

typedef struct fs__http_guard {
    pthread_mutex_t lock;
    pthread_cond_t wake;
    fs__http_conn list; /* sentinel of a circular list, oldest first */
    size_t live;        /* connections on the list not closing */
    size_t max_live;
    int64_t timeout_ms;
    pthread_t reaper;
    bool reaper_running;
    bool stopping;
    _Atomic uint64_t evicted;   /* closed to make room for a newer connection */
    _Atomic uint64_t timed_out; /* closed at their deadline */
} fs__http_guard;

void fs__http_guard_init(fs__http_guard *g, size_t max_live, int64_t timeout_ms);
/** Start the thread that closes connections past their deadline. */
int fs__http_guard_start(fs__http_guard *g);
/** Stop that thread (the list stays: MHD reports every close). */
void fs__http_guard_stop(fs__http_guard *g);
void fs__http_guard_destroy(fs__http_guard *g);
/** A connection opened on `fd`; evicts the oldest unanswered ones above the cap. */
fs__http_conn *fs__http_guard_opened(fs__http_guard *g, int fd);
void fs__http_guard_closed(fs__http_guard *g, fs__http_conn *c);
/** A response is queued for c's current request. */
void fs__http_guard_answered(fs__http_guard *g, fs__http_conn *c);
/** c's request is over: the next one (or idleness) has timeout_ms from now. */
void fs__http_guard_completed(fs__http_guard *g, fs__http_conn *c);

/* libmicrohttpd's messages, rate-limited (guard.c). */
typedef struct fs__http_log_limit {
    pthread_mutex_t lock;
    int64_t window; /* time(): start of the current window */
    unsigned count;
    unsigned long suppressed;
} fs__http_log_limit;

/**
 * The level to log libmicrohttpd's `line` at: debug for what a client
 * causes, warning otherwise, but at most a burst of warnings a minute.
 * *suppressed: the warnings left out in the window just ended, to report.
 */
fs_log_level fs__http_log_level(fs__http_log_limit *l, const char *line, unsigned long *suppressed);

/* ------------------------------------------------------------------------ */
/* Basic auth (auth.c).                                                     */

typedef struct fs__http_auth {
    bool enabled;
    uint8_t user_digest[32]; /* SHA-256 of the user name */
    uint8_t pass_digest[32]; /* SHA-256 of the password (plain and sha256: forms) */
    char *crypt_hash;        /* a crypt(3) hash (bcrypt...), or NULL */
    pthread_mutex_t cache_lock;
    bool cached;
    uint8_t cache_digest[32]; /* SHA-256 of the last password crypt_hash accepted */
} fs__http_auth;

/**
 * Set up `a` from the options' user, plain password and hash (all NULL:
 * disabled). FS_EINVAL naming what is wrong.
 */
int fs__http_auth_init(fs__http_auth *a, const char *user, const char *password, const char *hash);
void fs__http_auth_destroy(fs__http_auth *a);
/** True when user/password (NULL: none given) are the configured ones. Constant time. */
bool fs__http_auth_check(fs__http_auth *a, const char *user, const char *password);
/** SHA-256 of `len` bytes. */
void fs__http_sha256(const void *data, size_t len, uint8_t out[32]);

/* ------------------------------------------------------------------------ */
/* The gate (gate.c): what a request must pass before it is routed.         */

struct MHD_Connection;

typedef struct fs__http_gate {
    size_t max_header_bytes;
    bool verify_client; /* a client certificate is required (TLS with a client CA) */
    fs__http_auth auth;
} fs__http_gate;

/**
 * 0 when the request may be routed, else the status to answer with and in
 * *body a static text for it (401: send it with the basic-auth challenge).
 */
unsigned fs__http_gate_check(fs__http_gate *g, struct MHD_Connection *conn, const char *version,
                             bool url_too_long, const char **body);

/** True when the request announces a body (Content-Length > 0 or Transfer-Encoding). */
bool fs__http_has_body(struct MHD_Connection *conn);

/**
 * Read a whole (small) file into a NUL-terminated malloc'ed string;
 * FS_EIO/FS_ENOMEM naming `what` and the path.
 */
int fs__http_read_file(const char *what, const char *path, char **out);

#endif
