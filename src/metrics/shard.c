/*
 * Shard ownership: a thread takes a free exclusive shard on its first update
 * and returns it when it exits (a pthread key destructor), so that at most one
 * thread ever writes an exclusive shard and its updates need no atomic
 * read-modify-write. See metrics_internal.h.
 */
#include "metrics_internal.h"

#include <stdint.h>

_Static_assert(FS_METRIC_SHARDS >= 2 && FS_METRIC_SHARDS <= 32 &&
                   (FS_METRIC_SHARDS & (FS_METRIC_SHARDS - 1)) == 0,
               "FS_METRIC_SHARDS must be a power of two in [2, 32] (a bit per shard)");

_Thread_local unsigned fs__tls_shard FS_TLS_MODEL;

/* Bit i set: exclusive shard i is owned by a live thread. */
static atomic_uint owned;
static pthread_key_t owner_key;
static bool key_ok;
static pthread_once_t key_once = PTHREAD_ONCE_INIT;

/* The extra bit keeps an assigned value non-zero (zero means "not assigned"). */
#define ASSIGNED(s) ((s) | FS_METRIC_SHARDS)

static void release_shard(void *value)
{
    unsigned s = (unsigned)(uintptr_t)value - 1;
    /* Updates made by later thread-exit destructors go to the shared shard. */
    fs__tls_shard = ASSIGNED(FS_SHARED_SHARD);
    /* release: the next owner sees every store this thread made */
    atomic_fetch_and_explicit(&owned, ~(1u << s), memory_order_release);
}

static void make_key(void)
{
    key_ok = pthread_key_create(&owner_key, release_shard) == 0;
}

unsigned fs__shard_assign(void)
{
    pthread_once(&key_once, make_key);
    unsigned s = FS_SHARED_SHARD;
    if (key_ok) {
        unsigned bits = atomic_load_explicit(&owned, memory_order_relaxed);
        for (;;) {
            unsigned i = 0;
            while (i < FS_SHARED_SHARD && (bits & (1u << i)))
                i++;
            if (i == FS_SHARED_SHARD)
                break;
            /* acquire: see every store of the previous owner */
            if (atomic_compare_exchange_weak_explicit(&owned, &bits, bits | (1u << i),
                                                      memory_order_acquire, memory_order_relaxed)) {
                s = i;
                break;
            }
        }
        if (s != FS_SHARED_SHARD &&
            pthread_setspecific(owner_key, (void *)(uintptr_t)(s + 1)) != 0) {
            atomic_fetch_and_explicit(&owned, ~(1u << s), memory_order_release);
            s = FS_SHARED_SHARD;
        }
    }
    fs__tls_shard = ASSIGNED(s);
    return fs__tls_shard;
}
