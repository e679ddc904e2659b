/*
 * Redis streams: entry ids and the set of entries out (handed to the core,
 * not yet released). See internal.h.
 */
#include "internal.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>

/* ------------------------------------------------------------------------ */
/* Stream ids and the set of entries out                                    */

bool fs__redis_sid_parse(const char *s, size_t n, sid *out)
{
    uint64_t v[2] = {0, 0};
    size_t i = 0;
    for (int part = 0; part < 2; part++) {
        size_t start = i;
        while (i < n && s[i] >= '0' && s[i] <= '9') {
            if (v[part] > (UINT64_MAX - 9) / 10)
                return false;
            v[part] = v[part] * 10 + (uint64_t)(s[i++] - '0');
        }
        if (i == start)
            return false;
        if (part == 0 && (i >= n || s[i++] != '-'))
            return false;
    }
    if (i != n)
        return false;
    out->ms = v[0];
    out->seq = v[1];
    return true;
}

int fs__redis_sid_format(sid id, char *buf, size_t cap)
{
    return snprintf(buf, cap, "%" PRIu64 "-%" PRIu64, id.ms, id.seq);
}

static size_t sid_hash(sid id, size_t mask)
{
    uint64_t h = id.ms * 0x9E3779B97F4A7C15ull ^ (id.seq + 0xD6E8FEB86659FD93ull);
    h ^= h >> 31;
    h *= 0x94D049BB133111EBull;
    h ^= h >> 29;
    return (size_t)h & mask;
}

/* The slot holding `id`, or the free slot that ends its probe run (s->cap > 0). */
static size_t idset_slot(const idset *s, sid id)
{
    size_t mask = s->cap - 1, i = sid_hash(id, mask);
    while (s->used[i] && !fs__redis_sid_eq(s->slots[i], id))
        i = (i + 1) & mask;
    return i;
}

int fs__redis_idset_add(idset *s, sid id);

static int idset_grow(idset *s)
{
    idset n = {0};
    n.cap = s->cap ? s->cap * 2 : 64;
    n.slots = calloc(n.cap, sizeof *n.slots);
    n.used = calloc(n.cap, 1);
    if (!n.slots || !n.used) {
        free(n.slots);
        free(n.used);
        return fs_adapter_error(FS_ENOMEM, "redis: out of memory (pending set)");
    }
    for (size_t i = 0; i < s->cap; i++)
        if (s->used[i])
            fs__redis_idset_add(&n, s->slots[i]);
    free(s->slots);
    free(s->used);
    *s = n;
    return FS_OK;
}

int fs__redis_idset_add(idset *s, sid id)
{
    if ((s->len + 1) * 2 > s->cap) {
        int rc = idset_grow(s);
        if (rc)
            return rc;
    }
    size_t i = idset_slot(s, id);
    if (s->used[i])
        return FS_OK;
    s->used[i] = 1;
    s->slots[i] = id;
    s->len++;
    return FS_OK;
}

bool fs__redis_idset_has(const idset *s, sid id)
{
    return s->len && s->used[idset_slot(s, id)];
}

void fs__redis_idset_del(idset *s, sid id)
{
    if (!s->len)
        return;
    size_t mask = s->cap - 1, i = idset_slot(s, id);
    if (!s->used[i])
        return;
    s->used[i] = 0;
    s->len--;
    /* Backward shift: move later members of the cluster into the hole. */
    for (size_t j = (i + 1) & mask; s->used[j]; j = (j + 1) & mask) {
        size_t home = sid_hash(s->slots[j], mask);
        bool movable = i <= j ? (home <= i || home > j) : (home <= i && home > j);
        if (movable) {
            s->slots[i] = s->slots[j];
            s->used[i] = 1;
            s->used[j] = 0;
            i = j;
        }
    }
}

bool fs__redis_in_nackq(const rsub *s, sid id)
{
    for (size_t i = 0; i < s->nack_len; i++)
        if (fs__redis_sid_eq(s->nackq[i].id, id))
            return true;
    return false;
}
