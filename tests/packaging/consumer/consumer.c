/* A program outside the tree that uses the installed metrics library. */
#include <faststream/exposition.h>
#include <faststream/metrics.h>
#include <stdio.h>

int main(void)
{
    fs_registry *reg;
    fs_counter *runs;
    fs_buffer out = {0};
    if (fs_registry_new(&reg) || fs_counter_new(reg, "consumer_runs_total", "Runs.", &runs)) {
        fprintf(stderr, "consumer: %s\n", fs_last_error());
        return 1;
    }
    fs_counter_inc(runs);
    if (fs_registry_render(reg, FS_FORMAT_TEXT, &out)) {
        fprintf(stderr, "consumer: %s\n", fs_last_error());
        return 1;
    }
    fputs(out.data, stdout);
    fs_buffer_free(&out);
    fs_registry_free(reg);
    return 0;
}
