/*
 * The in-process broker ("memory://"): internal structures. Not installed.
 *
 * Names (topics) live in a lock-free hash table (append-only lists per
 * bucket); each name has an append-only list of groups; each group is a
 * bounded queue made of a slot array and three MPMC rings of slot indices:
 * `free` (slots available to publishers), `ready` (slots waiting for a
 * consumer) and `pending` (released unsettled, requeued at stop), plus a
 * list of nacked slots waiting for their redelivery delay.
 * Publishing pops a free slot, copies the message into it (inline storage,
 * heap only for large messages) and pushes it on `ready`; fetching pops
 * `ready`; release pushes the slot back on `free` (ack, reject), on the
 * delayed list (nack: back on `ready` once due) or on `pending` (skip,
 * manual). No lock and no allocation on the ack path.
 *
 * Files: topic.c (names, groups, slots, the delayed list), pub.c
 * (publishing), sub.c (fetch, settle, release, subscriptions, lifecycle),
 * broker.c (the ops table, creation, the URL, registration), harness.c
 * (the test helpers of memory.h). It uses only faststream/adapter.h and
 * the kit, as every adapter does; docs/adapters.md walks through it.
 */
#ifndef FS_MEMORY_INTERNAL_H
#define FS_MEMORY_INTERNAL_H

#include "faststream/adapter.h"
#include "faststream/memory.h"
#include "kit/check.h"
#include "kit/clock.h"
#include "kit/compiler.h"
#include "kit/pack.h"
#include "kit/str.h"
#include "ring.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MEM_BUCKETS 1024
#define MEM_DEFAULT_CAPACITY 16384
#define MEM_DEFAULT_INLINE 256
#define MEM_SPIN 4000
#define MEM_NONE UINT32_MAX

typedef struct mem_broker mem_broker;
typedef struct mem_topic mem_topic;
typedef struct mem_group mem_group;

typedef struct mem_sub {
    mem_broker *mb;
    mem_group *group;
    char *dead_letter;
    bool inbox;
    struct mem_sub *next;
} mem_sub;

typedef struct mem_slot {
    fs_message msg;
    mem_group *group;
    mem_sub *sub; /* the subscription that fetched it */
    char *heap;   /* storage for messages larger than inline_size */
    uint32_t index;
    uint32_t deliveries;    /* times fetched since published */
    fs_settle_state action; /* what ops->settle asked for (FS_SETTLE_NONE: unsettled) */
    unsigned delay_ms;      /* nack: redeliver no sooner than this */
    uint64_t due_ns;        /* on the delayed list: when it goes back on `ready` */
    uint32_t delay_next;    /* on the delayed list: the next slot, or MEM_NONE */
    _Alignas(16) unsigned char data[];
} mem_slot;

typedef struct mem_record {
    fs_message *msg;
    struct mem_record *next;
} mem_record;

struct mem_group {
    mem_ring ready;
    mem_ring free;
    _Alignas(64) _Atomic uint32_t seq; /* event count for sleeping consumers */
    _Atomic int waiters;
    /* read-only after creation (read by publishers and consumers) */
    _Alignas(64) mem_topic *topic;
    char *name; /* NULL for the default group */
    unsigned char *slots;
    size_t stride;
    size_t cap;
    mem_cell *cells;
    mem_group *_Atomic next; /* in the topic */
    mem_group *all_next;     /* in the broker */
    mem_ring pending;        /* released unsettled, requeued by mem_stopped */
    /* nacked slots waiting for their redelivery delay, sorted by due time */
    pthread_mutex_t delay_mu;
    uint32_t delayed_head;
    _Atomic size_t delayed_n;
    _Atomic uint64_t next_due_ns; /* the head's due time, UINT64_MAX when none */
};

struct mem_topic {
    char *name;
    uint64_t hash;
    mem_group *_Atomic groups;
    _Atomic uint64_t published;
    pthread_mutex_t records_lock;
    mem_record *records_head, *records_tail;
    mem_topic *_Atomic next;
};

struct mem_broker {
    size_t capacity;
    size_t inline_size;
    bool record;
    _Atomic bool stopping;
    pthread_mutex_t lock; /* creation of topics, groups and subscriptions */
    mem_topic *_Atomic buckets[MEM_BUCKETS];
    mem_group *all_groups;
    mem_sub *subs;
};

/* topic.c */
uint64_t mem_hash_name(const char *s);
mem_topic *mem_topic_find(mem_broker *mb, const char *name, uint64_t h);
mem_topic *mem_topic_get(mem_broker *mb, const char *name);
void mem_group_free(mem_group *g);
mem_group *mem_group_new(mem_broker *mb, mem_topic *t, const char *name);
mem_group *mem_group_find(mem_topic *t, const char *name);
mem_group *mem_topic_groups(mem_broker *mb, mem_topic *t);
void mem_group_delay(mem_group *g, mem_slot *s, unsigned delay_ms);
void mem_group_promote(mem_group *g, uint64_t now);
/* pub.c */
int mem_publish_to(mem_broker *mb, mem_topic *t, const fs_envelope *msgs, size_t count,
                   const char **error_type);
int mem_publish(void *impl, void *dest, const char *destination, const fs_envelope *msgs,
                size_t count, const char **error_type);
int mem_prepare_destination(void *impl, const char *destination, const void *opts, void **out);
/* sub.c */
int mem_fetch(void *impl, void *sub, unsigned worker, int timeout_ms, fs_message **out);
int mem_fetch_batch(void *impl, void *sub, unsigned worker, fs_message **out, size_t max,
                    unsigned batch_timeout_ms, int timeout_ms, size_t *n);
int mem_settle(void *impl, fs_message *m, const fs_settle_args *args);
void mem_release(fs_message *m);
int mem_subscribe(void *impl, fs_subscribe_spec *spec, void **out);
void mem_unsubscribe(void *impl, void *sub);
int mem_start(void *impl);
int mem_stop(void *impl);
void mem_stopped(void *impl);
void mem_free(void *impl);
/* broker.c */
extern const fs_broker_ops fs__memory_ops;

static inline mem_slot *mem_slot_at(mem_group *g, uint32_t idx)
{
    return (mem_slot *)(g->slots + (size_t)idx * g->stride);
}

static inline void mem_group_wake(mem_group *g, int n)
{
    atomic_fetch_add_explicit(&g->seq, 1, memory_order_seq_cst);
    if (atomic_load_explicit(&g->waiters, memory_order_seq_cst) > 0)
        fs_kit_futex_wake(&g->seq, n);
}

static inline void mem_group_push_ready(mem_group *g, uint32_t idx)
{
    mem_ring_push(&g->ready, idx); /* never full: the slot was ours */
    mem_group_wake(g, 1);
}

/* Promote what is due; returns the next due time (UINT64_MAX: none). One load when none. */
static inline uint64_t mem_group_due(mem_group *g)
{
    uint64_t due = atomic_load_explicit(&g->next_due_ns, memory_order_acquire);
    if (FS_LIKELY(due == UINT64_MAX))
        return due;
    uint64_t now = fs_kit_now_ns();
    if (now >= due) {
        mem_group_promote(g, now);
        due = atomic_load_explicit(&g->next_due_ns, memory_order_acquire);
    }
    return due;
}

#endif
