/*
 * The adapter kit: queue lanes, close, remove_if, leader/followers; pool
 * reuse; backoff bounds; the ordered-completion tracker; UTF-8; buffers.
 */
#include "kit/backoff.h"
#include "kit/buffer.h"
#include "kit/clock.h"
#include "kit/pool.h"
#include "kit/queue.h"
#include "kit/seq.h"
#include "kit/slot.h"
#include "kit/str.h"
#include "kit/ticks.h"
#include "kit/utf8.h"

#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>

typedef struct item {
    fs_message m;
    fs_kit_qnode qn;
    int value;
} item;

static void item_init(item *it, int v)
{
    fs_message_init(&it->m);
    it->qn.msg = &it->m;
    it->value = v;
}

static int value_of(fs_message *m)
{
    return ((item *)(void *)m)->value;
}

static void test_queue_lanes(void **state)
{
    (void)state;
    fs_kit_queue q;
    assert_int_equal(fs_kit_queue_init(&q, 2), FS_OK);
    item a, b, c;
    item_init(&a, 1);
    item_init(&b, 2);
    item_init(&c, 3);
    fs_kit_queue_push(&q, 0, &a.qn);
    fs_kit_queue_push(&q, 1, &b.qn);
    fs_kit_queue_push(&q, 2, &c.qn); /* lane 2 % 2 = 0 */
    assert_int_equal(fs_kit_queue_len(&q, 0), 2);
    assert_int_equal(fs_kit_queue_len(&q, -1), 3);
    fs_message *m;
    assert_int_equal(fs_kit_queue_pop(&q, 1, 0, &m), FS_OK);
    assert_int_equal(value_of(m), 2);
    assert_int_equal(fs_kit_queue_pop(&q, 1, 10, &m), FS_ETIMEDOUT);
    fs_message *out[4];
    size_t n;
    assert_int_equal(fs_kit_queue_pop_batch(&q, 0, out, 4, 5, 100, &n), FS_OK);
    assert_int_equal(n, 2);
    assert_int_equal(value_of(out[0]), 1);
    assert_int_equal(value_of(out[1]), 3);
    fs_kit_queue_close(&q);
    fs_kit_queue_push(&q, 0, &a.qn);
    assert_int_equal(fs_kit_queue_pop(&q, 0, 1000, &m), FS_OK); /* queued first */
    assert_int_equal(fs_kit_queue_pop(&q, 0, 1000, &m), FS_ECLOSED);
    fs_kit_queue_open(&q);
    fs_kit_queue_destroy(&q);
}

static bool is_odd(fs_kit_qnode *n, void *arg)
{
    (void)arg;
    return value_of(n->msg) % 2 != 0;
}

static void test_queue_remove_if(void **state)
{
    (void)state;
    fs_kit_queue q;
    assert_int_equal(fs_kit_queue_init(&q, 1), FS_OK);
    item it[5];
    for (int i = 0; i < 5; i++) {
        item_init(&it[i], i);
        fs_kit_queue_push(&q, 0, &it[i].qn);
    }
    fs_kit_qnode *removed;
    assert_int_equal(fs_kit_queue_remove_if(&q, -1, is_odd, NULL, &removed), 2);
    assert_int_equal(value_of(removed->msg), 1);
    assert_int_equal(value_of(removed->next->msg), 3);
    assert_null(removed->next->next);
    fs_kit_queue_push(&q, 0, &it[1].qn); /* the tail is still right */
    size_t n;
    fs_kit_qnode *all = fs_kit_queue_drain(&q, &n);
    assert_int_equal(n, 4);
    int want[] = {0, 2, 4, 1};
    for (int i = 0; i < 4; i++, all = all->next)
        assert_int_equal(value_of(all->msg), want[i]);
    assert_null(all);
    fs_kit_queue_destroy(&q);
}

typedef struct leader_ctx {
    fs_kit_queue q;
    item items[64];
    int next;
    size_t max_want;
    pthread_mutex_t mu;
} leader_ctx;

static void leader_read(void *ctx, size_t want, int budget_ms)
{
    leader_ctx *lc = ctx;
    (void)budget_ms;
    pthread_mutex_lock(&lc->mu);
    if (want > lc->max_want)
        lc->max_want = want;
    for (size_t i = 0; i < want && lc->next < 64; i++) {
        item *it = &lc->items[lc->next++];
        fs_kit_queue_push(&lc->q, 0, &it->qn);
    }
    pthread_mutex_unlock(&lc->mu);
    fs_kit_sleep_ms(1);
}

static void *leader_worker(void *arg)
{
    leader_ctx *lc = arg;
    int got = 0;
    for (;;) {
        fs_message *m;
        size_t n;
        int rc = fs_kit_queue_take(&lc->q, 0, &m, 1, 0, 200, &n, leader_read, lc);
        if (rc != FS_OK)
            break;
        got++;
    }
    return (void *)(intptr_t)got;
}

static void test_queue_leader_followers(void **state)
{
    (void)state;
    leader_ctx lc;
    memset(&lc, 0, sizeof lc);
    pthread_mutex_init(&lc.mu, NULL);
    assert_int_equal(fs_kit_queue_init(&lc.q, 1), FS_OK);
    for (int i = 0; i < 64; i++)
        item_init(&lc.items[i], i);
    pthread_t t[4];
    for (int i = 0; i < 4; i++)
        pthread_create(&t[i], NULL, leader_worker, &lc);
    intptr_t total = 0;
    for (int i = 0; i < 4; i++) {
        void *r;
        pthread_join(t[i], &r);
        total += (intptr_t)r;
    }
    assert_int_equal(total, 64);  /* every item handed out exactly once */
    assert_true(lc.max_want > 1); /* a read fetched for the waiting workers too */
    fs_kit_queue_destroy(&lc.q);
    pthread_mutex_destroy(&lc.mu);
}

static void test_pool(void **state)
{
    (void)state;
    fs_kit_pool p;
    fs_kit_pool_init(&p, 100);
    char *a = fs_kit_pool_get(&p);
    assert_non_null(a);
    assert_int_equal(a[99], 0);
    a[0] = 'x';
    fs_kit_pool_put(&p, a);
    char *b = fs_kit_pool_get(&p);
    assert_ptr_equal(a, b); /* recycled, content kept */
    assert_int_equal(b[0], 'x');
    assert_int_equal((uintptr_t)b % 16, 0);
    fs_kit_pool_put(&p, b);
    fs_kit_pool_destroy(&p, NULL);
    assert_int_equal(atomic_load(&p.allocated), 0);
}

static void test_backoff(void **state)
{
    (void)state;
    fs_kit_backoff bo;
    fs_kit_backoff_init(&bo, 100, 1000);
    unsigned steps[] = {100, 200, 400, 800, 1000, 1000};
    for (size_t i = 0; i < sizeof steps / sizeof steps[0]; i++) {
        unsigned d = fs_kit_backoff_next(&bo);
        assert_true(d >= steps[i] / 2 && d <= steps[i]);
    }
    fs_kit_backoff_reset(&bo);
    assert_true(fs_kit_backoff_next(&bo) <= 100);
}

static void test_seq(void **state)
{
    (void)state;
    fs_kit_seq t;
    assert_int_equal(fs_kit_seq_init(&t, 2), FS_OK);
    uint64_t s[40];
    for (int i = 0; i < 40; i++) /* beyond the initial window: it grows */
        assert_int_equal(fs_kit_seq_next(&t, 1000 + (uint64_t)i, &s[i]), FS_OK);
    uint64_t last = 0;
    assert_false(fs_kit_seq_done(&t, s[1], &last)); /* 0 still out */
    assert_false(fs_kit_seq_done(&t, s[2], &last));
    assert_true(fs_kit_seq_done(&t, s[0], &last));
    assert_int_equal(last, 1002);
    assert_int_equal(fs_kit_seq_watermark(&t), 3);
    assert_false(fs_kit_seq_done(&t, s[0], &last)); /* twice: ignored */
    assert_int_equal(fs_kit_seq_outstanding(&t), 37);
    assert_int_equal(fs_kit_seq_wait(&t, 10), FS_ETIMEDOUT);
    for (int i = 39; i >= 3; i--)
        fs_kit_seq_done(&t, s[i], &last);
    assert_int_equal(last, 1039);
    assert_int_equal(fs_kit_seq_wait(&t, 10), FS_OK);
    uint64_t x;
    fs_kit_seq_next(&t, 7, &x);
    fs_kit_seq_reset(&t);
    assert_int_equal(fs_kit_seq_outstanding(&t), 0);
    fs_kit_seq_destroy(&t);
}

static void test_utf8_buffer_str(void **state)
{
    (void)state;
    assert_true(fs_kit_utf8_valid("plain ascii text", 16));
    assert_true(fs_kit_utf8_valid("caf\xc3\xa9", 5));
    assert_false(fs_kit_utf8_valid("\xff", 1));
    assert_false(fs_kit_utf8_valid("\xed\xa0\x80", 3)); /* a surrogate */
    assert_false(fs_kit_utf8_valid("\xc0\xaf", 2));     /* overlong */
    fs_kit_buf b = {0};
    for (int i = 0; i < 1000; i++)
        assert_int_equal(fs_kit_buf_put(&b, "ab", 2), FS_OK);
    assert_int_equal(b.len, 2000);
    assert_int_equal(b.data[2000], '\0');
    fs_kit_buf_free(&b);
    char *d = fs_kit_strndup("hello", 3);
    assert_string_equal(d, "hel");
    free(d);
    assert_null(fs_kit_strdup(NULL));
    uint64_t t0 = fs_kit_now_ns();
    fs_kit_sleep_ms(2);
    assert_true(fs_kit_now_ns() - t0 >= 2000000u);
    assert_int_equal(fs_kit_ms_left(t0), 0);
}

/* The interval clock agrees with CLOCK_MONOTONIC over the same sleep (whichever source it chose).
 */
static void test_ticks(void **state)
{
    (void)state;
    fs_kit_ticks_init();
    fs_kit_ticks_init(); /* idempotent */
    for (int round = 0; round < 3; round++) {
        uint64_t n0 = fs_kit_now_ns(), t0 = fs_kit_ticks();
        struct timespec ts = {0, 30 * 1000000L};
        while (nanosleep(&ts, &ts) != 0) {
        }
        uint64_t t1 = fs_kit_ticks(), n1 = fs_kit_now_ns();
        double by_ticks = fs_kit_ticks_seconds(t0, t1), by_clock = (double)(n1 - n0) * 1e-9;
        /* the two reads of each clock bracket the sleep alike: within 2 % and 0.2 ms */
        assert_true(by_ticks > 0.029);
        assert_true(by_ticks <= by_clock * 1.02 + 2e-4);
        assert_true(by_ticks >= by_clock * 0.98 - 2e-4);
    }
    assert_true(fs_kit_ticks_seconds(10, 5) == 0.0); /* never negative */
}

/* ------------------------------------------------------------------------ */
/* Thread slots                                                             */

static void test_slot_fn0(void) {}
static void test_slot_fn1(void) {}
static void test_slot_fn2(void) {}
static void test_slot_fn3(void) {}

static _Thread_local int slot_cache; /* what a slot user keeps per thread */
static atomic_int slot_hook_runs;

static void slot_forget(void)
{
    slot_cache = 0;
    atomic_fetch_add(&slot_hook_runs, 1);
}

typedef struct slot_arg {
    uint32_t slot;
    int cache_at_exit;
} slot_arg;

static void *slot_thread(void *p)
{
    slot_arg *a = p;
    a->slot = fs_kit_slot();
    slot_cache = 1;
    return NULL;
}

static void test_slots(void **state)
{
    (void)state;
    assert_true(fs_kit_slot_on_release(slot_forget));
    assert_true(fs_kit_slot_on_release(slot_forget)); /* again: nothing more */
    uint32_t n = fs_kit_slot_count();
    assert_true(n >= 8 && n <= FS_KIT_MAX_SLOTS);
    uint32_t mine = fs_kit_slot();
    assert_true(mine >= 1 && mine <= n);
    assert_int_equal(fs_kit_slot(), mine); /* kept */
    /* a thread that exits gives its slot back, after the hooks ran in it */
    int runs = atomic_load(&slot_hook_runs);
    slot_arg a = {0}, b = {0};
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, slot_thread, &a), 0);
    pthread_join(t, NULL);
    assert_int_equal(atomic_load(&slot_hook_runs), runs + 1);
    assert_int_equal(pthread_create(&t, NULL, slot_thread, &b), 0);
    pthread_join(t, NULL);
    assert_true(a.slot != mine && a.slot >= 1 && a.slot <= n);
    assert_int_equal(b.slot, a.slot); /* the free slot taken again */
    /* no room beyond the hooks' table */
    int full = 0;
    void (*const fns[])(void) = {test_slot_fn0, test_slot_fn1, test_slot_fn2, test_slot_fn3};
    for (size_t i = 0; i < sizeof fns / sizeof fns[0]; i++)
        full += !fs_kit_slot_on_release(fns[i]);
    assert_true(full >= 1); /* 4 places, slot_forget holds one */
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_slots),
        cmocka_unit_test(test_queue_lanes),
        cmocka_unit_test(test_queue_remove_if),
        cmocka_unit_test(test_queue_leader_followers),
        cmocka_unit_test(test_pool),
        cmocka_unit_test(test_backoff),
        cmocka_unit_test(test_seq),
        cmocka_unit_test(test_utf8_buffer_str),
        cmocka_unit_test(test_ticks),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
