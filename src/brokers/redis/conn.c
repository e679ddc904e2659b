/*
 * Connections to redis-server: opening (AUTH, SELECT), commands with
 * timeouts, replies awaited with poll() so that a stop can interrupt a
 * reader, and the pool of connections shared by publishers and
 * acknowledgements.
 */
#include "internal.h"

#include <hiredis/sds.h>

#include <errno.h>
#include <poll.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

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
 *
 * What a server announces commits nothing: an array header ("*100000000")
 * gets room for a few elements, and the room doubles as elements arrive
 * (the capacity sits in the slot before element[0]). A reply's data is
 * capped at fs__redis_reply_limit bytes (1 GiB: a lying or hostile server
 * cannot make the client take more); above it the read fails with
 * FS_EPROTOCOL and the connection is dropped.
 */
#define RBLOCK_STD 8192u      /* data bytes of a standard reply block: pooled per connection */
#define RCONN_BUF_INIT 65536u /* bytes reserved at connect: read, output, encoding */
#define RCONN_ARGS_INIT 256u  /* arguments and batch offsets reserved at connect */
#define ARRAY_FIRST 8u

static _Atomic size_t reply_limit = (size_t)1 << 30;
/* Set by rblock_take when a reply went over the limit, read by conn_fail (same thread). */
static _Thread_local bool reply_too_large;

size_t fs__redis_reply_limit(size_t bytes)
{
    return bytes ? atomic_exchange(&reply_limit, bytes) : atomic_load(&reply_limit);
}

typedef struct rblock {
    struct rblock *prev; /* the block filled before this one; NULL: the first */
    size_t used, cap;    /* bytes of the data after this header */
    fs_kit_pool *pool;   /* where a standard block goes back, or NULL (malloc'ed, freed) */
} rblock;

/*
 * The start of a reply's first block: where to allocate, the count of
 * messages holding the reply (fs__redis_hold_new), then the root reply.
 */
struct rhold {
    rblock *cur;
    size_t total; /* bytes handed out for this reply, against reply_limit */
    _Atomic size_t refs;
    redisReply reply;
};
typedef struct rhold rroot;

#define RALIGN(n) (((n) + 15u) & ~(size_t)15u)
#define RBLOCK_HEAD RALIGN(sizeof(rblock))
#define RBLOCK_DATA(b) ((char *)(b) + RBLOCK_HEAD)

/*
 * A block of `cap` data bytes: a standard one from the connection's pool
 * (no allocation once warm), a larger one from malloc.
 */
static rblock *rblock_new(fs_kit_pool *pool, size_t cap)
{
    rblock *b;
    if (pool && cap <= RBLOCK_STD) {
        b = fs_kit_pool_get(pool);
        cap = RBLOCK_STD;
    } else {
        b = malloc(RBLOCK_HEAD + cap);
        pool = NULL;
    }
    if (!b)
        return NULL;
    b->prev = NULL;
    b->used = 0;
    b->cap = cap;
    b->pool = pool;
    return b;
}

static void rblock_free(rblock *b)
{
    if (b->pool)
        fs_kit_pool_put(b->pool, b);
    else
        free(b);
}

static void *rblock_take(rroot *root, size_t n)
{
    if (n > SIZE_MAX / 2) /* more than memory holds; keeps the sums below from wrapping */
        return NULL;
    n = RALIGN(n);
    if (n > atomic_load_explicit(&reply_limit, memory_order_relaxed) - root->total ||
        root->total > atomic_load_explicit(&reply_limit, memory_order_relaxed)) {
        reply_too_large = true;
        return NULL;
    }
    root->total += n;
    rblock *b = root->cur;
    if (b->cap - b->used < n) {
        size_t cap = b->cap * 2 > n ? b->cap * 2 : n;
        if (cap > (1u << 20) && n <= (1u << 20))
            cap = 1u << 20;
        if (n <= RBLOCK_STD)
            cap = RBLOCK_STD; /* a standard block again: pooled */
        rblock *nb = rblock_new(b->pool ? b->pool : NULL, cap);
        if (!nb)
            return NULL;
        nb->prev = b;
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

/* `cap` zeroed element slots, with the capacity in the slot before them. */
static redisReply **slots_new(rroot *root, size_t cap)
{
    void **p = rblock_take(root, (cap + 1) * sizeof *p);
    if (!p)
        return NULL;
    p[0] = (void *)(uintptr_t)cap;
    memset(p + 1, 0, cap * sizeof *p);
    return (redisReply **)(p + 1);
}

static size_t slots_cap(redisReply **element)
{
    return (size_t)(uintptr_t)((void **)element)[-1];
}

/* Room in array `a` for element `idx` (< a->elements), doubling as they arrive. */
static bool slot_for(rroot *root, redisReply *a, size_t idx)
{
    size_t cap = slots_cap(a->element);
    if (idx < cap)
        return true;
    size_t grown = cap * 2 > idx + 1 ? cap * 2 : idx + 1;
    size_t fit = (root->cur->cap - root->cur->used) / sizeof(void *);
    if (fit > grown + 1)
        grown = fit - 1; /* as much as the block at hand holds: it is taken anyway */
    if (grown > a->elements)
        grown = a->elements;
    redisReply **e = slots_new(root, grown);
    if (!e)
        return false;
    memcpy(e, a->element, cap * sizeof *e);
    a->element = e; /* the old slots stay in the block until the reply is freed */
    return true;
}

/*
 * A new element: the root starts a first block with `room` bytes to spare
 * (a standard pooled block unless a lone string needs more); the others go
 * in their root's blocks. The pool is the connection's (reader privdata).
 */
static redisReply *reply_new(const redisReadTask *task, int type, size_t room)
{
    redisReply *r;
    if (!task->parent) {
        size_t need = RALIGN(sizeof(rroot));
        rblock *b = rblock_new(task->privdata, need + room);
        if (!b)
            return NULL;
        b->used = need;
        rroot *root = (rroot *)RBLOCK_DATA(b);
        root->cur = b;
        root->total = 0;
        atomic_init(&root->refs, 0);
        r = &root->reply;
    } else {
        rroot *root = root_of(task, NULL);
        redisReply *parent = task->parent->obj;
        if (task->idx < 0 || (size_t)task->idx >= parent->elements ||
            !(r = rblock_take(root, sizeof *r)) || !slot_for(root, parent, (size_t)task->idx))
            return NULL;
        parent->element[task->idx] = r;
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
    redisReply *r = reply_new(task, REDIS_REPLY_ARRAY, 0);
    if (!r)
        return NULL;
    if (elements > 0) {
        /* All the slots when they fit the block at hand (memory already
         * taken), else room for the first few and the rest as they arrive
         * (see slot_for): an announced count alone never takes a block. */
        rroot *root = root_of(task, r);
        size_t fit = (root->cur->cap - root->cur->used) / sizeof(void *);
        size_t cap = (size_t)elements < fit           ? (size_t)elements
                     : (size_t)elements < ARRAY_FIRST ? (size_t)elements
                                                      : ARRAY_FIRST;
        r->element = slots_new(root, cap);
        if (!r->element) {
            if (!task->parent) /* hiredis never sees a root it did not get */
                fs__redis_reply_free(r);
            return NULL;
        }
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

int fs__redis_conn_reserve_replies(rconn *rc, size_t n)
{
    if (!rc->blocks.size)
        fs_kit_pool_init(&rc->blocks, RBLOCK_HEAD + RBLOCK_STD);
    void *got[64];
    if (n > 64)
        n = 64;
    size_t have = 0;
    while (have < n && (got[have] = fs_kit_pool_get(&rc->blocks)))
        have++;
    for (size_t i = 0; i < have; i++)
        fs_kit_pool_put(&rc->blocks, got[i]);
    return have == n ? FS_OK : FS_ENOMEM;
}

void fs__redis_reply_free(void *reply)
{
    if (!reply)
        return;
    rroot *root = (rroot *)((char *)reply - offsetof(rroot, reply));
    for (rblock *b = root->cur, *prev; b; b = prev) {
        prev = b->prev;
        rblock_free(b);
    }
}

rhold *fs__redis_hold_new(redisReply *reply)
{
    rroot *root = (rroot *)((char *)reply - offsetof(rroot, reply));
    atomic_store_explicit(&root->refs, 1, memory_order_relaxed);
    return root;
}

void fs__redis_hold_ref(rhold *h)
{
    atomic_fetch_add_explicit(&h->refs, 1, memory_order_relaxed);
}

void fs__redis_hold_drop(rhold *h)
{
    if (h && atomic_fetch_sub_explicit(&h->refs, 1, memory_order_acq_rel) == 1)
        fs__redis_reply_free(&h->reply);
}

void fs__redis_reply_done(redisReply *reply, rhold *h)
{
    if (h)
        fs__redis_hold_drop(h);
    else
        fs__redis_reply_free(reply);
}

static redisReplyObjectFunctions reply_functions = {create_string, create_array, create_integer,
                                                    create_nil, fs__redis_reply_free};

void fs__redis_reader_use_blocks(redisReader *reader)
{
    reader->fn = &reply_functions;
}

/* Record the context's I/O error, drop the connection and return the status. */
static int conn_fail(rconn *rc, const char *what)
{
    if (reply_too_large) {
        reply_too_large = false;
        fs_adapter_error(FS_EPROTOCOL, "redis: %s on %s: a reply of more than %zu bytes", what,
                         rc->where[0] ? rc->where : "redis", fs__redis_reply_limit(0));
        fs__redis_conn_close(rc);
        return FS_EPROTOCOL;
    }
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
    fs__redis_reader_use_blocks(c->reader);
    if (fs__redis_conn_reserve_replies(rc, 2) < 0) {
        fs__redis_conn_close(rc);
        return fs_adapter_error(FS_ENOMEM, "redis: out of memory for a connection's buffers");
    }
    c->reader->privdata = &rc->blocks; /* reply blocks come from this connection's pool */
    c->reader->maxbuf = 0;             /* keep the read buffer: no allocation per read */
    /*
     * Buffers sized for ordinary traffic up front (a batch of 100 small
     * messages), so that the steady state allocates nothing even when a
     * pooled connection used for acknowledgements is first used to publish.
     */
    sds grown = sdsMakeRoomFor(c->reader->buf, RCONN_BUF_INIT);
    if (grown)
        c->reader->buf = grown;
    if (fs_kit_buf_reserve(&rc->out, RCONN_BUF_INIT) ||
        fs_kit_buf_reserve(&rc->enc, RCONN_BUF_INIT) || fs__redis_conn_args(rc, RCONN_ARGS_INIT) ||
        fs_kit_grow((void **)&rc->offs, &rc->offcap, RCONN_ARGS_INIT, sizeof *rc->offs) ||
        fs_kit_grow((void **)&rc->kv, &rc->kvcap, 16, sizeof *rc->kv)) {
        fs__redis_conn_close(rc);
        return fs_adapter_error(FS_ENOMEM, "redis: out of memory for a connection's buffers");
    }
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
    fs_kit_pool_destroy(&rc->blocks, NULL); /* every reply read on it was freed */
    fs_kit_buf_free(&rc->out);
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

/* Append the decimal digits of v. */
static int put_dec(fs_kit_buf *o, char lead, size_t v)
{
    char tmp[24];
    size_t i = sizeof tmp;
    tmp[--i] = '\n';
    tmp[--i] = '\r';
    do
        tmp[--i] = (char)('0' + v % 10);
    while ((v /= 10) != 0);
    tmp[--i] = lead;
    return fs_kit_buf_put(o, tmp + i, sizeof tmp - i);
}

/*
 * Queue a command in the protocol's form in our own output buffer (reused:
 * hiredis' formatting allocates per command, its output buffer per write).
 */
int fs__redis_conn_send(rconn *rc, int argc, const char **argv, const size_t *len)
{
    if (!rc->c)
        return fs_adapter_error(FS_EIO, "redis: not connected to %s", rc->where);
    fs_kit_buf *o = &rc->out;
    size_t mark = o->len;
    int st = put_dec(o, '*', (size_t)argc);
    for (int i = 0; i < argc && !st; i++) {
        size_t n = len ? len[i] : strlen(argv[i]);
        st = put_dec(o, '$', n);
        if (!st)
            st = fs_kit_buf_put(o, argv[i], n);
        if (!st)
            st = fs_kit_buf_put(o, "\r\n", 2);
    }
    if (st)
        o->len = mark; /* out of memory: nothing of this command was queued */
    return st;
}

/* Write the queued commands to the socket (its send timeout bounds each write). */
int fs__redis_conn_flush(rconn *rc)
{
    if (!rc->c)
        return fs_adapter_error(FS_EIO, "redis: not connected to %s", rc->where);
    fs_kit_buf *o = &rc->out;
    size_t off = 0;
    while (off < o->len) {
        ssize_t w = write(rc->c->fd, o->data + off, o->len - off);
        if (w > 0) {
            off += (size_t)w;
            continue;
        }
        if (w < 0 && errno == EINTR)
            continue;
        int e = w < 0 ? errno : EPIPE;
        o->len = 0;
        int status = (e == EAGAIN || e == EWOULDBLOCK) ? FS_ETIMEDOUT : FS_EIO;
        fs_adapter_error(status, "redis: sending a command to %s: %s", rc->where,
                         status == FS_ETIMEDOUT ? "timed out" : strerror(e));
        fs__redis_conn_close(rc);
        return status;
    }
    o->len = 0;
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

int fs__redis_reply_type(const redisReply *r, int type, const char *what)
{
    int rc = fs__redis_reply_error(r, what);
    if (rc == FS_OK && r->type != type)
        rc = fs_adapter_error(FS_EPROTOCOL, "redis: %s: a reply of type %d where %d belongs", what,
                              r->type, type);
    return rc;
}

int fs__redis_conn_replies(rconn *rc, size_t count, int type, const char *what)
{
    if (!rc->c)
        return fs_adapter_error(FS_EIO, "redis: not connected to %s", rc->where);
    int first = FS_OK;
    for (size_t i = 0; i < count; i++) {
        void *reply = NULL;
        if (redisGetReply(rc->c, &reply) != REDIS_OK)
            return conn_fail(rc, what);
        int e = fs__redis_reply_type(reply, type, what);
        if (e && !first)
            first = e;
        fs__redis_reply_free(reply);
    }
    if (first == FS_EPROTOCOL) /* a server that answers out of turn: do not reuse the connection */
        fs__redis_conn_close(rc);
    return first;
}

int fs__redis_conn_command(rconn *rc, int argc, const char **argv, const size_t *len,
                           redisReply **out)
{
    *out = NULL;
    if (!rc->c)
        return fs_adapter_error(FS_EIO, "redis: not connected to %s", rc->where);
    int st = fs__redis_conn_send(rc, argc, argv, len);
    if (!st)
        st = fs__redis_conn_flush(rc);
    if (st)
        return st;
    void *r = NULL;
    if (redisGetReply(rc->c, &r) != REDIS_OK || !r)
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

int fs__redis_pool_command(redis_broker *b, int argc, const char **argv, int timeout_ms,
                           const char *what, redisReply **out)
{
    *out = NULL;
    int rc;
    rconn *c = fs__redis_pool_get(b, &rc);
    if (!c)
        return rc;
    redisReply *r = NULL;
    rc = fs__redis_conn_send(c, argc, argv, NULL);
    if (!rc)
        rc = fs__redis_conn_flush(c);
    if (!rc)
        rc = fs__redis_conn_recv(c, timeout_ms < 0 ? b->command_timeout_ms : timeout_ms, -1, &r);
    if (rc == FS_ETIMEDOUT) {
        fs_adapter_error(FS_ETIMEDOUT, "redis: no answer to %s from %s within %d ms", what,
                         c->where, timeout_ms);
        fs__redis_conn_close(c); /* the late reply would put it out of step */
    }
    if (!rc && (rc = fs__redis_reply_error(r, what)) != FS_OK) {
        fs__redis_reply_free(r);
        r = NULL;
    }
    fs__redis_pool_put(b, c);
    *out = r;
    return rc;
}
