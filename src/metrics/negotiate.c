/* Content negotiation: which format a scraper's Accept header asks for. */
#include "metrics_internal.h"

#include <strings.h>

static const char *skip_ws(const char *p, const char *end)
{
    while (p < end && (*p == ' ' || *p == '\t'))
        p++;
    return p;
}

static const char *trim_end(const char *start, const char *end)
{
    while (end > start && (end[-1] == ' ' || end[-1] == '\t'))
        end--;
    return end;
}

/* The first `c` in [p, end), or NULL. */
static const char *find_char(const char *p, const char *end, char c)
{
    for (; p < end; p++)
        if (*p == c)
            return p;
    return NULL;
}

static bool token_is(const char *s, const char *e, const char *word)
{
    size_t n = strlen(word);
    return (size_t)(e - s) == n && strncasecmp(s, word, n) == 0;
}

/*
 * A q-value (RFC 9110: "0" or "1", optionally "." and up to 3 digits),
 * read without strtod so that the locale's decimal point never matters.
 * Anything else is 0 (the range is not acceptable); values above 1 are 1.
 */
static double parse_q(const char *v, const char *ve)
{
    if (v == ve || *v < '0' || *v > '9')
        return 0;
    double q = 0;
    for (; v < ve && *v >= '0' && *v <= '9'; v++)
        q = q * 10 + (*v - '0');
    if (v < ve && *v == '.') {
        double scale = 0.1;
        for (v++; v < ve && *v >= '0' && *v <= '9'; v++, scale /= 10)
            q += (*v - '0') * scale;
    }
    if (v != ve)
        return 0;
    return q > 1 ? 1 : q;
}

/* One media range "type/sub;k=v;q=0.5": its q and whether its version is acceptable. */
static void parse_range(const char *p, const char *end, double *q, const char **ver,
                        const char **ver_end)
{
    *q = 1.0;
    *ver = NULL;
    *ver_end = NULL;
    const char *semi = find_char(p, end, ';');
    while (semi) {
        const char *k = skip_ws(semi + 1, end);
        const char *next = find_char(k, end, ';');
        const char *pe = next ? next : end;
        const char *eq = find_char(k, pe, '=');
        if (eq) {
            const char *ke = trim_end(k, eq);
            const char *v = skip_ws(eq + 1, pe);
            const char *ve = trim_end(v, pe);
            if (ve - v >= 2 && *v == '"' && ve[-1] == '"') {
                v++;
                ve--;
            }
            if (token_is(k, ke, "q")) {
                *q = parse_q(v, ve);
            } else if (token_is(k, ke, "version")) {
                *ver = v;
                *ver_end = ve;
            }
        }
        semi = next;
    }
}

fs_format fs_format_negotiate(const char *accept)
{
    if (!accept)
        return FS_FORMAT_TEXT;
    double om_q = 0, text_q = 0;
    const char *p = accept;
    const char *end = accept + strlen(accept);
    while (p < end) {
        const char *comma = find_char(p, end, ',');
        const char *re = comma ? comma : end;
        const char *s = skip_ws(p, re);
        const char *semi = find_char(s, re, ';');
        const char *te = trim_end(s, semi ? semi : re);
        double q;
        const char *v, *ve;
        parse_range(s, re, &q, &v, &ve);
        if (token_is(s, te, "application/openmetrics-text")) {
            if ((!v || token_is(v, ve, "1.0.0")) && q > om_q)
                om_q = q;
        } else if (token_is(s, te, "text/plain")) {
            if ((!v || token_is(v, ve, "0.0.4")) && q > text_q)
                text_q = q;
        } else if (token_is(s, te, "text/*") || token_is(s, te, "*/*")) {
            if (q > text_q)
                text_q = q;
        }
        p = comma ? comma + 1 : end;
    }
    return om_q > 0 && om_q >= text_q ? FS_FORMAT_OPENMETRICS : FS_FORMAT_TEXT;
}

const char *fs_format_content_type(fs_format format)
{
    return format == FS_FORMAT_OPENMETRICS
               ? "application/openmetrics-text; version=1.0.0; charset=utf-8"
               : "text/plain; version=0.0.4; charset=utf-8";
}
