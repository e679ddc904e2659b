/*
 * Message accessors, settlement, failures, replies and heap copies.
 */
#include "core/core.h"
#include "core/pack.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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
    atomic_init(&m->settled_, FS_SETTLE_NONE);
    m->count_ = 1;
}

void *fs_message_adapter_sub(const fs_message *m)
{
    return m ? m->adapter_sub_ : NULL;
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
    return (m->flags_ & FS__MSG_BATCH) ? m->size_ : m->body_len;
}

size_t fs_message_count(const fs_message *m)
{
    if (!m)
        return 0;
    return (m->flags_ & FS__MSG_BATCH) ? m->count_ : 1;
}

fs_message *fs_message_at(const fs_message *m, size_t i)
{
    if (!m)
        return NULL;
    if (m->flags_ & FS__MSG_BATCH)
        return i < m->count_ ? m->items_[i] : NULL;
    return i == 0 ? (fs_message *)m : NULL;
}

bool fs_message_is_batch(const fs_message *m)
{
    return m && (m->flags_ & FS__MSG_BATCH);
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

const char *fs_message_content_type(const fs_message *m)
{
    return m ? m->content_type : NULL;
}

const char *fs_message_correlation_id(const fs_message *m)
{
    return m ? m->correlation_id : NULL;
}

const char *fs_message_id(const fs_message *m)
{
    return m ? m->message_id : NULL;
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

fs_broker *fs_message_broker(const fs_message *m)
{
    return m ? m->broker_ : NULL;
}

fs_subscriber *fs_message_subscriber(const fs_message *m)
{
    return m ? m->subscriber_ : NULL;
}

fs_message *fs_current_message(void)
{
    return fs__current_frame ? fs__current_frame->unit : NULL;
}

/* ------------------------------------------------------------------------ */

/* Tell the adapter about a settlement already recorded in m->settled_. */
static int settle_adapter(fs_message *m, fs_settle_state state)
{
    if (m->flags_ & FS__MSG_NO_ACK)
        return FS_OK;
    const fs_broker_ops *ops = m->broker_->ops;
    int (*fn)(void *, fs_message *) = state == FS_SETTLE_ACKED    ? ops->ack
                                      : state == FS_SETTLE_NACKED ? ops->nack
                                                                  : ops->reject;
    return fn ? fn(m->broker_->impl, m) : FS_OK;
}

int fs__settle(fs_message *m, fs_settle_state state)
{
    if (!m)
        return fs__error(FS_EINVAL, "cannot settle a NULL message");
    if (m->flags_ & FS__MSG_CHILD)
        return fs__error(FS_EINVAL, "cannot settle one message of a batch: settle the batch");
    if (m->flags_ & FS__MSG_COPY)
        return fs__error(FS_EINVAL, "cannot settle a copy of a message");
    if (!m->broker_)
        return fs__error(FS_EINVAL, "the message was not delivered by a broker");
    int expected = FS_SETTLE_NONE;
    if (!atomic_compare_exchange_strong_explicit(&m->settled_, &expected, (int)state,
                                                 memory_order_acq_rel, memory_order_acquire))
        return FS_OK; /* the first settlement won */
    return settle_adapter(m, state);
}

/*
 * Settle a message that only the calling worker can reach any more (after
 * its handler returned): no CAS needed. The caller checked it is unsettled.
 */
int fs__settle_owned(fs_message *m, fs_settle_state state)
{
    atomic_store_explicit(&m->settled_, (int)state, memory_order_relaxed);
    return settle_adapter(m, state);
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
    return (fs_settle_state)atomic_load_explicit(&((fs_message *)m)->settled_,
                                                 memory_order_acquire);
}

/* ------------------------------------------------------------------------ */

fs_outcome fs_message_fail(fs_message *m, const char *type, const char *fmt, ...)
{
    if (!m || !m->frame_) {
        fs__error(FS_EINVAL, "fs_message_fail: %s",
                  m ? "the message is not being handled" : "message is NULL");
        return FS_OUTCOME_ERROR;
    }
    fs__frame *f = m->frame_;
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
    if (!m || !m->frame_)
        return NULL;
    const fs__frame *f = m->frame_;
    return f->has_error ? f->error_type : NULL;
}

const char *fs_message_error_text(const fs_message *m)
{
    if (!m || !m->frame_)
        return NULL;
    const fs__frame *f = m->frame_;
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
    if (!m->broker_)
        return fs__error(FS_EINVAL, "fs_message_reply: the message was not delivered by a broker");
    if (!m->reply_to || !*m->reply_to)
        return fs__error(FS_ENOTFOUND, "fs_message_reply: the message has no reply-to");
    env.correlation_id = m->correlation_id;
    return fs__publish_run(m->broker_, NULL, m->reply_to, &env, 1, true);
}

/* ------------------------------------------------------------------------ */
/* Heap copies: one block holding the message, its headers and strings.      */

static fs_message *copy_envelope(const fs_envelope *env, const char *source)
{
    size_t need = fs__size_add(sizeof(fs_message), fs__pack_size(env, source ? source : ""));
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
    c->flags_ = FS__MSG_COPY;
    fs__pack(c, env, source ? source : "", c + 1);
    c->size_ = env->body_len;
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
    if (!(m->flags_ & FS__MSG_BATCH)) {
        fs_envelope env = fs__message_envelope(m);
        fs_message *c = copy_envelope(&env, m->source);
        if (c)
            c->broker_ = m->broker_;
        return c;
    }
    fs_message *b = calloc(1, sizeof *b + m->count_ * sizeof(fs_message *));
    if (!b) {
        fs__error(FS_ENOMEM, "out of memory copying a batch of %zu messages", m->count_);
        return NULL;
    }
    fs_message_init(b);
    b->flags_ = FS__MSG_COPY | FS__MSG_BATCH;
    b->items_ = (fs_message **)(b + 1);
    b->broker_ = m->broker_;
    b->source = m->source;
    for (size_t i = 0; i < m->count_; i++) {
        b->items_[i] = fs_message_copy(m->items_[i]);
        if (!b->items_[i]) {
            b->count_ = i;
            fs_message_free(b);
            return NULL;
        }
        b->items_[i]->flags_ |= FS__MSG_CHILD;
        b->size_ += b->items_[i]->body_len;
    }
    b->count_ = m->count_;
    if (b->count_)
        b->source = b->items_[0]->source;
    return b;
}

void fs_message_free(fs_message *m)
{
    if (!m)
        return;
    if (!(m->flags_ & FS__MSG_COPY)) {
        fs__log(FS_LOG_WARN, "core", "fs_message_free called on a message that is not a copy");
        return;
    }
    if (m->flags_ & FS__MSG_BATCH)
        for (size_t i = 0; i < m->count_; i++)
            free(m->items_[i]);
    free(m);
}
