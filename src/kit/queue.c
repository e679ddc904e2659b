/* kit/queue.c - see queue.h. */
#include "kit/queue.h"

#include "kit/clock.h"

#include <stdint.h>
#include <stdlib.h>

int fs_kit_queue_init(fs_kit_queue *q, unsigned lanes)
{
    if (lanes == 0)
        lanes = 1;
    q->lanes = calloc(lanes, sizeof *q->lanes);
    if (!q->lanes)
        return fs_adapter_error(FS_ENOMEM, "out of memory for a queue of %u lanes", lanes);
    q->nlanes = lanes;
    q->waiting = 0;
    q->closed = false;
    q->reading = false;
    pthread_mutex_init(&q->mu, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    for (unsigned i = 0; i < lanes; i++)
        pthread_cond_init(&q->lanes[i].cv, &ca);
    pthread_condattr_destroy(&ca);
    return FS_OK;
}

void fs_kit_queue_destroy(fs_kit_queue *q)
{
    if (!q->lanes)
        return;
    for (unsigned i = 0; i < q->nlanes; i++)
        pthread_cond_destroy(&q->lanes[i].cv);
    pthread_mutex_destroy(&q->mu);
    free(q->lanes);
    q->lanes = NULL;
}

static void wake_all(fs_kit_queue *q)
{
    for (unsigned i = 0; i < q->nlanes; i++)
        if (q->lanes[i].waiting)
            pthread_cond_broadcast(&q->lanes[i].cv);
}

void fs_kit_queue_push_list(fs_kit_queue *q, unsigned lane, fs_kit_qnode *head, fs_kit_qnode *tail,
                            size_t count)
{
    if (!head)
        return;
    tail->next = NULL;
    pthread_mutex_lock(&q->mu);
    fs_kit_lane *l = &q->lanes[lane % q->nlanes];
    if (l->tail)
        l->tail->next = head;
    else
        l->head = head;
    l->tail = tail;
    l->len += count;
    if (l->waiting)
        pthread_cond_broadcast(&l->cv);
    pthread_mutex_unlock(&q->mu);
}

void fs_kit_queue_push(fs_kit_queue *q, unsigned lane, fs_kit_qnode *n)
{
    fs_kit_queue_push_list(q, lane, n, n, 1);
}

void fs_kit_queue_push_front(fs_kit_queue *q, unsigned lane, fs_kit_qnode *n)
{
    pthread_mutex_lock(&q->mu);
    fs_kit_lane *l = &q->lanes[lane % q->nlanes];
    n->next = l->head;
    l->head = n;
    if (!l->tail)
        l->tail = n;
    l->len++;
    if (l->waiting)
        pthread_cond_broadcast(&l->cv);
    pthread_mutex_unlock(&q->mu);
}

static fs_kit_qnode *lane_pop(fs_kit_lane *l)
{
    fs_kit_qnode *n = l->head;
    if (n) {
        l->head = n->next;
        if (!l->head)
            l->tail = NULL;
        l->len--;
        n->next = NULL;
    }
    return n;
}

int fs_kit_queue_take(fs_kit_queue *q, unsigned lane, fs_message **out, size_t max,
                      unsigned batch_timeout_ms, int timeout_ms, size_t *n, fs_kit_read_fn read,
                      void *ctx)
{
    uint64_t deadline =
        timeout_ms < 0 ? UINT64_MAX : fs_kit_now_ns() + (uint64_t)timeout_ms * 1000000u;
    uint64_t batch_deadline = 0;
    fs_kit_lane *l = &q->lanes[lane % q->nlanes];
    *n = 0;
    if (max == 0)
        return FS_OK;
    pthread_mutex_lock(&q->mu);
    for (;;) {
        fs_kit_qnode *node;
        while (*n < max && (node = lane_pop(l))) {
            out[(*n)++] = node->msg;
            if (!batch_deadline)
                batch_deadline = fs_kit_now_ns() + (uint64_t)batch_timeout_ms * 1000000u;
        }
        if (*n == max || q->closed)
            break;
        uint64_t now = fs_kit_now_ns(), until = *n ? batch_deadline : deadline;
        if (now >= until)
            break;
        if (read && !q->reading) {
            q->reading = true;
            size_t want = max > 1 ? max - *n : 1 + q->waiting;
            uint64_t left_ms = (until - now + 999999u) / 1000000u;
            pthread_mutex_unlock(&q->mu);
            read(ctx, want, left_ms > INT32_MAX ? INT32_MAX : (int)left_ms);
            pthread_mutex_lock(&q->mu);
            q->reading = false;
            wake_all(q); /* someone else may read now, or find what was pushed */
            continue;
        }
        l->waiting++;
        q->waiting++;
        if (until == UINT64_MAX) {
            pthread_cond_wait(&l->cv, &q->mu);
        } else {
            struct timespec ts = fs_kit_ts_at_ns(until);
            pthread_cond_timedwait(&l->cv, &q->mu, &ts);
        }
        l->waiting--;
        q->waiting--;
    }
    bool closed = q->closed;
    pthread_mutex_unlock(&q->mu);
    if (*n)
        return FS_OK;
    return closed ? FS_ECLOSED : FS_ETIMEDOUT;
}

int fs_kit_queue_pop_batch(fs_kit_queue *q, unsigned lane, fs_message **out, size_t max,
                           unsigned batch_timeout_ms, int timeout_ms, size_t *n)
{
    return fs_kit_queue_take(q, lane, out, max, batch_timeout_ms, timeout_ms, n, NULL, NULL);
}

int fs_kit_queue_pop(fs_kit_queue *q, unsigned lane, int timeout_ms, fs_message **out)
{
    size_t n;
    *out = NULL;
    return fs_kit_queue_take(q, lane, out, 1, 0, timeout_ms, &n, NULL, NULL);
}

void fs_kit_queue_lead_begin(fs_kit_queue *q)
{
    pthread_mutex_lock(&q->mu);
    while (q->reading) {
        q->waiting++;
        q->lanes[0].waiting++;
        pthread_cond_wait(&q->lanes[0].cv, &q->mu);
        q->lanes[0].waiting--;
        q->waiting--;
    }
    q->reading = true;
    pthread_mutex_unlock(&q->mu);
}

void fs_kit_queue_lead_end(fs_kit_queue *q)
{
    pthread_mutex_lock(&q->mu);
    q->reading = false;
    wake_all(q);
    pthread_mutex_unlock(&q->mu);
}

void fs_kit_queue_close(fs_kit_queue *q)
{
    pthread_mutex_lock(&q->mu);
    q->closed = true;
    wake_all(q);
    pthread_mutex_unlock(&q->mu);
}

void fs_kit_queue_open(fs_kit_queue *q)
{
    pthread_mutex_lock(&q->mu);
    q->closed = false;
    pthread_mutex_unlock(&q->mu);
}

size_t fs_kit_queue_remove_if(fs_kit_queue *q, int lane, bool (*pred)(fs_kit_qnode *, void *),
                              void *arg, fs_kit_qnode **removed)
{
    fs_kit_qnode *rh = NULL, *rt = NULL;
    size_t count = 0;
    pthread_mutex_lock(&q->mu);
    for (unsigned i = 0; i < q->nlanes; i++) {
        if (lane >= 0 && i != (unsigned)lane % q->nlanes)
            continue;
        fs_kit_lane *l = &q->lanes[i];
        fs_kit_qnode **pp = &l->head, *last = NULL;
        while (*pp) {
            fs_kit_qnode *n = *pp;
            if (pred(n, arg)) {
                *pp = n->next;
                l->len--;
                n->next = NULL;
                if (rt)
                    rt->next = n;
                else
                    rh = n;
                rt = n;
                count++;
            } else {
                last = n;
                pp = &n->next;
            }
        }
        l->tail = last;
    }
    pthread_mutex_unlock(&q->mu);
    if (removed)
        *removed = rh;
    return count;
}

fs_kit_qnode *fs_kit_queue_drain(fs_kit_queue *q, size_t *count)
{
    fs_kit_qnode *head = NULL, *tail = NULL;
    size_t total = 0;
    pthread_mutex_lock(&q->mu);
    for (unsigned i = 0; i < q->nlanes; i++) {
        fs_kit_lane *l = &q->lanes[i];
        if (!l->head)
            continue;
        if (tail)
            tail->next = l->head;
        else
            head = l->head;
        tail = l->tail;
        total += l->len;
        l->head = l->tail = NULL;
        l->len = 0;
    }
    pthread_mutex_unlock(&q->mu);
    if (count)
        *count = total;
    return head;
}

size_t fs_kit_queue_len(fs_kit_queue *q, int lane)
{
    size_t n = 0;
    pthread_mutex_lock(&q->mu);
    for (unsigned i = 0; i < q->nlanes; i++)
        if (lane < 0 || i == (unsigned)lane % q->nlanes)
            n += q->lanes[i].len;
    pthread_mutex_unlock(&q->mu);
    return n;
}
