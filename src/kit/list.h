/*
 * kit/list.h - a snapshot of an adapter's subscription list.
 * Internal (not installed); part of the adapter kit (src/kit).
 *
 * Adapters keep their subscriptions in a singly linked list (`subs`, linked
 * by `next`) guarded by the broker's `mu`, and walk a copy of it in start,
 * stop and close (the core does not change the list during those calls, but
 * a handler's fs_subscribe may add to it). FS_KIT_DEFINE_SUBS_SNAPSHOT
 * defines that copy once, typed for the adapter:
 *
 *     FS_KIT_DEFINE_SUBS_SNAPSHOT(subs_snapshot, redis_broker, rsub)
 *     ...
 *     rsub **v;
 *     size_t n = subs_snapshot(b, &v);   // *v malloc'ed (free it), or n == 0
 */
#ifndef FS_KIT_LIST_H
#define FS_KIT_LIST_H

#include <pthread.h>
#include <stdlib.h>

/*
 * static size_t NAME(OWNER *b, NODE ***out): the nodes of b->subs, in list
 * order, in a malloc'ed array (*out; NULL and 0 when the list is empty or
 * out of memory), copied under b->mu.
 */
#define FS_KIT_DEFINE_SUBS_SNAPSHOT(name, owner_t, node_t)                                         \
    static size_t name(owner_t *b, node_t ***out)                                                  \
    {                                                                                              \
        pthread_mutex_lock(&b->mu);                                                                \
        size_t n = 0;                                                                              \
        for (node_t *s = b->subs; s; s = s->next)                                                  \
            n++;                                                                                   \
        node_t **v = n ? malloc(n * sizeof *v) : NULL;                                             \
        size_t i = 0;                                                                              \
        if (v)                                                                                     \
            for (node_t *s = b->subs; s; s = s->next)                                              \
                v[i++] = s;                                                                        \
        pthread_mutex_unlock(&b->mu);                                                              \
        *out = v;                                                                                  \
        return v ? n : 0;                                                                          \
    }

#endif
