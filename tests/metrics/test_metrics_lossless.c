/*
 * Exact rendering of any label value, and numbers independent of the locale.
 *
 * Random byte strings (invalid UTF-8, valid multi-byte sequences, U+FFFD
 * followed by hex digits, escapes) become label values; the page goes
 * through Python's text and OpenMetrics parsers (/usr/bin/python3,
 * python3-prometheus-client), which must read back every label set, none
 * twice (check_label_values.py decodes the documented policy).
 *
 * Under a comma-decimal locale (de_DE.UTF-8, generated with localedef into
 * the build tree when the system lacks it) numbers still render with a
 * point and Accept q-values still parse.
 */
#include "metrics_test_util.h"

#include <errno.h>
#include <locale.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "faststream/exposition.h"

static uint64_t rng = 0x243F6A8885A308D3ULL;

static uint32_t next(void)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return (uint32_t)(rng >> 16);
}

/* Up to 12 bytes of trouble. */
static size_t random_value(char *out)
{
    static const char specials[] = "\\\"\n\r\t{},= #";
    static const char hex[] = "0123456789ABCDEFabcdef";
    size_t n = 0, want = next() % 13;
    while (n < want) {
        switch (next() % 7) {
        case 0: /* a byte 0x80..0xFF alone (never valid UTF-8 on its own) */
            out[n++] = (char)(0x80 | next() % 128);
            break;
        case 1: /* any byte but NUL */
            out[n++] = (char)(1 + next() % 255);
            break;
        case 2:
            out[n++] = specials[next() % (sizeof specials - 1)];
            break;
        case 3: /* U+FFFD, often before hex digits */
            memcpy(out + n, "\xEF\xBF\xBD", 3);
            n += 3;
            break;
        case 4:
            out[n++] = hex[next() % (sizeof hex - 1)];
            break;
        case 5: { /* a valid 2- or 3-byte sequence (é, 日) */
            const char *seq = next() % 2 ? "\xC3\xA9" : "\xE6\x97\xA5";
            size_t l = strlen(seq);
            memcpy(out + n, seq, l);
            n += l;
            break;
        }
        default:
            out[n++] = (char)('a' + next() % 26);
            break;
        }
    }
    out[n] = '\0';
    return n;
}

static void write_hex(FILE *f, const char *s)
{
    for (const unsigned char *p = (const unsigned char *)s; *p; p++)
        fprintf(f, "%02x", *p);
}

static void write_file(const char *path, const char *data)
{
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(data, f);
    assert_int_equal(fclose(f), 0);
}

static void test_random_bytes_through_python(void **state)
{
    (void)state;
    if (access(FS_TEST_PYTHON, X_OK) != 0)
        skip(); /* no /usr/bin/python3: nothing to parse with */
    fs_registry *reg;
    assert_int_equal(fs_registry_new(&reg), FS_OK);
    const char *names[] = {"a", "b"};
    fs_counter_family *fam;
    assert_int_equal(fs_counter_family_new(reg, "rand_total", "Random.", 2, names, &fam), FS_OK);
    char expected[512];
    snprintf(expected, sizeof expected, "%s/lossless.expected", FS_TEST_BINARY_DIR);
    FILE *ex = fopen(expected, "w");
    assert_non_null(ex);
    enum { N = 3000 };
    for (int i = 0; i < N; i++) {
        char a[64], b[64];
        random_value(a);
        random_value(b);
        if (i == 0) { /* the pair the old policy rendered alike */
            strcpy(a, "a\xFE");
            strcpy(b, "a\xFF");
        }
        const char *v[] = {a, b};
        fs_counter_inc(fs_counter_family_labels(fam, v));
        write_hex(ex, a);
        fputc(' ', ex);
        write_hex(ex, b);
        fputc('\n', ex);
    }
    assert_int_equal(fclose(ex), 0);
    char text[512], om[512], cmd[2048];
    snprintf(text, sizeof text, "%s/lossless.txt", FS_TEST_BINARY_DIR);
    snprintf(om, sizeof om, "%s/lossless.om", FS_TEST_BINARY_DIR);
    char *t = render(reg, FS_FORMAT_TEXT);
    write_file(text, t);
    free(t);
    t = render(reg, FS_FORMAT_OPENMETRICS);
    write_file(om, t);
    free(t);
    fs_registry_free(reg);
    snprintf(cmd, sizeof cmd, "%s %s/metrics/check_label_values.py %s %s %s", FS_TEST_PYTHON,
             FS_TEST_SOURCE_DIR, text, om, expected);
    int rc = system(cmd);
    assert_true(rc != -1 && WIFEXITED(rc));
    if (WEXITSTATUS(rc) == 77)
        skip(); /* python3-prometheus-client missing (scripts/install-deps.sh installs it) */
    assert_int_equal(WEXITSTATUS(rc), 0);
}

/* ------------------------------------------------------------------------ */
/* Locale                                                                   */

/*
 * Switch to a comma-decimal locale: de_DE.UTF-8 from the system, or one
 * localedef generates into the build tree (LOCPATH). False (with the
 * reason printed) when neither works.
 */
static bool comma_locale(void)
{
    if (setlocale(LC_ALL, "de_DE.UTF-8") || setlocale(LC_ALL, "de_DE.utf8"))
        return strcmp(localeconv()->decimal_point, ",") == 0;
    char dir[512], cmd[1200];
    snprintf(dir, sizeof dir, "%s/locales", FS_TEST_BINARY_DIR);
    if (mkdir(dir, 0755) != 0 && errno != EEXIST)
        return false;
    snprintf(cmd, sizeof cmd,
             "test -d %s/de_DE.UTF-8 || localedef -i de_DE -f UTF-8 %s/de_DE.UTF-8 >/dev/null 2>&1",
             dir, dir);
    int rc = system(cmd);
    setenv("LOCPATH", dir, 1);
    if (rc != 0 || !setlocale(LC_ALL, "de_DE.UTF-8")) {
        printf("skipped: no de_DE.UTF-8 locale and localedef could not make one in %s "
               "(Debian package 'locales')\n",
               dir);
        return false;
    }
    return strcmp(localeconv()->decimal_point, ",") == 0;
}

static void test_comma_locale(void **state)
{
    (void)state;
    if (!comma_locale())
        skip();
    char check[16];
    snprintf(check, sizeof check, "%.1f", 0.5);
    assert_string_equal(check, "0,5"); /* the locale is really in effect */
    fs_registry *reg;
    assert_int_equal(fs_registry_new(&reg), FS_OK);
    fs_gauge *g;
    assert_int_equal(fs_gauge_new(reg, "ratio", "R.", &g), FS_OK);
    fs_gauge_set(g, 0.5);
    const double b[] = {0.25, 2.5, 1e-7};
    fs_histogram *h;
    assert_int_equal(fs_histogram_new(reg, "lat_seconds", "L.", b, 2, &h), FS_OK);
    fs_histogram_observe(h, 0.125);
    fs_histogram_observe(h, 1.75);
    fs_histogram *tiny;
    assert_int_equal(fs_histogram_new(reg, "tiny_seconds", "T.", b + 2, 1, &tiny), FS_OK);
    char *pages[2];
    for (int format = 0; format < 2; format++)
        pages[format] = render(reg, (fs_format)format);
    fs_format om =
        fs_format_negotiate("application/openmetrics-text;version=1.0.0;q=0.5,text/plain;q=0.4");
    fs_format text = fs_format_negotiate("application/openmetrics-text;q=0.4,text/plain;q=0.5");
    fs_format tiny_q = fs_format_negotiate("application/openmetrics-text;q=0.001,*/*;q=0");
    setlocale(LC_ALL, "C"); /* the checks below read numbers with strtod */
    for (int format = 0; format < 2; format++) {
        char *t = pages[format];
        assert_null(strchr(t, ','));
        assert_non_null(strstr(t, "\nratio 0.5\n"));
        assert_true(sample_value(t, "lat_seconds_sum") == 1.875);
        assert_true(has_series(t, "lat_seconds_bucket{le=\"0.25\"}"));
        assert_true(has_series(t, "lat_seconds_bucket{le=\"2.5\"}"));
        assert_true(has_series(t, "tiny_seconds_bucket{le=\"1e-07\"}"));
        free(t);
    }
    /* q-values with a point, whatever the locale */
    assert_int_equal(om, FS_FORMAT_OPENMETRICS);
    assert_int_equal(text, FS_FORMAT_TEXT);
    assert_int_equal(tiny_q, FS_FORMAT_OPENMETRICS);
    fs_registry_free(reg);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_random_bytes_through_python),
        cmocka_unit_test(test_comma_locale),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
