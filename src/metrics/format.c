/*
 * Number formatting for the expositions: sample values that parse back to
 * the same double, and histogram `le` values the way the official clients
 * spell them. Whatever locale the program set (a comma as decimal point),
 * the printf/strtod calls here run in the C locale of the calling thread
 * (uselocale), and integers are formatted by hand.
 */
#include "metrics_internal.h"

#include <locale.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>

static locale_t c_locale = (locale_t)0;
static pthread_once_t c_once = PTHREAD_ONCE_INIT;

static void make_c_locale(void)
{
    c_locale = newlocale(LC_NUMERIC_MASK, "C", (locale_t)0);
}

/* Switch the calling thread to the C numeric locale; returns what to restore. */
static locale_t c_numeric_begin(void)
{
    pthread_once(&c_once, make_c_locale);
    return c_locale ? uselocale(c_locale) : (locale_t)0;
}

static void c_numeric_end(locale_t old)
{
    if (old)
        uselocale(old);
}

size_t fs__format_micros(char *out, int64_t us)
{
    size_t n = 0;
    uint64_t u = (uint64_t)us;
    if (us < 0) {
        out[n++] = '-';
        u = 0 - u;
    }
    n += fs__format_u64(out + n, u / 1000000);
    uint32_t frac = (uint32_t)(u % 1000000);
    if (frac) {
        char d[6];
        for (int i = 5; i >= 0; i--, frac /= 10)
            d[i] = (char)('0' + frac % 10);
        size_t nd = 6;
        while (d[nd - 1] == '0')
            nd--;
        out[n++] = '.';
        memcpy(out + n, d, nd);
        n += nd;
    }
    out[n] = '\0';
    return n;
}

size_t fs__format_u64(char *out, uint64_t v)
{
    char tmp[24];
    size_t n = 0;
    do {
        tmp[n++] = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    for (size_t i = 0; i < n; i++)
        out[i] = tmp[n - 1 - i];
    out[n] = '\0';
    return n;
}

static size_t put_special(char *out, double v)
{
    const char *s = isnan(v) ? "NaN" : v > 0 ? "+Inf" : "-Inf";
    size_t n = strlen(s);
    memcpy(out, s, n + 1);
    return n;
}

size_t fs__format_double(char *out, double v)
{
    if (FS_UNLIKELY(!isfinite(v)))
        return put_special(out, v);
    /* Integers (counts, byte sizes, timestamps in whole seconds): exact digits,
     * no snprintf. 2^53 bounds the range where every integer is exact. */
    if (v > -9007199254740992.0 && v < 9007199254740992.0) {
        int64_t i = (int64_t)v;
        if ((double)i == v) {
            if (i < 0) {
                out[0] = '-';
                return 1 + fs__format_u64(out + 1, (uint64_t)(-i));
            }
            return fs__format_u64(out, (uint64_t)i);
        }
    }
    int n = 0;
    locale_t old = c_numeric_begin();
    for (int prec = 15; prec <= 17; prec++) {
        n = snprintf(out, FS_NUM_MAX, "%.*g", prec, v);
        if (prec == 17 || strtod(out, NULL) == v)
            break;
    }
    c_numeric_end(old);
    return (size_t)n;
}

/* fs__format_le in the C locale; `e` is scratch room. */
static size_t format_le_c(char *out, char *e, double v, bool openmetrics)
{
    for (int prec = 0; prec <= 16; prec++) {
        snprintf(e, FS_NUM_MAX, "%.*e", prec, v);
        if (strtod(e, NULL) == v)
            break;
    }
    char digits[24];
    size_t nd = 0;
    const char *p = e;
    bool neg = false;
    if (*p == '-') {
        neg = true;
        p++;
    }
    for (; *p && *p != 'e'; p++)
        if (*p != '.')
            digits[nd++] = *p;
    while (nd > 1 && digits[nd - 1] == '0')
        nd--;
    int exp = atoi(p + 1);
    /* Go's strconv.FormatFloat(v, 'g', -1, 64): exponent form when exp < -4 or
     * exp >= eprec, where eprec is 6, or the digit count when all digits are
     * integral and fewer than 6. */
    int eprec = 6;
    int dp = exp + 1;
    if (eprec > (int)nd && (int)nd >= dp)
        eprec = (int)nd;
    size_t n = 0;
    if (neg)
        out[n++] = '-';
    if (exp < -4 || exp >= eprec) {
        out[n++] = digits[0];
        if (nd > 1) {
            out[n++] = '.';
            memcpy(out + n, digits + 1, nd - 1);
            n += nd - 1;
        }
        n += (size_t)snprintf(out + n, FS_NUM_MAX - n, "e%c%02d", exp < 0 ? '-' : '+',
                              exp < 0 ? -exp : exp);
        return n;
    }
    int prec = (int)nd - dp;
    if (prec < 0)
        prec = 0;
    n = (size_t)snprintf(out, FS_NUM_MAX, "%.*f", prec, v);
    if (openmetrics && prec == 0) {
        memcpy(out + n, ".0", 3);
        n += 2;
    }
    return n;
}

size_t fs__format_le(char *out, double v, bool openmetrics)
{
    if (!isfinite(v))
        return put_special(out, v);
    if (v == 0) {
        memcpy(out, openmetrics ? "0.0" : "0", openmetrics ? 4 : 2);
        return openmetrics ? 3 : 1;
    }
    /* The shortest digit string that round-trips, as %e: "d.ddde[+-]XX". */
    char e[FS_NUM_MAX];
    locale_t old = c_numeric_begin();
    size_t n = format_le_c(out, e, v, openmetrics);
    c_numeric_end(old);
    return n;
}
