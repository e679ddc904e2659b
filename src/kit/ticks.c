/* kit/ticks.c - choosing the interval clock's source and measuring its rate (ticks.h). */
#include "kit/ticks.h"

#include <pthread.h>
#include <stdio.h>
#include <string.h>

atomic_int fs__kit_ticks_tsc = 0;
_Atomic double fs__kit_ticks_s = 1e-9;

#if FS_KIT_HAVE_TSC
/* The kernel keeps time with the TSC only when it found it invariant and synchronised. */
__attribute__((noinline)) uint64_t fs__kit_ticks_monotonic(void)
{
    return fs_kit_now_ns();
}

static int kernel_uses_tsc(void)
{
    FILE *f = fopen("/sys/devices/system/clocksource/clocksource0/current_clocksource", "re");
    if (!f)
        return 0;
    char buf[16] = {0};
    int ok = fgets(buf, sizeof buf, f) != NULL && strcmp(buf, "tsc\n") == 0;
    fclose(f);
    return ok;
}

/*
 * One clock reading and the TSC at that moment: the middle of the tightest
 * of a few rdtsc brackets around it (the first ones may be slow: a cold
 * cache, a binary translator's first pass, an interrupt).
 */
static void paired_read(uint64_t *ns, uint64_t *cycles)
{
    uint64_t best = UINT64_MAX;
    for (int i = 0; i < 8; i++) {
        uint64_t a = __rdtsc(), n = fs_kit_now_ns(), b = __rdtsc();
        if (b >= a && b - a < best) {
            best = b - a;
            *ns = n;
            *cycles = a + (b - a) / 2;
        }
    }
}

/* Cycles over nanoseconds across about 2 ms. */
static void measure(void)
{
    if (!kernel_uses_tsc())
        return;
    uint64_t n0 = 0, c0 = 0, n1 = 0, c1 = 0;
    paired_read(&n0, &c0);
    /* sleep rather than spin: the same work (and instruction count) on every run */
    do {
        fs_kit_sleep_ms(2);
        paired_read(&n1, &c1);
    } while (n1 - n0 < 2000000u);
    if (c1 <= c0)
        return;
    atomic_store_explicit(&fs__kit_ticks_s, (double)(n1 - n0) * 1e-9 / (double)(c1 - c0),
                          memory_order_relaxed);
    atomic_store_explicit(&fs__kit_ticks_tsc, 1, memory_order_release);
}
#else
static void measure(void) {}
#endif

void fs_kit_ticks_init(void)
{
    static pthread_once_t once = PTHREAD_ONCE_INIT;
    pthread_once(&once, measure);
}
