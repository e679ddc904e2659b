/*
 * Subscriptions: options, the consumer's life (start, stop, finish),
 * fetching from worker lanes, settlement and consumer lag. The reader
 * thread is in reader.c.
 */
#include "internal.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/* ------------------------------------------------------------------------ */
/* Creation                                                                 */

static void sub_free(ksub *s)
{
    if (!s)
        return;
    for (size_t i = 0; i < s->topic_count; i++)
        free(s->topics[i]);
    free(s->topics);
    for (size_t i = 0; i < s->part_count; i++)
        free((char *)s->parts[i].topic);
    free(s->parts);
    free(s->source);
    free(s->group);
    free(s->dead_letter);
    if (s->conf)
        rd_kafka_conf_destroy(s->conf);
    while (s->partitions) {
        kpart *p = s->partitions;
        s->partitions = p->next;
        free(p->topic);
        free(p);
    }
    kmsg *r = atomic_load(&s->free_stack);
    while (r) {
        kmsg *n = r->next;
        fs__kafka_rec_free(r);
        r = n;
    }
    for (r = s->free_local; r;) {
        kmsg *n = r->next;
        fs__kafka_rec_free(r);
        r = n;
    }
    while (s->nacks) {
        knack *n = s->nacks;
        s->nacks = n->next;
        free(n);
    }
    if (s->lanes) {
        for (unsigned i = 0; i < s->concurrency; i++) {
            pthread_mutex_destroy(&s->lanes[i].mu);
            pthread_cond_destroy(&s->lanes[i].cv);
        }
        free(s->lanes);
    }
    free(s->stage);
    pthread_mutex_destroy(&s->space_mu);
    pthread_cond_destroy(&s->space_cv);
    pthread_mutex_destroy(&s->nack_mu);
    pthread_mutex_destroy(&s->rk_mu);
    free(s);
}

/* Split "a,b,c" (or a pattern: one entry, '^' added) into s->topics. */
static int parse_topics(ksub *s, const char *source)
{
    size_t n = 1;
    if (!s->pattern)
        for (const char *c = source; *c; c++)
            n += *c == ',';
    s->topics = calloc(n, sizeof *s->topics);
    if (!s->topics)
        return fs_adapter_error(FS_ENOMEM, "kafka: out of memory");
    if (s->pattern) {
        size_t len = strlen(source);
        char *t = malloc(len + 2);
        if (!t)
            return fs_adapter_error(FS_ENOMEM, "kafka: out of memory");
        t[0] = '^';
        memcpy(t + (source[0] != '^'), source, len + 1);
        s->topics[s->topic_count++] = t;
        return FS_OK;
    }
    const char *p = source;
    while (*p) {
        const char *e = strchr(p, ',');
        size_t len = e ? (size_t)(e - p) : strlen(p);
        if (!len || len > 249)
            return fs_adapter_error(FS_EINVAL,
                                    "kafka: bad topic list '%s' (empty or too long name)", source);
        if (!(s->topics[s->topic_count++] = strndup(p, len)))
            return fs_adapter_error(FS_ENOMEM, "kafka: out of memory");
        p += len + (e != NULL);
        if (e && !*p)
            return fs_adapter_error(FS_EINVAL, "kafka: bad topic list '%s' (trailing comma)",
                                    source);
    }
    return FS_OK;
}

static int sub_options(ksub *s, const fs_kafka_subscriber_options *o)
{
    kafka_broker *b = s->b;
    const char *group = o && o->group_id ? o->group_id : b->group;
    if (group && *group && !(s->group = strdup(group)))
        return fs_adapter_error(FS_ENOMEM, "kafka: out of memory");
    if (!o)
        return FS_OK;
    if (o->start < FS_KAFKA_START_DEFAULT || o->start > FS_KAFKA_START_TIMESTAMP)
        return fs_adapter_error(FS_EINVAL, "kafka: %s: unknown start %d", s->source, (int)o->start);
    s->start = o->start;
    s->start_value = o->start_value;
    s->order_by_key = o->order_by_key;
    if (o->commit_interval_ms)
        s->commit_interval_ms = o->commit_interval_ms;
    if (o->commit_every)
        s->commit_every = o->commit_every;
    if (o->dead_letter && !(s->dead_letter = strdup(o->dead_letter)))
        return fs_adapter_error(FS_ENOMEM, "kafka: out of memory");
    if (o->partition_count) {
        if (!o->partitions || s->pattern)
            return fs_adapter_error(FS_EINVAL, "kafka: %s: explicit partitions %s", s->source,
                                    s->pattern ? "and a pattern exclude each other"
                                               : "are NULL with a count");
        s->parts = calloc(o->partition_count, sizeof *s->parts);
        if (!s->parts)
            return fs_adapter_error(FS_ENOMEM, "kafka: out of memory");
        for (size_t i = 0; i < o->partition_count; i++) {
            const fs_kafka_partition *p = &o->partitions[i];
            const char *t = p->topic ? p->topic : s->topics[0];
            if (p->partition < 0)
                return fs_adapter_error(FS_EINVAL, "kafka: %s: partition %d is negative", s->source,
                                        (int)p->partition);
            if (!(s->parts[i].topic = strdup(t)))
                return fs_adapter_error(FS_ENOMEM, "kafka: out of memory");
            s->parts[i].partition = p->partition;
            s->part_count++;
        }
    }
    if (s->group && !s->parts &&
        (s->start == FS_KAFKA_START_OFFSET || s->start == FS_KAFKA_START_TIMESTAMP))
        return fs_adapter_error(FS_EINVAL,
                                "kafka: %s: a group subscription starts at the committed offset or "
                                "earliest/latest; an offset or timestamp needs explicit partitions",
                                s->source);
    return FS_OK;
}

int fs__kafka_subscribe(void *impl, fs_subscribe_spec *spec, void **sub_out)
{
    kafka_broker *b = impl;
    const fs_kafka_subscriber_options *o = spec->broker_options;
    if (!spec->source || !*spec->source)
        return fs_adapter_error(FS_EINVAL, "kafka: subscribe needs a topic");
    ksub *s = calloc(1, sizeof *s);
    if (!s)
        return fs_adapter_error(FS_ENOMEM, "kafka: out of memory");
    s->b = b;
    s->mid_ts = s->mid_off = INT64_MIN; /* no timestamp or offset formatted yet */
    pthread_mutex_init(&s->space_mu, NULL);
    pthread_cond_init(&s->space_cv, NULL);
    pthread_mutex_init(&s->nack_mu, NULL);
    pthread_mutex_init(&s->rk_mu, NULL);
    s->concurrency = spec->concurrency ? spec->concurrency : 1;
    s->policy = spec->ack_policy;
    s->reply_inbox = spec->reply_inbox;
    s->pattern = o && o->pattern;
    s->commit_interval_ms = b->commit_interval_ms;
    s->commit_every = b->commit_every;
    int rc = (s->source = strdup(spec->source))
                 ? FS_OK
                 : fs_adapter_error(FS_ENOMEM, "kafka: out of memory");
    if (!rc)
        rc = parse_topics(s, spec->source);
    if (!rc && !s->reply_inbox)
        rc = sub_options(s, o);
    if (!rc && s->reply_inbox)
        s->start = FS_KAFKA_START_EARLIEST; /* a fresh topic of its own: read it all */
    if (!rc && s->pattern && !s->group)
        rc = fs_adapter_error(FS_EINVAL, "kafka: %s: a pattern subscription needs a group_id",
                              s->source);
    if (!rc && (!(s->lanes = calloc(s->concurrency, sizeof *s->lanes)) ||
                !(s->stage = calloc(s->concurrency, sizeof *s->stage))))
        rc = fs_adapter_error(FS_ENOMEM, "kafka: out of memory");
    for (unsigned i = 0; !rc && i < s->concurrency; i++) {
        pthread_mutex_init(&s->lanes[i].mu, NULL);
        pthread_cond_init(&s->lanes[i].cv, NULL);
    }
    const fs_kafka_config *extra = o && !s->reply_inbox ? o->config : NULL;
    size_t extra_n = o && !s->reply_inbox ? o->config_count : 0;
    if (!rc)
        rc = fs__kafka_conf(b, true, extra, extra_n, &s->conf);
    if (!rc && s->group) {
        rc = fs__kafka_conf_set(s->conf, "group.id", s->group);
    } else if (!rc) {
        /* librdkafka's assign() needs a group id even when nothing joins or commits. */
        static _Atomic unsigned seq;
        char g[96];
        snprintf(g, sizeof g, "faststream-c-nogroup-%ld-%u", (long)getpid(),
                 atomic_fetch_add(&seq, 1));
        rc = fs__kafka_conf_set(s->conf, "group.id", g);
    }
    if (!rc && (s->start == FS_KAFKA_START_EARLIEST || s->start == FS_KAFKA_START_LATEST))
        rc = fs__kafka_conf_set(s->conf, "auto.offset.reset",
                                s->start == FS_KAFKA_START_EARLIEST ? "earliest" : "latest");
    if (rc) {
        sub_free(s);
        return rc;
    }
    /* FastStream's status rules: auto-commit counts every message acked; with manual
     * commits an explicit reject is a commit (acked) while settle still gets REJECTED. */
    if (s->policy == FS_ACK_POLICY_ACK_FIRST && !s->reply_inbox)
        spec->presettled = FS_SETTLE_ACKED;
    else
        spec->settle_as[FS_SETTLE_REJECTED] = FS_SETTLE_ACKED;
    /* one topic by name (not a list, not a pattern): every record has that topic */
    spec->fixed_source = !s->pattern && s->topic_count == 1;
    pthread_mutex_lock(&b->mu);
    s->next = b->subs;
    b->subs = s;
    pthread_mutex_unlock(&b->mu);
    *sub_out = s;
    return FS_OK;
}

ksub *fs__kafka_find_sub(kafka_broker *b, const char *source)
{
    pthread_mutex_lock(&b->mu);
    ksub *s = b->subs;
    while (s && (s->reply_inbox || strcmp(s->source, source) != 0))
        s = s->next;
    pthread_mutex_unlock(&b->mu);
    return s;
}

void fs__kafka_unsubscribe(void *impl, void *sub)
{
    kafka_broker *b = impl;
    ksub *s = sub;
    fs__kafka_sub_stop(s);
    fs__kafka_sub_finish(s);
    pthread_mutex_lock(&b->mu);
    for (ksub **pp = &b->subs; *pp; pp = &(*pp)->next)
        if (*pp == s) {
            *pp = s->next;
            break;
        }
    pthread_mutex_unlock(&b->mu);
    sub_free(s);
}

/* ------------------------------------------------------------------------ */
/* Starting                                                                 */

static int64_t start_offset(const ksub *s)
{
    switch (s->start) {
    case FS_KAFKA_START_EARLIEST:
        return s->group && s->parts ? RD_KAFKA_OFFSET_STORED : RD_KAFKA_OFFSET_BEGINNING;
    case FS_KAFKA_START_OFFSET:
        return s->start_value;
    case FS_KAFKA_START_TIMESTAMP:
        return s->start_value; /* resolved by offsets_for_times */
    default:
        return s->group ? RD_KAFKA_OFFSET_STORED : RD_KAFKA_OFFSET_END;
    }
}

/* The partitions to assign without a group rebalance: explicit, or all of the topics. */
static int manual_list(ksub *s, rd_kafka_topic_partition_list_t **out)
{
    kafka_broker *b = s->b;
    rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(8);
    int64_t off = start_offset(s);
    int rc = FS_OK;
    if (s->parts) {
        for (size_t i = 0; i < s->part_count; i++)
            rd_kafka_topic_partition_list_add(l, s->parts[i].topic, s->parts[i].partition)->offset =
                off;
    } else {
        /* The producer's metadata request creates a missing topic where the cluster allows. */
        for (size_t t = 0; t < s->topic_count && !rc; t++) {
            const rd_kafka_metadata_t *md = NULL;
            rc = fs__kafka_metadata(b, b->producer, s->topics[t], b->connect_timeout_ms, &md);
            if (!rc && (md->topic_cnt < 1 || md->topics[0].err || !md->topics[0].partition_cnt))
                rc = fs_adapter_error(FS_ENOTFOUND, "kafka: topic %s: %s", s->topics[t],
                                      md->topic_cnt ? rd_kafka_err2str(md->topics[0].err)
                                                    : "not in the metadata");
            for (int i = 0; !rc && i < md->topics[0].partition_cnt; i++)
                rd_kafka_topic_partition_list_add(l, s->topics[t], md->topics[0].partitions[i].id)
                    ->offset = off;
            if (md)
                rd_kafka_metadata_destroy(md);
        }
    }
    if (!rc && s->start == FS_KAFKA_START_TIMESTAMP) {
        rd_kafka_resp_err_t e = rd_kafka_offsets_for_times(s->rk, l, b->connect_timeout_ms);
        if (e)
            rc = fs_adapter_error(fs__kafka_status(e),
                                  "kafka: %s: offsets for timestamp %" PRId64 ": %s", s->source,
                                  s->start_value, rd_kafka_err2str(e));
    }
    if (rc) {
        rd_kafka_topic_partition_list_destroy(l);
        return rc;
    }
    *out = l;
    return FS_OK;
}

int fs__kafka_sub_start(void *impl, void *sub)
{
    (void)impl;
    ksub *s = sub;
    kafka_broker *b = s->b;
    if (s->reader_running)
        return FS_OK;
    if (!b->producer)
        return fs_adapter_error(FS_ESTATE, "kafka: %s: not connected", s->source);
    rd_kafka_conf_t *c = rd_kafka_conf_dup(s->conf);
    rd_kafka_conf_set_opaque(c, s);
    if (s->group && !s->parts)
        rd_kafka_conf_set_rebalance_cb(c, fs__kafka_on_rebalance);
    char err[512];
    rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_CONSUMER, c, err, sizeof err);
    if (!rk) {
        rd_kafka_conf_destroy(c);
        return fs_adapter_error(FS_EINVAL, "kafka: %s: cannot create the consumer: %s", s->source,
                                err);
    }
    rd_kafka_poll_set_consumer(rk);
    s->q = rd_kafka_queue_get_consumer(rk);
    pthread_mutex_lock(&s->rk_mu);
    s->rk = rk;
    pthread_mutex_unlock(&s->rk_mu);
    atomic_store(&s->stopping, false);
    atomic_store(&s->next_worker, 0);
    s->last_commit_ms = fs__kafka_now_ms();
    int rc = FS_OK;
    if (s->group && !s->parts) {
        rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new((int)s->topic_count);
        for (size_t i = 0; i < s->topic_count; i++)
            rd_kafka_topic_partition_list_add(l, s->topics[i], RD_KAFKA_PARTITION_UA);
        rd_kafka_resp_err_t e = rd_kafka_subscribe(rk, l);
        rd_kafka_topic_partition_list_destroy(l);
        if (e)
            rc = fs_adapter_error(fs__kafka_status(e), "kafka: subscribe to %s: %s", s->source,
                                  rd_kafka_err2str(e));
    } else {
        rd_kafka_topic_partition_list_t *l = NULL;
        rc = manual_list(s, &l);
        if (!rc) {
            fs__kafka_assign_parts(s, l);
            rd_kafka_resp_err_t e = rd_kafka_assign(rk, l);
            if (e)
                rc = fs_adapter_error(fs__kafka_status(e), "kafka: assign %s: %s", s->source,
                                      rd_kafka_err2str(e));
            rd_kafka_topic_partition_list_destroy(l);
        }
    }
    if (!rc && pthread_create(&s->reader, NULL, fs__kafka_reader_main, s))
        rc = fs_adapter_error(FS_ENOMEM, "kafka: %s: cannot start the reader thread", s->source);
    if (rc) {
        pthread_mutex_lock(&s->rk_mu);
        s->rk = NULL;
        pthread_mutex_unlock(&s->rk_mu);
        if (s->q)
            rd_kafka_queue_destroy(s->q);
        s->q = NULL;
        rd_kafka_destroy(rk);
        return rc;
    }
    s->reader_running = true;
    return FS_OK;
}

void fs__kafka_sub_stop(ksub *s)
{
    atomic_store_explicit(&s->stopping, true, memory_order_release);
    for (unsigned i = 0; i < s->concurrency; i++) {
        pthread_mutex_lock(&s->lanes[i].mu);
        pthread_cond_broadcast(&s->lanes[i].cv);
        pthread_mutex_unlock(&s->lanes[i].mu);
    }
    pthread_mutex_lock(&s->space_mu);
    pthread_cond_broadcast(&s->space_cv);
    pthread_mutex_unlock(&s->space_mu);
}

/* After the workers exited: stop the reader, commit, leave the group, free the consumer. */
void fs__kafka_sub_finish(ksub *s)
{
    if (!s->reader_running)
        return;
    fs__kafka_sub_stop(s);
    pthread_join(s->reader, NULL);
    s->reader_running = false;
    fs__kafka_lanes_drop(s, NULL);
    fs__kafka_commit(s, NULL, 0);
    if (s->q)
        rd_kafka_queue_destroy(s->q);
    s->q = NULL;
    /* Leaving the group runs the revoke callback here (nothing is in flight any more). */
    rd_kafka_consumer_close(s->rk);
    pthread_mutex_lock(&s->rk_mu);
    rd_kafka_t *rk = s->rk;
    s->rk = NULL;
    pthread_mutex_unlock(&s->rk_mu);
    rd_kafka_destroy(rk);
    for (kpart *p = s->partitions; p; p = p->next)
        atomic_store(&p->assigned, false);
}

/* ------------------------------------------------------------------------ */
/* Fetching                                                                 */

static fs_message *handed_out(ksub *s, kmsg *r)
{
    if (s->policy == FS_ACK_POLICY_ACK_FIRST || s->reply_inbox) {
        /* Committed as handed out, whatever the handler does. */
        uint32_t want = fs__kafka_slot(r->gen, KSLOT_PENDING);
        atomic_compare_exchange_strong_explicit(&r->part->state[r->seq & FS_KAFKA_RING_MASK], &want,
                                                fs__kafka_slot(r->gen, KSLOT_DONE),
                                                memory_order_release, memory_order_relaxed);
    }
    return &r->m;
}

/* A record behind a nack of its partition: it comes again after the seek. */
static bool stale(const kmsg *r)
{
    uint32_t fence = atomic_load_explicit(&r->part->fence, memory_order_acquire);
    return (int32_t)(r->gen - fence) < 0;
}

/*
 * Take up to `max` records from a lane into out[] (one lock for all of
 * them), waiting up to timeout_ms (< 0: an hour) for the first when the lane
 * is empty; the clock is read only when there is something to wait for.
 */
static size_t lane_pop(ksub *s, klane *l, fs_message **out, size_t max, int timeout_ms, int *rc)
{
    kmsg *dropped = NULL;
    size_t n = 0, taken = 0;
    bool have_deadline = false;
    struct timespec ts;
    *rc = FS_OK;
    pthread_mutex_lock(&l->mu);
    for (;;) {
        if (atomic_load_explicit(&s->stopping, memory_order_acquire)) {
            *rc = FS_ECLOSED;
            break;
        }
        kmsg *r;
        while (n < max && (r = l->head)) {
            l->head = r->next;
            l->len--;
            taken++;
            if (stale(r)) {
                r->next = dropped;
                dropped = r;
            } else {
                out[n++] = handed_out(s, r);
            }
        }
        if (!l->head)
            l->tail = NULL;
        if (n || !timeout_ms)
            break;
        if (!have_deadline) {
            fs__kafka_deadline(&ts, timeout_ms < 0 ? 3600000 : timeout_ms);
            have_deadline = true;
        }
        if (pthread_cond_timedwait(&l->cv, &l->mu, &ts) && !l->head) {
            *rc = FS_ETIMEDOUT;
            break;
        }
    }
    pthread_mutex_unlock(&l->mu);
    for (size_t i = 0; i < n; i++)
        fs__kafka_rec_decode(out[i]->adapter_data);
    if (taken)
        fs__kafka_queued_sub(s, taken);
    while (dropped) {
        kmsg *d = dropped;
        dropped = d->next;
        fs__kafka_rec_release(d, KREL_AGAIN);
    }
    if (n)
        *rc = FS_OK;
    else if (!*rc)
        *rc = FS_ETIMEDOUT;
    return n;
}

int fs__kafka_fetch(void *impl, void *sub, unsigned worker, int timeout_ms, fs_message **out)
{
    (void)impl;
    ksub *s = sub;
    int rc;
    lane_pop(s, &s->lanes[worker % s->concurrency], out, 1, timeout_ms, &rc);
    return rc;
}

int fs__kafka_fetch_batch(void *impl, void *sub, unsigned worker, fs_message **out, size_t max,
                          unsigned batch_timeout_ms, int timeout_ms, size_t *n)
{
    (void)impl;
    ksub *s = sub;
    klane *l = &s->lanes[worker % s->concurrency];
    int rc;
    *n = lane_pop(s, l, out, max, timeout_ms, &rc);
    if (!*n)
        return rc;
    if (*n < max && batch_timeout_ms) {
        /* The rest of the batch: what comes within batch_timeout_ms of the first. */
        uint64_t until = fs__kafka_now_ms() + batch_timeout_ms;
        for (;;) {
            uint64_t now = fs__kafka_now_ms();
            if (*n >= max || now >= until)
                break;
            size_t k = lane_pop(s, l, out + *n, max - *n, (int)(until - now), &rc);
            if (!k)
                break;
            *n += k;
        }
    }
    return FS_OK; /* stopping: the batch taken is handled */
}

/* ------------------------------------------------------------------------ */
/* Settlement                                                               */

static int dead_letter(ksub *s, kmsg *r, const char *reason)
{
    const rd_kafka_message_t *m = r->rk;
    rd_kafka_headers_t *hs = rd_kafka_headers_new(r->m.header_count + 4);
    if (!hs)
        return fs_adapter_error(FS_ENOMEM, "kafka: out of memory");
    for (size_t i = 0; i < r->m.header_count; i++)
        rd_kafka_header_add(hs, r->m.headers[i].name, -1, r->m.headers[i].value,
                            (ssize_t)r->m.headers[i].value_len);
    char num[24];
    rd_kafka_header_add(hs, "x-original-topic", -1, r->info.topic, -1);
    snprintf(num, sizeof num, "%d", (int)m->partition);
    rd_kafka_header_add(hs, "x-original-partition", -1, num, -1);
    snprintf(num, sizeof num, "%" PRId64, m->offset);
    rd_kafka_header_add(hs, "x-original-offset", -1, num, -1);
    rd_kafka_header_add(hs, "x-error", -1, reason ? reason : "rejected", -1);
    const char *etype;
    int rc = fs__kafka_produce_raw(s->b, s->dead_letter, m->key, m->key_len, m->payload, m->len, hs,
                                   &etype);
    if (rc)
        fs_adapter_log(FS_LOG_ERROR, FS_KAFKA_COMPONENT,
                       "%s: dead-lettering %s[%d]@%" PRId64 " to %s failed: %s; it will be "
                       "delivered again",
                       s->source, r->info.topic, (int)m->partition, m->offset, s->dead_letter,
                       fs_last_error());
    return rc;
}

static void nack(ksub *s, kmsg *r, unsigned delay_ms)
{
    atomic_store(&r->nacked, 1);
    /* Nothing after it on its partition is handed out until the seek. */
    uint32_t want = r->gen + 1, cur = atomic_load(&r->part->fence);
    while ((int32_t)(cur - want) < 0 && !atomic_compare_exchange_weak(&r->part->fence, &cur, want))
        ;
    knack *n = malloc(sizeof *n);
    if (!n) { /* not finished: it comes again with the next seek or on the next owner */
        fs_adapter_log(FS_LOG_ERROR, FS_KAFKA_COMPONENT, "%s: out of memory nacking", s->source);
        return;
    }
    *n = (knack){r->part, r->gen, r->info.offset, delay_ms, NULL};
    pthread_mutex_lock(&s->nack_mu);
    n->next = s->nacks;
    s->nacks = n;
    pthread_mutex_unlock(&s->nack_mu);
}

int fs__kafka_settle(void *impl, fs_message *m, fs_settle_state op, unsigned delay_ms,
                     const char *reason)
{
    (void)impl;
    size_t count = fs_message_count(m);
    int rc = FS_OK;
    for (size_t i = 0; i < count; i++) {
        fs_message *one = count == 1 && !fs_message_is_batch(m) ? m : fs_message_at(m, i);
        kmsg *r = one->adapter_data;
        ksub *s = r->sub;
        if (s->policy == FS_ACK_POLICY_ACK_FIRST || s->reply_inbox)
            continue; /* committed when handed out: nack and reject change nothing */
        if (op == FS_SETTLE_NACKED) {
            nack(s, r, delay_ms);
        } else if (op == FS_SETTLE_REJECTED && s->dead_letter) {
            int e = dead_letter(s, r, reason ? reason : fs_message_error_type(one));
            if (e) {
                nack(s, r, 0);
                if (!rc)
                    rc = e;
            }
        }
        /* ACKED, REJECTED: committed once released, in offset order. */
    }
    return rc;
}

/* ------------------------------------------------------------------------ */
/* Consumer lag                                                             */

/*
 * Cheap (the backlog op, asked at every scrape): librdkafka's cached high
 * watermarks (from the last fetch responses) minus the consumer positions,
 * no round trip. Exact (fs_kafka_lag): high watermarks and committed offsets
 * asked from the cluster.
 */
int fs__kafka_lag_of(ksub *s, bool exact, int timeout_ms, uint64_t *out)
{
    *out = 0;
    pthread_mutex_lock(&s->rk_mu);
    int rc = FS_OK;
    rd_kafka_topic_partition_list_t *l = NULL;
    if (!s->rk) {
        rc = fs_adapter_error(FS_ESTATE, "kafka: %s is not running", s->source);
        goto out;
    }
    rd_kafka_resp_err_t e = rd_kafka_assignment(s->rk, &l);
    bool committed = exact && s->group;
    if (!e && l->cnt)
        e = committed ? rd_kafka_committed(s->rk, l, timeout_ms) : rd_kafka_position(s->rk, l);
    if (e) {
        rc = fs_adapter_error(fs__kafka_status(e), "kafka: lag of %s: %s", s->source,
                              rd_kafka_err2str(e));
        goto out;
    }
    uint64_t sum = 0;
    for (int i = 0; i < l->cnt; i++) {
        int64_t lo = -1, hi = -1;
        const rd_kafka_topic_partition_t *tp = &l->elems[i];
        e = exact ? rd_kafka_query_watermark_offsets(s->rk, tp->topic, tp->partition, &lo, &hi,
                                                     timeout_ms)
                  : rd_kafka_get_watermark_offsets(s->rk, tp->topic, tp->partition, &lo, &hi);
        if (e) {
            rc = fs_adapter_error(fs__kafka_status(e), "kafka: lag of %s: watermarks of %s[%d]: %s",
                                  s->source, tp->topic, (int)tp->partition, rd_kafka_err2str(e));
            goto out;
        }
        int64_t from = tp->offset >= 0 ? tp->offset : lo;
        if (hi > from && from >= 0)
            sum += (uint64_t)(hi - from);
    }
    *out = sum;
out:
    if (l)
        rd_kafka_topic_partition_list_destroy(l);
    pthread_mutex_unlock(&s->rk_mu);
    return rc;
}

int fs__kafka_backlog(void *impl, void *sub, int timeout_ms, uint64_t *out)
{
    (void)impl;
    return fs__kafka_lag_of(sub, false, timeout_ms, out);
}

void fs__kafka_on_release(fs_message *m)
{
    /* Settled (acked, or rejected = committed): done; unsettled: skipped. */
    fs__kafka_rec_release(m->adapter_data,
                          fs_message_settled(m) == FS_SETTLE_NONE ? KREL_SKIPPED : KREL_DONE);
}
