/*
 * kit/slot.h - thread slots: a small number a thread holds exclusively.
 * Internal (not installed); part of the adapter kit (src/kit).
 *
 * A thread takes a free slot, 1 .. fs_kit_slot_count(), on its first call
 * of fs_kit_slot_assign() and gives it back when it exits (a pthread key
 * destructor), so that at most one live thread holds a slot: data indexed
 * by slot is written by one thread at a time, with plain stores, and taken
 * over by the slot's next holder (the release when it is given back and the
 * acquire when it is taken order the two threads' accesses). Threads beyond
 * the slots get FS_KIT_SLOT_SHARED and must use shared (atomic) data.
 * The metrics library's cells and the Prometheus middleware's tallies are
 * indexed by slot. Each library has its own pool (the kit is linked into
 * each).
 */
#ifndef FS_KIT_SLOT_H
#define FS_KIT_SLOT_H

#include "kit/compiler.h"

#include <stdbool.h>
#include <stdint.h>

/** At most this many exclusive slots (a bit each). */
#define FS_KIT_MAX_SLOTS 32

/** The slot of threads beyond the exclusive ones. */
#define FS_KIT_SLOT_SHARED (UINT32_MAX - 1)

/** The calling thread's slot, 0 until fs_kit_slot_assign() gave it one. */
extern _Thread_local uint32_t fs_kit_tls_slot FS_TLS_MODEL FS_KIT_HIDDEN;

/** The calling thread's slot, assigned now if it had none (never 0). */
FS_KIT_HIDDEN uint32_t fs_kit_slot_assign(void);

/** Exclusive slots: from the CPUs present (2 per CPU, at least 8, at most 32). */
FS_KIT_HIDDEN uint32_t fs_kit_slot_count(void);

/**
 * Have fn run in a thread that gives its slot back (it exits), before the
 * slot is free for another thread: for thread-local caches of data indexed
 * by the slot, which must not be used after that. Registering the same fn
 * again does nothing. False when FS_KIT_SLOT_HOOKS functions are registered.
 */
#define FS_KIT_SLOT_HOOKS 4
FS_KIT_HIDDEN bool fs_kit_slot_on_release(void (*fn)(void));

/** The calling thread's slot (never 0). */
static inline uint32_t fs_kit_slot(void)
{
    uint32_t s = fs_kit_tls_slot;
    return FS_LIKELY(s != 0) ? s : fs_kit_slot_assign();
}

#endif
