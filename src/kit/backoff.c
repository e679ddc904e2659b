/* kit/backoff.c - see backoff.h. */
#include "kit/backoff.h"

#include "kit/clock.h"

void fs_kit_backoff_init(fs_kit_backoff *b, unsigned min_ms, unsigned max_ms)
{
    b->min_ms = min_ms ? min_ms : 1;
    b->max_ms = max_ms >= b->min_ms ? max_ms : b->min_ms;
    b->cur_ms = 0;
    b->rng = fs_kit_now_ns() ^ (uint64_t)(uintptr_t)b ^ 0x9E3779B97F4A7C15ull;
}

static uint64_t next_rand(fs_kit_backoff *b)
{
    /* splitmix64 */
    uint64_t z = (b->rng += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

unsigned fs_kit_backoff_next(fs_kit_backoff *b)
{
    unsigned step = b->cur_ms ? b->cur_ms : b->min_ms;
    b->cur_ms = step > b->max_ms / 2 ? b->max_ms : step * 2;
    if (step > b->max_ms)
        step = b->max_ms;
    unsigned half = step / 2;
    return half + (unsigned)(next_rand(b) % (uint64_t)(step - half + 1));
}

void fs_kit_backoff_reset(fs_kit_backoff *b)
{
    b->cur_ms = 0;
}
