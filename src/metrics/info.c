/* Info metrics: NAME_info{labels} 1, labels fixed at creation. */
#include "metrics_internal.h"

int fs_info_new(fs_registry *reg, const char *name, const char *help, size_t label_count,
                const char *const *label_names, const char *const *label_values)
{
    fs_family_def def = {.type = FS_METRIC_INFO,
                         .name = name,
                         .help = help,
                         .label_count = label_count,
                         .label_names = label_names,
                         .info_values = label_values};
    fs_family *f;
    return fs__family_register(reg, &def, &f);
}
