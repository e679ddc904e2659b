/*
 * The reader connection of a subscription: connecting and preparing it,
 * and reading channels, lists and streams (with and without a group:
 * pending entries, nacked entries due again, XAUTOCLAIM). See internal.h.
 */
#include "internal.h"

#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int reader_command(rsub *s, int argc, const char **argv, redisReply **out)
{
    return fs__redis_conn_command(&s->rd, argc, argv, NULL, out);
}

static int ensure_group(rsub *s)
{
    const char *argv[] = {"XGROUP", "CREATE", s->name, s->group, s->start_id, "MKSTREAM"};
    redisReply *r;
    int rc = reader_command(s, 6, argv, &r);
    if (rc)
        return rc;
    if (r->type == REDIS_REPLY_ERROR && strncmp(r->str, "BUSYGROUP", 9) == 0)
        rc = FS_OK;
    else
        rc = fs__redis_reply_error(r, "XGROUP CREATE");
    fs__redis_reply_free(r);
    return rc;
}

/* Subscribe / create the group / find where to start, on a fresh connection. */
static int reader_prepare(rsub *s)
{
    redisReply *r = NULL;
    int rc = FS_OK;
    switch (s->kind) {
    case FS_REDIS_CHANNEL: {
        const char *argv[] = {s->pattern ? "PSUBSCRIBE" : "SUBSCRIBE", s->name};
        if ((rc = reader_command(s, 2, argv, &r)))
            return rc;
        rc = fs__redis_reply_error(r, argv[0]);
        if (!rc &&
            (r->type != REDIS_REPLY_ARRAY || r->elements < 1 || !fs__redis_is_str(r->element[0])))
            rc = fs_adapter_error(FS_EPROTOCOL, "redis: unexpected reply to %s", argv[0]);
        break;
    }
    case FS_REDIS_LIST:
        return FS_OK;
    case FS_REDIS_STREAM:
        if (s->grouped) {
            if ((rc = ensure_group(s)))
                return rc;
            pthread_mutex_lock(&s->set_mu);
            s->need_scan = true;
            strcpy(s->scan_cursor, "0");
            pthread_mutex_unlock(&s->set_mu);
            return FS_OK;
        }
        if (s->last_id[0])
            return FS_OK;
        if (strcmp(s->start_id, "$") != 0) {
            snprintf(s->last_id, sizeof s->last_id, "%s", s->start_id);
            return FS_OK;
        }
        {
            const char *argv[] = {"XREVRANGE", s->name, "+", "-", "COUNT", "1"};
            if ((rc = reader_command(s, 6, argv, &r)))
                return rc;
            if ((rc = fs__redis_reply_error(r, "XREVRANGE")))
                break;
            if (r->type == REDIS_REPLY_ARRAY && r->elements == 1 &&
                r->element[0]->type == REDIS_REPLY_ARRAY && r->element[0]->elements >= 1 &&
                fs__redis_is_str(r->element[0]->element[0]))
                snprintf(s->last_id, sizeof s->last_id, "%s", r->element[0]->element[0]->str);
            else
                strcpy(s->last_id, "0-0");
        }
        break;
    }
    fs__redis_reply_free(r);
    return rc;
}

/* Make sure the reader is connected and prepared; back off after failures. */
int fs__redis_reader_ensure(rsub *s, bool force)
{
    if (s->rd.c)
        return FS_OK;
    uint64_t now = fs_kit_now_ms();
    if (!force && now < s->retry_at_ms)
        return FS_ETIMEDOUT;
    int rc = fs__redis_conn_open(s->b, &s->rd);
    if (!rc) /* blocking reads wait up to FS_REDIS_BLOCK_MAX_MS for the server */
        rc = fs__redis_conn_set_timeout(&s->rd, s->b->command_timeout_ms + FS_REDIS_BLOCK_MAX_MS);
    if (!rc) /* replies held at once: one per worker's message, one queued, one being read */
        rc = fs__redis_conn_reserve_replies(&s->rd, (size_t)s->concurrency + 2);
    if (!rc)
        rc = reader_prepare(s);
    if (rc) {
        fs__redis_conn_close(&s->rd);
        s->backoff_ms = s->backoff_ms ? s->backoff_ms * 2 : FS_REDIS_BACKOFF_MIN_MS;
        if (s->backoff_ms > FS_REDIS_BACKOFF_MAX_MS)
            s->backoff_ms = FS_REDIS_BACKOFF_MAX_MS;
        s->retry_at_ms = now + s->backoff_ms;
        if (!s->down_logged && !force) {
            fs_adapter_log(FS_LOG_WARN, FS_REDIS_COMPONENT, "%s %s: %s; reconnecting with backoff",
                           fs_redis_kind_name(s->kind), s->name, fs_last_error());
            s->down_logged = true;
        }
        return rc;
    }
    if (s->down_logged)
        fs_adapter_log(FS_LOG_INFO, FS_REDIS_COMPONENT, "%s %s: reconnected to %s, resuming",
                       fs_redis_kind_name(s->kind), s->name, s->rd.where);
    s->down_logged = false;
    s->backoff_ms = 0;
    return FS_OK;
}

/* The reader's connection failed: log it once, retry soon. */
static void reader_lost(rsub *s)
{
    fs__redis_conn_close(&s->rd);
    if (!s->down_logged) {
        fs_adapter_log(FS_LOG_WARN, FS_REDIS_COMPONENT, "%s %s: %s; reconnecting",
                       fs_redis_kind_name(s->kind), s->name, fs_last_error());
        s->down_logged = true;
    }
    if (!s->backoff_ms)
        s->retry_at_ms = fs_kit_now_ms(); /* the first retry is immediate */
}

/* Wait up to `ms` (or until stopped) without reading. */
static void pause_ms(rsub *s, int ms)
{
    if (ms <= 0)
        return;
    struct pollfd p = {s->wake_fd, POLLIN, 0};
    poll(&p, 1, ms);
}

static int block_ms(int budget)
{
    return budget < 1 ? 1 : budget > FS_REDIS_BLOCK_MAX_MS ? FS_REDIS_BLOCK_MAX_MS : budget;
}

/* A reply of the wrong shape (check.c): drop it and the connection, which is reconnected. */
static int malformed(rsub *s, redisReply *r, int rc)
{
    fs__redis_reply_free(r);
    fs__redis_conn_close(&s->rd);
    return rc;
}

/*
 * Send a blocking command (blocking at most `block` ms server-side) and wait
 * for its reply: never abandoned, it may carry messages. The socket's
 * command timeout (longer than any block) bounds the wait.
 */
static int reader_await(rsub *s, int rc, redisReply **out)
{
    if (!rc)
        rc = fs__redis_conn_flush(&s->rd);
    if (!rc)
        rc = fs__redis_conn_get(&s->rd, out);
    if (rc == FS_ETIMEDOUT) /* the server did not answer: the connection was dropped */
        rc = FS_EIO;
    return rc;
}

static int reader_blocking(rsub *s, int argc, const char **argv, int block, redisReply **out)
{
    (void)block;
    return reader_await(s, fs__redis_conn_send(&s->rd, argc, argv, NULL), out);
}

/* ------------------------------------------------------------------------ */
/* Reading, per kind                                                        */

static int channel_message(rsub *s, rlist *l, const redisReply *r)
{
    const char *type = r->element[0]->str; /* shape checked by fs__redis_check_push */
    if (strcmp(type, "message") == 0 && r->elements == 3)
        return fs__redis_add_value(s, l, NULL, r->element[1]->str, r->element[1]->len, NULL, 0,
                                   r->element[2]->str, r->element[2]->len);
    if (strcmp(type, "pmessage") == 0 && r->elements == 4)
        return fs__redis_add_value(s, l, NULL, r->element[2]->str, r->element[2]->len,
                                   r->element[1]->str, r->element[1]->len, r->element[3]->str,
                                   r->element[3]->len);
    return FS_OK; /* subscribe confirmations and the like */
}

static int read_channel(rsub *s, rlist *l, int budget)
{
    redisReply *r;
    int rc = fs__redis_conn_recv(&s->rd, budget, s->wake_fd, &r);
    if (rc == FS_ETIMEDOUT || rc == FS_ECLOSED)
        return FS_OK;
    while (!rc && r) {
        if ((rc = fs__redis_check_push(s->name, r)))
            return malformed(s, r, rc);
        rc = channel_message(s, l, r);
        fs__redis_reply_free(r);
        r = NULL;
        void *more = NULL;
        if (!rc && redisGetReplyFromReader(s->rd.c, &more) != REDIS_OK) {
            fs_adapter_error(FS_EIO, "redis: reading from %s: %s", s->rd.where, s->rd.c->errstr);
            fs__redis_conn_close(&s->rd);
            return FS_EIO;
        }
        r = more;
    }
    return rc;
}

static int read_list(rsub *s, rlist *l, size_t want, int budget)
{
    char count[24], timeout[32];
    int block = block_ms(budget);
    snprintf(count, sizeof count, "%zu", want);
    snprintf(timeout, sizeof timeout, "%d.%03d", block / 1000, block % 1000);
    const char *argv[] = {"BLMPOP", timeout, "1", s->name, "LEFT", "COUNT", count};
    redisReply *r;
    int rc = reader_await(s, fs__redis_conn_send(&s->rd, 7, argv, NULL), &r);
    if (rc)
        return rc;
    if ((rc = fs__redis_reply_error(r, "BLMPOP")) == FS_OK &&
        (rc = fs__redis_check_pop(r, s->name, s->name_len)))
        return malformed(s, r, rc);
    if (rc == FS_OK && r->type == REDIS_REPLY_ARRAY) {
        /* [our list, [values]]: the source is our name (check_pop compared it). */
        const redisReply *vals = r->element[1];
        rhold *h = fs__redis_hold_new(r);
        for (size_t i = 0; i < vals->elements && !rc; i++)
            rc = fs__redis_add_value(s, l, h, s->name, s->name_len, NULL, 0, vals->element[i]->str,
                                     vals->element[i]->len);
        fs__redis_reply_done(r, h);
        return rc;
    }
    fs__redis_reply_free(r);
    return rc;
}

/* The entries array of an XREAD / XREADGROUP reply [[stream, entries]] (its shape checked), or
 * NULL. */
static const redisReply *stream_entries(const redisReply *r)
{
    return r->type == REDIS_REPLY_ARRAY ? r->element[0]->element[1] : NULL;
}

static int read_stream_nogroup(rsub *s, rlist *l, size_t want, int budget)
{
    char count[24], block[24];
    snprintf(count, sizeof count, "%zu", want);
    int b = block_ms(budget);
    snprintf(block, sizeof block, "%d", b);
    const char *argv[] = {"XREAD", "COUNT", count, "BLOCK", block, "STREAMS", s->name, s->last_id};
    redisReply *r;
    int rc = reader_blocking(s, 8, argv, b, &r);
    if (rc)
        return rc;
    rc = fs__redis_reply_error(r, "XREAD");
    if (!rc && (rc = fs__redis_check_streams("XREAD", s->name, s->name_len, r)))
        return malformed(s, r, rc);
    const redisReply *e = rc ? NULL : stream_entries(r);
    rhold *h = e && e->elements ? fs__redis_hold_new(r) : NULL;
    for (size_t i = 0; e && i < e->elements && !rc; i++) {
        sid id;
        rc = fs__redis_add_entry(s, l, h, e->element[i], &id);
        if (!rc)
            fs__redis_sid_format(id, s->last_id, sizeof s->last_id);
    }
    fs__redis_reply_done(r, h);
    return rc;
}

/*
 * Hand out the entries of `e`, part of `hold`'s reply (or copied: NULL), unless they are out or
 * queued for redelivery. set_mu held.
 */
static int deliver_entries(rsub *s, rlist *l, rhold *hold, const redisReply *e, char *cursor,
                           size_t cursor_cap, sid *deleted, size_t *ndeleted, size_t deleted_cap)
{
    int rc = FS_OK;
    for (size_t i = 0; e && i < e->elements && !rc; i++) {
        const redisReply *ent = e->element[i];
        sid id;
        if (!ent || ent->type != REDIS_REPLY_ARRAY || ent->elements < 2 ||
            !fs__redis_is_str(ent->element[0]) ||
            !fs__redis_sid_parse(ent->element[0]->str, ent->element[0]->len, &id))
            continue;
        if (cursor)
            snprintf(cursor, cursor_cap, "%s", ent->element[0]->str);
        if (ent->element[1]->type != REDIS_REPLY_ARRAY) { /* deleted while pending */
            if (deleted && *ndeleted < deleted_cap)
                deleted[(*ndeleted)++] = id;
            continue;
        }
        if (fs__redis_idset_has(&s->out, id) || fs__redis_in_nackq(s, id))
            continue;
        if ((rc = fs__redis_idset_add(&s->out, id)))
            break;
        if ((rc = fs__redis_add_entry(s, l, hold, ent, &id)))
            fs__redis_idset_del(&s->out, id);
    }
    return rc;
}

/*
 * Set the delivery counts of the records from `first` on (entries this
 * consumer claimed or re-read) from the pending entries list: XCLAIM,
 * XAUTOCLAIM and history reads count a delivery there. set_mu held.
 */
static void pending_counts(rsub *s, rmsg *first)
{
    if (!first)
        return;
    sid lo = first->id, hi = first->id;
    size_t n = 0;
    for (rmsg *r = first; r; r = r->next, n++) {
        if (r->id.ms < lo.ms || (r->id.ms == lo.ms && r->id.seq < lo.seq))
            lo = r->id;
        if (r->id.ms > hi.ms || (r->id.ms == hi.ms && r->id.seq > hi.seq))
            hi = r->id;
    }
    char a[48], b[48], count[24];
    fs__redis_sid_format(lo, a, sizeof a);
    fs__redis_sid_format(hi, b, sizeof b);
    snprintf(count, sizeof count, "%zu", n + s->out.len + 16);
    const char *argv[] = {"XPENDING", s->name, s->group, a, b, count, s->consumer};
    redisReply *r;
    if (reader_command(s, 7, argv, &r))
        return; /* the counts stay as they are; the connection error shows on the next read */
    if (fs__redis_reply_error(r, "XPENDING") == FS_OK && fs__redis_check_pending(s->name, r)) {
        malformed(s, r, FS_EPROTOCOL); /* the next read reconnects */
        return;
    }
    for (size_t i = 0; r->type == REDIS_REPLY_ARRAY && i < r->elements; i++) {
        const redisReply *e = r->element[i];
        sid id;
        if (e->type != REDIS_REPLY_ARRAY || e->elements < 4 || !fs__redis_is_str(e->element[0]) ||
            e->element[3]->type != REDIS_REPLY_INTEGER ||
            !fs__redis_sid_parse(e->element[0]->str, e->element[0]->len, &id))
            continue;
        for (rmsg *m = first; m; m = m->next)
            if (fs__redis_sid_eq(m->id, id))
                m->m.delivery_count = (uint32_t)e->element[3]->integer;
    }
    fs__redis_reply_free(r);
}

/* The first record a read appended to `l` (its tail before the read: `before`). */
static rmsg *appended(const rlist *l, rmsg *before)
{
    return before ? before->next : l->head;
}

/* Re-read this consumer's pending entries (after a (re)connection). set_mu held. */
static int scan_pending(rsub *s, rlist *l, size_t want)
{
    char count[24];
    snprintf(count, sizeof count, "%zu", want < 16 ? 16 : want);
    const char *argv[] = {"XREADGROUP", "GROUP",   s->group, s->consumer,   "COUNT",
                          count,        "STREAMS", s->name,  s->scan_cursor};
    redisReply *r;
    int rc = reader_command(s, 9, argv, &r);
    if (rc)
        return rc;
    sid deleted[64];
    size_t nd = 0;
    const redisReply *e = NULL;
    if (!(rc = fs__redis_reply_error(r, "XREADGROUP")) &&
        (rc = fs__redis_check_streams("XREADGROUP", s->name, s->name_len, r)))
        return malformed(s, r, rc);
    if (!rc)
        e = stream_entries(r);
    if (!rc && (!e || e->elements == 0))
        s->need_scan = false;
    rhold *h = NULL;
    rmsg *before = l->tail;
    if (!rc && e && e->elements) {
        h = fs__redis_hold_new(r);
        rc = deliver_entries(s, l, h, e, s->scan_cursor, sizeof s->scan_cursor, deleted, &nd, 64);
    }
    fs__redis_reply_done(r, h);
    if (!rc)
        pending_counts(s, appended(l, before));
    if (!rc && nd) { /* deleted entries cannot be delivered: clear them from the PEL */
        const char *av[3 + 64];
        char ids[64][48];
        av[0] = "XACK";
        av[1] = s->name;
        av[2] = s->group;
        for (size_t i = 0; i < nd; i++) {
            fs__redis_sid_format(deleted[i], ids[i], sizeof ids[i]);
            av[3 + i] = ids[i];
        }
        if (!(rc = reader_command(s, (int)(3 + nd), av, &r)))
            fs__redis_reply_free(r);
    }
    return rc;
}

/* When the next nacked entry is due (UINT64_MAX: none). set_mu held. */
static uint64_t nack_next_due(const rsub *s)
{
    uint64_t due = UINT64_MAX;
    for (size_t i = 0; i < s->nack_len; i++)
        if (s->nackq[i].due_ms < due)
            due = s->nackq[i].due_ms;
    return due;
}

/* XCLAIM the nacked entries that are due back to this consumer and hand them out. set_mu held. */
static int redeliver_nacked(rsub *s, rlist *l, size_t want)
{
    uint64_t now = fs_kit_now_ms();
    size_t max = want < 64 ? want : 64, n = 0;
    const char *av[5 + 64];
    char ids[64][48];
    av[0] = "XCLAIM";
    av[1] = s->name;
    av[2] = s->group;
    av[3] = s->consumer;
    av[4] = "0";
    /* Take the due ones out of the queue (order kept for the rest). */
    size_t keep = 0;
    for (size_t i = 0; i < s->nack_len; i++) {
        if (n < max && s->nackq[i].due_ms <= now) {
            fs__redis_sid_format(s->nackq[i].id, ids[n], sizeof ids[n]);
            av[5 + n] = ids[n];
            n++;
        } else {
            s->nackq[keep++] = s->nackq[i];
        }
    }
    if (n == 0)
        return FS_OK;
    s->nack_len = keep;
    redisReply *r;
    int rc = reader_command(s, (int)(5 + n), av, &r);
    if (rc) {
        s->need_scan = true; /* still pending: found again by the scan after reconnecting */
        strcpy(s->scan_cursor, "0");
        return rc;
    }
    rhold *h = NULL;
    rmsg *before = l->tail;
    if ((rc = fs__redis_reply_error(r, "XCLAIM")) == FS_OK &&
        (rc = fs__redis_check_entries("XCLAIM", s->name, r, true, true)))
        return malformed(s, r, rc);
    if (rc == FS_OK && r->elements) {
        h = fs__redis_hold_new(r);
        rc = deliver_entries(s, l, h, r, NULL, 0, NULL, NULL, 0);
    }
    fs__redis_reply_done(r, h);
    if (!rc)
        pending_counts(s, appended(l, before));
    return rc;
}

/* XAUTOCLAIM entries idle for longer than claim_min_idle_ms. set_mu held. */
static int claim_idle(rsub *s, rlist *l, size_t want)
{
    char idle[24], count[24];
    snprintf(idle, sizeof idle, "%u", s->claim_min_idle_ms);
    snprintf(count, sizeof count, "%zu", want);
    const char *argv[] = {"XAUTOCLAIM", s->name,         s->group, s->consumer,
                          idle,         s->claim_cursor, "COUNT",  count};
    redisReply *r;
    int rc = reader_command(s, 8, argv, &r);
    if (rc)
        return rc;
    rhold *h = NULL;
    rmsg *before = l->tail;
    if ((rc = fs__redis_reply_error(r, "XAUTOCLAIM")) == FS_OK &&
        (rc = fs__redis_check_autoclaim(s->name, r)))
        return malformed(s, r, rc);
    if (rc == FS_OK) {
        snprintf(s->claim_cursor, sizeof s->claim_cursor, "%s", r->element[0]->str);
        if (r->element[1]->type == REDIS_REPLY_ARRAY && r->element[1]->elements) {
            h = fs__redis_hold_new(r);
            rc = deliver_entries(s, l, h, r->element[1], NULL, 0, NULL, NULL, 0);
        }
        if (strcmp(s->claim_cursor, "0-0") == 0) {
            unsigned period = s->claim_min_idle_ms / 2;
            s->claim_due_ms = fs_kit_now_ms() + (period < 50 ? 50 : period);
        }
    }
    fs__redis_reply_done(r, h);
    if (!rc)
        pending_counts(s, appended(l, before));
    return rc;
}

static int read_stream_group(rsub *s, rlist *l, size_t want, int budget)
{
    int rc = FS_OK;
    pthread_mutex_lock(&s->set_mu);
    while (!rc && s->need_scan && l->n == 0)
        rc = scan_pending(s, l, want);
    if (!rc && l->n == 0 && s->nack_len)
        rc = redeliver_nacked(s, l, want);
    if (!rc && l->n == 0 && s->claim_min_idle_ms && fs_kit_now_ms() >= s->claim_due_ms)
        rc = claim_idle(s, l, want);
    uint64_t due = nack_next_due(s);
    pthread_mutex_unlock(&s->set_mu);
    if (rc || l->n)
        return rc;
    if (due != UINT64_MAX) { /* block no longer than until the next nacked entry is due */
        uint64_t now = fs_kit_now_ms();
        int until = due > now ? (int)(due - now) : 1;
        if (until < budget)
            budget = until;
    }

    char count[24], block[24];
    snprintf(count, sizeof count, "%zu", want);
    int b = block_ms(budget);
    snprintf(block, sizeof block, "%d", b);
    const char *argv[] = {"XREADGROUP", "GROUP", s->group,  s->consumer, "COUNT", count,
                          "BLOCK",      block,   "STREAMS", s->name,     ">"};
    redisReply *r;
    if ((rc = reader_blocking(s, 11, argv, b, &r)))
        return rc;
    if (r->type == REDIS_REPLY_ERROR && strncmp(r->str, "NOGROUP", 7) == 0) {
        /* The stream or the group went away (deleted, server restarted empty): recreate. */
        fs_adapter_log(FS_LOG_WARN, FS_REDIS_COMPONENT, "stream %s: group %s missing, creating it",
                       s->name, s->group);
        fs__redis_reply_free(r);
        return ensure_group(s);
    }
    rc = fs__redis_reply_error(r, "XREADGROUP");
    if (!rc && (rc = fs__redis_check_streams("XREADGROUP", s->name, s->name_len, r)))
        return malformed(s, r, rc);
    const redisReply *e = rc ? NULL : stream_entries(r);
    rhold *h = e && e->elements ? fs__redis_hold_new(r) : NULL;
    pthread_mutex_lock(&s->set_mu);
    if (e)
        rc = deliver_entries(s, l, h, e, NULL, 0, NULL, NULL, 0);
    pthread_mutex_unlock(&s->set_mu);
    fs__redis_reply_done(r, h);
    return rc;
}

/*
 * One read by the current reader: up to `want` messages into `l`, waiting
 * up to `budget` ms. Connection problems are handled here (backoff, logs).
 */
int fs__redis_sub_read(rsub *s, rlist *l, size_t want, int budget)
{
    int rc = fs__redis_reader_ensure(s, false);
    if (rc) {
        uint64_t now = fs_kit_now_ms();
        int wait = s->retry_at_ms > now ? (int)(s->retry_at_ms - now) : 0;
        pause_ms(s, wait < budget ? wait : budget);
        return rc;
    }
    switch (s->kind) {
    case FS_REDIS_CHANNEL:
        rc = read_channel(s, l, budget);
        break;
    case FS_REDIS_LIST:
        rc = read_list(s, l, want, budget);
        break;
    case FS_REDIS_STREAM:
        rc = s->grouped ? read_stream_group(s, l, want, budget)
                        : read_stream_nogroup(s, l, want, budget);
        break;
    }
    if (rc && !s->rd.c) {
        reader_lost(s);
    } else if (rc) { /* the server refused (WRONGTYPE...): say so now and then, slow down */
        uint64_t now = fs_kit_now_ms();
        if (!s->error_logged_ms || now - s->error_logged_ms >= 10000) {
            fs_adapter_log(FS_LOG_ERROR, FS_REDIS_COMPONENT, "%s %s: %s",
                           fs_redis_kind_name(s->kind), s->name, fs_last_error());
            s->error_logged_ms = now;
        }
        pause_ms(s, budget < 200 ? budget : 200);
    }
    return rc;
}
