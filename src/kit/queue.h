/*
 * kit/queue.h - the blocking delivery queue that workers wait on, with N
 * lanes (e.g. one per worker, to keep a Kafka partition's messages on one
 * worker: push to lane = partition % lanes, a worker pops from lane =
 * worker % lanes). Intrusive: embed an fs_kit_qnode in your per-delivery
 * record and point its `msg` at the record's fs_message; pops hand out the
 * fs_message pointers, ready to return from ops->fetch.
 * Internal (not installed); part of the adapter kit (src/kit).
 *
 * Two ways to fill it:
 *   - a reader thread of the adapter pushes; fetch pops (fs_kit_queue_pop,
 *     fs_kit_queue_pop_batch);
 *   - leader/followers (no thread of your own): fetch calls
 *     fs_kit_queue_take with a read function; the worker that finds its
 *     lane empty while nobody reads becomes the reader, reads (without the
 *     queue's lock) and pushes, the others wait (the Redis adapter).
 *
 * close() wakes every waiter: pops then take what is queued and return
 * FS_ECLOSED once their lane is empty, until open(). All functions are
 * thread-safe (one mutex; condition variables per lane).
 */
#ifndef FS_KIT_QUEUE_H
#define FS_KIT_QUEUE_H

#include "faststream/adapter.h"

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>

typedef struct fs_kit_qnode {
    struct fs_kit_qnode *next;
    fs_message *msg; /**< what a pop hands out for this node */
} fs_kit_qnode;

typedef struct fs_kit_lane {
    fs_kit_qnode *head, *tail;
    size_t len;
    unsigned waiting;
    pthread_cond_t cv;
} fs_kit_lane;

typedef struct fs_kit_queue {
    pthread_mutex_t mu;
    fs_kit_lane *lanes;
    unsigned nlanes;
    unsigned waiting; /* over all lanes */
    bool closed;
    bool reading; /* fs_kit_queue_take: a worker holds the reader role */
} fs_kit_queue;

/** Set up a queue of `lanes` (>= 1) lanes. FS_OK or FS_ENOMEM. */
int fs_kit_queue_init(fs_kit_queue *q, unsigned lanes);

/** Free the queue (queued nodes are not touched: drain them first). */
void fs_kit_queue_destroy(fs_kit_queue *q);

/** Append `n` to lane `lane % lanes` and wake a waiter of that lane. */
void fs_kit_queue_push(fs_kit_queue *q, unsigned lane, fs_kit_qnode *n);

/** Append the list head..tail (`count` nodes linked by next) to a lane at once. */
void fs_kit_queue_push_list(fs_kit_queue *q, unsigned lane, fs_kit_qnode *head, fs_kit_qnode *tail,
                            size_t count);

/** Put `n` back at the head of a lane (a message handed back before being handled). */
void fs_kit_queue_push_front(fs_kit_queue *q, unsigned lane, fs_kit_qnode *n);

/**
 * Take the first node of lane `lane % lanes`, waiting up to timeout_ms
 * (< 0: forever). FS_OK, FS_ETIMEDOUT, or FS_ECLOSED (closed and empty).
 */
int fs_kit_queue_pop(fs_kit_queue *q, unsigned lane, int timeout_ms, fs_message **out);

/**
 * Take up to `max` nodes into out[0..*n): as soon as `max` are there, or
 * batch_timeout_ms after the first one was taken; FS_ETIMEDOUT with *n 0
 * when nothing came within timeout_ms; FS_ECLOSED when closed and empty.
 */
int fs_kit_queue_pop_batch(fs_kit_queue *q, unsigned lane, fs_message **out, size_t max,
                           unsigned batch_timeout_ms, int timeout_ms, size_t *n);

/**
 * Reads up to `want` messages, for up to `budget_ms`, and pushes them (to
 * any lane). Called without the queue's lock, by one worker at a time.
 */
typedef void (*fs_kit_read_fn)(void *ctx, size_t want, int budget_ms);

/**
 * fs_kit_queue_pop_batch (max 1: a single message) with leader/followers:
 * when the lane is empty and nobody reads, the caller becomes the reader
 * and calls `read` with want = the free room in its batch, or 1 + the
 * number of waiting workers for single messages.
 */
int fs_kit_queue_take(fs_kit_queue *q, unsigned lane, fs_message **out, size_t max,
                      unsigned batch_timeout_ms, int timeout_ms, size_t *n, fs_kit_read_fn read,
                      void *ctx);

/**
 * Take the reader role outside fetch (setup: connecting before start),
 * waiting for the current reader; give it back with fs_kit_queue_lead_end.
 */
void fs_kit_queue_lead_begin(fs_kit_queue *q);
void fs_kit_queue_lead_end(fs_kit_queue *q);

/** Wake everyone; pops return FS_ECLOSED once their lane is empty. */
void fs_kit_queue_close(fs_kit_queue *q);

/** Undo close. */
void fs_kit_queue_open(fs_kit_queue *q);

/**
 * Remove the nodes for which pred(node, arg) is true from lane `lane`
 * (< 0: every lane), keeping the others' order; returns how many, and the
 * removed ones linked by next in *removed (may be NULL only if you own
 * nothing in them). For dropping the queued messages of a revoked partition.
 */
size_t fs_kit_queue_remove_if(fs_kit_queue *q, int lane, bool (*pred)(fs_kit_qnode *, void *),
                              void *arg, fs_kit_qnode **removed);

/** Take every queued node (all lanes, lane by lane), linked by next; *count may be NULL. */
fs_kit_qnode *fs_kit_queue_drain(fs_kit_queue *q, size_t *count);

/** Nodes queued in lane `lane` (< 0: all lanes). */
size_t fs_kit_queue_len(fs_kit_queue *q, int lane);

#endif
