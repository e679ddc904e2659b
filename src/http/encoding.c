/*
 * Content negotiation of the HTTP endpoint: Accept-Encoding and gzip.
 */
#include "common/internal.h"
#include "http/http_internal.h"

#include <zlib.h>

#include <limits.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* ------------------------------------------------------------------------ */
/* Header parsing                                                           */

static bool is_ows(char c)
{
    return c == ' ' || c == '\t';
}

/*
 * A qvalue ("0", "0.5", "1", "1.000") is non-zero when any digit in it is.
 * Parsed by hand: strtod would depend on the process locale.
 */
static bool qvalue_nonzero(const char *p, const char *end)
{
    while (p < end && is_ows(*p))
        p++;
    bool any = false;
    for (; p < end && ((*p >= '0' && *p <= '9') || *p == '.'); p++)
        if (*p >= '1' && *p <= '9')
            any = true;
    return any;
}

/* The q parameter of one list element's parameters [p, end); 1 when absent. */
static bool element_q_nonzero(const char *p, const char *end)
{
    while (p < end) {
        const char *semi = memchr(p, ';', (size_t)(end - p));
        const char *pend = semi ? semi : end;
        while (p < pend && is_ows(*p))
            p++;
        if (pend - p >= 1 && (*p == 'q' || *p == 'Q')) {
            const char *eq = p + 1;
            while (eq < pend && is_ows(*eq))
                eq++;
            if (eq < pend && *eq == '=')
                return qvalue_nonzero(eq + 1, pend);
        }
        p = semi ? semi + 1 : end;
    }
    return true;
}

bool fs__http_accepts_gzip(const char *accept_encoding)
{
    if (!accept_encoding)
        return false;
    int gzip = -1; /* -1 not listed, 0 refused, 1 accepted */
    int star = -1;
    const char *p = accept_encoding;
    while (*p) {
        const char *comma = strchr(p, ',');
        const char *end = comma ? comma : p + strlen(p);
        while (p < end && is_ows(*p))
            p++;
        const char *tok = p;
        while (p < end && *p != ';' && !is_ows(*p))
            p++;
        size_t tlen = (size_t)(p - tok);
        const char *params = memchr(p, ';', (size_t)(end - p));
        bool ok = params ? element_q_nonzero(params + 1, end) : true;
        if ((tlen == 4 && strncasecmp(tok, "gzip", 4) == 0) ||
            (tlen == 6 && strncasecmp(tok, "x-gzip", 6) == 0))
            gzip = gzip == 1 ? 1 : ok;
        else if (tlen == 1 && *tok == '*')
            star = ok;
        p = comma ? comma + 1 : end;
    }
    if (gzip >= 0)
        return gzip == 1;
    return star == 1;
}

int fs__http_gzip(const void *in, size_t len, void **out, size_t *out_len)
{
    if (len > UINT_MAX)
        return fs__error(FS_EINVAL, "gzip: body of %zu bytes is too large", len);
    z_stream zs;
    memset(&zs, 0, sizeof zs);
    /* Level 1: a metrics page compresses about 10x even so, at a fraction of
     * the CPU time of the default level. 15 + 16: gzip wrapper. */
    if (deflateInit2(&zs, Z_BEST_SPEED, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY) != Z_OK)
        return fs__error(FS_ENOMEM, "gzip: deflateInit2 failed");
    uLong bound = deflateBound(&zs, (uLong)len);
    unsigned char *buf = malloc(bound ? bound : 1);
    if (!buf) {
        deflateEnd(&zs);
        return fs__error(FS_ENOMEM, "gzip: out of memory for %lu bytes", (unsigned long)bound);
    }
    zs.next_in = (Bytef *)(uintptr_t)in;
    zs.avail_in = (uInt)len;
    zs.next_out = buf;
    zs.avail_out = (uInt)bound;
    int rc = deflate(&zs, Z_FINISH);
    size_t produced = (size_t)zs.total_out;
    deflateEnd(&zs);
    if (rc != Z_STREAM_END) {
        free(buf);
        return fs__error(FS_EIO, "gzip: deflate failed (%d)", rc);
    }
    *out = buf;
    *out_len = produced;
    return FS_OK;
}
