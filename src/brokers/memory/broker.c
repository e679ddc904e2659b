/* The in-process broker: the ops table, creation, the memory:// URL, registration. */
#include "internal.h"

static int mem_backlog(void *impl, void *sub, int timeout_ms, uint64_t *out)
{
    (void)impl;
    (void)timeout_ms;
    mem_sub *s = sub;
    *out = mem_ring_size(&s->group->ready) + atomic_load(&s->group->delayed_n);
    return FS_OK;
}

const fs_broker_ops fs__memory_ops = {
    .abi_version = FS_ADAPTER_ABI_VERSION,
    .struct_size = sizeof(fs_broker_ops),
    .name = "memory",
    .default_ack_policy = FS_ACK_POLICY_REJECT_ON_ERROR,
    .caps = FS_CAP_NACK | FS_CAP_NACK_DELAY | FS_CAP_DELIVERY_COUNT | FS_CAP_BACKLOG,
    .start = mem_start,
    .stop = mem_stop,
    .stopped = mem_stopped,
    .free = mem_free,
    .subscribe = mem_subscribe,
    .unsubscribe = mem_unsubscribe,
    .fetch = mem_fetch,
    .fetch_batch = mem_fetch_batch,
    /* settle records; the slot moves in release, once the handler is done */
    .settle = mem_settle,
    .backlog = mem_backlog,
    .prepare_destination = mem_prepare_destination,
    .publish = mem_publish,
};

/* ------------------------------------------------------------------------ */
/* Public API                                                               */

static size_t round_pow2(size_t v)
{
    size_t p = 1;
    while (p < v)
        p <<= 1;
    return p;
}

static int memory_new(const fs_memory_options *opts, const char *url, fs_broker **out)
{
    fs_memory_options o = FS_MEMORY_OPTIONS_INIT;
    if (opts)
        o = *opts;
    FS_CHECK_ARG(o.capacity <= (1u << 24), "memory broker: capacity %zu exceeds %u", o.capacity,
                 1u << 24);
    FS_CHECK_ARG(o.inline_size <= (1u << 20), "memory broker: inline_size %zu exceeds %u",
                 o.inline_size, 1u << 20);
    mem_broker *mb = calloc(1, sizeof *mb);
    if (!mb)
        return fs_adapter_error(FS_ENOMEM, "out of memory creating a memory broker");
    mb->capacity = round_pow2(o.capacity ? o.capacity : MEM_DEFAULT_CAPACITY);
    if (mb->capacity < 2)
        mb->capacity = 2;
    mb->inline_size = ((o.inline_size ? o.inline_size : MEM_DEFAULT_INLINE) + 15u) & ~(size_t)15u;
    mb->record = o.record_published;
    pthread_mutex_init(&mb->lock, NULL);
    int rc = fs_broker_create(&fs__memory_ops, mb, url, &o.broker, out);
    if (rc < 0) {
        pthread_mutex_destroy(&mb->lock);
        free(mb);
    }
    return rc;
}

int fs_memory_broker_new(const fs_memory_options *opts, fs_broker **out)
{
    FS_CHECK_ARG(out, "fs_memory_broker_new: out is NULL");
    *out = NULL;
    return memory_new(opts, "memory://", out);
}

/* ?key=N, digits only ("+5", " 5", "0x10" are refused); absent: *out unchanged. */
static int parse_size(const fs_url *u, const char *key, size_t *out)
{
    uint64_t v;
    int rc = fs_url_query_uint(u, key, SIZE_MAX, &v);
    if (rc == FS_ENOTFOUND)
        return FS_OK;
    if (rc == FS_OK)
        *out = (size_t)v;
    return rc;
}

static int memory_factory(const char *url, const fs_broker_options *bopts, fs_broker **out)
{
    fs_url u;
    int rc = fs_url_parse(url, &u);
    if (rc < 0)
        return rc;
    fs_memory_options o = FS_MEMORY_OPTIONS_INIT;
    o.broker = *bopts;
    if ((u.hosts && *u.hosts) || (u.path && *u.path) || u.user) {
        fs_url_free(&u);
        return fs_adapter_error(FS_EINVAL,
                                "memory:// URL '%s' takes no host, credentials or path (only "
                                "?capacity=N&inline_size=N)",
                                url);
    }
    static const char *const known[] = {"capacity", "inline_size", NULL};
    rc = fs_url_check_query(&u, "memory://", known);
    if (rc == FS_OK)
        rc = parse_size(&u, "capacity", &o.capacity);
    if (rc == FS_OK)
        rc = parse_size(&u, "inline_size", &o.inline_size);
    fs_url_free(&u);
    if (rc < 0)
        return rc;
    return memory_new(&o, url, out);
}

int fs_memory_register(void)
{
    return fs_broker_register_scheme("memory", memory_factory);
}

__attribute__((constructor)) static void memory_auto_register(void)
{
    fs_memory_register();
}
