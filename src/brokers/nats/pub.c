/*
 * Publishing: core (buffered by nats.c, also while reconnecting), JetStream
 * (waits for the PubAck; a batch is published asynchronously and waits for
 * every PubAck), and native request/reply.
 */
#include "internal.h"
#include "kit/compiler.h"

#include <stdlib.h>
#include <string.h>

/* What a publisher resolved once (prepare_destination). */
typedef struct ndest {
    bool js;
    char *stream;
    int timeout_ms;
} ndest;

static int fail(const char **etype, const char *type, int rc)
{
    *etype = type;
    return rc;
}

/*
 * A publish subject checked once per thread while it stays the same (the
 * usual case: a loop publishing to one subject), else checked again.
 */
static _Thread_local char last_subject[128] FS_TLS_MODEL;

static int check_publish_subject(const char *destination)
{
    if (FS_LIKELY(last_subject[0] && strcmp(destination, last_subject) == 0))
        return FS_OK;
    int rc = fs__nats_check_subject(destination, false, "publish");
    size_t len = strlen(destination);
    if (!rc && len < sizeof last_subject)
        memcpy(last_subject, destination, len + 1);
    return rc;
}

static int check_options(const char *destination, const fs_nats_publish_options *po)
{
    FS_CHECK_ARG(!po || po->timeout_ms >= 0, "nats: publish to %s: negative timeout", destination);
    FS_CHECK_ARG(!po || !po->stream || (*po->stream && !strpbrk(po->stream, ".*> ")),
                 "nats: publish to %s: bad stream name", destination);
    return check_publish_subject(destination);
}

int fs__nats_prepare_destination(void *impl, const char *destination, const void *options,
                                 void **dest_out)
{
    (void)impl;
    const fs_nats_publish_options *po = options;
    *dest_out = NULL;
    int rc = check_options(destination, po);
    if (rc || !po)
        return rc;
    ndest *d = calloc(1, sizeof *d);
    if (!d || (po->stream && !(d->stream = strdup(po->stream)))) {
        free(d);
        return fs_adapter_error(FS_ENOMEM, "nats: out of memory");
    }
    d->js = po->jetstream || po->stream;
    d->timeout_ms = po->timeout_ms;
    *dest_out = d;
    return FS_OK;
}

void fs__nats_release_destination(void *impl, void *dest)
{
    (void)impl;
    ndest *d = dest;
    if (d)
        free(d->stream);
    free(d);
}

/* ------------------------------------------------------------------------ */
/* JetStream                                                                */

/*
 * The Nats-Msg-Id and Nats-Expected-Stream headers are on the message
 * (fs__nats_encode_js): options that add headers would make nats.c parse
 * the block we wrote into a hash table of copies again.
 */
static void pub_options(jsPubOptions *po, int timeout_ms)
{
    jsPubOptions_Init(po);
    po->MaxWait = timeout_ms > 0 ? timeout_ms : 5000;
}

static int js_publish_one(jsCtx *js, natsMsg *m, int timeout_ms, const char **etype)
{
    jsPubOptions po;
    pub_options(&po, timeout_ms);
    jsPubAck *pa = NULL;
    jsErrCode jerr = 0;
    natsStatus st = js_PublishMsg(&pa, js, m, &po, &jerr);
    jsPubAck_Destroy(pa);
    if (st == NATS_OK)
        return FS_OK;
    *etype = st == NATS_NO_RESPONDERS ? "NoStreamResponseError" : fs__nats_error_type(st);
    if (st == NATS_NO_RESPONDERS)
        return fs_adapter_error(FS_ENOTFOUND,
                                "nats: JetStream publish to %s: no stream captures it",
                                natsMsg_GetSubject(m));
    return fs__nats_js_error(st, jerr, "JetStream publish");
}

/* A batch: asynchronous publishes on a context of its own, then wait for every PubAck. */
typedef struct batch_state {
    _Atomic int failed;
    _Atomic int first_err; /* jsErrCode or natsStatus of the first failure */
} batch_state;

static void on_async_error(jsCtx *js, jsPubAckErr *pae, void *closure)
{
    (void)js;
    batch_state *bs = closure;
    int zero = 0;
    atomic_compare_exchange_strong(&bs->first_err, &zero,
                                   pae->ErrCode ? (int)pae->ErrCode : (int)pae->Err);
    atomic_fetch_add(&bs->failed, 1);
}

static int js_publish_batch(natsConnection *nc, const char *destination, const fs_envelope *msgs,
                            size_t count, const char *stream, int timeout_ms, const char **etype)
{
    batch_state bs = {0, 0};
    jsOptions jo;
    jsOptions_Init(&jo);
    jo.PublishAsync.MaxPending = count > 4096 ? 4096 : (int64_t)count;
    jo.PublishAsync.StallWait = timeout_ms > 0 ? timeout_ms : 5000; /* > 4096: wait for room */
    jo.PublishAsync.ErrHandler = on_async_error;
    jo.PublishAsync.ErrHandlerClosure = &bs;
    jsCtx *js = NULL;
    natsStatus st = natsConnection_JetStream(&js, nc, &jo);
    if (st != NATS_OK)
        return fail(etype, fs__nats_error_type(st), fs__nats_status(st, "JetStream context"));
    jsPubOptions po;
    pub_options(&po, timeout_ms);
    int rc = FS_OK;
    size_t sent = 0;
    for (size_t i = 0; i < count && !rc; i++) {
        natsMsg *m = NULL;
        rc = fs__nats_encode_js(destination, &msgs[i], stream, &m);
        if (rc) {
            *etype = "ValueError";
            break;
        }
        st = js_PublishMsgAsync(js, &m, &po); /* takes the message on success */
        if (st != NATS_OK) {
            natsMsg_Destroy(m);
            rc = fail(etype, fs__nats_error_type(st), fs__nats_status(st, "JetStream publish"));
        } else {
            sent++;
        }
    }
    jsPubOptions_Init(&po);
    po.MaxWait = timeout_ms > 0 ? timeout_ms : 5000;
    st = sent ? js_PublishAsyncComplete(js, &po) : NATS_OK;
    if (st != NATS_OK) {
        natsMsgList pending = {0};
        js_PublishAsyncGetPendingList(&pending, js);
        int left = pending.Count;
        natsMsgList_Destroy(&pending);
        if (!rc)
            rc = fail(etype, "TimeoutError",
                      fs_adapter_error(FS_ETIMEDOUT,
                                       "nats: JetStream batch to %s: %d of %zu PubAcks missing "
                                       "after %d ms",
                                       destination, left, sent, (int)po.MaxWait));
    }
    int failed = atomic_load(&bs.failed);
    if (!rc && failed) {
        int code = atomic_load(&bs.first_err);
        rc = fail(etype, code == (int)NATS_NO_RESPONDERS ? "NoStreamResponseError" : "APIError",
                  fs_adapter_error(FS_EBROKER,
                                   "nats: JetStream batch to %s: %d of %zu messages refused "
                                   "(first error %d)",
                                   destination, failed, count, code));
    }
    jsCtx_Destroy(js);
    return rc;
}

/* ------------------------------------------------------------------------ */
/* Publish                                                                  */

int fs__nats_publish(void *impl, void *dest, const char *destination, const fs_envelope *msgs,
                     size_t count, const char **etype)
{
    nats_broker *b = impl;
    const fs_nats_publish_options *po = msgs[0].broker_options;
    const ndest *d = dest;
    bool js = po ? (po->jetstream || po->stream) : d && d->js;
    const char *stream = po ? po->stream : d ? d->stream : NULL;
    int timeout_ms = po ? po->timeout_ms : d ? d->timeout_ms : 0;
    int rc;
    if (po && !d && (rc = check_options(destination, po)))
        return fail(etype, "ValueError", rc);
    if (!d && !po && (rc = check_publish_subject(destination)))
        return fail(etype, "ValueError", rc);
    jsCtx *jctx = NULL;
    natsConnection *nc = fs__nats_conn(b, &jctx, &rc);
    if (!nc || (js && !jctx))
        return fail(etype, "ConnectionClosedError", nc ? FS_ECLOSED : rc);
    if (js && count > 1)
        return js_publish_batch(nc, destination, msgs, count, stream, timeout_ms, etype);
    for (size_t i = 0; i < count; i++) {
        natsMsg *m = NULL;
        /* core: reply_to is the NATS reply subject (FastStream's publish(reply_to=...)) */
        rc = js ? fs__nats_encode_js(destination, &msgs[i], stream, &m)
                : fs__nats_encode(destination, msgs[i].reply_to, &msgs[i], false, &m);
        if (rc)
            return fail(etype, "ValueError", rc);
        if (js) {
            rc = js_publish_one(jctx, m, timeout_ms, etype);
        } else {
            natsStatus st = natsConnection_PublishMsg(nc, m);
            if (st != NATS_OK)
                rc = fail(etype, fs__nats_error_type(st), fs__nats_status(st, "publish"));
        }
        natsMsg_Destroy(m);
        if (rc)
            return rc;
    }
    return FS_OK;
}

/* ------------------------------------------------------------------------ */
/* Request / reply                                                          */

/* A heap copy of a reply for the caller. */
static int reply_copy(natsMsg *msg, fs_message **out)
{
    fs_message tmp;
    fs_message_init(&tmp);
    fs__nats_hdrs h = {0};
    int rc = fs__nats_decode(msg, false, &h, &tmp);
    if (!rc) {
        fs_envelope env = FS_ENVELOPE_INIT;
        env.body = tmp.body;
        env.body_len = tmp.body_len;
        env.headers = tmp.headers;
        env.header_count = tmp.header_count;
        env.content_type = tmp.content_type;
        env.correlation_id = tmp.correlation_id;
        env.message_id = tmp.message_id;
        *out = fs_message_new_copy(&env, tmp.source);
        if (!*out)
            rc = FS_ENOMEM;
    }
    fs__nats_hdrs_free(&h);
    return rc;
}

static int request_error(natsStatus st, const char *destination, int timeout_ms, const char **etype)
{
    *etype = fs__nats_error_type(st);
    if (st == NATS_NO_RESPONDERS)
        return fs_adapter_error(FS_ENOTFOUND, "nats: request to %s: no responders", destination);
    if (st == NATS_TIMEOUT)
        return fs_adapter_error(FS_ETIMEDOUT, "nats: request to %s: no reply within %d ms",
                                destination, timeout_ms);
    return fs__nats_status(st, "request");
}

/* JetStream request, as FastStream: a core inbox, its name in the reply_to header. */
static int js_request(natsConnection *nc, jsCtx *js, const char *destination,
                      const fs_envelope *msg, const char *stream, int timeout_ms,
                      fs_message **reply, const char **etype)
{
    natsInbox *inbox = NULL;
    natsSubscription *ns = NULL;
    natsStatus st = natsInbox_Create(&inbox);
    if (st == NATS_OK)
        st = natsConnection_SubscribeSync(&ns, nc, (const char *)inbox);
    if (st != NATS_OK) {
        natsInbox_Destroy(inbox);
        return fail(etype, fs__nats_error_type(st), fs__nats_status(st, "request inbox"));
    }
    fs_envelope env = *msg;
    env.reply_to = (const char *)inbox;
    natsMsg *m = NULL;
    int rc = fs__nats_encode_js(destination, &env, stream, &m);
    if (rc)
        *etype = "ValueError";
    else
        rc = js_publish_one(js, m, timeout_ms, etype);
    natsMsg_Destroy(m);
    if (!rc) {
        natsMsg *r = NULL;
        st = natsSubscription_NextMsg(&r, ns, timeout_ms);
        if (st == NATS_OK) {
            rc = reply_copy(r, reply);
            natsMsg_Destroy(r);
        } else {
            rc = request_error(st, destination, timeout_ms, etype);
        }
    }
    natsSubscription_Destroy(ns);
    natsInbox_Destroy(inbox);
    return rc;
}

int fs__nats_request(void *impl, const char *destination, const fs_envelope *msg, int timeout_ms,
                     fs_message **reply, const char **etype)
{
    nats_broker *b = impl;
    const fs_nats_publish_options *po = msg->broker_options;
    int rc = check_options(destination, po);
    if (rc)
        return fail(etype, "ValueError", rc);
    if (timeout_ms < 0)
        timeout_ms = 1000000000;
    jsCtx *js = NULL;
    natsConnection *nc = fs__nats_conn(b, &js, &rc);
    if (!nc || !js)
        return fail(etype, "ConnectionClosedError", nc ? FS_ECLOSED : rc);
    if (po && (po->jetstream || po->stream))
        return js_request(nc, js, destination, msg, po->stream, timeout_ms, reply, etype);
    natsMsg *m = NULL;
    if ((rc = fs__nats_encode(destination, NULL, msg, false, &m)))
        return fail(etype, "ValueError", rc);
    natsMsg *r = NULL;
    natsStatus st = natsConnection_RequestMsg(&r, nc, m, timeout_ms);
    natsMsg_Destroy(m);
    if (st != NATS_OK)
        return request_error(st, destination, timeout_ms, etype);
    rc = reply_copy(r, reply);
    natsMsg_Destroy(r);
    return rc;
}
