/*
 * The in-process broker's column. It has no outside: put() publishes on the
 * same broker (so the suite expects those publishes in the metrics:
 * CONF_PUT_IS_PUBLISH), and the state is read with the broker's test
 * harness (faststream/memory.h), never from the metrics.
 */
#include "conformance.h"

#include <stdio.h>
#include <string.h>

/* Small queues: the publish-fail scenario fills one. */
#define MEM_URL "memory://?capacity=64"

static bool mem_available(char *why, size_t n)
{
    (void)why;
    (void)n;
    return true;
}

static int mem_broker_new(fs_broker **out)
{
    return fs_broker_new(MEM_URL, NULL, out);
}

static void dlq_name(const char *source, char *buf, size_t n)
{
    snprintf(buf, n, "%s.dlq", source);
}

static const void *mem_sub_options(const char *source, void *scratch)
{
    fs_memory_subscriber_options *o = scratch;
    char *dlq = (char *)(o + 1);
    *o = (fs_memory_subscriber_options)FS_MEMORY_SUBSCRIBER_OPTIONS_INIT;
    dlq_name(source, dlq, CONF_SCRATCH - sizeof *o);
    o->dead_letter = dlq;
    return o;
}

static const void *mem_pub_options(const char *source, void *scratch)
{
    (void)source;
    (void)scratch;
    return NULL;
}

static int mem_put(fs_broker *b, const char *source, const void *body, size_t len)
{
    return fs_publish_bytes(b, source, body, len);
}

static int mem_state(fs_broker *b, const char *source, conf_broker_state *out)
{
    char dlq[256];
    dlq_name(source, dlq, sizeof dlq);
    long put = (long)fs_memory_published_count(b, source);
    out->pending =
        (long)(fs_memory_queue_depth(b, source, NULL) + fs_memory_queue_in_flight(b, source, NULL));
    out->dead_lettered =
        (long)(fs_memory_queue_depth(b, dlq, NULL) + fs_memory_queue_in_flight(b, dlq, NULL));
    /* every subscriber has a dead letter, so what is gone and not there was acked */
    out->acked = put - out->pending - out->dead_lettered;
    out->redelivered = -1;
    return FS_OK;
}

/* Fill the destination's queue before the middleware counts anything. */
static int mem_fail_publish_setup(fs_broker *b, const char *dest, const void **opts)
{
    *opts = NULL;
    for (int i = 0; i < 100000; i++) {
        int rc = fs_publish_bytes(b, dest, "x", 1);
        if (rc == FS_EFULL)
            return FS_OK;
        if (rc < 0)
            return rc;
    }
    return FS_ESTATE;
}

static const conf_driver memory_driver = {
    .column = "memory",
    .broker_label = "memory",
    .features = CONF_HAS_BATCH | CONF_HAS_REQUEST | CONF_HAS_REDELIVERY | CONF_HAS_STATE |
                CONF_HAS_DELIVERY_COUNT | CONF_PUT_IS_PUBLISH,
    .policy = FS_ACK_POLICY_DEFAULT,
    .available = mem_available,
    .broker_new = mem_broker_new,
    .sub_options = mem_sub_options,
    .pub_options = mem_pub_options,
    .put = mem_put,
    .state = mem_state,
    .fail_publish_setup = mem_fail_publish_setup,
};

const conf_driver *const conf_drivers_memory[] = {&memory_driver, NULL};
