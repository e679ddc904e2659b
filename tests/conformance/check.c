/*
 * Judging a scenario's result on the test thread: the nine families
 * exactly (every sample the scenario implies, and nothing else), then the
 * broker's own state and what the handler saw.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "conformance.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define P "faststream_"

static const double SIZE_LE[] = {16,    64,     256,     1024,    4096,     16384,
                                 65536, 262144, 1048576, 4194304, 16777216, INFINITY};
static const double DUR_LE[] = {0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25,    0.5,
                                0.75,  1,    2.5,   5,    7.5,   10,  INFINITY};
#define NSIZE (sizeof SIZE_LE / sizeof SIZE_LE[0])
#define NDUR (sizeof DUR_LE / sizeof DUR_LE[0])

enum { EXACT, AT_LEAST, UP_TO };

typedef struct want {
    char key[400];
    double v;
    int mode;
    bool seen;
} want;

typedef struct wants {
    want w[512];
    size_t n;
    char problems[4096];
} wants;

static void problem(wants *ws, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void problem(wants *ws, const char *fmt, ...)
{
    size_t len = strlen(ws->problems);
    if (len + 2 >= sizeof ws->problems)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(ws->problems + len, sizeof ws->problems - len, fmt, ap);
    va_end(ap);
    len = strlen(ws->problems);
    if (len + 1 < sizeof ws->problems)
        strcat(ws->problems, "\n");
}

static void add(wants *ws, int mode, double v, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static void add(wants *ws, int mode, double v, const char *fmt, ...)
{
    assert_true(ws->n < sizeof ws->w / sizeof ws->w[0]);
    want *w = &ws->w[ws->n];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(w->key, sizeof w->key, fmt, ap);
    va_end(ap);
    for (size_t i = 0; i < ws->n; i++)
        if (strcmp(ws->w[i].key, w->key) == 0) { /* the same child again: add up */
            ws->w[i].v += v;
            return;
        }
    w->v = v;
    w->mode = mode;
    ws->n++;
}

/* A histogram child: exact buckets from `values` when given, else any observations. */
static void add_hist(wants *ws, const char *name, const char *labels, const double *le, size_t nle,
                     unsigned count, const double *values, double min_sum, double min_value)
{
    double sum = 0;
    for (unsigned i = 0; values && i < count; i++)
        sum += values[i];
    add(ws, EXACT, count, "%s_count{%s}", name, labels);
    add(ws, values ? EXACT : AT_LEAST, values ? sum : min_sum, "%s_sum{%s}", name, labels);
    for (size_t b = 0; b < nle; b++) {
        if (values) {
            unsigned in = 0;
            for (unsigned i = 0; i < count; i++)
                in += values[i] <= le[b];
            add(ws, EXACT, in, "%s_bucket{%s}le=%.17g", name, labels, le[b]);
        } else if (isinf(le[b])) {
            add(ws, EXACT, count, "%s_bucket{%s}le=%.17g", name, labels, le[b]);
        } else if (le[b] < min_value) {
            add(ws, EXACT, 0, "%s_bucket{%s}le=%.17g", name, labels, le[b]);
        } else {
            add(ws, UP_TO, count, "%s_bucket{%s}le=%.17g", name, labels, le[b]);
        }
    }
}

/* app_name, broker and the handler (or destination) label of `name`, as the driver maps it. */
static void std_labels(char *buf, size_t n, const conf_driver *d, const char *name, bool dest)
{
    void (*map)(const char *, char *, size_t) = dest ? d->dest_label : d->handler_label;
    char h[256];
    if (map)
        map(name, h, sizeof h);
    else
        snprintf(h, sizeof h, "%s", name);
    snprintf(buf, n, "app_name=\"conf\",broker=\"%s\",%s=\"%s\"", d->broker_label,
             dest ? "destination" : "handler", h);
}

typedef struct unit_plan {
    unsigned units, per_unit;
    const int *status;   /* per unit */
    const conf_row *row; /* for the handler's steps (exceptions) */
    size_t size;         /* per unit */
    double min_duration;
} unit_plan;

static void expect_received(wants *ws, const conf_driver *d, const char *source, const char *custom,
                            const unit_plan *u)
{
    char l[300];
    std_labels(l, sizeof l, d, source, false);
    add(ws, EXACT, (double)u->units * u->per_unit, P "received_messages_total{%s%s}", l, custom);
    add(ws, EXACT, 0, P "received_messages_in_process{%s%s}", l, custom);
    double sizes[CONF_MAX_UNITS];
    for (unsigned i = 0; i < u->units; i++)
        sizes[i] = (double)u->size;
    char lc[400];
    snprintf(lc, sizeof lc, "%s%s", l, custom);
    add_hist(ws, P "received_messages_size_bytes", lc, SIZE_LE, NSIZE, u->units, sizes, 0, 0);
    add_hist(ws, P "received_processed_messages_duration_seconds", lc, DUR_LE, NDUR, u->units, NULL,
             u->min_duration * u->units, u->min_duration);
    for (unsigned i = 0; i < u->units; i++) {
        add(ws, EXACT, u->per_unit, P "received_processed_messages_total{%s,status=\"%s\"%s}", l,
            conf_status_names[u->status[i]], custom);
        const conf_step *s = !u->row ? NULL : i == 0 ? &u->row->first : &u->row->later;
        if (s && s->outcome == FS_OUTCOME_ERROR)
            add(ws, EXACT, 1,
                P "received_processed_messages_exceptions_total{%s,exception_type=\"%s\"%s}", l,
                s->error_type ? s->error_type : "Error", custom);
    }
}

static void expect_published(wants *ws, const conf_driver *d, const char *dest, const char *custom,
                             unsigned n, const char *error_type)
{
    char l[300];
    std_labels(l, sizeof l, d, dest, true);
    add(ws, EXACT, n, P "published_messages_total{%s,status=\"%s\"%s}", l,
        error_type ? "error" : "success", custom);
    char lc[400];
    snprintf(lc, sizeof lc, "%s%s", l, custom);
    add_hist(ws, P "published_messages_duration_seconds", lc, DUR_LE, NDUR, n, NULL, 0, 0);
    if (error_type)
        add(ws, EXACT, n, P "published_messages_exceptions_total{%s,exception_type=\"%s\"%s}", l,
            error_type, custom);
}

/* "name{labels,le="X"}" -> "name{labels}le=%.17g"; other keys as they are. */
static void canonical(const char *key, char *out, size_t n)
{
    const char *le = strstr(key, "le=\"");
    size_t nl = strcspn(key, "{");
    if (!le || nl < 7 || strncmp(key + nl - 7, "_bucket", 7) != 0) {
        snprintf(out, n, "%s", key);
        return;
    }
    double v = strncmp(le + 4, "+Inf", 4) == 0 ? INFINITY : strtod(le + 4, NULL);
    const char *after = strchr(le + 4, '"');
    after = after ? after + 1 : le + 4;
    size_t head = (size_t)(le - key);
    if (head && key[head - 1] == ',')
        head--;
    /* le is the last label; whatever follows it (the closing brace) closes the set */
    snprintf(out, n, "%.*s%sle=%.17g", (int)head, key, after, v);
}

static void compare(wants *ws, const char *text)
{
    char *copy = strdup(text);
    assert_non_null(copy);
    for (char *line = strtok(copy, "\n"); line; line = strtok(NULL, "\n")) {
        if (line[0] == '#' || strncmp(line, P, strlen(P)) != 0)
            continue;
        char *sp = strrchr(line, ' ');
        if (!sp)
            continue;
        *sp = 0;
        double v = strtod(sp + 1, NULL);
        char key[512];
        canonical(line, key, sizeof key);
        want *w = NULL;
        for (size_t i = 0; i < ws->n && !w; i++)
            if (strcmp(ws->w[i].key, key) == 0)
                w = &ws->w[i];
        if (!w) {
            problem(ws, "unexpected sample %s %g", line, v);
            continue;
        }
        w->seen = true;
        bool ok = w->mode == EXACT ? v == w->v : w->mode == AT_LEAST ? v >= w->v : v <= w->v;
        if (!ok)
            problem(ws, "%s is %.9g, expected %s%.9g", line, v,
                    w->mode == EXACT      ? ""
                    : w->mode == AT_LEAST ? ">= "
                                          : "<= ",
                    w->v);
    }
    free(copy);
    for (size_t i = 0; i < ws->n; i++)
        if (!ws->w[i].seen)
            problem(ws, "missing sample %s (expected %g)", ws->w[i].key, ws->w[i].v);
}

static void check_state(wants *ws, const conf_result *res)
{
    const conf_broker_state *e = &res->expect.state, *g = &res->state;
    const long *ev[] = {&e->acked, &e->pending, &e->redelivered, &e->dead_lettered};
    const long *gv[] = {&g->acked, &g->pending, &g->redelivered, &g->dead_lettered};
    static const char *const names[] = {"acked", "pending", "redelivered", "dead"};
    for (int i = 0; i < 4; i++) {
        if (*ev[i] < 0)
            continue;
        if (!res->state_read)
            problem(ws, "broker state %s=%ld expected, but the driver read no state", names[i],
                    *ev[i]);
        else if (*gv[i] < 0)
            problem(ws, "broker state %s=%ld expected, but the driver cannot tell it", names[i],
                    *ev[i]);
        else if (*gv[i] != *ev[i])
            problem(ws, "the broker holds %s=%ld, expected %ld", names[i], *gv[i], *ev[i]);
    }
}

static void check_handler(wants *ws, const conf_driver *d, const conf_row *r,
                          const conf_result *res)
{
    const conf_expect *e = &res->expect;
    unsigned expected = r->kind == CONF_TWO_BROKERS ? 2 * e->units : e->units;
    if (res->n_deliveries != expected)
        problem(ws, "the handler ran %u times, expected %u", res->n_deliveries, expected);
    switch (r->kind) {
    case CONF_CONCURRENT:
        if (res->max_inside != 4)
            problem(ws, "at most %u handlers ran at once, expected 4 (concurrency 4)",
                    res->max_inside);
        break;
    case CONF_REQUEST:
        if (res->request_rc != FS_OK || strcmp(res->reply_body, "pong") != 0)
            problem(ws, "fs_request returned %d with reply '%s', expected 0 and 'pong'",
                    res->request_rc, res->reply_body);
        break;
    case CONF_DOUBLE_MW:
        if (res->second_mw_rc >= 0)
            problem(ws, "a second fs_broker_add_prometheus on one broker was accepted");
        break;
    case CONF_PUBLISH_OK:
        if (res->publish_rc != FS_OK)
            problem(ws, "the publish returned %d", res->publish_rc);
        break;
    case CONF_PUBLISH_FAIL:
    case CONF_PUBLISH_UTF8:
        if (res->publish_rc >= 0)
            problem(ws, "the publish that must fail returned %d", res->publish_rc);
        break;
    case CONF_IDS:
        for (unsigned i = 0; i < res->n_deliveries && i < CONF_MAX_DELIVERIES; i++)
            if (!res->d[i].ids_ok)
                problem(ws,
                        "delivery %u: ids not as FastStream's (uuid4 correlation id, stable, "
                        "message id = correlation id): %s",
                        i + 1, res->d[i].why);
        if (res->n_deliveries && strcmp(res->out_correlation, res->d[0].correlation_id) != 0)
            problem(ws,
                    "the handler's publish carried correlation id '%s', not the handled "
                    "message's '%s'",
                    res->out_correlation, res->d[0].correlation_id);
        break;
    case CONF_REDELIVERY:
        for (unsigned i = 1; i < res->n_deliveries && i < CONF_MAX_DELIVERIES; i++) {
            double gap_ms = (double)(res->d[i].t_ns - res->d[i - 1].t_ns) / 1e6;
            double min_ms = CONF_REDELIVERY_DELAY_MS * (double)(1u << (i - 1)) - 2;
            if (gap_ms < min_ms)
                problem(ws, "delivery %u came %.1f ms after the nack, before the %.0f ms delay",
                        i + 1, gap_ms, min_ms + 2);
        }
        break;
    default:
        break;
    }
    if ((d->features & CONF_HAS_DELIVERY_COUNT) && res->have_v2 && r->kind != CONF_TWO_BROKERS &&
        r->kind != CONF_CONCURRENT && r->kind != CONF_BATCH)
        for (unsigned i = 0; i < res->n_deliveries && i < CONF_MAX_DELIVERIES; i++)
            if (res->d[i].delivery_count != i + 1)
                problem(ws, "delivery %u: fs_message_delivery_count() = %u", i + 1,
                        res->d[i].delivery_count);
}

void conf_check(const conf_driver *d, conf_column col, const conf_row *r, conf_result *res)
{
    (void)col;
    if (res->skipped) {
        print_message("skipped: %s\n", res->skip_why);
        skip();
    }
    if (res->error[0] && !res->exposition)
        fail_msg("%s", res->error);
    wants *ws = calloc(1, sizeof *ws);
    assert_non_null(ws);
    if (res->error[0])
        problem(ws, "%s", res->error);
    const conf_expect *e = &res->expect;
    unit_plan u = {.units = e->units,
                   .per_unit = r->kind == CONF_BATCH ? r->messages : 1,
                   .status = e->unit_status,
                   .row = r,
                   .size = (size_t)11 * (r->kind == CONF_BATCH ? r->messages : 1),
                   .min_duration = r->kind == CONF_SLOW ? 0.02 : 0};
    bool labels = r->kind == CONF_LABELS;
    const char *in = labels ? ",team=\"conf\",origin=\"handled\"" : "";
    const char *outside = labels ? ",team=\"conf\",origin=\"outside\"" : "";
    unsigned puts = r->messages ? r->messages : 1;
    bool put_counts = (d->features & CONF_PUT_IS_PUBLISH) != 0;

    switch (r->kind) {
    case CONF_PUBLISH_OK:
        expect_published(ws, d, res->out, "", 1, NULL);
        break;
    case CONF_PUBLISH_FAIL:
    case CONF_PUBLISH_UTF8:
        expect_published(ws, d, res->out, "", 1, e->perr[0] ? e->perr : "(perr= missing)");
        break;
    case CONF_REQUEST:
        expect_received(ws, d, res->source, "", &u);
        expect_published(ws, d, res->source, "", 1, NULL);
        break;
    case CONF_PATTERN: /* the concrete name, never the pattern */
        expect_received(ws, d, res->source2, "", &u);
        if (put_counts)
            expect_published(ws, d, res->source2, "", puts, NULL);
        break;
    case CONF_TWO_BROKERS:
        expect_received(ws, d, res->source, "", &u);
        expect_received(ws, d, res->source2, "", &u);
        if (put_counts) {
            expect_published(ws, d, res->source, "", puts, NULL);
            expect_published(ws, d, res->source2, "", puts, NULL);
        }
        break;
    default:
        expect_received(ws, d, res->source, in, &u);
        if (put_counts)
            expect_published(ws, d, res->source, outside, puts, NULL);
        if (labels) {
            expect_published(ws, d, res->out, in, 1, NULL);
            expect_published(ws, d, res->out, outside, 1, NULL);
        }
        if (r->kind == CONF_IDS) {
            static const int acked[1] = {ST_ACKED};
            unit_plan o = {.units = 1, .per_unit = 1, .status = acked, .size = 3};
            expect_received(ws, d, res->out, "", &o);
            expect_published(ws, d, res->out, "", 1, NULL);
        }
        break;
    }
    if (res->exposition)
        compare(ws, res->exposition);
    check_state(ws, res);
    check_handler(ws, d, r, res);
    if (ws->problems[0]) {
        static char msg[sizeof ws->problems]; /* fail_msg does not return: no heap copy */
        memcpy(msg, ws->problems, sizeof msg);
        free(ws);
        fail_msg("%s: %s (cell \"%s\")\n%s\nexposition:\n%s", conf_column_names[col], r->name,
                 r->cell[col], msg, res->exposition ? res->exposition : "(none)");
    }
    free(ws);
}
