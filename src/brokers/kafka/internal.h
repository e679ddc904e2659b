/*
 * The Kafka adapter's internal structures. Not installed.
 *
 * Clients. One librdkafka producer per broker (publishing, replies,
 * dead-letters) with a thread serving its delivery reports; one consumer per
 * subscription with one reader thread that polls it, serves its rebalance
 * callbacks, seeks back nacked partitions and commits.
 *
 * Lanes. The reader puts each record on the lane of its partition (or of
 * its key with order_by_key): lane = hash % concurrency; worker i takes only
 * from lane i, so a partition's messages are handled one at a time in offset
 * order, partitions in parallel.
 *
 * Commits. Each partition keeps a ring of the offsets handed out (written
 * by the reader only) with one atomic state per slot: PENDING(gen) when
 * queued, DONE(gen) once the message is released (ACK_FIRST: once a worker
 * takes it). The reader advances the partition's watermark over the
 * contiguous DONE prefix and commits it (every commit_every messages or
 * commit_interval_ms), so no offset is committed while an earlier one of its
 * partition is unfinished. A nack or a revoke bumps the partition's
 * generation: marks of records from an older generation no longer land
 * (their slots may be reused), so those messages count as unfinished and
 * come again after the seek or on the new owner.
 */
#ifndef FS_KAFKA_INTERNAL_H
#define FS_KAFKA_INTERNAL_H

#include "faststream/adapter.h"
#include "faststream/kafka.h"
#include "wire.h"

#include <librdkafka/rdkafka.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <time.h>

#define FS_KAFKA_COMPONENT "kafka"
/* Records queued per subscription before the reader waits for workers. */
#define FS_KAFKA_QUEUE_MAX 2048u
/* Slots of a partition's offset ring (a power of two): in flight per partition at most. */
#define FS_KAFKA_RING 1024u
/* Headers a record holds without an allocation of its own. */
#define FS_KAFKA_HDR_INLINE 6
/* Bytes of header names and values a record holds without an allocation of its own. */
#define FS_KAFKA_HBUF_INLINE 256
/* Records the reader takes from librdkafka at once. */
#define FS_KAFKA_POLL_BATCH 64

typedef struct kafka_broker kafka_broker;
typedef struct ksub ksub;

/* Slot states: gen << 2 | state. */
/* SKIPPED: released unsettled (SKIP, MANUAL without a settlement): not committed by
 * itself, but a later finished offset of its partition commits past it (as a Kafka
 * commit of the consumed position does). */
enum { KSLOT_FREE = 0, KSLOT_PENDING = 1, KSLOT_DONE = 2, KSLOT_SKIPPED = 3 };

typedef struct kpart {
    char *topic;
    int32_t partition;
    /* The reader's view. */
    int64_t offs[FS_KAFKA_RING];
    uint64_t head, tail; /* seqs: first unfinished, next to hand out */
    int64_t done_offset; /* next offset after the finished prefix; -1: none yet */
    int64_t committed;   /* last offset committed (next to read); -1: none */
    int64_t next_offset; /* next offset expected from a fetch; -1: any */
    _Atomic bool assigned;
    bool paused;   /* waiting for a nack's seek */
    bool awaiting; /* sought: dropping the old position's records until seek_offset comes */
    uint64_t awaiting_until_ms;
    unsigned lane;
    int64_t seek_offset;
    int64_t redeliver_offset; /* the last nacked offset, and how often it was nacked */
    uint32_t redeliver_count;
    uint64_t seek_due_ms;
    _Atomic uint32_t gen;
    /* Set by a nack (any thread): records of an older generation are not handed out. */
    _Atomic uint32_t fence;
    _Atomic uint32_t state[FS_KAFKA_RING];
    _Atomic int inflight; /* records queued or handed out, not yet released */
    struct kpart *next;
} kpart;

/* One delivery. */
typedef struct kmsg {
    fs_message m;
    ksub *sub;
    kpart *part;
    rd_kafka_message_t *rk;
    uint64_t seq;
    uint32_t gen;
    unsigned lane;
    _Atomic int nacked;
    struct kmsg *next;
    fs_kafka_message_info info;
    /* The headers, copied out of librdkafka's parsed list into hbuf (each name and
     * value NUL-terminated), which is freed at once: its allocations are then reused
     * by the next record's instead of piling up while a batch is handled. */
    fs_header *hdrs; /* hdr_inline, or a heap array of hdr_cap when more */
    size_t hdr_cap;
    char *hbuf; /* hbuf_inline, or a heap buffer of hbuf_cap bytes when more */
    size_t hbuf_cap;
    fs_header hdr_inline[FS_KAFKA_HDR_INLINE];
    char mid[48];
    char hbuf_inline[FS_KAFKA_HBUF_INLINE];
} kmsg;

typedef struct klane {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    kmsg *head, *tail;
    size_t len;
} klane;

/* A nack waiting for the reader (rare path: under nack_mu). */
typedef struct knack {
    kpart *part;
    uint32_t gen;
    int64_t offset;
    unsigned delay_ms;
    struct knack *next;
} knack;

struct ksub {
    kafka_broker *b;
    char *source;
    char **topics; /* the topics (a pattern: one, starting with '^') */
    size_t topic_count;
    bool pattern, reply_inbox, order_by_key;
    char *group;               /* NULL: no group (no commits) */
    fs_kafka_partition *parts; /* explicit assignment, or NULL */
    size_t part_count;
    fs_kafka_start start;
    int64_t start_value;
    char *dead_letter;
    fs_ack_policy policy;
    unsigned concurrency;
    unsigned commit_interval_ms, commit_every;
    rd_kafka_conf_t *conf; /* the consumer's, kept until the consumer is made */

    rd_kafka_t *rk;
    rd_kafka_queue_t *q; /* rk's consumer queue (batches of what is there) */
    pthread_t reader;
    bool reader_running;
    _Atomic bool stopping;

    klane *lanes;
    /* The reader's records of one poll, per lane, pushed together (one lock per lane). */
    struct kstage {
        kmsg *head, *tail;
        size_t n;
    } * stage;
    _Atomic size_t queued;
    pthread_mutex_t space_mu;
    pthread_cond_t space_cv;

    _Atomic(kmsg *) free_stack; /* released records, pushed by any thread */
    kmsg *free_local;           /* the reader's */

    pthread_mutex_t nack_mu;
    knack *nacks;

    kpart *partitions; /* reader-owned list (freed at unsubscribe) */
    kpart *last_part;
    /* The reader's last record timestamp and offset in digits (NUL-terminated, the rest
     * of the 24 bytes zero): records of a batch mostly share a timestamp, and offsets
     * mostly follow each other (the digits are counted up). */
    int64_t mid_ts, mid_off;
    size_t mid_ts_len, mid_off_len;
    char mid_ts_str[24], mid_off_str[24];
    /* The reader's last partition in one poll's records (valid for that poll only:
     * every record of it holds its topic, so one topic handle means one topic). */
    const rd_kafka_topic_t *poll_rkt;
    kpart *poll_part;
    const char *poll_topic;
    _Atomic uint64_t finished; /* records released as finished */
    uint64_t finished_seen;    /* at the last commit */
    uint64_t last_commit_ms;
    bool commit_failed;           /* retry at the next interval even with nothing new */
    _Atomic unsigned next_worker; /* ABI v1: lanes given to worker threads in turn */
    pthread_mutex_t rk_mu;        /* rk's life vs. backlog queries */

    struct ksub *next;
};

/* A publish waiting for its delivery reports (on the publisher's stack). */
typedef struct kwait {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    size_t remaining;
    rd_kafka_resp_err_t err;
} kwait;

struct kafka_broker {
    char *url;
    char *bootstraps;
    char *group;
    char *client_id;
    int connect_timeout_ms;
    unsigned commit_interval_ms, commit_every, rebalance_timeout_ms;
    fs_kafka_config *config, *producer_config, *consumer_config; /* copies */
    size_t config_count, producer_config_count, consumer_config_count;
    fs_broker *broker;

    pthread_mutex_t mu; /* producer creation, subs */
    rd_kafka_t *producer;
    pthread_t poller;
    bool poller_running;
    _Atomic bool closing;
    ksub *subs;
};

#define FS_KAFKA_RING_MASK (FS_KAFKA_RING - 1u)
static inline uint32_t fs__kafka_slot(uint32_t gen, uint32_t state)
{
    return gen << 2 | state;
}

/* reader.c */
void *fs__kafka_reader_main(void *arg);
void fs__kafka_on_rebalance(rd_kafka_t *rk, rd_kafka_resp_err_t err,
                            rd_kafka_topic_partition_list_t *parts, void *opaque);
/* Mark partitions assigned (explicit assignments, rebalance). */
void fs__kafka_assign_parts(ksub *s, const rd_kafka_topic_partition_list_t *parts);
/* Commit the finished prefix of `only` (or of every assigned partition when NULL). */
void fs__kafka_commit(ksub *s, kpart **only, size_t n_only);
/* Take the queued records of `p` (every partition: NULL) off the lanes: they come again. */
void fs__kafka_lanes_drop(ksub *s, kpart *p);
/* `n` records left the lanes (wakes the reader waiting for room). */
void fs__kafka_queued_sub(ksub *s, size_t n);
/* Give a record back: its offset finished, skipped (released unsettled) or to come again. */
enum { KREL_DONE, KREL_SKIPPED, KREL_AGAIN };
void fs__kafka_rec_release(kmsg *r, int how);
void fs__kafka_rec_free(kmsg *r);
/* Headers and message id of a record just taken by a worker (on that worker's thread). */
void fs__kafka_rec_decode(kmsg *r);
void fs__kafka_on_release(fs_message *m);

/* conn.c: configurations, logging, connection checks */
uint64_t fs__kafka_now_ms(void);
/* An absolute CLOCK_REALTIME time `ms` from now (for pthread_cond_timedwait). */
void fs__kafka_deadline(struct timespec *ts, int ms);
/* A librdkafka configuration for a client of `b`, with `extra` on top. */
int fs__kafka_conf(kafka_broker *b, bool consumer, const fs_kafka_config *extra, size_t extra_count,
                   rd_kafka_conf_t **out);
/* Set one property, FS_EINVAL naming it when librdkafka refuses it. */
int fs__kafka_conf_set(rd_kafka_conf_t *c, const char *key, const char *value);
/* Copy a config array (NULL/0 allowed). */
int fs__kafka_config_copy(const fs_kafka_config *in, size_t n, fs_kafka_config **out);
void fs__kafka_config_free(fs_kafka_config *c, size_t n);
/* Metadata of the cluster (or of `topic`) within timeout_ms: FS_OK / FS_EIO / FS_ETIMEDOUT. */
int fs__kafka_metadata(kafka_broker *b, rd_kafka_t *rk, const char *topic, int timeout_ms,
                       const rd_kafka_metadata_t **md);
int fs__kafka_status(rd_kafka_resp_err_t err);

/* pub.c */
int fs__kafka_producer_open(kafka_broker *b);
void fs__kafka_producer_close(kafka_broker *b);
int fs__kafka_publish(void *impl, void *dest, const char *destination, const fs_envelope *msgs,
                      size_t count, const char **error_type);
int fs__kafka_prepare_destination(void *impl, const char *destination, const void *options,
                                  void **dest_out);
/* Produce one record with raw headers and wait for its report (dead letters). */
int fs__kafka_produce_raw(kafka_broker *b, const char *topic, const void *key, size_t key_len,
                          const void *value, size_t len, rd_kafka_headers_t *hdrs,
                          const char **error_type);

/* sub.c */
int fs__kafka_subscribe(void *impl, fs_subscribe_spec *spec, void **sub_out);
void fs__kafka_unsubscribe(void *impl, void *sub);
int fs__kafka_sub_start(void *impl, void *sub);
void fs__kafka_sub_stop(ksub *s);
void fs__kafka_sub_finish(ksub *s);
int fs__kafka_fetch(void *impl, void *sub, unsigned worker, int timeout_ms, fs_message **out);
int fs__kafka_fetch_batch(void *impl, void *sub, unsigned worker, fs_message **out, size_t max,
                          unsigned batch_timeout_ms, int timeout_ms, size_t *n);
/* op: FS_SETTLE_ACKED / NACKED / REJECTED. */
int fs__kafka_settle(void *impl, fs_message *m, fs_settle_state op, unsigned delay_ms,
                     const char *reason);
int fs__kafka_backlog(void *impl, void *sub, int timeout_ms, uint64_t *out);
/* Lag of a subscription: exact (asks the cluster) or from librdkafka's cache. */
int fs__kafka_lag_of(ksub *s, bool exact, int timeout_ms, uint64_t *out);
ksub *fs__kafka_find_sub(kafka_broker *b, const char *source);

#endif
