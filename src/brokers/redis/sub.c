/*
 * Redis subscriptions: reading channels, lists and streams for the core's
 * workers, and settling stream entries. See internal.h for the threading.
 */
#include "internal.h"

#include <errno.h>
#include <inttypes.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

/* ------------------------------------------------------------------------ */
/* Stream ids and the set of entries out                                    */

bool fs__redis_sid_parse(const char *s, size_t n, sid *out)
{
    uint64_t v[2] = {0, 0};
    size_t i = 0;
    for (int part = 0; part < 2; part++) {
        size_t start = i;
        while (i < n && s[i] >= '0' && s[i] <= '9') {
            if (v[part] > (UINT64_MAX - 9) / 10)
                return false;
            v[part] = v[part] * 10 + (uint64_t)(s[i++] - '0');
        }
        if (i == start)
            return false;
        if (part == 0 && (i >= n || s[i++] != '-'))
            return false;
    }
    if (i != n)
        return false;
    out->ms = v[0];
    out->seq = v[1];
    return true;
}

int fs__redis_sid_format(sid id, char *buf, size_t cap)
{
    return snprintf(buf, cap, "%" PRIu64 "-%" PRIu64, id.ms, id.seq);
}

static bool sid_eq(sid a, sid b)
{
    return a.ms == b.ms && a.seq == b.seq;
}

static size_t sid_hash(sid id, size_t mask)
{
    uint64_t h = id.ms * 0x9E3779B97F4A7C15ull ^ (id.seq + 0xD6E8FEB86659FD93ull);
    h ^= h >> 31;
    h *= 0x94D049BB133111EBull;
    h ^= h >> 29;
    return (size_t)h & mask;
}

/* The slot holding `id`, or the free slot that ends its probe run (s->cap > 0). */
static size_t idset_slot(const idset *s, sid id)
{
    size_t mask = s->cap - 1, i = sid_hash(id, mask);
    while (s->used[i] && !sid_eq(s->slots[i], id))
        i = (i + 1) & mask;
    return i;
}

static int idset_add(idset *s, sid id);

static int idset_grow(idset *s)
{
    idset n = {0};
    n.cap = s->cap ? s->cap * 2 : 64;
    n.slots = calloc(n.cap, sizeof *n.slots);
    n.used = calloc(n.cap, 1);
    if (!n.slots || !n.used) {
        free(n.slots);
        free(n.used);
        return fs_adapter_error(FS_ENOMEM, "redis: out of memory (pending set)");
    }
    for (size_t i = 0; i < s->cap; i++)
        if (s->used[i])
            idset_add(&n, s->slots[i]);
    free(s->slots);
    free(s->used);
    *s = n;
    return FS_OK;
}

static int idset_add(idset *s, sid id)
{
    if ((s->len + 1) * 2 > s->cap) {
        int rc = idset_grow(s);
        if (rc)
            return rc;
    }
    size_t i = idset_slot(s, id);
    if (s->used[i])
        return FS_OK;
    s->used[i] = 1;
    s->slots[i] = id;
    s->len++;
    return FS_OK;
}

static bool idset_has(const idset *s, sid id)
{
    return s->len && s->used[idset_slot(s, id)];
}

static void idset_del(idset *s, sid id)
{
    if (!s->len)
        return;
    size_t mask = s->cap - 1, i = idset_slot(s, id);
    if (!s->used[i])
        return;
    s->used[i] = 0;
    s->len--;
    /* Backward shift: move later members of the cluster into the hole. */
    for (size_t j = (i + 1) & mask; s->used[j]; j = (j + 1) & mask) {
        size_t home = sid_hash(s->slots[j], mask);
        bool movable = i <= j ? (home <= i || home > j) : (home <= i && home > j);
        if (movable) {
            s->slots[i] = s->slots[j];
            s->used[i] = 1;
            s->used[j] = 0;
            i = j;
        }
    }
}

static bool in_nackq(const rsub *s, sid id)
{
    for (size_t i = 0; i < s->nack_len; i++)
        if (sid_eq(s->nackq[i].id, id))
            return true;
    return false;
}

/* ------------------------------------------------------------------------ */
/* Message records                                                          */

static void rec_release(fs_message *m);

/* A free record (reader only: the pool's single getter). */
static rmsg *rec_get(rsub *s)
{
    rmsg *r = fs_kit_pool_get(&s->pool);
    if (!r)
        return NULL;
    r->sub = s;
    r->qn.msg = &r->m;
    r->next = NULL;
    r->hold = NULL;
    r->has_id = false;
    r->nacked = false;
    r->delay_ms = 0;
    r->field_count = 0;
    return r;
}

/* Hold `reply` for the messages built from it; NULL (out of memory): they copy instead. */
static rhold *hold_new(redisReply *reply)
{
    rhold *h = malloc(sizeof *h);
    if (h) {
        h->reply = reply;
        atomic_init(&h->refs, 1);
    }
    return h;
}

static void hold_drop(rhold *h)
{
    if (h && atomic_fetch_sub_explicit(&h->refs, 1, memory_order_acq_rel) == 1) {
        fs__redis_reply_free(h->reply);
        free(h);
    }
}

/* The reader is done with `reply`: free it now, or with the last message pointing into it. */
static void reply_done(redisReply *reply, rhold *h)
{
    if (h)
        hold_drop(h);
    else
        fs__redis_reply_free(reply);
}

/* Free what a pooled record owns (fs_kit_pool_destroy). */
static void rec_fini(void *p)
{
    rmsg *r = p;
    fs_kit_buf_free(&r->arena);
    free(r->hdrs);
    free(r->fields);
}

/* Give a record back, from any thread, without a lock. */
static void rec_put(rsub *s, rmsg *r)
{
    fs_kit_pool_put(&s->pool, r);
}

/* The core is done with the message: forget it was out, queue a nacked entry again. */
static void rec_release(fs_message *m)
{
    rmsg *r = (rmsg *)m;
    rsub *s = r->sub;
    if (s->grouped && r->has_id) {
        pthread_mutex_lock(&s->set_mu);
        idset_del(&s->out, r->id);
        if (r->nacked && !in_nackq(s, r->id)) {
            if (!fs_kit_grow((void **)&s->nackq, &s->nack_cap, s->nack_len + 1, sizeof *s->nackq))
                s->nackq[s->nack_len++] = (nack_ent){r->id, fs_kit_now_ms() + r->delay_ms};
            else /* stays pending: found again by the next scan or XAUTOCLAIM */
                s->need_scan = true;
        }
        pthread_mutex_unlock(&s->set_mu);
    }
    rhold *h = r->hold;
    r->hold = NULL;
    rec_put(s, r);
    hold_drop(h);
}

static size_t str_room(size_t n)
{
    return n + 1;
}

static char *arena_put(fs_kit_buf *a, const char *p, size_t n)
{
    char *dst = a->data + a->len;
    if (n)
        memcpy(dst, p, n);
    dst[n] = '\0';
    a->len += n + 1;
    return dst;
}

/* The headers FastStream gives a meaning to, in one pass ("" counts as absent). */
static void map_headers(fs_message *m, const fs_header *h, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        const char *k = h[i].name, *v = h[i].value[0] ? h[i].value : NULL;
        switch (k[0]) {
        case 'c':
            if (!strcmp(k, "correlation_id"))
                m->correlation_id = v;
            else if (!strcmp(k, "content-type"))
                m->content_type = v;
            break;
        case 'r':
            if (!strcmp(k, "reply_to"))
                m->reply_to = v;
            break;
        case 'm':
            if (!strcmp(k, "message_id"))
                m->message_id = v;
            break;
        }
    }
}

/*
 * Fill `r` from a decoded value. `name`: where it came from; `pattern` and
 * `id` may be NULL; `raw` (count entries) is kept to requeue or dead-letter.
 * With `hold`, every string given (name, pattern, id, raw keys and values)
 * lies NUL-terminated in its reply, which the record then references
 * instead of copying; only headers (not NUL-terminated in a binary value)
 * and a body that is not the tail of a raw value (JSON) go into the arena.
 */
static int rec_fill(rsub *s, rmsg *r, rhold *hold, const char *name, size_t name_len,
                    const char *pattern, size_t pattern_len, const char *id, size_t id_len,
                    const fs__redis_decoded *d, const fs__redis_kv *raw, size_t raw_count)
{
    /* The body is often the tail of a value kept anyway (binary and raw formats): share it. */
    size_t body_in = raw_count;
    for (size_t i = 0; i < raw_count && body_in == raw_count; i++)
        if ((uintptr_t)d->body >= (uintptr_t)raw[i].value &&
            (uintptr_t)(d->body + d->body_len) == (uintptr_t)(raw[i].value + raw[i].value_len))
            body_in = i;
    bool own_name =
        name == s->name || (name_len == s->name_len && memcmp(name, s->name, name_len) == 0);
    bool copy = !hold;
    size_t need = body_in < raw_count ? 0 : str_room(d->body_len);
    if (copy) {
        need += (own_name ? 0 : str_room(name_len)) + str_room(pattern_len) + str_room(id_len);
        for (size_t i = 0; i < raw_count; i++)
            need += str_room(raw[i].key_len) + str_room(raw[i].value_len);
    }
    for (size_t i = 0; i < d->header_count; i++)
        need += str_room(d->headers[i].key_len) + str_room(d->headers[i].value_len);
    r->arena.len = 0;
    int rc = FS_OK; /* a recycled record has room enough nearly always: test before calling */
    if ((need >= r->arena.cap && (rc = fs_kit_buf_reserve(&r->arena, need))) ||
        (d->header_count > r->hdr_cap &&
         (rc = fs_kit_grow((void **)&r->hdrs, &r->hdr_cap, d->header_count, sizeof *r->hdrs))) ||
        (raw_count > r->field_cap &&
         (rc = fs_kit_grow((void **)&r->fields, &r->field_cap, raw_count, sizeof *r->fields))))
        return rc;
    fs_kit_buf *a = &r->arena;
    fs_message *m = &r->m;
    fs_message_init(m);
    r->info.kind = s->kind;
    r->info.name = own_name ? s->name : copy ? arena_put(a, name, name_len) : name;
    r->info.pattern = pattern && copy ? arena_put(a, pattern, pattern_len) : pattern;
    r->info.entry_id = id && copy ? arena_put(a, id, id_len) : id;
    r->info.group = s->group;
    r->info.format = d->format;
    for (size_t i = 0; i < d->header_count; i++) {
        r->hdrs[i].name = arena_put(a, d->headers[i].key, d->headers[i].key_len);
        r->hdrs[i].value = arena_put(a, d->headers[i].value, d->headers[i].value_len);
        r->hdrs[i].value_len = d->headers[i].value_len;
    }
    if (copy) {
        for (size_t i = 0; i < raw_count; i++) {
            r->fields[i].key = arena_put(a, raw[i].key, raw[i].key_len);
            r->fields[i].key_len = raw[i].key_len;
            r->fields[i].value = arena_put(a, raw[i].value, raw[i].value_len);
            r->fields[i].value_len = raw[i].value_len;
        }
    } else if (raw_count) {
        memcpy(r->fields, raw, raw_count * sizeof *raw);
    }
    r->field_count = raw_count;
    if (body_in < raw_count) /* NUL-terminated as well: the value (or its copy) ends with one */
        m->body = r->fields[body_in].value + (d->body - raw[body_in].value);
    else
        m->body = arena_put(a, d->body, d->body_len);
    m->body_len = d->body_len;
    m->headers = d->header_count ? r->hdrs : NULL;
    m->header_count = d->header_count;
    map_headers(m, r->hdrs, d->header_count);
    if (!m->message_id)
        m->message_id = r->info.entry_id;
    m->source = r->info.name;
    m->delivery_count = 1; /* a first delivery; entries claimed again: from XPENDING */
    m->raw = &r->info;
    m->release = rec_release;
    m->adapter_data = r;
    if (hold) {
        atomic_fetch_add_explicit(&hold->refs, 1, memory_order_relaxed);
        r->hold = hold;
    }
    return FS_OK;
}

typedef struct rlist {
    rmsg *head, *tail;
    size_t n;
} rlist;

static void rlist_push(rlist *l, rmsg *r)
{
    r->next = NULL;
    if (l->tail)
        l->tail->next = r;
    else
        l->head = r;
    l->tail = r;
    l->n++;
}

/* A record for a plain value (channel, list); the strings lie in `hold`'s reply, if given. */
static int add_value(rsub *s, rlist *l, rhold *hold, const char *name, size_t name_len,
                     const char *pattern, size_t pattern_len, const char *value, size_t len)
{
    fs__redis_decoded d;
    int rc = fs__redis_decode(value, len, &s->scratch, &d);
    if (rc)
        return rc;
    rmsg *r = rec_get(s);
    if (!r)
        return FS_ENOMEM;
    fs__redis_kv raw = {"", 0, value, len};
    rc = rec_fill(s, r, hold, name, name_len, pattern, pattern_len, NULL, 0, &d, &raw,
                  s->kind == FS_REDIS_LIST ? 1 : 0);
    if (rc) {
        rec_put(s, r);
        return rc;
    }
    rlist_push(l, r);
    return FS_OK;
}

static bool is_str(const redisReply *r)
{
    return r && (r->type == REDIS_REPLY_STRING || r->type == REDIS_REPLY_STATUS);
}

/* A record for a stream entry reply [id, [field, value, ...]] of `hold`'s reply (or
 * copied: NULL). Sets *id. */
static int add_entry(rsub *s, rlist *l, rhold *hold, const redisReply *e, sid *id)
{
    if (!e || e->type != REDIS_REPLY_ARRAY || e->elements < 2 || !is_str(e->element[0]) ||
        !fs__redis_sid_parse(e->element[0]->str, e->element[0]->len, id))
        return fs_adapter_error(FS_EPROTOCOL, "redis: malformed stream entry from %s", s->name);
    const redisReply *f = e->element[1];
    size_t nf = f && f->type == REDIS_REPLY_ARRAY ? f->elements / 2 : 0;
    int rc = fs_kit_grow((void **)&s->fields, &s->field_cap, nf, sizeof *s->fields);
    if (rc)
        return rc;
    for (size_t i = 0; i < nf; i++) {
        const redisReply *k = f->element[2 * i], *v = f->element[2 * i + 1];
        s->fields[i] = (fs__redis_kv){is_str(k) ? k->str : "", is_str(k) ? k->len : 0,
                                      is_str(v) ? v->str : "", is_str(v) ? v->len : 0};
    }
    fs__redis_decoded d;
    rc = fs__redis_decode_fields(s->fields, nf, &s->scratch, &d);
    if (rc)
        return rc;
    rmsg *r = rec_get(s);
    if (!r)
        return FS_ENOMEM;
    rc = rec_fill(s, r, hold, s->name, s->name_len, NULL, 0, e->element[0]->str, e->element[0]->len,
                  &d, s->fields, nf);
    if (rc) {
        rec_put(s, r);
        return rc;
    }
    r->id = *id;
    r->has_id = true;
    rlist_push(l, r);
    return FS_OK;
}

/* ------------------------------------------------------------------------ */
/* The reader connection                                                    */

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
        if (!rc && (r->type != REDIS_REPLY_ARRAY || r->elements < 1 || !is_str(r->element[0])))
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
                is_str(r->element[0]->element[0]))
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
static int reader_ensure(rsub *s, bool force)
{
    if (s->rd.c)
        return FS_OK;
    uint64_t now = fs_kit_now_ms();
    if (!force && now < s->retry_at_ms)
        return FS_ETIMEDOUT;
    int rc = fs__redis_conn_open(s->b, &s->rd);
    if (!rc) /* blocking reads wait up to FS_REDIS_BLOCK_MAX_MS for the server */
        rc = fs__redis_conn_set_timeout(&s->rd, s->b->command_timeout_ms + FS_REDIS_BLOCK_MAX_MS);
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
    if (r->type != REDIS_REPLY_ARRAY || r->elements < 3 || !is_str(r->element[0]))
        return FS_OK;
    const char *type = r->element[0]->str;
    if (strcmp(type, "message") == 0 && r->elements == 3)
        return add_value(s, l, NULL, r->element[1]->str, r->element[1]->len, NULL, 0,
                         r->element[2]->str, r->element[2]->len);
    if (strcmp(type, "pmessage") == 0 && r->elements == 4)
        return add_value(s, l, NULL, r->element[2]->str, r->element[2]->len, r->element[1]->str,
                         r->element[1]->len, r->element[3]->str, r->element[3]->len);
    return FS_OK; /* subscribe confirmations and the like */
}

static int read_channel(rsub *s, rlist *l, int budget)
{
    redisReply *r;
    int rc = fs__redis_conn_recv(&s->rd, budget, s->wake_fd, &r);
    if (rc == FS_ETIMEDOUT || rc == FS_ECLOSED)
        return FS_OK;
    while (!rc && r) {
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

/* The BLMPOP for `want` messages blocking `block` ms: formatted once, not per round trip. */
static int list_pop_command(rsub *s, size_t want, int block)
{
    if (s->pop_cmd && s->pop_want == want && s->pop_block == block)
        return FS_OK;
    char count[24], timeout[32];
    snprintf(count, sizeof count, "%zu", want);
    snprintf(timeout, sizeof timeout, "%d.%03d", block / 1000, block % 1000);
    const char *argv[] = {"BLMPOP", timeout, "1", s->name, "LEFT", "COUNT", count};
    char *cmd;
    int len = redisFormatCommandArgv(&cmd, 7, argv, NULL);
    if (len < 0)
        return fs_adapter_error(FS_ENOMEM, "redis: out of memory (BLMPOP for %s)", s->name);
    if (s->pop_cmd)
        redisFreeCommand(s->pop_cmd);
    s->pop_cmd = cmd;
    s->pop_len = (size_t)len;
    s->pop_want = want;
    s->pop_block = block;
    return FS_OK;
}

static int read_list(rsub *s, rlist *l, size_t want, int budget)
{
    redisReply *r;
    int rc = list_pop_command(s, want, block_ms(budget));
    if (rc)
        return rc;
    if ((rc = reader_await(s, fs__redis_conn_send_formatted(&s->rd, s->pop_cmd, s->pop_len), &r)))
        return rc;
    if ((rc = fs__redis_reply_error(r, "BLMPOP")) == FS_OK && r->type == REDIS_REPLY_ARRAY &&
        r->elements == 2 && r->element[1]->type == REDIS_REPLY_ARRAY) {
        const redisReply *key = r->element[0], *vals = r->element[1];
        /* One list per subscription: its name is ours, compared once per batch. */
        const char *name = key->len == s->name_len && memcmp(key->str, s->name, s->name_len) == 0
                               ? s->name
                               : key->str;
        rhold *h = hold_new(r);
        for (size_t i = 0; i < vals->elements && !rc; i++)
            if (is_str(vals->element[i]))
                rc = add_value(s, l, h, name, key->len, NULL, 0, vals->element[i]->str,
                               vals->element[i]->len);
        reply_done(r, h);
        return rc;
    }
    fs__redis_reply_free(r);
    return rc;
}

/* The entries array of an XREAD / XREADGROUP reply [[stream, entries]], or NULL. */
static const redisReply *stream_entries(const redisReply *r)
{
    if (!r || r->type != REDIS_REPLY_ARRAY || r->elements < 1)
        return NULL;
    const redisReply *s0 = r->element[0];
    if (s0->type != REDIS_REPLY_ARRAY || s0->elements < 2 ||
        s0->element[1]->type != REDIS_REPLY_ARRAY)
        return NULL;
    return s0->element[1];
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
    const redisReply *e = rc ? NULL : stream_entries(r);
    rhold *h = e && e->elements ? hold_new(r) : NULL;
    for (size_t i = 0; e && i < e->elements && !rc; i++) {
        sid id;
        rc = add_entry(s, l, h, e->element[i], &id);
        if (!rc)
            fs__redis_sid_format(id, s->last_id, sizeof s->last_id);
    }
    reply_done(r, h);
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
            !is_str(ent->element[0]) ||
            !fs__redis_sid_parse(ent->element[0]->str, ent->element[0]->len, &id))
            continue;
        if (cursor)
            snprintf(cursor, cursor_cap, "%s", ent->element[0]->str);
        if (ent->element[1]->type != REDIS_REPLY_ARRAY) { /* deleted while pending */
            if (deleted && *ndeleted < deleted_cap)
                deleted[(*ndeleted)++] = id;
            continue;
        }
        if (idset_has(&s->out, id) || in_nackq(s, id))
            continue;
        if ((rc = idset_add(&s->out, id)))
            break;
        if ((rc = add_entry(s, l, hold, ent, &id)))
            idset_del(&s->out, id);
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
    for (size_t i = 0; r->type == REDIS_REPLY_ARRAY && i < r->elements; i++) {
        const redisReply *e = r->element[i];
        sid id;
        if (e->type != REDIS_REPLY_ARRAY || e->elements < 4 || !is_str(e->element[0]) ||
            e->element[3]->type != REDIS_REPLY_INTEGER ||
            !fs__redis_sid_parse(e->element[0]->str, e->element[0]->len, &id))
            continue;
        for (rmsg *m = first; m; m = m->next)
            if (sid_eq(m->id, id))
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
    if (!(rc = fs__redis_reply_error(r, "XREADGROUP")))
        e = stream_entries(r);
    if (!rc && (!e || e->elements == 0))
        s->need_scan = false;
    rhold *h = NULL;
    rmsg *before = l->tail;
    if (!rc && e && e->elements) {
        h = hold_new(r);
        rc = deliver_entries(s, l, h, e, s->scan_cursor, sizeof s->scan_cursor, deleted, &nd, 64);
    }
    reply_done(r, h);
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
    if ((rc = fs__redis_reply_error(r, "XCLAIM")) == FS_OK && r->type == REDIS_REPLY_ARRAY &&
        r->elements) {
        h = hold_new(r);
        rc = deliver_entries(s, l, h, r, NULL, 0, NULL, NULL, 0);
    }
    reply_done(r, h);
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
    if ((rc = fs__redis_reply_error(r, "XAUTOCLAIM")) == FS_OK && r->type == REDIS_REPLY_ARRAY &&
        r->elements >= 2 && is_str(r->element[0])) {
        snprintf(s->claim_cursor, sizeof s->claim_cursor, "%s", r->element[0]->str);
        if (r->element[1]->type == REDIS_REPLY_ARRAY && r->element[1]->elements) {
            h = hold_new(r);
            rc = deliver_entries(s, l, h, r->element[1], NULL, 0, NULL, NULL, 0);
        }
        if (strcmp(s->claim_cursor, "0-0") == 0) {
            unsigned period = s->claim_min_idle_ms / 2;
            s->claim_due_ms = fs_kit_now_ms() + (period < 50 ? 50 : period);
        }
    }
    reply_done(r, h);
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
    const redisReply *e = rc ? NULL : stream_entries(r);
    rhold *h = e && e->elements ? hold_new(r) : NULL;
    pthread_mutex_lock(&s->set_mu);
    if (e)
        rc = deliver_entries(s, l, h, e, NULL, 0, NULL, NULL, 0);
    pthread_mutex_unlock(&s->set_mu);
    reply_done(r, h);
    return rc;
}

/*
 * One read by the current reader: up to `want` messages into `l`, waiting
 * up to `budget` ms. Connection problems are handled here (backoff, logs).
 */
static int sub_read(rsub *s, rlist *l, size_t want, int budget)
{
    int rc = reader_ensure(s, false);
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

/* ------------------------------------------------------------------------ */
/* fetch / fetch_batch: leader and followers                                */

/* The reader's turn (fs_kit_queue_take): read and queue what came. */
static void read_into_queue(void *ctx, size_t want, int budget_ms)
{
    rsub *s = ctx;
    if (atomic_load_explicit(&s->stopping, memory_order_acquire))
        return;
    rlist l = {NULL, NULL, 0};
    sub_read(s, &l, want, budget_ms);
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
    return rc ? rc : fs__redis_conn_replies(c, count, "XADD (dead letter)");
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

static char *dup_or_null(const char *s)
{
    return s ? strdup(s) : NULL;
}

static void sub_free(rsub *s)
{
    if (!s)
        return;
    fs__redis_sub_flush(s);
    fs_kit_pool_destroy(&s->pool, rec_fini);
    fs__redis_conn_free(&s->rd);
    fs__redis_scratch_free(&s->scratch);
    if (s->pop_cmd)
        redisFreeCommand(s->pop_cmd);
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
    s->name = strdup(spec->source);
    s->name_len = strlen(spec->source);
    s->group = dup_or_null(o->group);
    s->start_id = strdup(o->start_id ? o->start_id : "$");
    s->dead_letter = dup_or_null(o->dead_letter);
    strcpy(s->claim_cursor, "0-0");
    if (s->grouped) {
        if (o->consumer) {
            s->consumer = strdup(o->consumer);
        } else {
            char host[64] = "host", buf[128];
            gethostname(host, sizeof host - 1);
            host[sizeof host - 1] = '\0';
            snprintf(buf, sizeof buf, "%s-%ld-%u", host, (long)getpid(),
                     atomic_fetch_add(&b->consumer_seq, 1) + 1);
            s->consumer = strdup(buf);
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
    int rc = reader_ensure(s, true);
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
        rec_release(&head->m);
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
