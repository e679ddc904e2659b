/*
 * MQTT topic names and filters (what a user's subscription and a broker's
 * PUBLISH carry) and the UTF-8 repair of received topics and bodies
 * (fs__mq_utf8_replace, as Python's errors="replace"): the checks never
 * crash nor read out of bounds, whatever the bytes, and the repaired text
 * is valid UTF-8 within 3n bytes.
 *
 * Input: filter NUL topic.
 */
#include "brokers/mqtt/wire.h"
#include "fuzz_util.h"

#include <stdbool.h>

static bool valid_utf8(const unsigned char *s, size_t n)
{
    for (size_t i = 0; i < n;) {
        unsigned c = s[i];
        size_t len = c < 0x80 ? 1 : (c >> 5) == 6 ? 2 : (c >> 4) == 14 ? 3 : (c >> 3) == 30 ? 4 : 0;
        if (!len || i + len > n)
            return false;
        for (size_t k = 1; k < len; k++)
            if ((s[i + k] & 0xC0) != 0x80)
                return false;
        i += len;
    }
    return true;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > 4096)
        return 0;
    const uint8_t *p = data, *end = data + size;
    char *filter = fuzz_piece(&p, end);
    char *topic = fuzz_piece(&p, end);
    if (filter && topic) {
        const char *fp = fs__mq_filter_problem(filter);
        const char *tp = fs__mq_topic_problem(topic);
        if (!fp && !tp) {
            (void)fs__mq_topic_matches(filter, topic);
            (void)fs__mq_topic_matches(topic, filter); /* a topic is a filter too */
        }
    }
    char *out = malloc(3 * size + 1);
    if (out) {
        size_t n = fs__mq_utf8_replace(data, size, out);
        FUZZ_CHECK(n <= 3 * size);
        FUZZ_CHECK(out[n] == '\0');
        FUZZ_CHECK(valid_utf8((const unsigned char *)out, n));
        free(out);
    }
    free(filter);
    free(topic);
    return 0;
}
