/*
 * Public functions given sizes and counts that overflow what they multiply
 * or add them into (SIZE_MAX, SIZE_MAX / 8 + 1, UINT_MAX...): each refuses
 * with a readable error (FS_EINVAL or FS_ENOMEM) instead of allocating a
 * wrapped size, reading past its arguments or crashing. (Bucket helpers and
 * bucket counts are the metrics engineer's: see the metrics issue.)
 */
#include "core_test.h"

#include <limits.h>
#include <stdint.h>

#define HUGE_COUNTS                                                                                \
    {                                                                                              \
        SIZE_MAX, SIZE_MAX / 2 + 1, SIZE_MAX / 8 + 1, SIZE_MAX / 16 + 1, SIZE_MAX / 24 + 1,        \
            SIZE_MAX / 32 + 1, SIZE_MAX / 48 + 1, (size_t)UINT32_MAX + 1, (size_t)1 << 40          \
    }

static void expect_refused(int rc, const char *what, size_t n)
{
    if (rc != FS_EINVAL && rc != FS_ENOMEM)
        fail_msg("%s with %zu returned %d (%s)", what, n, rc, fs_last_error());
    assert_true(fs_last_error()[0] != '\0');
}

static void test_metrics_counts(void **state)
{
    (void)state;
    fs_registry *reg;
    CHECK_OK(fs_registry_new(&reg));
    const char *names[2] = {"a", "b"};
    const double buckets[2] = {1, 2};
    const size_t huge[] = HUGE_COUNTS;
    for (size_t i = 0; i < sizeof huge / sizeof *huge; i++) {
        size_t n = huge[i];
        fs_counter_family *cf;
        fs_gauge_family *gf;
        fs_histogram_family *hf;
        fs_label_key k;
        expect_refused(fs_counter_family_new(reg, "c", "h", n, names, &cf), "counter family", n);
        expect_refused(fs_gauge_family_new(reg, "g", "h", n, names, &gf), "gauge family", n);
        expect_refused(fs_histogram_family_new(reg, "hf", "h", n, names, buckets, 2, &hf),
                       "histogram family labels", n);
        expect_refused(fs_info_new(reg, "i", "h", n, names, names), "info", n);
        expect_refused(fs_label_key_init(&k, n, names), "label key", n);
    }
    fs_registry_free(reg);
}

static fs_outcome ok_handler(fs_message *msg, void *user)
{
    (void)msg;
    (void)user;
    return FS_OUTCOME_OK;
}

static void test_memory_broker_counts(void **state)
{
    (void)state;
    const size_t huge[] = HUGE_COUNTS;
    for (size_t i = 0; i < sizeof huge / sizeof *huge; i++) {
        size_t n = huge[i];
        fs_memory_options o = FS_MEMORY_OPTIONS_INIT;
        o.capacity = n;
        fs_broker *b = NULL;
        int rc = fs_memory_broker_new(&o, &b);
        if (rc == FS_OK) { /* a lazy ring is fine as long as it stays usable */
            CHECK_OK(fs_broker_connect(b));
            CHECK_OK(fs_publish_bytes(b, "q", "x", 1));
            fs_broker_free(b);
        } else {
            expect_refused(rc, "memory capacity", n);
        }
        o = (fs_memory_options)FS_MEMORY_OPTIONS_INIT;
        o.inline_size = n;
        rc = fs_memory_broker_new(&o, &b);
        if (rc == FS_OK) {
            CHECK_OK(fs_broker_connect(b));
            CHECK_OK(fs_publish_bytes(b, "q", "x", 1));
            fs_broker_free(b);
        } else {
            expect_refused(rc, "memory inline_size", n);
        }
    }
    char url[128];
    snprintf(url, sizeof url, "memory://?capacity=%zu", SIZE_MAX);
    fs_broker *b = NULL;
    int rc = fs_broker_new(url, NULL, &b);
    if (rc == FS_OK)
        fs_broker_free(b);
    else
        expect_refused(rc, url, 0);
    expect_refused(fs_broker_new("memory://?capacity=99999999999999999999999", NULL, &b),
                   "capacity beyond 64 bits", 0);
}

static void test_publish_counts(void **state)
{
    (void)state;
    fs_broker *b = memory_broker(8, false);
    CHECK_OK(fs_broker_connect(b));
    fs_publisher *p;
    CHECK_OK(fs_publisher_new(b, "q", NULL, &p));
    /* Lengths whose sums wrap (a length the body does not have but memory
     * could hold is the caller's mistake, and a malloc of SIZE_MAX / 2 is
     * an out-of-memory path valgrind calls fishy). */
    const size_t lengths[] = {SIZE_MAX, SIZE_MAX - 1};
    for (size_t i = 0; i < sizeof lengths / sizeof *lengths; i++) {
        size_t n = lengths[i];
        /* The body is one byte: a length the packing adds to must not wrap. */
        expect_refused(fs_publish_bytes(b, "q", "x", n), "publish length", n);
        expect_refused(fs_publisher_publish_bytes(p, "x", n), "publisher length", n);
        expect_refused(fs_publisher_publish_batch(p, NULL, n), "batch without messages", n);
    }
    fs_broker_free(b);
}

static void test_subscriber_counts(void **state)
{
    (void)state;
    fs_broker *b = memory_broker(8, false);
    fs_subscriber_options so = FS_SUBSCRIBER_OPTIONS_INIT;
    so.concurrency = UINT_MAX;
    fs_subscriber *sub;
    int rc = fs_subscribe(b, "q", ok_handler, NULL, &so, &sub);
    if (rc == FS_OK)
        rc = fs_broker_start(b);
    expect_refused(rc, "concurrency", UINT_MAX);
    fs_broker_free(b);
    const size_t huge[] = HUGE_COUNTS;
    for (size_t i = 0; i < sizeof huge / sizeof *huge; i++) {
        b = memory_broker(8, false);
        so = (fs_subscriber_options)FS_SUBSCRIBER_OPTIONS_INIT;
        so.batch_size = huge[i];
        rc = fs_subscribe(b, "q", ok_handler, NULL, &so, &sub);
        if (rc == FS_OK)
            rc = fs_broker_start(b);
        expect_refused(rc, "batch_size", huge[i]);
        fs_broker_free(b);
    }
}

int main(void)
{
    quiet_logs();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_metrics_counts),
        cmocka_unit_test(test_memory_broker_counts),
        cmocka_unit_test(test_publish_counts),
        cmocka_unit_test(test_subscriber_counts),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
