/*
 * Children: made in their family's arena (children in one, their label texts
 * and long values in another), never freed alone: a kept handle or a
 * concurrent lookup never sees freed memory (see metrics_internal.h). The
 * cells of threads other than a child's owner are allocated on first use.
 */
#include "metrics_internal.h"

#include <math.h>
#include <stdlib.h>

/* ------------------------------------------------------------------------ */
/* Arenas                                                                   */

#define ARENA_FIRST 1024
#define ARENA_MAX (256 * 1024)

static size_t round_up(size_t n, size_t to)
{
    return (n + to - 1) / to * to;
}

static fs_arena_chunk *chunk_new(size_t cap)
{
    size_t bytes = round_up(sizeof(fs_arena_chunk) + cap, FS_CACHE_LINE);
    if (bytes < cap)
        return NULL;
    fs_arena_chunk *ch = aligned_alloc(FS_CACHE_LINE, bytes);
    if (ch) {
        ch->next = NULL;
        ch->used = 0;
        ch->cap = bytes - sizeof(fs_arena_chunk);
    }
    return ch;
}

void *fs__arena_alloc(fs_arena *a, size_t size, size_t align)
{
    fs_arena_chunk *ch = a->head;
    if (ch) {
        size_t off = round_up(ch->used, align);
        if (off <= ch->cap && size <= ch->cap - off) {
            ch->used = off + size;
            return ch->data + off;
        }
    }
    size_t cap = a->next_cap ? a->next_cap : ARENA_FIRST;
    if (size > ARENA_MAX / 4) {
        /* A chunk of its own, behind the current one (which stays current). */
        fs_arena_chunk *big = chunk_new(size);
        if (!big)
            return NULL;
        big->used = size;
        if (ch) {
            big->next = ch->next;
            ch->next = big;
        } else {
            a->head = big;
        }
        return big->data;
    }
    while (cap < size)
        cap *= 2;
    fs_arena_chunk *fresh = chunk_new(cap);
    if (!fresh)
        return NULL;
    fresh->next = ch;
    a->head = fresh;
    a->next_cap = cap * 2 > ARENA_MAX ? ARENA_MAX : cap * 2;
    fresh->used = size;
    return fresh->data;
}

void fs__arena_free(fs_arena *a)
{
    for (fs_arena_chunk *ch = a->head, *next; ch; ch = next) {
        next = ch->next;
        free(ch);
    }
    a->head = NULL;
    a->next_cap = 0;
}

/* ------------------------------------------------------------------------ */
/* Children                                                                 */

/* Words per histogram shard: begun, done, nb + 1 buckets, the sum; whole lines. */
static uint32_t hist_stride(size_t nb)
{
    return (uint32_t)(round_up((nb + 4) * 8, FS_CACHE_LINE) / 8);
}

size_t fs__child_size(const fs_family *fam)
{
    switch (fam->type) {
    case FS_METRIC_COUNTER:
        return sizeof(struct fs_counter);
    case FS_METRIC_GAUGE:
        return round_up(sizeof(struct fs_gauge), FS_CACHE_LINE);
    case FS_METRIC_HISTOGRAM:
        return sizeof(struct fs_histogram) + 2 * (size_t)hist_stride(fam->nbuckets) * 8;
    default:
        return round_up(sizeof(fs_info_child), FS_CACHE_LINE);
    }
}

fs_child *fs__child_create(fs_family *fam, const char *const *values, const uint32_t *lens,
                           uint64_t hash)
{
    size_t n = fam->label_count;
    size_t vbytes = 0, lbytes = 0;
    for (size_t i = 0; i < n; i++) {
        vbytes += lens[i] + (size_t)1;
        size_t esc = fs__escape_into(NULL, values[i], lens[i], true);
        lbytes += strlen(fam->label_names[i]) + 4 + esc; /* name="esc", */
    }
    bool inline_values = vbytes <= FS_CHILD_INLINE;
    /* The strings first: a child slot taken is always initialised (the
     * family's release reads every one); bytes taken for nothing stay in the
     * arena, freed with the family. */
    char *block = fs__arena_alloc(&fam->strings, (inline_values ? 0 : vbytes) + lbytes + 1, 1);
    fs_child *c = block ? fs__arena_alloc(&fam->children, fam->child_size, FS_CACHE_LINE) : NULL;
    if (!c)
        return NULL;
    memset(c, 0, fam->child_size);
    c->fam = fam;
    c->hash = hash;
    c->created_us = (int64_t)llround(fs__now() * 1e6);
    atomic_init(&c->owner, FS_TOKEN_NONE);
    if (fam->type == FS_METRIC_HISTOGRAM) {
        struct fs_histogram *h = (struct fs_histogram *)c;
        h->bounds = fam->buckets;
        h->nb = (uint32_t)fam->nbuckets;
        h->stride = hist_stride(fam->nbuckets);
    }
    char *lab = block;
    char *v = inline_values ? c->inline_values : block + lbytes + 1;
    c->values_len = vbytes > UINT32_MAX ? UINT32_MAX : (uint32_t)vbytes; /* never a key's */
    c->values = v;
    c->labels = lab;
    for (size_t i = 0; i < n; i++) {
        memcpy(v, values[i], lens[i] + (size_t)1);
        v += lens[i] + (size_t)1;
        if (i)
            *lab++ = ',';
        size_t nl = strlen(fam->label_names[i]);
        memcpy(lab, fam->label_names[i], nl);
        lab += nl;
        *lab++ = '=';
        *lab++ = '"';
        lab += fs__escape_into(lab, values[i], lens[i], true);
        *lab++ = '"';
    }
    *lab = '\0';
    c->labels_len = (uint32_t)(lab - c->labels);
    return c;
}

void fs__children_each(fs_family *fam, void (*fn)(fs_child *c, void *ctx), void *ctx)
{
    for (fs_arena_chunk *ch = fam->children.head; ch; ch = ch->next)
        for (size_t off = 0; off + fam->child_size <= ch->used; off += fam->child_size)
            fn((fs_child *)(void *)(ch->data + off), ctx);
}

static void release_one(fs_child *c, void *ctx)
{
    (void)ctx;
    free(atomic_load_explicit(&c->shards, memory_order_relaxed));
}

void fs__children_release(fs_family *fam)
{
    fs__children_each(fam, release_one, NULL);
}

int fs__child_cmp(const void *a, const void *b)
{
    const fs_child *x = *(const fs_child *const *)a, *y = *(const fs_child *const *)b;
    /* Packed values compare like the values one by one: a NUL ends each and
     * sorts before every byte, and the packings hold as many NULs. */
    size_t lx = x->values_len, ly = y->values_len;
    int r = memcmp(x->values, y->values, lx < ly ? lx : ly);
    return r ? r : (lx > ly) - (lx < ly);
}

void *fs__child_cell(fs_child *c, size_t cell_bytes, bool *own)
{
    *own = false;
    uint32_t t = fs_kit_tls_slot;
    if (!t)
        t = fs_kit_slot_assign();
    uint32_t owner = atomic_load_explicit(&c->owner, memory_order_relaxed);
    if (FS_UNLIKELY(owner == FS_TOKEN_NEVER)) {
        atomic_fetch_add_explicit(&c->fam->redirected, 1, memory_order_relaxed);
        return NULL;
    }
    if (t == FS_TOKEN_SHARED)
        return NULL;
    if (owner == t || (owner == FS_TOKEN_NONE &&
                       atomic_compare_exchange_strong_explicit(
                           &c->owner, &owner, t, memory_order_relaxed, memory_order_relaxed))) {
        *own = true;
        return NULL;
    }
    char *arr = atomic_load_explicit(&c->shards, memory_order_acquire);
    if (!arr) {
        size_t bytes = fs_kit_slot_count() * cell_bytes;
        char *mine = aligned_alloc(FS_CACHE_LINE, bytes);
        if (!mine)
            return NULL; /* the shared cell, until an allocation succeeds */
        memset(mine, 0, bytes);
        void *expected = NULL;
        if (atomic_compare_exchange_strong_explicit(&c->shards, &expected, mine,
                                                    memory_order_acq_rel, memory_order_acquire)) {
            arr = mine;
        } else {
            free(mine);
            arr = expected;
        }
    }
    return arr + (size_t)(t - 1) * cell_bytes;
}
