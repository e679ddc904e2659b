/*
 * The RabbitMQ adapter's internal structures. Not installed.
 *
 * Threads. rabbitmq-c connections are not thread-safe, so each broker has
 * ONE connection owned by ONE thread (conn.c, "the owner") that does all of
 * its I/O: it reads frames (deliveries, confirms, returns, channel closes),
 * sends settlements and publishes, declares topology and reconnects. Other
 * threads hand it work through a lock-free inbox (an intrusive MPSC stack of
 * rcmd nodes, woken through an eventfd when the owner sleeps):
 *   - CMD_RELEASE: a delivery record the core released, with the
 *     settlement the worker recorded in it (ack / nack after a delay /
 *     reject / nothing); the owner sends it (dropped when the delivery's
 *     channel died since) and recycles the record;
 *   - CMD_PUBLISH: a publish of one or more messages (the envelopes stay
 *     the caller's: it waits (rdone) until every confirm came back);
 *   - CMD_CALL: any synchronous operation (declare, consume, cancel,
 *     queue depth, ping, request) run on the owner, the caller waiting.
 * While the owner sleeps (in epoll_wait on the eventfd and the socket), it
 * lends the connection (rconn.own): a publisher that finds it idle takes it
 * itself (no hand-off, no wake-up), takes the socket out of the owner's
 * epoll set, sends its messages and reads frames until its confirms came,
 * dispatching every frame as the owner would (deliveries, other channels'
 * confirms, replies, closes), then gives it back (the socket re-armed: data
 * that came meanwhile wakes the owner). When that takes longer than 20 ms,
 * the connection fails, or the owner is wanted (the eventfd), the owner
 * takes over and finishes the publish (its deadline, reconnecting).
 * Workers wait on each subscription's delivery queue (the kit's queue, one
 * lane); delivery records come from the kit's record pool (taken and put
 * back by the owner alone).
 *
 * Channels: 2 topology (declarations asked by the application), 3 direct
 * reply-to requests, the pool of publishing channels from 4 on (each in
 * confirm mode with its own delivery-tag sequence and confirm ring; a
 * publisher thread keeps to one of them, so that its messages stay in
 * order and a channel the server closes fails only what was in flight on
 * it), and one per subscription from RMQ_CH_SUB0 on.
 */
#ifndef FS_RABBITMQ_INTERNAL_H
#define FS_RABBITMQ_INTERNAL_H

#include "faststream/adapter.h"
#include "faststream/rabbitmq.h"
#include "kit/backoff.h"
#include "kit/clock.h"
#include "kit/pool.h"
#include "kit/queue.h"
#include "wire.h"

#include <amqp.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#define RMQ "rabbitmq"
#define RMQ_CH_TOPO 2
#define RMQ_CH_RPC 3
#define RMQ_CH_PUB0 4
#define RMQ_PUB_CHANNELS_DEFAULT 4
#define RMQ_PUB_CHANNELS_MAX 64
#define RMQ_CH_SUB0 (RMQ_CH_PUB0 + RMQ_PUB_CHANNELS_MAX)
#define RMQ_BACKOFF_MIN_MS 100u
#define RMQ_BACKOFF_MAX_MS 5000u
#define RMQ_DCOUNT_SLOTS 1024
#define RMQ_FRAMES_BODY_MAX 65536 /* larger bodies: amqp_basic_publish */

typedef struct rmq_broker rmq_broker;
typedef struct rsub rsub;
typedef struct rconn rconn;

enum { CMD_RELEASE = 1, CMD_PUBLISH, CMD_CALL };

/* rconn.own: RUN the owner thread holds the connection; IDLE the owner
 * sleeps and lends it; LENT a publisher borrowed it, WANT added when the
 * owner woke meanwhile and waits for it (a futex on own). */
enum { RMQ_OWN_RUN = 0, RMQ_OWN_IDLE = 1, RMQ_OWN_LENT = 2, RMQ_OWN_WANT = 4 };

/*
 * A one-shot wake-up from the owner to one waiting caller (cheaper than a
 * semaphore: no cancellation points, no wake-up call when the caller has
 * not gone to sleep yet). 0 pending, 1 the caller sleeps, 2 done.
 */
typedef struct rdone {
    _Atomic uint32_t v;
} rdone;

void fs__rmq_done_init(rdone *d);
void fs__rmq_done_post(rdone *d);
void fs__rmq_done_wait(rdone *d);

/* A node of the owner's inbox. */
typedef struct rcmd {
    struct rcmd *next;
    int kind;
} rcmd;

/* A synchronous operation run on the owner thread. */
typedef struct rcall {
    rcmd cmd;
    int (*fn)(rconn *c, struct rcall *call); /* returns FS_OK / FS_E*, may fill err */
    void *arg;
    const void *in;
    uint64_t out[2];
    fs_message *reply; /* requests */
    char corr[128];    /* requests: the correlation id */
    int rc;
    bool async; /* requests: completion comes later (the reply or the deadline) */
    uint64_t deadline_ns;
    const char *etype;
    char err[320];
    rdone done;
    struct rcall *next_wait; /* requests waiting for their reply */
} rcall;

/* A publish of `count` messages to one exchange / routing key. */
typedef struct rpub {
    rcmd cmd;
    amqp_bytes_t exchange, routing_key;
    const fs_envelope *msgs;
    size_t count;
    const fs_rabbitmq_publish_options *po; /* defaults when a message has none */
    bool mandatory, confirm;
    unsigned pref; /* the publishing channel this thread keeps to (index) */
    size_t left;   /* confirms still expected */
    uint64_t deadline_ns;
    int rc;
    const char *etype;
    char err[256];
    rdone done;
} rpub;

/* One outstanding confirm (the ring of a publishing channel). */
typedef struct rpend {
    uint64_t tag; /* 0: free */
    rpub *p;
    size_t index; /* the message's index in p->msgs */
    bool returned;
} rpend;

/* A publishing channel of the pool (owner only). */
typedef struct rpch {
    amqp_channel_t ch;
    bool open;         /* open and in confirm mode on the current connection */
    uint64_t next_tag; /* the next delivery tag (1 after every channel.open) */
    uint64_t low;      /* the lowest unconfirmed tag */
    rpend *ring;       /* outstanding confirms by tag & (ring_cap - 1) */
    size_t ring_cap;
    bool err_logged; /* reopening failed and was logged */
    /* A return being read: its content frames follow. */
    bool ret_active;
    char ret_exchange[256], ret_rk[256];
    size_t ret_left;
    bool ret_has_cid;
    char ret_cid[256];
} rpch;

/*
 * A handler label met on a subscription, "{exchange or 'default'}.{routing
 * key}", kept until the subscription is freed: the deliveries with that
 * label point at one string with one label id (fs_message.source_id).
 */
typedef struct rlabel {
    struct rlabel *next;
    uint64_t id;
    size_t ex_len, rk_len; /* the delivery's exchange (0: the default) and routing key */
    size_t len;            /* of str */
    char str[];
} rlabel;

/* Labels kept per subscription; a delivery with yet another one carries its own copy. */
#define RMQ_LABELS 64

/* One delivery: the core's message and everything it points to. */
typedef struct rrec {
    fs_message m;
    rcmd cmd;        /* CMD_RELEASE */
    fs_kit_qnode qn; /* in the delivery queue (qn.msg = &m) */
    rsub *sub;
    struct rrec *next; /* delayed nacks */
    fs_rabbitmq_message_info info;
    fs_kit_buf arena; /* strings and body */
    fs_header *hdrs;
    size_t hdr_cap;
    uint64_t tag;
    uint64_t msgid_hash; /* of the message id (delivery counts), 0: none */
    uint32_t gen;        /* the channel generation it came on */
    uint32_t delivery_count;
    size_t body_size, body_at;
    size_t src_len;      /* the handler label's length */
    const rlabel *label; /* the kept label, or NULL: the label is in the arena */
    int settle;          /* fs_settle_state recorded by the worker */
    unsigned delay_ms;
    uint64_t due_ns;
    bool delay_done; /* a nack whose delay passed */
} rrec;

/* A deep copy of a queue or exchange declaration. */
typedef struct rtopo {
    fs_rabbitmq_exchange ex;
    fs_rabbitmq_queue q;
    bool has_ex, has_q;
    char **strs; /* every string copied, freed at once */
    size_t nstr;
    fs_rabbitmq_arg *args; /* q.arguments, q.bind_arguments, ex.arguments, in one array */
} rtopo;

struct rsub {
    rmq_broker *b;
    rtopo topo;
    char *queue; /* the queue consumed (the declared name) */
    unsigned concurrency, prefetch;
    bool no_ack, reply_inbox;
    amqp_channel_t ch;

    /* Delivery queue (owner pushes, workers pop) and its records. */
    fs_kit_queue q;
    fs_kit_pool pool;
    _Atomic bool stopping; /* no more handler calls: fetch hands nothing out */

    /* Owner only. */
    bool want;       /* should be consuming (started, not stopped) */
    bool ch_open;    /* its channel is open on the current connection */
    bool err_logged; /* consuming failed and was logged (once until it works) */
    bool active;     /* consuming on the current connection */
    uint32_t gen;    /* incremented whenever the channel dies */
    rrec *filling;   /* the delivery whose content frames are being read */
    rlabel *labels;  /* the kept labels, the last used first */
    unsigned nlabels;
    fs__rmq_decoded dec; /* its properties */
    char ctag[128];
    struct {
        uint64_t h;
        uint32_t n;
    } dcount[RMQ_DCOUNT_SLOTS]; /* deliveries so far by message id (classic queues) */
    struct rsub *next;
};

struct rconn {
    rmq_broker *b;
    amqp_connection_state_t st; /* NULL while down */
    int fd;
    int wake_fd;
    int ep_fd;       /* epoll: wake_fd and the socket (the owner sleeps in it) */
    bool sock_in_ep; /* the current socket is registered in ep_fd */
    /* Who holds the connection (RMQ_OWN_*): the owner thread, nobody (the
     * owner sleeps: a publisher may borrow it), or a borrowing publisher. */
    _Atomic uint32_t own;
    pthread_t thread;
    bool thread_started;
    _Atomic(rcmd *) inbox;
    _Atomic bool sleeping;
    _Atomic bool quit;
    _Atomic bool up;
    _Atomic uint32_t epoch; /* connections made so far */
    char last_error[320];
    int last_status;

    /* Owner only. */
    bool readable;       /* the socket polled readable since the last read */
    uint64_t next_io_ns; /* read (and heartbeat) no later than this */
    rpch *pubs;          /* the publishing channels */
    unsigned npub;
    uint64_t pub_due_ns; /* no confirm times out before this (UINT64_MAX: none waits) */
    bool release_all;    /* a synchronous method ran: release every channel's buffers */
    bool rpc_ran;        /* a synchronous method ran in this turn of the loop */
    uint64_t now_ns;     /* the clock at the start of this turn of the loop */
    bool topo_open, rpc_open;
    amqp_table_entry_t *tbl;
    size_t tbl_cap;
    fs_kit_buf frames;      /* the frames of one publish (TCP: written at once) */
    rrec *delayed;          /* nacks waiting for their delay, unsorted */
    rcall *waiting;         /* requests waiting for replies */
    fs_kit_backoff backoff; /* reconnecting: 100 ms doubling to 5 s, jittered */
    uint64_t retry_at_ns;
    bool down_logged;
    /* A reply being read on the rpc channel. */
    bool rep_active;
    size_t rep_left;
    fs_kit_buf rep_buf;
    fs__rmq_decoded rep_dec;
    size_t rep_body_at, rep_body_size;
};

struct rmq_broker {
    char *url;
    char *host;
    int port;
    bool tls, verify;
    char *vhost, *user, *password;
    char *cafile, *certfile, *keyfile;
    char *conn_name;
    int heartbeat;
    int frame_max;
    unsigned prefetch;
    int connect_timeout_ms;
    int confirm_timeout_ms;
    unsigned pub_channels; /* the size of the publishing pool */
    fs_broker *broker;

    pthread_mutex_t mu; /* subs list */
    rsub *subs;
    amqp_channel_t next_ch;
    rconn conn;
    _Atomic bool closed;
};

/* conn.c */
int fs__rmq_conn_start(rmq_broker *b);
void fs__rmq_conn_shutdown(rmq_broker *b);
void fs__rmq_post(rconn *c, rcmd *cmd);
/* A publisher takes the connection while the owner sleeps: true when it
 * holds it (then it must fs__rmq_give_back). */
bool fs__rmq_borrow(rconn *c);
/* Holding it: read and dispatch frames as the owner would until d is done;
 * false when that takes long, the owner is wanted, or the connection failed
 * (then the owner finishes the work: give back with wake). */
bool fs__rmq_borrow_wait(rconn *c, rdone *d);
void fs__rmq_give_back(rconn *c, bool wake);
/* Run fn on the owner thread and wait; the error is recorded on the caller's thread. */
int fs__rmq_call(rmq_broker *b, int (*fn)(rconn *, rcall *), rcall *call);
/* Owner: a channel closed by the server (reply text in err). */
int fs__rmq_rpc_error(rconn *c, amqp_channel_t ch, const char *what, char *err, size_t n);
int fs__rmq_channel_open(rconn *c, amqp_channel_t ch, char *err, size_t n);
void fs__rmq_channel_closed(rconn *c, amqp_channel_t ch);

/* topology.c (owner) */
int fs__rmq_topo_copy(rtopo *t, const fs_rabbitmq_exchange *ex, const fs_rabbitmq_queue *q,
                      const char *default_queue);
void fs__rmq_topo_free(rtopo *t);
int fs__rmq_topo_declare(rconn *c, amqp_channel_t ch, const rtopo *t, char *err, size_t n);
int fs__rmq_topo_depth(rconn *c, amqp_channel_t ch, const char *queue, uint64_t *msgs,
                       uint64_t *consumers, char *err, size_t n);

/* sub.c */
int fs__rmq_subscribe(void *impl, fs_subscribe_spec *spec, void **sub_out);
void fs__rmq_unsubscribe(void *impl, void *sub);
int fs__rmq_sub_start(void *impl, void *sub);
int fs__rmq_sub_stop(rmq_broker *b, rsub *s);
/* After the workers exited: queued deliveries back to the server. */
void fs__rmq_sub_giveback(rmq_broker *b, rsub *s);
int fs__rmq_fetch(void *impl, void *sub, int timeout_ms, fs_message **out);
int fs__rmq_settle_op(rrec *r, int op, unsigned delay_ms);
/* owner */
int fs__rmq_sub_consume(rconn *c, rsub *s, char *err, size_t n);
void fs__rmq_sub_conn_lost(rsub *s);
int fs__rmq_sub_frame(rconn *c, rsub *s, const amqp_frame_t *f);
void fs__rmq_sub_release(rconn *c, rrec *r);
void fs__rmq_delayed_run(rconn *c, uint64_t now, uint64_t *next_due);
rsub *fs__rmq_sub_by_channel(rmq_broker *b, amqp_channel_t ch);

/* pub.c */
int fs__rmq_publish(void *impl, void *dest, const char *destination, const fs_envelope *msgs,
                    size_t count, const char **error_type);
int fs__rmq_request(void *impl, const char *destination, const fs_envelope *msg, int timeout_ms,
                    fs_message **reply, const char **error_type);
/* owner */
int fs__rmq_pub_init(rconn *c, unsigned n); /* the pool's channels (at creation) */
void fs__rmq_pub_free(rconn *c);
rpch *fs__rmq_pub_by_channel(rconn *c, amqp_channel_t ch);
/* Open every publishing channel (connecting): FS_OK or the first error. */
int fs__rmq_pub_open_all(rconn *c, char *err, size_t n);
/* Open (again) the channels that are closed; logs a failure once. */
void fs__rmq_pub_reopen(rconn *c);
/* The server closed a publishing channel: fail what was in flight on it alone. */
void fs__rmq_pub_closed(rconn *c, rpch *pc, int code, const char *text);
void fs__rmq_pub_run(rconn *c, rpub *p);
void fs__rmq_pub_frame(rconn *c, rpch *pc, const amqp_frame_t *f);
/* Every channel's in-flight publishes fail (the connection is gone). */
void fs__rmq_pub_fail_all(rconn *c, int rc, const char *etype, const char *err);
void fs__rmq_pub_timeouts(rconn *c, uint64_t now, uint64_t *next_due);
void fs__rmq_rpc_frame(rconn *c, const amqp_frame_t *f);
void fs__rmq_rpc_fail_all(rconn *c, int rc, const char *err);
int fs__rmq_rpc_setup(rconn *c, char *err, size_t n);

const char *fs__rmq_status_type(int status);

#endif
