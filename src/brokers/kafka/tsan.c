/*
 * ThreadSanitizer builds only (-fsanitize=thread): librdkafka starts its
 * threads with C11 thrd_create, which glibc implements without going
 * through pthread_create, so TSan never sees those threads start and
 * crashes in its allocator on their first malloc. These definitions
 * interpose thrd_create / thrd_join / thrd_detach for librdkafka (this
 * library is loaded before it) and route them through the pthread calls
 * TSan intercepts. Nothing of this is compiled into normal builds.
 */
#if defined(__SANITIZE_THREAD__)
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <threads.h>

typedef struct trampoline {
    thrd_start_t fn;
    void *arg;
} trampoline;

static void *run(void *p)
{
    trampoline t = *(trampoline *)p;
    free(p);
    return (void *)(intptr_t)t.fn(t.arg);
}

__attribute__((visibility("default"))) int thrd_create(thrd_t *thr, thrd_start_t fn, void *arg)
{
    trampoline *t = malloc(sizeof *t);
    if (!t)
        return thrd_nomem;
    t->fn = fn;
    t->arg = arg;
    pthread_t pt;
    int rc = pthread_create(&pt, NULL, run, t);
    if (rc) {
        free(t);
        return thrd_error;
    }
    *thr = (thrd_t)pt;
    return thrd_success;
}

__attribute__((visibility("default"))) int thrd_join(thrd_t thr, int *res)
{
    void *r;
    if (pthread_join((pthread_t)thr, &r))
        return thrd_error;
    if (res)
        *res = (int)(intptr_t)r;
    return thrd_success;
}

__attribute__((visibility("default"))) int thrd_detach(thrd_t thr)
{
    return pthread_detach((pthread_t)thr) ? thrd_error : thrd_success;
}
#else
typedef int fs__kafka_tsan_unused; /* ISO C: a translation unit needs a declaration */
#endif
