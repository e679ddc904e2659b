/*
 * Redis deliveries: pooled records, the replies they point into, and
 * filling a record from a decoded value or stream entry.
 */
#include "internal.h"

#include <stdlib.h>
#include <string.h>

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

/* Free what a pooled record owns (fs_kit_pool_destroy). */
void fs__redis_rec_fini(void *p)
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
void fs__redis_rec_release(fs_message *m)
{
    rmsg *r = (rmsg *)m;
    rsub *s = r->sub;
    if (s->grouped && r->has_id) {
        pthread_mutex_lock(&s->set_mu);
        fs__redis_idset_del(&s->out, r->id);
        if (r->nacked && !fs__redis_in_nackq(s, r->id)) {
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
    fs__redis_hold_drop(h);
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
    map_headers(m, r->hdrs, d->header_count); /* no message_id header: the core's rule applies */
    m->source = r->info.name;
    m->delivery_count = 1; /* a first delivery; entries claimed again: from XPENDING */
    m->raw = &r->info;
    m->release = fs__redis_rec_release;
    m->adapter_data = r;
    if (hold) {
        fs__redis_hold_ref(hold);
        r->hold = hold;
    }
    return FS_OK;
}

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
int fs__redis_add_value(rsub *s, rlist *l, rhold *hold, const char *name, size_t name_len,
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

/* A record for a stream entry reply [id, [field, value, ...]] of `hold`'s reply (or
 * copied: NULL). Sets *id. */
int fs__redis_add_entry(rsub *s, rlist *l, rhold *hold, const redisReply *e, sid *id)
{
    if (!e || e->type != REDIS_REPLY_ARRAY || e->elements < 2 || !fs__redis_is_str(e->element[0]) ||
        !fs__redis_sid_parse(e->element[0]->str, e->element[0]->len, id))
        return fs_adapter_error(FS_EPROTOCOL, "redis: malformed stream entry from %s", s->name);
    const redisReply *f = e->element[1];
    size_t nf = f && f->type == REDIS_REPLY_ARRAY ? f->elements / 2 : 0;
    int rc = fs_kit_grow((void **)&s->fields, &s->field_cap, nf, sizeof *s->fields);
    if (rc)
        return rc;
    for (size_t i = 0; i < nf; i++) {
        const redisReply *k = f->element[2 * i], *v = f->element[2 * i + 1];
        s->fields[i] =
            (fs__redis_kv){fs__redis_is_str(k) ? k->str : "", fs__redis_is_str(k) ? k->len : 0,
                           fs__redis_is_str(v) ? v->str : "", fs__redis_is_str(v) ? v->len : 0};
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
