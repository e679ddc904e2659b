/* Number formatting: round-tripping sample values and the official clients' `le` spelling. */
#include "metrics_test_util.h"

#include <float.h>

#include "metrics/metrics_internal.h"

static void expect_double(double v, const char *want)
{
    char buf[FS_NUM_MAX];
    size_t n = fs__format_double(buf, v);
    assert_int_equal(n, strlen(buf));
    assert_string_equal(buf, want);
}

static void test_specials_and_integers(void **state)
{
    (void)state;
    expect_double(NAN, "NaN");
    expect_double(INFINITY, "+Inf");
    expect_double(-INFINITY, "-Inf");
    expect_double(0, "0");
    expect_double(-0.0, "0");
    expect_double(1, "1");
    expect_double(-7, "-7");
    expect_double(42, "42");
    expect_double(1e15, "1000000000000000");
    expect_double(9007199254740991.0, "9007199254740991");
    expect_double(-9007199254740991.0, "-9007199254740991");
    expect_double(1700000000, "1700000000");
    expect_double(0.5, "0.5");
    expect_double(0.1, "0.1");
    expect_double(1700000000.5, "1700000000.5");
    expect_double(2.5e-7, "2.5e-07");
    char buf[FS_NUM_MAX];
    assert_int_equal(fs__format_u64(buf, UINT64_MAX), 20);
    assert_string_equal(buf, "18446744073709551615");
    assert_int_equal(fs__format_u64(buf, 0), 1);
    assert_string_equal(buf, "0");
}

static void expect_round_trip(double v)
{
    char buf[FS_NUM_MAX];
    size_t n = fs__format_double(buf, v);
    assert_true(n > 0 && n < FS_NUM_MAX);
    char *end;
    double back = strtod(buf, &end);
    assert_true(*end == '\0');
    if (back != v)
        fail_msg("%.17g rendered as %s parses back as %.17g", v, buf, back);
}

static void test_round_trip_tricky_doubles(void **state)
{
    (void)state;
    const double tricky[] = {0.1,
                             0.2,
                             0.1 + 0.2,
                             1.0 / 3,
                             2.0 / 3,
                             1e-300,
                             5e-324,
                             DBL_MIN,
                             DBL_MAX,
                             -DBL_MAX,
                             DBL_EPSILON,
                             9007199254740992.0,
                             9007199254740994.0,
                             18446744073709551616.0,
                             1e21,
                             1e22,
                             1e23,
                             123456789.123456789,
                             1e15 + 0.5,
                             -1e15 - 0.25,
                             0.30000000000000004,
                             100.0 / 7,
                             2.2250738585072014e-308,
                             4.9406564584124654e-324,
                             1.7976931348623157e308,
                             0.007,
                             3.14159265358979,
                             -2.718281828459045};
    for (size_t i = 0; i < sizeof tricky / sizeof tricky[0]; i++)
        expect_round_trip(tricky[i]);
    /* and a deterministic sweep of random bit patterns */
    uint64_t x = 0x9E3779B97F4A7C15ULL;
    for (int i = 0; i < 200000; i++) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        double v;
        memcpy(&v, &x, sizeof v);
        if (isfinite(v))
            expect_round_trip(v);
    }
    /* and durations such as a histogram sum holds */
    for (int i = 1; i < 20000; i++)
        expect_round_trip(i * 0.000123);
}

static void expect_le(double v, const char *text, const char *om)
{
    char buf[FS_NUM_MAX];
    fs__format_le(buf, v, false);
    assert_string_equal(buf, text);
    fs__format_le(buf, v, true);
    assert_string_equal(buf, om);
}

/* Go's text output (and Python's floatToGoString) for the text format;
 * the OpenMetrics canonical numbers (Go's %g plus ".0") for OpenMetrics. */
static void test_le_like_the_official_clients(void **state)
{
    (void)state;
    expect_le(0.005, "0.005", "0.005");
    expect_le(0.01, "0.01", "0.01");
    expect_le(0.075, "0.075", "0.075");
    expect_le(1, "1", "1.0");
    expect_le(2.5, "2.5", "2.5");
    expect_le(10, "10", "10.0");
    expect_le(16, "16", "16.0");
    expect_le(65536, "65536", "65536.0");
    expect_le(100000, "100000", "100000.0");
    expect_le(262144, "262144", "262144.0");
    expect_le(1e6, "1e+06", "1e+06");
    expect_le(1048576, "1.048576e+06", "1.048576e+06");
    expect_le(16777216, "1.6777216e+07", "1.6777216e+07");
    expect_le(1e10, "1e+10", "1e+10");
    expect_le(1e-10, "1e-10", "1e-10");
    expect_le(1e-9, "1e-09", "1e-09");
    expect_le(1e-5, "1e-05", "1e-05");
    expect_le(0.0001, "0.0001", "0.0001");
    expect_le(0, "0", "0.0");
    expect_le(-1.5, "-1.5", "-1.5");
    expect_le(INFINITY, "+Inf", "+Inf");
    /* the canonical examples of the OpenMetrics specification */
    const double v[] = {0.0, 0.001, 0.002, 0.01, 0.1, 0.9, 0.95, 0.99, 0.999, 1.0, 1.7, 10.0};
    const char *s[] = {"0.0",  "0.001", "0.002", "0.01", "0.1", "0.9",
                       "0.95", "0.99",  "0.999", "1.0",  "1.7", "10.0"};
    for (size_t i = 0; i < sizeof v / sizeof v[0]; i++) {
        char buf[FS_NUM_MAX];
        fs__format_le(buf, v[i], true);
        assert_string_equal(buf, s[i]);
    }
    /* 0.0 to 10.0 in 0.001 steps: fixed notation with a point, parsing back exactly */
    for (int k = 0; k <= 10000; k++) {
        double d = k / 1000.0;
        char buf[FS_NUM_MAX];
        fs__format_le(buf, d, true);
        assert_null(strchr(buf, 'e'));
        assert_non_null(strchr(buf, '.'));
        assert_true(strtod(buf, NULL) == d);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_specials_and_integers),
        cmocka_unit_test(test_round_trip_tricky_doubles),
        cmocka_unit_test(test_le_like_the_official_clients),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
