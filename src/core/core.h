/*
 * Internal structures of the message core. Not installed.
 */
#ifndef FS_CORE_INTERNAL_H
#define FS_CORE_INTERNAL_H

#include "common/internal.h"
#include "kit/clock.h"
#include "kit/str.h"
#include "faststream/adapter.h"
#include "faststream/broker.h"
#include "faststream/middleware.h"
#include "faststream/publisher.h"
#include "faststream/subscriber.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>

/* fs__mcore.flags */
enum {
    FS__MSG_BATCH = 1u << 0,     /* a batch built by the core */
    FS__MSG_CHILD = 1u << 1,     /* a message inside a batch */
    FS__MSG_COPY = 1u << 2,      /* a heap copy (fs_message_copy / fs_message_new_copy) */
    FS__MSG_WIRE_DONE = 1u << 3, /* nothing (more) to settle on the wire: no_ack, ACK_FIRST */
    FS__MSG_DEFERRED = 1u << 4,  /* ordered settlement: the adapter's settle waits (op) */
};

/* The core's part of every fs_message (fs_message.core_). */
typedef struct __attribute__((may_alias)) fs__mcore {
    fs_broker *broker;
    struct fs_subscriber *subscriber;
    void *adapter_sub;
    fs_message **items;   /* a batch's messages */
    size_t count;         /* 1, or a batch's size */
    size_t size;          /* body bytes (summed for a batch) */
    void *frame;          /* the core's dispatch frame while handled */
    _Atomic int settled;  /* fs_settle_state */
    _Atomic int id_state; /* 0: no generated id, 1: being written, 2: `id` holds one */
    uint16_t flags;
    uint16_t worker;
    uint8_t op;  /* FS__MSG_DEFERRED: the op to pass to settle */
    char id[37]; /* a generated correlation id (uuid4) */
} fs__mcore;

_Static_assert(sizeof(fs__mcore) <= FS_MESSAGE_CORE_SIZE, "fs__mcore outgrew fs_message_core");
_Static_assert(_Alignof(fs__mcore) <= 16, "fs__mcore needs more alignment than fs_message_core");

static inline fs__mcore *fs__mc(fs_message *m)
{
    return (fs__mcore *)(void *)m->core_.opaque_;
}

static inline const fs__mcore *fs__mcc(const fs_message *m)
{
    return (const fs__mcore *)(const void *)m->core_.opaque_;
}

/* Workers per subscriber at most (fs_subscribe). */
#define FS__MAX_CONCURRENCY 1024

#define FS__ERROR_TYPE_MAX 64
#define FS__ERROR_TEXT_MAX 256

typedef struct fs__mw {
    char *name;
    char *unique_key;
    fs_consume_hook consume;
    fs_publish_hook publish;
    fs_publish_result_hook publish_result;
    size_t scratch_size;
    size_t scratch_off; /* offset in the frame's scratch block */
    void *state;
    void (*free_state)(void *state);
} fs__mw;

/* One worker's dispatch state (one per worker thread). */
typedef struct fs__frame {
    struct fs_subscriber *sub;
    fs_broker *broker;
    fs_message *unit; /* the message or batch being handled, or NULL */
    fs_message batch; /* the batch unit (batch subscribers) */
    fs_message **items;
    unsigned char *scratch; /* broker->scratch_total bytes */
    bool has_error;
    char error_type[FS__ERROR_TYPE_MAX];
    char error_text[FS__ERROR_TEXT_MAX];
    unsigned index; /* the worker index */
    uint64_t seq;   /* ordered settlement: the unit's place in fetch order */
    pthread_t thread;
    bool thread_started;
    /* ordered settlement: where this worker sleeps until its unit's turn */
    bool turn_init;
    pthread_mutex_t turn_mu;
    pthread_cond_t turn_cv;
    /* written by this frame's worker only (plain load + store), read by anyone */
    _Alignas(64) _Atomic uint64_t handled;
} fs__frame;

struct fs_subscriber {
    fs_broker *broker;
    char *source;
    char *name;
    fs_handler_fn handler;
    void *user;
    void (*free_user)(void *user);
    fs_ack_policy policy;
    unsigned concurrency;
    size_t batch_size;
    unsigned batch_timeout_ms;
    bool no_ack;
    fs_settle_state presettled;
    fs_settle_state settle_as[4];
    fs_redelivery redelivery;
    void *adapter_sub;
    uint64_t handler_id; /* spec.fixed_source: fs_consume_ctx.handler_id of every message, else 0 */

    /*
     * Ordered settlement (spec.ordered_settle): settle and release in fetch
     * order across the workers (dispatch.c). fetch_mu serialises fetch and
     * the numbering; the completion side never takes it.
     */
    bool ordered;
    pthread_mutex_t fetch_mu;
    uint64_t order_fetched;          /* under fetch_mu: the next sequence number */
    _Atomic uint64_t order_done;     /* every unit below it was settled and released */
    _Atomic uint64_t *order_waiting; /* order_mask + 1 slots: a sleeping worker, by seq */
    uint64_t order_mask;

    fs__frame *_Atomic frames; /* concurrency entries, published once initialised */
    bool workers_started;
    unsigned live_workers; /* its workers not exited yet (broker lock) */
    _Atomic bool stop;
    struct fs_subscriber *next;
};

struct fs_publisher {
    fs_broker *broker;
    char *destination;
    /* The destination label (ops->destination_label for its broker_options), or `destination`. */
    const char *label;
    char *label_copy;  /* what `label` points to when the adapter made one */
    uint64_t label_id; /* fs_publish_ctx.destination_id of publishes with `label` */
    void *dest;
    const void *broker_options;
    char *reply_to;
    struct fs_publisher *next;
};

typedef struct fs__waiter {
    char corr[64];
    fs_message *reply;
    bool closed; /* the reply inbox was shut down: no reply can come */
    struct fs__waiter *next;
} fs__waiter;

struct fs_broker {
    const fs_broker_ops *ops; /* the adapter's, or `ops_copy` when it is an older, shorter table */
    fs_broker_ops ops_copy;
    void *impl;
    char *url;
    fs_broker_options opts;
    fs_ack_policy default_policy; /* broker default, resolved to the type's when DEFAULT */

    pthread_mutex_t lock; /* lifecycle, lists */
    pthread_cond_t cond;  /* worker exits */
    _Atomic bool connected;
    _Atomic bool running;
    bool closed;
    bool frozen;          /* middleware chain fixed (first start) */
    bool stopped_pending; /* a stop timed out: ops->stopped not yet called */
    unsigned live_workers;

    fs__mw *mws;
    size_t mw_count;
    size_t *consume_chain; /* indices of middlewares with a consume hook */
    size_t consume_count;
    size_t *publish_chain;
    size_t publish_count;
    size_t scratch_total;

    struct fs_subscriber *subs;
    struct fs_publisher *pubs;

    /* generic request/reply */
    pthread_mutex_t req_lock;
    pthread_cond_t req_cond;
    bool req_ready;
    char req_inbox[96];
    void *req_sub;
    bool req_no_ack;
    pthread_t req_thread;
    _Atomic bool req_quit;
    fs__waiter *waiters;
    _Atomic uint64_t req_seq;
};

/* Set the core's fields of a message an adapter handed out (not a batch). */
static inline void fs__message_bind(fs_message *m, fs_broker *b, struct fs_subscriber *sub,
                                    void *adapter_sub, void *frame, unsigned flags,
                                    fs_settle_state initial, unsigned worker)
{
    fs__mcore *c = fs__mc(m);
    c->broker = b;
    c->subscriber = sub;
    c->adapter_sub = adapter_sub;
    c->items = NULL;
    c->count = 1;
    c->size = m->body_len;
    c->frame = frame;
    c->flags = (uint16_t)flags;
    c->worker = (uint16_t)worker;
    c->op = 0;
    atomic_store_explicit(&c->settled, (int)initial, memory_order_relaxed);
    atomic_store_explicit(&c->id_state, 0, memory_order_relaxed);
}

/*
 * Set in fs_consume_ctx.index_ / fs_publish_ctx.index_ once the next call at
 * that chain position has returned: a hook calling next a second time finds
 * it and gets the first call's outcome/status without the inner chain
 * running again. Chains are far shorter than this bit.
 */
#define FS__CHAIN_DONE ((size_t)1 << (sizeof(size_t) * 8 - 1))

/* The name of the hook at chain position i - 1 (the one calling next at i), for errors. */
static inline const char *fs__chain_caller(const fs_broker *b, const size_t *chain, size_t i)
{
    return i > 0 ? b->mws[chain[i - 1]].name : "(the core)";
}

/* dispatch.c */
extern _Thread_local fs__frame *fs__current_frame FS_TLS_MODEL;
int fs__subscriber_start_workers(struct fs_subscriber *sub);
void fs__subscriber_signal_stop(struct fs_subscriber *sub);
void fs__subscriber_join(struct fs_subscriber *sub);
void fs__subscriber_free_frames(struct fs_subscriber *sub);

/* publish.c */
/*
 * Run the publish chain for `count` messages to `destination`. `label` is
 * the destination label (a publisher's), or NULL: then it is the adapter's
 * ops->destination_label for msgs[0]'s broker_options (into a stack
 * buffer), or the name.
 */
int fs__publish_run(fs_broker *b, void *dest, const char *destination, const char *label,
                    const fs_envelope *msgs, size_t count, bool is_reply);
/*
 * A new id for a label the core keeps (a publisher's, a fixed-source
 * subscription's): fs_publish_ctx.destination_id, fs_consume_ctx.handler_id.
 * Never 0, never given twice.
 */
uint64_t fs__label_id_new(void);
/* fs__publish_run with a kept label and its id (fs_publish_ctx.destination_id; 0: none). */
int fs__publish_run_id(fs_broker *b, void *dest, const char *destination, const char *label,
                       uint64_t label_id, const fs_envelope *msgs, size_t count, bool is_reply);
void fs__request_shutdown(fs_broker *b);
/* Release a publisher's prepared destination and free it (already unlinked). */
void fs__publisher_destroy(struct fs_publisher *p);
/* FS_EINVAL naming `fn` when a body, header array, header name or value is NULL. */
int fs__check_envelopes(const char *fn, const fs_envelope *msgs, size_t count);

/* message.c */
/* An explicit settlement (fs_message_ack/nack/reject, the reply inbox). */
int fs__settle(fs_message *m, fs_settle_state op);
/* Call the adapter's settle for `m` with `op` (redelivery settings applied). */
int fs__settle_adapter(fs_message *m, fs_settle_state op);
/* A uuid4 string into out. */
void fs__uuid4(char out[37]);

/* broker.c */
/* The spec's outputs as an adapter finds them (no_ack from the caps, identity settle_as...). */
void fs__spec_outputs_init(const fs_broker *b, fs_subscribe_spec *spec);
/* FS_EINVAL when an adapter set an output out of range. */
int fs__spec_outputs_check(const fs_broker *b, const fs_subscribe_spec *spec);
int fs__broker_ensure_connected(fs_broker *b);
int fs__broker_stop_timeout(fs_broker *b, int timeout_ms);

/* After the state is recorded: tell the adapter now, later (ordered), or not at all. */
static inline int fs__settle_wire(fs_message *m, fs_settle_state op)
{
    fs__mcore *c = fs__mc(m);
    if (c->flags & FS__MSG_WIRE_DONE)
        return FS_OK;
    const struct fs_subscriber *s = c->subscriber;
    if (s && s->ordered) {
        c->op = (uint8_t)op;
        c->flags |= FS__MSG_DEFERRED;
        return FS_OK;
    }
    return fs__settle_adapter(m, op);
}

/*
 * The ack policy's settlement of a unit only the calling worker can reach
 * any more (its handler returned, nothing settled it): no CAS needed.
 */
static inline int fs__settle_owned(fs_message *m, fs_settle_state op)
{
    atomic_store_explicit(&fs__mc(m)->settled, (int)op, memory_order_relaxed);
    return fs__settle_wire(m, op);
}

#endif
