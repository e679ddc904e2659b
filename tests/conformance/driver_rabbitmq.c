/*
 * The RabbitMQ column. Each source is a queue bound to a fanout exchange
 * "SOURCE.x" together with a tap queue "SOURCE.tap" that nobody consumes,
 * so the server itself counts every message ever routed to the source; the
 * source dead-letters into "SOURCE.dlq". Messages are put with raw
 * rabbitmq-c. The state is read with passive declares once the broker's
 * connection is closed (its unacknowledged deliveries then go back to the
 * queue): pending = the queue's messages, dead = the DLQ's, acked = the
 * tap's minus both. Publishes go to "DEST.x" with routing key DEST, so
 * their destination label is FastStream's "DEST.x.DEST"
 * ("{exchange or 'default'}.{routing_key}").
 */
#include "conformance.h"
#include "faststream/rabbitmq.h"

#include <amqp.h>
#include <amqp_tcp_socket.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static int port(void)
{
    const char *p = getenv("FS_RABBITMQ_PORT");
    return p && *p ? atoi(p) : 26672;
}

static amqp_connection_state_t raw(void)
{
    amqp_connection_state_t c = amqp_new_connection();
    amqp_socket_t *s = c ? amqp_tcp_socket_new(c) : NULL;
    struct timeval tv = {2, 0};
    if (!s || amqp_socket_open_noblock(s, "127.0.0.1", port(), &tv)) {
        if (c)
            amqp_destroy_connection(c);
        return NULL;
    }
    amqp_rpc_reply_t r = amqp_login(c, "/", 0, 131072, 0, AMQP_SASL_METHOD_PLAIN, "guest", "guest");
    amqp_channel_open(c, 1);
    if (r.reply_type != AMQP_RESPONSE_NORMAL ||
        amqp_get_rpc_reply(c).reply_type != AMQP_RESPONSE_NORMAL) {
        amqp_destroy_connection(c);
        return NULL;
    }
    return c;
}

static void raw_close(amqp_connection_state_t c)
{
    amqp_connection_close(c, AMQP_REPLY_SUCCESS);
    amqp_destroy_connection(c);
}

static void name_of(char *buf, size_t n, const char *source, const char *suffix)
{
    snprintf(buf, n, "%s.%s", source, suffix);
}

static bool rmq_available(char *why, size_t n)
{
    amqp_connection_state_t c = raw();
    if (!c) {
        snprintf(why, n, "no rabbitmq-server on 127.0.0.1:%d (scripts/services.sh start rabbitmq)",
                 port());
        return false;
    }
    raw_close(c);
    return true;
}

static int rmq_broker_new(fs_broker **out)
{
    char url[96];
    snprintf(url, sizeof url, "amqp://guest:guest@127.0.0.1:%d/", port());
    return fs_broker_new(url, NULL, out);
}

/* The exchange and the tap queue of `dest` (the source queue is the subscriber's to declare). */
static void declare_tap(const char *dest)
{
    amqp_connection_state_t c = raw();
    if (!c)
        return;
    char ex[256], tap[256];
    name_of(ex, sizeof ex, dest, "x");
    name_of(tap, sizeof tap, dest, "tap");
    amqp_exchange_declare(c, 1, amqp_cstring_bytes(ex), amqp_cstring_bytes("fanout"), 0, 0, 0, 0,
                          amqp_empty_table);
    amqp_queue_declare(c, 1, amqp_cstring_bytes(tap), 0, 0, 0, 0, amqp_empty_table);
    amqp_queue_bind(c, 1, amqp_cstring_bytes(tap), amqp_cstring_bytes(ex), amqp_empty_bytes,
                    amqp_empty_table);
    raw_close(c);
}

static void prepare(const char *source)
{
    declare_tap(source);
    amqp_connection_state_t c = raw();
    if (!c)
        return;
    char dlq[256];
    name_of(dlq, sizeof dlq, source, "dlq");
    amqp_queue_declare(c, 1, amqp_cstring_bytes(dlq), 0, 0, 0, 0, amqp_empty_table);
    raw_close(c);
}

/* The subscriber's queue: bound to SOURCE.x, dead-lettering into SOURCE.dlq. */
typedef struct sub_scratch {
    fs_rabbitmq_subscriber_options o;
    fs_rabbitmq_arg args[2];
    char ex[256], dlq[256];
} sub_scratch;

static const void *sub_options(const char *source, void *scratch)
{
    _Static_assert(sizeof(sub_scratch) <= CONF_SCRATCH, "scratch too small");
    sub_scratch *s = scratch;
    name_of(s->ex, sizeof s->ex, source, "x");
    name_of(s->dlq, sizeof s->dlq, source, "dlq");
    s->args[0] = (fs_rabbitmq_arg)FS_RABBITMQ_ARG_STR("x-dead-letter-exchange", "");
    s->args[1] = (fs_rabbitmq_arg)FS_RABBITMQ_ARG_STR("x-dead-letter-routing-key", s->dlq);
    s->o = (fs_rabbitmq_subscriber_options)FS_RABBITMQ_SUBSCRIBER_OPTIONS_INIT;
    s->o.exchange.name = s->ex;
    s->o.exchange.type = FS_RABBITMQ_FANOUT;
    s->o.queue.arguments = s->args;
    s->o.queue.argument_count = 2;
    return &s->o;
}

typedef struct pub_scratch {
    fs_rabbitmq_publish_options o;
    char ex[256];
} pub_scratch;

static const void *pub_options(const char *dest, void *scratch)
{
    _Static_assert(sizeof(pub_scratch) <= CONF_SCRATCH, "scratch too small");
    pub_scratch *s = scratch;
    declare_tap(dest); /* a publish there is routed (mandatory) and counted */
    name_of(s->ex, sizeof s->ex, dest, "x");
    s->o = (fs_rabbitmq_publish_options)FS_RABBITMQ_PUBLISH_OPTIONS_INIT;
    s->o.exchange = s->ex;
    return &s->o;
}

static int put(fs_broker *b, const char *source, const void *body, size_t len)
{
    (void)b;
    amqp_connection_state_t c = raw();
    if (!c)
        return FS_EIO;
    char ex[256];
    name_of(ex, sizeof ex, source, "x");
    amqp_bytes_t bb = {len, (void *)body};
    int rc = amqp_basic_publish(c, 1, amqp_cstring_bytes(ex), amqp_cstring_bytes(source), 0, 0,
                                NULL, bb);
    /* a round trip on the channel: the publish was routed before it answers */
    amqp_queue_declare(c, 1, amqp_cstring_bytes(source), 1, 0, 0, 0, amqp_empty_table);
    if (amqp_get_rpc_reply(c).reply_type != AMQP_RESPONSE_NORMAL)
        rc = -1;
    raw_close(c);
    return rc ? FS_EIO : FS_OK;
}

static long depth(amqp_connection_state_t c, const char *queue)
{
    amqp_queue_declare_ok_t *ok =
        amqp_queue_declare(c, 1, amqp_cstring_bytes(queue), 1, 0, 0, 0, amqp_empty_table);
    return ok && amqp_get_rpc_reply(c).reply_type == AMQP_RESPONSE_NORMAL ? (long)ok->message_count
                                                                          : -1;
}

static int state(fs_broker *b, const char *source, conf_broker_state *out)
{
    fs_broker_close(b); /* unacknowledged deliveries return to the queue */
    char tap[256], dlq[256];
    name_of(tap, sizeof tap, source, "tap");
    name_of(dlq, sizeof dlq, source, "dlq");
    long last[3] = {-2, -2, -2};
    for (int i = 0; i < 50; i++) { /* until two reads agree (requeueing is asynchronous) */
        amqp_connection_state_t c = raw();
        if (!c)
            return FS_EIO;
        long now[3] = {depth(c, tap), depth(c, source), depth(c, dlq)};
        raw_close(c);
        if (now[0] < 0 || now[1] < 0 || now[2] < 0)
            return FS_EIO;
        if (!memcmp(now, last, sizeof now))
            break;
        memcpy(last, now, sizeof now);
        nanosleep(&(struct timespec){0, 20000000}, NULL);
    }
    out->pending = last[1];
    out->dead_lettered = last[2];
    out->acked = last[0] - last[1] - last[2];
    out->redelivered = -1;
    return FS_OK;
}

/*
 * A publish to a missing exchange: channel.close 404 (aiormq's
 * ChannelNotFoundEntity). The exchange is DEST.x, deleted here, so that the
 * failed publish has the label of every other publish to DEST. The options
 * live per thread (scenarios run in parallel; the runner publishes on this
 * thread right after).
 */
static int fail_setup(fs_broker *b, const char *dest, const void **opts)
{
    (void)b;
    static _Thread_local pub_scratch missing;
    name_of(missing.ex, sizeof missing.ex, dest, "x");
    amqp_connection_state_t c = raw();
    if (!c)
        return FS_EIO;
    amqp_exchange_delete(c, 1, amqp_cstring_bytes(missing.ex), 0);
    bool deleted = amqp_get_rpc_reply(c).reply_type == AMQP_RESPONSE_NORMAL;
    raw_close(c);
    if (!deleted)
        return FS_EIO;
    missing.o = (fs_rabbitmq_publish_options)FS_RABBITMQ_PUBLISH_OPTIONS_INIT;
    missing.o.exchange = missing.ex;
    *opts = &missing.o;
    return FS_OK;
}

/* "{exchange}.{routing_key}" of the delivery. */
static void handler_label(const char *source, char *buf, size_t n)
{
    snprintf(buf, n, "%s.x.%s", source, source);
}

/* "{exchange}.{routing_key}" of a publish: pub_options' exchange DEST.x, key DEST. */
static void dest_label(const char *dest, char *buf, size_t n)
{
    snprintf(buf, n, "%s.x.%s", dest, dest);
}

static void cleanup(const char *source)
{
    amqp_connection_state_t c = raw();
    if (!c)
        return;
    char name[256];
    amqp_queue_delete(c, 1, amqp_cstring_bytes(source), 0, 0);
    static const char *const qs[] = {"tap", "dlq"};
    for (int i = 0; i < 2; i++) {
        name_of(name, sizeof name, source, qs[i]);
        amqp_queue_delete(c, 1, amqp_cstring_bytes(name), 0, 0);
    }
    name_of(name, sizeof name, source, "x");
    amqp_exchange_delete(c, 1, amqp_cstring_bytes(name), 0);
    raw_close(c);
}

static const conf_driver rabbitmq_driver = {
    .column = "rabbitmq",
    .broker_label = "rabbitmq",
    .features = CONF_HAS_REQUEST | CONF_HAS_REDELIVERY | CONF_HAS_STATE | CONF_HAS_DELIVERY_COUNT,
    .policy = FS_ACK_POLICY_DEFAULT,
    .available = rmq_available,
    .broker_new = rmq_broker_new,
    .prepare = prepare,
    .sub_options = sub_options,
    .pub_options = pub_options,
    .put = put,
    .state = state,
    .fail_publish_setup = fail_setup,
    .handler_label = handler_label,
    .dest_label = dest_label,
    .cleanup = cleanup,
};

const conf_driver *const conf_drivers_rabbitmq[] = {&rabbitmq_driver, NULL};
