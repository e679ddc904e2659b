/*
 * Thread tokens: a thread takes a free exclusive token on its first update
 * and gives it back when it exits (a pthread key destructor), so that at
 * most one live thread holds a token and writes the cells it owns with plain
 * stores. See metrics_internal.h.
 */
#include "metrics_internal.h"

#include <stdint.h>
#include <unistd.h>

_Thread_local uint32_t fs__tls_token FS_TLS_MODEL;

/* Bit i set: token i + 1 is held by a live thread. */
static atomic_uint held;
static pthread_key_t owner_key;
static bool key_ok;
static uint32_t nshards = 8;
static pthread_once_t once = PTHREAD_ONCE_INIT;

_Static_assert(FS_MAX_SHARDS <= 32, "a bit per token in an unsigned int");

static void release_token(void *value)
{
    unsigned i = (unsigned)(uintptr_t)value - 1;
    /* Updates made by later thread-exit destructors use the shared cells. */
    fs__tls_token = FS_TOKEN_SHARED;
    /* release: the next holder sees every store this thread made */
    atomic_fetch_and_explicit(&held, ~(1u << i), memory_order_release);
}

static void init(void)
{
    key_ok = pthread_key_create(&owner_key, release_token) == 0;
    /* Two per CPU present, at least 8: a service has more threads than CPUs
     * (workers, the HTTP server, broker clients), and a token is held from a
     * thread's first update until it exits. Cells for them are allocated only
     * for children that several threads update. */
    long cpus = sysconf(_SC_NPROCESSORS_CONF);
    long n = cpus > 0 ? 2 * cpus : 8;
    nshards = (uint32_t)(n < 8 ? 8 : n > FS_MAX_SHARDS ? FS_MAX_SHARDS : n);
}

uint32_t fs__shard_count(void)
{
    pthread_once(&once, init);
    return nshards;
}

uint32_t fs__token_assign(void)
{
    if (fs__tls_token)
        return fs__tls_token;
    uint32_t n = fs__shard_count();
    uint32_t t = FS_TOKEN_SHARED;
    if (key_ok) {
        unsigned bits = atomic_load_explicit(&held, memory_order_relaxed);
        for (;;) {
            unsigned i = 0;
            while (i < n && (bits & (1u << i)))
                i++;
            if (i == n)
                break;
            /* acquire: see every store of the previous holder */
            if (atomic_compare_exchange_weak_explicit(&held, &bits, bits | (1u << i),
                                                      memory_order_acquire, memory_order_relaxed)) {
                t = i + 1;
                break;
            }
        }
        if (t != FS_TOKEN_SHARED && pthread_setspecific(owner_key, (void *)(uintptr_t)t) != 0) {
            atomic_fetch_and_explicit(&held, ~(1u << (t - 1)), memory_order_release);
            t = FS_TOKEN_SHARED;
        }
    }
    fs__tls_token = t;
    return t;
}
