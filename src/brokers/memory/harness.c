/* The in-process broker: the test helpers of faststream/memory.h. */
#include "internal.h"

bool fs_broker_is_memory(const fs_broker *broker)
{
    return broker && fs_broker_get_ops(broker) == &fs__memory_ops;
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
    mem_topic *t = mem_topic_find(mb, name, mem_hash_name(name));
    if (!t)
        return NULL;
    pthread_mutex_lock(&mb->lock);
    mem_group *g = mem_group_find(t, group);
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
    mem_topic *t = mem_topic_find(mb, name, mem_hash_name(name));
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
    mem_topic *t = mem_topic_find(mb, name, mem_hash_name(name));
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
