/*
 * Tables of children: lock-free open addressing (linear probing) for
 * readers; insertion and rebuilding under the family mutex, published with
 * release stores. A replaced table is kept until the registry is freed, as
 * a reader may still probe it.
 */
#include "table.h"

#include <stdlib.h>

fs_child fs__tombstone;

fs_table *fs__table_new(size_t cap)
{
    fs_table *t = calloc(1, sizeof *t + cap * sizeof(t->slots[0]));
    if (t)
        t->mask = cap - 1;
    return t;
}

void fs__table_insert(fs_table *t, fs_child *c)
{
    size_t i = c->hash & t->mask;
    for (;;) {
        fs_child *s = atomic_load_explicit(&t->slots[i].child, memory_order_relaxed);
        if (!s || s == FS_TOMBSTONE) {
            if (!s)
                t->used++;
            /* the hash first: a reader that sees the child sees its hash */
            atomic_store_explicit(&t->slots[i].hash, c->hash, memory_order_relaxed);
            atomic_store_explicit(&t->slots[i].child, c, memory_order_release);
            return;
        }
        i = (i + 1) & t->mask;
    }
}

fs_child *fs__table_find_key(fs_table *t, const fs_label_key *k, fs_slot **slot)
{
    return fs__key_find(t, k, slot);
}
