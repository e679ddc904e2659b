/*
 * Message accessors, settlement, failures, replies and heap copies.
 */
#include "core/core.h"
#include "kit/pack.h"

#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

const char *fs_outcome_name(fs_outcome outcome)
{
    switch (outcome) {
    case FS_OUTCOME_OK:
        return "ok";
    case FS_OUTCOME_ACK:
        return "ack";
    case FS_OUTCOME_NACK:
        return "nack";
    case FS_OUTCOME_REJECT:
        return "reject";
    case FS_OUTCOME_SKIP:
        return "skip";
    case FS_OUTCOME_ERROR:
        return "error";
    }
    return "unknown";
}

const char *fs_settle_state_name(fs_settle_state state)
{
    switch (state) {
    case FS_SETTLE_NONE:
        return "none";
    case FS_SETTLE_ACKED:
        return "acked";
    case FS_SETTLE_NACKED:
        return "nacked";
    case FS_SETTLE_REJECTED:
        return "rejected";
    }
    return "unknown";
}

void fs_message_init(fs_message *m)
{
    if (!m)
        return;
    memset(m, 0, sizeof *m);
    m->partition = -1;
    m->offset = -1;
    fs__mcore *c = fs__mc(m);
    atomic_init(&c->settled, FS_SETTLE_NONE);
    atomic_init(&c->id_state, 0);
    c->count = 1;
}

void *fs_message_adapter_sub(const fs_message *m)
{
    return m ? fs__mcc(m)->adapter_sub : NULL;
}

unsigned fs_message_worker(const fs_message *m)
{
    return m ? fs__mcc(m)->worker : 0;
}

static bool is_batch(const fs_message *m)
{
    return (fs__mcc(m)->flags & FS__MSG_BATCH) != 0;
}

const void *fs_message_body(const fs_message *m)
{
    return m ? m->body : NULL;
}

size_t fs_message_body_len(const fs_message *m)
{
    return m ? m->body_len : 0;
}

size_t fs_message_size(const fs_message *m)
{
    if (!m)
        return 0;
    return is_batch(m) ? fs__mcc(m)->size : m->body_len;
}

size_t fs_message_count(const fs_message *m)
{
    if (!m)
        return 0;
    return is_batch(m) ? fs__mcc(m)->count : 1;
}

fs_message *fs_message_at(const fs_message *m, size_t i)
{
    if (!m)
        return NULL;
    const fs__mcore *c = fs__mcc(m);
    if (c->flags & FS__MSG_BATCH)
        return i < c->count ? c->items[i] : NULL;
    return i == 0 ? (fs_message *)m : NULL;
}

bool fs_message_is_batch(const fs_message *m)
{
    return m && is_batch(m);
}

const char *fs_message_header(const fs_message *m, const char *name)
{
    if (!m || !name)
        return NULL;
    for (size_t i = 0; i < m->header_count; i++)
        if (m->headers[i].name && strcmp(m->headers[i].name, name) == 0)
            return m->headers[i].value;
    return NULL;
}

size_t fs_message_header_count(const fs_message *m)
{
    return m ? m->header_count : 0;
}

const fs_header *fs_message_header_at(const fs_message *m, size_t i)
{
    if (!m || i >= m->header_count)
        return NULL;
    return &m->headers[i];
}

size_t fs_message_header_value_len(const fs_message *m, size_t i)
{
    const fs_header *h = fs_message_header_at(m, i);
    return h ? fs_kit_header_value_len(h) : 0;
}

const char *fs_message_content_type(const fs_message *m)
{
    return m ? m->content_type : NULL;
}

/* ------------------------------------------------------------------------ */
/* Ids: FastStream gives every received message a correlation id (a new     */
/* uuid4 when the sender sent none) and a message id (the correlation id).  */

static _Thread_local uint64_t rng_state[2] FS_TLS_MODEL;

static uint64_t rng_next(void)
{
    if (!rng_state[0] && !rng_state[1]) {
        if (getrandom(rng_state, sizeof rng_state, 0) != (ssize_t)sizeof rng_state) {
            struct timespec ts;
            clock_gettime(CLOCK_REALTIME, &ts);
            rng_state[0] = (uint64_t)ts.tv_nsec ^ ((uint64_t)ts.tv_sec << 32) ^ (uintptr_t)&ts;
            rng_state[1] = 0x9E3779B97F4A7C15ull ^ fs_kit_now_ns();
        }
        rng_state[1] |= 1;
    }
    uint64_t s1 = rng_state[0];
    const uint64_t s0 = rng_state[1];
    rng_state[0] = s0;
    s1 ^= s1 << 23;
    rng_state[1] = s1 ^ s0 ^ (s1 >> 18) ^ (s0 >> 5);
    return rng_state[1] + s0;
}

void fs__uuid4(char out[37])
{
    unsigned char b[16];
    uint64_t a = rng_next(), c = rng_next();
    memcpy(b, &a, 8);
    memcpy(b + 8, &c, 8);
    b[6] = (unsigned char)((b[6] & 0x0F) | 0x40);
    b[8] = (unsigned char)((b[8] & 0x3F) | 0x80);
    static const char hex[] = "0123456789abcdef";
    size_t o = 0;
    for (int i = 0; i < 16; i++) {
        if (i == 4 || i == 6 || i == 8 || i == 10)
            out[o++] = '-';
        out[o++] = hex[b[i] >> 4];
        out[o++] = hex[b[i] & 15];
    }
    out[o] = '\0';
}

void fs_adapter_uuid4(char out[37])
{
    if (out)
        fs__uuid4(out);
}

const char *fs_message_correlation_id(const fs_message *m)
{
    if (!m)
        return NULL;
    if (is_batch(m))
        return fs__mcc(m)->count ? fs_message_correlation_id(fs__mcc(m)->items[0]) : NULL;
    if (m->correlation_id)
        return m->correlation_id;
    fs__mcore *c = (fs__mcore *)fs__mcc(m);
    if (atomic_load_explicit(&c->id_state, memory_order_acquire) == 2)
        return c->id;
    int expected = 0;
    if (atomic_compare_exchange_strong_explicit(&c->id_state, &expected, 1, memory_order_acq_rel,
                                                memory_order_acquire)) {
        fs__uuid4(c->id);
        atomic_store_explicit(&c->id_state, 2, memory_order_release);
        return c->id;
    }
    while (atomic_load_explicit(&c->id_state, memory_order_acquire) != 2)
        sched_yield(); /* another thread is writing the 36 characters */
    return c->id;
}

const char *fs_message_id(const fs_message *m)
{
    if (!m)
        return NULL;
    if (m->message_id && !is_batch(m))
        return m->message_id;
    return fs_message_correlation_id(m);
}

const char *fs_message_reply_to(const fs_message *m)
{
    return m ? m->reply_to : NULL;
}

const char *fs_message_source(const fs_message *m)
{
    return m ? m->source : NULL;
}

void *fs_message_raw(const fs_message *m)
{
    return m ? m->raw : NULL;
}

const void *fs_message_key(const fs_message *m, size_t *len)
{
    if (len)
        *len = m && m->key ? m->key_len : 0;
    return m ? m->key : NULL;
}

int32_t fs_message_partition(const fs_message *m)
{
    return m ? m->partition : -1;
}

int64_t fs_message_offset(const fs_message *m)
{
    return m ? m->offset : -1;
}

int64_t fs_message_timestamp_ms(const fs_message *m)
{
    return m ? m->timestamp_ms : 0;
}

uint32_t fs_message_delivery_count(const fs_message *m)
{
    if (!m)
        return 0;
    if (is_batch(m)) { /* the batch's most delivered message */
        uint32_t n = 0;
        for (size_t i = 0; i < fs__mcc(m)->count; i++)
            if (fs__mcc(m)->items[i]->delivery_count > n)
                n = fs__mcc(m)->items[i]->delivery_count;
        return n;
    }
    return m->delivery_count;
}

fs_broker *fs_message_broker(const fs_message *m)
{
    return m ? fs__mcc(m)->broker : NULL;
}

fs_subscriber *fs_message_subscriber(const fs_message *m)
{
    return m ? fs__mcc(m)->subscriber : NULL;
}

fs_message *fs_current_message(void)
{
    return fs__current_frame ? fs__current_frame->unit : NULL;
}

/* ------------------------------------------------------------------------ */
/* Settlement                                                               */

/* The n-th delivery's nack delay: min(max, delay * 2^(n-1)). */
static unsigned nack_delay(const fs_redelivery *r, uint32_t deliveries)
{
    uint64_t d = r->delay_ms;
    for (uint32_t i = 1; i < deliveries && d < r->max_delay_ms; i++)
        d *= 2;
    return (unsigned)(d < r->max_delay_ms ? d : r->max_delay_ms);
}

int fs__settle_adapter(fs_message *m, fs_settle_state op)
{
    fs__mcore *c = fs__mc(m);
    fs_broker *b = c->broker;
    if (!b->ops->settle)
        return FS_OK;
    fs_settle_args a = {op, 0, NULL};
    const struct fs_subscriber *s = c->subscriber;
    if (op == FS_SETTLE_NACKED && s) {
        uint32_t n = fs_message_delivery_count(m);
        if (s->redelivery.max_deliveries && n >= s->redelivery.max_deliveries) {
            a.op = FS_SETTLE_REJECTED;
            a.reason = "max deliveries";
            fs__log(FS_LOG_WARN, "core",
                    "subscriber %s: a message on %s was delivered %u times (max_deliveries %u): "
                    "rejected instead of nacked",
                    s->name, m->source ? m->source : s->source, (unsigned)n,
                    s->redelivery.max_deliveries);
        } else {
            a.delay_ms = nack_delay(&s->redelivery, n);
        }
    }
    return b->ops->settle(b->impl, m, &a);
}

int fs__settle(fs_message *m, fs_settle_state op)
{
    if (!m)
        return fs__error(FS_EINVAL, "cannot settle a NULL message");
    fs__mcore *c = fs__mc(m);
    if (c->flags & FS__MSG_CHILD)
        return fs__error(FS_EINVAL, "cannot settle one message of a batch: settle the batch");
    if (c->flags & FS__MSG_COPY)
        return fs__error(FS_EINVAL, "cannot settle a copy of a message");
    if (!c->broker)
        return fs__error(FS_EINVAL, "the message was not delivered by a broker");
    const struct fs_subscriber *s = c->subscriber;
    fs_settle_state st = s ? s->settle_as[op] : op;
    if (st == FS_SETTLE_NONE)
        return FS_OK; /* this broker's message class sets nothing for it (MQTT nack) */
    int expected = FS_SETTLE_NONE;
    if (!atomic_compare_exchange_strong_explicit(&c->settled, &expected, (int)st,
                                                 memory_order_acq_rel, memory_order_acquire))
        return FS_OK; /* the first settlement won */
    return fs__settle_wire(m, op);
}

int fs_message_ack(fs_message *m)
{
    return fs__settle(m, FS_SETTLE_ACKED);
}

int fs_message_nack(fs_message *m)
{
    return fs__settle(m, FS_SETTLE_NACKED);
}

int fs_message_reject(fs_message *m)
{
    return fs__settle(m, FS_SETTLE_REJECTED);
}

fs_settle_state fs_message_settled(const fs_message *m)
{
    if (!m)
        return FS_SETTLE_NONE;
    return (fs_settle_state)atomic_load_explicit(&((fs__mcore *)fs__mcc(m))->settled,
                                                 memory_order_acquire);
}

int fs_message_in_progress(fs_message *m)
{
    FS_CHECK_ARG(m, "fs_message_in_progress: message is NULL");
    fs__mcore *c = fs__mc(m);
    FS_CHECK_ARG(!(c->flags & (FS__MSG_CHILD | FS__MSG_COPY)) && c->broker,
                 "fs_message_in_progress: not a message being handled (a copy, or one message "
                 "of a batch)");
    const fs_broker_ops *ops = c->broker->ops;
    if (!(ops->caps & FS_CAP_IN_PROGRESS) || !ops->in_progress)
        return fs__error(FS_EUNSUPPORTED, "fs_message_in_progress: broker %s has no in-progress",
                         ops->name);
    if (c->flags & FS__MSG_WIRE_DONE)
        return FS_OK;
    return ops->in_progress(c->broker->impl, m);
}

/* ------------------------------------------------------------------------ */

fs_outcome fs_message_fail(fs_message *m, const char *type, const char *fmt, ...)
{
    if (!m || !fs__mcc(m)->frame) {
        fs__error(FS_EINVAL, "fs_message_fail: %s",
                  m ? "the message is not being handled" : "message is NULL");
        return FS_OUTCOME_ERROR;
    }
    fs__frame *f = fs__mc(m)->frame;
    snprintf(f->error_type, sizeof f->error_type, "%s", (type && *type) ? type : "Error");
    f->error_text[0] = '\0';
    if (fmt) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(f->error_text, sizeof f->error_text, fmt, ap);
        va_end(ap);
    }
    f->has_error = true;
    return FS_OUTCOME_ERROR;
}

const char *fs_message_error_type(const fs_message *m)
{
    if (!m || !fs__mcc(m)->frame)
        return NULL;
    const fs__frame *f = fs__mcc(m)->frame;
    return f->has_error ? f->error_type : NULL;
}

const char *fs_message_error_text(const fs_message *m)
{
    if (!m || !fs__mcc(m)->frame)
        return NULL;
    const fs__frame *f = fs__mcc(m)->frame;
    return f->has_error ? f->error_text : NULL;
}

int fs_message_reply(fs_message *m, const void *body, size_t body_len, const fs_header *headers,
                     size_t header_count, const char *content_type)
{
    FS_CHECK_ARG(m, "fs_message_reply: message is NULL");
    fs_envelope env = FS_ENVELOPE_INIT;
    env.body = body;
    env.body_len = body_len;
    env.headers = headers;
    env.header_count = header_count;
    env.content_type = content_type;
    int rc = fs__check_envelopes("fs_message_reply", &env, 1);
    if (rc < 0)
        return rc;
    fs_broker *b = fs__mcc(m)->broker;
    if (!b)
        return fs__error(FS_EINVAL, "fs_message_reply: the message was not delivered by a broker");
    if (!m->reply_to || !*m->reply_to)
        return fs__error(FS_ENOTFOUND, "fs_message_reply: the message has no reply-to");
    env.correlation_id = fs_message_correlation_id(m);
    return fs__publish_run(b, NULL, m->reply_to, NULL, &env, 1, true);
}

/* ------------------------------------------------------------------------ */
/* Heap copies: one block holding the message, its headers and strings.      */

static fs_message *copy_envelope(const fs_envelope *env, const char *source)
{
    size_t need = fs_kit_size_add(sizeof(fs_message), fs_kit_pack_size(env, source ? source : ""));
    if (need == SIZE_MAX) {
        fs__error(FS_EINVAL, "message too large to copy (body of %zu bytes)", env->body_len);
        return NULL;
    }
    fs_message *c = malloc(need);
    if (!c) {
        fs__error(FS_ENOMEM, "out of memory copying a message of %zu bytes", env->body_len);
        return NULL;
    }
    fs_message_init(c);
    fs__mc(c)->flags = FS__MSG_COPY;
    fs_kit_pack(c, env, source ? source : "", c + 1);
    fs__mc(c)->size = env->body_len;
    return c;
}

fs_message *fs_message_new_copy(const fs_envelope *env, const char *source)
{
    if (!env) {
        fs__error(FS_EINVAL, "fs_message_new_copy: envelope is NULL");
        return NULL;
    }
    if ((!env->body && env->body_len) || (!env->headers && env->header_count)) {
        fs__error(FS_EINVAL, "fs_message_new_copy: NULL body or headers with a non-zero length");
        return NULL;
    }
    return copy_envelope(env, source);
}

fs_message *fs_message_copy(const fs_message *m)
{
    if (!m) {
        fs__error(FS_EINVAL, "fs_message_copy: message is NULL");
        return NULL;
    }
    const fs__mcore *mc = fs__mcc(m);
    if (!(mc->flags & FS__MSG_BATCH)) {
        fs_envelope env = fs_kit_message_envelope(m);
        env.correlation_id = fs_message_correlation_id(m);
        if (m->partition >= 0) {
            env.partition = m->partition;
            env.partition_set = true;
        }
        fs_message *c = copy_envelope(&env, m->source);
        if (c) {
            fs__mc(c)->broker = mc->broker;
            c->offset = m->offset;
            c->delivery_count = m->delivery_count;
        }
        return c;
    }
    fs_message *b = calloc(1, sizeof *b + mc->count * sizeof(fs_message *));
    if (!b) {
        fs__error(FS_ENOMEM, "out of memory copying a batch of %zu messages", mc->count);
        return NULL;
    }
    fs_message_init(b);
    fs__mcore *bc = fs__mc(b);
    bc->flags = FS__MSG_COPY | FS__MSG_BATCH;
    bc->items = (fs_message **)(b + 1);
    bc->broker = mc->broker;
    b->source = m->source;
    for (size_t i = 0; i < mc->count; i++) {
        bc->items[i] = fs_message_copy(mc->items[i]);
        if (!bc->items[i]) {
            bc->count = i;
            fs_message_free(b);
            return NULL;
        }
        fs__mc(bc->items[i])->flags |= FS__MSG_CHILD;
        bc->size += bc->items[i]->body_len;
    }
    bc->count = mc->count;
    if (bc->count)
        b->source = bc->items[0]->source;
    return b;
}

void fs_message_free(fs_message *m)
{
    if (!m)
        return;
    fs__mcore *c = fs__mc(m);
    if (!(c->flags & FS__MSG_COPY)) {
        fs__log(FS_LOG_WARN, "core", "fs_message_free called on a message that is not a copy");
        return;
    }
    if (c->flags & FS__MSG_BATCH)
        for (size_t i = 0; i < c->count; i++)
            free(c->items[i]);
    free(m);
}
