/*
 * The opt-in backlog family of the Prometheus middleware (backlog.c): not
 * installed.
 */
#ifndef FS_MIDDLEWARE_BACKLOG_H
#define FS_MIDDLEWARE_BACKLOG_H

#include "faststream/broker.h"
#include "faststream/metrics.h"

typedef struct fs__backlog_entry fs__backlog_entry;

/*
 * Report `broker`'s subscriptions in PREFIX_received_messages_backlog of
 * `reg` (the collector is registered by the first broker of that registry
 * and prefix). The entry is removed with fs__backlog_remove (from the
 * middleware's free_state, before the broker itself is freed).
 */
int fs__backlog_add(fs_registry *reg, const char *prefix, const char *app_name, fs_broker *broker,
                    int timeout_ms, int cache_ms, fs__backlog_entry **out);
void fs__backlog_remove(fs__backlog_entry *e);

#endif
