/*
 * The MQTT adapter's internal structures. Not installed.
 *
 * Connections (conn.c). Each mq_conn is one libmosquitto client with its own
 * network thread (mosquitto_loop_start), which also reconnects with backoff.
 * The broker has one for publishing; every subscription has its own.
 *
 * Consuming (sub.c). libmosquitto calls on_message on the connection's
 * network thread and writes the PUBACK it queued only after that callback
 * returned (tests/mqtt/test_mqtt_client_ack.c shows it; QoS 2: the PUBREC
 * left on receipt, the PUBCOMP waits). So, for an at-least-once
 * subscription (QoS > 0, policy not ACK_FIRST), the callback queues the
 * record for the workers and WAITS until the core settled (ack/reject) or
 * released it: one message per connection is out at a time, and each
 * connection acknowledges in arrival order. concurrency N > 1 opens N such
 * connections (lanes) in a shared subscription of their own.
 * Other subscriptions (QoS 0, ACK_FIRST) only queue (bounded: the callback
 * waits for room, which pushes back on the server through TCP).
 *
 * The hand-off takes no lock: records are queued and recycled through
 * lock-free rings of their indices (kit/ring.h), workers sleep on the
 * subscription's event count, a network thread on its connection's
 * (kit/futex.h), and a waker calls the kernel only when someone sleeps.
 * settle flags the record.
 *
 * A message queued but not handed out when the subscription stops must not
 * be acknowledged: the callback then shuts the socket down before returning,
 * so the queued PUBACK never leaves, and the server delivers the message
 * again on the next connection of a persistent session.
 *
 * Publishing (pub.c). mosquitto_publish_v5 is thread-safe. A QoS 1/2
 * publish registers a waiter for its packet id under the connection's mutex
 * (held across the publish call so that on_publish, which takes that mutex,
 * cannot run before the waiter exists) and waits for on_publish. on_publish
 * also comes for every QoS 0 packet written: it takes the mutex only for a
 * packet id marked awaited (mq_broker.awaited) or while a publish is between
 * its call and its mark (mq_conn.registering).
 */
#ifndef FS_MQTT_INTERNAL_H
#define FS_MQTT_INTERNAL_H

#include "faststream/adapter.h"
#include "faststream/mqtt.h"
#include "kit/futex.h"
#include "kit/ring.h"
#include "wire.h"

#include <mosquitto.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <time.h>

#define MQ_COMPONENT "mqtt"
#define MQ_RECONNECT_MIN_S 1u
#define MQ_RECONNECT_MAX_S 30u
#define MQ_MAX_LANES 64u
#define MQ_MAX_RECORDS 65536u /* per subscription: deliveries in flight at once */

typedef struct mq_broker mq_broker;
typedef struct mq_sub mq_sub;

enum { MQ_DOWN = 0, MQ_CONNECTING = 1, MQ_UP = 2, MQ_REFUSED = 3 };

/* A QoS 1/2 publish waiting for its PUBACK / PUBCOMP (on the publisher's stack). */
typedef struct mq_wait {
    int mid;
    bool done;
    int reason;
    struct mq_wait *next;
} mq_wait;

typedef struct mq_conn {
    mq_broker *b;
    mq_sub *sub; /* the subscription it serves, or NULL: the publishing connection */
    _Atomic(struct mosquitto *) m; /* NULL while closed */
    char *client_id;
    pthread_mutex_t mu; /* waiters, SUBACK, flags; state changes */
    pthread_cond_t cv;
    /*
     * `m` stays alive while `users` > 0: a publisher counts itself in, then
     * checks `closing`; close sets `closing`, then waits for `users` to drain.
     */
    _Atomic int users;
    _Atomic bool closing;
    /*
     * libmosquitto's network thread ended for good (a protocol, TLS or auth
     * error, or a DISCONNECT from the server): fs__mq_conn_revive starts it
     * again, at most once per backoff step.
     */
    _Atomic bool thread_gone;
    _Atomic bool reviving;
    uint64_t revive_at_ms; /* under `reviving` */
    unsigned revive_backoff_ms;
    _Atomic int state;
    _Atomic int nwaiters; /* QoS 1/2 publishes waiting: on_publish looks only when > 0 */
    /* QoS 1/2 publishes between their publish call and marking their packet id awaited */
    _Atomic int registering;
    int refused_rc; /* CONNACK reason when refused */
    bool session_present;
    bool ever_up;      /* connected once since opened */
    bool down_logged;  /* "connection lost" logged, recovery not yet */
    bool loop_running; /* network thread started */
    mq_wait *waiters;
    /* subscription: SUBACK of the current connection */
    int sub_mid;
    int sub_granted;     /* -1: waiting; else granted QoS or a reason >= 0x80 */
    unsigned subscribed; /* SUBACKs seen */
    /* its network thread sleeps here: for an acknowledgement, for room, while stopping */
    fs_kit_event ev;
} mq_conn;

/*
 * One delivery: the core's message and everything it points to. The fields
 * no delivery changes (raw, release, adapter_data, the subscription) are set
 * when the record is made.
 */
typedef struct mrec {
    fs_message m;
    mq_sub *s;
    mq_conn *lane;  /* the connection it came on */
    uint32_t index; /* in s->recs */
    fs_mqtt_message_info info;
    char *arena; /* topic, body, property strings */
    size_t arena_cap;
    fs_header *hdrs;
    size_t hdr_cap;
    /* MR_QUEUED -> MR_OUT (a worker took it) or MR_ABANDONED (its network thread gave up) */
    _Atomic int state;
    bool gated;     /* the network thread waits for its acknowledgement (settle or release) */
    bool had_props; /* the last delivery set property fields (rec_fill clears them) */
    /* MR_ACKED (settled: the PUBACK may leave), MR_DONE (released); the network thread waits on
     * them */
    _Atomic uint32_t flags;
    /* The queue's (then the core's) reference, and the waiting network thread's: the last one frees
     * it. */
    _Atomic int refs;
} mrec;

enum { MR_ACKED = 1u, MR_DONE = 2u };
enum { MR_QUEUED = 0, MR_OUT = 1, MR_ABANDONED = 2 };

struct mq_sub {
    mq_broker *b;
    /*
     * The connections: one, or (QoS > 0, not ACK_FIRST, concurrency N > 1)
     * N lanes in a shared subscription of their own, each with one message
     * out at a time, so that N handlers run and every connection still
     * acknowledges in its arrival order.
     */
    mq_conn *lanes;
    unsigned nlanes;
    char *filter; /* as subscribed ($share/GROUP/... included) */
    int qos;
    bool no_local;
    bool reply_inbox;
    bool gate; /* at least once: the callback waits for each release */
    unsigned index;
    /*
     * Records by index, made on first use (at most rec_cap: what can be
     * queued, handed out and waited on at once); the queue and the free list
     * are lock-free rings of their indices (kit/ring.h).
     */
    mrec **recs;
    uint32_t rec_cap;
    _Atomic uint32_t rec_made;
    fs_kit_ring_cell *cells;
    fs_kit_ring queue, free;
    fs_kit_event ready;   /* workers sleep here: a message came, or stopping */
    _Atomic size_t q_len; /* queued (approximately, for the bound) */
    size_t q_max;
    _Atomic bool stopping;
    bool started;
    mq_sub *next;
};

struct mq_broker {
    char *url;
    char *host;
    int port;
    bool tls;
    bool tls_insecure;
    char *client_id, *username, *password;
    char *ca_file, *cert_file, *key_file;
    int version; /* FS_MQTT_V5 or FS_MQTT_V311 */
    int keepalive_s;
    bool clean_start;
    bool clean_start_unset; /* options left it to the URL */
    uint32_t session_expiry_s;
    char *will_topic;
    void *will_payload;
    size_t will_len;
    int will_qos;
    bool will_retain;
    int connect_timeout_ms;
    int publish_timeout_ms;
    fs_broker *broker;

    mq_conn pub; /* the publishing connection */
    /*
     * A bit per packet id a QoS 1/2 publish waits for (on pub): on_publish
     * ignores the others (QoS 0 packets written) without taking pub.mu.
     */
    _Atomic uint64_t awaited[65536 / 64];
    pthread_mutex_t mu; /* subs, pub open/close */
    mq_sub *subs;
    unsigned sub_seq;   /* subscriptions, for their default client ids */
    unsigned inbox_seq; /* reply inboxes */
    _Atomic bool closed;
};

/* conn.c */
uint64_t fs__mq_now_ms(void);
/* *dl = now (CLOCK_MONOTONIC, as every condition variable here uses) + ms. */
void fs__mq_deadline(struct timespec *dl, int ms);
void fs__mq_sleep_ms(int ms);
/* Count a publisher in on a connection: its client while open and not closing, else NULL. */
static inline struct mosquitto *fs__mq_conn_enter(mq_conn *c)
{
    atomic_fetch_add(&c->users, 1);
    struct mosquitto *m = atomic_load(&c->closing) ? NULL : atomic_load(&c->m);
    if (!m)
        atomic_fetch_sub(&c->users, 1);
    return m;
}
static inline void fs__mq_conn_leave(mq_conn *c)
{
    atomic_fetch_sub_explicit(&c->users, 1, memory_order_release);
}
/* A condition variable on CLOCK_MONOTONIC. */
void fs__mq_cond_init(pthread_cond_t *cv);
void fs__mq_conn_init(mq_conn *c, mq_broker *b, mq_sub *sub);
/* Connect (blocking up to the connect timeout) and start the network thread. */
int fs__mq_conn_open(mq_conn *c, const char *client_id, bool clean_start);
/* DISCONNECT, stop the network thread and free the client. Idempotent. */
void fs__mq_conn_close(mq_conn *c);
void fs__mq_conn_destroy(mq_conn *c);
/* If the network thread ended for good, reconnect and start it again (cheap otherwise). */
void fs__mq_conn_revive(mq_conn *c);
/* A status and message for a libmosquitto error code. */
int fs__mq_error(int mosq_rc, const char *what);
const char *fs__mq_error_type(int status);

/* sub.c */
int fs__mq_subscribe(void *impl, fs_subscribe_spec *spec, void **sub_out);
void fs__mq_unsubscribe(void *impl, void *sub);
int fs__mq_sub_start(void *impl, void *sub);
void fs__mq_sub_stop(mq_sub *s);
void fs__mq_sub_stopped(mq_sub *s);
int fs__mq_fetch(void *impl, void *sub, unsigned worker, int timeout_ms, fs_message **out);
int fs__mq_settle(void *impl, fs_message *m, const fs_settle_args *args);
/* The network thread's callbacks of a subscription connection. */
void fs__mq_on_message(struct mosquitto *m, void *obj, const struct mosquitto_message *msg,
                       const mosquitto_property *props);
void fs__mq_sub_on_connect(mq_conn *c);

/* pub.c */
int fs__mq_publish(void *impl, void *dest, const char *destination, const fs_envelope *msgs,
                   size_t count, const char **error_type);
int fs__mq_prepare_destination(void *impl, const char *destination, const void *options,
                               void **dest_out);
void fs__mq_on_publish(mq_conn *c, int mid, int reason);
int fs__mq_request_311(void *impl, const char *destination, const fs_envelope *msg, int timeout_ms,
                       fs_message **reply, const char **error_type);

#endif
