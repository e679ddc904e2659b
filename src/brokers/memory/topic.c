/* The in-process broker: names, groups, slots and the delayed list. See internal.h. */
#include "internal.h"

/* ------------------------------------------------------------------------ */
/* Topics and groups                                                        */

uint64_t mem_hash_name(const char *s)
{
    uint64_t h = 1469598103934665603ull;
    for (; *s; s++)
        h = (h ^ (unsigned char)*s) * 1099511628211ull;
    return h;
}

mem_topic *mem_topic_find(mem_broker *mb, const char *name, uint64_t h)
{
    mem_topic *t = atomic_load_explicit(&mb->buckets[h % MEM_BUCKETS], memory_order_acquire);
    for (; t; t = atomic_load_explicit(&t->next, memory_order_acquire))
        if (t->hash == h && strcmp(t->name, name) == 0)
            return t;
    return NULL;
}

/* Find or create (lock taken only to create). NULL on OOM. */
mem_topic *mem_topic_get(mem_broker *mb, const char *name)
{
    uint64_t h = mem_hash_name(name);
    mem_topic *t = mem_topic_find(mb, name, h);
    if (t)
        return t;
    pthread_mutex_lock(&mb->lock);
    t = mem_topic_find(mb, name, h);
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

void mem_group_free(mem_group *g)
{
    if (!g)
        return;
    if (g->slots)
        for (size_t i = 0; i < g->cap; i++)
            free(mem_slot_at(g, (uint32_t)i)->heap);
    free(g->slots);
    free(g->cells);
    free(g->name);
    pthread_mutex_destroy(&g->delay_mu);
    free(g);
}

/* Lock held. */
mem_group *mem_group_new(mem_broker *mb, mem_topic *t, const char *name)
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
        mem_group_free(g);
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

static bool mem_group_name_eq(const mem_group *g, const char *name)
{
    if (!g->name || !name)
        return !g->name && !name;
    return strcmp(g->name, name) == 0;
}

/* Lock held. */
mem_group *mem_group_find(mem_topic *t, const char *name)
{
    for (mem_group *g = atomic_load_explicit(&t->groups, memory_order_acquire); g;
         g = atomic_load_explicit(&g->next, memory_order_acquire))
        if (mem_group_name_eq(g, name))
            return g;
    return NULL;
}

/* The groups of `t`, creating its default group when it has none. */
mem_group *mem_topic_groups(mem_broker *mb, mem_topic *t)
{
    mem_group *g = atomic_load_explicit(&t->groups, memory_order_acquire);
    if (g)
        return g;
    pthread_mutex_lock(&mb->lock);
    g = atomic_load_explicit(&t->groups, memory_order_acquire);
    if (!g)
        g = mem_group_new(mb, t, NULL);
    pthread_mutex_unlock(&mb->lock);
    if (!g)
        fs_adapter_error(FS_ENOMEM, "out of memory creating queue '%s'", t->name);
    return g;
}

/* ------------------------------------------------------------------------ */
/* Copying messages into slots                                              */

void mem_release(fs_message *m);

/* Put a nacked slot on the delayed list, in due-time order. */
void mem_group_delay(mem_group *g, mem_slot *s, unsigned delay_ms)
{
    s->due_ns = fs_kit_now_ns() + (uint64_t)delay_ms * 1000000u;
    pthread_mutex_lock(&g->delay_mu);
    uint32_t *pp = &g->delayed_head;
    while (*pp != MEM_NONE && mem_slot_at(g, *pp)->due_ns <= s->due_ns)
        pp = &mem_slot_at(g, *pp)->delay_next;
    s->delay_next = *pp;
    *pp = s->index;
    atomic_fetch_add_explicit(&g->delayed_n, 1, memory_order_relaxed);
    atomic_store_explicit(&g->next_due_ns, mem_slot_at(g, g->delayed_head)->due_ns,
                          memory_order_release);
    pthread_mutex_unlock(&g->delay_mu);
    mem_group_wake(g, 1); /* a sleeping consumer shortens its wait to the new due time */
}

/* Move the delayed slots that are due back on `ready`. */
void mem_group_promote(mem_group *g, uint64_t now)
{
    size_t moved = 0;
    pthread_mutex_lock(&g->delay_mu);
    while (g->delayed_head != MEM_NONE && mem_slot_at(g, g->delayed_head)->due_ns <= now) {
        mem_slot *s = mem_slot_at(g, g->delayed_head);
        g->delayed_head = s->delay_next;
        mem_ring_push(&g->ready, s->index);
        moved++;
    }
    atomic_fetch_sub_explicit(&g->delayed_n, moved, memory_order_relaxed);
    atomic_store_explicit(&g->next_due_ns,
                          g->delayed_head == MEM_NONE ? UINT64_MAX
                                                      : mem_slot_at(g, g->delayed_head)->due_ns,
                          memory_order_release);
    pthread_mutex_unlock(&g->delay_mu);
    if (moved)
        mem_group_wake(g, (int)moved);
}
