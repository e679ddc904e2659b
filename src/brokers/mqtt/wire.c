/*
 * MQTT wire helpers: topics and the MQTT 5 property mapping (see wire.h).
 */
#include "wire.h"

#include "faststream/adapter.h"

#include <mqtt_protocol.h>
#include <stdlib.h>
#include <string.h>

#define MQ_MAX_STR 65535u

/* ------------------------------------------------------------------------ */
/* Topics                                                                   */

static const char *levels_problem(const char *f)
{
    for (const char *p = f;; p++) {
        const char *lvl = p;
        while (*p && *p != '/')
            p++;
        size_t n = (size_t)(p - lvl);
        for (size_t i = 0; i < n; i++) {
            if (lvl[i] == '+' && n != 1)
                return "'+' must be a whole level";
            if (lvl[i] == '#') {
                if (n != 1)
                    return "'#' must be a whole level";
                if (*p)
                    return "'#' must be the last level";
            }
        }
        if (!*p)
            return NULL;
    }
}

const char *fs__mq_filter_problem(const char *filter)
{
    if (!filter || !*filter)
        return "empty topic filter";
    if (strlen(filter) > MQ_MAX_STR)
        return "topic filter longer than 65535 bytes";
    if (strncmp(filter, "$share/", 7) == 0) {
        const char *g = filter + 7, *slash = strchr(g, '/');
        if (!slash || slash == g)
            return "a shared subscription needs $share/GROUP/FILTER";
        for (const char *p = g; p < slash; p++)
            if (*p == '+' || *p == '#')
                return "a shared subscription's group cannot hold '+' or '#'";
        if (!slash[1])
            return "a shared subscription needs a filter after its group";
        return levels_problem(slash + 1);
    }
    return levels_problem(filter);
}

const char *fs__mq_topic_problem(const char *topic)
{
    if (!topic || !*topic)
        return "empty topic";
    if (strlen(topic) > MQ_MAX_STR)
        return "topic longer than 65535 bytes";
    if (strpbrk(topic, "+#"))
        return "a topic to publish to cannot hold '+' or '#'";
    return NULL;
}

bool fs__mq_topic_matches(const char *filter, const char *topic)
{
    if (strncmp(filter, "$share/", 7) == 0) {
        const char *slash = strchr(filter + 7, '/');
        if (!slash)
            return false;
        filter = slash + 1;
    }
    /* Wildcards at the first level do not match topics starting with '$'. */
    if (topic[0] == '$' && (filter[0] == '+' || filter[0] == '#'))
        return false;
    const char *f = filter, *t = topic;
    for (;;) {
        if (f[0] == '#')
            return true;
        const char *fe = strchr(f, '/'), *te = strchr(t, '/');
        size_t fn = fe ? (size_t)(fe - f) : strlen(f), tn = te ? (size_t)(te - t) : strlen(t);
        if (!(fn == 1 && f[0] == '+') && (fn != tn || memcmp(f, t, fn) != 0))
            return false;
        if (!fe && !te)
            return true;
        if (!te) /* "a/#" matches "a" */
            return fe && fe[1] == '#' && !fe[2];
        if (!fe)
            return false;
        f = fe + 1;
        t = te + 1;
    }
}

/* ------------------------------------------------------------------------ */
/* UTF-8                                                                    */

/*
 * The sequence starting at s[0] (n >= 1 bytes left): its expected length
 * and the bounds of its second byte; 0 for a byte that starts none.
 */
static size_t utf8_expect(unsigned char c, unsigned char *lo, unsigned char *hi)
{
    *lo = 0x80;
    *hi = 0xBF;
    if (c < 0x80)
        return 1;
    if (c >= 0xC2 && c <= 0xDF)
        return 2;
    if (c >= 0xE0 && c <= 0xEF) {
        if (c == 0xE0)
            *lo = 0xA0;
        else if (c == 0xED)
            *hi = 0x9F;
        return 3;
    }
    if (c >= 0xF0 && c <= 0xF4) {
        if (c == 0xF0)
            *lo = 0x90;
        else if (c == 0xF4)
            *hi = 0x8F;
        return 4;
    }
    return 0;
}

/*
 * How many bytes at s form the longest prefix of a valid sequence (`*valid`
 * tells whether it is complete). At least 1.
 */
static size_t utf8_prefix(const unsigned char *s, size_t n, bool *valid)
{
    unsigned char lo, hi;
    size_t want = utf8_expect(s[0], &lo, &hi), k = 1;
    *valid = want == 1;
    if (want <= 1)
        return 1;
    if (k < n && s[k] >= lo && s[k] <= hi) {
        k++;
        while (k < want && k < n && s[k] >= 0x80 && s[k] <= 0xBF)
            k++;
    }
    *valid = k == want;
    return k;
}

size_t fs__mq_utf8_replace(const void *in, size_t n, char *out)
{
    const unsigned char *s = in;
    size_t o = 0;
    for (size_t i = 0; i < n;) {
        bool valid;
        size_t k = utf8_prefix(s + i, n - i, &valid);
        if (valid) {
            memcpy(out + o, s + i, k);
            o += k;
        } else { /* Python: the maximal invalid prefix becomes one U+FFFD */
            memcpy(out + o, "\xEF\xBF\xBD", 3);
            o += 3;
        }
        i += k;
    }
    out[o] = '\0';
    return o;
}

/* ------------------------------------------------------------------------ */
/* Properties                                                               */

void fs__mq_props_free(mq_props *p)
{
    if (!p)
        return;
    free(p->content_type);
    free(p->response_topic);
    free(p->correlation);
    for (size_t i = 0; i < p->count; i++) {
        free(p->names[i]);
        free(p->values[i]);
    }
    free(p->names);
    free(p->values);
    memset(p, 0, sizeof *p);
}

static int add_user(mq_props *p, char *name, char *value)
{
    for (size_t i = 0; i < p->count; i++) {
        if (strcmp(p->names[i], name) == 0) { /* last wins, first position kept */
            free(p->values[i]);
            p->values[i] = value;
            free(name);
            return FS_OK;
        }
    }
    if (p->count == p->cap) {
        size_t cap = p->cap ? p->cap * 2 : 4;
        char **n = realloc(p->names, cap * sizeof *n);
        if (n)
            p->names = n;
        char **v = n ? realloc(p->values, cap * sizeof *v) : NULL;
        if (!v) {
            free(name);
            free(value);
            return FS_ENOMEM;
        }
        p->values = v;
        p->cap = cap;
    }
    p->names[p->count] = name;
    p->values[p->count++] = value;
    return FS_OK;
}

int fs__mq_props_read(const mosquitto_property *props, mq_props *out)
{
    memset(out, 0, sizeof *out);
    for (const mosquitto_property *p = props; p; p = mosquitto_property_next(p)) {
        int id = mosquitto_property_identifier(p);
        bool ok = true;
        switch (id) {
        case MQTT_PROP_CONTENT_TYPE:
            free(out->content_type);
            out->content_type = NULL;
            ok = mosquitto_property_read_string(p, id, &out->content_type, false) != NULL;
            break;
        case MQTT_PROP_RESPONSE_TOPIC:
            free(out->response_topic);
            out->response_topic = NULL;
            ok = mosquitto_property_read_string(p, id, &out->response_topic, false) != NULL;
            break;
        case MQTT_PROP_CORRELATION_DATA:
            free(out->correlation);
            out->correlation = NULL;
            ok = mosquitto_property_read_binary(p, id, &out->correlation, &out->correlation_len,
                                                false) != NULL;
            break;
        case MQTT_PROP_MESSAGE_EXPIRY_INTERVAL:
            mosquitto_property_read_int32(p, id, &out->expiry_s, false);
            break;
        case MQTT_PROP_USER_PROPERTY: {
            char *name = NULL, *value = NULL;
            ok = mosquitto_property_read_string_pair(p, id, &name, &value, false) != NULL &&
                 add_user(out, name, value) == FS_OK;
            break;
        }
        default:
            break;
        }
        if (!ok) {
            fs__mq_props_free(out);
            return fs_adapter_error(FS_ENOMEM, "mqtt: out of memory reading message properties");
        }
    }
    return FS_OK;
}

static int check_len(const char *what, const char *s)
{
    if (strlen(s) > MQ_MAX_STR)
        return fs_adapter_error(FS_EINVAL, "mqtt: publish: %s longer than 65535 bytes", what);
    return FS_OK;
}

int fs__mq_props_build(const fs_envelope *e, uint32_t expiry_s, mosquitto_property **out)
{
    mosquitto_property *props = NULL;
    int rc = FS_OK, mrc = MOSQ_ERR_SUCCESS;
    *out = NULL;
    if (e->content_type && *e->content_type && !(rc = check_len("content type", e->content_type)))
        mrc = mosquitto_property_add_string(&props, MQTT_PROP_CONTENT_TYPE, e->content_type);
    if (!rc && !mrc && e->reply_to && *e->reply_to && !(rc = check_len("reply_to", e->reply_to)))
        mrc = mosquitto_property_add_string(&props, MQTT_PROP_RESPONSE_TOPIC, e->reply_to);
    if (!rc && !mrc && e->correlation_id && *e->correlation_id &&
        !(rc = check_len("correlation_id", e->correlation_id)))
        mrc = mosquitto_property_add_binary(&props, MQTT_PROP_CORRELATION_DATA, e->correlation_id,
                                            (uint16_t)strlen(e->correlation_id));
    for (size_t i = 0; !rc && !mrc && i < e->header_count; i++) {
        const fs_header *h = &e->headers[i];
        if (!h->name || !h->value) {
            rc = fs_adapter_error(FS_EINVAL, "mqtt: publish: header %zu has a NULL name or value",
                                  i);
            break;
        }
        if ((rc = check_len("a header", h->name)))
            break;
        if (h->value_len) { /* counted bytes: a user property is a string, without NUL */
            if (memchr(h->value, '\0', h->value_len)) {
                rc = fs_adapter_error(FS_EINVAL,
                                      "mqtt: publish: header %s holds a NUL byte (MQTT user "
                                      "properties are strings)",
                                      h->name);
                break;
            }
            if (h->value_len > MQ_MAX_STR) {
                rc = fs_adapter_error(FS_EINVAL, "mqtt: publish: a header longer than 65535 bytes");
                break;
            }
            char *v = strndup(h->value, h->value_len);
            if (!v) {
                rc = fs_adapter_error(FS_ENOMEM, "mqtt: out of memory");
                break;
            }
            mrc = mosquitto_property_add_string_pair(&props, MQTT_PROP_USER_PROPERTY, h->name, v);
            free(v);
        } else if (!(rc = check_len("a header", h->value))) {
            mrc = mosquitto_property_add_string_pair(&props, MQTT_PROP_USER_PROPERTY, h->name,
                                                     h->value);
        }
    }
    if (!rc && !mrc && expiry_s)
        mrc = mosquitto_property_add_int32(&props, MQTT_PROP_MESSAGE_EXPIRY_INTERVAL, expiry_s);
    if (!rc && mrc)
        rc = mrc == MOSQ_ERR_NOMEM
                 ? fs_adapter_error(FS_ENOMEM, "mqtt: out of memory building properties")
                 : fs_adapter_error(FS_EINVAL, "mqtt: publish: invalid property (%s)",
                                    mosquitto_strerror(mrc));
    if (rc) {
        mosquitto_property_free_all(&props);
        return rc;
    }
    *out = props;
    return FS_OK;
}
