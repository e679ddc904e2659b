/*
 * Redis subscriptions: fetch for the core's workers (through the kit
 * queue), settlement of stream entries and the subscription lifecycle.
 * See internal.h for the threading.
 */
#include "internal.h"
#include "kit/str.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

/* The reader's turn (fs_kit_queue_take): read and queue what came. */
static void read_into_queue(void *ctx, size_t want, int budget_ms)
{
    rsub *s = ctx;
    if (atomic_load_explicit(&s->stopping, memory_order_acquire))
        return;
    rlist l = {NULL, NULL, 0};
    fs__redis_sub_read(s, &l, want, budget_ms);
    if (!l.head)
        return;
    for (rmsg *r = l.head; r; r = r->next)
        r->qn.next = r->next ? &r->next->qn : NULL;
    fs_kit_queue_push_list(&s->q, 0, &l.head->qn, &l.tail->qn, l.n);
}

static int take(rsub *s, fs_message **out, size_t max, unsigned batch_ms, int timeout_ms, size_t *n)
{
    return fs_kit_queue_take(&s->q, 0, out, max, batch_ms, timeout_ms, n, read_into_queue, s);
}

int fs__redis_fetch(void *impl, void *sub, unsigned worker, int timeout_ms, fs_message **out)
{
    (void)impl;
    (void)worker;
    size_t n;
    *out = NULL;
    return take(sub, out, 1, 0, timeout_ms, &n);
}

int fs__redis_fetch_batch(void *impl, void *sub, unsigned worker, fs_message **out, size_t max,
                          unsigned batch_timeout_ms, int timeout_ms, size_t *n)
{
    (void)impl;
    (void)worker;
    return take(sub, out, max, batch_timeout_ms, timeout_ms, n);
}

/* ------------------------------------------------------------------------ */
/* Settlement (streams with a group; other kinds are no_ack)                */

static rsub *msg_sub(fs_message *m)
{
    return fs_message_adapter_sub(m);
}

/* XACK every entry of `m` (a message or a batch) in one command. */
static int xack(rsub *s, fs_message *m, rconn *c)
{
    size_t count = fs_message_count(m);
    int rc = fs__redis_conn_args(c, 3 + count);
    if (rc)
        return rc;
    c->argv[0] = "XACK";
    c->argv[1] = s->name;
    c->argv[2] = s->group;
    size_t argc = 3;
    for (size_t i = 0; i < count; i++) {
        rmsg *r = (rmsg *)fs_message_at(m, i);
        if (r && r->info.entry_id)
            c->argv[argc++] = r->info.entry_id;
    }
    for (size_t i = 0; i < argc; i++)
        c->argvlen[i] = strlen(c->argv[i]);
    redisReply *reply;
    if ((rc = fs__redis_conn_command(c, (int)argc, c->argv, c->argvlen, &reply)))
        return rc;
    rc = fs__redis_reply_error(reply, "XACK");
    if (!rc && reply->type == REDIS_REPLY_INTEGER && (size_t)reply->integer != argc - 3)
        fs_adapter_log(FS_LOG_DEBUG, FS_REDIS_COMPONENT,
                       "stream %s: %lld of %zu entries acknowledged (the others were not pending)",
                       s->name, reply->integer, argc - 3);
    fs__redis_reply_free(reply);
    return rc;
}

/* Copy every entry of `m` to the dead-letter stream (pipelined). */
static int dead_letter(rsub *s, fs_message *m, rconn *c)
{
    size_t count = fs_message_count(m);
    int rc = FS_OK;
    for (size_t i = 0; i < count && !rc; i++) {
        rmsg *r = (rmsg *)fs_message_at(m, i);
        if ((rc = fs__redis_conn_args(c, 3 + 2 * r->field_count + 2)))
            break;
        c->argv[0] = "XADD";
        c->argv[1] = s->dead_letter;
        c->argv[2] = "*";
        size_t argc = 3;
        for (size_t f = 0; f < r->field_count; f++) {
            c->argv[argc] = r->fields[f].key;
            c->argvlen[argc++] = r->fields[f].key_len;
            c->argv[argc] = r->fields[f].value;
            c->argvlen[argc++] = r->fields[f].value_len;
        }
        if (argc == 3) { /* an entry needs a field */
            c->argv[argc] = FS__REDIS_STREAM_FIELD;
            c->argvlen[argc++] = strlen(FS__REDIS_STREAM_FIELD);
            c->argv[argc] = "";
            c->argvlen[argc++] = 0;
        }
        for (size_t k = 0; k < 3; k++)
            c->argvlen[k] = strlen(c->argv[k]);
        rc = fs__redis_conn_send(c, (int)argc, c->argv, c->argvlen);
    }
    if (!rc)
        rc = fs__redis_conn_flush(c);
    return rc ? rc : fs__redis_conn_replies(c, count, REDIS_REPLY_STRING, "XADD (dead letter)");
}

/*
 * Deliver the entries of `m` again once released, no sooner than
 * `delay_ms`: they stay pending. Used for nack, and when an XACK could not
 * be sent or confirmed (connection lost): if it was in fact applied, XCLAIM
 * finds nothing and nothing comes back; otherwise the entry is handled
 * again (at least once).
 */
static void mark_redeliver(fs_message *m, unsigned delay_ms)
{
    size_t count = fs_message_count(m);
    for (size_t i = 0; i < count; i++) {
        rmsg *r = (rmsg *)fs_message_at(m, i);
        r->nacked = true;
        r->delay_ms = delay_ms;
    }
}

static int settle(fs_message *m, bool reject)
{
    rsub *s = msg_sub(m);
    if (!s || !s->grouped)
        return FS_OK;
    int rc;
    rconn *c = fs__redis_pool_get(s->b, &rc);
    if (!c) {
        mark_redeliver(m, 0);
        return rc;
    }
    if (reject && s->dead_letter)
        rc = dead_letter(s, m, c);
    if (!rc)
        rc = xack(s, m, c);
    fs__redis_pool_put(s->b, c);
    if (rc == FS_EIO || rc == FS_ETIMEDOUT)
        mark_redeliver(m, 0);
    return rc;
}

int fs__redis_settle(void *impl, fs_message *m, const fs_settle_args *args)
{
    (void)impl;
    switch (args->op) {
    case FS_SETTLE_ACKED:
        return settle(m, false);
    case FS_SETTLE_REJECTED:
        return settle(m, true);
    case FS_SETTLE_NACKED: {
        rsub *s = msg_sub(m);
        if (s && s->grouped) /* left pending; released, it is claimed back after the delay */
            mark_redeliver(m, args->delay_ms);
        return FS_OK;
    }
    case FS_SETTLE_NONE:
        break;
    }
    return FS_OK;
}

/* ------------------------------------------------------------------------ */
/* Subscription lifecycle                                                   */

static void sub_free(rsub *s)
{
    if (!s)
        return;
    fs__redis_sub_flush(s);
    fs_kit_pool_destroy(&s->pool, fs__redis_rec_fini);
    fs__redis_conn_free(&s->rd);
    fs__redis_scratch_free(&s->scratch);
    free(s->fields);
    free(s->out.slots);
    free(s->out.used);
    free(s->nackq);
    free(s->name);
    free(s->group);
    free(s->consumer);
    free(s->start_id);
    free(s->dead_letter);
    if (s->wake_fd >= 0)
        close(s->wake_fd);
    fs_kit_queue_destroy(&s->q);
    pthread_mutex_destroy(&s->set_mu);
    free(s);
}

int fs__redis_subscribe(void *impl, fs_subscribe_spec *spec, void **sub_out)
{
    redis_broker *b = impl;
    static const fs_redis_subscriber_options defaults = FS_REDIS_SUBSCRIBER_OPTIONS_INIT;
    const fs_redis_subscriber_options *o = spec->broker_options;
    if (!o || spec->reply_inbox)
        o = &defaults;
    FS_CHECK_ARG(spec->source && *spec->source, "redis: empty source name");
    FS_CHECK_ARG(o->kind == FS_REDIS_CHANNEL || o->kind == FS_REDIS_LIST ||
                     o->kind == FS_REDIS_STREAM,
                 "redis: unknown kind %d for %s", (int)o->kind, spec->source);
    FS_CHECK_ARG(!o->pattern || o->kind == FS_REDIS_CHANNEL,
                 "redis: %s: patterns exist for channels only", spec->source);
    FS_CHECK_ARG(o->kind == FS_REDIS_STREAM || (!o->group && !o->consumer && !o->start_id),
                 "redis: %s: group, consumer and start_id are stream options", spec->source);
    FS_CHECK_ARG(o->group || (!o->consumer && !o->claim_min_idle_ms && !o->dead_letter),
                 "redis: %s: consumer, claim_min_idle_ms and dead_letter need a group",
                 spec->source);
    FS_CHECK_ARG(!o->group || *o->group, "redis: %s: empty group name", spec->source);

    rsub *s = calloc(1, sizeof *s);
    if (!s)
        return fs_adapter_error(FS_ENOMEM, "redis: out of memory for a subscription");
    s->b = b;
    s->wake_fd = -1;
    if (fs_kit_queue_init(&s->q, 1) < 0) {
        free(s);
        return FS_ENOMEM;
    }
    fs_kit_pool_init(&s->pool, sizeof(rmsg));
    pthread_mutex_init(&s->set_mu, NULL);
    s->kind = o->kind;
    s->pattern = o->pattern;
    s->grouped = o->kind == FS_REDIS_STREAM && o->group;
    s->reply_inbox = spec->reply_inbox;
    s->claim_min_idle_ms = o->claim_min_idle_ms;
    s->concurrency = spec->concurrency ? spec->concurrency : 1;
    s->name = fs_kit_strdup(spec->source);
    s->name_len = strlen(spec->source);
    s->group = fs_kit_strdup(o->group);
    s->start_id = fs_kit_strdup(o->start_id ? o->start_id : "$");
    s->dead_letter = fs_kit_strdup(o->dead_letter);
    strcpy(s->claim_cursor, "0-0");
    if (s->grouped) {
        if (o->consumer) {
            s->consumer = fs_kit_strdup(o->consumer);
        } else {
            char host[64] = "host", buf[128];
            gethostname(host, sizeof host - 1);
            host[sizeof host - 1] = '\0';
            snprintf(buf, sizeof buf, "%s-%ld-%u", host, (long)getpid(),
                     atomic_fetch_add(&b->consumer_seq, 1) + 1);
            s->consumer = fs_kit_strdup(buf);
        }
    }
    s->wake_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (!s->name || !s->start_id || (o->group && !s->group) || (s->grouped && !s->consumer) ||
        (o->dead_letter && !s->dead_letter) || s->wake_fd < 0) {
        sub_free(s);
        return fs_adapter_error(FS_ENOMEM, "redis: out of memory for a subscription");
    }
    /* Only grouped streams can be acknowledged: nothing is settled on the wire for the rest. */
    spec->no_ack = !s->grouped;
    spec->fixed_source = !s->pattern; /* a list, a stream or a channel by its name */
    pthread_mutex_lock(&b->mu);
    s->next = b->subs;
    b->subs = s;
    pthread_mutex_unlock(&b->mu);
    *sub_out = s;
    return FS_OK;
}

void fs__redis_unsubscribe(void *impl, void *sub)
{
    redis_broker *b = impl;
    rsub *s = sub;
    pthread_mutex_lock(&b->mu);
    for (rsub **pp = &b->subs; *pp; pp = &(*pp)->next) {
        if (*pp == s) {
            *pp = s->next;
            break;
        }
    }
    pthread_mutex_unlock(&b->mu);
    sub_free(s);
}

/* Take the reader role (waiting for the current reader), for setup outside fetch. */
static void reader_acquire(rsub *s)
{
    fs_kit_queue_lead_begin(&s->q);
}

static void reader_release(rsub *s)
{
    fs_kit_queue_lead_end(&s->q);
}

int fs__redis_sub_start(void *impl, void *sub)
{
    (void)impl;
    rsub *s = sub;
    uint64_t v;
    while (read(s->wake_fd, &v, sizeof v) > 0) {
    }
    atomic_store_explicit(&s->stopping, false, memory_order_release);
    fs_kit_queue_open(&s->q);
    reader_acquire(s);
    /* Connect now so that a channel is subscribed before start returns. */
    int rc = fs__redis_reader_ensure(s, true);
    if (!rc && s->grouped) {
        pthread_mutex_lock(&s->set_mu);
        s->need_scan = true;
        strcpy(s->scan_cursor, "0");
        pthread_mutex_unlock(&s->set_mu);
    }
    reader_release(s);
    return rc;
}

void fs__redis_sub_stop(rsub *s)
{
    if (s->reply_inbox)
        return;
    atomic_store_explicit(&s->stopping, true, memory_order_release);
    uint64_t one = 1;
    if (write(s->wake_fd, &one, sizeof one) < 0 && errno != EAGAIN)
        fs_adapter_log(FS_LOG_WARN, FS_REDIS_COMPONENT, "%s: cannot wake the reader: %s", s->name,
                       strerror(errno));
    fs_kit_queue_close(&s->q);
}

/* Give back what was read but not handed out: lists get it back at their head. */
static void requeue_list(rsub *s, rmsg *head, size_t n)
{
    int rc;
    rconn *c = fs__redis_pool_get(s->b, &rc);
    if (c && !(rc = fs__redis_conn_args(c, 2 + n))) {
        c->argv[0] = "LPUSH";
        c->argv[1] = s->name;
        c->argvlen[0] = 5;
        c->argvlen[1] = strlen(s->name);
        size_t i = 2 + n; /* LPUSH inserts one by one at the head: last first */
        for (rmsg *r = head; r; r = r->next) {
            i--;
            c->argv[i] = r->fields[0].value;
            c->argvlen[i] = r->fields[0].value_len;
        }
        redisReply *reply;
        if (!(rc = fs__redis_conn_command(c, (int)(2 + n), c->argv, c->argvlen, &reply))) {
            rc = fs__redis_reply_error(reply, "LPUSH");
            fs__redis_reply_free(reply);
        }
    }
    fs__redis_pool_put(s->b, c);
    if (rc)
        fs_adapter_log(FS_LOG_ERROR, FS_REDIS_COMPONENT,
                       "list %s: %zu popped message(s) could not be pushed back: %s", s->name, n,
                       fs_last_error());
}

void fs__redis_sub_flush(rsub *s)
{
    size_t n;
    fs_kit_qnode *qn = fs_kit_queue_drain(&s->q, &n);
    if (!qn)
        return;
    rmsg *head = NULL, **tail = &head; /* back to a list of records, in queue order */
    for (; qn; qn = qn->next) {
        *tail = (rmsg *)qn->msg;
        tail = &(*tail)->next;
    }
    *tail = NULL;
    if (s->kind == FS_REDIS_LIST)
        requeue_list(s, head, n);
    else if (s->kind == FS_REDIS_CHANNEL)
        fs_adapter_log(FS_LOG_DEBUG, FS_REDIS_COMPONENT,
                       "channel %s: %zu unhandled message(s) dropped", s->name, n);
    if (s->grouped) { /* still pending on the server: read again after the next start */
        pthread_mutex_lock(&s->set_mu);
        s->need_scan = true;
        strcpy(s->scan_cursor, "0");
        pthread_mutex_unlock(&s->set_mu);
    }
    while (head) {
        rmsg *next = head->next;
        fs__redis_rec_release(&head->m);
        head = next;
    }
}

void fs__redis_sub_close(rsub *s)
{
    fs_kit_queue_close(&s->q);
    fs__redis_sub_flush(s);
    reader_acquire(s);
    fs__redis_conn_close(&s->rd);
    reader_release(s);
}
