/*
 * Rendering a registry in the Prometheus text format 0.0.4 or OpenMetrics
 * 1.0.0: one walker over families (sorted by name) and collector output,
 * with the per-format differences in small helpers. Label texts, escaped
 * help and `le` strings are precomputed, so a sample costs a few memcpys and
 * one number formatting; nothing is allocated per sample.
 */
#include "metrics_internal.h"

#include <stdio.h>
#include <stdlib.h>

/* Scratch space reused across the families of one render. */
typedef struct render_scratch {
    fs_child **children;
    size_t cap_children;
    uint64_t *counts; /* two runs of cap_counts: the counts, a shard's snapshot */
    size_t cap_counts;
} render_scratch;

/* The TYPE word: the text format has no info (a gauge) and says untyped,
 * OpenMetrics says unknown. */
static const char *type_word(fs_metric_type t, fs_format format)
{
    if (format == FS_FORMAT_OPENMETRICS)
        return t == FS_METRIC_UNTYPED ? "unknown" : fs__type_name(t);
    return t == FS_METRIC_INFO ? "gauge" : fs__type_name(t);
}

/* The name in # HELP / # TYPE lines. */
static const char *family_suffix(fs_metric_type t, fs_format format)
{
    if (format == FS_FORMAT_OPENMETRICS)
        return "";
    return t == FS_METRIC_COUNTER ? "_total" : t == FS_METRIC_INFO ? "_info" : "";
}

static int put_header(fs_buffer *out, const char *name, size_t name_len, const char *suffix,
                      const char *help, fs_metric_type type, fs_format format)
{
    size_t sl = strlen(suffix), hl = strlen(help);
    const char *tn = type_word(type, format);
    if (fs__buf_reserve(out, 2 * (name_len + sl) + hl + strlen(tn) + 24) != FS_OK)
        return FS_ENOMEM;
    fs__buf_put(out, "# HELP ", 7);
    fs__buf_put(out, name, name_len);
    fs__buf_put(out, suffix, sl);
    fs__buf_putc(out, ' ');
    fs__buf_put(out, help, hl);
    fs__buf_put(out, "\n# TYPE ", 8);
    fs__buf_put(out, name, name_len);
    fs__buf_put(out, suffix, sl);
    fs__buf_putc(out, ' ');
    fs__buf_put(out, tn, strlen(tn));
    fs__buf_putc(out, '\n');
    return FS_OK;
}

/* name+suffix{labels} (the caller reserved room); returns nothing. */
static inline void put_name_labels(fs_buffer *out, const fs_family *f, const char *suffix,
                                   size_t sl, const fs_child *c)
{
    fs__buf_put(out, f->name, f->name_len);
    fs__buf_put(out, suffix, sl);
    if (c->labels_len) {
        fs__buf_putc(out, '{');
        fs__buf_put(out, c->labels, c->labels_len);
        fs__buf_putc(out, '}');
    }
    fs__buf_putc(out, ' ');
}

static inline void put_double_nl(fs_buffer *out, double v)
{
    out->len += fs__format_double(out->data + out->len, v);
    fs__buf_putc(out, '\n');
}

static inline void put_u64_nl(fs_buffer *out, uint64_t v)
{
    out->len += fs__format_u64(out->data + out->len, v);
    fs__buf_putc(out, '\n');
}

static void put_histogram(fs_buffer *out, const fs_family *f, const struct fs_histogram *h,
                          render_scratch *rs, fs_format format)
{
    uint32_t nb = h->nb;
    uint64_t *counts = rs->counts;
    double sum;
    fs__histogram_read(h, rs->counts + rs->cap_counts, counts, &sum);
    char *const *le = format == FS_FORMAT_OPENMETRICS ? f->le_om : f->le_text;
    const size_t *le_len = format == FS_FORMAT_OPENMETRICS ? f->le_om_len : f->le_text_len;
    const fs_child *c = &h->hdr;
    uint64_t cum = 0;
    for (uint32_t i = 0; i <= nb; i++) {
        cum += counts[i];
        fs__buf_put(out, f->name, f->name_len);
        fs__buf_put(out, "_bucket{", 8);
        if (c->labels_len) {
            fs__buf_put(out, c->labels, c->labels_len);
            fs__buf_putc(out, ',');
        }
        fs__buf_put(out, le[i], le_len[i]);
        put_u64_nl(out, cum);
    }
    if (format == FS_FORMAT_OPENMETRICS) {
        put_name_labels(out, f, "_count", 6, c);
        put_u64_nl(out, cum);
        put_name_labels(out, f, "_sum", 4, c);
        put_double_nl(out, sum);
    } else {
        put_name_labels(out, f, "_sum", 4, c);
        put_double_nl(out, sum);
        put_name_labels(out, f, "_count", 6, c);
        put_u64_nl(out, cum);
    }
}

static int render_family(const fs_family *f, fs_format format, fs_buffer *out, render_scratch *rs)
{
    bool om = format == FS_FORMAT_OPENMETRICS;
    int rc = put_header(out, f->name, f->name_len, family_suffix(f->type, format),
                        om ? f->help_om : f->help_text, f->type, format);
    if (rc != FS_OK)
        return rc;
    ssize_t n = fs__family_snapshot((fs_family *)f, &rs->children, &rs->cap_children);
    if (n < 0)
        return FS_ENOMEM;
    size_t lines = 2;
    if (f->type == FS_METRIC_HISTOGRAM) {
        lines = f->nbuckets + 4;
        if (rs->cap_counts < f->nbuckets + 2) { /* a snapshot: the buckets and the sum */
            uint64_t *p = realloc(rs->counts, 2 * (f->nbuckets + 2) * sizeof *p);
            if (!p)
                return fs__error(FS_ENOMEM, "out of memory rendering '%s'", f->name);
            rs->counts = p;
            rs->cap_counts = f->nbuckets + 2;
        }
    }
    for (ssize_t i = 0; i < n; i++) {
        const fs_child *c = rs->children[i];
        if (fs__buf_reserve(out, lines * (f->name_len + c->labels_len + 2 * FS_NUM_MAX + 32)) !=
            FS_OK)
            return FS_ENOMEM;
        switch (f->type) {
        case FS_METRIC_COUNTER:
            put_name_labels(out, f, "_total", 6, c);
            put_double_nl(out, fs__counter_total((const struct fs_counter *)c));
            break;
        case FS_METRIC_GAUGE:
            put_name_labels(out, f, "", 0, c);
            put_double_nl(out, fs__atomic_load_double(&((const struct fs_gauge *)c)->bits));
            break;
        case FS_METRIC_HISTOGRAM:
            put_histogram(out, f, (const struct fs_histogram *)c, rs, format);
            break;
        default: /* info */
            put_name_labels(out, f, "_info", 5, c);
            fs__buf_put(out, "1\n", 2);
            break;
        }
        if (om && (f->type == FS_METRIC_COUNTER || f->type == FS_METRIC_HISTOGRAM)) {
            put_name_labels(out, f, "_created", 8, c);
            out->len += fs__format_micros(out->data + out->len, c->created_us);
            fs__buf_putc(out, '\n');
        }
    }
    return FS_OK;
}

/* ------------------------------------------------------------------------ */
/* Collectors                                                               */

typedef struct chunk {
    char *name;
    size_t off, len;
    size_t seq;
} chunk;

struct fs_collect_ctx {
    fs_registry *reg;
    fs_format format;
    fs_buffer buf;
    chunk *chunks;
    size_t nchunks, capchunks;
    const char *collector;
    size_t first_chunk; /* the running collector's first chunk */
    bool failed;
    fs_metric_type type; /* of the current chunk */
};

static int ctx_fail(fs_collect_ctx *ctx, int rc)
{
    ctx->failed = true;
    return rc;
}

int fs_collect_family(fs_collect_ctx *ctx, const char *name, const char *help, fs_metric_type type)
{
    FS_CHECK_ARG(ctx, "fs_collect_family: ctx is NULL");
    int rc = fs__check_metric_name(name);
    if (rc != FS_OK)
        return ctx_fail(ctx, rc);
    if (!help)
        return ctx_fail(ctx, fs__error(FS_EINVAL, "help of collected metric '%s' is NULL", name));
    if (type != FS_METRIC_COUNTER && type != FS_METRIC_GAUGE && type != FS_METRIC_UNTYPED)
        return ctx_fail(ctx, fs__error(FS_EINVAL,
                                       "collected metric '%s': a collector yields counters, "
                                       "gauges or untyped metrics, not a %s",
                                       name, fs__type_name(type)));
    size_t n = strlen(name);
    if (type == FS_METRIC_COUNTER && n > 6 && strcmp(name + n - 6, "_total") == 0)
        n -= 6;
    rc = fs__registry_check_collision(ctx->reg, name, n, type);
    if (rc != FS_OK)
        return ctx_fail(ctx, rc);
    chunk *chunks =
        fs__array_grow(ctx->chunks, &ctx->capchunks, ctx->nchunks + 1, sizeof *chunks, 16);
    if (!chunks)
        return ctx_fail(ctx, fs__error(FS_ENOMEM, "out of memory collecting '%s'", name));
    ctx->chunks = chunks;
    char *cn = malloc(n + 1);
    size_t hl;
    char *esc = fs__escape(help, strlen(help), ctx->format == FS_FORMAT_OPENMETRICS, &hl);
    if (!cn || !esc) {
        free(cn);
        free(esc);
        return ctx_fail(ctx, fs__error(FS_ENOMEM, "out of memory collecting '%s'", name));
    }
    memcpy(cn, name, n);
    cn[n] = '\0';
    chunk *c = &ctx->chunks[ctx->nchunks++];
    c->name = cn;
    c->off = ctx->buf.len;
    c->seq = ctx->nchunks;
    ctx->type = type;
    rc = put_header(&ctx->buf, cn, n,
                    type == FS_METRIC_COUNTER && ctx->format == FS_FORMAT_TEXT ? "_total" : "", esc,
                    type, ctx->format);
    free(esc);
    c->len = ctx->buf.len - c->off;
    return rc == FS_OK ? FS_OK : ctx_fail(ctx, rc);
}

int fs_collect_sample(fs_collect_ctx *ctx, size_t label_count, const char *const *label_names,
                      const char *const *label_values, double value)
{
    FS_CHECK_ARG(ctx, "fs_collect_sample: ctx is NULL");
    if (ctx->nchunks == ctx->first_chunk)
        return ctx_fail(ctx, fs__error(FS_ESTATE,
                                       "collector '%s': fs_collect_sample before "
                                       "fs_collect_family",
                                       ctx->collector));
    chunk *c = &ctx->chunks[ctx->nchunks - 1];
    int rc = fs__check_label_names(c->name, FS_METRIC_GAUGE, label_count, label_names);
    if (rc != FS_OK)
        return ctx_fail(ctx, rc);
    if (label_count && !label_values)
        return ctx_fail(
            ctx, fs__error(FS_EINVAL, "label values of collected metric '%s' are NULL", c->name));
    size_t need = strlen(c->name) + 2 * FS_NUM_MAX + 16;
    for (size_t i = 0; i < label_count; i++) {
        if (!label_values[i])
            return ctx_fail(ctx, fs__error(FS_EINVAL,
                                           "label value %zu ('%s') of collected metric '%s' is "
                                           "NULL",
                                           i, label_names[i], c->name));
        need += strlen(label_names[i]) + FS_ESCAPE_MAX(strlen(label_values[i])) + 4;
    }
    fs_buffer *b = &ctx->buf;
    if (fs__buf_reserve(b, need) != FS_OK)
        return ctx_fail(ctx, FS_ENOMEM);
    fs__buf_put(b, c->name, strlen(c->name));
    if (ctx->type == FS_METRIC_COUNTER)
        fs__buf_put(b, "_total", 6);
    for (size_t i = 0; i < label_count; i++) {
        fs__buf_putc(b, i ? ',' : '{');
        fs__buf_put(b, label_names[i], strlen(label_names[i]));
        fs__buf_put(b, "=\"", 2);
        b->len += fs__escape_into(b->data + b->len, label_values[i], strlen(label_values[i]), true);
        fs__buf_putc(b, '"');
    }
    if (label_count)
        fs__buf_putc(b, '}');
    fs__buf_putc(b, ' ');
    put_double_nl(b, value);
    c->len = b->len - c->off;
    return FS_OK;
}

/* Drop what was collected since the buffer held len0 bytes in n0 chunks. */
static void drop_output(fs_collect_ctx *ctx, size_t len0, size_t n0)
{
    ctx->buf.len = len0;
    for (size_t k = n0; k < ctx->nchunks; k++)
        free(ctx->chunks[k].name);
    ctx->nchunks = n0;
}

/* Run every collector; drop the output of those that fail. Under the read lock. */
static void run_collectors(fs_registry *reg, fs_collect_ctx *ctx)
{
    for (size_t i = 0; i < reg->ncollectors; i++) {
        fs_collector *col = reg->collectors[i];
        size_t len0 = ctx->buf.len, n0 = ctx->nchunks;
        ctx->failed = false;
        ctx->collector = col->name;
        ctx->first_chunk = n0;
        fs__in_collect = true;
        int rc = col->fn(ctx, col->user);
        fs__in_collect = false;
        if (rc != FS_OK || ctx->failed) {
            fs__log(FS_LOG_WARN, "metrics", "collector '%s' failed (%s): %s; its output is dropped",
                    col->name, fs_strerror(rc != FS_OK ? rc : FS_EINVAL), fs_last_error());
            drop_output(ctx, len0, n0);
        }
    }
}

/* metrics_series_overflow_updates_total: the updates redirected to each
 * family's overflow child, as a collector's output. Under the read lock. */
static void collect_overflow(fs_registry *reg, fs_collect_ctx *ctx)
{
    static const char *const label[] = {"metric"};
    size_t len0 = ctx->buf.len, n0 = ctx->nchunks;
    bool begun = false;
    ctx->failed = false;
    ctx->collector = "series overflow";
    ctx->first_chunk = n0;
    for (size_t i = 0; i < reg->nfamilies && !ctx->failed; i++) {
        fs_family *f = reg->families[i];
        if (!atomic_load_explicit(&f->overflow, memory_order_acquire) &&
            !atomic_load_explicit(&f->redirected, memory_order_relaxed))
            continue;
        if (!begun && fs_collect_family(ctx, "metrics_series_overflow_updates",
                                        "Updates redirected to the overflow series of a metric "
                                        "past its series limit, by metric",
                                        FS_METRIC_COUNTER) != FS_OK)
            break;
        begun = true;
        const char *name[] = {f->name};
        fs_collect_sample(ctx, 1, label, name,
                          (double)atomic_load_explicit(&f->redirected, memory_order_relaxed));
    }
    if (ctx->failed) {
        fs__log(FS_LOG_WARN, "metrics", "the series overflow report is dropped: %s",
                fs_last_error());
        drop_output(ctx, len0, n0);
    }
}

static int chunk_cmp(const void *a, const void *b)
{
    const chunk *x = a, *y = b;
    int r = strcmp(x->name, y->name);
    if (r)
        return r;
    return x->seq < y->seq ? -1 : x->seq > y->seq;
}

/* ------------------------------------------------------------------------ */

int fs_registry_render(fs_registry *reg, fs_format format, fs_buffer *out)
{
    FS_CHECK_ARG(out, "fs_registry_render: out is NULL");
    FS_CHECK_ARG(format == FS_FORMAT_TEXT || format == FS_FORMAT_OPENMETRICS,
                 "fs_registry_render: unknown format %d", (int)format);
    reg = fs__registry_resolve(reg);
    if (!reg)
        return FS_ENOMEM;
    render_scratch rs = {0};
    fs_collect_ctx ctx = {.reg = reg, .format = format};
    int rc = FS_OK;
    pthread_rwlock_rdlock(&reg->lock);
    run_collectors(reg, &ctx);
    collect_overflow(reg, &ctx);
    if (ctx.nchunks > 1)
        qsort(ctx.chunks, ctx.nchunks, sizeof(chunk), chunk_cmp);
    size_t fi = 0, ci = 0;
    const char *last = NULL;
    while (rc == FS_OK && (fi < reg->nfamilies || ci < ctx.nchunks)) {
        const fs_family *f = fi < reg->nfamilies ? reg->families[fi] : NULL;
        chunk *c = ci < ctx.nchunks ? &ctx.chunks[ci] : NULL;
        if (f && (!c || strcmp(f->name, c->name) <= 0)) {
            rc = render_family(f, format, out, &rs);
            last = f->name;
            fi++;
            continue;
        }
        if (last && strcmp(last, c->name) == 0) {
            fs__log(FS_LOG_WARN, "metrics",
                    "collected metric '%s' is exposed twice in one scrape; the later one is "
                    "dropped",
                    c->name);
        } else if (fs__buf_append(out, ctx.buf.data + c->off, c->len) != FS_OK) {
            rc = FS_ENOMEM;
        }
        last = c->name;
        ci++;
    }
    pthread_rwlock_unlock(&reg->lock);
    if (rc == FS_OK && format == FS_FORMAT_OPENMETRICS)
        rc = fs__buf_append(out, "# EOF\n", 6);
    if (rc == FS_OK)
        rc = fs__buf_reserve(out, 0);
    if (rc == FS_OK)
        out->data[out->len] = '\0';
    for (size_t k = 0; k < ctx.nchunks; k++)
        free(ctx.chunks[k].name);
    free(ctx.chunks);
    fs_buffer_free(&ctx.buf);
    free(rs.children);
    free(rs.counts);
    return rc;
}
