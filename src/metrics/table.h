/*
 * Lookups in a family's table of children, inline for the hot paths
 * (family.c) and the slow ones (table.c). Not installed.
 */
#ifndef FS_METRICS_TABLE_H
#define FS_METRICS_TABLE_H

#include "metrics_internal.h"

/*
 * Whether child c holds values (lengths lens, packed length total). With the
 * packed lengths equal, each value matching the child's bytes at p and
 * followed there by the NUL that ends the child's value means equal values;
 * every byte read lies inside the child's packed values.
 */
static FS_ALWAYS_INLINE bool fs__child_matches(const fs_child *c, size_t n,
                                               const char *const *values, const uint32_t *lens,
                                               size_t total)
{
    if (c->values_len != total)
        return false;
    const char *p = c->values;
    for (size_t i = 0; i < n; i++) {
        if (!fs_kit_mem_equal(p, values[i], lens[i]) || p[lens[i]] != '\0')
            return false;
        p += lens[i] + 1;
    }
    return true;
}

/*
 * The child for values, or NULL; *slot (if given) receives its slot. The
 * child returned is the one that matched: re-reading the slot could yield
 * another child that reused a tombstone in between. A slot's hash may be
 * newer than the child read before it (the child was removed and its slot
 * reused meanwhile): the values, compared after the hash, decide.
 */
static FS_ALWAYS_INLINE fs_child *fs__table_find(fs_table *t, uint64_t hash, size_t n,
                                                 const char *const *values, const uint32_t *lens,
                                                 size_t total, fs_slot **slot)
{
    size_t i = hash & t->mask;
    for (;;) {
        fs_child *c = atomic_load_explicit(&t->slots[i].child, memory_order_acquire);
        if (!c)
            return NULL;
        if (atomic_load_explicit(&t->slots[i].hash, memory_order_relaxed) == hash &&
            c != FS_TOMBSTONE && fs__child_matches(c, n, values, lens, total)) {
            if (slot)
                *slot = &t->slots[i];
            return c;
        }
        i = (i + 1) & t->mask;
    }
}

/*
 * fs__table_find for a key holding its values packed as children hold theirs
 * ("v1\0v2\0..."): one length and one run of bytes to compare. Values hold
 * no NUL, so equal packings mean equal values.
 */
static FS_ALWAYS_INLINE fs_child *fs__table_find_packed(fs_table *t, const fs_label_key *k,
                                                        fs_slot **slot)
{
    size_t i = k->hash & t->mask;
    for (;;) {
        fs_child *c = atomic_load_explicit(&t->slots[i].child, memory_order_acquire);
        if (!c)
            return NULL;
        if (atomic_load_explicit(&t->slots[i].hash, memory_order_relaxed) == k->hash &&
            c != FS_TOMBSTONE && c->values_len == k->packed_len) {
            const char *v = k->packed_len <= FS_CHILD_INLINE ? c->inline_values : c->values;
            if (fs_kit_mem_equal_short(v, k->packed, k->packed_len)) {
                if (slot)
                    *slot = &t->slots[i];
                return c;
            }
        }
        i = (i + 1) & t->mask;
    }
}

/* Bytes of the values of a key, packed (each with its NUL). */
static inline size_t fs__key_total(const fs_label_key *k)
{
    size_t total = 0;
    for (size_t i = 0; i < k->count; i++)
        total += k->lens[i] + (size_t)1;
    return total;
}

/* The child holding the values of key k (of the family's label count), or NULL. */
static FS_ALWAYS_INLINE fs_child *fs__key_find(fs_table *t, const fs_label_key *k, fs_slot **slot)
{
    if (FS_LIKELY(k->packed_len != 0))
        return fs__table_find_packed(t, k, slot);
    return fs__table_find(t, k->hash, k->count, k->values, k->lens, fs__key_total(k), slot);
}

#endif
