/*
 * A minimal adapter for the core tests: it never delivers a message, its
 * publish succeeds or fails with "FakeError" on demand, its ping follows
 * fake_healthy. Enough to exercise fs_broker_create, the scheme registry
 * and the health route with a broker other than memory://.
 */
#ifndef FS_CORE_FAKE_ADAPTER_H
#define FS_CORE_FAKE_ADAPTER_H

#include "core_test.h"
#include "faststream/adapter.h"

#include <stdatomic.h>

static atomic_bool fake_healthy = true;
static atomic_bool fake_publish_fails = false;

static int fake_subscribe(void *impl, fs_subscribe_spec *spec, void **out)
{
    (void)impl;
    (void)spec;
    *out = NULL;
    return FS_OK;
}

static int fake_fetch(void *impl, void *sub, unsigned worker, int timeout_ms, fs_message **out)
{
    (void)impl;
    (void)worker;
    (void)sub;
    (void)out;
    test_sleep_ms(timeout_ms < 5 ? (unsigned)timeout_ms : 5u);
    return FS_ETIMEDOUT;
}

static int fake_publish(void *impl, void *dest, const char *destination, const fs_envelope *msgs,
                        size_t count, const char **error_type)
{
    (void)impl;
    (void)dest;
    (void)destination;
    (void)msgs;
    (void)count;
    if (!atomic_load(&fake_publish_fails))
        return FS_OK;
    *error_type = "FakeError";
    return fs_adapter_error(FS_EBROKER, "fake adapter refuses");
}

static int fake_ping(void *impl, int timeout_ms)
{
    (void)impl;
    (void)timeout_ms;
    return atomic_load(&fake_healthy) ? FS_OK : fs_adapter_error(FS_EIO, "server gone");
}

static const fs_broker_ops fake_ops = {
    .abi_version = FS_ADAPTER_ABI_VERSION,
    .struct_size = sizeof(fs_broker_ops),
    .name = "fake",
    .default_ack_policy = FS_ACK_POLICY_ACK_FIRST,
    .ping = fake_ping,
    .subscribe = fake_subscribe,
    .fetch = fake_fetch,
    .publish = fake_publish,
};

#endif
