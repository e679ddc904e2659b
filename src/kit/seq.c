/* kit/seq.c - see seq.h. */
#include "kit/seq.h"

#include "faststream/adapter.h"
#include "kit/clock.h"

#include <stdlib.h>
#include <string.h>

int fs_kit_seq_init(fs_kit_seq *t, size_t initial_window)
{
    size_t cap = 16;
    while (cap < initial_window)
        cap *= 2;
    memset(t, 0, sizeof *t);
    t->tags = malloc(cap * sizeof *t->tags);
    t->done = calloc(cap, 1);
    if (!t->tags || !t->done) {
        free(t->tags);
        free(t->done);
        t->tags = NULL;
        t->done = NULL;
        return fs_adapter_error(FS_ENOMEM, "out of memory for a sequence window of %zu", cap);
    }
    t->cap = cap;
    pthread_mutex_init(&t->mu, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&t->cv, &ca);
    pthread_condattr_destroy(&ca);
    return FS_OK;
}

void fs_kit_seq_destroy(fs_kit_seq *t)
{
    if (!t->tags)
        return;
    pthread_mutex_destroy(&t->mu);
    pthread_cond_destroy(&t->cv);
    free(t->tags);
    free(t->done);
    t->tags = NULL;
    t->done = NULL;
}

/* Double the window (lock held), re-placing entries low..next-1. */
static int grow(fs_kit_seq *t)
{
    size_t cap = t->cap * 2;
    uint64_t *tags = malloc(cap * sizeof *tags);
    unsigned char *done = calloc(cap, 1);
    if (!tags || !done) {
        free(tags);
        free(done);
        return fs_adapter_error(FS_ENOMEM, "out of memory for a sequence window of %zu", cap);
    }
    for (uint64_t s = t->low; s < t->next; s++) {
        tags[s & (cap - 1)] = t->tags[s & (t->cap - 1)];
        done[s & (cap - 1)] = t->done[s & (t->cap - 1)];
    }
    free(t->tags);
    free(t->done);
    t->tags = tags;
    t->done = done;
    t->cap = cap;
    return FS_OK;
}

int fs_kit_seq_next(fs_kit_seq *t, uint64_t tag, uint64_t *seq)
{
    pthread_mutex_lock(&t->mu);
    int rc = FS_OK;
    if (t->next - t->low >= t->cap)
        rc = grow(t);
    if (rc == FS_OK) {
        size_t i = t->next & (t->cap - 1);
        t->tags[i] = tag;
        t->done[i] = 0;
        *seq = t->next++;
    }
    pthread_mutex_unlock(&t->mu);
    return rc;
}

bool fs_kit_seq_done(fs_kit_seq *t, uint64_t seq, uint64_t *last_tag)
{
    bool moved = false;
    pthread_mutex_lock(&t->mu);
    if (seq >= t->low && seq < t->next) {
        t->done[seq & (t->cap - 1)] = 1;
        while (t->low < t->next && t->done[t->low & (t->cap - 1)]) {
            if (last_tag)
                *last_tag = t->tags[t->low & (t->cap - 1)];
            t->low++;
            moved = true;
        }
        if (moved && t->low == t->next)
            pthread_cond_broadcast(&t->cv);
    }
    pthread_mutex_unlock(&t->mu);
    return moved;
}

uint64_t fs_kit_seq_watermark(fs_kit_seq *t)
{
    pthread_mutex_lock(&t->mu);
    uint64_t w = t->low;
    pthread_mutex_unlock(&t->mu);
    return w;
}

size_t fs_kit_seq_outstanding(fs_kit_seq *t)
{
    pthread_mutex_lock(&t->mu);
    size_t n = (size_t)(t->next - t->low);
    pthread_mutex_unlock(&t->mu);
    return n;
}

int fs_kit_seq_wait(fs_kit_seq *t, int timeout_ms)
{
    struct timespec ts = fs_kit_deadline_ts(timeout_ms);
    int rc = FS_OK;
    pthread_mutex_lock(&t->mu);
    while (t->low != t->next) {
        if (timeout_ms < 0) {
            pthread_cond_wait(&t->cv, &t->mu);
        } else if (pthread_cond_timedwait(&t->cv, &t->mu, &ts) != 0 && t->low != t->next) {
            rc = FS_ETIMEDOUT;
            break;
        }
    }
    pthread_mutex_unlock(&t->mu);
    return rc;
}

void fs_kit_seq_reset(fs_kit_seq *t)
{
    pthread_mutex_lock(&t->mu);
    t->low = t->next;
    pthread_cond_broadcast(&t->cv);
    pthread_mutex_unlock(&t->mu);
}
