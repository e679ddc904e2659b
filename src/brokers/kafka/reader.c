/*
 * A subscription's reader thread: poll, hand records to worker lanes,
 * rebalance, seek back nacked partitions, commit finished prefixes. See
 * internal.h for the design.
 */
#include "internal.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static void sleep_ms(unsigned ms)
{
    struct timespec d = {(time_t)(ms / 1000u), (long)(ms % 1000u) * 1000000L};
    nanosleep(&d, NULL);
}

static uint32_t hash_bytes(const void *p, size_t n, uint32_t h)
{
    const unsigned char *c = p;
    for (size_t i = 0; i < n; i++)
        h = (h ^ c[i]) * 16777619u;
    return h;
}

/* ------------------------------------------------------------------------ */
/* Partitions                                                               */

static kpart *find_part(ksub *s, const char *topic, int32_t partition)
{
    kpart *p = s->last_part;
    if (p && p->partition == partition && strcmp(p->topic, topic) == 0)
        return p;
    for (p = s->partitions; p; p = p->next)
        if (p->partition == partition && strcmp(p->topic, topic) == 0)
            return s->last_part = p;
    return NULL;
}

static kpart *get_part(ksub *s, const char *topic, int32_t partition)
{
    kpart *p = find_part(s, topic, partition);
    if (p)
        return p;
    p = calloc(1, sizeof *p);
    if (!p || !(p->topic = strdup(topic))) {
        free(p);
        fs_adapter_log(FS_LOG_ERROR, FS_KAFKA_COMPONENT, "out of memory tracking %s[%d]", topic,
                       (int)partition);
        return NULL;
    }
    p->partition = partition;
    p->done_offset = p->committed = p->next_offset = p->redeliver_offset = -1;
    p->lane = (hash_bytes(topic, strlen(topic), 2166136261u) + (uint32_t)partition) %
              (s->concurrency ? s->concurrency : 1);
    p->next = s->partitions;
    s->partitions = p;
    return p;
}

/* A fresh start for a partition (assigned, or sought back): nothing in flight counts. */
static void part_reset(kpart *p, int64_t next_offset)
{
    p->awaiting = false;
    atomic_store(&p->gen, atomic_load(&p->gen) + 1);
    p->head = p->tail;
    p->next_offset = next_offset;
}

/* Advance the finished prefix (reader); skipped offsets only when a finished one follows. */
static void part_advance(kpart *p)
{
    uint32_t gen = atomic_load_explicit(&p->gen, memory_order_relaxed);
    uint32_t done = fs__kafka_slot(gen, KSLOT_DONE), skipped = fs__kafka_slot(gen, KSLOT_SKIPPED);
    while (p->head < p->tail) {
        uint32_t i = (uint32_t)(p->head & FS_KAFKA_RING_MASK);
        uint32_t st = atomic_load_explicit(&p->state[i], memory_order_acquire);
        if (st == done) {
            p->done_offset = p->offs[i] + 1;
            p->head++;
            continue;
        }
        if (st != skipped)
            break;
        uint64_t j = p->head + 1;
        while (j < p->tail && atomic_load_explicit(&p->state[j & FS_KAFKA_RING_MASK],
                                                   memory_order_acquire) == skipped)
            j++;
        if (j == p->tail ||
            atomic_load_explicit(&p->state[j & FS_KAFKA_RING_MASK], memory_order_acquire) != done)
            break;
        p->head = j; /* the finished one after the skipped run is taken next round */
    }
}

/* ------------------------------------------------------------------------ */
/* Records                                                                  */

void fs__kafka_rec_free(kmsg *r)
{
    if (r->hdrs != r->hdr_inline)
        free(r->hdrs);
    if (r->hbuf != r->hbuf_inline)
        free(r->hbuf);
    free(r);
}

static kmsg *rec_get(ksub *s)
{
    if (!s->free_local)
        s->free_local = atomic_exchange_explicit(&s->free_stack, NULL, memory_order_acquire);
    kmsg *r = s->free_local;
    if (r) {
        s->free_local = r->next;
        return r;
    }
    r = calloc(1, sizeof *r);
    if (r) {
        r->sub = s;
        r->hdrs = r->hdr_inline;
        r->hdr_cap = FS_KAFKA_HDR_INLINE;
        r->hbuf = r->hbuf_inline;
        r->hbuf_cap = FS_KAFKA_HBUF_INLINE;
    }
    return r;
}

static void rec_put(ksub *s, kmsg *r)
{
    if (r->rk) {
        rd_kafka_message_destroy(r->rk);
        r->rk = NULL;
    }
    kmsg *top = atomic_load_explicit(&s->free_stack, memory_order_relaxed);
    do {
        r->next = top;
    } while (!atomic_compare_exchange_weak_explicit(&s->free_stack, &top, r, memory_order_release,
                                                    memory_order_relaxed));
}

/* Give a record back: `finished` marks its offset done (else it comes again). */
void fs__kafka_rec_release(kmsg *r, int how)
{
    ksub *s = r->sub;
    kpart *p = r->part;
    if (how != KREL_AGAIN && !atomic_load_explicit(&r->nacked, memory_order_relaxed)) {
        uint32_t want = fs__kafka_slot(r->gen, KSLOT_PENDING);
        uint32_t to = fs__kafka_slot(r->gen, how == KREL_SKIPPED ? KSLOT_SKIPPED : KSLOT_DONE);
        atomic_compare_exchange_strong_explicit(&p->state[r->seq & FS_KAFKA_RING_MASK], &want, to,
                                                memory_order_release, memory_order_relaxed);
        atomic_fetch_add_explicit(&s->finished, 1, memory_order_relaxed);
    }
    atomic_fetch_sub_explicit(&p->inflight, 1, memory_order_release);
    rec_put(s, r);
}

/* The bytes hs's headers take in a record's buffer (each name and value NUL-terminated). */
static size_t headers_size(const rd_kafka_headers_t *hs, size_t n)
{
    size_t total = 0;
    for (size_t i = 0; i < n; i++) {
        const char *name;
        const void *val;
        size_t len;
        rd_kafka_header_get_all(hs, i, &name, &val, &len);
        total += strlen(name) + (val ? len : 0) + 2;
    }
    return total;
}

/* Copy hs's n headers into r (names and values into r->hbuf), picking FastStream's. */
static int copy_headers(kmsg *r, const rd_kafka_headers_t *hs, size_t n, fs__kafka_in *in)
{
    if (n > r->hdr_cap) {
        fs_header *h = malloc(n * sizeof *h); /* rare: more headers than ever before */
        if (!h)
            return FS_ENOMEM;
        if (r->hdrs != r->hdr_inline)
            free(r->hdrs);
        r->hdrs = h;
        r->hdr_cap = n;
    }
    for (;;) {
        size_t used = 0, i;
        for (i = 0; i < n; i++) {
            const char *name;
            const void *val;
            size_t len;
            rd_kafka_header_get_all(hs, i, &name, &val, &len);
            if (!val)
                len = 0;
            size_t nl = strlen(name);
            if (used + nl + len + 2 > r->hbuf_cap)
                break;
            char *nm = r->hbuf + used, *v = nm + nl + 1;
            if ((const char *)val == name + nl + 1) {
                memcpy(nm, name, nl + 1 + len); /* the value follows the name (librdkafka's) */
            } else {
                memcpy(nm, name, nl + 1);
                if (len)
                    memcpy(v, val, len);
            }
            v[len] = '\0';
            used += nl + len + 2;
            r->hdrs[i] = (fs_header){nm, v, len};
            fs__kafka_wire_pick_one(nm, nl, v, in);
        }
        if (i == n)
            break;
        /* rare: more header bytes than ever before: a buffer for all, then again */
        size_t need = headers_size(hs, n);
        char *b = malloc(need);
        if (!b)
            return FS_ENOMEM;
        if (r->hbuf != r->hbuf_inline)
            free(r->hbuf);
        r->hbuf = b;
        r->hbuf_cap = need;
        *in = (fs__kafka_in){0};
    }
    r->m.headers = r->hdrs;
    r->m.header_count = n;
    return FS_OK;
}

/*
 * The headers of r's record, copied: librdkafka's parsed list (it allocates
 * a list and every header) is taken off the record and freed at once, so
 * the next record's parse reuses those allocations (the thread's cache)
 * instead of a batch's worth of them living until the batch is released.
 */
static int rec_headers(kmsg *r, rd_kafka_message_t *m, fs__kafka_in *in)
{
    rd_kafka_headers_t *hs = NULL;
    *in = (fs__kafka_in){0};
    r->m.headers = NULL;
    r->m.header_count = 0;
    if (rd_kafka_message_detach_headers(m, &hs) != RD_KAFKA_RESP_ERR_NO_ERROR || !hs)
        return FS_OK;
    size_t n = rd_kafka_header_cnt(hs);
    int rc = n ? copy_headers(r, hs, n, in) : FS_OK;
    rd_kafka_headers_destroy(hs);
    return rc;
}

/*
 * Decode what the handler may read and the reader need not: the headers
 * (librdkafka parses them on first use, allocating). Done by the worker
 * that took the record, so librdkafka's header allocations are made and
 * freed on the same thread (and the reader is not slowed for every lane).
 */
void fs__kafka_rec_decode(kmsg *r)
{
    fs__kafka_in in;
    if (rec_headers(r, r->rk, &in))
        fs_adapter_log(FS_LOG_ERROR, FS_KAFKA_COMPONENT, "%s: out of memory decoding headers",
                       r->sub->source);
    r->m.content_type = in.content_type;
    r->m.correlation_id = in.correlation_id;
    r->m.reply_to = in.reply_to;
}

/* The digits of v (>= 0) in s->mid_off_str: counted up from the last offset when it follows. */
static void mid_offset(ksub *s, int64_t v)
{
    if (v >= 0 && v - 1 == s->mid_off) {
        size_t i = s->mid_off_len;
        while (i > 0 && s->mid_off_str[i - 1] == '9')
            s->mid_off_str[--i] = '0';
        if (i > 0) {
            s->mid_off_str[i - 1]++;
            s->mid_off = v;
            return;
        }
    }
    s->mid_off = v;
    memset(s->mid_off_str, 0, sizeof s->mid_off_str);
    s->mid_off_len = fs__kafka_i64(s->mid_off_str, v);
}

/* r->mid = "{offset}-{timestamp}" (FastStream's) from the reader's kept digits. */
static void rec_message_id(ksub *s, kmsg *r, int64_t offset, int64_t ts)
{
    if (ts != s->mid_ts) {
        s->mid_ts = ts;
        memset(s->mid_ts_str, 0, sizeof s->mid_ts_str);
        s->mid_ts_len = fs__kafka_i64(s->mid_ts_str, ts);
    }
    mid_offset(s, offset);
    /* Whole arrays (NUL-padded): 20 + 1 + 24 <= sizeof mid, copies of a fixed size. */
    _Static_assert(sizeof r->mid >= 21 + sizeof s->mid_ts_str, "mid too small");
    memcpy(r->mid, s->mid_off_str, sizeof s->mid_off_str);
    r->mid[s->mid_off_len] = '-';
    memcpy(r->mid + s->mid_off_len + 1, s->mid_ts_str, sizeof s->mid_ts_str);
}

/* ------------------------------------------------------------------------ */
/* Lanes                                                                    */

static void stage(ksub *s, kmsg *r)
{
    struct kstage *st = &s->stage[r->lane];
    r->next = NULL;
    if (st->tail)
        st->tail->next = r;
    else
        st->head = r;
    st->tail = r;
    st->n++;
}

/* Push the staged records onto their lanes: one lock and one wake-up per lane. */
static void flush_stage(ksub *s)
{
    size_t total = 0;
    for (unsigned i = 0; i < s->concurrency; i++) {
        struct kstage *st = &s->stage[i];
        if (!st->n)
            continue;
        klane *l = &s->lanes[i];
        pthread_mutex_lock(&l->mu);
        if (l->tail)
            l->tail->next = st->head;
        else
            l->head = st->head;
        l->tail = st->tail;
        l->len += st->n;
        pthread_cond_signal(&l->cv);
        pthread_mutex_unlock(&l->mu);
        total += st->n;
        *st = (struct kstage){0};
    }
    if (total)
        atomic_fetch_add_explicit(&s->queued, total, memory_order_relaxed);
}

void fs__kafka_queued_sub(ksub *s, size_t n)
{
    size_t before = atomic_fetch_sub_explicit(&s->queued, n, memory_order_relaxed);
    if (before >= FS_KAFKA_QUEUE_MAX && before - n < FS_KAFKA_QUEUE_MAX) {
        pthread_mutex_lock(&s->space_mu);
        pthread_cond_signal(&s->space_cv);
        pthread_mutex_unlock(&s->space_mu);
    }
}

/* Take queued records of `p` (or of every partition when NULL) off the lanes: they come again. */
void fs__kafka_lanes_drop(ksub *s, kpart *p)
{
    kmsg *dropped = NULL;
    for (unsigned i = 0; i < s->concurrency; i++) {
        klane *l = &s->lanes[i];
        pthread_mutex_lock(&l->mu);
        kmsg **pp = &l->head, *prev = NULL;
        while (*pp) {
            kmsg *r = *pp;
            if (!p || r->part == p) {
                *pp = r->next;
                l->len--;
                r->next = dropped;
                dropped = r;
            } else {
                prev = r;
                pp = &r->next;
            }
        }
        l->tail = prev;
        if (l->head && !l->tail)
            for (l->tail = l->head; l->tail->next;)
                l->tail = l->tail->next;
        pthread_mutex_unlock(&l->mu);
    }
    while (dropped) {
        kmsg *r = dropped;
        dropped = r->next;
        fs__kafka_queued_sub(s, 1);
        fs__kafka_rec_release(r, KREL_AGAIN);
    }
}

/* ------------------------------------------------------------------------ */
/* Commits                                                                  */

typedef rd_kafka_topic_partition_list_t tplist;

/* Commit the finished prefix of `only` (or of every assigned partition when NULL). */
void fs__kafka_commit(ksub *s, kpart **only, size_t n_only)
{
    if (!s->group || !s->rk)
        return;
    tplist *l = rd_kafka_topic_partition_list_new(8);
    kpart **sel = NULL;
    size_t nsel = 0, cap = 0;
    for (kpart *p = s->partitions; p; p = p->next) {
        bool take = false;
        if (only) {
            for (size_t i = 0; i < n_only && !take; i++)
                take = only[i] == p;
        } else {
            take = atomic_load_explicit(&p->assigned, memory_order_relaxed);
        }
        if (!take)
            continue;
        part_advance(p);
        if (p->done_offset < 0 || p->done_offset <= p->committed)
            continue;
        if (nsel == cap) {
            cap = cap ? cap * 2 : 8;
            kpart **ns = realloc(sel, cap * sizeof *ns);
            if (!ns)
                break;
            sel = ns;
        }
        sel[nsel++] = p;
        rd_kafka_topic_partition_list_add(l, p->topic, p->partition)->offset = p->done_offset;
    }
    if (l->cnt) {
        rd_kafka_resp_err_t err = rd_kafka_commit(s->rk, l, 0);
        for (int i = 0; !err && i < l->cnt; i++)
            if (l->elems[i].err)
                err = l->elems[i].err;
        s->commit_failed = err != 0;
        if (err) {
            fs_adapter_log(FS_LOG_WARN, FS_KAFKA_COMPONENT,
                           "%s: commit failed (%s); retried with the next commit", s->source,
                           rd_kafka_err2str(err));
        } else {
            for (size_t i = 0; i < nsel; i++)
                sel[i]->committed = l->elems[i].offset;
        }
    }
    free(sel);
    rd_kafka_topic_partition_list_destroy(l);
}

static void maybe_commit(ksub *s, bool force)
{
    uint64_t now = fs__kafka_now_ms();
    uint64_t fin = atomic_load_explicit(&s->finished, memory_order_relaxed);
    if (!force && fin == s->finished_seen && !s->commit_failed)
        return;
    if (!force && fin - s->finished_seen < s->commit_every &&
        now - s->last_commit_ms < s->commit_interval_ms)
        return;
    s->finished_seen = fin;
    s->last_commit_ms = now;
    fs__kafka_commit(s, NULL, 0);
}

/* ------------------------------------------------------------------------ */
/* Rebalance                                                                */

static void one_part_list(tplist **l, kpart *p, int64_t offset)
{
    *l = rd_kafka_topic_partition_list_new(1);
    rd_kafka_topic_partition_list_add(*l, p->topic, p->partition)->offset = offset;
}

/* Stop handing out `parts`, wait (bounded) for their handlers, commit what finished. */
static void revoke(ksub *s, tplist *parts, bool commit)
{
    size_t n = 0;
    kpart **v = parts->cnt ? calloc((size_t)parts->cnt, sizeof *v) : NULL;
    for (int i = 0; v && i < parts->cnt; i++) {
        kpart *p = find_part(s, parts->elems[i].topic, parts->elems[i].partition);
        if (!p)
            continue;
        atomic_store(&p->assigned, false);
        fs__kafka_lanes_drop(s, p);
        v[n++] = p;
    }
    uint64_t until = fs__kafka_now_ms() + s->b->rebalance_timeout_ms;
    int left;
    for (;;) {
        left = 0;
        for (size_t i = 0; i < n; i++)
            left += atomic_load_explicit(&v[i]->inflight, memory_order_acquire);
        if (!left || fs__kafka_now_ms() >= until)
            break;
        sleep_ms(2);
    }
    if (left)
        fs_adapter_log(FS_LOG_WARN, FS_KAFKA_COMPONENT,
                       "%s: %d messages of revoked partitions were still being handled after %u "
                       "ms; they will be delivered again to the new owner",
                       s->source, left, s->b->rebalance_timeout_ms);
    if (commit)
        fs__kafka_commit(s, v, n);
    for (size_t i = 0; i < n; i++) {
        part_reset(v[i], -1);
        v[i]->paused = false;
    }
    free(v);
}

void fs__kafka_assign_parts(ksub *s, const rd_kafka_topic_partition_list_t *parts)
{
    for (int i = 0; i < parts->cnt; i++) {
        kpart *p = get_part(s, parts->elems[i].topic, parts->elems[i].partition);
        if (!p)
            continue;
        part_reset(p, -1);
        p->paused = false;
        p->committed = -1;
        p->done_offset = -1;
        atomic_store(&p->assigned, true);
    }
}

void fs__kafka_on_rebalance(rd_kafka_t *rk, rd_kafka_resp_err_t err,
                            rd_kafka_topic_partition_list_t *parts, void *opaque)
{
    ksub *s = opaque;
    bool coop = strcmp(rd_kafka_rebalance_protocol(rk), "COOPERATIVE") == 0;
    if (err == RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS) {
        fs__kafka_assign_parts(s, parts);
        fs_adapter_log(FS_LOG_INFO, FS_KAFKA_COMPONENT, "%s: %d partitions assigned (group %s)",
                       s->source, parts->cnt, s->group);
        rd_kafka_error_t *e = NULL;
        rd_kafka_resp_err_t ae = 0;
        if (coop)
            e = rd_kafka_incremental_assign(rk, parts);
        else
            ae = rd_kafka_assign(rk, parts);
        if (e || ae) {
            fs_adapter_log(FS_LOG_ERROR, FS_KAFKA_COMPONENT, "%s: assign failed: %s", s->source,
                           e ? rd_kafka_error_string(e) : rd_kafka_err2str(ae));
            if (e)
                rd_kafka_error_destroy(e);
        }
        return;
    }
    bool lost = err != RD_KAFKA_RESP_ERR__REVOKE_PARTITIONS || rd_kafka_assignment_lost(rk);
    revoke(s, parts, !lost);
    fs_adapter_log(lost ? FS_LOG_WARN : FS_LOG_INFO, FS_KAFKA_COMPONENT,
                   "%s: %d partitions %s (group %s)", s->source, parts->cnt,
                   lost ? "lost" : "revoked", s->group);
    if (coop) {
        rd_kafka_error_t *e = rd_kafka_incremental_unassign(rk, parts);
        if (e)
            rd_kafka_error_destroy(e);
    } else {
        rd_kafka_assign(rk, NULL);
    }
}

/* ------------------------------------------------------------------------ */
/* Nacks: seek back after the delay                                          */

static void take_nacks(ksub *s)
{
    pthread_mutex_lock(&s->nack_mu);
    knack *list = s->nacks;
    s->nacks = NULL;
    pthread_mutex_unlock(&s->nack_mu);
    while (list) {
        knack *n = list;
        list = n->next;
        kpart *p = n->part;
        if (n->gen == atomic_load(&p->gen) && atomic_load(&p->assigned)) {
            if (n->offset == p->redeliver_offset) {
                p->redeliver_count++;
            } else {
                p->redeliver_offset = n->offset;
                p->redeliver_count = 1;
            }
            part_advance(p);
            /* Back to the first unfinished offset (the nacked one, or an earlier one
             * still in flight on another lane): nothing after the watermark is lost. */
            int64_t target =
                p->head < p->tail ? p->offs[p->head & FS_KAFKA_RING_MASK] : p->next_offset;
            part_reset(p, target);
            fs__kafka_lanes_drop(s, p);
            tplist *l;
            one_part_list(&l, p, target);
            rd_kafka_pause_partitions(s->rk, l);
            rd_kafka_topic_partition_list_destroy(l);
            p->paused = true;
            p->seek_offset = target;
            p->seek_due_ms = fs__kafka_now_ms() + n->delay_ms;
        }
        free(n);
    }
}

/* Seek the paused partitions whose delay passed; returns ms until the next one is due. */
static unsigned do_seeks(ksub *s)
{
    unsigned next = 100;
    uint64_t now = fs__kafka_now_ms();
    for (kpart *p = s->partitions; p; p = p->next) {
        if (!p->paused)
            continue;
        if (p->seek_due_ms > now) {
            if (p->seek_due_ms - now < next)
                next = (unsigned)(p->seek_due_ms - now);
            continue;
        }
        tplist *l;
        one_part_list(&l, p, p->seek_offset);
        /* Asynchronous: a synchronous seek of a busy paused partition was seen to time out
         * while blocking this thread. The seek is queued before the resume; records of the
         * old position still arriving are dropped until the target comes (awaiting). */
        rd_kafka_error_t *e = rd_kafka_seek_partitions(s->rk, l, 0);
        if (!e)
            rd_kafka_resume_partitions(s->rk, l);
        rd_kafka_topic_partition_list_destroy(l);
        if (e) {
            fs_adapter_log(FS_LOG_WARN, FS_KAFKA_COMPONENT,
                           "%s: seek %s[%d] to %" PRId64 " failed (%s); retrying", s->source,
                           p->topic, (int)p->partition, p->seek_offset, rd_kafka_error_string(e));
            rd_kafka_error_destroy(e);
            p->seek_due_ms = now + 100;
            continue;
        }
        p->paused = false;
        p->awaiting = true;
        p->awaiting_until_ms = now + 5000; /* a target gone (retention, compaction): give up */
    }
    return next;
}

/* ------------------------------------------------------------------------ */
/* The reader                                                               */

static void dispatch(ksub *s, rd_kafka_message_t *m)
{
    if (m->err) {
        if (m->err != RD_KAFKA_RESP_ERR__PARTITION_EOF)
            fs_adapter_log(FS_LOG_WARN, FS_KAFKA_COMPONENT, "%s: consume: %s", s->source,
                           rd_kafka_message_errstr(m));
        rd_kafka_message_destroy(m);
        return;
    }
    const char *topic;
    kpart *p;
    if (m->rkt == s->poll_rkt && m->partition == s->poll_part->partition) {
        p = s->poll_part; /* as the poll's last record: no name compared */
        topic = s->poll_topic;
    } else {
        topic = rd_kafka_topic_name(m->rkt);
        p = find_part(s, topic, m->partition);
        if (p) {
            s->poll_rkt = m->rkt;
            s->poll_part = p;
            s->poll_topic = topic;
        }
    }
    if (p && p->awaiting) {
        if (m->offset == p->seek_offset || fs__kafka_now_ms() > p->awaiting_until_ms)
            p->awaiting = false; /* the seek took effect */
        else
            p = NULL; /* still the old position's records */
    }
    if (!p || !atomic_load_explicit(&p->assigned, memory_order_relaxed) || p->paused ||
        (p->next_offset >= 0 && m->offset < p->next_offset)) {
        rd_kafka_message_destroy(m); /* revoked, or waiting for a seek: it comes again */
        return;
    }
    while (p->tail - p->head >= FS_KAFKA_RING) { /* this partition's ring is full */
        flush_stage(s);
        part_advance(p);
        if (p->tail - p->head < FS_KAFKA_RING)
            break;
        if (atomic_load(&s->stopping)) {
            rd_kafka_message_destroy(m);
            return;
        }
        sleep_ms(1);
    }
    kmsg *r = rec_get(s);
    if (!r) {
        fs_adapter_log(FS_LOG_ERROR, FS_KAFKA_COMPONENT, "%s: out of memory", s->source);
        rd_kafka_message_destroy(m);
        return;
    }
    /* Every public field is set here or by fs__kafka_rec_decode (no fs_message_init:
     * adapter_tag stays 0 from calloc; the core sets its own part when handing out). */
    r->rk = m;
    r->part = p;
    r->gen = atomic_load_explicit(&p->gen, memory_order_relaxed);
    r->seq = p->tail;
    atomic_store_explicit(&r->nacked, 0, memory_order_relaxed);
    uint32_t i = (uint32_t)(p->tail & FS_KAFKA_RING_MASK);
    p->offs[i] = m->offset;
    atomic_store_explicit(&p->state[i], fs__kafka_slot(r->gen, KSLOT_PENDING),
                          memory_order_relaxed);
    p->tail++;
    p->next_offset = m->offset + 1;
    atomic_fetch_add_explicit(&p->inflight, 1, memory_order_relaxed);

    rd_kafka_timestamp_type_t tstype;
    int64_t ts = rd_kafka_message_timestamp(m, &tstype);
    if (ts < 0)
        ts = 0;
    /* The headers: decoded by the worker that takes it (fs__kafka_rec_decode). */
    rec_message_id(s, r, m->offset, ts);
    r->m.body = m->payload ? m->payload : "";
    r->m.body_len = m->len;
    r->m.message_id = r->mid;
    r->m.source = topic;
    r->info = (fs_kafka_message_info){topic, m->partition, m->offset, ts, m->key, m->key_len, m};
    r->m.raw = &r->info;
    r->m.release = fs__kafka_on_release;
    r->m.adapter_data = r;
    r->m.key = m->key;
    r->m.key_len = m->key_len;
    r->m.partition = m->partition;
    r->m.offset = m->offset;
    r->m.content_type = r->m.correlation_id = r->m.reply_to = NULL;
    r->m.headers = NULL;
    r->m.header_count = 0;
    r->m.timestamp_ms = ts;
    r->m.delivery_count = m->offset == p->redeliver_offset ? p->redeliver_count + 1 : 1;
    r->lane = s->order_by_key && m->key
                  ? hash_bytes(m->key, m->key_len, 2166136261u) % s->concurrency
                  : p->lane;
    stage(s, r);
}

static void wait_space(ksub *s)
{
    pthread_mutex_lock(&s->space_mu);
    if (atomic_load(&s->queued) >= FS_KAFKA_QUEUE_MAX && !atomic_load(&s->stopping)) {
        struct timespec ts;
        fs__kafka_deadline(&ts, 50);
        pthread_cond_timedwait(&s->space_cv, &s->space_mu, &ts);
    }
    pthread_mutex_unlock(&s->space_mu);
}

void *fs__kafka_reader_main(void *arg)
{
    ksub *s = arg;
    while (!atomic_load_explicit(&s->stopping, memory_order_acquire)) {
        take_nacks(s);
        unsigned wait = do_seeks(s);
        maybe_commit(s, false);
        if (atomic_load_explicit(&s->queued, memory_order_relaxed) >= FS_KAFKA_QUEUE_MAX) {
            wait_space(s);
            continue;
        }
        unsigned left = s->commit_interval_ms;
        /* Wait for one record, then take what else is there already in one call
         * (consume_batch_queue with no timeout: a timeout would hold the first
         * record until the batch is full). Both serve the rebalance callback. */
        rd_kafka_message_t *v[FS_KAFKA_POLL_BATCH];
        v[0] = rd_kafka_consumer_poll(s->rk, (int)(wait < left ? wait : left));
        if (v[0]) {
            s->poll_rkt = NULL; /* a new poll: its own topic handles */
            ssize_t n =
                s->q ? rd_kafka_consume_batch_queue(s->q, 0, v + 1, FS_KAFKA_POLL_BATCH - 1) : 0;
            for (ssize_t i = 0; i <= n; i++)
                dispatch(s, v[i]);
        }
        flush_stage(s);
    }
    return NULL;
}
