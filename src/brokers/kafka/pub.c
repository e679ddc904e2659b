/*
 * Publishing: one producer per broker, a thread serving its delivery
 * reports, and publishes that wait for their reports (or, with no_wait,
 * report a failure when it arrives).
 */
#include "internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* A no_wait publish whose reports are still to come (heap: outlives the call). */
typedef struct knowait {
    kafka_broker *b;
    _Atomic size_t remaining;
    _Atomic int err;
    _Atomic bool silent; /* the call itself failed and said so: report nothing later */
    size_t count;
    uint64_t start_ns;
    char topic[];
} knowait;

/*
 * msg_opaque tags (the low two bits): 0 a kwait (a publish waiting on its
 * stack), 1 a knowait (a no_wait batch), 2 a single no_wait record, whose
 * opaque is its start time (monotonic ns << 2) and needs no allocation.
 */
#define NOWAIT_TAG ((uintptr_t)1)
#define SINGLE_TAG ((uintptr_t)2)
#define TAG_MASK ((uintptr_t)3)

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* The late result of a no_wait publish, for the log and the middleware. */
static void nowait_report(kafka_broker *b, const char *topic, size_t count, rd_kafka_resp_err_t err,
                          uint64_t start_ns)
{
    if (err)
        fs_adapter_log(FS_LOG_WARN, FS_KAFKA_COMPONENT,
                       "publish to %s (no_wait) failed on delivery: %s", topic,
                       rd_kafka_err2str(err));
#ifdef FS_PENDING
    fs_adapter_publish_result(b->broker, topic, count, err ? fs__kafka_status(err) : FS_OK,
                              err ? rd_kafka_err2name(err) : NULL,
                              (double)(now_ns() - start_ns) / 1e9);
#else
    (void)b;
    (void)count;
    (void)start_ns;
#endif
}

static void nowait_done(knowait *nw)
{
    if (!atomic_load(&nw->silent))
        nowait_report(nw->b, nw->topic, nw->count, (rd_kafka_resp_err_t)atomic_load(&nw->err),
                      nw->start_ns);
    free(nw);
}

static void on_delivery(rd_kafka_t *rk, const rd_kafka_message_t *m, void *opaque)
{
    (void)rk;
    uintptr_t p = (uintptr_t)m->_private;
    if (!p)
        return;
    if ((p & TAG_MASK) == SINGLE_TAG) {
        nowait_report(opaque, rd_kafka_topic_name(m->rkt), 1, m->err, (uint64_t)(p >> 2));
        return;
    }
    if (p & NOWAIT_TAG) {
        knowait *nw = (knowait *)(p & ~NOWAIT_TAG);
        if (m->err) {
            int zero = 0;
            atomic_compare_exchange_strong(&nw->err, &zero, (int)m->err);
        }
        if (atomic_fetch_sub(&nw->remaining, 1) == 1)
            nowait_done(nw);
        return;
    }
    kwait *w = (kwait *)p;
    pthread_mutex_lock(&w->mu);
    if (m->err && !w->err)
        w->err = m->err;
    if (--w->remaining == 0)
        pthread_cond_signal(&w->cv);
    pthread_mutex_unlock(&w->mu);
}

static void *poller_main(void *arg)
{
    kafka_broker *b = arg;
    while (!atomic_load_explicit(&b->closing, memory_order_acquire))
        rd_kafka_poll(b->producer, 100);
    return NULL;
}

int fs__kafka_producer_open(kafka_broker *b)
{
    pthread_mutex_lock(&b->mu);
    int rc = FS_OK;
    if (b->producer)
        goto out;
    rd_kafka_conf_t *c;
    if ((rc = fs__kafka_conf(b, false, NULL, 0, &c)))
        goto out;
    rd_kafka_conf_set_dr_msg_cb(c, on_delivery);
    rd_kafka_conf_set_opaque(c, b); /* on_delivery's opaque */
    char err[512];
    rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_PRODUCER, c, err, sizeof err);
    if (!rk) {
        rd_kafka_conf_destroy(c);
        rc = fs_adapter_error(FS_EINVAL, "kafka: cannot create the producer: %s", err);
        goto out;
    }
    b->producer = rk;
    atomic_store(&b->closing, false);
    if (pthread_create(&b->poller, NULL, poller_main, b)) {
        rd_kafka_destroy(rk);
        b->producer = NULL;
        rc = fs_adapter_error(FS_ENOMEM, "kafka: cannot start the delivery-report thread");
        goto out;
    }
    b->poller_running = true;
out:
    pthread_mutex_unlock(&b->mu);
    return rc;
}

void fs__kafka_producer_close(kafka_broker *b)
{
    pthread_mutex_lock(&b->mu);
    rd_kafka_t *rk = b->producer;
    if (rk) {
        /* Deliver what is queued (reports still served by the poller), then stop. */
        rd_kafka_flush(rk, 5000);
        atomic_store_explicit(&b->closing, true, memory_order_release);
        if (b->poller_running)
            pthread_join(b->poller, NULL);
        b->poller_running = false;
        rd_kafka_poll(rk, 0); /* the last reports */
        b->producer = NULL;
    }
    pthread_mutex_unlock(&b->mu);
    if (rk)
        rd_kafka_destroy(rk);
}

/* Build a record's librdkafka headers from FastStream's list. */
static int make_headers(const fs_envelope *e, bool single, rd_kafka_headers_t **out)
{
    char cid[FS__KAFKA_UUID_LEN + 1];
    const char *corr = e->correlation_id;
    if (!corr) {
        fs__kafka_uuid4(cid);
        corr = cid;
    }
    size_t max = fs__kafka_wire_header_max(e), n = 0;
    fs__kafka_hdr stackbuf[16];
    fs__kafka_hdr *h = max <= 16 ? stackbuf : malloc(max * sizeof *h);
    if (!h)
        return fs_adapter_error(FS_ENOMEM, "kafka: out of memory");
    int rc = fs__kafka_wire_headers(e, single, corr, h, &n);
    rd_kafka_headers_t *hs = NULL;
    if (!rc && !(hs = rd_kafka_headers_new(n)))
        rc = fs_adapter_error(FS_ENOMEM, "kafka: out of memory");
    for (size_t i = 0; !rc && i < n; i++)
        rd_kafka_header_add(hs, h[i].name, -1, h[i].value, (ssize_t)h[i].len);
    if (h != stackbuf)
        free(h);
    *out = hs;
    return rc;
}

/*
 * Produce one record, retrying a full local queue for a while. Through
 * rd_kafka_produceva (the RD_KAFKA_V_* macros of producev are GNU statement
 * expressions, refused by clang's -Wpedantic), with the headers as one
 * list: librdkafka owns `hs` once produced, the caller still does on
 * failure (2.0.2's produceva frees its own VTYPE_HEADER list twice when the
 * partitioner fails; an application list is left alone).
 */
static rd_kafka_resp_err_t produce(rd_kafka_t *rk, const char *topic, int32_t partition,
                                   const void *key, size_t key_len, const void *value, size_t len,
                                   int64_t ts, rd_kafka_headers_t *hs, void *opaque)
{
    rd_kafka_vu_t vu[8];
    size_t k = 0;
    vu[k].vtype = RD_KAFKA_VTYPE_TOPIC;
    vu[k++].u.cstr = topic;
    vu[k].vtype = RD_KAFKA_VTYPE_PARTITION;
    vu[k++].u.i32 = partition;
    vu[k].vtype = RD_KAFKA_VTYPE_MSGFLAGS;
    vu[k++].u.i = RD_KAFKA_MSG_F_COPY;
    vu[k].vtype = RD_KAFKA_VTYPE_KEY;
    vu[k].u.mem.ptr = (void *)key;
    vu[k++].u.mem.size = key_len;
    vu[k].vtype = RD_KAFKA_VTYPE_VALUE;
    vu[k].u.mem.ptr = (void *)value;
    vu[k++].u.mem.size = len;
    vu[k].vtype = RD_KAFKA_VTYPE_TIMESTAMP;
    vu[k++].u.i64 = ts;
    vu[k].vtype = RD_KAFKA_VTYPE_OPAQUE;
    vu[k++].u.ptr = opaque;
    if (hs) {
        vu[k].vtype = RD_KAFKA_VTYPE_HEADERS;
        vu[k++].u.headers = hs;
    }
    for (int tries = 0;; tries++) {
        rd_kafka_error_t *e = rd_kafka_produceva(rk, vu, k);
        rd_kafka_resp_err_t err = e ? rd_kafka_error_code(e) : RD_KAFKA_RESP_ERR_NO_ERROR;
        if (e)
            rd_kafka_error_destroy(e);
        if (err != RD_KAFKA_RESP_ERR__QUEUE_FULL || tries >= 5000)
            return err;
        struct timespec d = {0, 1000000};
        nanosleep(&d, NULL);
    }
}

static int wait_reports(kwait *w)
{
    pthread_mutex_lock(&w->mu);
    while (w->remaining)
        pthread_cond_wait(&w->cv, &w->mu);
    rd_kafka_resp_err_t err = w->err;
    pthread_mutex_unlock(&w->mu);
    return (int)err;
}

int fs__kafka_produce_raw(kafka_broker *b, const char *topic, const void *key, size_t key_len,
                          const void *value, size_t len, rd_kafka_headers_t *hdrs,
                          const char **error_type)
{
    rd_kafka_t *rk = b->producer;
    if (!rk) {
        rd_kafka_headers_destroy(hdrs);
        *error_type = "IncorrectState";
        return fs_adapter_error(FS_ESTATE, "kafka: not connected");
    }
    kwait w = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, 1, 0};
    rd_kafka_resp_err_t err =
        produce(rk, topic, RD_KAFKA_PARTITION_UA, key, key_len, value, len, 0, hdrs, &w);
    if (err) {
        rd_kafka_headers_destroy(hdrs);
    } else {
        err = (rd_kafka_resp_err_t)wait_reports(&w);
    }
    pthread_cond_destroy(&w.cv);
    pthread_mutex_destroy(&w.mu);
    if (err) {
        *error_type = rd_kafka_err2name(err);
        return fs_adapter_error(fs__kafka_status(err), "kafka: publish to %s: %s", topic,
                                rd_kafka_err2str(err));
    }
    return FS_OK;
}

int fs__kafka_publish(void *impl, void *dest, const char *destination, const fs_envelope *msgs,
                      size_t count, const char **error_type)
{
    (void)dest;
    kafka_broker *b = impl;
    rd_kafka_t *rk = b->producer;
    if (!destination || !*destination || !msgs || !count) {
        *error_type = "ValueError";
        return fs_adapter_error(FS_EINVAL, "kafka: publish needs a topic and messages");
    }
    if (!rk || atomic_load_explicit(&b->closing, memory_order_relaxed)) {
        *error_type = "IncorrectState";
        return fs_adapter_error(FS_ECLOSED, "kafka: publish to %s: the producer is closed",
                                destination);
    }
    const fs_kafka_publish_options *first = msgs[0].broker_options;
    bool no_wait = first && first->no_wait;
    kwait w = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, 0, 0};
    knowait *nw = NULL;
    void *opaque = &w;
    bool single = no_wait && count == 1;
    if (single) {
        /* One record: its report carries what the late result needs (no allocation). */
        opaque = (void *)(uintptr_t)(now_ns() << 2 | SINGLE_TAG);
    } else if (no_wait) {
        size_t tl = strlen(destination) + 1;
        nw = malloc(sizeof *nw + tl);
        if (!nw) {
            *error_type = "MemoryError";
            return fs_adapter_error(FS_ENOMEM, "kafka: out of memory");
        }
        nw->b = b;
        atomic_init(&nw->remaining, 1); /* the call's own reference */
        atomic_init(&nw->err, 0);
        atomic_init(&nw->silent, false);
        nw->count = count;
        nw->start_ns = now_ns();
        memcpy(nw->topic, destination, tl);
        opaque = (void *)((uintptr_t)nw | NOWAIT_TAG);
    }
    int rc = FS_OK;
    rd_kafka_resp_err_t err = 0;
    size_t produced = 0;
    for (size_t i = 0; i < count; i++) {
        const fs_envelope *e = &msgs[i];
        const fs_kafka_publish_options *po = e->broker_options;
        if (e->body_len && !e->body) {
            rc = fs_adapter_error(FS_EINVAL, "kafka: publish: NULL body with length %zu",
                                  e->body_len);
            break;
        }
        rd_kafka_headers_t *hs = NULL;
        if ((rc = make_headers(e, count == 1, &hs)))
            break;
        if (nw)
            atomic_fetch_add(&nw->remaining, 1);
        else if (!single) {
            pthread_mutex_lock(&w.mu);
            w.remaining++;
            pthread_mutex_unlock(&w.mu);
        }
        err = produce(rk, destination,
                      po && po->partition >= 0 ? po->partition : RD_KAFKA_PARTITION_UA,
                      po ? po->key : NULL, po ? po->key_len : 0, e->body, e->body_len,
                      po ? po->timestamp_ms : 0, hs, opaque);
        if (err) {
            rd_kafka_headers_destroy(hs);
            if (nw)
                atomic_fetch_sub(&nw->remaining, 1);
            else if (!single) {
                pthread_mutex_lock(&w.mu);
                w.remaining--;
                pthread_mutex_unlock(&w.mu);
            }
            *error_type = rd_kafka_err2name(err);
            rc = fs_adapter_error(fs__kafka_status(err), "kafka: publish to %s: %s", destination,
                                  rd_kafka_err2str(err));
            break;
        }
        produced++;
    }
    if (single) /* its report comes to on_delivery, which reports it (none when refused) */
#ifdef FS_PENDING
        return rc ? rc : FS_PENDING;
#else
        return rc;
#endif
    if (nw) {
        if (rc)
            atomic_store(&nw->silent, true);
        if (atomic_fetch_sub(&nw->remaining, 1) == 1) { /* every report came already */
            if (!rc && atomic_load(&nw->err)) {
                err = (rd_kafka_resp_err_t)atomic_load(&nw->err);
                *error_type = rd_kafka_err2name(err);
                rc = fs_adapter_error(fs__kafka_status(err), "kafka: publish to %s: %s",
                                      destination, rd_kafka_err2str(err));
            }
            free(nw);
            return rc;
        }
#ifdef FS_PENDING
        return rc ? rc : FS_PENDING;
#else
        return rc;
#endif
    }
    rd_kafka_resp_err_t derr = (rd_kafka_resp_err_t)wait_reports(&w);
    pthread_cond_destroy(&w.cv);
    pthread_mutex_destroy(&w.mu);
    if (!rc && derr) {
        *error_type = rd_kafka_err2name(derr);
        rc = fs_adapter_error(fs__kafka_status(derr), "kafka: publish to %s: %s", destination,
                              rd_kafka_err2str(derr));
    }
    (void)produced;
    return rc;
}

int fs__kafka_prepare_destination(void *impl, const char *destination, const void *options,
                                  void **dest_out)
{
    (void)impl;
    (void)options;
    *dest_out = NULL;
    if (!destination || !*destination)
        return fs_adapter_error(FS_EINVAL, "kafka: empty topic name");
    if (strlen(destination) > 249)
        return fs_adapter_error(FS_EINVAL, "kafka: topic name longer than 249 characters: %.40s...",
                                destination);
    return FS_OK;
}
