/*
 * Connections to redis-server: opening (AUTH, SELECT), commands with
 * timeouts, replies awaited with poll() so that a stop can interrupt a
 * reader, and the pool of connections shared by publishers and
 * acknowledgements.
 */
#include "internal.h"

#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static struct timeval ms_tv(int ms)
{
    struct timeval tv = {ms / 1000, (ms % 1000) * 1000};
    return tv;
}

int fs__redis_reply_error(const redisReply *r, const char *what)
{
    if (!r)
        return fs_adapter_error(FS_EPROTOCOL, "redis: %s: no reply", what);
    if (r->type == REDIS_REPLY_ERROR)
        return fs_adapter_error(FS_EBROKER, "redis: %s: %s", what, r->str);
    return FS_OK;
}

/* ------------------------------------------------------------------------ */
/* Replies carved out of blocks                                             */

/*
 * hiredis' default reader makes two allocations per element of a reply (the
 * redisReply, its string) and freeReplyObject as many frees: most of the
 * client's work on a batch of 100 list values or stream entries. Ours builds
 * a reply and all its elements in a chain of blocks, one allocation for a
 * batch (more for a reply larger than the first block), freed at once by
 * fs__redis_reply_free. The replies look the same to their readers.
 */
#define RBLOCK_FIRST 4096u

typedef struct rblock {
    struct rblock *prev; /* the block filled before this one; NULL: the first */
    size_t used, cap;    /* bytes of the data after this header */
} rblock;

/* The start of a reply's first block: where to allocate, then the root reply itself. */
typedef struct rroot {
    rblock *cur;
    redisReply reply;
} rroot;

#define RALIGN(n) (((n) + 15u) & ~(size_t)15u)
#define RBLOCK_DATA(b) ((char *)(b) + RALIGN(sizeof(rblock)))

static void *rblock_take(rroot *root, size_t n)
{
    if (n > SIZE_MAX / 2) /* more than memory holds; keeps the sums below from wrapping */
        return NULL;
    n = RALIGN(n);
    rblock *b = root->cur;
    if (b->cap - b->used < n) {
        size_t cap = b->cap * 2 > n ? b->cap * 2 : n;
        if (cap > (1u << 20) && n <= (1u << 20))
            cap = 1u << 20;
        rblock *nb = malloc(RALIGN(sizeof(rblock)) + cap);
        if (!nb)
            return NULL;
        nb->prev = b;
        nb->used = 0;
        nb->cap = cap;
        root->cur = b = nb;
    }
    void *p = RBLOCK_DATA(b) + b->used;
    b->used += n;
    return p;
}

/* The root of the reply that `r`, created for `task`, belongs to. */
static rroot *root_of(const redisReadTask *task, redisReply *r)
{
    if (task->parent) {
        while (task->parent)
            task = task->parent;
        r = task->obj;
    }
    return (rroot *)((char *)r - offsetof(rroot, reply));
}

/*
 * A new element: the root starts a first block with `room` bytes to spare
 * (what a lone string needs; RBLOCK_FIRST for an array, whose size is
 * unknown); the others go in their root's blocks.
 */
static redisReply *reply_new(const redisReadTask *task, int type, size_t room)
{
    redisReply *r;
    if (!task->parent) {
        size_t head = RALIGN(sizeof(rblock)), need = RALIGN(sizeof(rroot));
        rblock *b = malloc(head + need + room);
        if (!b)
            return NULL;
        b->prev = NULL;
        b->used = need;
        b->cap = need + room;
        rroot *root = (rroot *)RBLOCK_DATA(b);
        root->cur = b;
        r = &root->reply;
    } else {
        if (!(r = rblock_take(root_of(task, NULL), sizeof *r)))
            return NULL;
        ((redisReply *)task->parent->obj)->element[task->idx] = r;
    }
    memset(r, 0, sizeof *r);
    r->type = type;
    return r;
}

static void *create_string(const redisReadTask *task, char *str, size_t len)
{
    redisReply *r = reply_new(task, task->type, RALIGN(len + 1));
    if (!r)
        return NULL;
    char *copy = rblock_take(root_of(task, r), len + 1);
    if (!copy) {
        if (!task->parent) /* hiredis never sees a root it did not get */
            fs__redis_reply_free(r);
        return NULL;
    }
    memcpy(copy, str, len);
    copy[len] = '\0';
    r->str = copy;
    r->len = len;
    return r;
}

static void *create_array(const redisReadTask *task, int elements)
{
    redisReply *r = reply_new(task, REDIS_REPLY_ARRAY, RBLOCK_FIRST);
    if (!r)
        return NULL;
    if (elements > 0) {
        if ((size_t)elements <= SIZE_MAX / sizeof *r->element)
            r->element = rblock_take(root_of(task, r), (size_t)elements * sizeof *r->element);
        if (!r->element) {
            if (!task->parent) /* hiredis never sees a root it did not get */
                fs__redis_reply_free(r);
            return NULL;
        }
        memset(r->element, 0, (size_t)elements * sizeof *r->element);
    }
    r->elements = (size_t)(elements > 0 ? elements : 0);
    return r;
}

static void *create_integer(const redisReadTask *task, long long value)
{
    redisReply *r = reply_new(task, REDIS_REPLY_INTEGER, 0);
    if (r)
        r->integer = value;
    return r;
}

static void *create_nil(const redisReadTask *task)
{
    return reply_new(task, REDIS_REPLY_NIL, 0);
}

void fs__redis_reply_free(void *reply)
{
    if (!reply)
        return;
    rroot *root = (rroot *)((char *)reply - offsetof(rroot, reply));
    for (rblock *b = root->cur, *prev; b; b = prev) {
        prev = b->prev;
        free(b);
    }
}

static redisReplyObjectFunctions reply_functions = {create_string, create_array, create_integer,
                                                    create_nil, fs__redis_reply_free};

/* Record the context's I/O error, drop the connection and return the status. */
static int conn_fail(rconn *rc, const char *what)
{
    int status = FS_EIO;
    const char *err = rc->c ? rc->c->errstr : "not connected";
    if (rc->c && rc->c->err == REDIS_ERR_IO && strcmp(err, strerror(EAGAIN)) == 0)
        status = FS_ETIMEDOUT;
    if (rc->c && rc->c->err == REDIS_ERR_EOF)
        err = "connection closed by the server";
    fs_adapter_error(status, "redis: %s on %s: %s", what, rc->where[0] ? rc->where : "redis",
                     status == FS_ETIMEDOUT ? "timed out" : err);
    fs__redis_conn_close(rc);
    return status;
}

static int setup_command(rconn *rc, int argc, const char **argv, const char *what)
{
    redisReply *r = redisCommandArgv(rc->c, argc, argv, NULL);
    if (!r)
        return conn_fail(rc, what);
    int status = fs__redis_reply_error(r, what);
    fs__redis_reply_free(r);
    if (status)
        fs__redis_conn_close(rc);
    return status;
}

int fs__redis_conn_open(redis_broker *b, rconn *rc)
{
    fs__redis_conn_close(rc);
    snprintf(rc->where, sizeof rc->where, "%s:%d", b->host, b->port);
    redisContext *c = redisConnectWithTimeout(b->host, b->port, ms_tv(b->connect_timeout_ms));
    if (!c)
        return fs_adapter_error(FS_ENOMEM, "redis: out of memory for a connection");
    if (c->err) {
        int status =
            fs_adapter_error(FS_EIO, "redis: cannot connect to %s: %s", rc->where, c->errstr);
        redisFree(c);
        return status;
    }
    rc->c = c;
    c->reader->fn = &reply_functions;
    if (redisSetTimeout(c, ms_tv(b->command_timeout_ms)) != REDIS_OK)
        return conn_fail(rc, "setting the socket timeout");
    redisEnableKeepAlive(c);
    int status = FS_OK;
    if (b->password) {
        const char *argv[3] = {"AUTH", b->user ? b->user : b->password, b->password};
        status = setup_command(rc, b->user ? 3 : 2, argv, "AUTH");
    }
    if (!status && b->client_name) {
        const char *argv[3] = {"CLIENT", "SETNAME", b->client_name};
        status = setup_command(rc, 3, argv, "CLIENT SETNAME");
    }
    if (!status && b->db) {
        char db[16];
        snprintf(db, sizeof db, "%d", b->db);
        const char *argv[2] = {"SELECT", db};
        status = setup_command(rc, 2, argv, "SELECT");
    }
    return status;
}

void fs__redis_conn_close(rconn *rc)
{
    if (rc->c) {
        redisFree(rc->c);
        rc->c = NULL;
    }
}

void fs__redis_conn_free(rconn *rc)
{
    fs__redis_conn_close(rc);
    fs_kit_buf_free(&rc->enc);
    fs__redis_scratch_free(&rc->scratch);
    free(rc->argv);
    free(rc->argvlen);
    free(rc->offs);
    free(rc->kv);
    rc->kv = NULL;
    rc->kvcap = 0;
    rc->argv = NULL;
    rc->argvlen = NULL;
    rc->offs = NULL;
    rc->argcap = rc->offcap = 0;
}

int fs__redis_conn_args(rconn *rc, size_t n)
{
    size_t cap = rc->argcap;
    int st = fs_kit_grow((void **)&rc->argv, &cap, n, sizeof *rc->argv);
    if (!st)
        st = fs_kit_grow((void **)&rc->argvlen, &rc->argcap, n, sizeof *rc->argvlen);
    return st;
}

int fs__redis_conn_send(rconn *rc, int argc, const char **argv, const size_t *len)
{
    if (!rc->c)
        return fs_adapter_error(FS_EIO, "redis: not connected to %s", rc->where);
    if (redisAppendCommandArgv(rc->c, argc, argv, len) != REDIS_OK)
        return conn_fail(rc, "sending a command");
    return FS_OK;
}

int fs__redis_conn_send_formatted(rconn *rc, const char *cmd, size_t len)
{
    if (!rc->c)
        return fs_adapter_error(FS_EIO, "redis: not connected to %s", rc->where);
    if (redisAppendFormattedCommand(rc->c, cmd, len) != REDIS_OK)
        return conn_fail(rc, "sending a command");
    return FS_OK;
}

int fs__redis_conn_flush(rconn *rc)
{
    int done = 0;
    while (!done)
        if (redisBufferWrite(rc->c, &done) != REDIS_OK)
            return conn_fail(rc, "sending a command");
    return FS_OK;
}

int fs__redis_conn_recv(rconn *rc, int timeout_ms, int wake_fd, redisReply **out)
{
    void *r = NULL;
    *out = NULL;
    if (!rc->c)
        return fs_adapter_error(FS_EIO, "redis: not connected to %s", rc->where);
    if (redisGetReplyFromReader(rc->c, &r) != REDIS_OK)
        return conn_fail(rc, "reading a reply");
    uint64_t deadline = fs_kit_now_ms() + (uint64_t)(timeout_ms > 0 ? timeout_ms : 0);
    while (!r) {
        uint64_t now = fs_kit_now_ms();
        int left = timeout_ms < 0 ? -1 : now >= deadline ? 0 : (int)(deadline - now);
        struct pollfd p[2] = {{rc->c->fd, POLLIN, 0}, {wake_fd, POLLIN, 0}};
        int n = poll(p, wake_fd >= 0 ? 2 : 1, left);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return conn_fail(rc, "waiting for a reply");
        }
        if (p[0].revents) {
            if (redisBufferRead(rc->c) != REDIS_OK ||
                redisGetReplyFromReader(rc->c, &r) != REDIS_OK)
                return conn_fail(rc, "reading a reply");
            continue;
        }
        if (wake_fd >= 0 && (p[1].revents & POLLIN))
            return FS_ECLOSED;
        if (n == 0)
            return FS_ETIMEDOUT;
    }
    *out = r;
    return FS_OK;
}

int fs__redis_conn_set_timeout(rconn *rc, int ms)
{
    if (rc->c && redisSetTimeout(rc->c, ms_tv(ms)) != REDIS_OK)
        return conn_fail(rc, "setting the socket timeout");
    return FS_OK;
}

int fs__redis_conn_get(rconn *rc, redisReply **out)
{
    void *r = NULL;
    *out = NULL;
    if (!rc->c)
        return fs_adapter_error(FS_EIO, "redis: not connected to %s", rc->where);
    if (redisGetReply(rc->c, &r) != REDIS_OK)
        return conn_fail(rc, "reading a reply");
    *out = r;
    return FS_OK;
}

int fs__redis_conn_replies(rconn *rc, size_t count, const char *what)
{
    if (!rc->c)
        return fs_adapter_error(FS_EIO, "redis: not connected to %s", rc->where);
    int first = FS_OK;
    for (size_t i = 0; i < count; i++) {
        void *reply = NULL;
        if (redisGetReply(rc->c, &reply) != REDIS_OK)
            return conn_fail(rc, what);
        int e = fs__redis_reply_error(reply, what);
        if (e && !first)
            first = e;
        fs__redis_reply_free(reply);
    }
    return first;
}

int fs__redis_conn_command(rconn *rc, int argc, const char **argv, const size_t *len,
                           redisReply **out)
{
    *out = NULL;
    if (!rc->c)
        return fs_adapter_error(FS_EIO, "redis: not connected to %s", rc->where);
    redisReply *r = redisCommandArgv(rc->c, argc, argv, len);
    if (!r)
        return conn_fail(rc, "running a command");
    *out = r;
    return FS_OK;
}

/* An idle pooled connection that is readable was closed by the server (or is out of step). */
static bool conn_stale(rconn *rc)
{
    struct pollfd p = {rc->c->fd, POLLIN, 0};
    return poll(&p, 1, 0) != 0;
}

rconn *fs__redis_pool_get(redis_broker *b, int *status)
{
    if (atomic_load_explicit(&b->closed, memory_order_acquire)) {
        *status = fs_adapter_error(FS_ECLOSED, "redis: the broker is closed");
        return NULL;
    }
    pthread_mutex_lock(&b->mu);
    rconn *rc = b->pool;
    if (rc)
        b->pool = rc->next;
    pthread_mutex_unlock(&b->mu);
    if (!rc) {
        rc = calloc(1, sizeof *rc);
        if (!rc) {
            *status = fs_adapter_error(FS_ENOMEM, "redis: out of memory for a connection");
            return NULL;
        }
    }
    if (rc->c && conn_stale(rc))
        fs__redis_conn_close(rc);
    if (!rc->c && (*status = fs__redis_conn_open(b, rc)) < 0) {
        fs__redis_conn_free(rc);
        free(rc);
        return NULL;
    }
    *status = FS_OK;
    return rc;
}

void fs__redis_pool_put(redis_broker *b, rconn *rc)
{
    if (!rc)
        return;
    if (!rc->c || atomic_load_explicit(&b->closed, memory_order_acquire)) {
        fs__redis_conn_free(rc);
        free(rc);
        return;
    }
    pthread_mutex_lock(&b->mu);
    rc->next = b->pool;
    b->pool = rc;
    pthread_mutex_unlock(&b->mu);
}

void fs__redis_pool_drain(redis_broker *b)
{
    pthread_mutex_lock(&b->mu);
    rconn *rc = b->pool;
    b->pool = NULL;
    pthread_mutex_unlock(&b->mu);
    while (rc) {
        rconn *next = rc->next;
        fs__redis_conn_free(rc);
        free(rc);
        rc = next;
    }
}
