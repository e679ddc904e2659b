/* The in-process broker: publishing. See internal.h. */
#include "internal.h"

static int mem_slot_fill(mem_broker *mb, mem_group *g, uint32_t idx, const fs_envelope *e,
                         const char *source)
{
    mem_slot *s = mem_slot_at(g, idx);
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

int mem_publish_to(mem_broker *mb, mem_topic *t, const fs_envelope *msgs, size_t count,
                   const char **error_type)
{
    mem_group *groups = mem_topic_groups(mb, t);
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
            int frc = mem_slot_fill(mb, g, idx, &msgs[i], t->name);
            if (frc < 0) {
                mem_ring_push(&g->free, idx);
                *error_type = "MemoryError";
                rc = frc;
                continue;
            }
            mem_group_push_ready(g, idx);
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

int mem_publish(void *impl, void *dest, const char *destination, const fs_envelope *msgs,
                size_t count, const char **error_type)
{
    mem_broker *mb = impl;
    mem_topic *t = dest ? dest : mem_topic_get(mb, destination);
    if (!t) {
        *error_type = "MemoryError";
        return FS_ENOMEM;
    }
    return mem_publish_to(mb, t, msgs, count, error_type);
}

int mem_prepare_destination(void *impl, const char *destination, const void *opts, void **out)
{
    (void)opts;
    mem_topic *t = mem_topic_get(impl, destination);
    if (!t)
        return FS_ENOMEM;
    *out = t;
    return FS_OK;
}
