/* Metric and label name validation, with readable messages. */
#include "metrics_internal.h"

static bool is_alpha(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

static bool is_digit(char c)
{
    return c >= '0' && c <= '9';
}

bool fs_metric_name_valid(const char *name)
{
    if (!name || !*name)
        return false;
    if (!is_alpha(name[0]) && name[0] != '_' && name[0] != ':')
        return false;
    for (const char *p = name + 1; *p; p++)
        if (!is_alpha(*p) && !is_digit(*p) && *p != '_' && *p != ':')
            return false;
    return true;
}

/* [a-zA-Z_][a-zA-Z0-9_]*, reserved prefix not checked. */
static bool label_name_syntax_valid(const char *name)
{
    if (!name || !*name)
        return false;
    if (!is_alpha(name[0]) && name[0] != '_')
        return false;
    for (const char *p = name + 1; *p; p++)
        if (!is_alpha(*p) && !is_digit(*p) && *p != '_')
            return false;
    return true;
}

bool fs_label_name_valid(const char *name)
{
    return label_name_syntax_valid(name) && strncmp(name, "__", 2) != 0;
}

const char *fs__type_name(fs_metric_type type)
{
    switch (type) {
    case FS_METRIC_COUNTER:
        return "counter";
    case FS_METRIC_GAUGE:
        return "gauge";
    case FS_METRIC_HISTOGRAM:
        return "histogram";
    case FS_METRIC_INFO:
        return "info";
    case FS_METRIC_UNTYPED:
        return "untyped";
    }
    return "unknown";
}

int fs__check_metric_name(const char *name)
{
    FS_CHECK_ARG(name, "metric name is NULL");
    FS_CHECK_ARG(fs_metric_name_valid(name),
                 "invalid metric name '%s': it must match [a-zA-Z_:][a-zA-Z0-9_:]*", name);
    return FS_OK;
}

int fs__check_label_names(const char *metric, fs_metric_type type, size_t count,
                          const char *const *names)
{
    FS_CHECK_ARG(count == 0 || names, "label names of metric '%s' are NULL (count %zu)", metric,
                 count);
    FS_CHECK_ARG(count <= FS_MAX_LABELS, "metric '%s' has %zu label names, at most %d are allowed",
                 metric, count, FS_MAX_LABELS);
    for (size_t i = 0; i < count; i++) {
        const char *n = names[i];
        FS_CHECK_ARG(n, "label name %zu of metric '%s' is NULL", i, metric);
        FS_CHECK_ARG(label_name_syntax_valid(n),
                     "invalid label name '%s' for metric '%s': it must match "
                     "[a-zA-Z_][a-zA-Z0-9_]*",
                     n, metric);
        FS_CHECK_ARG(strncmp(n, "__", 2) != 0,
                     "label name '%s' for metric '%s' is reserved: names starting with '__' are "
                     "for Prometheus' internal use",
                     n, metric);
        FS_CHECK_ARG(strcmp(n, "quantile") != 0,
                     "label name 'quantile' for metric '%s' is reserved for summary quantiles",
                     metric);
        FS_CHECK_ARG(type != FS_METRIC_HISTOGRAM || strcmp(n, "le") != 0,
                     "label name 'le' for histogram '%s' is reserved for bucket bounds", metric);
        for (size_t j = 0; j < i; j++)
            FS_CHECK_ARG(strcmp(names[j], n) != 0, "duplicate label name '%s' for metric '%s'", n,
                         metric);
    }
    return FS_OK;
}
