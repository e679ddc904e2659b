/*
 * The MQTT broker against a real mosquitto (scripts/services.sh start mqtt):
 * wildcards and the handler's concrete topic, QoS 0/1/2, retained
 * messages, shared subscriptions, MQTT 5 properties both ways, 3.1.1,
 * request/reply both ways, TLS with the test CA, URLs, publish results.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include "mqtt_test.h"

#include <arpa/inet.h>
#include <netdb.h>
#include <netinet/in.h>

static void wildcards_and_qos(void **state)
{
    (void)state;
    char base[128], plus[160], hash[160], t1[200], t2[200];
    mt_topic(base, sizeof base, "wild");
    snprintf(plus, sizeof plus, "%s/+/temp", base);
    snprintf(hash, sizeof hash, "%s/#", base);
    snprintf(t1, sizeof t1, "%s/kitchen/temp", base);
    snprintf(t2, sizeof t2, "%s/hall/light", base);
    fs_broker *b = mt_broker(NULL);
    assert_string_equal(fs_broker_name(b), "mqtt");
    mt_rec r0, r1, r2;
    mt_rec_init(&r0);
    mt_rec_init(&r1);
    mt_rec_init(&r2);
    mt_subscribe(b, plus, &r0, 0, 1, NULL);
    mt_subscribe(b, hash, &r1, 1, 1, NULL);
    mt_subscribe(b, hash, &r2, 2, 1, NULL);
    assert_int_equal(fs_broker_start(b), FS_OK);
    for (int qos = 0; qos <= 2; qos++) {
        assert_int_equal(mt_publish(b, t1, "k", qos, false), FS_OK);
        assert_int_equal(mt_publish(b, t2, "h", qos, false), FS_OK);
    }
    assert_int_equal(mt_rec_wait(&r1, 6, 5000), 6);
    assert_int_equal(mt_rec_wait(&r2, 6, 5000), 6);
    assert_int_equal(mt_rec_wait(&r0, 3, 5000), 3);
    ts_sleep_ms(100);
    assert_int_equal(mt_rec_count(&r0), 3); /* "+/temp" never matched the light */
    for (int i = 0; i < 3; i++) {
        assert_string_equal(r0.got[i].topic, t1); /* the concrete topic, not the filter */
        assert_int_equal(r0.got[i].qos, 0);
    }
    int qos_seen[3] = {0};
    for (int i = 0; i < 6; i++)
        qos_seen[r2.got[i].qos]++;
    assert_int_equal(qos_seen[0], 2); /* delivered at min(published, subscribed) */
    assert_int_equal(qos_seen[1], 2);
    assert_int_equal(qos_seen[2], 2);
    for (int i = 0; i < 6; i++)
        assert_true(r1.got[i].qos <= 1);
    fs_broker_free(b);
}

static void retained(void **state)
{
    (void)state;
    char t[128];
    mt_topic(t, sizeof t, "retained");
    fs_broker *b = mt_broker(NULL);
    assert_int_equal(fs_broker_connect(b), FS_OK);
    assert_int_equal(mt_publish(b, t, "last-known", 1, true), FS_OK);
    mt_rec r;
    mt_rec_init(&r);
    mt_subscribe(b, t, &r, 1, 1, NULL);
    assert_int_equal(fs_broker_start(b), FS_OK);
    assert_int_equal(mt_rec_wait(&r, 1, 5000), 1);
    assert_string_equal(r.got[0].body, "last-known");
    assert_true(r.got[0].retain);
    assert_int_equal(mt_publish(b, t, "", 1, true), FS_OK); /* clear it */
    fs_broker_free(b);
}

static void shared_subscription(void **state)
{
    (void)state;
    char t[128], share[64];
    mt_topic(t, sizeof t, "shared");
    snprintf(share, sizeof share, "g%ld", (long)getpid());
    fs_broker *b = mt_broker(NULL);
    mt_rec a, c, d;
    mt_rec_init(&a);
    mt_rec_init(&c);
    mt_rec_init(&d);
    mt_subscribe(b, t, &a, 1, 1, share);
    char src[200];
    snprintf(src, sizeof src, "$share/%s/%s", share, t);
    mt_subscribe(b, src, &c, 1, 1, NULL);
    mt_subscribe(b, t, &d, 0, 1, NULL); /* not in the group: gets everything */
    assert_int_equal(fs_broker_start(b), FS_OK);
    for (int i = 0; i < 20; i++)
        assert_int_equal(mt_publish(b, t, "x", 1, false), FS_OK);
    assert_int_equal(mt_rec_wait(&d, 20, 5000), 20);
    for (int i = 0; i < 200 && mt_rec_count(&a) + mt_rec_count(&c) < 20; i++)
        ts_sleep_ms(10);
    ts_sleep_ms(100);
    assert_int_equal(mt_rec_count(&a) + mt_rec_count(&c), 20); /* each once in the group */
    assert_true(mt_rec_count(&a) > 0 && mt_rec_count(&c) > 0); /* and shared out */
    assert_string_equal(a.got[0].topic, t);                    /* no $share prefix */
    fs_broker_free(b);
}

static void v5_properties_both_ways(void **state)
{
    (void)state;
    char t[128], back[128];
    mt_topic(t, sizeof t, "props");
    mt_topic(back, sizeof back, "props-back");
    fs_broker *b = mt_broker(NULL);
    mt_rec r;
    mt_rec_init(&r);
    mt_subscribe(b, back, &r, 1, 1, NULL);
    assert_int_equal(fs_broker_start(b), FS_OK);
    mt_raw *raw = mt_raw_new(t, false);

    /* ours -> raw */
    fs_header h[] = {{"x-tenant", "acme", 0}, {"x-n", "2", 0}};
    fs_envelope e = FS_ENVELOPE_INIT;
    e.body = "{}";
    e.body_len = 2;
    e.headers = h;
    e.header_count = 2;
    e.content_type = "application/json";
    e.reply_to = "answers/here";
    e.correlation_id = "cid-42";
    fs_mqtt_publish_options po = FS_MQTT_PUBLISH_OPTIONS_INIT;
    po.qos = 1;
    po.expiry_s = 120;
    e.broker_options = &po;
    assert_int_equal(fs_publish(b, t, &e), FS_OK);
    assert_int_equal(mt_raw_wait(raw, 1, 5000), 1);
    assert_string_equal(raw->got[0].content_type, "application/json");
    assert_string_equal(raw->got[0].response_topic, "answers/here");
    assert_string_equal(raw->got[0].correlation, "cid-42");
    assert_string_equal(raw->got[0].props, "x-tenant=acme;x-n=2;");
    assert_true(raw->got[0].expiry > 0 && raw->got[0].expiry <= 120); /* what is left of it */

    /* raw -> ours, with a repeated user property: the last value wins */
    mosquitto_property *p = NULL;
    mosquitto_property_add_string(&p, MQTT_PROP_CONTENT_TYPE, "text/plain");
    mosquitto_property_add_string(&p, MQTT_PROP_RESPONSE_TOPIC, "reply/topic");
    mosquitto_property_add_binary(&p, MQTT_PROP_CORRELATION_DATA, "c\xff", 2);
    mosquitto_property_add_string_pair(&p, MQTT_PROP_USER_PROPERTY, "k", "1");
    mosquitto_property_add_string_pair(&p, MQTT_PROP_USER_PROPERTY, "j", "x");
    mosquitto_property_add_string_pair(&p, MQTT_PROP_USER_PROPERTY, "k", "2");
    mt_raw_publish(raw, back, "hello", p, false);
    mosquitto_property_free_all(&p);
    assert_int_equal(mt_rec_wait(&r, 1, 5000), 1);
    assert_string_equal(r.got[0].body, "hello");
    assert_string_equal(r.got[0].content_type, "text/plain");
    assert_string_equal(r.got[0].response_topic, "reply/topic");
    assert_string_equal(r.got[0].correlation, "c\xEF\xBF\xBD"); /* decode(errors="replace") */
    assert_string_equal(r.got[0].props, "k=2;j=x;");

    /* the next delivery, without properties, reuses that record: nothing of them is left */
    ts_sleep_ms(50); /* the first record is back in the free list */
    mt_raw_publish(raw, back, "plain", NULL, false);
    assert_int_equal(mt_rec_wait(&r, 2, 5000), 2);
    assert_string_equal(r.got[1].body, "plain");
    assert_string_equal(r.got[1].content_type, "");
    assert_string_equal(r.got[1].response_topic, "");
    assert_string_equal(r.got[1].props, "");
    assert_int_equal(strlen(r.got[1].correlation), 36); /* none came: the core's generated uuid */
    mt_raw_free(raw);
    fs_broker_free(b);
}

static void mqtt_311(void **state)
{
    (void)state;
    char t[128];
    mt_topic(t, sizeof t, "v311");
    fs_broker *b = mt_broker("?version=3.1.1");
    assert_int_equal(fs_mqtt_broker_version(b), FS_MQTT_V311);
    mt_rec r;
    mt_rec_init(&r);
    mt_subscribe(b, t, &r, 1, 1, NULL);
    assert_int_equal(fs_broker_start(b), FS_OK);
    fs_header h[] = {{"k", "v", 0}};
    fs_envelope e = FS_ENVELOPE_INIT;
    e.body = "x";
    e.body_len = 1;
    e.headers = h;
    e.header_count = 1;
    assert_int_equal(fs_publish(b, t, &e), FS_EUNSUPPORTED); /* as FastStream */
    assert_non_null(strstr(fs_last_error(), "headers"));
    assert_string_equal(fs_last_publish_error_type(), "FeatureNotSupportedException");
    e.headers = NULL;
    e.header_count = 0;
    e.content_type = "text/plain"; /* cannot travel: dropped */
    e.correlation_id = "c1";
    assert_int_equal(fs_publish(b, t, &e), FS_OK);
    assert_int_equal(mt_rec_wait(&r, 1, 5000), 1);
    assert_string_equal(r.got[0].body, "x");
    assert_string_equal(r.got[0].content_type, "");
    fs_message *reply = NULL;
    assert_int_equal(fs_request(b, t, &e, 500, &reply), FS_EUNSUPPORTED); /* no reply_to */
    assert_string_equal(fs_last_publish_error_type(), "FeatureNotSupportedException");
    fs_broker_free(b);
}

/* A handler answering on a fixed topic, as FastStream's 3.1.1 request expects. */
static fs_outcome answer_on_replies(fs_message *m, void *user)
{
    const char *replies = user;
    char out[300];
    int n = snprintf(out, sizeof out, "re:%.*s", (int)fs_message_body_len(m),
                     (const char *)fs_message_body(m));
    fs_publish_bytes(fs_message_broker(m), replies, out, (size_t)n);
    return FS_OUTCOME_OK;
}

/* 3.1.1 request/reply (FastStream's): the caller's reply_to, the first message there. */
static void mqtt_311_request(void **state)
{
    (void)state;
    char t[128], replies[128];
    mt_topic(t, sizeof t, "v311-rpc");
    mt_topic(replies, sizeof replies, "v311-rpc-replies");
    fs_broker *b = mt_broker("?version=3.1.1");
    assert_int_equal(fs_subscribe(b, t, answer_on_replies, replies, NULL, NULL), FS_OK);
    assert_int_equal(fs_broker_start(b), FS_OK);
    fs_envelope e = FS_ENVELOPE_INIT;
    e.body = "ping";
    e.body_len = 4;
    e.reply_to = replies;
    fs_message *reply = NULL;
    assert_int_equal(fs_request(b, t, &e, 5000, &reply), FS_OK);
    assert_int_equal(fs_message_body_len(reply), 7);
    assert_memory_equal(fs_message_body(reply), "re:ping", 7);
    assert_string_equal(fs_message_source(reply), replies);
    fs_message_free(reply);
    fs_broker_free(b);
}

/* 3.1.1 persistent sessions: clean session off keeps QoS 1 messages while away. */
static void drop_session(const char *id)
{
    struct mosquitto *m = mosquitto_new(id, true, NULL);
    if (mosquitto_connect(m, "127.0.0.1", mt_port(), 10) == MOSQ_ERR_SUCCESS)
        mosquitto_disconnect(m);
    mosquitto_destroy(m);
}

static void mqtt_311_persistent_session(void **state)
{
    (void)state;
    char t[128], q[160];
    mt_topic(t, sizeof t, "v311-away");
    snprintf(q, sizeof q, "?version=3.1.1&clean_start=false&client_id=fs311-%ld", (long)getpid());
    fs_broker *c = mt_broker(q);
    mt_rec r;
    mt_rec_init(&r);
    mt_subscribe(c, t, &r, 1, 1, NULL);
    assert_int_equal(fs_broker_start(c), FS_OK);
    assert_int_equal(fs_broker_stop(c), FS_OK);
    fs_broker *p = mt_broker("?version=3.1.1");
    assert_int_equal(fs_broker_connect(p), FS_OK);
    for (int i = 0; i < 5; i++)
        assert_int_equal(mt_publish(p, t, "away", 1, false), FS_OK);
    assert_int_equal(fs_broker_start(c), FS_OK);
    assert_int_equal(mt_rec_wait(&r, 5, 5000), 5);
    fs_broker_free(c);
    fs_broker_free(p);
    char id[64];
    snprintf(id, sizeof id, "fs311-%ld-1", (long)getpid());
    drop_session(id);
}

static fs_outcome echo(fs_message *m, void *user)
{
    (void)user;
    char out[300];
    int n = snprintf(out, sizeof out, "re:%.*s", (int)fs_message_body_len(m),
                     (const char *)fs_message_body(m));
    fs_message_reply(m, out, (size_t)n, NULL, 0, NULL);
    return FS_OUTCOME_OK;
}

static void request_reply(void **state)
{
    (void)state;
    char t[128], replies[128];
    mt_topic(t, sizeof t, "rpc");
    mt_topic(replies, sizeof replies, "rpc-replies");
    fs_broker *b = mt_broker(NULL);
    assert_int_equal(fs_subscribe(b, t, echo, NULL, NULL, NULL), FS_OK);
    assert_int_equal(fs_broker_start(b), FS_OK);

    /* ours -> ours */
    fs_envelope e = FS_ENVELOPE_INIT;
    e.body = "ping";
    e.body_len = 4;
    fs_message *reply = NULL;
    assert_int_equal(fs_request(b, t, &e, 5000, &reply), FS_OK);
    assert_memory_equal(fs_message_body(reply), "re:ping", 7);
    fs_message_free(reply);

    /* a foreign requester (response topic + correlation data, as FastStream's) */
    mt_raw *raw = mt_raw_new(replies, false);
    mosquitto_property *p = NULL;
    mosquitto_property_add_string(&p, MQTT_PROP_RESPONSE_TOPIC, replies);
    mosquitto_property_add_binary(&p, MQTT_PROP_CORRELATION_DATA, "corr-7", 6);
    mt_raw_publish(raw, t, "hi", p, false);
    mosquitto_property_free_all(&p);
    assert_int_equal(mt_raw_wait(raw, 1, 5000), 1);
    assert_string_equal(raw->got[0].body, "re:hi");
    assert_string_equal(raw->got[0].correlation, "corr-7");
    mt_raw_free(raw);
    fs_broker_free(b);
}

/* A foreign responder: echoes to the response topic with the correlation data. */
static void responder_on_message(struct mosquitto *m, void *u, const struct mosquitto_message *msg,
                                 const mosquitto_property *props)
{
    (void)u;
    char *rt = NULL;
    void *cd = NULL;
    uint16_t cdl = 0;
    mosquitto_property_read_string(props, MQTT_PROP_RESPONSE_TOPIC, &rt, false);
    mosquitto_property_read_binary(props, MQTT_PROP_CORRELATION_DATA, &cd, &cdl, false);
    if (rt) {
        mosquitto_property *out = NULL;
        if (cd)
            mosquitto_property_add_binary(&out, MQTT_PROP_CORRELATION_DATA, cd, cdl);
        char body[300];
        int n = snprintf(body, sizeof body, "raw:%.*s", msg->payloadlen, (char *)msg->payload);
        mosquitto_publish_v5(m, NULL, rt, n, body, 1, false, out);
        mosquitto_property_free_all(&out);
    }
    free(rt);
    free(cd);
}

static void request_to_foreign_responder(void **state)
{
    (void)state;
    char t[128];
    mt_topic(t, sizeof t, "rpc-foreign");
    mt_raw *raw = mt_raw_new(t, false);
    mosquitto_message_v5_callback_set(raw->m, responder_on_message);
    fs_broker *b = mt_broker(NULL);
    assert_int_equal(fs_broker_connect(b), FS_OK);
    fs_envelope e = FS_ENVELOPE_INIT;
    e.body = "q";
    e.body_len = 1;
    fs_message *reply = NULL;
    assert_int_equal(fs_request(b, t, &e, 5000, &reply), FS_OK);
    assert_int_equal(fs_message_body_len(reply), 5);
    assert_memory_equal(fs_message_body(reply), "raw:q", 5);
    fs_message_free(reply);
    fs_broker_free(b);
    mt_raw_free(raw);
}

static void tls_with_test_ca(void **state)
{
    (void)state;
    char ca[512], cert[512], key[512], url[2048], t[128];
    mt_cert(ca, sizeof ca, "ca.pem");
    mt_cert(cert, sizeof cert, "client.pem");
    mt_cert(key, sizeof key, "client.key");
    if (access(ca, R_OK) != 0)
        fail_msg("no test CA at %s (scripts/services.sh start mqtt makes it)", ca);
    mt_topic(t, sizeof t, "tls");
    snprintf(url, sizeof url, "mqtts://127.0.0.1:%d?ca=%s&cert=%s&key=%s", mt_tls_port(), ca, cert,
             key);
    fs_broker *b = NULL;
    assert_int_equal(fs_broker_new(url, NULL, &b), FS_OK);
    mt_rec r;
    mt_rec_init(&r);
    mt_subscribe(b, t, &r, 1, 1, NULL);
    assert_int_equal(fs_broker_start(b), FS_OK);
    assert_int_equal(mt_publish(b, t, "secret", 1, false), FS_OK);
    assert_int_equal(mt_rec_wait(&r, 1, 5000), 1);
    assert_string_equal(r.got[0].body, "secret");
    fs_broker_free(b);

    /* the listener requires a client certificate */
    snprintf(url, sizeof url, "mqtts://127.0.0.1:%d?ca=%s", mt_tls_port(), ca);
    assert_int_equal(fs_broker_new(url, NULL, &b), FS_OK);
    assert_int_not_equal(fs_broker_connect(b), FS_OK);
    fs_broker_free(b);

    /* the system's CAs do not know the test CA: the handshake fails, and says where */
    snprintf(url, sizeof url, "mqtts://127.0.0.1:%d?cert=%s&key=%s", mt_tls_port(), cert, key);
    assert_int_equal(fs_broker_new(url, NULL, &b), FS_OK);
    assert_int_equal(fs_broker_connect(b), FS_EIO);
    assert_non_null(strstr(fs_last_error(), "127.0.0.1"));
    fs_broker_free(b);

    /*
     * insecure=true skips the host name check: this machine's own name, when
     * it resolves to 127.0.0.1, is not in the server certificate (localhost,
     * 127.0.0.1), so it fails without and connects with.
     */
    char host[128] = "";
    struct addrinfo *ai = NULL, hints = {0};
    hints.ai_family = AF_INET;
    bool loopback_name =
        gethostname(host, sizeof host - 1) == 0 && strcmp(host, "localhost") &&
        getaddrinfo(host, NULL, &hints, &ai) == 0 && ai &&
        ((struct sockaddr_in *)ai->ai_addr)->sin_addr.s_addr == htonl(INADDR_LOOPBACK);
    if (ai)
        freeaddrinfo(ai);
    if (loopback_name) {
        snprintf(url, sizeof url, "mqtts://%s:%d?ca=%s&cert=%s&key=%s", host, mt_tls_port(), ca,
                 cert, key);
        fs_mqtt_options o = FS_MQTT_OPTIONS_INIT;
        o.connect_timeout_ms = 1000; /* libmosquitto may fail the check after the connect */
        assert_int_equal(fs_mqtt_broker_new(url, &o, &b), FS_OK);
        assert_int_equal(fs_broker_connect(b), FS_EIO); /* host name mismatch */
        assert_non_null(strstr(fs_last_error(), host));
        fs_broker_free(b);
        snprintf(url, sizeof url, "mqtts://%s:%d?ca=%s&cert=%s&key=%s&insecure=true", host,
                 mt_tls_port(), ca, cert, key);
        assert_int_equal(fs_broker_new(url, NULL, &b), FS_OK);
        assert_int_equal(fs_broker_connect(b), FS_OK);
        fs_broker_free(b);
    }
}

static void urls(void **state)
{
    (void)state;
    fs_broker *b = NULL;
    assert_int_equal(fs_broker_new("mqtt://127.0.0.1:1?colour=red", NULL, &b), FS_EINVAL);
    assert_non_null(strstr(fs_last_error(), "colour"));
    assert_int_equal(fs_broker_new("mqtt://127.0.0.1:1?version=6", NULL, &b), FS_EINVAL);
    assert_int_equal(fs_broker_new("mqtt://127.0.0.1:1?keepalive=x", NULL, &b), FS_EINVAL);
    assert_int_equal(fs_broker_new("mqtt://127.0.0.1:1?ca=/x", NULL, &b), FS_EINVAL);
    assert_int_equal(fs_broker_new("mqtt://127.0.0.1:1/path", NULL, &b), FS_EINVAL);
    assert_int_equal(fs_broker_new("mqtts://127.0.0.1:1?cert=/x", NULL, &b), FS_EINVAL);
    assert_int_equal(
        fs_broker_new("mqtt://u:p@127.0.0.1:1?client_id=c&keepalive=5&clean_start=false"
                      "&session_expiry=60&version=5",
                      NULL, &b),
        FS_OK);
    assert_true(fs_broker_is_mqtt(b));
    assert_int_equal(fs_broker_connect(b), FS_EIO); /* nothing listens on port 1 */
    assert_non_null(strstr(fs_last_error(), "127.0.0.1:1"));
    fs_broker_free(b);
}

static void publish_results(void **state)
{
    (void)state;
    char t[128];
    mt_topic(t, sizeof t, "nobody");
    fs_broker *b = mt_broker(NULL);
    assert_int_equal(fs_broker_connect(b), FS_OK);
    assert_int_equal(mt_publish(b, t, "x", 1, false), FS_OK); /* reason 16: success */
    assert_int_equal(mt_publish(b, t, "x", 2, false), FS_OK);
    assert_int_equal(mt_publish(b, "$SYS/fstest", "x", 1, false), FS_EBROKER); /* 0x87 */
    assert_string_equal(fs_last_publish_error_type(), "MQTTError");
    assert_non_null(strstr(fs_last_error(), "$SYS/fstest"));
    assert_int_equal(mt_publish(b, t, "x", 1, false), FS_OK); /* the connection is fine */
    assert_int_equal(mt_publish(b, "a/+", "x", 1, false), FS_EINVAL);
    assert_string_equal(fs_last_publish_error_type(), "ValueError");
    assert_int_equal(mt_publish(b, t, "x", 3, false), FS_EINVAL);
    mt_rec r;
    mt_rec_init(&r);
    fs_mqtt_subscriber_options mo = FS_MQTT_SUBSCRIBER_OPTIONS_INIT;
    fs_subscriber_options so = FS_SUBSCRIBER_OPTIONS_INIT;
    so.broker_options = &mo;
    assert_int_equal(fs_subscribe(b, "a/#/b", mt_rec_handler, &r, &so, NULL), FS_EINVAL);
    mo.qos = 3;
    assert_int_equal(fs_subscribe(b, "a", mt_rec_handler, &r, &so, NULL), FS_EINVAL);
    fs_broker_close(b);
    assert_int_not_equal(mt_publish(b, t, "x", 1, false), FS_OK);
    fs_broker_free(b);
}

/*
 * At least once: the PUBACK waits for the handler, so one connection runs one
 * QoS 1 handler at a time; concurrency N runs N lanes (a shared subscription
 * of their own), each acknowledging in its arrival order.
 */
static void qos1_lanes(void **state)
{
    (void)state;
    char t1[128], t4[128];
    mt_topic(t1, sizeof t1, "lane1");
    mt_topic(t4, sizeof t4, "lane4");
    fs_broker *b = mt_broker(NULL);
    mt_rec r1, r4;
    mt_rec_init(&r1);
    mt_rec_init(&r4);
    r1.sleep_ms = r4.sleep_ms = 20;
    mt_subscribe(b, t1, &r1, 1, 1, NULL);
    mt_subscribe(b, t4, &r4, 1, 4, NULL);
    assert_int_equal(fs_broker_start(b), FS_OK);
    for (int i = 0; i < 12; i++) {
        char body[8];
        snprintf(body, sizeof body, "%d", i);
        assert_int_equal(mt_publish(b, t1, body, 1, false), FS_OK);
        assert_int_equal(mt_publish(b, t4, body, 1, false), FS_OK);
    }
    assert_int_equal(mt_rec_wait(&r1, 12, 10000), 12);
    assert_int_equal(mt_rec_wait(&r4, 12, 10000), 12);
    ts_sleep_ms(100);
    assert_int_equal(mt_rec_count(&r4), 12); /* each once: the lanes share the messages out */
    assert_int_equal(atomic_load(&r1.max_running), 1);
    assert_true(atomic_load(&r4.max_running) > 1);
    for (int i = 0; i < 12; i++) { /* one lane: arrival order */
        char body[8];
        snprintf(body, sizeof body, "%d", i);
        assert_string_equal(r1.got[i].body, body);
        assert_string_equal(r4.got[0].topic, t4); /* the topic, not $share/... */
    }
    fs_broker_free(b);
}

/* A subscriber added to a running broker starts at once; lanes survive a stop and a start. */
static void subscribe_while_running_and_restart(void **state)
{
    (void)state;
    char t[128];
    mt_topic(t, sizeof t, "late");
    fs_broker *b = mt_broker(NULL);
    assert_int_equal(fs_broker_start(b), FS_OK);
    mt_rec r;
    mt_rec_init(&r);
    mt_subscribe(b, t, &r, 1, 3, NULL);
    assert_int_equal(mt_publish(b, t, "1", 1, false), FS_OK);
    assert_int_equal(mt_rec_wait(&r, 1, 5000), 1);
    assert_int_equal(fs_broker_stop(b), FS_OK);
    assert_int_equal(fs_broker_start(b), FS_OK);
    for (int i = 0; i < 6; i++)
        assert_int_equal(mt_publish(b, t, "2", 1, false), FS_OK);
    assert_int_equal(mt_rec_wait(&r, 7, 5000), 7);
    fs_broker_free(b);
}

/* Acknowledge at once (the lane takes its next message), then record slowly. */
static fs_outcome ack_then_record(fs_message *m, void *user)
{
    fs_message_ack(m);
    return mt_rec_handler(m, user);
}

/*
 * A stop while QoS 1 messages are queued for the lanes (each handler acks
 * at once, then works: its lane's next message waits for a worker): what no
 * worker took is left unacknowledged (its lane gives it up), and after a
 * start the persistent session delivers it again: every message handled.
 */
static void stop_mid_flow_loses_nothing(void **state)
{
    (void)state;
    enum { N = 10 };
    char t[128], q[160], id[64];
    mt_topic(t, sizeof t, "stopflow");
    snprintf(id, sizeof id, "fsstop-%ld", (long)getpid());
    snprintf(q, sizeof q, "?clean_start=false&client_id=%s", id);
    fs_broker *b = mt_broker(q);
    mt_rec r;
    mt_rec_init(&r);
    r.sleep_ms = 300;
    fs_mqtt_subscriber_options mo = FS_MQTT_SUBSCRIBER_OPTIONS_INIT;
    mo.qos = 1;
    fs_subscriber_options so = FS_SUBSCRIBER_OPTIONS_INIT;
    so.broker_options = &mo;
    so.concurrency = 2;
    assert_int_equal(fs_subscribe(b, t, ack_then_record, &r, &so, NULL), FS_OK);
    assert_int_equal(fs_broker_start(b), FS_OK);
    mt_raw *pub = mt_raw_new(NULL, false);
    for (int i = 0; i < N; i++) {
        char body[16];
        snprintf(body, sizeof body, "%d", i);
        mt_raw_publish(pub, t, body, NULL, false);
    }
    for (int i = 0; i < 100 && atomic_load(&r.running) < 2; i++) /* both workers busy */
        ts_sleep_ms(5);
    ts_sleep_ms(50);                            /* the lanes' next messages are queued */
    assert_int_equal(fs_broker_stop(b), FS_OK); /* and taken back by their lanes */
    r.sleep_ms = 0;
    int before = mt_rec_count(&r);
    assert_int_equal(fs_broker_start(b), FS_OK);
    bool seen[N] = {false};
    int missing = N;
    for (int waited = 0; missing && waited < 10000; waited += 20) {
        pthread_mutex_lock(&r.mu);
        missing = 0;
        for (int i = 0; i < r.n; i++)
            seen[atoi(r.got[i].body)] = true;
        pthread_mutex_unlock(&r.mu);
        for (int i = 0; i < N; i++)
            missing += !seen[i];
        if (missing)
            ts_sleep_ms(20);
    }
    fs_broker_free(b);
    mt_raw_free(pub);
    char lane[80];
    snprintf(lane, sizeof lane, "%s-1", id);
    drop_session(lane);
    snprintf(lane, sizeof lane, "%s-1.2", id);
    drop_session(lane);
    if (missing)
        fail_msg("%d of %d messages never handled (%d before the stop)", missing, N, before);
}

typedef struct mixed {
    fs_broker *b;
    const char *topic;
    int qos, n;
    atomic_int failed;
} mixed;

static void *mixed_publisher(void *arg)
{
    mixed *x = arg;
    for (int i = 0; i < x->n; i++)
        if (mt_publish(x->b, x->topic, "m", x->qos, false) != FS_OK)
            atomic_fetch_add(&x->failed, 1); /* recorded: no cmocka asserts off the test thread */
    return NULL;
}

/*
 * QoS 0 and QoS 1 publishes from several threads on one connection: every
 * QoS 1 publish gets its PUBACK although the QoS 0 packets written meanwhile
 * are told apart without the connection's lock (publish_timeout_ms is short,
 * so a missed wake-up fails the publish).
 */
static void publish_mixed_qos_from_threads(void **state)
{
    (void)state;
    char t[128], url[256];
    mt_topic(t, sizeof t, "mixed");
    mt_url(url, sizeof url, NULL);
    fs_mqtt_options o = FS_MQTT_OPTIONS_INIT;
    o.publish_timeout_ms = 3000;
    fs_broker *b = NULL;
    assert_int_equal(fs_mqtt_broker_new(url, &o, &b), FS_OK);
    assert_int_equal(fs_broker_connect(b), FS_OK);
    mixed x[4] = {{b, t, 0, 400, 0}, {b, t, 1, 150, 0}, {b, t, 0, 400, 0}, {b, t, 1, 150, 0}};
    pthread_t th[4];
    for (int i = 0; i < 4; i++)
        assert_int_equal(pthread_create(&th[i], NULL, mixed_publisher, &x[i]), 0);
    for (int i = 0; i < 4; i++)
        pthread_join(th[i], NULL);
    for (int i = 0; i < 4; i++)
        assert_int_equal(atomic_load(&x[i].failed), 0);
    fs_broker_free(b);
}

int main(void)
{
    fs_set_log_level(getenv("FS_TEST_LOG") ? FS_LOG_DEBUG : FS_LOG_OFF);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(wildcards_and_qos),
        cmocka_unit_test(retained),
        cmocka_unit_test(shared_subscription),
        cmocka_unit_test(v5_properties_both_ways),
        cmocka_unit_test(mqtt_311),
        cmocka_unit_test(mqtt_311_persistent_session),
        cmocka_unit_test(mqtt_311_request),
        cmocka_unit_test(request_reply),
        cmocka_unit_test(request_to_foreign_responder),
        cmocka_unit_test(tls_with_test_ca),
        cmocka_unit_test(urls),
        cmocka_unit_test(publish_results),
        cmocka_unit_test(qos1_lanes),
        cmocka_unit_test(subscribe_while_running_and_restart),
        cmocka_unit_test(stop_mid_flow_loses_nothing),
        cmocka_unit_test(publish_mixed_qos_from_threads),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
