/*
 * The in-process broker ("memory://").
 *
 * Names (topics) live in a lock-free hash table (append-only lists per
 * bucket); each name has an append-only list of groups; each group is a
 * bounded queue made of a slot array and three MPMC rings of slot indices:
 * `free` (slots available to publishers), `ready` (slots waiting for a
 * consumer) and `pending` (released unsettled, requeued at stop).
 * Publishing pops a free slot, copies the message into it (inline storage,
 * heap only for large messages) and pushes it on `ready`; fetching pops
 * `ready`; release pushes the slot back on `free` (ack, reject), on `ready`
 * (nack) or on `pending` (skip, manual). No lock and no allocation on that
 * path.
 */
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

static const fs_broker_ops memory_ops;

/* ------------------------------------------------------------------------ */
/* Topics and groups                                                        */

static uint64_t hash_name(const char *s)
{
    uint64_t h = 1469598103934665603ull;
    for (; *s; s++)
        h = (h ^ (unsigned char)*s) * 1099511628211ull;
    return h;
}

static mem_topic *topic_find(mem_broker *mb, const char *name, uint64_t h)
{
    mem_topic *t = atomic_load_explicit(&mb->buckets[h % MEM_BUCKETS], memory_order_acquire);
    for (; t; t = atomic_load_explicit(&t->next, memory_order_acquire))
        if (t->hash == h && strcmp(t->name, name) == 0)
            return t;
    return NULL;
}

/* Find or create (lock taken only to create). NULL on OOM. */
static mem_topic *topic_get(mem_broker *mb, const char *name)
{
    uint64_t h = hash_name(name);
    mem_topic *t = topic_find(mb, name, h);
    if (t)
        return t;
    pthread_mutex_lock(&mb->lock);
    t = topic_find(mb, name, h);
    if (!t) {
        t = calloc(1, sizeof *t);
        char *n = t ? fs_kit_strdup(name) : NULL;
        if (!n) {
            free(t);
            pthread_mutex_unlock(&mb->lock);
            fs_adapter_error(FS_ENOMEM, "out of memory creating queue '%s'", name);
            return NULL;
        }
        t->name = n;
        t->hash = h;
        pthread_mutex_init(&t->records_lock, NULL);
        mem_topic *head = atomic_load_explicit(&mb->buckets[h % MEM_BUCKETS], memory_order_relaxed);
        atomic_store_explicit(&t->next, head, memory_order_relaxed);
        atomic_store_explicit(&mb->buckets[h % MEM_BUCKETS], t, memory_order_release);
    }
    pthread_mutex_unlock(&mb->lock);
    return t;
}

static mem_slot *slot_at(mem_group *g, uint32_t idx)
{
    return (mem_slot *)(g->slots + (size_t)idx * g->stride);
}

static void group_free(mem_group *g)
{
    if (!g)
        return;
    if (g->slots)
        for (size_t i = 0; i < g->cap; i++)
            free(slot_at(g, (uint32_t)i)->heap);
    free(g->slots);
    free(g->cells);
    free(g->name);
    pthread_mutex_destroy(&g->delay_mu);
    free(g);
}

/* Lock held. */
static mem_group *group_new(mem_broker *mb, mem_topic *t, const char *name)
{
    mem_group *g = NULL;
    if (posix_memalign((void **)&g, 64, sizeof *g) != 0)
        return NULL;
    memset(g, 0, sizeof *g);
    pthread_mutex_init(&g->delay_mu, NULL);
    g->delayed_head = MEM_NONE;
    atomic_init(&g->delayed_n, 0);
    atomic_init(&g->next_due_ns, UINT64_MAX);
    g->topic = t;
    g->cap = mb->capacity;
    /* + 1: the NUL that fs_kit_pack writes after the body */
    g->stride = (sizeof(mem_slot) + mb->inline_size + 1 + 15u) & ~(size_t)15u;
    g->name = fs_kit_strdup(name);
    g->cells = malloc(3 * g->cap * sizeof *g->cells);
    /* calloc: large blocks come zeroed from mmap, so untouched slots cost no memory */
    g->slots = calloc(g->cap, g->stride);
    if ((name && !g->name) || !g->cells || !g->slots) {
        group_free(g);
        return NULL;
    }
    mem_ring_init(&g->ready, g->cells, g->cap);
    mem_ring_init(&g->free, g->cells + g->cap, g->cap);
    mem_ring_init(&g->pending, g->cells + 2 * g->cap, g->cap);
    for (size_t i = 0; i < g->cap; i++)
        mem_ring_push(&g->free, (uint32_t)i);
    atomic_init(&g->seq, 0);
    atomic_init(&g->waiters, 0);
    atomic_init(&g->next, NULL);
    /* append at the tail so that publish order over groups is stable */
    mem_group *_Atomic *pp = &t->groups;
    while (atomic_load_explicit(pp, memory_order_relaxed))
        pp = &atomic_load_explicit(pp, memory_order_relaxed)->next;
    atomic_store_explicit(pp, g, memory_order_release);
    g->all_next = mb->all_groups;
    mb->all_groups = g;
    return g;
}

static bool group_name_eq(const mem_group *g, const char *name)
{
    if (!g->name || !name)
        return !g->name && !name;
    return strcmp(g->name, name) == 0;
}

/* Lock held. */
static mem_group *group_find(mem_topic *t, const char *name)
{
    for (mem_group *g = atomic_load_explicit(&t->groups, memory_order_acquire); g;
         g = atomic_load_explicit(&g->next, memory_order_acquire))
        if (group_name_eq(g, name))
            return g;
    return NULL;
}

/* The groups of `t`, creating its default group when it has none. */
static mem_group *topic_groups(mem_broker *mb, mem_topic *t)
{
    mem_group *g = atomic_load_explicit(&t->groups, memory_order_acquire);
    if (g)
        return g;
    pthread_mutex_lock(&mb->lock);
    g = atomic_load_explicit(&t->groups, memory_order_acquire);
    if (!g)
        g = group_new(mb, t, NULL);
    pthread_mutex_unlock(&mb->lock);
    if (!g)
        fs_adapter_error(FS_ENOMEM, "out of memory creating queue '%s'", t->name);
    return g;
}

/* ------------------------------------------------------------------------ */
/* Copying messages into slots                                              */

static void mem_release(fs_message *m);

static int slot_fill(mem_broker *mb, mem_group *g, uint32_t idx, const fs_envelope *e,
                     const char *source)
{
    mem_slot *s = slot_at(g, idx);
    s->group = g;
    s->index = idx;
    size_t need = fs_kit_pack_size(e, NULL);
    void *base = s->data;
    if (need > mb->inline_size + 1) {
        if (need == SIZE_MAX)
            return fs_adapter_error(FS_EINVAL, "message too large (body of %zu bytes)",
                                    e->body_len);
        s->heap = malloc(need);
        if (!s->heap)
            return fs_adapter_error(FS_ENOMEM, "out of memory storing a message of %zu bytes",
                                    e->body_len);
        base = s->heap;
    }
    /* Every public field is set here and every core field at fetch: no memset. */
    fs_message *m = &s->msg;
    fs_kit_pack(m, e, NULL, base);
    m->source = source;
    m->offset = -1;
    m->delivery_count = 0;
    m->raw = NULL;
    m->adapter_data = s;
    m->adapter_tag = 0;
    m->release = mem_release;
    s->deliveries = 0;
    return FS_OK;
}

static void slot_recycle(mem_group *g, mem_slot *s)
{
    if (s->heap) {
        free(s->heap);
        s->heap = NULL;
    }
    s->sub = NULL;
    mem_ring_push(&g->free, s->index);
}

static void group_wake(mem_group *g, int n)
{
    atomic_fetch_add_explicit(&g->seq, 1, memory_order_seq_cst);
    if (atomic_load_explicit(&g->waiters, memory_order_seq_cst) > 0)
        mem_futex_wake(&g->seq, n);
}

static void group_push_ready(mem_group *g, uint32_t idx)
{
    mem_ring_push(&g->ready, idx); /* never full: the slot was ours */
    group_wake(g, 1);
}

/* Put a nacked slot on the delayed list, in due-time order. */
static void group_delay(mem_group *g, mem_slot *s, unsigned delay_ms)
{
    s->due_ns = fs_kit_now_ns() + (uint64_t)delay_ms * 1000000u;
    pthread_mutex_lock(&g->delay_mu);
    uint32_t *pp = &g->delayed_head;
    while (*pp != MEM_NONE && slot_at(g, *pp)->due_ns <= s->due_ns)
        pp = &slot_at(g, *pp)->delay_next;
    s->delay_next = *pp;
    *pp = s->index;
    atomic_fetch_add_explicit(&g->delayed_n, 1, memory_order_relaxed);
    atomic_store_explicit(&g->next_due_ns, slot_at(g, g->delayed_head)->due_ns,
                          memory_order_release);
    pthread_mutex_unlock(&g->delay_mu);
    group_wake(g, 1); /* a sleeping consumer shortens its wait to the new due time */
}

/* Move the delayed slots that are due back on `ready`. */
static void group_promote(mem_group *g, uint64_t now)
{
    size_t moved = 0;
    pthread_mutex_lock(&g->delay_mu);
    while (g->delayed_head != MEM_NONE && slot_at(g, g->delayed_head)->due_ns <= now) {
        mem_slot *s = slot_at(g, g->delayed_head);
        g->delayed_head = s->delay_next;
        mem_ring_push(&g->ready, s->index);
        moved++;
    }
    atomic_fetch_sub_explicit(&g->delayed_n, moved, memory_order_relaxed);
    atomic_store_explicit(&g->next_due_ns,
                          g->delayed_head == MEM_NONE ? UINT64_MAX
                                                      : slot_at(g, g->delayed_head)->due_ns,
                          memory_order_release);
    pthread_mutex_unlock(&g->delay_mu);
    if (moved)
        group_wake(g, (int)moved);
}

/* Promote what is due; returns the next due time (UINT64_MAX: none). One load when none. */
static inline uint64_t group_due(mem_group *g)
{
    uint64_t due = atomic_load_explicit(&g->next_due_ns, memory_order_acquire);
    if (FS_LIKELY(due == UINT64_MAX))
        return due;
    uint64_t now = fs_kit_now_ns();
    if (now >= due) {
        group_promote(g, now);
        due = atomic_load_explicit(&g->next_due_ns, memory_order_acquire);
    }
    return due;
}

/* ------------------------------------------------------------------------ */
/* Publishing                                                               */

static void record(mem_topic *t, const fs_envelope *e)
{
    fs_message *c = fs_message_new_copy(e, t->name);
    mem_record *r = c ? malloc(sizeof *r) : NULL;
    if (!r) {
        fs_message_free(c);
        fs_adapter_log(FS_LOG_WARN, "memory", "out of memory recording a message published to %s",
                       t->name);
        return;
    }
    r->msg = c;
    r->next = NULL;
    pthread_mutex_lock(&t->records_lock);
    if (t->records_tail)
        t->records_tail->next = r;
    else
        t->records_head = r;
    t->records_tail = r;
    pthread_mutex_unlock(&t->records_lock);
}

static int publish_to(mem_broker *mb, mem_topic *t, const fs_envelope *msgs, size_t count,
                      const char **error_type)
{
    mem_group *groups = topic_groups(mb, t);
    if (!groups) {
        *error_type = "MemoryError";
        return FS_ENOMEM;
    }
    int rc = FS_OK;
    size_t done = 0;
    for (size_t i = 0; i < count && rc == FS_OK; i++) {
        for (mem_group *g = groups; g; g = atomic_load_explicit(&g->next, memory_order_acquire)) {
            uint32_t idx;
            if (!mem_ring_pop(&g->free, &idx, true)) {
                *error_type = "QueueFull";
                rc = fs_adapter_error(FS_EFULL, "memory queue '%s'%s%s is full (%zu messages)",
                                      t->name, g->name ? " group " : "", g->name ? g->name : "",
                                      g->cap);
                continue;
            }
            int frc = slot_fill(mb, g, idx, &msgs[i], t->name);
            if (frc < 0) {
                mem_ring_push(&g->free, idx);
                *error_type = "MemoryError";
                rc = frc;
                continue;
            }
            group_push_ready(g, idx);
        }
        if (rc == FS_OK) {
            done++;
            if (mb->record)
                record(t, &msgs[i]);
        }
    }
    if (done)
        atomic_fetch_add_explicit(&t->published, done, memory_order_relaxed);
    return rc;
}

static int mem_publish(void *impl, void *dest, const char *destination, const fs_envelope *msgs,
                       size_t count, const char **error_type)
{
    mem_broker *mb = impl;
    mem_topic *t = dest ? dest : topic_get(mb, destination);
    if (!t) {
        *error_type = "MemoryError";
        return FS_ENOMEM;
    }
    return publish_to(mb, t, msgs, count, error_type);
}

static int mem_prepare_destination(void *impl, const char *destination, const void *opts,
                                   void **out)
{
    (void)opts;
    mem_topic *t = topic_get(impl, destination);
    if (!t)
        return FS_ENOMEM;
    *out = t;
    return FS_OK;
}

/* ------------------------------------------------------------------------ */
/* Consuming                                                                */

static bool sub_stopped(const mem_sub *s)
{
    return !s->inbox && atomic_load_explicit(&s->mb->stopping, memory_order_acquire);
}

static int pop_wait(mem_sub *s, int timeout_ms, uint32_t *idx)
{
    mem_group *g = s->group;
    if (sub_stopped(s))
        return FS_ECLOSED;
    group_due(g);
    if (mem_ring_pop(&g->ready, idx, false))
        return FS_OK;
    for (int i = 0; i < MEM_SPIN; i++) {
        mem_cpu_relax();
        if (mem_ring_pop(&g->ready, idx, false))
            return FS_OK;
    }
    uint64_t deadline = fs_kit_deadline_ns(timeout_ms);
    for (;;) {
        if (sub_stopped(s))
            return FS_ECLOSED;
        atomic_fetch_add_explicit(&g->waiters, 1, memory_order_seq_cst);
        uint32_t seq = atomic_load_explicit(&g->seq, memory_order_seq_cst);
        if (mem_ring_pop(&g->ready, idx, false)) {
            atomic_fetch_sub_explicit(&g->waiters, 1, memory_order_relaxed);
            return FS_OK;
        }
        int left = fs_kit_ms_left(deadline);
        if (left == 0 || sub_stopped(s)) {
            atomic_fetch_sub_explicit(&g->waiters, 1, memory_order_relaxed);
            return sub_stopped(s) ? FS_ECLOSED : FS_ETIMEDOUT;
        }
        uint64_t due = group_due(g);
        if (due != UINT64_MAX) { /* wake up when the next delayed message is due */
            int until_due = fs_kit_ms_left(due);
            if (until_due < left)
                left = until_due > 0 ? until_due : 1;
        }
        mem_futex_wait(&g->seq, seq, left);
        atomic_fetch_sub_explicit(&g->waiters, 1, memory_order_relaxed);
        if (mem_ring_pop(&g->ready, idx, false))
            return FS_OK;
    }
}

static fs_message *take(mem_sub *s, uint32_t idx)
{
    mem_slot *slot = slot_at(s->group, idx);
    slot->sub = s;
    slot->action = FS_SETTLE_NONE;
    slot->msg.delivery_count = ++slot->deliveries;
    return &slot->msg;
}

static int mem_fetch(void *impl, void *sub, unsigned worker, int timeout_ms, fs_message **out)
{
    (void)impl;
    (void)worker;
    mem_sub *s = sub;
    uint32_t idx;
    int rc = pop_wait(s, timeout_ms, &idx);
    if (rc < 0)
        return rc;
    *out = take(s, idx);
    return FS_OK;
}

static int mem_fetch_batch(void *impl, void *sub, unsigned worker, fs_message **out, size_t max,
                           unsigned batch_timeout_ms, int timeout_ms, size_t *n)
{
    (void)impl;
    (void)worker;
    mem_sub *s = sub;
    uint32_t idx;
    *n = 0;
    int rc = pop_wait(s, timeout_ms, &idx);
    if (rc < 0)
        return rc;
    out[(*n)++] = take(s, idx);
    uint64_t deadline = fs_kit_deadline_ns(batch_timeout_ms);
    while (*n < max) {
        if (mem_ring_pop(&s->group->ready, &idx, false)) {
            out[(*n)++] = take(s, idx);
            continue;
        }
        int left = fs_kit_ms_left(deadline);
        if (left == 0)
            break;
        if (pop_wait(s, left, &idx) < 0)
            break;
        out[(*n)++] = take(s, idx);
    }
    return FS_OK;
}

static void dead_letter(mem_broker *mb, mem_sub *sub, mem_slot *slot)
{
    fs_envelope e = fs_kit_message_envelope(&slot->msg);
    mem_topic *t = topic_get(mb, sub->dead_letter);
    const char *etype = NULL;
    if (!t || publish_to(mb, t, &e, 1, &etype) < 0)
        fs_adapter_log(FS_LOG_ERROR, "memory",
                       "could not move a rejected message from %s to %s: %s",
                       slot->group->topic->name, sub->dead_letter, fs_last_error());
}

/* Record what to do with each message; release does it once the handler is done. */
static int mem_settle(void *impl, fs_message *m, const fs_settle_args *args)
{
    (void)impl;
    size_t n = fs_message_count(m);
    for (size_t i = 0; i < n; i++) {
        mem_slot *slot = fs_message_at(m, i)->adapter_data;
        slot->action = args->op;
        slot->delay_ms = args->delay_ms;
    }
    return FS_OK;
}

static void mem_release(fs_message *m)
{
    mem_slot *slot = m->adapter_data;
    mem_group *g = slot->group;
    mem_sub *sub = slot->sub;
    switch (slot->action) {
    case FS_SETTLE_ACKED:
        slot_recycle(g, slot);
        return;
    case FS_SETTLE_NACKED:
        slot->sub = NULL;
        if (slot->delay_ms)
            group_delay(g, slot, slot->delay_ms);
        else
            group_push_ready(g, slot->index);
        return;
    case FS_SETTLE_REJECTED:
        if (sub && sub->dead_letter)
            dead_letter(sub->mb, sub, slot);
        slot_recycle(g, slot);
        return;
    case FS_SETTLE_NONE:
        break;
    }
    /* Unsettled: keep it pending; mem_stopped requeues it once the workers are gone. */
    slot->sub = NULL;
    mem_ring_push(&g->pending, slot->index);
}

/* ------------------------------------------------------------------------ */
/* Subscriptions and lifecycle                                              */

static int mem_subscribe(void *impl, fs_subscribe_spec *spec, void **out)
{
    mem_broker *mb = impl;
    const fs_memory_subscriber_options *o = spec->broker_options;
    const char *group = o ? o->group : NULL;
    if (group && !*group)
        return fs_adapter_error(FS_EINVAL, "memory subscriber on '%s': empty group name",
                                spec->source);
    if (o && o->dead_letter && !*o->dead_letter)
        return fs_adapter_error(FS_EINVAL, "memory subscriber on '%s': empty dead-letter name",
                                spec->source);
    mem_sub *s = calloc(1, sizeof *s);
    if (!s)
        return fs_adapter_error(FS_ENOMEM, "out of memory subscribing to '%s'", spec->source);
    s->mb = mb;
    s->inbox = spec->reply_inbox;
    if (o && o->dead_letter) {
        s->dead_letter = fs_kit_strdup(o->dead_letter);
        if (!s->dead_letter) {
            free(s);
            return fs_adapter_error(FS_ENOMEM, "out of memory subscribing to '%s'", spec->source);
        }
    }
    mem_topic *t = topic_get(mb, spec->source);
    if (!t) {
        free(s->dead_letter);
        free(s);
        return FS_ENOMEM;
    }
    pthread_mutex_lock(&mb->lock);
    mem_group *g = group_find(t, group);
    if (!g)
        g = group_new(mb, t, group);
    if (g) {
        s->group = g;
        s->next = mb->subs;
        mb->subs = s;
    }
    pthread_mutex_unlock(&mb->lock);
    if (!g) {
        free(s->dead_letter);
        free(s);
        return fs_adapter_error(FS_ENOMEM, "out of memory creating queue '%s'", spec->source);
    }
    *out = s;
    return FS_OK;
}

static void mem_unsubscribe(void *impl, void *sub)
{
    mem_broker *mb = impl;
    mem_sub *s = sub;
    pthread_mutex_lock(&mb->lock);
    for (mem_sub **pp = &mb->subs; *pp; pp = &(*pp)->next) {
        if (*pp == s) {
            *pp = s->next;
            break;
        }
    }
    pthread_mutex_unlock(&mb->lock);
    free(s->dead_letter);
    free(s);
}

static int mem_start(void *impl)
{
    mem_broker *mb = impl;
    atomic_store(&mb->stopping, false);
    return FS_OK;
}

static int mem_stop(void *impl)
{
    mem_broker *mb = impl;
    atomic_store(&mb->stopping, true);
    pthread_mutex_lock(&mb->lock);
    for (mem_group *g = mb->all_groups; g; g = g->all_next)
        group_wake(g, INT_MAX);
    pthread_mutex_unlock(&mb->lock);
    return FS_OK;
}

/* Every worker is gone: requeue what was released unsettled. */
static void mem_stopped(void *impl)
{
    mem_broker *mb = impl;
    pthread_mutex_lock(&mb->lock);
    for (mem_group *g = mb->all_groups; g; g = g->all_next) {
        uint32_t idx;
        while (mem_ring_pop(&g->pending, &idx, true))
            mem_ring_push(&g->ready, idx);
    }
    pthread_mutex_unlock(&mb->lock);
}

static void mem_free(void *impl)
{
    mem_broker *mb = impl;
    mem_group *g = mb->all_groups;
    while (g) {
        mem_group *n = g->all_next;
        group_free(g);
        g = n;
    }
    for (size_t i = 0; i < MEM_BUCKETS; i++) {
        mem_topic *t = atomic_load(&mb->buckets[i]);
        while (t) {
            mem_topic *n = atomic_load(&t->next);
            for (mem_record *r = t->records_head; r;) {
                mem_record *rn = r->next;
                fs_message_free(r->msg);
                free(r);
                r = rn;
            }
            pthread_mutex_destroy(&t->records_lock);
            free(t->name);
            free(t);
            t = n;
        }
    }
    while (mb->subs) {
        mem_sub *n = mb->subs->next;
        free(mb->subs->dead_letter);
        free(mb->subs);
        mb->subs = n;
    }
    pthread_mutex_destroy(&mb->lock);
    free(mb);
}

static int mem_backlog(void *impl, void *sub, int timeout_ms, uint64_t *out)
{
    (void)impl;
    (void)timeout_ms;
    mem_sub *s = sub;
    *out = mem_ring_size(&s->group->ready) + atomic_load(&s->group->delayed_n);
    return FS_OK;
}

static const fs_broker_ops memory_ops = {
    .abi_version = FS_ADAPTER_ABI_VERSION,
    .struct_size = sizeof(fs_broker_ops),
    .name = "memory",
    .default_ack_policy = FS_ACK_POLICY_REJECT_ON_ERROR,
    .caps = FS_CAP_NACK | FS_CAP_NACK_DELAY | FS_CAP_DELIVERY_COUNT | FS_CAP_BACKLOG,
    .start = mem_start,
    .stop = mem_stop,
    .stopped = mem_stopped,
    .free = mem_free,
    .subscribe = mem_subscribe,
    .unsubscribe = mem_unsubscribe,
    .fetch = mem_fetch,
    .fetch_batch = mem_fetch_batch,
    /* settle records; the slot moves in release, once the handler is done */
    .settle = mem_settle,
    .backlog = mem_backlog,
    .prepare_destination = mem_prepare_destination,
    .publish = mem_publish,
};

/* ------------------------------------------------------------------------ */
/* Public API                                                               */

static size_t round_pow2(size_t v)
{
    size_t p = 1;
    while (p < v)
        p <<= 1;
    return p;
}

static int memory_new(const fs_memory_options *opts, const char *url, fs_broker **out)
{
    fs_memory_options o = FS_MEMORY_OPTIONS_INIT;
    if (opts)
        o = *opts;
    FS_CHECK_ARG(o.capacity <= (1u << 24), "memory broker: capacity %zu exceeds %u", o.capacity,
                 1u << 24);
    FS_CHECK_ARG(o.inline_size <= (1u << 20), "memory broker: inline_size %zu exceeds %u",
                 o.inline_size, 1u << 20);
    mem_broker *mb = calloc(1, sizeof *mb);
    if (!mb)
        return fs_adapter_error(FS_ENOMEM, "out of memory creating a memory broker");
    mb->capacity = round_pow2(o.capacity ? o.capacity : MEM_DEFAULT_CAPACITY);
    if (mb->capacity < 2)
        mb->capacity = 2;
    mb->inline_size = ((o.inline_size ? o.inline_size : MEM_DEFAULT_INLINE) + 15u) & ~(size_t)15u;
    mb->record = o.record_published;
    pthread_mutex_init(&mb->lock, NULL);
    int rc = fs_broker_create(&memory_ops, mb, url, &o.broker, out);
    if (rc < 0) {
        pthread_mutex_destroy(&mb->lock);
        free(mb);
    }
    return rc;
}

int fs_memory_broker_new(const fs_memory_options *opts, fs_broker **out)
{
    FS_CHECK_ARG(out, "fs_memory_broker_new: out is NULL");
    *out = NULL;
    return memory_new(opts, "memory://", out);
}

static int parse_size(const fs_url *u, const char *key, size_t *out)
{
    char *v = NULL;
    int rc = fs_url_query_get(u, key, &v);
    if (rc == FS_ENOTFOUND)
        return FS_OK;
    if (rc < 0)
        return rc;
    char *end = NULL;
    unsigned long long n = strtoull(v, &end, 10);
    if (!*v || *end || v[0] == '-')
        rc = fs_adapter_error(FS_EINVAL, "memory:// URL: %s=%s is not a number", key, v);
    else
        *out = (size_t)n;
    free(v);
    return rc;
}

static int memory_factory(const char *url, const fs_broker_options *bopts, fs_broker **out)
{
    fs_url u;
    int rc = fs_url_parse(url, &u);
    if (rc < 0)
        return rc;
    fs_memory_options o = FS_MEMORY_OPTIONS_INIT;
    o.broker = *bopts;
    if ((u.hosts && *u.hosts) || (u.path && *u.path) || u.user) {
        fs_url_free(&u);
        return fs_adapter_error(FS_EINVAL,
                                "memory:// URL '%s' takes no host, credentials or path (only "
                                "?capacity=N&inline_size=N)",
                                url);
    }
    const char *name;
    size_t pos = 0, name_len;
    while (fs_url_query_next(&u, &pos, &name, &name_len, NULL, NULL)) {
        if (!((name_len == 8 && strncmp(name, "capacity", 8) == 0) ||
              (name_len == 11 && strncmp(name, "inline_size", 11) == 0))) {
            rc = fs_adapter_error(FS_EINVAL, "memory:// URL '%s': unknown parameter '%.*s'", url,
                                  (int)name_len, name);
            fs_url_free(&u);
            return rc;
        }
    }
    rc = parse_size(&u, "capacity", &o.capacity);
    if (rc == FS_OK)
        rc = parse_size(&u, "inline_size", &o.inline_size);
    fs_url_free(&u);
    if (rc < 0)
        return rc;
    return memory_new(&o, url, out);
}

int fs_memory_register(void)
{
    return fs_broker_register_scheme("memory", memory_factory);
}

__attribute__((constructor)) static void memory_auto_register(void)
{
    fs_memory_register();
}

bool fs_broker_is_memory(const fs_broker *broker)
{
    return broker && fs_broker_get_ops(broker) == &memory_ops;
}

static mem_broker *as_memory(const fs_broker *b)
{
    return fs_broker_is_memory(b) ? fs_broker_impl(b) : NULL;
}

static mem_group *lookup_group(const fs_broker *broker, const char *name, const char *group)
{
    mem_broker *mb = as_memory(broker);
    if (!mb || !name)
        return NULL;
    mem_topic *t = topic_find(mb, name, hash_name(name));
    if (!t)
        return NULL;
    pthread_mutex_lock(&mb->lock);
    mem_group *g = group_find(t, group);
    pthread_mutex_unlock(&mb->lock);
    return g;
}

size_t fs_memory_queue_depth(const fs_broker *broker, const char *name, const char *group)
{
    mem_group *g = lookup_group(broker, name, group);
    return g ? mem_ring_size(&g->ready) + atomic_load(&g->delayed_n) : 0;
}

size_t fs_memory_queue_in_flight(const fs_broker *broker, const char *name, const char *group)
{
    mem_group *g = lookup_group(broker, name, group);
    if (!g)
        return 0;
    /* every slot is free, ready, delayed, or taken (handled, pending or being filled) */
    size_t used = mem_ring_size(&g->free) + mem_ring_size(&g->ready) + atomic_load(&g->delayed_n);
    return used < g->cap ? g->cap - used : 0;
}

uint64_t fs_memory_published_count(const fs_broker *broker, const char *name)
{
    mem_broker *mb = as_memory(broker);
    if (!mb || !name)
        return 0;
    mem_topic *t = topic_find(mb, name, hash_name(name));
    return t ? atomic_load(&t->published) : 0;
}

int fs_memory_take_published(fs_broker *broker, const char *name, fs_message **out)
{
    FS_CHECK_ARG(out, "fs_memory_take_published: out is NULL");
    *out = NULL;
    FS_CHECK_ARG(broker && fs_broker_is_memory(broker),
                 "fs_memory_take_published: not an in-process broker");
    FS_CHECK_ARG(name, "fs_memory_take_published: name is NULL");
    mem_broker *mb = as_memory(broker);
    if (!mb->record)
        return fs_adapter_error(FS_ESTATE, "fs_memory_take_published: record_published is off for "
                                           "this broker");
    mem_topic *t = topic_find(mb, name, hash_name(name));
    mem_record *r = NULL;
    if (t) {
        pthread_mutex_lock(&t->records_lock);
        r = t->records_head;
        if (r) {
            t->records_head = r->next;
            if (!t->records_head)
                t->records_tail = NULL;
        }
        pthread_mutex_unlock(&t->records_lock);
    }
    if (!r)
        return fs_adapter_error(FS_ENOTFOUND, "no recorded message published to '%s'", name);
    *out = r->msg;
    free(r);
    return FS_OK;
}

int fs_memory_wait_handled(const fs_broker *broker, uint64_t n, int timeout_ms)
{
    FS_CHECK_ARG(broker, "fs_memory_wait_handled: broker is NULL");
    uint64_t deadline = fs_kit_deadline_ns(timeout_ms);
    while (fs_broker_handled(broker) < n) {
        if (timeout_ms >= 0 && fs_kit_ms_left(deadline) == 0)
            return fs_adapter_error(FS_ETIMEDOUT, "handled %llu of %llu messages within %d ms",
                                    (unsigned long long)fs_broker_handled(broker),
                                    (unsigned long long)n, timeout_ms);
        fs_kit_sleep_ms(1);
    }
    return FS_OK;
}
