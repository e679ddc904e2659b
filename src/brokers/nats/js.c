/*
 * JetStream declarations: streams (idempotent), consumers created
 * explicitly and then bound (so that nats.c never deletes a durable one),
 * and the backlog from consumer info.
 */
#include "internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define NS_PER_MS 1000000LL

int fs__nats_js_error(natsStatus s, jsErrCode jerr, const char *what)
{
    if (s == NATS_OK)
        return FS_OK;
    if (jerr) {
        const char *detail = nats_GetLastError(NULL);
        return fs_adapter_error(jerr == JSStreamNotFoundErr || jerr == JSConsumerNotFoundErr
                                    ? FS_ENOTFOUND
                                    : FS_EBROKER,
                                "nats: %s: JetStream error %d: %s", what, (int)jerr,
                                detail && *detail ? detail : natsStatus_GetText(s));
    }
    return fs__nats_status(s, what);
}

/* ------------------------------------------------------------------------ */
/* Streams                                                                  */

static bool has_subject(char **list, int n, const char *subject)
{
    for (int i = 0; i < n; i++)
        if (strcmp(list[i], subject) == 0)
            return true;
    return false;
}

static void fill_stream(jsStreamConfig *sc, const fs_nats_stream_config *cfg)
{
    jsStreamConfig_Init(sc);
    sc->Name = cfg->name;
    sc->Subjects = (const char **)cfg->subjects;
    sc->SubjectsLen = (int)cfg->subject_count;
    sc->Retention = cfg->retention == FS_NATS_RETENTION_INTEREST     ? js_InterestPolicy
                    : cfg->retention == FS_NATS_RETENTION_WORK_QUEUE ? js_WorkQueuePolicy
                                                                     : js_LimitsPolicy;
    sc->Storage = cfg->storage == FS_NATS_STORAGE_MEMORY ? js_MemoryStorage : js_FileStorage;
    if (cfg->max_msgs > 0)
        sc->MaxMsgs = cfg->max_msgs;
    if (cfg->max_bytes > 0)
        sc->MaxBytes = cfg->max_bytes;
    if (cfg->max_age_ms)
        sc->MaxAge = (int64_t)cfg->max_age_ms * NS_PER_MS;
    sc->Replicas = cfg->replicas > 0 ? cfg->replicas : 1;
    if (cfg->duplicate_window_ms)
        sc->Duplicates = (int64_t)cfg->duplicate_window_ms * NS_PER_MS;
}

/* True when the stream as it is already has what `want` asks for. */
static bool stream_matches(const jsStreamConfig *have, const jsStreamConfig *want)
{
    for (int i = 0; i < want->SubjectsLen; i++)
        if (!has_subject((char **)have->Subjects, have->SubjectsLen, want->Subjects[i]))
            return false;
    if (!want->SubjectsLen && !has_subject((char **)have->Subjects, have->SubjectsLen, want->Name))
        return false;
    return have->Retention == want->Retention && have->Storage == want->Storage &&
           have->MaxMsgs == want->MaxMsgs && have->MaxBytes == want->MaxBytes &&
           have->MaxAge == want->MaxAge && have->Replicas == want->Replicas &&
           (!want->Duplicates || have->Duplicates == want->Duplicates);
}

int fs__nats_declare_stream(nats_broker *b, const fs_nats_stream_config *cfg)
{
    FS_CHECK_ARG(cfg && cfg->name && *cfg->name, "nats: a stream needs a name");
    FS_CHECK_ARG(!strpbrk(cfg->name, ".*> \t"),
                 "nats: stream name '%s' has a '.', '*', '>' or whitespace", cfg->name);
    FS_CHECK_ARG(cfg->subjects || !cfg->subject_count, "nats: stream %s: NULL subjects", cfg->name);
    for (size_t i = 0; i < cfg->subject_count; i++) {
        int rc = fs__nats_check_subject(cfg->subjects[i], true, "stream subject");
        if (rc)
            return rc;
    }
    int rc;
    jsCtx *js;
    if (!fs__nats_conn(b, &js, &rc) || !js)
        return rc ? rc : fs_adapter_error(FS_ECLOSED, "nats: not connected");
    jsStreamConfig sc;
    fill_stream(&sc, cfg);
    jsStreamInfo *si = NULL;
    jsErrCode jerr = 0;
    natsStatus s = js_AddStream(&si, js, &sc, NULL, &jerr);
    if (s == NATS_OK) {
        jsStreamInfo_Destroy(si);
        return FS_OK;
    }
    if (jerr != JSStreamNameExistErr)
        return fs__nats_js_error(s, jerr, "declare stream");
    /* It exists: update it when it lacks something, with the union of the subjects. */
    jerr = 0;
    s = js_GetStreamInfo(&si, js, cfg->name, NULL, &jerr);
    if (s != NATS_OK)
        return fs__nats_js_error(s, jerr, "stream info");
    if (stream_matches(si->Config, &sc)) {
        jsStreamInfo_Destroy(si);
        return FS_OK;
    }
    int have = si->Config->SubjectsLen;
    size_t total = (size_t)have + cfg->subject_count;
    const char **subjects = malloc((total ? total : 1) * sizeof *subjects);
    if (!subjects) {
        jsStreamInfo_Destroy(si);
        return fs_adapter_error(FS_ENOMEM, "nats: out of memory");
    }
    int n = 0;
    for (int i = 0; i < have; i++)
        subjects[n++] = si->Config->Subjects[i];
    for (size_t i = 0; i < cfg->subject_count; i++)
        if (!has_subject((char **)subjects, n, cfg->subjects[i]))
            subjects[n++] = cfg->subjects[i];
    sc.Subjects = subjects;
    sc.SubjectsLen = n;
    if (!sc.Duplicates)
        sc.Duplicates = si->Config->Duplicates;
    jsStreamInfo *ui = NULL;
    jerr = 0;
    s = js_UpdateStream(&ui, js, &sc, NULL, &jerr);
    jsStreamInfo_Destroy(ui);
    free(subjects);
    jsStreamInfo_Destroy(si);
    if (s != NATS_OK)
        return fs__nats_js_error(s, jerr, "update stream");
    fs_adapter_log(FS_LOG_INFO, FS_NATS_COMPONENT, "stream %s updated", cfg->name);
    return FS_OK;
}

int fs_nats_delete_stream(fs_broker *broker, const char *name)
{
    FS_CHECK_ARG(fs_broker_is_nats(broker), "fs_nats_delete_stream: not a NATS broker");
    FS_CHECK_ARG(name && *name, "fs_nats_delete_stream: empty name");
    int rc = fs_broker_connect(broker);
    if (rc)
        return rc;
    nats_broker *b = fs_broker_impl(broker);
    jsCtx *js;
    if (!fs__nats_conn(b, &js, &rc) || !js)
        return rc ? rc : FS_ECLOSED;
    jsErrCode jerr = 0;
    return fs__nats_js_error(js_DeleteStream(js, name, NULL, &jerr), jerr, "delete stream");
}

int fs_nats_declare_stream(fs_broker *broker, const fs_nats_stream_config *cfg)
{
    FS_CHECK_ARG(fs_broker_is_nats(broker), "fs_nats_declare_stream: not a NATS broker");
    int rc = fs_broker_connect(broker);
    return rc ? rc : fs__nats_declare_stream(fs_broker_impl(broker), cfg);
}

/* ------------------------------------------------------------------------ */
/* Consumers                                                                */

static void fill_consumer(nsub *s, jsConsumerConfig *cc, const char *deliver_subject)
{
    jsConsumerConfig_Init(cc);
    cc->Durable = s->durable;
    cc->AckPolicy = js_AckExplicit;
    cc->AckWait = (int64_t)s->ack_wait_ms * NS_PER_MS;
    cc->MaxDeliver = s->max_deliver ? (int64_t)s->max_deliver : -1;
    cc->BackOff = s->backoff_ns;
    cc->BackOffLen = s->backoff_len;
    cc->FilterSubject = s->subject;
    cc->DeliverPolicy = s->deliver == FS_NATS_DELIVER_NEW    ? js_DeliverNew
                        : s->deliver == FS_NATS_DELIVER_LAST ? js_DeliverLast
                                                             : js_DeliverAll;
    cc->MaxAckPending = s->max_ack_pending;
    if (!s->durable)
        cc->InactiveThreshold = 60000 * NS_PER_MS; /* an ephemeral outliving a short outage */
    if (s->kind == NSUB_PUSH) {
        cc->DeliverSubject = deliver_subject;
        cc->DeliverGroup = s->queue;
    }
}

/* Create (or find) the consumer, then bind a natsSubscription to it. */
int fs__nats_consumer_ensure(nsub *s)
{
    nats_broker *b = s->b;
    int rc;
    jsCtx *js;
    natsConnection *nc = fs__nats_conn(b, &js, &rc);
    if (!nc || !js)
        return rc ? rc : FS_ECLOSED;
    if (s->declare && (rc = fs__nats_declare_stream(b, s->declare)))
        return rc;
    char inbox[128] = "";
    if (s->kind == NSUB_PUSH) {
        /* A durable push consumer keeps its deliver subject: the deliver group decides it. */
        snprintf(inbox, sizeof inbox, "_INBOX.fs.%s.%s", s->stream,
                 s->durable ? s->durable : "eph");
        if (!s->durable) {
            natsInbox *ib = NULL;
            if (natsInbox_Create(&ib) == NATS_OK)
                snprintf(inbox, sizeof inbox, "%s", (const char *)ib);
            natsInbox_Destroy(ib);
        }
    }
    jsConsumerConfig cc;
    fill_consumer(s, &cc, inbox);
    jsConsumerInfo *ci = NULL;
    jsErrCode jerr = 0;
    natsStatus st = NATS_OK;
    if (!s->consumer) {
        st = js_AddConsumer(&ci, js, s->stream, &cc, NULL, &jerr);
        if (st != NATS_OK && s->durable &&
            (jerr == JSConsumerNameExistErr || jerr == JSConsumerExistingActiveErr ||
             jerr == JSConsumerCreateErr)) {
            /* It exists with other settings: update what may change, else keep it as it is. */
            jerr = 0;
            st = js_UpdateConsumer(&ci, js, s->stream, &cc, NULL, &jerr);
            if (st != NATS_OK) {
                fs_adapter_log(FS_LOG_WARN, FS_NATS_COMPONENT,
                               "consumer %s on stream %s exists with other settings that cannot "
                               "change (%s); using it as it is",
                               s->durable, s->stream, nats_GetLastError(NULL));
                jerr = 0;
                st = js_GetConsumerInfo(&ci, js, s->stream, s->durable, NULL, &jerr);
            }
        }
        if (st != NATS_OK)
            return fs__nats_js_error(st, jerr, "create consumer");
        s->consumer = strdup(ci->Name);
        s->ephemeral = !s->durable;
        free(s->ack_prefix);
        size_t plen = strlen(s->stream) + strlen(ci->Name) + sizeof "$JS.ACK.." + 1;
        s->ack_prefix = malloc(plen);
        if (s->ack_prefix)
            s->ack_prefix_len =
                (size_t)snprintf(s->ack_prefix, plen, "$JS.ACK.%s.%s.", s->stream, ci->Name);
        if (ci->Config && ci->Config->AckWait > 0)
            s->ack_wait_ms = (unsigned)(ci->Config->AckWait / NS_PER_MS);
        if (ci->Config && ci->Config->BackOffLen > 0 && ci->Config->BackOff[0] > 0)
            s->ack_wait_ms = (unsigned)(ci->Config->BackOff[0] / NS_PER_MS);
        jsConsumerInfo_Destroy(ci);
        if (!s->consumer)
            return fs_adapter_error(FS_ENOMEM, "nats: out of memory");
    }
    jsSubOptions so;
    jsSubOptions_Init(&so);
    so.Stream = s->stream;
    so.Consumer = s->consumer;
    so.ManualAck = true;
    jerr = 0;
    natsSubscription *ns = NULL;
    if (s->kind == NSUB_PULL) {
        st = js_PullSubscribe(&ns, js, s->subject, NULL, NULL, &so, &jerr);
    } else {
        so.Queue = s->queue;
        st = js_SubscribeSync(&ns, js, s->subject, NULL, &so, &jerr);
        if (st == NATS_OK)
            natsSubscription_SetPendingLimits(ns, -1, -1);
    }
    if (st != NATS_OK)
        return fs__nats_js_error(st, jerr, "bind to the consumer");
    s->ns = ns;
    return FS_OK;
}

/* Delete an ephemeral consumer we created (a durable one stays). */
void fs__nats_consumer_forget(nsub *s)
{
    if (s->ephemeral && s->consumer) {
        int rc;
        jsCtx *js;
        if (fs__nats_conn(s->b, &js, &rc) && js)
            js_DeleteConsumer(js, s->stream, s->consumer, NULL, NULL);
    }
    free(s->consumer);
    s->consumer = NULL;
}

int fs__nats_backlog(nats_broker *b, nsub *s, int timeout_ms, uint64_t *out)
{
    if (s->kind == NSUB_CORE)
        return fs_adapter_error(FS_EUNSUPPORTED,
                                "nats: %s is a core subscription: no backlog on the server",
                                s->subject);
    if (!s->consumer)
        return fs_adapter_error(FS_ESTATE, "nats: subscription %s has not started", s->subject);
    int rc;
    jsCtx *js;
    if (!fs__nats_conn(b, &js, &rc) || !js)
        return rc ? rc : FS_ECLOSED;
    jsOptions jo;
    jsOptions_Init(&jo);
    jo.Wait = timeout_ms > 0 ? timeout_ms : 5000;
    jsConsumerInfo *ci = NULL;
    jsErrCode jerr = 0;
    natsStatus st = js_GetConsumerInfo(&ci, js, s->stream, s->consumer, &jo, &jerr);
    if (st != NATS_OK)
        return fs__nats_js_error(st, jerr, "consumer info");
    *out = ci->NumPending + (uint64_t)(ci->NumAckPending > 0 ? ci->NumAckPending : 0);
    jsConsumerInfo_Destroy(ci);
    return FS_OK;
}
