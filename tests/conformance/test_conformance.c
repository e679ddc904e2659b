/*
 * The conformance suite's entry point: runs every scenario of the table on
 * the columns asked for (argv: column names; none = every column with a
 * driver), in parallel (each scenario has its own broker, registry and
 * sources), then reports one cmocka test per (column, scenario), judged on
 * this thread. Built twice: test_conformance (every row) and, with
 * CONF_CONCURRENCY_ONLY, test_conformance_concurrency (the rows of the
 * concurrency kind, for the ThreadSanitizer build).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "conformance.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#ifndef CONF_CONCURRENCY_ONLY
#define CONF_CONCURRENCY_ONLY 0
#endif
#define PARALLEL 8

typedef struct job {
    const conf_driver *d;
    conf_column col;
    const conf_row *row;
    conf_result res;
    char name[160];
    char unavailable[160];
} job;

static job *jobs;
static size_t njobs;
static atomic_size_t next_job;

static void *worker(void *arg)
{
    (void)arg;
    for (;;) {
        size_t i = atomic_fetch_add(&next_job, 1);
        if (i >= njobs)
            return NULL;
        job *j = &jobs[i];
        if (!j->d)
            continue;
        if (j->unavailable[0]) {
            j->res.ran = true;
            j->res.skipped = true;
            snprintf(j->res.skip_why, sizeof j->res.skip_why, "%s", j->unavailable);
            continue;
        }
        conf_run(j->d, j->col, j->row, &j->res);
    }
}

static void run_one(void **state)
{
    job *j = *state;
    if (!j->d) {
        print_message("skipped: no driver for column %s is built (its client library is "
                      "absent, or nobody wrote driver_*.c yet)\n",
                      conf_column_names[j->col]);
        skip();
    }
    conf_check(j->d, j->col, j->row, &j->res);
}

int main(int argc, char **argv)
{
    bool want[COL_COUNT] = {false};
    bool any = false;
    for (int i = 1; i < argc; i++) {
        int c = conf_column_find(argv[i]);
        if (c < 0) {
            fprintf(stderr, "unknown column '%s'\n", argv[i]);
            return 2;
        }
        want[c] = any = true;
    }
    fs_set_log_level(FS_LOG_WARN); /* keep the lifecycle lines of ~100 brokers out */
    jobs = calloc(COL_COUNT * (conf_row_count + 1), sizeof *jobs);
    if (!jobs)
        return 2;
    for (int c = 0; c < COL_COUNT; c++) {
        if (any && !want[c])
            continue;
        const conf_driver *d = conf_driver_for((conf_column)c);
        if (!d) { /* one skipped test says so */
            job *j = &jobs[njobs++];
            j->col = (conf_column)c;
            snprintf(j->name, sizeof j->name, "%s/*", conf_column_names[c]);
            continue;
        }
        char why[160] = "";
        bool up = !d->available || d->available(why, sizeof why);
        for (size_t r = 0; r < conf_row_count; r++) {
            if (CONF_CONCURRENCY_ONLY && !conf_rows[r].concurrency)
                continue;
            job *j = &jobs[njobs++];
            j->d = d;
            j->col = (conf_column)c;
            j->row = &conf_rows[r];
            snprintf(j->name, sizeof j->name, "%s/%s", conf_column_names[c], conf_rows[r].name);
            if (!up)
                snprintf(j->unavailable, sizeof j->unavailable, "%s", why);
        }
    }
    pthread_t t[PARALLEL];
    for (int i = 0; i < PARALLEL; i++)
        pthread_create(&t[i], NULL, worker, NULL);
    for (int i = 0; i < PARALLEL; i++)
        pthread_join(t[i], NULL);

    struct CMUnitTest *tests = calloc(njobs + 1, sizeof *tests);
    if (!tests)
        return 2;
    for (size_t i = 0; i < njobs; i++) {
        tests[i].name = jobs[i].name;
        tests[i].test_func = run_one;
        tests[i].initial_state = &jobs[i];
    }
    int failed =
        _cmocka_run_group_tests(CONF_CONCURRENCY_ONLY ? "conformance (concurrency)" : "conformance",
                                tests, njobs, NULL, NULL);
    for (size_t i = 0; i < njobs; i++)
        conf_result_free(&jobs[i].res);
    free(tests);
    free(jobs);
    return failed;
}
