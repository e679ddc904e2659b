/*
 * The conformance suite: one table of scenarios (scenarios.c) run against
 * every broker adapter that is built, each against its real server, through
 * the public API only. A broker takes part through a small driver (this
 * header's conf_driver) that names fresh sources, sets its subscriber
 * options, puts messages on the broker from outside and reads what the
 * broker itself holds afterwards with the raw client.
 *
 * How to add a broker: tests/conformance/README.md.
 */
#ifndef FS_CONFORMANCE_H
#define FS_CONFORMANCE_H

#include "faststream/faststream.h"
#include "faststream/prometheus.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* ------------------------------------------------------------------------ */
/* Columns: every broker and subscription kind, declared up front           */

typedef enum conf_column {
    COL_MEMORY,
    COL_REDIS_CHANNEL,
    COL_REDIS_LIST,
    COL_REDIS_STREAM, /* with a consumer group */
    COL_KAFKA,        /* manual commit (ACK policy) */
    COL_KAFKA_ACK_FIRST,
    COL_RABBITMQ,
    COL_NATS_CORE,
    COL_NATS_JS,
    COL_MQTT, /* QoS 1 */
    COL_COUNT
} conf_column;

/* "memory", "redis-channel"...; -1 for an unknown name. */
extern const char *const conf_column_names[COL_COUNT];
int conf_column_find(const char *name);

/* ------------------------------------------------------------------------ */
/* Drivers                                                                  */

/*
 * What the broker itself holds for a source after a scenario, read with the
 * raw client (never from our counters). -1: the broker cannot tell.
 *   acked         settled positively (gone, not dead-lettered)
 *   pending       delivered and not settled, or still waiting for delivery
 *   redelivered   pending entries delivered more than once
 *   dead_lettered in the dead-letter destination the driver configured
 */
typedef struct conf_broker_state {
    long acked, pending, redelivered, dead_lettered;
} conf_broker_state;

enum {
    CONF_HAS_BATCH = 1u << 0,          /* batch subscribers */
    CONF_HAS_REQUEST = 1u << 1,        /* fs_request to the source */
    CONF_HAS_REDELIVERY = 1u << 2,     /* a nack brings the message back */
    CONF_HAS_STATE = 1u << 3,          /* state() reads something */
    CONF_HAS_DELIVERY_COUNT = 1u << 4, /* fs_message_delivery_count() is known */
    CONF_PUT_IS_PUBLISH = 1u << 5,     /* put() is an fs_publish on the same broker (counted) */
};

#define CONF_SCRATCH 1024

typedef struct conf_driver {
    const char *column;       /* one of conf_column_names: "redis-stream" */
    const char *broker_label; /* the broker metric label: "redis" */
    unsigned features;        /* CONF_HAS_* */
    /* The ack policy the column stands for (FS_ACK_POLICY_DEFAULT: the broker's). */
    fs_ack_policy policy;
    /* Server reachable? Else the column is skipped; `why` says why. */
    bool (*available)(char *why, size_t n);
    /* A new broker on the server (URL from the environment). */
    int (*broker_new)(fs_broker **out);
    /* Make `source` exist (queue, stream and group...) before subscribing. Optional. */
    void (*prepare)(const char *source);
    /*
     * fs_subscriber_options.broker_options for `source`, built in `scratch`
     * (CONF_SCRATCH bytes, max-aligned, alive while the scenario runs), or NULL.
     */
    const void *(*sub_options)(const char *source, void *scratch);
    /* fs_envelope.broker_options to publish to `source` as its subscriber reads it (ditto). */
    const void *(*pub_options)(const char *source, void *scratch);
    /* Wait until a subscriber of `source` started on `b` receives what is put now. Optional. */
    int (*wait_ready)(fs_broker *b, const char *source);
    /* Put one message (no ids, no headers) on `source` from outside. */
    int (*put)(fs_broker *b, const char *source, const void *body, size_t len);
    /* What the broker holds for `source` (CONF_HAS_STATE). */
    int (*state)(fs_broker *b, const char *source, conf_broker_state *out);
    /*
     * Before the middleware is added: make the next publish to `dest` fail
     * with the broker's error; *opts receives the envelope broker_options to
     * use for it.
     */
    int (*fail_publish_setup)(fs_broker *b, const char *dest, const void **opts);
    /*
     * Envelope broker_options publishing `dest` in FastStream's JSON envelope
     * (whose body must be UTF-8), built in `scratch`; NULL where the broker
     * has no such format.
     */
    const void *(*json_pub_options)(const char *dest, void *scratch);
    /*
     * Pattern subscriptions: from `source`, write a pattern (pattern[n]) and a
     * concrete name it matches (concrete[n]) and return the subscriber's
     * broker_options for the pattern (built in `scratch`). NULL: no patterns.
     */
    const void *(*pattern_sub)(const char *source, char *pattern, char *concrete, size_t n,
                               void *scratch);
    /* The handler label of `source` (NULL: the source itself). */
    void (*handler_label)(const char *source, char *buf, size_t n);
    /* The destination label of `dest` (NULL: the name itself). */
    void (*dest_label)(const char *dest, char *buf, size_t n);
    /* Delete what the scenario left on the server. Optional. */
    void (*cleanup)(const char *source);
} conf_driver;

/*
 * The drivers list (drivers.c): each driver file defines one NULL-terminated
 * array of its columns, conf_drivers_NAME; the list references it weakly, so
 * that a driver that is not built leaves its columns skipped.
 */
const conf_driver *conf_driver_for(conf_column col);

/* A name unique to this process, for sources and keys. */
void conf_unique(char *buf, size_t n, const char *column, const char *scenario);

/* ------------------------------------------------------------------------ */
/* The table                                                                */

typedef enum conf_kind {
    CONF_CONSUME,      /* put N messages, a handler does something */
    CONF_BATCH,        /* a batch subscriber (batch_size = messages) */
    CONF_PUBLISH_OK,   /* publish one message to another destination */
    CONF_PUBLISH_FAIL, /* a publish the broker refuses */
    CONF_PUBLISH_UTF8, /* a JSON-format publish of a body that is not UTF-8 */
    CONF_REQUEST,      /* fs_request to the source; the handler replies */
    CONF_LABELS,       /* custom static + dynamic labels, a publish inside and outside */
    CONF_TWO_BROKERS,  /* two brokers, one registry */
    CONF_DOUBLE_MW,    /* a second Prometheus middleware on one broker is refused */
    CONF_IDS,          /* correlation and message ids generated and propagated */
    CONF_REDELIVERY,   /* nack under the redelivery settings */
    CONF_CONCURRENT,   /* concurrency 4: overlap proven by a barrier */
    CONF_SLOW,         /* a 20 ms handler: duration lands >= 0.02 s */
    CONF_PATTERN,      /* a pattern subscription: the handler label is the concrete name */
} conf_kind;

/* What the handler does on a delivery: settle explicitly first, then return. */
typedef struct conf_step {
    int settle;             /* 0 none, 1 ack, 2 nack, 3 reject (fs_message_ack/nack/reject) */
    fs_outcome outcome;     /* returned (FS_OUTCOME_ERROR: failed with `error_type`) */
    const char *error_type; /* for fs_message_fail; NULL with ERROR: no name given */
} conf_step;

typedef struct conf_row {
    const char *name;
    const char *what; /* one line for humans */
    conf_kind kind;
    fs_ack_policy policy; /* DEFAULT: the column's */
    unsigned messages;    /* messages put (0 means 1) */
    conf_step first;      /* the handler on the first delivery */
    conf_step later;      /* on every later one */
    bool concurrency;     /* also in the TSan-labelled executable */
    /*
     * Per column, what happens. NULL: not filled in (fails). "n/a: why":
     * the broker has no such thing (skipped). Otherwise
     *     STATUS... [| key=value...]
     * STATUS per handled unit in order (acked nacked rejected skipped
     * error), and the broker's state afterwards: acked= pending= dead=
     * redelivered=; perr=TYPE for the publish error's type name.
     */
    const char *cell[COL_COUNT];
} conf_row;

extern const conf_row conf_rows[];
extern const size_t conf_row_count;

/* ------------------------------------------------------------------------ */
/* A cell, parsed                                                           */

enum { ST_ACKED, ST_NACKED, ST_REJECTED, ST_SKIPPED, ST_ERROR, ST_COUNT };
extern const char *const conf_status_names[ST_COUNT];

#define CONF_MAX_UNITS 16

typedef struct conf_expect {
    bool na;
    char why[128];
    unsigned units; /* handled units (deliveries) */
    int unit_status[CONF_MAX_UNITS];
    conf_broker_state state; /* -1: not checked */
    char perr[64];           /* publish error type ("" none) */
} conf_expect;

/* Parse a cell; false (with err) on a malformed one. */
bool conf_parse_cell(const char *cell, conf_expect *out, char *err, size_t n);

/* ------------------------------------------------------------------------ */
/* Running a scenario (any thread) and what it recorded                     */

#define CONF_MAX_DELIVERIES 64

typedef struct conf_delivery {
    uint64_t t_ns;           /* monotonic, when the handler started */
    uint32_t delivery_count; /* fs_message_delivery_count (0 unknown) */
    size_t count, size;      /* messages and bytes in the unit */
    bool ids_ok;             /* CONF_IDS: ids present, stable, message id == correlation id */
    char correlation_id[64];
    char why[192]; /* CONF_IDS: what the ids were */
} conf_delivery;

typedef struct conf_result {
    bool ran;
    bool skipped;
    char skip_why[160];
    char error[512]; /* a setup or run failure ("" none) */
    char source[128], source2[128], out[128];
    conf_expect expect;
    char *exposition; /* the registry rendered after the scenario (malloc) */
    conf_broker_state state;
    bool state_read;
    unsigned n_deliveries; /* handler calls */
    conf_delivery d[CONF_MAX_DELIVERIES];
    unsigned max_inside;      /* CONF_CONCURRENT: most handlers at once */
    int second_mw_rc;         /* CONF_DOUBLE_MW: the second fs_broker_add_prometheus */
    int publish_rc;           /* CONF_PUBLISH_*: the counted publish */
    int request_rc;           /* CONF_REQUEST */
    char reply_body[32];      /* CONF_REQUEST */
    char out_correlation[64]; /* CONF_IDS: the correlation id a handler publish carried */
    bool have_v2;             /* built against the core with adapter interface v2 */
} conf_result;

/* Run row `r` on column `col` with driver `d`; fills *res (never asserts). */
void conf_run(const conf_driver *d, conf_column col, const conf_row *r, conf_result *res);
void conf_result_free(conf_result *res);

/* Check a result against its row on the calling (test) thread with cmocka asserts. */
void conf_check(const conf_driver *d, conf_column col, const conf_row *r, conf_result *res);

/* Redelivery settings used by every scenario when the core has them. */
#define CONF_REDELIVERY_DELAY_MS 20
#define CONF_REDELIVERY_MAX 3

#endif
