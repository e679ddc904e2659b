/*
 * Label keys (fs_label_key_*, fs_*_family_labels_key): a key lookup finds
 * exactly the child a lookup by the same values finds, whichever path
 * created it; extending a key equals initialising it with one more value;
 * wrong counts and failed keys are refused with a readable message; children
 * created concurrently through both paths are created once.
 */
#include "metrics_test_util.h"

#include "faststream/metrics.h"
#include "metrics/metrics_internal.h" /* FS_CHILD_INLINE */

#include <pthread.h>
#include <stdatomic.h>

static const char *const NAMES3[] = {"app_name", "broker", "handler"};
static const char *const NAMES4[] = {"app_name", "broker", "handler", "status"};

static fs_registry *new_registry(void)
{
    fs_registry *reg = NULL;
    assert_int_equal(fs_registry_new(&reg), FS_OK);
    return reg;
}

/* Number of lines in `text` starting with `prefix`. */
static int count_lines(const char *text, const char *prefix)
{
    int n = 0;
    size_t len = strlen(prefix);
    for (const char *p = text; p && *p;) {
        if (strncmp(p, prefix, len) == 0)
            n++;
        p = strchr(p, '\n');
        if (p)
            p++;
    }
    return n;
}

/* Label value `i` of a varied set: lengths 0..70, the exposition's special
 * characters, bytes that are not UTF-8, values that share prefixes. */
static void make_value(char *out, size_t cap, int i, int which)
{
    static const char *const pieces[] = {"", ",", "\"", "\\", "=", "\n", "{}", "\xff\xfe", "a"};
    int len = (i * 7 + which * 13) % 71;
    size_t n = 0;
    for (int k = 0; k < len && n + 3 < cap; k++) {
        const char *p = pieces[(i + k * which + k) % 9];
        if (!*p)
            p = "x";
        while (*p && n + 1 < cap)
            out[n++] = *p++;
    }
    n += (size_t)snprintf(out + n, cap - n, "%d", i % (which + 2));
    out[n < cap ? n : cap - 1] = '\0';
}

/* ---- key lookup == lookup by values ------------------------------------- */

static void test_key_matches_values(void **state)
{
    (void)state;
    fs_registry *reg = new_registry();
    fs_counter_family *cf;
    fs_gauge_family *gf;
    fs_histogram_family *hf;
    assert_int_equal(fs_counter_family_new(reg, "c_total", "c", 3, NAMES3, &cf), FS_OK);
    assert_int_equal(fs_gauge_family_new(reg, "g", "g", 3, NAMES3, &gf), FS_OK);
    assert_int_equal(fs_histogram_family_new(reg, "h", "h", 3, NAMES3, NULL, 0, &hf), FS_OK);
    enum { SETS = 600 };
    static char buf[SETS][3][200];
    for (int i = 0; i < SETS; i++)
        for (int w = 0; w < 3; w++)
            make_value(buf[i][w], sizeof buf[i][w], i, w);
    fs_counter *seen[SETS];
    for (int i = 0; i < SETS; i++) {
        const char *v[] = {buf[i][0], buf[i][1], buf[i][2]};
        fs_label_key k;
        assert_int_equal(fs_label_key_init(&k, 3, v), FS_OK);
        /* Even sets are created by values, odd ones by key: the other path finds them. */
        fs_counter *c =
            (i % 2) ? fs_counter_family_labels_key(cf, &k) : fs_counter_family_labels(cf, v);
        assert_non_null(c);
        assert_ptr_equal(c, (i % 2) ? fs_counter_family_labels(cf, v)
                                    : fs_counter_family_labels_key(cf, &k));
        fs_gauge *g = (i % 2) ? fs_gauge_family_labels(gf, v) : fs_gauge_family_labels_key(gf, &k);
        assert_non_null(g);
        assert_ptr_equal(g, (i % 2) ? fs_gauge_family_labels_key(gf, &k)
                                    : fs_gauge_family_labels(gf, v));
        fs_histogram *h = fs_histogram_family_labels_key(hf, &k);
        assert_non_null(h);
        assert_ptr_equal(h, fs_histogram_family_labels(hf, v));
        fs_counter_inc(c);
        seen[i] = c;
    }
    /* After every table growth the first children are still found, by both paths. */
    for (int i = 0; i < SETS; i++) {
        const char *v[] = {buf[i][0], buf[i][1], buf[i][2]};
        fs_label_key k;
        assert_int_equal(fs_label_key_init(&k, 3, v), FS_OK);
        assert_ptr_equal(fs_counter_family_labels_key(cf, &k), seen[i]);
        assert_ptr_equal(fs_counter_family_labels(cf, v), seen[i]);
    }
    /* Distinct sets got distinct children (make_value yields distinct sets) */
    char *text = render(reg, FS_FORMAT_TEXT);
    assert_int_equal(count_lines(text, "c_total{"), SETS);
    assert_int_equal(count_lines(text, "h_count{"), SETS);
    free(text);
    fs_registry_free(reg);
}

/* Values whose concatenations coincide are different label sets. */
static void test_prefix_ambiguities(void **state)
{
    (void)state;
    fs_registry *reg = new_registry();
    fs_counter_family *f;
    static const char *const two[] = {"x", "y"};
    assert_int_equal(fs_counter_family_new(reg, "amb_total", "a", 2, two, &f), FS_OK);
    static const char *const sets[][2] = {{"a", "bc"},
                                          {"ab", "c"},
                                          {"abc", ""},
                                          {"", "abc"},
                                          {"", ""},
                                          {"a,b", "c"},
                                          {"a", "b,c"},
                                          {"a\"", ""},
                                          {"a", "\""},
                                          {"abcdefghijklmnopq", "r"},
                                          {"abcdefghijklmnop", "qr"},
                                          {"a=", "b"},
                                          {"a", "=b"}};
    enum { N = sizeof sets / sizeof sets[0] };
    fs_counter *c[N];
    for (int i = 0; i < N; i++) {
        fs_label_key k;
        assert_int_equal(fs_label_key_init(&k, 2, sets[i]), FS_OK);
        c[i] = fs_counter_family_labels_key(f, &k);
        assert_non_null(c[i]);
        assert_int_equal(fs_counter_add(c[i], (double)(i + 1)), FS_OK);
        for (int j = 0; j < i; j++)
            assert_ptr_not_equal(c[i], c[j]);
    }
    for (int i = 0; i < N; i++) {
        assert_ptr_equal(fs_counter_family_labels(f, sets[i]), c[i]);
        assert_true(fs_counter_value(c[i]) == (double)(i + 1));
    }
    char *text = render(reg, FS_FORMAT_TEXT);
    assert_int_equal(count_lines(text, "amb_total{"), N);
    assert_true(sample_value(text, "amb_total{x=\"a\",y=\"bc\"}") == 1);
    assert_true(sample_value(text, "amb_total{x=\"ab\",y=\"c\"}") == 2);
    assert_true(sample_value(text, "amb_total{x=\"a\",y=\"\\\"\"}") == 9);
    free(text);
    fs_registry_free(reg);
}

/* ---- extend ------------------------------------------------------------- */

static void test_extend(void **state)
{
    (void)state;
    fs_registry *reg = new_registry();
    fs_counter_family *f3, *f4;
    assert_int_equal(fs_counter_family_new(reg, "r_total", "r", 3, NAMES3, &f3), FS_OK);
    assert_int_equal(fs_counter_family_new(reg, "p_total", "p", 4, NAMES4, &f4), FS_OK);
    static const char *const statuses[] = {"acked", "nacked", "rejected", "skipped", "error", ""};
    char handler[64];
    for (int i = 0; i < 40; i++) {
        snprintf(handler, sizeof handler, "orders-%d-%.*s", i, i,
                 "0123456789abcdefghijklmnopqrstuvwxyz0123456789");
        const char *v3[] = {"faststream", "memory", handler};
        fs_label_key base;
        assert_int_equal(fs_label_key_init(&base, 3, v3), FS_OK);
        fs_counter *r = fs_counter_family_labels_key(f3, &base);
        assert_ptr_equal(r, fs_counter_family_labels(f3, v3));
        for (size_t s = 0; s < sizeof statuses / sizeof statuses[0]; s++) {
            const char *v4[] = {"faststream", "memory", handler, statuses[s]};
            fs_label_key ext, full;
            assert_int_equal(fs_label_key_extend(&ext, &base, statuses[s]), FS_OK);
            assert_int_equal(fs_label_key_init(&full, 4, v4), FS_OK);
            fs_counter *p = fs_counter_family_labels_key(f4, &ext);
            assert_non_null(p);
            assert_ptr_equal(p, fs_counter_family_labels_key(f4, &full));
            assert_ptr_equal(p, fs_counter_family_labels(f4, v4));
            fs_counter_inc(p);
        }
        /* The base is unchanged by extending into another key. */
        assert_ptr_equal(fs_counter_family_labels_key(f3, &base), r);
        /* Extending in place. */
        const char *v4[] = {"faststream", "memory", handler, "acked"};
        assert_int_equal(fs_label_key_extend(&base, &base, "acked"), FS_OK);
        assert_ptr_equal(fs_counter_family_labels_key(f4, &base), fs_counter_family_labels(f4, v4));
        assert_null(fs_counter_family_labels_key(f3, &base));
    }
    /* A key built value by value from an empty one equals one built at once. */
    fs_label_key k, whole;
    assert_int_equal(fs_label_key_init(&k, 0, NULL), FS_OK);
    for (int i = 0; i < 4; i++)
        assert_int_equal(fs_label_key_extend(&k, &k, NAMES4[i]), FS_OK);
    assert_int_equal(fs_label_key_init(&whole, 4, NAMES4), FS_OK);
    fs_counter *c = fs_counter_family_labels_key(f4, &k);
    assert_non_null(c);
    assert_ptr_equal(c, fs_counter_family_labels_key(f4, &whole));
    assert_ptr_equal(c, fs_counter_family_labels(f4, NAMES4));
    fs_registry_free(reg);
}

static void test_full_key(void **state)
{
    (void)state;
    const char *values[FS_LABEL_KEY_MAX + 1];
    for (int i = 0; i <= FS_LABEL_KEY_MAX; i++)
        values[i] = "v";
    fs_label_key k, k2;
    assert_int_equal(fs_label_key_init(&k, FS_LABEL_KEY_MAX + 1, values), FS_EINVAL);
    assert_non_null(strstr(fs_last_error(), "at most 32"));
    assert_int_equal(fs_label_key_init(&k, FS_LABEL_KEY_MAX, values), FS_OK);
    assert_int_equal(fs_label_key_extend(&k2, &k, "v"), FS_EINVAL);
    assert_non_null(strstr(fs_last_error(), "full"));

    /* A family with the most labels is looked up alike by key and by values. */
    char names[FS_LABEL_KEY_MAX][8];
    const char *np[FS_LABEL_KEY_MAX];
    for (int i = 0; i < FS_LABEL_KEY_MAX; i++) {
        snprintf(names[i], sizeof names[i], "l%d", i);
        np[i] = names[i];
    }
    fs_registry *reg = new_registry();
    fs_gauge_family *g;
    assert_int_equal(fs_gauge_family_new(reg, "wide", "w", FS_LABEL_KEY_MAX, np, &g), FS_OK);
    fs_gauge *child = fs_gauge_family_labels_key(g, &k);
    assert_non_null(child);
    assert_ptr_equal(child, fs_gauge_family_labels(g, values));
    /* Extending a key of 31 values into a copy reaches the same child. */
    fs_label_key k31;
    assert_int_equal(fs_label_key_init(&k31, FS_LABEL_KEY_MAX - 1, values), FS_OK);
    assert_int_equal(fs_label_key_extend(&k2, &k31, "v"), FS_OK);
    assert_ptr_equal(fs_gauge_family_labels_key(g, &k2), child);
    fs_registry_free(reg);
}

/* Values too long for the key's packed copy (FS_LABEL_KEY_BYTES) are
 * compared value by value: the same children either way, also when an
 * extension is what no longer fits. */
static void test_long_values(void **state)
{
    (void)state;
    fs_registry *reg = new_registry();
    fs_counter_family *f3, *f4;
    assert_int_equal(fs_counter_family_new(reg, "l_total", "l", 3, NAMES3, &f3), FS_OK);
    assert_int_equal(fs_counter_family_new(reg, "s_total", "s", 4, NAMES4, &f4), FS_OK);
    enum { MAXLEN = 300 };
    static char a[MAXLEN + 1], b[MAXLEN + 1], c[MAXLEN + 1], d[MAXLEN + 1];
    /* Total lengths around the limit, in steps of one byte. */
    for (int len = FS_LABEL_KEY_BYTES / 3 - 12; len <= FS_LABEL_KEY_BYTES / 3 + 4; len++) {
        for (int delta = 0; delta < 3; delta++) {
            memset(a, 'a', (size_t)len);
            a[len] = '\0';
            memset(b, 'b', (size_t)(len + delta));
            b[len + delta] = '\0';
            memset(c, 'c', (size_t)len);
            c[len] = '\0';
            memset(d, 'd', (size_t)(len / 2 + delta));
            d[len / 2 + delta] = '\0';
            c[len / 2] = (char)('0' + delta); /* differ in the middle only */
            const char *v3[] = {a, b, c};
            const char *v4[] = {a, b, c, d};
            fs_label_key k3, k4, e4;
            assert_int_equal(fs_label_key_init(&k3, 3, v3), FS_OK);
            assert_int_equal(fs_label_key_init(&k4, 4, v4), FS_OK);
            assert_int_equal(fs_label_key_extend(&e4, &k3, d), FS_OK);
            fs_counter *x = fs_counter_family_labels_key(f3, &k3);
            assert_non_null(x);
            assert_ptr_equal(x, fs_counter_family_labels(f3, v3));
            fs_counter *y = fs_counter_family_labels(f4, v4);
            assert_non_null(y);
            assert_ptr_equal(y, fs_counter_family_labels_key(f4, &k4));
            assert_ptr_equal(y, fs_counter_family_labels_key(f4, &e4));
            fs_counter_inc(x);
            fs_counter_inc(y);
        }
    }
    /* Every (len, delta) made a distinct set: 17 lengths x 3 deltas. */
    char *text = render(reg, FS_FORMAT_TEXT);
    assert_int_equal(count_lines(text, "l_total{"), 17 * 3);
    assert_int_equal(count_lines(text, "s_total{"), 17 * 3);
    free(text);
    fs_registry_free(reg);
}

/* Children keep packed values of up to FS_CHILD_INLINE bytes in their header,
 * longer ones elsewhere: found alike on both sides of the limit, by both
 * paths, and rendered with the right values. */
/* Label values {a, b} of test_inline_limit's set i, and its key. */
static size_t limit_set(int i, char *a, char *b, size_t bcap, fs_label_key *k)
{
    size_t alen = FS_CHILD_INLINE - 6 + (size_t)i - 1 - 2;
    memset(a, 'x', alen);
    a[alen] = '\0';
    snprintf(b, bcap, "%c%c", 'a' + i, 'a' + i);
    const char *v[] = {a, b};
    assert_int_equal(fs_label_key_init(k, 2, v), FS_OK);
    return alen;
}

static void test_inline_limit(void **state)
{
    (void)state;
    fs_registry *reg = new_registry();
    fs_gauge_family *f;
    static const char *const two[] = {"a", "b"};
    assert_int_equal(fs_gauge_family_new(reg, "lim", "l", 2, two, &f), FS_OK);
    char a[FS_CHILD_INLINE + 8], b[8];
    const char *v[] = {a, b};
    fs_label_key k;
    fs_gauge *g[12];
    /* packed length = strlen(a) + 1 + strlen(b) + 1, from limit - 5 to limit + 6 */
    for (int i = 0; i < 12; i++) {
        limit_set(i, a, b, sizeof b, &k);
        g[i] = (i % 2) ? fs_gauge_family_labels_key(f, &k) : fs_gauge_family_labels(f, v);
        assert_non_null(g[i]);
        fs_gauge_set(g[i], i);
    }
    for (int i = 0; i < 12; i++) {
        size_t alen = limit_set(i, a, b, sizeof b, &k);
        assert_ptr_equal(fs_gauge_family_labels_key(f, &k), g[i]);
        assert_ptr_equal(fs_gauge_family_labels(f, v), g[i]);
        /* one byte shorter is another child */
        a[alen - 1] = '\0';
        assert_ptr_not_equal(fs_gauge_family_labels(f, v), g[i]);
        a[alen - 1] = 'x';
        char series[128];
        snprintf(series, sizeof series, "lim{a=\"%s\",b=\"%s\"}", a, b);
        char *text = render(reg, FS_FORMAT_TEXT);
        assert_true(sample_value(text, series) == i);
        free(text);
        assert_int_equal(fs_gauge_family_remove(f, v), FS_OK);
        /* removed children stay allocated: a new child has another address */
        assert_ptr_not_equal(fs_gauge_family_labels_key(f, &k), g[i]);
    }
    fs_registry_free(reg);
}

/* ---- refusals ----------------------------------------------------------- */

static void test_wrong_counts(void **state)
{
    (void)state;
    fs_registry *reg = new_registry();
    fs_counter_family *f4;
    fs_histogram_family *h3;
    assert_int_equal(fs_counter_family_new(reg, "p_total", "p", 4, NAMES4, &f4), FS_OK);
    assert_int_equal(fs_histogram_family_new(reg, "d", "d", 3, NAMES3, NULL, 0, &h3), FS_OK);
    static const char *const v5[] = {"a", "b", "c", "d", "e"};
    fs_label_key k3, k5;
    assert_int_equal(fs_label_key_init(&k3, 3, v5), FS_OK);
    assert_int_equal(fs_label_key_init(&k5, 5, v5), FS_OK);

    assert_null(fs_counter_family_labels_key(f4, &k3));
    assert_non_null(strstr(fs_last_error(), "'p' has 4 labels but the label key holds 3 values"));
    assert_non_null(strstr(fs_last_error(), "none for 'status'"));
    assert_null(fs_counter_family_labels_key(f4, &k5));
    assert_non_null(strstr(fs_last_error(), "has 4 labels but the label key holds 5 values"));
    assert_null(fs_histogram_family_labels_key(h3, &k5));
    assert_non_null(strstr(fs_last_error(), "'d' has 3 labels"));

    /* An unlabelled family: its single child with an empty key, nothing else. */
    fs_counter *single;
    assert_int_equal(fs_counter_new(reg, "plain_total", "p", &single), FS_OK);
    fs_counter_family *plain;
    assert_int_equal(fs_counter_family_new(reg, "plain_total", "p", 0, NULL, &plain), FS_OK);
    fs_label_key k0;
    assert_int_equal(fs_label_key_init(&k0, 0, NULL), FS_OK);
    assert_ptr_equal(fs_counter_family_labels_key(plain, &k0), single);
    assert_null(fs_counter_family_labels_key(plain, &k3));
    assert_non_null(strstr(fs_last_error(), "has 0 labels but the label key holds 3 values"));

    /* Nothing was created by the refused lookups. */
    char *text = render(reg, FS_FORMAT_TEXT);
    assert_false(
        has_series(text, "p_total{app_name=\"a\",broker=\"b\",handler=\"c\",status=\"d\"}"));
    assert_int_equal(count_lines(text, "p_total{"), 0);
    free(text);
    fs_registry_free(reg);
}

static void test_bad_arguments(void **state)
{
    (void)state;
    fs_registry *reg = new_registry();
    fs_counter_family *f;
    fs_gauge_family *g;
    assert_int_equal(fs_counter_family_new(reg, "x_total", "x", 3, NAMES3, &f), FS_OK);
    assert_int_equal(fs_gauge_family_new(reg, "y", "y", 3, NAMES3, &g), FS_OK);
    static const char *const good[] = {"a", "b", "c"};
    const char *bad[] = {"a", NULL, "c"};
    fs_label_key k, ok;
    assert_int_equal(fs_label_key_init(&ok, 3, good), FS_OK);

    assert_int_equal(fs_label_key_init(NULL, 3, good), FS_EINVAL);
    assert_non_null(strstr(fs_last_error(), "key is NULL"));
    assert_int_equal(fs_label_key_init(&k, 3, NULL), FS_EINVAL);
    assert_non_null(strstr(fs_last_error(), "values are NULL"));
    assert_null(fs_counter_family_labels_key(f, &k));
    assert_non_null(strstr(fs_last_error(), "init or extend failed"));

    assert_int_equal(fs_label_key_init(&k, 3, bad), FS_EINVAL);
    assert_non_null(strstr(fs_last_error(), "value 1 is NULL"));
    assert_null(fs_gauge_family_labels_key(g, &k));
    assert_non_null(strstr(fs_last_error(), "'y'"));
    /* Extending an unusable key, or by NULL, leaves an unusable key. */
    fs_label_key e;
    assert_int_equal(fs_label_key_extend(&e, &k, "d"), FS_EINVAL);
    assert_non_null(strstr(fs_last_error(), "unusable"));
    fs_label_key k2;
    assert_int_equal(fs_label_key_init(&k2, 2, good), FS_OK);
    assert_int_equal(fs_label_key_extend(&e, &k2, NULL), FS_EINVAL);
    assert_non_null(strstr(fs_last_error(), "value is NULL"));
    assert_null(fs_counter_family_labels_key(f, &e));
    assert_int_equal(fs_label_key_extend(&e, NULL, "c"), FS_EINVAL);
    assert_null(fs_counter_family_labels_key(f, &e));
    assert_int_equal(fs_label_key_extend(NULL, &k2, "c"), FS_EINVAL);
    /* A key made usable again works. */
    assert_int_equal(fs_label_key_extend(&e, &k2, "c"), FS_OK);
    assert_ptr_equal(fs_counter_family_labels_key(f, &e), fs_counter_family_labels(f, good));

    assert_null(fs_counter_family_labels_key(NULL, &ok));
    assert_non_null(strstr(fs_last_error(), "family is NULL"));
    assert_null(fs_counter_family_labels_key(f, NULL));
    assert_non_null(strstr(fs_last_error(), "label key is NULL"));
    assert_null(fs_gauge_family_labels_key(NULL, &ok));
    assert_null(fs_histogram_family_labels_key(NULL, &ok));
    fs_registry_free(reg);
}

/* A removed child is not found by key; the next key lookup creates a new one. */
static void test_remove_and_clear(void **state)
{
    (void)state;
    fs_registry *reg = new_registry();
    fs_counter_family *f;
    assert_int_equal(fs_counter_family_new(reg, "rm_total", "r", 3, NAMES3, &f), FS_OK);
    static const char *const v[] = {"app", "memory", "orders"};
    fs_label_key k;
    assert_int_equal(fs_label_key_init(&k, 3, v), FS_OK);
    fs_counter *old = fs_counter_family_labels_key(f, &k);
    fs_counter_inc(old);
    assert_int_equal(fs_counter_family_remove(f, v), FS_OK);
    fs_counter *fresh = fs_counter_family_labels_key(f, &k);
    assert_non_null(fresh);
    assert_true(fs_counter_value(fresh) == 0);
    assert_ptr_equal(fresh, fs_counter_family_labels(f, v));
    fs_counter_family_clear(f);
    fs_counter *again = fs_counter_family_labels_key(f, &k);
    assert_non_null(again);
    assert_ptr_equal(again, fs_counter_family_labels(f, v));
    fs_counter_inc(again);
    char *text = render(reg, FS_FORMAT_TEXT);
    assert_int_equal(count_lines(text, "rm_total{"), 1);
    assert_true(
        sample_value(text, "rm_total{app_name=\"app\",broker=\"memory\",handler=\"orders\"}") == 1);
    free(text);
    fs_registry_free(reg);
}

/* ---- concurrent creation through both paths ----------------------------- */

enum { THREADS = 4, SETS = 512, ROUNDS = 20 };

struct shared {
    fs_counter_family *fam;
    fs_counter_family *status;
    pthread_barrier_t start;
    char handler[SETS][16];
    _Atomic(fs_counter *) child[SETS];
    atomic_int mismatches;
};

struct worker_arg {
    struct shared *s;
    int id;
};

static void *worker(void *p)
{
    struct worker_arg *a = p;
    struct shared *s = a->s;
    pthread_barrier_wait(&s->start);
    for (int r = 0; r < ROUNDS; r++) {
        for (int j = 0; j < SETS; j++) {
            /* Threads walk the sets in different orders and alternate paths. */
            int i = (a->id % 2) ? j : SETS - 1 - j;
            const char *v[] = {"app", "memory", s->handler[i]};
            const char *v4[] = {"app", "memory", s->handler[i], "acked"};
            fs_counter *c, *p4;
            if ((a->id + r + j) % 2) {
                fs_label_key k, k4;
                fs_label_key_init(&k, 3, v);
                fs_label_key_extend(&k4, &k, "acked");
                c = fs_counter_family_labels_key(s->fam, &k);
                p4 = fs_counter_family_labels_key(s->status, &k4);
            } else {
                c = fs_counter_family_labels(s->fam, v);
                p4 = fs_counter_family_labels(s->status, v4);
            }
            fs_counter_inc(c);
            fs_counter_inc(p4);
            fs_counter *expected = NULL;
            if (!atomic_compare_exchange_strong(&s->child[i], &expected, c) && expected != c)
                atomic_fetch_add(&s->mismatches, 1);
        }
    }
    return NULL;
}

static void test_concurrent_creation(void **state)
{
    (void)state;
    struct shared *s = calloc(1, sizeof *s);
    assert_non_null(s);
    fs_registry *reg = new_registry();
    assert_int_equal(fs_counter_family_new(reg, "cc_total", "c", 3, NAMES3, &s->fam), FS_OK);
    assert_int_equal(fs_counter_family_new(reg, "cs_total", "c", 4, NAMES4, &s->status), FS_OK);
    for (int i = 0; i < SETS; i++)
        snprintf(s->handler[i], sizeof s->handler[i], "h%d", i);
    pthread_barrier_init(&s->start, NULL, THREADS);
    pthread_t t[THREADS];
    struct worker_arg args[THREADS];
    for (int i = 0; i < THREADS; i++) {
        args[i] = (struct worker_arg){s, i};
        assert_int_equal(pthread_create(&t[i], NULL, worker, &args[i]), 0);
    }
    for (int i = 0; i < THREADS; i++)
        pthread_join(t[i], NULL);
    assert_int_equal(atomic_load(&s->mismatches), 0);
    for (int i = 0; i < SETS; i++) {
        const char *v[] = {"app", "memory", s->handler[i]};
        const char *v4[] = {"app", "memory", s->handler[i], "acked"};
        fs_counter *c = fs_counter_family_labels(s->fam, v);
        assert_ptr_equal(c, atomic_load(&s->child[i]));
        assert_true(fs_counter_value(c) == THREADS * ROUNDS);
        assert_true(fs_counter_value(fs_counter_family_labels(s->status, v4)) == THREADS * ROUNDS);
    }
    char *text = render(reg, FS_FORMAT_TEXT);
    assert_int_equal(count_lines(text, "cc_total{"), SETS);
    assert_int_equal(count_lines(text, "cs_total{"), SETS);
    free(text);
    pthread_barrier_destroy(&s->start);
    fs_registry_free(reg);
    free(s);
}

/* Key and value lookups while another thread removes children and clears
 * the family: slots are tombstoned and reused under the readers. */
struct churn {
    fs_counter_family *fam;
    char handler[64][8];
    atomic_bool stop;
    atomic_int wrong;
};

static void *churn_reader(void *p)
{
    struct churn *s = p;
    for (int i = 0; !atomic_load(&s->stop); i++) {
        const char *v[] = {"app", "memory", s->handler[i % 64]};
        fs_label_key k;
        fs_label_key_init(&k, 3, v);
        fs_counter *c = (i % 2) ? fs_counter_family_labels_key(s->fam, &k)
                                : fs_counter_family_labels(s->fam, v);
        if (!c)
            atomic_fetch_add(&s->wrong, 1);
        fs_counter_inc(c);
    }
    return NULL;
}

static void *churn_remover(void *p)
{
    struct churn *s = p;
    for (int i = 0; i < 20000; i++) {
        const char *v[] = {"app", "memory", s->handler[(i * 7) % 64]};
        fs_counter_family_remove(s->fam, v);
        if (i % 500 == 0)
            fs_counter_family_clear(s->fam);
    }
    atomic_store(&s->stop, true);
    return NULL;
}

static void test_lookups_during_removal(void **state)
{
    (void)state;
    struct churn *s = calloc(1, sizeof *s);
    assert_non_null(s);
    fs_registry *reg = new_registry();
    assert_int_equal(fs_counter_family_new(reg, "ch_total", "c", 3, NAMES3, &s->fam), FS_OK);
    for (int i = 0; i < 64; i++)
        snprintf(s->handler[i], sizeof s->handler[i], "h%d", i);
    pthread_t t[3];
    assert_int_equal(pthread_create(&t[0], NULL, churn_reader, s), 0);
    assert_int_equal(pthread_create(&t[1], NULL, churn_reader, s), 0);
    assert_int_equal(pthread_create(&t[2], NULL, churn_remover, s), 0);
    for (int i = 0; i < 3; i++)
        pthread_join(t[i], NULL);
    assert_int_equal(atomic_load(&s->wrong), 0);
    /* Afterwards both paths agree, and no label set is exposed twice. */
    for (int i = 0; i < 64; i++) {
        const char *v[] = {"app", "memory", s->handler[i]};
        fs_label_key k;
        assert_int_equal(fs_label_key_init(&k, 3, v), FS_OK);
        fs_counter *c = fs_counter_family_labels_key(s->fam, &k);
        assert_non_null(c);
        assert_ptr_equal(c, fs_counter_family_labels(s->fam, v));
    }
    char *text = render(reg, FS_FORMAT_TEXT);
    assert_int_equal(count_lines(text, "ch_total{"), 64);
    free(text);
    fs_registry_free(reg);
    free(s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_key_matches_values),
        cmocka_unit_test(test_prefix_ambiguities),
        cmocka_unit_test(test_extend),
        cmocka_unit_test(test_full_key),
        cmocka_unit_test(test_long_values),
        cmocka_unit_test(test_inline_limit),
        cmocka_unit_test(test_wrong_counts),
        cmocka_unit_test(test_bad_arguments),
        cmocka_unit_test(test_remove_and_clear),
        cmocka_unit_test(test_concurrent_creation),
        cmocka_unit_test(test_lookups_during_removal),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
