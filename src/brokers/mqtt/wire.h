/*
 * MQTT wire helpers: topic names and filters, and FastStream's mapping of
 * MQTT 5 properties to message fields. Pure (no connection): unit-tested
 * in tests/mqtt/test_mqtt_wire.c.
 */
#ifndef FS_MQTT_WIRE_H
#define FS_MQTT_WIRE_H

#include "faststream/message.h"
#include "faststream/publisher.h"

#include <mosquitto.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/*
 * Check a topic filter: non-empty, at most 65535 bytes, '+' and '#' only as
 * whole levels, '#' last. "$share/GROUP/FILTER" needs a group without
 * wildcards or '/' and a valid filter. NULL when fine, else why (static).
 */
const char *fs__mq_filter_problem(const char *filter);

/* Check a topic name to publish to: non-empty, no wildcard. NULL when fine, else why. */
const char *fs__mq_topic_problem(const char *topic);

/* True when `topic` matches `filter` (a "$share/GROUP/" prefix is skipped). */
bool fs__mq_topic_matches(const char *filter, const char *topic);

/*
 * Copy `n` bytes as UTF-8 into `out` (room for 3 * n + 1), each invalid
 * sequence replaced by U+FFFD as Python's decode(errors="replace") does;
 * NUL-terminated. Returns the length written (without the NUL).
 */
size_t fs__mq_utf8_replace(const void *in, size_t n, char *out);

/* The MQTT 5 properties of a received PUBLISH, as FastStream reads them. */
typedef struct mq_props {
    char *content_type;   /* or NULL */
    char *response_topic; /* or NULL */
    void *correlation;    /* correlation data bytes, or NULL */
    uint16_t correlation_len;
    uint32_t expiry_s; /* message expiry interval, 0: none */
    /* user properties, a repeated name keeping its last value (FastStream parses them into a dict)
     */
    char **names;
    char **values;
    size_t count, cap;
} mq_props;

/* Read `props` (may be NULL) into `out` (zeroed first). FS_OK or FS_ENOMEM. Free with
 * fs__mq_props_free. */
int fs__mq_props_read(const mosquitto_property *props, mq_props *out);
void fs__mq_props_free(mq_props *p);

/*
 * Build the MQTT 5 properties of a PUBLISH from an envelope: content type,
 * response topic = reply_to, correlation data = correlation_id, user
 * properties = headers, message expiry. *out is NULL when there are none.
 * FS_EINVAL (a NULL header name or value, a string over 65535 bytes) or
 * FS_ENOMEM, with the message recorded.
 */
int fs__mq_props_build(const fs_envelope *e, uint32_t expiry_s, mosquitto_property **out);

#endif
