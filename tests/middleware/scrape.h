/*
 * Reading a registry back for the middleware tests: render it in the text
 * format, parse every sample, and let a test tick off the samples it expects
 * so that anything it did not expect fails the test.
 */
#ifndef FS_TEST_SCRAPE_H
#define FS_TEST_SCRAPE_H

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "faststream/exposition.h"

typedef struct scrape {
    char *text;   /* the rendered exposition */
    size_t n;     /* samples */
    char **keys;  /* "name{labels}" (points into a copy) */
    double *vals; /* values */
    bool *seen;   /* ticked off by the expect_* calls */
    char *copy;
    size_t *sorted; /* sample indexes in key order, for binary searches */
} scrape;

static const scrape *scrape_sorting; /* qsort has no user pointer */

static inline int scrape_cmp(const void *a, const void *b)
{
    return strcmp(scrape_sorting->keys[*(const size_t *)a],
                  scrape_sorting->keys[*(const size_t *)b]);
}

static inline int size_cmp(const void *a, const void *b)
{
    size_t x = *(const size_t *)a, y = *(const size_t *)b;
    return x < y ? -1 : x > y;
}

/* The first position in s->sorted whose key is >= `key`. */
static inline size_t scrape_lower(const scrape *s, const char *key)
{
    size_t lo = 0, hi = s->n;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if (strcmp(s->keys[s->sorted[mid]], key) < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

static inline void scrape_take(scrape *s, fs_registry *reg)
{
    memset(s, 0, sizeof *s);
    fs_buffer b = {0};
    assert_int_equal(fs_registry_render(reg, FS_FORMAT_TEXT, &b), FS_OK);
    assert_non_null(b.data);
    s->text = b.data;
    s->copy = strdup(b.data);
    size_t cap = 1;
    for (const char *p = s->text; *p; p++)
        cap += *p == '\n';
    s->keys = calloc(cap, sizeof *s->keys);
    s->vals = calloc(cap, sizeof *s->vals);
    s->seen = calloc(cap, sizeof *s->seen);
    assert_true(s->copy && s->keys && s->vals && s->seen);
    for (char *line = strtok(s->copy, "\n"); line; line = strtok(NULL, "\n")) {
        if (line[0] == '#')
            continue;
        char *sp = strrchr(line, ' ');
        assert_non_null(sp);
        *sp = '\0';
        s->keys[s->n] = line;
        s->vals[s->n] = strtod(sp + 1, NULL);
        s->n++;
    }
    s->sorted = calloc(s->n + 1, sizeof *s->sorted);
    assert_non_null(s->sorted);
    for (size_t i = 0; i < s->n; i++)
        s->sorted[i] = i;
    scrape_sorting = s;
    qsort(s->sorted, s->n, sizeof *s->sorted, scrape_cmp);
}

static inline void scrape_free(scrape *s)
{
    free(s->text);
    free(s->copy);
    free(s->keys);
    free(s->vals);
    free(s->seen);
    free(s->sorted);
    memset(s, 0, sizeof *s);
}

static inline ssize_t scrape_find(const scrape *s, const char *key)
{
    size_t pos = scrape_lower(s, key);
    if (pos < s->n && strcmp(s->keys[s->sorted[pos]], key) == 0)
        return (ssize_t)s->sorted[pos];
    return -1;
}

/* Format a sample key into key[cap]; fails the test when it does not fit. */
static inline size_t scrape_key(char *key, size_t cap, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static inline size_t scrape_key(char *key, size_t cap, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(key, cap, fmt, ap);
    va_end(ap);
    if (n < 0 || (size_t)n >= cap)
        fail_msg("sample key longer than %zu bytes: %s...", cap - 1, key);
    return (size_t)n;
}

/* The value of `name{labels}`; fails when absent. Ticks it off. */
static inline double scrape_value(scrape *s, const char *name, const char *labels)
{
    char key[1024];
    scrape_key(key, sizeof key, "%s{%s}", name, labels);
    ssize_t i = scrape_find(s, key);
    if (i < 0)
        fail_msg("no sample %s in:\n%s", key, s->text);
    s->seen[i] = true;
    return s->vals[i];
}

/* Sample `name{labels}` exists with exactly `v`. */
static inline void expect_sample(scrape *s, const char *name, const char *labels, double v)
{
    double got = scrape_value(s, name, labels);
    if (got != v)
        fail_msg("%s{%s} is %.17g, expected %.17g in:\n%s", name, labels, got, v, s->text);
}

/*
 * The histogram child `name{labels}` has `count` observations; its sum is
 * `sum` (or anything >= 0 when `sum` is NaN); its buckets are cumulative
 * with +Inf == count. Ticks off every sample of the child; returns the
 * number of buckets (+Inf included).
 */
static inline size_t expect_histogram(scrape *s, const char *name, const char *labels, double count,
                                      double sum)
{
    char key[1024];
    scrape_key(key, sizeof key, "%s_count", name);
    expect_sample(s, key, labels, count);
    scrape_key(key, sizeof key, "%s_sum", name);
    double got = scrape_value(s, key, labels);
    if (isnan(sum))
        assert_true(got >= 0);
    else if (got != sum)
        fail_msg("%s{%s} is %.17g, expected %.17g", key, labels, got, sum);
    char prefix[1024];
    size_t pl = scrape_key(prefix, sizeof prefix, "%s_bucket{%s,le=\"", name, labels);
    /* The child's buckets, in exposition order. */
    size_t nb = 0, idx[64];
    for (size_t p = scrape_lower(s, prefix);
         p < s->n && strncmp(s->keys[s->sorted[p]], prefix, pl) == 0; p++) {
        assert_true(nb < 64);
        idx[nb++] = s->sorted[p];
    }
    qsort(idx, nb, sizeof idx[0], size_cmp);
    double prev = 0, prev_le = -INFINITY, inf = -1;
    for (size_t b = 0; b < nb; b++) {
        size_t i = idx[b];
        double le = strtod(s->keys[i] + pl, NULL);
        assert_true(le > prev_le);       /* in increasing order */
        assert_true(s->vals[i] >= prev); /* cumulative */
        prev_le = le;
        prev = s->vals[i];
        if (isinf(le))
            inf = s->vals[i];
        s->seen[i] = true;
    }
    if (inf != count)
        fail_msg("%s{%s}: +Inf bucket %g != count %g", name, labels, inf, count);
    return nb;
}

/* Every sample whose name starts with `prefix` was ticked off. */
static inline void expect_nothing_else(const scrape *s, const char *prefix)
{
    size_t pl = strlen(prefix);
    for (size_t i = 0; i < s->n; i++)
        if (!s->seen[i] && strncmp(s->keys[i], prefix, pl) == 0)
            fail_msg("unexpected sample %s %g in:\n%s", s->keys[i], s->vals[i], s->text);
}

#endif
