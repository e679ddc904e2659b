/*
 * The Redis adapter's internal structures. Not installed.
 *
 * Threads. The core's workers call fetch concurrently. Each subscription
 * has ONE reader connection; the worker that finds the local queue empty
 * and nobody reading becomes the reader (leader/followers): it reads as
 * many messages as there are workers waiting (or a batch), queues them and
 * wakes the others (fs_kit_queue_take, src/kit/queue.h). So a hiredis
 * context is only ever used by one thread at
 * a time: the reader's by the current reader, a pooled one by whoever took
 * it from the pool (publishers, acknowledgements).
 *
 * Streams with a group track which entries are out (handed to the core and
 * not yet released) so that re-reading this consumer's pending entries (after
 * a reconnection), XCLAIM of nacked entries and XAUTOCLAIM never hand out an
 * entry twice at once, nor one whose XACK was already confirmed: those reads
 * run with `set_mu` held across their round trip, and release removes an
 * entry from the set only after its settlement finished.
 */
#ifndef FS_REDIS_INTERNAL_H
#define FS_REDIS_INTERNAL_H

#include "faststream/adapter.h"
#include "faststream/redis.h"
#include "kit/check.h"
#include "kit/clock.h"
#include "kit/pool.h"
#include "kit/queue.h"
#include "wire.h"

#include <hiredis/hiredis.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#define FS_REDIS_COMPONENT "redis"
#define FS_REDIS_BACKOFF_MIN_MS 100u
#define FS_REDIS_BACKOFF_MAX_MS 5000u
/* Longest a reader blocks server-side (BLMPOP, XREADGROUP BLOCK) per round trip. */
#define FS_REDIS_BLOCK_MAX_MS 250

typedef struct redis_broker redis_broker;
typedef struct rsub rsub;

/* A connection plus the buffers a command needs (reused: no allocation per call). */
typedef struct rconn {
    redisContext *c; /* NULL when down */
    char where[96];  /* "host:port", for messages */
    fs_kit_buf enc;
    fs_kit_buf out;     /* commands queued in the protocol's form (fs__redis_conn_send) */
    fs_kit_pool blocks; /* standard reply blocks (conn.c), read by one thread at a time */
    const char **argv;
    size_t *argvlen;
    size_t argcap;
    size_t *offs; /* value offsets into enc (batches) */
    size_t offcap;
    fs__redis_kv *kv; /* headers being encoded */
    size_t kvcap;
    fs__redis_scratch scratch; /* repeated header keys merged while encoding */
    struct rconn *next;        /* pool free list */
} rconn;

/* A stream entry id. */
typedef struct sid {
    uint64_t ms, seq;
} sid;

/* An open-addressing set of stream ids (linear probing, backward-shift delete). */
typedef struct idset {
    sid *slots;
    unsigned char *used;
    size_t cap, len;
} idset;

/*
 * A reply that messages point into (their body, raw value, name, entry id:
 * hiredis strings are NUL-terminated): freed with the last of them, so that
 * a batch is not copied.
 */
typedef struct rhold rhold; /* conn.c: the reply's root block counts its holders */

/* One delivery: the core's message and everything it points to (pooled). */
typedef struct rmsg {
    fs_message m;
    rsub *sub;
    struct rmsg *next; /* in a list being read */
    fs_kit_qnode qn;   /* in the subscription's queue */
    fs_redis_message_info info;
    rhold *hold;      /* the reply its strings point into, or NULL: all in arena */
    fs_kit_buf arena; /* the strings not in `hold`, NUL-terminated */
    fs_header *hdrs;
    size_t hdr_cap;
    /* The value as read (list: one value; stream: the entry's fields), to requeue or
     * dead-letter it. */
    fs__redis_kv *fields;
    size_t field_count, field_cap;
    sid id;
    bool has_id;
    bool nacked;
    unsigned delay_ms; /* nacked: redeliver no sooner than this */
} rmsg;

/* A nacked entry waiting for its redelivery delay. */
typedef struct nack_ent {
    sid id;
    uint64_t due_ms; /* fs_kit_now_ms() time */
} nack_ent;

struct rsub {
    redis_broker *b;
    fs_redis_kind kind;
    bool pattern;
    bool grouped; /* stream with a consumer group */
    bool reply_inbox;
    char *name, *group, *consumer, *start_id, *dead_letter;
    size_t name_len;
    unsigned claim_min_idle_ms;
    unsigned concurrency;

    fs_kit_queue q;   /* handed-out order; its reader role is the reader connection's */
    fs_kit_pool pool; /* records: put back by any thread, taken by the reader */
    _Atomic bool stopping;
    int wake_fd; /* eventfd, readable while stopping: interrupts a channel reader */

    /* Owned by the current reader. */
    rconn rd;
    bool prepared; /* subscribed / group ensured on the current connection */
    bool down_logged;
    uint64_t error_logged_ms; /* last server error logged (rate limit) */
    unsigned backoff_ms;
    uint64_t retry_at_ms;
    fs__redis_scratch scratch;
    fs__redis_kv *fields;
    size_t field_cap;
    char last_id[48]; /* XREAD without group: the last entry seen */
    bool need_scan;   /* re-read this consumer's pending entries */
    char scan_cursor[48];
    char claim_cursor[48]; /* XAUTOCLAIM */
    uint64_t claim_due_ms;

    pthread_mutex_t set_mu; /* out, nackq */
    idset out;
    nack_ent *nackq;
    size_t nack_len, nack_cap;

    struct rsub *next; /* broker's list */
};

struct redis_broker {
    char *url;
    char *host;
    int port;
    int db;
    char *user, *password;
    char *client_name; /* CLIENT SETNAME on every connection, or NULL */
    fs_redis_format format;
    int connect_timeout_ms;
    int command_timeout_ms;
    fs_broker *broker; /* the core's object, once created */

    pthread_mutex_t mu; /* pool, subs */
    rconn *pool;
    rsub *subs;
    _Atomic bool closed;
    _Atomic unsigned consumer_seq;
};

/* conn.c */
int fs__redis_conn_open(redis_broker *b, rconn *rc);
void fs__redis_conn_close(rconn *rc);
void fs__redis_conn_free(rconn *rc);
int fs__redis_conn_args(rconn *rc, size_t n);
int fs__redis_conn_send(rconn *rc, int argc, const char **argv, const size_t *len);
int fs__redis_conn_flush(rconn *rc);
int fs__redis_conn_recv(rconn *rc, int timeout_ms, int wake_fd, redisReply **out);
/* Set the socket's send/receive timeout. */
int fs__redis_conn_set_timeout(rconn *rc, int ms);
/* The next reply, blocking up to the socket's timeout. */
int fs__redis_conn_get(rconn *rc, redisReply **out);
/*
 * Read the replies of `count` pipelined commands: the status of the first
 * error reply (every reply is still read), or of an I/O failure (the
 * connection is then dropped, the rest unread).
 */
/* Read `count` replies of `type` (REDIS_REPLY_*): the first error; FS_EPROTOCOL (and the
 * connection closed) for a reply of another type. */
int fs__redis_conn_replies(rconn *rc, size_t count, int type, const char *what);
/* fs__redis_reply_error, then FS_EPROTOCOL when `r` is not of `type`. */
int fs__redis_reply_type(const redisReply *r, int type, const char *what);
int fs__redis_conn_command(rconn *rc, int argc, const char **argv, const size_t *len,
                           redisReply **out);
/*
 * One command on a pooled connection, waiting up to timeout_ms (< 0: the
 * command timeout) for its reply: FS_OK with *out set (free it with
 * fs__redis_reply_free), the server's error as a status, FS_ETIMEDOUT (the
 * connection is dropped: a late reply would put it out of step).
 */
int fs__redis_pool_command(redis_broker *b, int argc, const char **argv, int timeout_ms,
                           const char *what, redisReply **out);
/*
 * Make sure `n` (at most 64) reply blocks wait in the connection's pool: as
 * many replies as may be held at once (a reader: its workers' messages and
 * the one being read), so that none is allocated in the steady state.
 */
int fs__redis_conn_reserve_replies(rconn *rc, size_t n);
rconn *fs__redis_pool_get(redis_broker *b, int *status);
void fs__redis_pool_put(redis_broker *b, rconn *rc);
void fs__redis_pool_drain(redis_broker *b);
int fs__redis_reply_error(const redisReply *r, const char *what);
/*
 * Free a reply read on one of our connections (never freeReplyObject: their
 * replies are built in blocks, see conn.c). NULL is a no-op.
 */
void fs__redis_reply_free(void *reply);
/* Build `reader`'s replies in blocks (fs__redis_reply_free frees them): what every connection does.
 */
void fs__redis_reader_use_blocks(redisReader *reader);
/*
 * The most bytes one reply may take (1 GiB by default): set it to `bytes`
 * and return the previous limit, or with 0 return the current one.
 */
size_t fs__redis_reply_limit(size_t bytes);

/* backlog.c: ops->backlog (list length; a grouped stream's lag + pending). */
int fs__redis_backlog(void *impl, void *sub, int timeout_ms, uint64_t *out);

/* A list of records being read (linked by rmsg.next). */
typedef struct rlist {
    rmsg *head, *tail;
    size_t n;
} rlist;

static inline bool fs__redis_sid_eq(sid a, sid b)
{
    return a.ms == b.ms && a.seq == b.seq;
}

static inline bool fs__redis_is_str(const redisReply *r)
{
    return r && (r->type == REDIS_REPLY_STRING || r->type == REDIS_REPLY_STATUS);
}

/*
 * check.c: the shape of every reply a reader turns into messages. FS_OK, or
 * FS_EPROTOCOL with a message naming the command, `name` and what is wrong.
 * A nil (a block that timed out) passes where the command may answer it.
 */
/* BLMPOP: nil, or [name, [value...]] with string values. */
int fs__redis_check_pop(const redisReply *r, const char *name, size_t name_len);
/* Entries [[id, [field, value...]]...]; deleted_ok: [id, nil] too; nil_ok: nil entries too. */
int fs__redis_check_entries(const char *cmd, const char *name, const redisReply *e, bool deleted_ok,
                            bool nil_ok);
/* XREAD / XREADGROUP: nil, or [[name, entries]]. */
int fs__redis_check_streams(const char *cmd, const char *name, size_t name_len,
                            const redisReply *r);
/* XAUTOCLAIM: [cursor, entries] or [cursor, entries, [deleted id...]]. */
int fs__redis_check_autoclaim(const char *name, const redisReply *r);
/* XPENDING (extended): [[id, consumer, idle, count]...]. */
int fs__redis_check_pending(const char *name, const redisReply *r);
/* A pub/sub push: message, pmessage or a (p)(un)subscribe confirmation. */
int fs__redis_check_push(const char *name, const redisReply *r);

/* ids.c: stream ids and the set of entries out */
bool fs__redis_sid_parse(const char *s, size_t n, sid *out);
int fs__redis_sid_format(sid id, char *buf, size_t cap);
int fs__redis_idset_add(idset *s, sid id);
bool fs__redis_idset_has(const idset *s, sid id);
void fs__redis_idset_del(idset *s, sid id);
/* True when `id` waits in the subscription's nack queue (set_mu held). */
bool fs__redis_in_nackq(const rsub *s, sid id);

/* record.c: records and the replies they point into */
/* conn.c: hold a reply for the messages built from it (it then counts its holders). */
rhold *fs__redis_hold_new(redisReply *reply);
void fs__redis_hold_ref(rhold *h);
void fs__redis_hold_drop(rhold *h);
/* The reader is done with `reply`: free it now, or with the last message pointing into it. */
void fs__redis_reply_done(redisReply *reply, rhold *h);
/* Free what a pooled record owns (fs_kit_pool_destroy). */
void fs__redis_rec_fini(void *record);
/* m->release: forget the entry was out, queue a nacked entry again, recycle the record. */
void fs__redis_rec_release(fs_message *m);
/* A record for a plain value (channel, list); the strings lie in `hold`'s reply, if given. */
int fs__redis_add_value(rsub *s, rlist *l, rhold *hold, const char *name, size_t name_len,
                        const char *pattern, size_t pattern_len, const char *value, size_t len);
/* A record for a stream entry reply [id, [field, value, ...]]. Sets *id. */
int fs__redis_add_entry(rsub *s, rlist *l, rhold *hold, const redisReply *e, sid *id);

/* read.c: the reader connection */
/* Make sure the reader is connected and prepared; back off after failures. */
int fs__redis_reader_ensure(rsub *s, bool force);
/* One read by the current reader: up to `want` messages into `l`, waiting up to `budget` ms. */
int fs__redis_sub_read(rsub *s, rlist *l, size_t want, int budget);

/* sub.c: the adapter's subscription ops */
int fs__redis_subscribe(void *impl, fs_subscribe_spec *spec, void **sub_out);
void fs__redis_unsubscribe(void *impl, void *sub);
int fs__redis_sub_start(void *impl, void *sub);
void fs__redis_sub_stop(rsub *s);
void fs__redis_sub_flush(rsub *s);
void fs__redis_sub_close(rsub *s);
int fs__redis_fetch(void *impl, void *sub, unsigned worker, int timeout_ms, fs_message **out);
int fs__redis_fetch_batch(void *impl, void *sub, unsigned worker, fs_message **out, size_t max,
                          unsigned batch_timeout_ms, int timeout_ms, size_t *n);
int fs__redis_settle(void *impl, fs_message *m, const fs_settle_args *args);

#endif
