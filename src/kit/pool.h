/*
 * kit/pool.h - a pool of fixed-size records (per-delivery records that
 * embed an fs_message): once warm, getting and putting a record allocates
 * nothing and takes no lock. Internal (not installed); part of the adapter
 * kit (src/kit).
 *
 * Threads: fs_kit_pool_put from any thread (a lock-free push);
 * fs_kit_pool_get from ONE thread at a time (the adapter's reader, or
 * under the adapter's own lock): it takes every record put so far in one
 * exchange, so there is no ABA problem.
 *
 * A record keeps its content between uses (buffers it owns survive), so
 * the caller re-initialises what it needs; a fresh record is zeroed.
 */
#ifndef FS_KIT_POOL_H
#define FS_KIT_POOL_H

#include <stdatomic.h>
#include <stddef.h>

typedef struct fs_kit_pool_node {
    struct fs_kit_pool_node *next;
} fs_kit_pool_node;

typedef struct fs_kit_pool {
    size_t size;                        /* record bytes */
    _Atomic(fs_kit_pool_node *) shared; /* put by anyone */
    fs_kit_pool_node *local;            /* the getter's */
    _Atomic size_t allocated;           /* records alive (in use or pooled) */
} fs_kit_pool;

/** A pool of records of `size` bytes (16-byte aligned). */
void fs_kit_pool_init(fs_kit_pool *p, size_t size);

/** A record: a recycled one, or a new zeroed one (NULL + fs_adapter_error when out of memory). */
void *fs_kit_pool_get(fs_kit_pool *p);

/** Give a record back (any thread). */
void fs_kit_pool_put(fs_kit_pool *p, void *record);

/**
 * Free every pooled record, calling `fini` (may be NULL) on each first to
 * free what it owns. Records still in use are the caller's to put back
 * first.
 */
void fs_kit_pool_destroy(fs_kit_pool *p, void (*fini)(void *record));

#endif
