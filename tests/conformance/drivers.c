/*
 * The drivers list: one line per driver file. Each driver file defines
 * `const conf_driver *const conf_drivers_NAME[]` (its columns, NULL-ended);
 * the reference is weak, so a driver that is not built (its client library
 * is absent) leaves its columns skipped rather than failing to link.
 */
#include "conformance.h"

#include <stdatomic.h>
#include <stdio.h>
#include <unistd.h>

#define CONF_DRIVERS(X)                                                                            \
    X(memory)                                                                                      \
    X(redis)                                                                                       \
    X(kafka)                                                                                       \
    X(rabbitmq)                                                                                    \
    X(nats)                                                                                        \
    X(mqtt)

#define CONF_DECLARE(name)                                                                         \
    extern const conf_driver *const conf_drivers_##name[] __attribute__((weak));
CONF_DRIVERS(CONF_DECLARE)

#define CONF_LIST(name) conf_drivers_##name,
static const conf_driver *const *const drivers[] = {CONF_DRIVERS(CONF_LIST) NULL};

const conf_driver *conf_driver_for(conf_column col)
{
    for (size_t i = 0; i + 1 < sizeof drivers / sizeof drivers[0]; i++)
        for (const conf_driver *const *d = drivers[i]; d && *d; d++)
            if (conf_column_find((*d)->column) == (int)col)
                return *d;
    return NULL;
}

void conf_unique(char *buf, size_t n, const char *column, const char *scenario)
{
    static atomic_uint seq;
    snprintf(buf, n, "conf.%ld.%s.%s.%u", (long)getpid(), column, scenario,
             atomic_fetch_add(&seq, 1));
}
