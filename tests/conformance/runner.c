/*
 * Running one scenario on one column: a private registry, fresh sources,
 * the driver's broker. Runs on any thread and asserts nothing: it records
 * what happened (the exposition, the broker's state, what the handler saw)
 * for conf_check() to judge on the test thread.
 */
#include "conformance.h"

#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define WAIT_MS 8000
#define QUIET_MS 150
#define BODY_LEN 11 /* "message-001" */

typedef struct conf_ctx {
    const conf_driver *d;
    const conf_row *row;
    conf_result *res;
    pthread_mutex_t mu;
    atomic_uint inside;
    atomic_uint max_inside;
    unsigned concurrency;
    fs_broker *broker; /* for publishes from the handler */
    const void *out_opts;
    /* the CONF_IDS subscriber on `out` */
    atomic_uint out_seen;
} conf_ctx;

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static void sleep_ms(unsigned ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

static void note(conf_result *res, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Append to res->error; from the runner's thread or a handler's (one lock for all). */
static void note(conf_result *res, const char *fmt, ...)
{
    static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
    pthread_mutex_lock(&lock);
    size_t len = strlen(res->error);
    if (len + 2 < sizeof res->error) {
        if (len)
            res->error[len++] = ';', res->error[len++] = ' ';
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(res->error + len, sizeof res->error - len, fmt, ap);
        va_end(ap);
    }
    pthread_mutex_unlock(&lock);
}

/* ------------------------------------------------------------------------ */
/* The handler (worker threads: records, never asserts)                     */

static const char *label_fn(const fs_message *msg, void *user)
{
    (void)user;
    return msg ? "handled" : "outside";
}

/* FastStream's ids: present, stable, a uuid4 correlation id, message id = correlation id
 * (Kafka: "{offset}-{timestamp}"). */
static bool ids_ok(fs_message *m, conf_delivery *dv)
{
    const char *c1 = fs_message_correlation_id(m), *c2 = fs_message_correlation_id(m);
    const char *id = fs_message_id(m);
    snprintf(dv->correlation_id, sizeof dv->correlation_id, "%s", c1 ? c1 : "(null)");
    snprintf(dv->why, sizeof dv->why, "correlation id %s (again: %s), message id %s",
             c1 ? c1 : "(null)", c2 ? c2 : "(null)", id ? id : "(null)");
    bool id_ok = id && c1 && strcmp(id, c1) == 0;
#if CONF_CORE_V2
    /* Kafka (FastStream's parser): the message id is "{offset}-{timestamp}" instead. */
    char kid[48];
    if (id && !id_ok && fs_message_offset(m) >= 0) {
        snprintf(kid, sizeof kid, "%lld-%lld", (long long)fs_message_offset(m),
                 (long long)fs_message_timestamp_ms(m));
        id_ok = strcmp(id, kid) == 0;
    }
#endif
    if (!c1 || !c2 || !id || strcmp(c1, c2) != 0 || !id_ok)
        return false;
    return strlen(c1) == 36 && c1[8] == '-' && c1[13] == '-' && c1[18] == '-' && c1[23] == '-' &&
           c1[14] == '4';
}

static int publish_out(conf_ctx *x)
{
    fs_envelope e = FS_ENVELOPE_INIT;
    e.body = "out";
    e.body_len = 3;
    e.broker_options = x->out_opts;
    return fs_publish(x->broker, x->res->out, &e);
}

static fs_outcome handle(fs_message *m, void *user)
{
    conf_ctx *x = user;
    conf_result *res = x->res;
    const conf_row *row = x->row;
    uint64_t t = now_ns();
    pthread_mutex_lock(&x->mu);
    unsigned i = res->n_deliveries++;
    if (i < CONF_MAX_DELIVERIES) {
        conf_delivery *dv = &res->d[i];
        dv->t_ns = t;
        dv->count = fs_message_count(m);
        dv->size = fs_message_size(m);
#if CONF_CORE_V2
        dv->delivery_count = fs_message_delivery_count(m);
#endif
        if (row->kind == CONF_IDS)
            dv->ids_ok = ids_ok(m, dv);
    }
    pthread_mutex_unlock(&x->mu);

    if (row->kind == CONF_CONCURRENT) {
        /* A barrier only `concurrency` handlers at once can pass (bounded wait). */
        unsigned in = atomic_fetch_add(&x->inside, 1) + 1;
        unsigned mx = atomic_load(&x->max_inside);
        while (in > mx && !atomic_compare_exchange_weak(&x->max_inside, &mx, in))
            ;
        for (int w = 0; w < 4000 && atomic_load(&x->max_inside) < x->concurrency; w++)
            sleep_ms(1);
        atomic_fetch_sub(&x->inside, 1);
    }
    if (row->kind == CONF_SLOW)
        sleep_ms(20);
    if (row->kind == CONF_REQUEST)
        fs_message_reply(m, "pong", 4, NULL, 0, NULL);
    if (row->kind == CONF_LABELS || row->kind == CONF_IDS)
        if (publish_out(x) < 0)
            note(res, "publish from the handler failed: %s", fs_last_error());

    const conf_step *s = i == 0 ? &row->first : &row->later;
    if (s->settle == 1)
        fs_message_ack(m);
    else if (s->settle == 2)
        fs_message_nack(m);
    else if (s->settle == 3)
        fs_message_reject(m);
    if (s->outcome == FS_OUTCOME_ERROR && s->error_type)
        return fs_message_fail(m, s->error_type, "conformance: %s", row->name);
    return s->outcome;
}

/* The CONF_IDS subscriber on `out`: the correlation id the handler's publish carried. */
static fs_outcome handle_out(fs_message *m, void *user)
{
    conf_ctx *x = user;
    const char *c = fs_message_correlation_id(m);
    pthread_mutex_lock(&x->mu);
    snprintf(x->res->out_correlation, sizeof x->res->out_correlation, "%s", c ? c : "(null)");
    pthread_mutex_unlock(&x->mu);
    atomic_fetch_add(&x->out_seen, 1);
    return FS_OUTCOME_OK;
}

/* ------------------------------------------------------------------------ */
/* Running                                                                  */

typedef struct conf_side {
    fs_broker *b;
    fs_subscriber *sub;
    const char *source;
    _Alignas(max_align_t) unsigned char sub_scratch[CONF_SCRATCH];
    _Alignas(max_align_t) unsigned char pub_scratch[CONF_SCRATCH];
} conf_side;

static int add_prometheus(conf_result *res, fs_broker *b, fs_registry *reg, bool labels)
{
    static const fs_prometheus_label custom[] = {
        {"team", "conf", NULL, NULL},
        {"origin", NULL, label_fn, NULL},
    };
    fs_prometheus_options po = FS_PROMETHEUS_OPTIONS_INIT;
    po.registry = reg;
    po.app_name = "conf";
    if (labels) {
        po.labels = custom;
        po.label_count = 2;
    }
    int rc = fs_broker_add_prometheus(b, &po);
    if (rc < 0)
        note(res, "fs_broker_add_prometheus: %s", fs_last_error());
    return rc;
}

static int subscribe(conf_ctx *x, conf_side *s, fs_handler_fn fn)
{
    const conf_row *row = x->row;
    if (x->d->prepare)
        x->d->prepare(s->source);
    fs_subscriber_options so = FS_SUBSCRIBER_OPTIONS_INIT;
    so.ack_policy = row->policy != FS_ACK_POLICY_DEFAULT ? row->policy : x->d->policy;
    so.concurrency = fn == handle ? x->concurrency : 1;
    if (row->kind == CONF_BATCH && fn == handle) {
        so.batch_size = row->messages;
        so.batch_timeout_ms = 2000;
    }
    so.broker_options = x->d->sub_options ? x->d->sub_options(s->source, s->sub_scratch) : NULL;
#if CONF_CORE_V2
    so.redelivery.delay_ms = CONF_REDELIVERY_DELAY_MS;
    so.redelivery.max_delay_ms = 1000;
    so.redelivery.max_deliveries = row->kind == CONF_REDELIVERY ? CONF_REDELIVERY_MAX : 0;
#endif
    int rc = fs_subscribe(s->b, s->source, fn, x, &so, &s->sub);
    if (rc < 0)
        note(x->res, "fs_subscribe(%s): %s", s->source, fs_last_error());
    return rc;
}

static int start(conf_ctx *x, conf_side *s)
{
    int rc = fs_broker_start(s->b);
    if (rc < 0) {
        note(x->res, "fs_broker_start: %s", fs_last_error());
        return rc;
    }
    if (x->d->wait_ready && (rc = x->d->wait_ready(s->b, s->source)) < 0)
        note(x->res, "%s never became ready", s->source);
    return rc;
}

static int put_all(conf_ctx *x, conf_side *s)
{
    unsigned n = x->row->messages ? x->row->messages : 1;
    for (unsigned i = 0; i < n; i++) {
        char body[16];
        snprintf(body, sizeof body, "message-%03u", (i + 1) % 1000);
        int rc = x->d->put(s->b, s->source, body, BODY_LEN);
        if (rc < 0) {
            note(x->res, "put to %s: %s", s->source, fs_last_error());
            return rc;
        }
    }
    return FS_OK;
}

/* Wait for what the cell expects, then a quiet while for anything unexpected. */
static void settle_wait(conf_ctx *x, conf_side *s, unsigned units, unsigned per_unit)
{
    if (!s->sub)
        return;
    if (units && fs_subscriber_wait_handled(s->sub, (uint64_t)units * per_unit, WAIT_MS) < 0)
        note(x->res, "%s: handled %llu of %u messages within %d ms", s->source,
             (unsigned long long)fs_subscriber_handled(s->sub), units * per_unit, WAIT_MS);
}

static void run_inner(conf_ctx *x, fs_registry *reg)
{
    const conf_driver *d = x->d;
    const conf_row *row = x->row;
    conf_result *res = x->res;
    conf_side a = {0}, b2 = {0}, out = {0};
    a.source = res->source;
    b2.source = res->source2;
    out.source = res->out;
    unsigned per_unit = row->kind == CONF_BATCH ? row->messages : 1;
    bool labels = row->kind == CONF_LABELS;
    const void *fail_opts = NULL;

    if (d->broker_new(&a.b) < 0) {
        note(res, "broker_new: %s", fs_last_error());
        return;
    }
    x->broker = a.b;
    x->out_opts = d->pub_options ? d->pub_options(res->out, out.pub_scratch) : NULL;
    if (row->kind == CONF_PUBLISH_FAIL && d->fail_publish_setup(a.b, res->out, &fail_opts) < 0)
        note(res, "fail_publish_setup: %s", fs_last_error());
    if (add_prometheus(res, a.b, reg, labels) < 0)
        goto done;
    if (row->kind == CONF_DOUBLE_MW)
        res->second_mw_rc = add_prometheus(&(conf_result){0}, a.b, reg, false);

    switch (row->kind) {
    case CONF_PUBLISH_OK:
    case CONF_PUBLISH_FAIL:
    case CONF_PUBLISH_UTF8: {
        if (fs_broker_connect(a.b) < 0) {
            note(res, "fs_broker_connect: %s", fs_last_error());
            goto done;
        }
        fs_envelope e = FS_ENVELOPE_INIT;
        e.body = "published";
        e.body_len = 9;
        e.broker_options = row->kind == CONF_PUBLISH_FAIL ? fail_opts : x->out_opts;
        if (row->kind == CONF_PUBLISH_UTF8) {
            if (!d->json_pub_options) {
                note(res, "the driver has no JSON format (json_pub_options) for this row");
                goto done;
            }
            e.body = "\xff\xfe not UTF-8";
            e.body_len = strlen(e.body);
            e.broker_options = d->json_pub_options(res->out, out.pub_scratch);
        }
        res->publish_rc = fs_publish(a.b, res->out, &e);
        break;
    }
    case CONF_TWO_BROKERS:
        if (d->broker_new(&b2.b) < 0) {
            note(res, "broker_new (second): %s", fs_last_error());
            goto done;
        }
        if (add_prometheus(res, b2.b, reg, false) < 0 || subscribe(x, &a, handle) < 0 ||
            subscribe(x, &b2, handle) < 0 || start(x, &a) < 0 || start(x, &b2) < 0 ||
            put_all(x, &a) < 0 || put_all(x, &b2) < 0)
            goto done;
        settle_wait(x, &a, res->expect.units, 1);
        settle_wait(x, &b2, res->expect.units, 1);
        break;
    case CONF_REQUEST: {
        if (subscribe(x, &a, handle) < 0 || start(x, &a) < 0)
            goto done;
        fs_envelope e = FS_ENVELOPE_INIT;
        e.body = "message-001";
        e.body_len = BODY_LEN;
        e.broker_options = d->pub_options ? d->pub_options(a.source, a.pub_scratch) : NULL;
        fs_message *reply = NULL;
        res->request_rc = fs_request(a.b, a.source, &e, WAIT_MS, &reply);
        if (res->request_rc < 0)
            note(res, "fs_request: %s", fs_last_error());
        if (reply)
            snprintf(res->reply_body, sizeof res->reply_body, "%.*s",
                     (int)fs_message_body_len(reply), (const char *)fs_message_body(reply));
        fs_message_free(reply);
        settle_wait(x, &a, res->expect.units, 1);
        break;
    }
    case CONF_PATTERN: {
        if (!d->pattern_sub) {
            note(res, "the driver has no pattern subscriptions (pattern_sub) for this row");
            goto done;
        }
        char pattern[sizeof res->source];
        const void *po =
            d->pattern_sub(res->source, pattern, res->source2, sizeof pattern, a.sub_scratch);
        fs_subscriber_options so = FS_SUBSCRIBER_OPTIONS_INIT;
        so.ack_policy = d->policy;
        so.broker_options = po;
        if (fs_subscribe(a.b, pattern, handle, x, &so, &a.sub) < 0) {
            note(res, "fs_subscribe(%s): %s", pattern, fs_last_error());
            goto done;
        }
        a.source = pattern; /* ready on the pattern, the message put on the concrete name */
        if (start(x, &a) < 0)
            goto done;
        a.source = res->source2;
        if (put_all(x, &a) < 0)
            goto done;
        settle_wait(x, &a, res->expect.units, 1);
        break;
    }
    default:
        if (row->kind == CONF_IDS) {
            out.b = a.b;
            if (subscribe(x, &out, handle_out) < 0)
                goto done;
        }
        if (subscribe(x, &a, handle) < 0 || start(x, &a) < 0)
            goto done;
        if (row->kind == CONF_IDS && d->wait_ready && d->wait_ready(a.b, out.source) < 0)
            note(res, "%s never became ready", out.source);
        if (put_all(x, &a) < 0)
            goto done;
        settle_wait(x, &a, res->expect.units, per_unit);
        if (row->kind == CONF_IDS && fs_subscriber_wait_handled(out.sub, 1, WAIT_MS) < 0)
            note(res, "the handler's publish to %s never arrived", out.source);
        if (labels) {
            fs_envelope e = FS_ENVELOPE_INIT;
            e.body = "outside";
            e.body_len = 7;
            e.broker_options = x->out_opts;
            if (fs_publish(a.b, res->out, &e) < 0)
                note(res, "publish outside the handler: %s", fs_last_error());
        }
        break;
    }
    /* Quiet: a message that should not come back has time to show up. */
    sleep_ms(row->kind == CONF_REDELIVERY ? 3 * QUIET_MS : QUIET_MS);
    bool consumes = row->kind != CONF_PUBLISH_OK && row->kind != CONF_PUBLISH_FAIL &&
                    row->kind != CONF_PUBLISH_UTF8 && row->kind != CONF_PATTERN;
    if (consumes && d->state && (d->features & CONF_HAS_STATE)) {
        if (d->state(a.b, a.source, &res->state) < 0)
            note(res, "reading the broker's state of %s failed", a.source);
        else
            res->state_read = true;
    }
    res->max_inside = atomic_load(&x->max_inside);
    fs_buffer buf = {0};
    if (fs_registry_render(reg, FS_FORMAT_TEXT, &buf) == FS_OK)
        res->exposition = buf.data;
    else
        note(res, "fs_registry_render: %s", fs_last_error());
done:
    fs_broker_free(a.b);
    fs_broker_free(b2.b);
}

void conf_run(const conf_driver *d, conf_column col, const conf_row *r, conf_result *res)
{
    memset(res, 0, sizeof *res);
    res->ran = true;
    res->have_v2 = CONF_CORE_V2;
    char err[256];
    if (!conf_parse_cell(r->cell[col], &res->expect, err, sizeof err)) {
        note(res, "%s", err);
        return;
    }
    if (res->expect.na) {
        res->skipped = true;
        snprintf(res->skip_why, sizeof res->skip_why, "%s", res->expect.why);
        return;
    }
    /* An optional driver hook missing: say so and skip (the cell still says what is expected). */
    const char *hook = r->kind == CONF_PATTERN && !d->pattern_sub             ? "pattern_sub"
                       : r->kind == CONF_PUBLISH_UTF8 && !d->json_pub_options ? "json_pub_options"
                                                                              : NULL;
    if (hook) {
        res->skipped = true;
        snprintf(res->skip_why, sizeof res->skip_why,
                 "the %s driver has no %s hook yet; the table expects \"%s\"", d->column, hook,
                 r->cell[col]);
        return;
    }
    if (r->kind == CONF_REDELIVERY && !CONF_CORE_V2) {
        note(res, "this core has no redelivery settings (fs_subscriber_options.redelivery, "
                  "adapter interface v2): a nack would loop hot; not run");
        return;
    }
    conf_unique(res->source, sizeof res->source - 8, d->column, r->name);
    size_t sl = strlen(res->source);
    memcpy(res->source2, res->source, sl);
    memcpy(res->source2 + sl, ".b", 3);
    memcpy(res->out, res->source, sl);
    memcpy(res->out + sl, ".out", 5);
    conf_ctx x = {.d = d, .row = r, .res = res};
    x.concurrency = r->kind == CONF_CONCURRENT ? 4 : 1;
    pthread_mutex_init(&x.mu, NULL);
    fs_registry *reg = NULL;
    if (fs_registry_new(&reg) < 0) {
        note(res, "fs_registry_new: %s", fs_last_error());
    } else {
        run_inner(&x, reg);
        fs_registry_free(reg);
    }
    pthread_mutex_destroy(&x.mu);
    if (d->cleanup) {
        d->cleanup(res->source);
        d->cleanup(res->source2);
        d->cleanup(res->out);
    }
}

void conf_result_free(conf_result *res)
{
    free(res->exposition);
    res->exposition = NULL;
}
