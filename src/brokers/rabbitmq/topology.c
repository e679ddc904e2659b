/*
 * Queues, exchanges and bindings declared as FastStream's RabbitQueue and
 * RabbitExchange declare them: a deep copy kept per subscription (to
 * declare again after a reconnection) and the declaring itself (owner).
 */
#include "internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const char *fs_rabbitmq_exchange_type_name(fs_rabbitmq_exchange_type type)
{
    switch (type) {
    case FS_RABBITMQ_DIRECT:
        return "direct";
    case FS_RABBITMQ_FANOUT:
        return "fanout";
    case FS_RABBITMQ_TOPIC:
        return "topic";
    case FS_RABBITMQ_HEADERS:
        return "headers";
    }
    return NULL;
}

static const char *keep(rtopo *t, const char *s, int *rc)
{
    if (!s || *rc)
        return NULL;
    char *d = strdup(s);
    if (!d) {
        *rc = FS_ENOMEM;
        return NULL;
    }
    t->strs[t->nstr++] = d;
    return d;
}

static int check_args(const char *what, const fs_rabbitmq_arg *a, size_t n)
{
    if (n && !a)
        return fs_adapter_error(FS_EINVAL, "rabbitmq: %s: NULL arguments with count %zu", what, n);
    for (size_t i = 0; i < n; i++) {
        if (!a[i].key || !*a[i].key)
            return fs_adapter_error(FS_EINVAL, "rabbitmq: %s: argument %zu has no key", what, i);
        if (a[i].type < FS_RABBITMQ_ARG_STRING || a[i].type > FS_RABBITMQ_ARG_BOOL)
            return fs_adapter_error(FS_EINVAL, "rabbitmq: %s: argument '%s' has an unknown type %d",
                                    what, a[i].key, (int)a[i].type);
        if (a[i].type == FS_RABBITMQ_ARG_STRING && !a[i].str)
            return fs_adapter_error(FS_EINVAL, "rabbitmq: %s: argument '%s' has a NULL string",
                                    what, a[i].key);
    }
    return FS_OK;
}

static size_t strings_of(const fs_rabbitmq_arg *a, size_t n)
{
    size_t k = 0;
    for (size_t i = 0; i < n; i++)
        k += 1 + (a[i].type == FS_RABBITMQ_ARG_STRING);
    return k;
}

static fs_rabbitmq_arg *copy_args(rtopo *t, fs_rabbitmq_arg *dst, const fs_rabbitmq_arg *a,
                                  size_t n, int *rc)
{
    for (size_t i = 0; i < n; i++) {
        dst[i] = a[i];
        dst[i].key = keep(t, a[i].key, rc);
        dst[i].str = a[i].type == FS_RABBITMQ_ARG_STRING ? keep(t, a[i].str, rc) : NULL;
    }
    return n ? dst : NULL;
}

int fs__rmq_topo_copy(rtopo *t, const fs_rabbitmq_exchange *ex, const fs_rabbitmq_queue *q,
                      const char *default_queue)
{
    memset(t, 0, sizeof *t);
    t->has_ex = ex && ex->name && *ex->name;
    t->has_q = q != NULL;
    int rc;
    if (t->has_ex) {
        if (!fs_rabbitmq_exchange_type_name(ex->type))
            return fs_adapter_error(FS_EINVAL, "rabbitmq: exchange '%s': unknown type %d", ex->name,
                                    (int)ex->type);
        if ((rc = check_args("exchange arguments", ex->arguments, ex->argument_count)))
            return rc;
    }
    if (t->has_q) {
        if ((rc = check_args("queue arguments", q->arguments, q->argument_count)) ||
            (rc = check_args("binding arguments", q->bind_arguments, q->bind_argument_count)))
            return rc;
    }
    size_t nargs = (t->has_ex ? ex->argument_count : 0) +
                   (t->has_q ? q->argument_count + q->bind_argument_count : 0);
    size_t nstr = 4 + (t->has_ex ? strings_of(ex->arguments, ex->argument_count) : 0) +
                  (t->has_q ? strings_of(q->arguments, q->argument_count) +
                                  strings_of(q->bind_arguments, q->bind_argument_count)
                            : 0);
    t->strs = calloc(nstr, sizeof *t->strs);
    t->args = nargs ? calloc(nargs, sizeof *t->args) : NULL;
    if (!t->strs || (nargs && !t->args)) {
        fs__rmq_topo_free(t);
        return fs_adapter_error(FS_ENOMEM, "rabbitmq: out of memory");
    }
    rc = FS_OK;
    fs_rabbitmq_arg *a = t->args;
    if (t->has_ex) {
        t->ex = *ex;
        t->ex.name = keep(t, ex->name, &rc);
        t->ex.arguments = copy_args(t, a, ex->arguments, ex->argument_count, &rc);
        a += ex->argument_count;
    }
    if (t->has_q) {
        t->q = *q;
        t->q.name = keep(t, q->name && *q->name ? q->name : default_queue, &rc);
        t->q.routing_key = keep(t, q->routing_key, &rc);
        t->q.arguments = copy_args(t, a, q->arguments, q->argument_count, &rc);
        a += q->argument_count;
        t->q.bind_arguments = copy_args(t, a, q->bind_arguments, q->bind_argument_count, &rc);
    }
    if (rc) {
        fs__rmq_topo_free(t);
        return fs_adapter_error(FS_ENOMEM, "rabbitmq: out of memory");
    }
    return FS_OK;
}

void fs__rmq_topo_free(rtopo *t)
{
    for (size_t i = 0; i < t->nstr; i++)
        free(t->strs[i]);
    free(t->strs);
    free(t->args);
    memset(t, 0, sizeof *t);
}

/* rabbitmq-c's table for args (entries in `e`, n of them). */
static amqp_table_t table_of(const fs_rabbitmq_arg *a, size_t n, amqp_table_entry_t *e)
{
    for (size_t i = 0; i < n; i++) {
        e[i].key = amqp_cstring_bytes(a[i].key);
        switch (a[i].type) {
        case FS_RABBITMQ_ARG_STRING:
            e[i].value.kind = AMQP_FIELD_KIND_UTF8;
            e[i].value.value.bytes = amqp_cstring_bytes(a[i].str);
            break;
        case FS_RABBITMQ_ARG_INT:
            e[i].value.kind = AMQP_FIELD_KIND_I64;
            e[i].value.value.i64 = a[i].num;
            break;
        case FS_RABBITMQ_ARG_BOOL:
            e[i].value.kind = AMQP_FIELD_KIND_BOOLEAN;
            e[i].value.value.boolean = a[i].num != 0;
            break;
        }
    }
    amqp_table_t t = {(int)n, n ? e : NULL};
    return t;
}

#define MAX_ARGS 64

int fs__rmq_topo_declare(rconn *c, amqp_channel_t ch, const rtopo *t, char *err, size_t n)
{
    amqp_table_entry_t e[MAX_ARGS];
    char what[300];
    int rc;
    if (t->has_ex && !t->ex.no_declare) {
        const fs_rabbitmq_exchange *x = &t->ex;
        if (x->argument_count > MAX_ARGS) {
            snprintf(err, n, "rabbitmq: exchange '%s': more than %d arguments", x->name, MAX_ARGS);
            return FS_EINVAL;
        }
        amqp_exchange_declare(c->st, ch, amqp_cstring_bytes(x->name),
                              amqp_cstring_bytes(fs_rabbitmq_exchange_type_name(x->type)),
                              x->passive, x->durable, x->auto_delete, x->internal,
                              table_of(x->arguments, x->argument_count, e));
        snprintf(what, sizeof what, "%s exchange '%s' (%s)", x->passive ? "checking" : "declaring",
                 x->name, fs_rabbitmq_exchange_type_name(x->type));
        if ((rc = fs__rmq_rpc_error(c, ch, what, err, n)))
            return rc;
    }
    if (!t->has_q)
        return FS_OK;
    const fs_rabbitmq_queue *q = &t->q;
    if (!q->no_declare) {
        if (q->argument_count > MAX_ARGS || q->bind_argument_count > MAX_ARGS) {
            snprintf(err, n, "rabbitmq: queue '%s': more than %d arguments", q->name, MAX_ARGS);
            return FS_EINVAL;
        }
        amqp_queue_declare(c->st, ch, amqp_cstring_bytes(q->name), q->passive, q->durable,
                           q->exclusive, q->auto_delete,
                           table_of(q->arguments, q->argument_count, e));
        snprintf(what, sizeof what, "%s queue '%s'", q->passive ? "checking" : "declaring",
                 q->name);
        if ((rc = fs__rmq_rpc_error(c, ch, what, err, n)))
            return rc;
    }
    if (t->has_ex) {
        const char *key = q->routing_key ? q->routing_key : q->name;
        amqp_queue_bind(c->st, ch, amqp_cstring_bytes(q->name), amqp_cstring_bytes(t->ex.name),
                        amqp_cstring_bytes(key),
                        table_of(q->bind_arguments, q->bind_argument_count, e));
        snprintf(what, sizeof what, "binding queue '%s' to exchange '%s' with key '%s'", q->name,
                 t->ex.name, key);
        if ((rc = fs__rmq_rpc_error(c, ch, what, err, n)))
            return rc;
    }
    return FS_OK;
}

int fs__rmq_topo_depth(rconn *c, amqp_channel_t ch, const char *queue, uint64_t *msgs,
                       uint64_t *consumers, char *err, size_t n)
{
    amqp_queue_declare_ok_t *ok =
        amqp_queue_declare(c->st, ch, amqp_cstring_bytes(queue), 1, 0, 0, 0, amqp_empty_table);
    char what[300];
    snprintf(what, sizeof what, "checking queue '%s'", queue);
    int rc = fs__rmq_rpc_error(c, ch, what, err, n);
    if (rc)
        return rc;
    *msgs = ok ? ok->message_count : 0;
    if (consumers)
        *consumers = ok ? ok->consumer_count : 0;
    return FS_OK;
}
