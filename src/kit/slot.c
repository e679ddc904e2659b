/* kit/slot.c - thread slots (see slot.h). */
#include "kit/slot.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <unistd.h>

_Thread_local uint32_t fs_kit_tls_slot FS_TLS_MODEL;

/* Bit i set: slot i + 1 is held by a live thread. */
static atomic_uint held;
static pthread_key_t owner_key;
static bool key_ok;
static uint32_t nslots = 8;
static pthread_once_t once = PTHREAD_ONCE_INIT;

_Static_assert(FS_KIT_MAX_SLOTS <= 32, "a bit per slot in an unsigned int");

static _Atomic(void (*)(void)) hooks[FS_KIT_SLOT_HOOKS];

bool fs_kit_slot_on_release(void (*fn)(void))
{
    for (unsigned i = 0; i < FS_KIT_SLOT_HOOKS; i++) {
        void (*cur)(void) = atomic_load_explicit(&hooks[i], memory_order_acquire);
        if (cur == fn)
            return true;
        if (!cur && atomic_compare_exchange_strong_explicit(
                        &hooks[i], &cur, fn, memory_order_acq_rel, memory_order_acquire))
            return true;
        if (cur == fn)
            return true;
    }
    return false;
}

static void release_slot(void *value)
{
    unsigned i = (unsigned)(uintptr_t)value - 1;
    /* Updates made by later thread-exit destructors use the shared cells. */
    fs_kit_tls_slot = FS_KIT_SLOT_SHARED;
    for (unsigned h = 0; h < FS_KIT_SLOT_HOOKS; h++) {
        void (*fn)(void) = atomic_load_explicit(&hooks[h], memory_order_acquire);
        if (fn)
            fn();
    }
    /* release: the next holder sees every store this thread made */
    atomic_fetch_and_explicit(&held, ~(1u << i), memory_order_release);
}

static void init(void)
{
    key_ok = pthread_key_create(&owner_key, release_slot) == 0;
    /* Two per CPU present, at least 8: a service has more threads than CPUs
     * (workers, the HTTP server, broker clients), and a slot is held from a
     * thread's first update until it exits. Cells for them are allocated only
     * for children that several threads update. */
    long cpus = sysconf(_SC_NPROCESSORS_CONF);
    long n = cpus > 0 ? 2 * cpus : 8;
    nslots = (uint32_t)(n < 8 ? 8 : n > FS_KIT_MAX_SLOTS ? FS_KIT_MAX_SLOTS : n);
}

uint32_t fs_kit_slot_count(void)
{
    pthread_once(&once, init);
    return nslots;
}

uint32_t fs_kit_slot_assign(void)
{
    if (fs_kit_tls_slot)
        return fs_kit_tls_slot;
    uint32_t n = fs_kit_slot_count();
    uint32_t t = FS_KIT_SLOT_SHARED;
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
        if (t != FS_KIT_SLOT_SHARED && pthread_setspecific(owner_key, (void *)(uintptr_t)t) != 0) {
            atomic_fetch_and_explicit(&held, ~(1u << (t - 1)), memory_order_release);
            t = FS_KIT_SLOT_SHARED;
        }
    }
    fs_kit_tls_slot = t;
    return t;
}
