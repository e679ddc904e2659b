/*
 * PREFIX_received_messages_backlog: how many messages wait for each
 * subscription, asked of the broker (fs_subscriber_backlog: the adapter's
 * backlog op) while a scrape runs. One collector per registry and prefix
 * serves every broker registered with it.
 *
 * A slow broker never stalls a scrape: the whole family gets a budget of
 * `timeout_ms` per scrape (each broker call is given what is left of it),
 * answers are cached for `cache_ms`, and a subscription whose answer is
 * stale when the budget is spent shows its last value (none, if it never
 * answered). Brokers that cannot tell (FS_EUNSUPPORTED) are left out.
 */
#include "middleware/backlog.h"

#include "common/internal.h"
#include "faststream/subscriber.h"
#include "kit/clock.h"
#include "kit/str.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define HELP "Count of messages waiting to be received by broker and handler"

/* A subscription's last answer. */
typedef struct cached {
    const fs_subscriber *sub;
    uint64_t value;
    uint64_t at_ns; /* 0: never answered */
    struct cached *next;
} cached;

struct fs__backlog_entry {
    struct collector *owner;
    fs_broker *broker;
    char *app_name;
    int timeout_ms, cache_ms;
    cached *cache;
    struct fs__backlog_entry *next;
};

typedef struct collector {
    fs_registry *reg;
    char *name;
    fs__backlog_entry *entries;
    struct collector *next;
} collector;

/*
 * Every collector, and every entry in them, is guarded by `lock` (taken
 * while a scrape runs, after the registry's own locks). `add_lock`
 * serialises additions, which register a collector with no lock of ours
 * held, so the two orders never meet.
 */
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_mutex_t add_lock = PTHREAD_MUTEX_INITIALIZER;
static collector *collectors;

typedef struct scrape {
    fs_collect_ctx *ctx;
    fs__backlog_entry *e;
    uint64_t deadline_ns;
    int rc;
} scrape;

static cached *cache_for(fs__backlog_entry *e, const fs_subscriber *sub)
{
    for (cached *c = e->cache; c; c = c->next)
        if (c->sub == sub)
            return c;
    cached *c = calloc(1, sizeof *c);
    if (c) {
        c->sub = sub;
        c->next = e->cache;
        e->cache = c;
    }
    return c;
}

static void one_subscriber(fs_subscriber *sub, void *user)
{
    scrape *s = user;
    if (s->rc != FS_OK)
        return;
    cached *c = cache_for(s->e, sub);
    if (!c) {
        s->rc = fs__error(FS_ENOMEM, "backlog: out of memory");
        return;
    }
    uint64_t now = fs_kit_now_ns();
    bool stale = c->at_ns == 0 || now - c->at_ns >= (uint64_t)s->e->cache_ms * 1000000ull;
    if (stale && now < s->deadline_ns) {
        int left = (int)((s->deadline_ns - now + 999999) / 1000000);
        uint64_t v;
        int rc = fs_subscriber_backlog(sub, left, &v);
        if (rc == FS_OK) {
            c->value = v;
            c->at_ns = fs_kit_now_ns();
        } else if (rc == FS_EUNSUPPORTED) {
            return;
        } else if (fs__log_enabled(FS_LOG_DEBUG)) {
            fs__log(FS_LOG_DEBUG, "prometheus", "backlog of %s: %s", fs_subscriber_name(sub),
                    fs_last_error());
        }
    }
    if (c->at_ns == 0)
        return;
    const char *names[] = {"app_name", "broker", "handler"};
    const char *values[] = {s->e->app_name, fs_broker_name(s->e->broker),
                            fs_subscriber_source(sub)};
    s->rc = fs_collect_sample(s->ctx, 3, names, values, (double)c->value);
}

static int collect(fs_collect_ctx *ctx, void *user)
{
    collector *col = user;
    pthread_mutex_lock(&lock);
    int rc = fs_collect_family(ctx, col->name, HELP, FS_METRIC_GAUGE);
    for (fs__backlog_entry *e = col->entries; rc == FS_OK && e; e = e->next) {
        scrape s = {ctx, e, fs_kit_now_ns() + (uint64_t)e->timeout_ms * 1000000ull, FS_OK};
        rc = fs_broker_foreach_subscriber(e->broker, one_subscriber, &s);
        if (rc == FS_OK)
            rc = s.rc;
    }
    pthread_mutex_unlock(&lock);
    return rc;
}

/* The registry dropped the collector (registry freed or name unregistered). */
static void collector_gone(void *user)
{
    collector *col = user;
    pthread_mutex_lock(&lock);
    for (collector **p = &collectors; *p; p = &(*p)->next)
        if (*p == col) {
            *p = col->next;
            break;
        }
    for (fs__backlog_entry *e = col->entries; e; e = e->next)
        e->owner = NULL;
    pthread_mutex_unlock(&lock);
    free(col->name);
    free(col);
}

int fs__backlog_add(fs_registry *reg, const char *prefix, const char *app_name, fs_broker *broker,
                    int timeout_ms, int cache_ms, fs__backlog_entry **out)
{
    char name[256];
    int n = snprintf(name, sizeof name, "%s_received_messages_backlog", prefix);
    if (n < 0 || (size_t)n >= sizeof name)
        return fs__error(FS_EINVAL, "prometheus middleware: metrics prefix '%s' is too long",
                         prefix);
    fs__backlog_entry *e = calloc(1, sizeof *e);
    if (!e || !(e->app_name = fs_kit_strdup(app_name))) {
        free(e);
        return fs__error(FS_ENOMEM, "prometheus middleware: out of memory");
    }
    e->broker = broker;
    e->timeout_ms = timeout_ms;
    e->cache_ms = cache_ms;

    pthread_mutex_lock(&add_lock);
    pthread_mutex_lock(&lock);
    collector *col = collectors;
    while (col && !(col->reg == reg && strcmp(col->name, name) == 0))
        col = col->next;
    pthread_mutex_unlock(&lock);
    int rc = FS_OK;
    if (!col) {
        col = calloc(1, sizeof *col);
        if (!col || !(col->name = fs_kit_strdup(name))) {
            free(col);
            col = NULL;
            rc = fs__error(FS_ENOMEM, "prometheus middleware: out of memory");
        } else {
            col->reg = reg;
            rc = fs_registry_add_collector(reg, name, collect, col, collector_gone);
            if (rc == FS_OK) {
                pthread_mutex_lock(&lock);
                col->next = collectors;
                collectors = col;
                pthread_mutex_unlock(&lock);
            } else {
                rc = fs__error(rc, "prometheus middleware: cannot register '%s': %s", name,
                               fs_last_error());
                free(col->name);
                free(col);
                col = NULL;
            }
        }
    }
    if (col) {
        pthread_mutex_lock(&lock);
        e->owner = col;
        e->next = col->entries;
        col->entries = e;
        pthread_mutex_unlock(&lock);
    }
    pthread_mutex_unlock(&add_lock);
    if (rc != FS_OK) {
        free(e->app_name);
        free(e);
        return rc;
    }
    *out = e;
    return FS_OK;
}

void fs__backlog_remove(fs__backlog_entry *e)
{
    if (!e)
        return;
    pthread_mutex_lock(&lock);
    if (e->owner)
        for (fs__backlog_entry **p = &e->owner->entries; *p; p = &(*p)->next)
            if (*p == e) {
                *p = e->next;
                break;
            }
    pthread_mutex_unlock(&lock);
    for (cached *c = e->cache; c;) {
        cached *next = c->next;
        free(c);
        c = next;
    }
    free(e->app_name);
    free(e);
}
