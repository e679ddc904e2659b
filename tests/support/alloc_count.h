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
 * counting, every allocation's call stack is tallied (up to ALLOC_SITES
 * distinct ones) so that a failing test says where they come from.
 */
#ifndef FS_TEST_ALLOC_COUNT_H
#define FS_TEST_ALLOC_COUNT_H

#include <execinfo.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define ALLOC_SITES 32 /* distinct call stacks kept, with how many allocations each */
#define ALLOC_DEPTH 14

static atomic_bool alloc_counting;
static atomic_ulong alloc_seen, alloc_frees, alloc_unsited;
static _Thread_local bool alloc_in_hook;

/* Allocation sites of the window: a call stack and its count (one lock: a failing run only). */
typedef struct alloc_site {
    void *frames[ALLOC_DEPTH];
    int len;
    unsigned long count;
} alloc_site;
static alloc_site alloc_sites[ALLOC_SITES];
static int alloc_site_n;
static pthread_mutex_t alloc_site_lock = PTHREAD_MUTEX_INITIALIZER;

static inline void alloc_note(void)
{
    if (!atomic_load_explicit(&alloc_counting, memory_order_relaxed) || alloc_in_hook)
        return;
    atomic_fetch_add(&alloc_seen, 1);
    alloc_in_hook = true; /* backtrace() may allocate the first time */
    void *frames[ALLOC_DEPTH];
    int len = backtrace(frames, ALLOC_DEPTH);
    pthread_mutex_lock(&alloc_site_lock);
    int i = 0;
    while (i < alloc_site_n && (alloc_sites[i].len != len ||
                                memcmp(alloc_sites[i].frames, frames, sizeof(void *) * len) != 0))
        i++;
    if (i == alloc_site_n && alloc_site_n < ALLOC_SITES) {
        memcpy(alloc_sites[i].frames, frames, sizeof(void *) * len);
        alloc_sites[i].len = len;
        alloc_site_n++;
    }
    if (i < alloc_site_n)
        alloc_sites[i].count++;
    else
        atomic_fetch_add(&alloc_unsited, 1);
    pthread_mutex_unlock(&alloc_site_lock);
    alloc_in_hook = false;
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
    atomic_store(&alloc_unsited, 0);
    pthread_mutex_lock(&alloc_site_lock);
    alloc_site_n = 0;
    pthread_mutex_unlock(&alloc_site_lock);
    atomic_store(&alloc_counting, true);
}

/* Allocations seen so far in the window. */
static inline unsigned long alloc_so_far(void)
{
    return atomic_load(&alloc_seen);
}

/* Stop counting; the number of allocations seen since alloc_begin. */
static inline unsigned long alloc_end(void)
{
    atomic_store(&alloc_counting, false);
    return atomic_load(&alloc_seen);
}

/* Print the allocation sites of the window, most allocations first. */
static inline void alloc_print_stacks(FILE *f)
{
    pthread_mutex_lock(&alloc_site_lock);
    bool done[ALLOC_SITES] = {false};
    for (int shown = 0; shown < alloc_site_n; shown++) {
        int best = -1;
        for (int i = 0; i < alloc_site_n; i++)
            if (!done[i] && (best < 0 || alloc_sites[i].count > alloc_sites[best].count))
                best = i;
        done[best] = true;
        fprintf(f, "%lu allocations from:\n", alloc_sites[best].count);
        char **names = backtrace_symbols(alloc_sites[best].frames, alloc_sites[best].len);
        for (int k = 1; names && k < alloc_sites[best].len; k++)
            fprintf(f, "    %s\n", names[k]);
        free(names);
    }
    if (atomic_load(&alloc_unsited))
        fprintf(f, "%lu allocations from other sites\n", atomic_load(&alloc_unsited));
    pthread_mutex_unlock(&alloc_site_lock);
}

#endif
