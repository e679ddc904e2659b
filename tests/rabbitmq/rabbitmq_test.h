/*
 * Helpers for the RabbitMQ integration tests: the server's URL from the
 * environment (scripts/services.sh), a raw rabbitmq-c connection to
 * prepare and inspect the server, unique names; the recording handler,
 * waits and sleeps are tests/support/record.h's (ts_*). Header-only;
 * include after cmocka.h.
 */
#ifndef FS_TEST_RABBITMQ_H
#define FS_TEST_RABBITMQ_H

#include "faststream/faststream.h"
#include "faststream/rabbitmq.h"
#include "support/port.h"
#include "support/record.h"

#include <amqp.h>
#include <amqp_tcp_socket.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static inline int qt_port(void)
{
    return port_env("FS_RABBITMQ_PORT", 26672);
}

static inline int qt_tls_port(void)
{
    return port_env("FS_RABBITMQ_TLS_PORT", 26671);
}

/* The services' state dir (the test CA is in $DIR/rabbitmq/tls). */
static inline const char *qt_state_dir(void)
{
    static char buf[512];
    const char *d = getenv("FS_SERVICES_DIR");
    if (d && *d)
        return d;
    const char *t = getenv("TMPDIR");
    snprintf(buf, sizeof buf, "%s/faststream-services-%u", t && *t ? t : "/tmp",
             (unsigned)getuid());
    return buf;
}

static inline void qt_url(char *buf, size_t n)
{
    snprintf(buf, n, "amqp://guest:guest@127.0.0.1:%d/", qt_port());
}

/* A name private to this process and test. */
static inline void qt_name(char *buf, size_t n, const char *what)
{
    snprintf(buf, n, "fstest.%ld.%s", (long)getpid(), what);
}

/* A connected broker (fails the test otherwise). */
static inline fs_broker *qt_broker(void)
{
    char url[128];
    qt_url(url, sizeof url);
    fs_broker *b = NULL;
    if (fs_broker_new(url, NULL, &b) != FS_OK || fs_broker_connect(b) != FS_OK)
        fail_msg("cannot use rabbitmq-server at %s (scripts/services.sh start rabbitmq): %s", url,
                 fs_last_error());
    return b;
}

/* Subscribe the recording handler `l` to `queue` with rabbitmq options `ro` (may be NULL). */
static inline fs_subscriber *qt_subscribe(fs_broker *b, const char *queue,
                                          const fs_rabbitmq_subscriber_options *ro,
                                          fs_ack_policy policy, ts_log *l)
{
    fs_subscriber_options so = FS_SUBSCRIBER_OPTIONS_INIT;
    so.broker_options = ro;
    so.ack_policy = policy;
    fs_subscriber *sub = NULL;
    if (fs_subscribe(b, queue, ts_record, l, &so, &sub) != FS_OK)
        fail_msg("subscribe %s: %s", queue, fs_last_error());
    return sub;
}

/* ------------------------------------------------------------------------ */
/* A raw rabbitmq-c connection, channel 1.                                  */

static inline amqp_connection_state_t qt_raw(void)
{
    amqp_connection_state_t c = amqp_new_connection();
    amqp_socket_t *s = amqp_tcp_socket_new(c);
    if (amqp_socket_open(s, "127.0.0.1", qt_port()))
        fail_msg("raw: cannot connect to 127.0.0.1:%d", qt_port());
    amqp_rpc_reply_t r = amqp_login(c, "/", 0, 131072, 0, AMQP_SASL_METHOD_PLAIN, "guest", "guest");
    if (r.reply_type != AMQP_RESPONSE_NORMAL)
        fail_msg("raw: login failed");
    amqp_channel_open(c, 1);
    if (amqp_get_rpc_reply(c).reply_type != AMQP_RESPONSE_NORMAL)
        fail_msg("raw: channel.open failed");
    return c;
}

static inline void qt_raw_close(amqp_connection_state_t c)
{
    amqp_connection_close(c, AMQP_REPLY_SUCCESS);
    amqp_destroy_connection(c);
}

/* Messages ready in a queue (passive declare on a fresh raw connection); -1 if missing. */
static inline long qt_depth(const char *queue)
{
    amqp_connection_state_t c = qt_raw();
    amqp_queue_declare_ok_t *ok =
        amqp_queue_declare(c, 1, amqp_cstring_bytes(queue), 1, 0, 0, 0, amqp_empty_table);
    long n = ok ? (long)ok->message_count : -1;
    amqp_destroy_connection(c); /* the channel may be closed (404): no clean close */
    return n;
}

static inline void qt_delete_queue(const char *queue)
{
    amqp_connection_state_t c = qt_raw();
    amqp_queue_delete(c, 1, amqp_cstring_bytes(queue), 0, 0);
    qt_raw_close(c);
}

static inline void qt_delete_exchange(const char *ex)
{
    amqp_connection_state_t c = qt_raw();
    amqp_exchange_delete(c, 1, amqp_cstring_bytes(ex), 0);
    qt_raw_close(c);
}

/* basic.get one message from `queue` (auto-ack); false when none within ms. */
static inline bool qt_get(amqp_connection_state_t c, const char *queue, amqp_message_t *m, int ms)
{
    for (int waited = 0; waited <= ms; waited += 20) {
        amqp_rpc_reply_t r = amqp_basic_get(c, 1, amqp_cstring_bytes(queue), 1);
        if (r.reply_type != AMQP_RESPONSE_NORMAL)
            fail_msg("raw: basic.get on %s failed", queue);
        if (r.reply.id == AMQP_BASIC_GET_OK_METHOD) {
            if (amqp_read_message(c, 1, m, 0).reply_type != AMQP_RESPONSE_NORMAL)
                fail_msg("raw: read_message failed");
            return true;
        }
        ts_sleep_ms(20);
    }
    return false;
}

/* A header of a raw message as a string (UTF-8/bytes only), or NULL. */
static inline const char *qt_hdr(const amqp_message_t *m, const char *key, char *buf, size_t n)
{
    const amqp_table_t *t = &m->properties.headers;
    if (!(m->properties._flags & AMQP_BASIC_HEADERS_FLAG))
        return NULL;
    for (int i = 0; i < t->num_entries; i++)
        if (t->entries[i].key.len == strlen(key) &&
            !memcmp(t->entries[i].key.bytes, key, strlen(key)) &&
            (t->entries[i].value.kind == AMQP_FIELD_KIND_UTF8 ||
             t->entries[i].value.kind == AMQP_FIELD_KIND_BYTES)) {
            amqp_bytes_t v = t->entries[i].value.value.bytes;
            snprintf(buf, n, "%.*s", (int)v.len, (char *)v.bytes);
            return buf;
        }
    return NULL;
}

static inline bool qt_bytes_eq(amqp_bytes_t b, const char *s)
{
    return b.len == strlen(s) && memcmp(b.bytes, s, b.len) == 0;
}

static inline int qt_publish(fs_broker *b, const char *exchange, const char *rk, const char *body)
{
    fs_rabbitmq_publish_options po = FS_RABBITMQ_PUBLISH_OPTIONS_INIT;
    po.exchange = exchange;
    return ts_publish_with(b, rk, body, &po);
}

#endif
