/* The in-process broker: fetch, settle, release, subscriptions, lifecycle. See internal.h. */
#include "internal.h"

static void mem_slot_recycle(mem_group *g, mem_slot *s)
{
    if (s->heap) {
        free(s->heap);
        s->heap = NULL;
    }
    s->sub = NULL;
    mem_ring_push(&g->free, s->index);
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
    mem_group_due(g);
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
        uint64_t due = mem_group_due(g);
        if (due != UINT64_MAX) { /* wake up when the next delayed message is due */
            int until_due = fs_kit_ms_left(due);
            if (until_due < left)
                left = until_due > 0 ? until_due : 1;
        }
        fs_kit_futex_wait(&g->seq, seq, left);
        atomic_fetch_sub_explicit(&g->waiters, 1, memory_order_relaxed);
        if (mem_ring_pop(&g->ready, idx, false))
            return FS_OK;
    }
}

static fs_message *take(mem_sub *s, uint32_t idx)
{
    mem_slot *slot = mem_slot_at(s->group, idx);
    slot->sub = s;
    slot->action = FS_SETTLE_NONE;
    slot->msg.delivery_count = ++slot->deliveries;
    return &slot->msg;
}

int mem_fetch(void *impl, void *sub, unsigned worker, int timeout_ms, fs_message **out)
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

int mem_fetch_batch(void *impl, void *sub, unsigned worker, fs_message **out, size_t max,
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
    mem_topic *t = mem_topic_get(mb, sub->dead_letter);
    const char *etype = NULL;
    if (!t || mem_publish_to(mb, t, &e, 1, &etype) < 0)
        fs_adapter_log(FS_LOG_ERROR, "memory",
                       "could not move a rejected message from %s to %s: %s",
                       slot->group->topic->name, sub->dead_letter, fs_last_error());
}

/* Record what to do with each message; release does it once the handler is done. */
int mem_settle(void *impl, fs_message *m, const fs_settle_args *args)
{
    (void)impl;
    mem_slot *one = m->adapter_data; /* a single message (a batch built by the core has none) */
    if (FS_LIKELY(one != NULL)) {
        one->action = args->op;
        one->delay_ms = args->delay_ms;
        return FS_OK;
    }
    size_t n = fs_message_count(m);
    for (size_t i = 0; i < n; i++) {
        mem_slot *slot = fs_message_at(m, i)->adapter_data;
        slot->action = args->op;
        slot->delay_ms = args->delay_ms;
    }
    return FS_OK;
}

void mem_release(fs_message *m)
{
    mem_slot *slot = m->adapter_data;
    mem_group *g = slot->group;
    mem_sub *sub = slot->sub;
    switch (slot->action) {
    case FS_SETTLE_ACKED:
        mem_slot_recycle(g, slot);
        return;
    case FS_SETTLE_NACKED:
        slot->sub = NULL;
        if (slot->delay_ms)
            mem_group_delay(g, slot, slot->delay_ms);
        else
            mem_group_push_ready(g, slot->index);
        return;
    case FS_SETTLE_REJECTED:
        if (sub && sub->dead_letter)
            dead_letter(sub->mb, sub, slot);
        mem_slot_recycle(g, slot);
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

int mem_subscribe(void *impl, fs_subscribe_spec *spec, void **out)
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
    spec->fixed_source = true; /* one queue by its exact name */
    if (o && o->dead_letter) {
        s->dead_letter = fs_kit_strdup(o->dead_letter);
        if (!s->dead_letter) {
            free(s);
            return fs_adapter_error(FS_ENOMEM, "out of memory subscribing to '%s'", spec->source);
        }
    }
    mem_topic *t = mem_topic_get(mb, spec->source);
    if (!t) {
        free(s->dead_letter);
        free(s);
        return FS_ENOMEM;
    }
    pthread_mutex_lock(&mb->lock);
    mem_group *g = mem_group_find(t, group);
    if (!g)
        g = mem_group_new(mb, t, group);
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

void mem_unsubscribe(void *impl, void *sub)
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

int mem_start(void *impl)
{
    mem_broker *mb = impl;
    atomic_store(&mb->stopping, false);
    return FS_OK;
}

int mem_stop(void *impl)
{
    mem_broker *mb = impl;
    atomic_store(&mb->stopping, true);
    pthread_mutex_lock(&mb->lock);
    for (mem_group *g = mb->all_groups; g; g = g->all_next)
        mem_group_wake(g, INT_MAX);
    pthread_mutex_unlock(&mb->lock);
    return FS_OK;
}

/* Every worker is gone: requeue what was released unsettled. */
void mem_stopped(void *impl)
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

void mem_free(void *impl)
{
    mem_broker *mb = impl;
    mem_group *g = mb->all_groups;
    while (g) {
        mem_group *n = g->all_next;
        mem_group_free(g);
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
