/*
 * Counting heap allocations in a window, for the "no allocation per message
 * in the steady state" tests. Include in exactly one translation unit of a
 * test executable (it defines the allocator entry points).
 *
 * Without a sanitizer it interposes malloc, calloc, realloc, posix_memalign,
 * aligned_alloc and free (glibc routes its own internal allocations through
 * them too) on top of glibc's __libc_* functions. Under ASan/TSan, whose
 * runtime owns the allocator, it installs the sanitizer's malloc/free hooks
 * instead. Either way every allocation of every thread is seen. While
 * counting, the first ALLOC_STACKS allocations keep their call stacks so a
 * failing test can say where they come from.
 */
#ifndef FS_TEST_ALLOC_COUNT_H
#define FS_TEST_ALLOC_COUNT_H

#include <execinfo.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>

#define ALLOC_STACKS 12
#define ALLOC_DEPTH 14

static atomic_bool alloc_counting;
static atomic_ulong alloc_seen, alloc_frees;
static atomic_uint alloc_stack_n;
static void *alloc_stack[ALLOC_STACKS][ALLOC_DEPTH];
static int alloc_stack_len[ALLOC_STACKS];
static _Thread_local bool alloc_in_hook;

static inline void alloc_note(void)
{
    if (!atomic_load_explicit(&alloc_counting, memory_order_relaxed) || alloc_in_hook)
        return;
    /* the first few, then a sample spread over the window */
    unsigned long seen = atomic_fetch_add(&alloc_seen, 1);
    if (seen >= ALLOC_STACKS / 2 && seen % 7919 != 0)
        return;
    unsigned i = atomic_fetch_add(&alloc_stack_n, 1);
    if (i < ALLOC_STACKS) {
        alloc_in_hook = true; /* backtrace() may allocate the first time */
        alloc_stack_len[i] = backtrace(alloc_stack[i], ALLOC_DEPTH);
        alloc_in_hook = false;
    }
}

#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
int __sanitizer_install_malloc_and_free_hooks(void (*malloc_hook)(const volatile void *, size_t),
                                              void (*free_hook)(const volatile void *));

static void alloc_malloc_hook(const volatile void *p, size_t n)
{
    (void)p;
    (void)n;
    alloc_note();
}

static void alloc_free_hook(const volatile void *p)
{
    if (p && atomic_load_explicit(&alloc_counting, memory_order_relaxed))
        atomic_fetch_add(&alloc_frees, 1);
}

static inline void alloc_install(void)
{
    static bool done;
    if (!done)
        done = __sanitizer_install_malloc_and_free_hooks(alloc_malloc_hook, alloc_free_hook) != 0;
}
#else
extern void *__libc_malloc(size_t);
extern void *__libc_calloc(size_t, size_t);
extern void *__libc_realloc(void *, size_t);
extern void *__libc_memalign(size_t, size_t);
extern void __libc_free(void *);

void *malloc(size_t n)
{
    alloc_note();
    return __libc_malloc(n);
}

void *calloc(size_t a, size_t b)
{
    alloc_note();
    return __libc_calloc(a, b);
}

void *realloc(void *p, size_t n)
{
    alloc_note();
    return __libc_realloc(p, n);
}

int posix_memalign(void **out, size_t align, size_t n)
{
    alloc_note();
    void *p = __libc_memalign(align, n);
    if (!p)
        return 12; /* ENOMEM */
    *out = p;
    return 0;
}

void *aligned_alloc(size_t align, size_t n)
{
    alloc_note();
    return __libc_memalign(align, n);
}

void free(void *p)
{
    if (p && atomic_load_explicit(&alloc_counting, memory_order_relaxed))
        atomic_fetch_add(&alloc_frees, 1);
    __libc_free(p);
}

static inline void alloc_install(void) {}
#endif

/* Start counting (every thread). */
static inline void alloc_begin(void)
{
    alloc_install();
    void *warm[2];
    backtrace(warm, 2); /* load what backtrace needs before counting */
    atomic_store(&alloc_seen, 0);
    atomic_store(&alloc_frees, 0);
    atomic_store(&alloc_stack_n, 0);
    atomic_store(&alloc_counting, true);
}

/* Stop counting; the number of allocations seen since alloc_begin. */
static inline unsigned long alloc_end(void)
{
    atomic_store(&alloc_counting, false);
    return atomic_load(&alloc_seen);
}

/* Print the call stacks kept: the first allocations of the window, then every 7919th. */
static inline void alloc_print_stacks(FILE *f)
{
    unsigned n = atomic_load(&alloc_stack_n);
    for (unsigned i = 0; i < n && i < ALLOC_STACKS; i++) {
        fprintf(f, "allocation %u of the window:\n", i + 1);
        char **names = backtrace_symbols(alloc_stack[i], alloc_stack_len[i]);
        for (int k = 1; names && k < alloc_stack_len[i]; k++)
            fprintf(f, "    %s\n", names[k]);
        free(names);
    }
}

#endif
