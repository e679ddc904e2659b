/*
 * A fake adapter with ops->destination_label, for the destination label
 * tests: its broker options name an exchange, and the label is RabbitMQ's
 * shape, "{exchange or 'default'}.{destination}". An exchange "=" answers
 * with the destination name (*label NULL), "!" fails the label. Publish
 * succeeds and records the name it was given; request answers "pong".
 */
#ifndef FS_CORE_LABEL_ADAPTER_H
#define FS_CORE_LABEL_ADAPTER_H

#include "core_test.h"
#include "faststream/adapter.h"
#include "faststream/prometheus.h"

#include <stdatomic.h>
#include <stddef.h>

typedef struct lbl_options {
    const char *exchange; /* NULL or "": the default exchange */
} lbl_options;

typedef struct lbl_adapter {
    atomic_uint label_calls;
    atomic_uint publishes;
    bool record; /* keep the last call's arguments below (single-threaded tests only) */
    void *label_dest;
    const void *label_options;
    void *publish_dest;
    char published_to[64]; /* the name publish or request got */
} lbl_adapter;

/* What prepare_destination hands out: the label op must get it back for a publisher. */
static int lbl_prepared;

static int lbl_subscribe(void *impl, fs_subscribe_spec *spec, void **out)
{
    (void)impl;
    (void)spec;
    *out = NULL;
    return FS_OK;
}

static int lbl_fetch(void *impl, void *sub, unsigned worker, int timeout_ms, fs_message **out)
{
    (void)impl;
    (void)sub;
    (void)worker;
    (void)out;
    test_sleep_ms(timeout_ms < 5 ? (unsigned)timeout_ms : 5u);
    return FS_ETIMEDOUT;
}

static int lbl_prepare(void *impl, const char *destination, const void *options, void **dest_out)
{
    (void)impl;
    (void)destination;
    (void)options;
    *dest_out = &lbl_prepared;
    return FS_OK;
}

static int lbl_label(void *impl, void *dest, const char *destination, const void *options,
                     char *buf, size_t cap, const char **label)
{
    lbl_adapter *a = impl;
    const lbl_options *o = options;
    atomic_fetch_add(&a->label_calls, 1);
    if (a->record) {
        a->label_dest = dest;
        a->label_options = options;
    }
    const char *ex = o && o->exchange && *o->exchange ? o->exchange : "default";
    if (strcmp(ex, "!") == 0)
        return fs_adapter_error(FS_EINVAL, "label: no such exchange for '%s'", destination);
    if (strcmp(ex, "=") == 0) {
        *label = NULL;
        return FS_OK;
    }
    snprintf(buf, cap, "%s.%s", ex, destination);
    *label = buf;
    return FS_OK;
}

static int lbl_publish(void *impl, void *dest, const char *destination, const fs_envelope *msgs,
                       size_t count, const char **error_type)
{
    lbl_adapter *a = impl;
    (void)msgs;
    (void)count;
    (void)error_type;
    atomic_fetch_add(&a->publishes, 1);
    if (a->record) {
        a->publish_dest = dest;
        snprintf(a->published_to, sizeof a->published_to, "%s", destination);
    }
    return FS_OK;
}

static int lbl_request(void *impl, const char *destination, const fs_envelope *msg, int timeout_ms,
                       fs_message **reply, const char **error_type)
{
    lbl_adapter *a = impl;
    (void)msg;
    (void)timeout_ms;
    (void)error_type;
    snprintf(a->published_to, sizeof a->published_to, "%s", destination);
    fs_envelope r = FS_ENVELOPE_INIT;
    r.body = "pong";
    r.body_len = 4;
    *reply = fs_message_new_copy(&r, "inbox");
    return *reply ? FS_OK : fs_adapter_error(FS_ENOMEM, "out of memory");
}

static const fs_broker_ops lbl_ops = {
    .abi_version = FS_ADAPTER_ABI_VERSION,
    .struct_size = sizeof(fs_broker_ops),
    .name = "lbl",
    .default_ack_policy = FS_ACK_POLICY_ACK,
    .caps = FS_CAP_NATIVE_REQUEST,
    .subscribe = lbl_subscribe,
    .fetch = lbl_fetch,
    .prepare_destination = lbl_prepare,
    .publish = lbl_publish,
    .request = lbl_request,
    .destination_label = lbl_label,
};

static inline fs_broker *lbl_broker(lbl_adapter *a, const fs_broker_ops *ops)
{
    memset(a, 0, sizeof *a);
    a->record = true;
    fs_broker *b = NULL;
    CHECK_OK(fs_broker_create(ops, a, "lbl://", NULL, &b));
    return b;
}

/* The exchange "shop", as a publisher's options. */
static const lbl_options lbl_shop = {"shop"};

/*
 * A broker of this adapter with the Prometheus middleware on a new registry
 * (*reg), and a publisher of `destination` to the exchange "shop" (*pub).
 */
static inline fs_broker *lbl_metered(lbl_adapter *a, const char *destination, fs_registry **reg,
                                     fs_publisher **pub)
{
    CHECK_OK(fs_registry_new(reg));
    fs_broker *b = lbl_broker(a, &lbl_ops);
    fs_prometheus_options po = FS_PROMETHEUS_OPTIONS_INIT;
    po.registry = *reg;
    CHECK_OK(fs_broker_add_prometheus(b, &po));
    fs_publisher_options pubo = FS_PUBLISHER_OPTIONS_INIT;
    pubo.broker_options = &lbl_shop;
    CHECK_OK(fs_publisher_new(b, destination, &pubo, pub));
    return b;
}

#endif
