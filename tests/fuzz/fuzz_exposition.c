/*
 * Label escaping and the exposition: metric names, help texts, label names
 * and label values from the input (what a user's strings, or handler and
 * queue names coming from a broker, reach), values from its bytes, rendered
 * in both formats. Whatever is registered, every rendered line starts with
 * '#' or a metric name: an escaped value never breaks a line.
 *
 * Input: a flags byte, then NUL-separated pieces: name, help, two label
 * names, then label values, two per child.
 */
#include "faststream/exposition.h"
#include "faststream/metrics.h"
#include "fuzz_util.h"
#include "metrics/metrics_internal.h"

#include <math.h>

static void check_lines(const fs_buffer *b)
{
    const char *p = b->data, *end = b->data + b->len;
    while (p < end) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        FUZZ_CHECK(nl); /* every line ends with a newline */
        char c = *p;
        FUZZ_CHECK(c == '#' || c == '_' || c == ':' || (c >= 'a' && c <= 'z') ||
                   (c >= 'A' && c <= 'Z'));
        p = nl + 1;
    }
}

static double value_of(const char *s)
{
    static const double special[] = {0, 1, -1, 1e308, -1e-308, INFINITY, -INFINITY, NAN, 0.5};
    return special[strlen(s) % (sizeof special / sizeof *special)];
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1 || size > 4096)
        return 0;
    unsigned flags = data[0];
    const uint8_t *p = data + 1, *end = data + size;
    char *name = fuzz_piece(&p, end);
    char *help = fuzz_piece(&p, end);
    char *ln[2] = {fuzz_piece(&p, end), fuzz_piece(&p, end)};
    fs_registry *reg;
    if (!name || !help || !ln[0] || !ln[1] || fs_registry_new(&reg) != FS_OK)
        goto out;
    const char *names[2] = {ln[0], ln[1]};
    size_t nlabels = flags & 1 ? 1 : 2;
    fs_counter_family *cf = NULL;
    fs_gauge_family *gf = NULL;
    fs_histogram_family *hf = NULL;
    switch ((flags >> 1) & 3) {
    case 0:
        fs_counter_family_new(reg, name, help, nlabels, names, &cf);
        break;
    case 1:
        fs_gauge_family_new(reg, name, help, nlabels, names, &gf);
        break;
    case 2: {
        const double buckets[] = {-1, 0.25, 1, 1e9};
        fs_histogram_family_new(reg, name, help, nlabels, names, buckets, flags & 8 ? 4 : 0, &hf);
        break;
    }
    default: {
        const char *values[2] = {help, ln[1]};
        fs_info_new(reg, name, help, nlabels, names, values);
        break;
    }
    }
    for (int child = 0; child < 8; child++) {
        char *v[2] = {fuzz_piece(&p, end), fuzz_piece(&p, end)};
        if (!v[0]) {
            free(v[1]);
            break;
        }
        const char *values[2] = {v[0], v[1] ? v[1] : ""};
        double x = value_of(values[1]);
        if (cf) {
            fs_counter *c = fs_counter_family_labels(cf, values);
            if (c)
                fs_counter_add(c, x);
        } else if (gf) {
            fs_gauge *g = fs_gauge_family_labels(gf, values);
            if (g)
                fs_gauge_set(g, x);
        } else if (hf) {
            fs_histogram *h = fs_histogram_family_labels(hf, values);
            if (h)
                fs_histogram_observe(h, x);
        }
        /* The escaper alone, both flavours. */
        size_t n;
        free(fs__escape(values[0], strlen(values[0]), flags & 16, &n));
        free(v[0]);
        free(v[1]);
    }
    for (int f = 0; f < 2; f++) {
        fs_buffer b = {0};
        if (fs_registry_render(reg, f ? FS_FORMAT_OPENMETRICS : FS_FORMAT_TEXT, &b) == FS_OK)
            check_lines(&b);
        fs_buffer_free(&b);
    }
    fs_registry_free(reg);
out:
    free(name);
    free(help);
    free(ln[0]);
    free(ln[1]);
    return 0;
}
