/* kit/pool.c - see pool.h. */
#include "kit/pool.h"

#include "faststream/adapter.h"

#include <stdlib.h>
#include <string.h>

/* The node sits in front of the record, in a 16-byte header. */
#define HDR 16u

void fs_kit_pool_init(fs_kit_pool *p, size_t size)
{
    p->size = size;
    atomic_init(&p->shared, NULL);
    p->local = NULL;
    atomic_init(&p->allocated, 0);
}

void *fs_kit_pool_get(fs_kit_pool *p)
{
    if (!p->local)
        p->local = atomic_exchange_explicit(&p->shared, NULL, memory_order_acquire);
    fs_kit_pool_node *n = p->local;
    if (n) {
        p->local = n->next;
        return (char *)n + HDR;
    }
    void *mem = NULL;
    if (posix_memalign(&mem, 16, HDR + p->size) != 0) {
        fs_adapter_error(FS_ENOMEM, "out of memory for a record of %zu bytes", p->size);
        return NULL;
    }
    memset(mem, 0, HDR + p->size);
    atomic_fetch_add_explicit(&p->allocated, 1, memory_order_relaxed);
    return (char *)mem + HDR;
}

void fs_kit_pool_put(fs_kit_pool *p, void *record)
{
    if (!record)
        return;
    fs_kit_pool_node *n = (fs_kit_pool_node *)(void *)((char *)record - HDR);
    fs_kit_pool_node *head = atomic_load_explicit(&p->shared, memory_order_relaxed);
    do
        n->next = head;
    while (!atomic_compare_exchange_weak_explicit(&p->shared, &head, n, memory_order_release,
                                                  memory_order_relaxed));
}

static void free_list(fs_kit_pool *p, fs_kit_pool_node *n, void (*fini)(void *))
{
    while (n) {
        fs_kit_pool_node *next = n->next;
        if (fini)
            fini((char *)n + HDR);
        free(n);
        atomic_fetch_sub_explicit(&p->allocated, 1, memory_order_relaxed);
        n = next;
    }
}

void fs_kit_pool_destroy(fs_kit_pool *p, void (*fini)(void *record))
{
    free_list(p, p->local, fini);
    p->local = NULL;
    free_list(p, atomic_exchange(&p->shared, NULL), fini);
}
