/*
 * THE table: every scenario, and for every broker column what FastStream
 * does there, next to each other. Sources: the metric schema (prometheus.h),
 * what FastStream 0.7.4 reported when run against each real server, and
 * FastStream's source (faststream/<broker>/message.py,
 * faststream/prometheus/middleware.py); docs/semantics.md explains each row.
 *
 * A cell reads "STATUS... | broker state":
 *   - one status per handled unit (delivery), in order; "acked*8" repeats;
 *     "none" when nothing is received;
 *   - after "|", what the broker itself holds afterwards, read by the
 *     driver with the raw client: acked= pending= dead= redelivered=, and
 *     perr= the publish error's type name;
 *   - "n/a: why" where the broker has no such thing (the test is skipped).
 * The policy of a row applies to every column; DEFAULT means the column's
 * own (the broker's built-in default; Kafka: ACK for `kafka`, ACK_FIRST for
 * `kafka-ack-first`). Under every policy the status says what the handler
 * did; the policy shows only in what the broker receives.
 *
 * One deliberate difference from FastStream in the broker-state part: on a
 * Redis stream group FastStream sends nothing for nack or reject (the entry
 * stays in the PEL); faststream-c redelivers a nack after the redelivery
 * delay and dead-letters a reject (issue 7). The statuses are FastStream's.
 */
#include "conformance.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const char *const conf_column_names[COL_COUNT] = {
    "memory",          "redis-channel", "redis-list", "redis-stream", "kafka",
    "kafka-ack-first", "rabbitmq",      "nats-core",  "nats-js",      "mqtt",
};

const char *const conf_status_names[ST_COUNT] = {"acked", "nacked", "rejected", "skipped", "error"};

int conf_column_find(const char *name)
{
    for (int i = 0; i < COL_COUNT; i++)
        if (strcmp(conf_column_names[i], name) == 0)
            return i;
    return -1;
}

#define DEF FS_ACK_POLICY_DEFAULT
#define OK                                                                                         \
    {                                                                                              \
        0, FS_OUTCOME_OK, NULL                                                                     \
    }
#define FAIL                                                                                       \
    {                                                                                              \
        0, FS_OUTCOME_ERROR, "ValueError"                                                          \
    }
#define FAIL_UNNAMED                                                                               \
    {                                                                                              \
        0, FS_OUTCOME_ERROR, NULL                                                                  \
    }
#define RET(o)                                                                                     \
    {                                                                                              \
        0, FS_OUTCOME_##o, NULL                                                                    \
    }
#define SETTLE(s, o)                                                                               \
    {                                                                                              \
        s, FS_OUTCOME_##o, NULL                                                                    \
    }
#define SETTLE_FAIL(s)                                                                             \
    {                                                                                              \
        s, FS_OUTCOME_ERROR, "ValueError"                                                          \
    }
#define NA_POLICY "n/a: the column is the ACK_FIRST policy itself"

/* Broker states that repeat. */
#define MEM_ACKED "acked=1 pending=0 dead=0"
#define MEM_DEAD "acked=0 pending=0 dead=1"
#define MEM_PENDING "acked=0 pending=1 dead=0"

/* clang-format off */
const conf_row conf_rows[] = {
    {"ok", "the handler returns OK", CONF_CONSUME, DEF, 1, OK, OK, false, {
        /* memory          */ "acked | " MEM_ACKED,
        /* redis-channel   */ "acked",
        /* redis-list      */ "acked | pending=0",
        /* redis-stream    */ "acked | " MEM_ACKED,
        /* kafka           */ "acked | acked=1",
        /* kafka-ack-first */ "acked | acked=1",
        /* rabbitmq        */ "acked | " MEM_ACKED,
        /* nats-core       */ "acked",
        /* nats-js         */ "acked | acked=1 pending=0",
        /* mqtt            */ "acked",
    }},
    {"error", "the handler fails with ValueError (default policy)", CONF_CONSUME, DEF, 1, FAIL, OK, false, {
        /* memory          */ "error | " MEM_DEAD,          /* REJECT_ON_ERROR */
        /* redis-channel   */ "error",
        /* redis-list      */ "error | pending=0",
        /* redis-stream    */ "error | " MEM_DEAD,          /* REJECT_ON_ERROR: XADD dead letter, XACK */
        /* kafka           */ "error | acked=1",            /* ACK: committed */
        /* kafka-ack-first */ "acked | acked=1",            /* settled before the handler */
        /* rabbitmq        */ "error | " MEM_DEAD,          /* basic.reject(requeue=False) -> DLX */
        /* nats-core       */ "error",
        /* nats-js         */ "error | pending=0",          /* +TERM */
        /* mqtt            */ "error",
    }},
    {"error-unnamed", "the handler fails without a type name: exception_type Error", CONF_CONSUME, DEF, 1, FAIL_UNNAMED, OK, false, {
        /* memory          */ "error | " MEM_DEAD,
        /* redis-channel   */ "error",
        /* redis-list      */ "error | pending=0",
        /* redis-stream    */ "error | " MEM_DEAD,
        /* kafka           */ "error | acked=1",
        /* kafka-ack-first */ "acked | acked=1",
        /* rabbitmq        */ "error | " MEM_DEAD,
        /* nats-core       */ "error",
        /* nats-js         */ "error | pending=0",
        /* mqtt            */ "error",
    }},
    {"return-ack", "the handler returns ACK (AckMessage)", CONF_CONSUME, DEF, 1, RET(ACK), OK, false, {
        /* memory          */ "acked | " MEM_ACKED,
        /* redis-channel   */ "acked",
        /* redis-list      */ "acked | pending=0",
        /* redis-stream    */ "acked | " MEM_ACKED,
        /* kafka           */ "acked | acked=1",
        /* kafka-ack-first */ "acked | acked=1",
        /* rabbitmq        */ "acked | " MEM_ACKED,
        /* nats-core       */ "acked",
        /* nats-js         */ "acked | acked=1 pending=0",
        /* mqtt            */ "acked",
    }},
    {"return-nack", "the handler returns NACK once, then OK on the redelivery", CONF_CONSUME, DEF, 1, RET(NACK), OK, false, {
        /* memory          */ "nacked acked | " MEM_ACKED,
        /* redis-channel   */ "nacked",                     /* nothing to redeliver */
        /* redis-list      */ "nacked | pending=0",         /* popped: gone */
        /* redis-stream    */ "nacked acked | " MEM_ACKED,  /* stays pending, delivered again */
        /* kafka           */ "nacked acked | acked=1",     /* seek back */
        /* kafka-ack-first */ "acked | acked=1",            /* no seek under auto-commit */
        /* rabbitmq        */ "nacked acked | " MEM_ACKED,  /* basic.nack(requeue=True) */
        /* nats-core       */ "nacked",
        /* nats-js         */ "nacked acked | acked=1 pending=0", /* -NAK */
        /* mqtt            */ "nacked",                     /* no nack primitive: nothing on the wire */
    }},
    {"return-reject", "the handler returns REJECT (RejectMessage)", CONF_CONSUME, DEF, 1, RET(REJECT), OK, false, {
        /* memory          */ "rejected | " MEM_DEAD,
        /* redis-channel   */ "rejected",
        /* redis-list      */ "rejected | pending=0",
        /* redis-stream    */ "rejected | " MEM_DEAD,
        /* kafka           */ "rejected | acked=1",         /* the broker gets a commit */
        /* kafka-ack-first */ "acked | acked=1",
        /* rabbitmq        */ "rejected | " MEM_DEAD,
        /* nats-core       */ "rejected",
        /* nats-js         */ "rejected | pending=0",       /* +TERM */
        /* mqtt            */ "rejected",                   /* PUBACK on the wire */
    }},
    {"return-skip", "the handler returns SKIP: nothing is settled", CONF_CONSUME, DEF, 1, RET(SKIP), OK, false, {
        /* memory          */ "skipped | " MEM_PENDING,
        /* redis-channel   */ "skipped",
        /* redis-list      */ "skipped | pending=0",
        /* redis-stream    */ "skipped | " MEM_PENDING,     /* left in the PEL */
        /* kafka           */ "skipped | acked=0",          /* not committed */
        /* kafka-ack-first */ "acked | acked=1",
        /* rabbitmq        */ "skipped | pending=1",        /* unacked until the channel closes */
        /* nats-core       */ "skipped",
        /* nats-js         */ "skipped | pending=1",        /* ack pending until AckWait */
        /* mqtt            */ "skipped",
    }},
    {"nack-then-skip", "NACK on the first delivery, SKIP on the redelivery: pending, delivered twice", CONF_CONSUME, DEF, 1, RET(NACK), RET(SKIP), false, {
        /* memory          */ "nacked skipped | " MEM_PENDING,
        /* redis-channel   */ "nacked",
        /* redis-list      */ "nacked | pending=0",
        /* redis-stream    */ "nacked skipped | " MEM_PENDING " redelivered=1", /* XPENDING count 2 */
        /* kafka           */ "nacked skipped | acked=0",
        /* kafka-ack-first */ "acked | acked=1",
        /* rabbitmq        */ "nacked skipped | pending=1",
        /* nats-core       */ "nacked",
        /* nats-js         */ "nacked skipped | pending=1 redelivered=1", /* num_redelivered */
        /* mqtt            */ "nacked",
    }},
    {"explicit-ack", "the handler calls ack(), returns OK", CONF_CONSUME, DEF, 1, SETTLE(1, OK), OK, false, {
        /* memory          */ "acked | " MEM_ACKED,
        /* redis-channel   */ "acked",
        /* redis-list      */ "acked | pending=0",
        /* redis-stream    */ "acked | " MEM_ACKED,
        /* kafka           */ "acked | acked=1",
        /* kafka-ack-first */ "acked | acked=1",
        /* rabbitmq        */ "acked | " MEM_ACKED,
        /* nats-core       */ "acked",
        /* nats-js         */ "acked | acked=1 pending=0",
        /* mqtt            */ "acked",
    }},
    {"explicit-nack", "the handler calls nack() once, returns OK", CONF_CONSUME, DEF, 1, SETTLE(2, OK), OK, false, {
        /* memory          */ "nacked acked | " MEM_ACKED,
        /* redis-channel   */ "nacked",
        /* redis-list      */ "nacked | pending=0",
        /* redis-stream    */ "nacked acked | " MEM_ACKED,
        /* kafka           */ "nacked acked | acked=1",     /* seek back */
        /* kafka-ack-first */ "acked | acked=1",            /* KafkaMessage is created acked */
        /* rabbitmq        */ "nacked acked | " MEM_ACKED,
        /* nats-core       */ "nacked",
        /* nats-js         */ "nacked acked | acked=1 pending=0",
        /* mqtt            */ "acked",                      /* nack is `pass`: status from the rules */
    }},
    {"explicit-reject", "the handler calls reject(), returns OK", CONF_CONSUME, DEF, 1, SETTLE(3, OK), OK, false, {
        /* memory          */ "rejected | " MEM_DEAD,
        /* redis-channel   */ "rejected",
        /* redis-list      */ "rejected | pending=0",
        /* redis-stream    */ "rejected | " MEM_DEAD,
        /* kafka           */ "acked | acked=1",            /* reject = commit, sets ACKED */
        /* kafka-ack-first */ "acked | acked=1",
        /* rabbitmq        */ "rejected | " MEM_DEAD,
        /* nats-core       */ "rejected",
        /* nats-js         */ "rejected | pending=0",
        /* mqtt            */ "acked",                      /* reject = PUBACK, sets ACKED */
    }},
    {"ack-then-fail", "the handler calls ack(), then fails: acked, the error still counted", CONF_CONSUME, DEF, 1, SETTLE_FAIL(1), OK, false, {
        /* memory          */ "acked | " MEM_ACKED,
        /* redis-channel   */ "acked",
        /* redis-list      */ "acked | pending=0",
        /* redis-stream    */ "acked | " MEM_ACKED,
        /* kafka           */ "acked | acked=1",
        /* kafka-ack-first */ "acked | acked=1",
        /* rabbitmq        */ "acked | " MEM_ACKED,
        /* nats-core       */ "acked",
        /* nats-js         */ "acked | acked=1 pending=0",
        /* mqtt            */ "acked",
    }},
    {"nack-then-fail", "the handler calls nack() once, then fails", CONF_CONSUME, DEF, 1, SETTLE_FAIL(2), OK, false, {
        /* memory          */ "nacked acked | " MEM_ACKED,
        /* redis-channel   */ "nacked",
        /* redis-list      */ "nacked | pending=0",
        /* redis-stream    */ "nacked acked | " MEM_ACKED,
        /* kafka           */ "nacked acked | acked=1",
        /* kafka-ack-first */ "acked | acked=1",
        /* rabbitmq        */ "nacked acked | " MEM_ACKED,
        /* nats-core       */ "nacked",
        /* nats-js         */ "nacked acked | acked=1 pending=0",
        /* mqtt            */ "error",                      /* nack sets nothing; the failure shows */
    }},
    {"reject-then-fail", "the handler calls reject(), then fails", CONF_CONSUME, DEF, 1, SETTLE_FAIL(3), OK, false, {
        /* memory          */ "rejected | " MEM_DEAD,
        /* redis-channel   */ "rejected",
        /* redis-list      */ "rejected | pending=0",
        /* redis-stream    */ "rejected | " MEM_DEAD,
        /* kafka           */ "acked | acked=1",
        /* kafka-ack-first */ "acked | acked=1",
        /* rabbitmq        */ "rejected | " MEM_DEAD,
        /* nats-core       */ "rejected",
        /* nats-js         */ "rejected | pending=0",
        /* mqtt            */ "acked",
    }},
    {"policy-ack-first", "ACK_FIRST, the handler fails: error (the policy never shows)", CONF_CONSUME, FS_ACK_POLICY_ACK_FIRST, 1, FAIL, OK, false, {
        /* memory          */ "error | " MEM_ACKED,
        /* redis-channel   */ "error",
        /* redis-list      */ "error | pending=0",
        /* redis-stream    */ "error | " MEM_ACKED,
        /* kafka           */ "acked | acked=1",            /* ACK_FIRST = auto-commit: created acked */
        /* kafka-ack-first */ "acked | acked=1",
        /* rabbitmq        */ "error | " MEM_ACKED,         /* consumed with no_ack */
        /* nats-core       */ "error",
        /* nats-js         */ "error | acked=1 pending=0",
        /* mqtt            */ "error",
    }},
    {"policy-ack", "ACK, the handler fails: error, the broker gets an ack", CONF_CONSUME, FS_ACK_POLICY_ACK, 1, FAIL, OK, false, {
        /* memory          */ "error | " MEM_ACKED,
        /* redis-channel   */ "error",
        /* redis-list      */ "error | pending=0",
        /* redis-stream    */ "error | " MEM_ACKED,
        /* kafka           */ "error | acked=1",
        /* kafka-ack-first */ NA_POLICY,
        /* rabbitmq        */ "error | " MEM_ACKED,
        /* nats-core       */ "error",
        /* nats-js         */ "error | acked=1 pending=0",
        /* mqtt            */ "error",
    }},
    {"policy-reject-on-error", "REJECT_ON_ERROR, the handler fails: error, the broker gets a reject", CONF_CONSUME, FS_ACK_POLICY_REJECT_ON_ERROR, 1, FAIL, OK, false, {
        /* memory          */ "error | " MEM_DEAD,
        /* redis-channel   */ "error",
        /* redis-list      */ "error | pending=0",
        /* redis-stream    */ "error | " MEM_DEAD,
        /* kafka           */ "error | acked=1",            /* same effect as ACK on Kafka */
        /* kafka-ack-first */ NA_POLICY,
        /* rabbitmq        */ "error | " MEM_DEAD,
        /* nats-core       */ "error",
        /* nats-js         */ "error | pending=0",
        /* mqtt            */ "error",
    }},
    {"policy-nack-on-error", "NACK_ON_ERROR, the handler fails once: error, redelivered, acked", CONF_CONSUME, FS_ACK_POLICY_NACK_ON_ERROR, 1, FAIL, OK, false, {
        /* memory          */ "error acked | " MEM_ACKED,
        /* redis-channel   */ "error",
        /* redis-list      */ "error | pending=0",
        /* redis-stream    */ "error acked | " MEM_ACKED,
        /* kafka           */ "error acked | acked=1",
        /* kafka-ack-first */ NA_POLICY,
        /* rabbitmq        */ "error acked | " MEM_ACKED,
        /* nats-core       */ "error",
        /* nats-js         */ "error acked | acked=1 pending=0",
        /* mqtt            */ "error",                      /* no nack primitive (a warning at subscribe) */
    }},
    {"policy-manual", "MANUAL, the handler fails and settles nothing", CONF_CONSUME, FS_ACK_POLICY_MANUAL, 1, FAIL, OK, false, {
        /* memory          */ "error | " MEM_PENDING,
        /* redis-channel   */ "error",
        /* redis-list      */ "error | pending=0",
        /* redis-stream    */ "error | " MEM_PENDING,
        /* kafka           */ "error | acked=0",
        /* kafka-ack-first */ NA_POLICY,
        /* rabbitmq        */ "error | pending=1",
        /* nats-core       */ "error",
        /* nats-js         */ "error | pending=1",
        /* mqtt            */ "error",
    }},
    {"batch-2", "a batch of 2: one unit counting 2, its size the sum of the bodies", CONF_BATCH, DEF, 2, OK, OK, false, {
        /* memory          */ "acked | acked=2 pending=0 dead=0",
        /* redis-channel   */ "acked",
        /* redis-list      */ "acked | pending=0",
        /* redis-stream    */ "acked | acked=2 pending=0 dead=0",
        /* kafka           */ "acked | acked=2",
        /* kafka-ack-first */ "acked | acked=2",
        /* rabbitmq        */ "n/a: FastStream's RabbitMQ has no batch subscriber",
        /* nats-core       */ "n/a: FastStream's core NATS subscriber has no batch",
        /* nats-js         */ "acked | acked=2 pending=0",  /* pull batch */
        /* mqtt            */ "n/a: FastStream's MQTT has no batch subscriber",
    }},
    {"publish-ok", "a publish that succeeds", CONF_PUBLISH_OK, DEF, 0, OK, OK, false, {
        /* memory          */ "none",
        /* redis-channel   */ "none",
        /* redis-list      */ "none",
        /* redis-stream    */ "none",
        /* kafka           */ "none",
        /* kafka-ack-first */ "none",
        /* rabbitmq        */ "none",
        /* nats-core       */ "none",
        /* nats-js         */ "none",
        /* mqtt            */ "none",
    }},
    /* The error type names of the brokers other than memory and Redis are the
     * adapters' to confirm (librdkafka's error name, the AMQP
     * reply text, nats.py's exception name, the client's error name). */
    {"publish-fail", "a publish the broker refuses: error, with the broker's error type", CONF_PUBLISH_FAIL, DEF, 0, OK, OK, false, {
        /* memory          */ "none | perr=QueueFull",      /* bounded queue full */
        /* redis-channel   */ "none | perr=ResponseError",  /* WRONGTYPE (redis-py's name) */
        /* redis-list      */ "none | perr=ResponseError",
        /* redis-stream    */ "none | perr=ResponseError",
        /* kafka           */ "none | perr=_UNKNOWN_PARTITION", /* librdkafka's name; see driver_kafka.c */
        /* kafka-ack-first */ "none | perr=_UNKNOWN_PARTITION",
        /* rabbitmq        */ "none | perr=ChannelNotFoundEntity", /* channel.close 404 NOT_FOUND: aiormq's exception */
        /* nats-core       */ "n/a: a core NATS publish is fire-and-forget; nothing refuses it",
        /* nats-js         */ "none | perr=NoStreamResponseError", /* no stream: nats-py's js.publish turns NoRespondersError into this */
        /* mqtt            */ "none | perr=ValueError",     /* QoS 3: zmqtt.QoS(3) raises ValueError */
    }},
    {"publish-not-utf8", "a JSON-envelope publish of a body that is not UTF-8: FastStream's UnicodeDecodeError", CONF_PUBLISH_UTF8, DEF, 0, OK, OK, false, {
        /* memory          */ "n/a: the in-process broker has no JSON envelope",
        /* redis-channel   */ "none | perr=UnicodeDecodeError", /* FS_REDIS_FORMAT_JSON */
        /* redis-list      */ "none | perr=UnicodeDecodeError",
        /* redis-stream    */ "none | perr=UnicodeDecodeError",
        /* kafka           */ "n/a: FastStream's Kafka sends the body as bytes",
        /* kafka-ack-first */ "n/a: FastStream's Kafka sends the body as bytes",
        /* rabbitmq        */ "n/a: FastStream's RabbitMQ sends the body as bytes",
        /* nats-core       */ "n/a: FastStream's NATS sends the body as bytes",
        /* nats-js         */ "n/a: FastStream's NATS sends the body as bytes",
        /* mqtt            */ "n/a: FastStream's MQTT sends the body as bytes",
    }},
    /* FastStream counts the request itself as a publish on every broker, native ones
     * included (faststream/_internal/broker/pub_base.py _basic_request wraps
     * producer.request in each middleware's publish_scope); the reply is counted
     * nowhere (SourceType.RESPONSE). */
    {"request", "request/reply: the request counted, the reply counted nowhere", CONF_REQUEST, DEF, 1, OK, OK, false, {
        /* memory          */ "acked | " MEM_ACKED,
        /* redis-channel   */ "acked",
        /* redis-list      */ "acked | pending=0",
        /* redis-stream    */ "acked | " MEM_ACKED,
        /* kafka           */ "acked | acked=1",            /* FastStream cannot; faststream-c can */
        /* kafka-ack-first */ "acked | acked=1",
        /* rabbitmq        */ "acked | " MEM_ACKED,         /* direct reply-to */
        /* nats-core       */ "acked",                      /* native inbox */
        /* nats-js         */ "acked | acked=1 pending=0",
        /* mqtt            */ "acked",                      /* response topic */
    }},
    {"custom-labels", "a static and a dynamic label on every family, a publish inside and outside the handler", CONF_LABELS, DEF, 1, OK, OK, false, {
        /* memory          */ "acked | " MEM_ACKED,
        /* redis-channel   */ "acked",
        /* redis-list      */ "acked | pending=0",
        /* redis-stream    */ "acked | " MEM_ACKED,
        /* kafka           */ "acked | acked=1",
        /* kafka-ack-first */ "acked | acked=1",
        /* rabbitmq        */ "acked | " MEM_ACKED,
        /* nats-core       */ "acked",
        /* nats-js         */ "acked | acked=1 pending=0",
        /* mqtt            */ "acked",
    }},
    {"pattern", "a pattern subscription: the handler label is the concrete name, never the pattern", CONF_PATTERN, DEF, 1, OK, OK, false, {
        /* memory          */ "n/a: the in-process broker has no patterns",
        /* redis-channel   */ "acked",                      /* PSUBSCRIBE */
        /* redis-list      */ "n/a: a list has no patterns",
        /* redis-stream    */ "n/a: a stream has no patterns",
        /* kafka           */ "acked",                      /* regex topic subscription */
        /* kafka-ack-first */ "acked",
        /* rabbitmq        */ "acked",                      /* topic exchange: EXCHANGE.ROUTING_KEY */
        /* nats-core       */ "acked",                      /* wildcard subject */
        /* nats-js         */ "acked",                      /* wildcard filter subject */
        /* mqtt            */ "acked",                      /* topic filter with + */
    }},
    {"two-brokers", "two brokers on one registry: one family set, both counted (cell per broker)", CONF_TWO_BROKERS, DEF, 1, OK, OK, false, {
        /* memory          */ "acked | " MEM_ACKED,
        /* redis-channel   */ "acked",
        /* redis-list      */ "acked | pending=0",
        /* redis-stream    */ "acked | " MEM_ACKED,
        /* kafka           */ "acked | acked=1",
        /* kafka-ack-first */ "acked | acked=1",
        /* rabbitmq        */ "acked | " MEM_ACKED,
        /* nats-core       */ "acked",
        /* nats-js         */ "acked | acked=1 pending=0",
        /* mqtt            */ "acked",
    }},
    {"double-middleware", "a second Prometheus middleware on one broker is refused; counted once", CONF_DOUBLE_MW, DEF, 1, OK, OK, false, {
        /* memory          */ "acked | " MEM_ACKED,
        /* redis-channel   */ "acked",
        /* redis-list      */ "acked | pending=0",
        /* redis-stream    */ "acked | " MEM_ACKED,
        /* kafka           */ "acked | acked=1",
        /* kafka-ack-first */ "acked | acked=1",
        /* rabbitmq        */ "acked | " MEM_ACKED,
        /* nats-core       */ "acked",
        /* nats-js         */ "acked | acked=1 pending=0",
        /* mqtt            */ "acked",
    }},
    {"ids", "no ids sent: a uuid4 correlation id, message id = correlation id, carried by a publish from the handler", CONF_IDS, DEF, 1, OK, OK, false, {
        /* memory          */ "acked | " MEM_ACKED,
        /* redis-channel   */ "acked",
        /* redis-list      */ "acked | pending=0",
        /* redis-stream    */ "acked | " MEM_ACKED,
        /* kafka           */ "acked | acked=1",
        /* kafka-ack-first */ "acked | acked=1",
        /* rabbitmq        */ "acked | " MEM_ACKED,
        /* nats-core       */ "acked",
        /* nats-js         */ "acked | acked=1 pending=0",
        /* mqtt            */ "acked",
    }},
    {"redelivery", "always NACK under delay 20 ms (x2 backoff), max 3 deliveries: then rejected, dead-lettered", CONF_REDELIVERY, DEF, 1, RET(NACK), RET(NACK), false, {
        /* memory          */ "nacked*3 | " MEM_DEAD,
        /* redis-channel   */ "nacked",
        /* redis-list      */ "nacked | pending=0",
        /* redis-stream    */ "nacked*3 | " MEM_DEAD,
        /* kafka           */ "nacked*3 | acked=1",         /* seek after a pause; reject = commit */
        /* kafka-ack-first */ "acked | acked=1",
        /* rabbitmq        */ "nacked*3 | " MEM_DEAD,       /* delivery limit -> DLX */
        /* nats-core       */ "nacked",
        /* nats-js         */ "nacked*3 | pending=0",       /* NakWithDelay, MaxDeliver */
        /* mqtt            */ "nacked",
    }},
    {"concurrent", "concurrency 4, 8 messages: 4 handlers at once (a barrier only 4 can pass)", CONF_CONCURRENT, DEF, 8, OK, OK, true, {
        /* memory          */ "acked*8 | acked=8 pending=0 dead=0",
        /* redis-channel   */ "acked*8",
        /* redis-list      */ "acked*8 | pending=0",
        /* redis-stream    */ "acked*8 | acked=8 pending=0 dead=0",
        /* kafka           */ "acked*8 | acked=8",          /* 4 partitions */
        /* kafka-ack-first */ "acked*8 | acked=8",
        /* rabbitmq        */ "acked*8 | acked=8 pending=0 dead=0",
        /* nats-core       */ "acked*8",
        /* nats-js         */ "acked*8 | acked=8 pending=0",
        /* mqtt            */ "acked*8",
    }},
    {"slow-handler", "a 20 ms handler: its duration is observed >= 0.02 s", CONF_SLOW, DEF, 1, OK, OK, false, {
        /* memory          */ "acked | " MEM_ACKED,
        /* redis-channel   */ "acked",
        /* redis-list      */ "acked | pending=0",
        /* redis-stream    */ "acked | " MEM_ACKED,
        /* kafka           */ "acked | acked=1",
        /* kafka-ack-first */ "acked | acked=1",
        /* rabbitmq        */ "acked | " MEM_ACKED,
        /* nats-core       */ "acked",
        /* nats-js         */ "acked | acked=1 pending=0",
        /* mqtt            */ "acked",
    }},
};
/* clang-format on */

const size_t conf_row_count = sizeof conf_rows / sizeof conf_rows[0];

/* ------------------------------------------------------------------------ */
/* Cells                                                                    */

static int status_find(const char *s, size_t n)
{
    for (int i = 0; i < ST_COUNT; i++)
        if (strlen(conf_status_names[i]) == n && strncmp(conf_status_names[i], s, n) == 0)
            return i;
    return -1;
}

bool conf_parse_cell(const char *cell, conf_expect *out, char *err, size_t n)
{
    memset(out, 0, sizeof *out);
    out->state = (conf_broker_state){-1, -1, -1, -1};
    if (!cell) {
        snprintf(err, n, "no expectation in the table for this column");
        return false;
    }
    if (strncmp(cell, "n/a", 3) == 0) {
        out->na = true;
        snprintf(out->why, sizeof out->why, "%s", cell[3] == ':' ? cell + 5 : "not applicable");
        return true;
    }
    const char *p = cell;
    bool in_state = false;
    while (*p) {
        while (*p == ' ')
            p++;
        if (!*p)
            break;
        if (*p == '|') {
            in_state = true;
            p++;
            continue;
        }
        size_t len = strcspn(p, " ");
        char word[96];
        if (len >= sizeof word) {
            snprintf(err, n, "cell '%s': word too long", cell);
            return false;
        }
        memcpy(word, p, len);
        word[len] = 0;
        p += len;
        if (!in_state) {
            if (strcmp(word, "none") == 0)
                continue;
            char *star = strchr(word, '*');
            unsigned rep = star ? (unsigned)atoi(star + 1) : 1;
            int st = status_find(word, star ? (size_t)(star - word) : strlen(word));
            if (st < 0 || rep == 0 || out->units + rep > CONF_MAX_UNITS) {
                snprintf(err, n, "cell '%s': bad status '%s'", cell, word);
                return false;
            }
            for (unsigned i = 0; i < rep; i++)
                out->unit_status[out->units++] = st;
            continue;
        }
        char *eq = strchr(word, '=');
        if (!eq) {
            snprintf(err, n, "cell '%s': '%s' is not key=value", cell, word);
            return false;
        }
        *eq = 0;
        const char *v = eq + 1;
        if (strcmp(word, "perr") == 0)
            snprintf(out->perr, sizeof out->perr, "%s", v);
        else if (strcmp(word, "acked") == 0)
            out->state.acked = atol(v);
        else if (strcmp(word, "pending") == 0)
            out->state.pending = atol(v);
        else if (strcmp(word, "dead") == 0)
            out->state.dead_lettered = atol(v);
        else if (strcmp(word, "redelivered") == 0)
            out->state.redelivered = atol(v);
        else {
            snprintf(err, n, "cell '%s': unknown key '%s'", cell, word);
            return false;
        }
    }
    return true;
}
