/*
 * The NATS adapter's internal structures. Not installed.
 *
 * One natsConnection per broker (nats.c is thread-safe and reconnects by
 * itself). Each subscription owns one natsSubscription:
 *   - core and JetStream push: a synchronous subscription; the core's
 *     workers call natsSubscription_NextMsg on it concurrently (nats.c
 *     allows that), so nothing is queued on our side;
 *   - JetStream pull: nats.c refuses concurrent Fetch calls, so the worker
 *     that finds the local queue empty and nobody fetching becomes the
 *     fetcher (leader/followers, as in the Redis adapter): it fetches a batch,
 *     queues it and wakes the others.
 * The broker's keep-alive thread scans every record of a JetStream
 * subscription (the `all` list; the record's touched_ns says whether it holds
 * a delivery and since when) and sends +WPI for those held longer than half
 * the AckWait; stop gives back what was fetched but not handed out. Records
 * are taken and given back without a lock (sub.c). Settlement is a publish on
 * the message's reply (ack) subject, so it does not depend on the
 * natsSubscription's life.
 */
#ifndef FS_NATS_INTERNAL_H
#define FS_NATS_INTERNAL_H

#include "faststream/adapter.h"
#include "faststream/nats.h"
#include "kit/clock.h"
#include "wire.h"

#include <nats/nats.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#define FS_NATS_COMPONENT "nats"

typedef struct nats_broker nats_broker;
typedef struct nsub nsub;

/* One delivery: the core's message and the nats.c message it wraps. */
typedef struct nrec {
    fs_message m;
    nsub *sub;
    natsMsg *msg;
    struct nrec *next;           /* pull queue or free list */
    struct nrec *all_next;       /* the subscription's `all` list */
    _Atomic uint64_t touched_ns; /* 0 free, delivered or last +WPI, SETTLED, BUSY (sub.c) */
    fs__nats_hdrs hdrs;
} nrec;

typedef enum nsub_kind { NSUB_CORE, NSUB_PULL, NSUB_PUSH } nsub_kind;

struct nsub {
    nats_broker *b;
    nsub_kind kind;
    bool reply_inbox;
    char *subject, *queue, *stream, *durable;
    char *consumer;   /* the consumer's name on the server (JetStream) */
    char *ack_prefix; /* "$JS.ACK.<stream>.<consumer>.": its deliveries' ack subjects start so */
    size_t ack_prefix_len;
    bool ephemeral; /* we created it without a durable name: deleted at unsubscribe */
    fs_nats_stream_config *declare; /* deep copy, or NULL */
    fs_nats_deliver_policy deliver;
    unsigned ack_wait_ms, max_ack_pending, pull_batch;
    unsigned max_deliver; /* 0: unlimited */
    int64_t *backoff_ns;  /* consumer BackOff, or NULL */
    int backoff_len;
    unsigned concurrency;
    size_t batch_size;

    natsSubscription *ns; /* while started */
    _Atomic bool stopping;

    pthread_mutex_t mu; /* the pull queue and fetcher role, below */
    pthread_cond_t cv;
    nrec *q_head, *q_tail; /* pull: fetched, not handed out */
    size_t q_len;
    nrec *free_list; /* pull: the fetcher's free records */
    bool fetching;
    unsigned waiting;
    _Atomic bool fetch_error_logged;

    /*
     * Records, without a lock: released ones are pushed on free_stack by any
     * thread; a taker (a worker, or the pull fetcher) takes the whole stack
     * at once into its own list. `all`: every record made, for the keep-alive.
     */
    _Atomic(nrec *) free_stack;
    nrec **worker_free; /* [concurrency]: core and push */
    unsigned workers;
    _Atomic(nrec *) all;

    struct nsub *next; /* broker's list */
};

struct nats_broker {
    char *url;
    char **servers;
    int server_count;
    char *user, *password, *token, *name;
    char *tls_ca, *tls_cert, *tls_key;
    bool tls;
    int connect_timeout_ms, max_reconnect, reconnect_wait_ms, reconnect_buf;
    fs_broker *broker;

    pthread_mutex_t mu; /* conn lifecycle, subs */
    natsConnection *nc; /* under mu; destroyed at free or at the next connect */
    jsCtx *js;
    /* nc and js while connected, NULL otherwise: what the hot paths read (no lock). */
    _Atomic(natsConnection *) live;
    _Atomic(jsCtx *) live_js;
    _Atomic bool closed;
    _Atomic bool down_logged;
    /* nats.c runs the closed callback on its own thread after Close: wait for it. */
    pthread_mutex_t cb_mu;
    pthread_cond_t cb_cv;
    bool closed_cb;
    nsub *subs;

    /* Keep-alive thread (+WPI), started with the first JetStream subscription. */
    pthread_t ka_thread;
    bool ka_running;
    _Atomic bool ka_quit;
    pthread_mutex_t ka_mu;
    pthread_cond_t ka_cv;
};

/* conn.c */
int fs__nats_parse_url(nats_broker *b, const char *url);
int fs__nats_connect(nats_broker *b);
void fs__nats_disconnect(nats_broker *b);
/* Close (waiting for nats.c's callbacks) and destroy the connection. */
void fs__nats_conn_free(nats_broker *b);
/* An FS_E* status (with fs__error set from `what` and nats.c's text) for a nats.c status. */
int fs__nats_status(natsStatus s, const char *what);
/* nats-py's exception name for a nats.c status, as FastStream services report it. */
const char *fs__nats_error_type(natsStatus s);
/* The connection (and its JetStream context), or NULL with FS_ECLOSED recorded. */
natsConnection *fs__nats_conn(nats_broker *b, jsCtx **js, int *status);

/* js.c */
int fs__nats_declare_stream(nats_broker *b, const fs_nats_stream_config *cfg);
int fs__nats_consumer_ensure(nsub *s);
void fs__nats_consumer_forget(nsub *s);
int fs__nats_backlog(nats_broker *b, nsub *s, int timeout_ms, uint64_t *out);
int fs__nats_js_error(natsStatus s, jsErrCode jerr, const char *what);

/* sub.c */
int fs__nats_subscribe(void *impl, fs_subscribe_spec *spec, void **sub_out);
void fs__nats_unsubscribe(void *impl, void *sub);
int fs__nats_sub_start(void *impl, void *sub);
void fs__nats_sub_stop(nsub *s);
void fs__nats_sub_stopped(nsub *s);
int fs__nats_fetch(nsub *s, unsigned worker, int timeout_ms, fs_message **out);
int fs__nats_fetch_batch(nsub *s, unsigned worker, fs_message **out, size_t max,
                         unsigned batch_timeout_ms, int timeout_ms, size_t *n);
/* Settle one message (op: FS_SETTLE_ACKED/NACKED/REJECTED). */
int fs__nats_settle_one(fs_message *m, fs_settle_state op, unsigned delay_ms);
int fs__nats_in_progress(fs_message *m);
void fs__nats_keepalive_stop(nats_broker *b);

/* pub.c */
int fs__nats_publish(void *impl, void *dest, const char *destination, const fs_envelope *msgs,
                     size_t count, const char **error_type);
int fs__nats_request(void *impl, const char *destination, const fs_envelope *msg, int timeout_ms,
                     fs_message **reply, const char **error_type);
int fs__nats_prepare_destination(void *impl, const char *destination, const void *options,
                                 void **dest_out);
void fs__nats_release_destination(void *impl, void *dest);

#endif
