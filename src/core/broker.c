/*
 * Brokers: creation (from an adapter or a URL), the scheme registry,
 * lifecycle, subscribers and the middleware chain.
 */
#include "core/core.h"

#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define FS__DEFAULT_GRACEFUL_MS 10000
#define FS__DEFAULT_REDELIVERY_MS 100
#define FS__DEFAULT_REDELIVERY_MAX_MS 10000

void fs__spec_outputs_init(const fs_broker *b, fs_subscribe_spec *spec)
{
    spec->no_ack = (b->ops->caps & FS_CAP_NO_ACK) != 0;
    spec->presettled = FS_SETTLE_NONE;
    for (int i = 0; i < 4; i++)
        spec->settle_as[i] = (fs_settle_state)i;
    spec->ordered_settle = (b->ops->caps & FS_CAP_ORDERED_SETTLE) != 0;
}

int fs__spec_outputs_check(const fs_broker *b, const fs_subscribe_spec *spec)
{
    FS_CHECK_ARG((unsigned)spec->presettled <= FS_SETTLE_REJECTED,
                 "adapter %s: invalid presettled state %d", b->ops->name, (int)spec->presettled);
    for (int i = 0; i < 4; i++)
        FS_CHECK_ARG((unsigned)spec->settle_as[i] <= FS_SETTLE_REJECTED,
                     "adapter %s: invalid settle_as[%d] %d", b->ops->name, i,
                     (int)spec->settle_as[i]);
    return FS_OK;
}

/* ------------------------------------------------------------------------ */
/* URL schemes                                                              */

typedef struct scheme_entry {
    char name[32];
    fs_broker_factory factory;
} scheme_entry;

static pthread_mutex_t schemes_lock = PTHREAD_MUTEX_INITIALIZER;
static scheme_entry schemes[32];
static size_t scheme_count;

static bool scheme_name_valid(const char *s)
{
    size_t n = strlen(s);
    if (n == 0 || n >= sizeof schemes[0].name)
        return false;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
                  (i > 0 && ((c >= '0' && c <= '9') || c == '+' || c == '-' || c == '.'));
        if (!ok)
            return false;
    }
    return true;
}

int fs_broker_register_scheme(const char *scheme, fs_broker_factory factory)
{
    FS_CHECK_ARG(scheme, "fs_broker_register_scheme: scheme is NULL");
    FS_CHECK_ARG(factory, "fs_broker_register_scheme: factory is NULL");
    FS_CHECK_ARG(scheme_name_valid(scheme),
                 "fs_broker_register_scheme: invalid scheme '%s' (letters, digits, + - .; "
                 "without \"://\")",
                 scheme);
    int rc = FS_OK;
    pthread_mutex_lock(&schemes_lock);
    size_t i;
    for (i = 0; i < scheme_count; i++)
        if (strcasecmp(schemes[i].name, scheme) == 0)
            break;
    if (i < scheme_count) {
        if (schemes[i].factory != factory)
            rc = fs__error(FS_ECONFLICT, "URL scheme '%s' is already registered by another adapter",
                           scheme);
    } else if (scheme_count == sizeof schemes / sizeof schemes[0]) {
        rc = fs__error(FS_ENOMEM, "too many URL schemes registered");
    } else {
        strcpy(schemes[scheme_count].name, scheme);
        schemes[scheme_count].factory = factory;
        scheme_count++;
    }
    pthread_mutex_unlock(&schemes_lock);
    return rc;
}

static fs_broker_factory scheme_find(const char *scheme)
{
    fs_broker_factory f = NULL;
    pthread_mutex_lock(&schemes_lock);
    for (size_t i = 0; i < scheme_count; i++)
        if (strcasecmp(schemes[i].name, scheme) == 0)
            f = schemes[i].factory;
    pthread_mutex_unlock(&schemes_lock);
    return f;
}

bool fs_broker_scheme_registered(const char *scheme)
{
    if (!scheme)
        return false;
    return scheme_find(scheme) != NULL;
}

int fs_broker_new(const char *url, const fs_broker_options *opts, fs_broker **out)
{
    FS_CHECK_ARG(out, "fs_broker_new: out is NULL");
    *out = NULL;
    FS_CHECK_ARG(url, "fs_broker_new: url is NULL");
    const char *sep = strstr(url, "://");
    if (!sep || sep == url || (size_t)(sep - url) >= 32)
        return fs__error(FS_EINVAL,
                         "malformed broker URL '%s': expected SCHEME://... (e.g. memory://, "
                         "redis://127.0.0.1:6379)",
                         url);
    char scheme[32];
    memcpy(scheme, url, (size_t)(sep - url));
    scheme[sep - url] = '\0';
    if (!scheme_name_valid(scheme))
        return fs__error(FS_EINVAL, "malformed broker URL '%s': invalid scheme '%s'", url, scheme);
    fs_broker_options o = FS_BROKER_OPTIONS_INIT;
    if (opts)
        o = *opts;
    fs_broker_factory f = scheme_find(scheme);
    if (!f)
        return fs__error(FS_ENOTFOUND,
                         "no broker adapter registered for URL scheme '%s' (link its library, "
                         "e.g. libfaststream-%s, or call fs_%s_register())",
                         scheme, scheme, scheme);
    int rc = f(url, &o, out);
    if (rc >= 0 && !*out)
        rc = fs__error(FS_EINVAL, "the adapter for '%s' returned no broker", scheme);
    return rc < 0 ? rc : FS_OK;
}

/* ------------------------------------------------------------------------ */
/* Creation                                                                 */

static bool policy_valid(fs_ack_policy p)
{
    return (unsigned)p <= (unsigned)FS_ACK_POLICY_MANUAL;
}

int fs_broker_create(const fs_broker_ops *ops, void *impl, const char *url,
                     const fs_broker_options *opts, fs_broker **out)
{
    FS_CHECK_ARG(out, "fs_broker_create: out is NULL");
    *out = NULL;
    FS_CHECK_ARG(ops, "fs_broker_create: ops is NULL");
    FS_CHECK_ARG(ops->abi_version == FS_ADAPTER_ABI_VERSION,
                 "fs_broker_create: adapter '%s' was built for adapter interface version %u; this "
                 "library implements version %d (rebuild the adapter against its adapter.h)",
                 ops->abi_version >= 2 && ops->name ? ops->name : "?", (unsigned)ops->abi_version,
                 FS_ADAPTER_ABI_VERSION);
    FS_CHECK_ARG(ops->struct_size >= offsetof(fs_broker_ops, publish) + sizeof ops->publish,
                 "fs_broker_create: adapter ops table too small (struct_size %u)",
                 (unsigned)ops->struct_size);
    FS_CHECK_ARG(ops->name && *ops->name, "fs_broker_create: ops->name is empty");
    FS_CHECK_ARG(ops->subscribe && ops->fetch && ops->publish,
                 "fs_broker_create: adapter '%s' lacks subscribe, fetch or publish", ops->name);
    FS_CHECK_ARG(ops->default_ack_policy != FS_ACK_POLICY_DEFAULT &&
                     policy_valid(ops->default_ack_policy),
                 "fs_broker_create: adapter '%s' has no valid default ack policy", ops->name);
    FS_CHECK_ARG(!(ops->caps & FS_CAP_NATIVE_REQUEST) || ops->request,
                 "fs_broker_create: adapter '%s' says NATIVE_REQUEST but has no request op",
                 ops->name);
    fs_broker_options o = FS_BROKER_OPTIONS_INIT;
    if (opts)
        o = *opts;
    FS_CHECK_ARG(policy_valid(o.ack_policy), "fs_broker_create: invalid ack policy %d",
                 (int)o.ack_policy);
    if (o.graceful_timeout_ms == 0)
        o.graceful_timeout_ms = FS__DEFAULT_GRACEFUL_MS;

    fs_broker *b = calloc(1, sizeof *b);
    if (!b)
        return fs__error(FS_ENOMEM, "out of memory creating a broker");
    b->url = fs_kit_strdup(url ? url : "");
    if (!b->url) {
        free(b);
        return fs__error(FS_ENOMEM, "out of memory creating a broker");
    }
    b->ops = ops;
    if (ops->struct_size < sizeof *ops) { /* an older, shorter table: later ops are NULL */
        memcpy(&b->ops_copy, ops, ops->struct_size);
        b->ops = &b->ops_copy;
    }
    b->impl = impl;
    b->opts = o;
    b->default_policy =
        o.ack_policy != FS_ACK_POLICY_DEFAULT ? o.ack_policy : ops->default_ack_policy;
    pthread_mutex_init(&b->lock, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&b->cond, &ca);
    pthread_cond_init(&b->req_cond, &ca);
    pthread_condattr_destroy(&ca);
    pthread_mutex_init(&b->req_lock, NULL);
    *out = b;
    return FS_OK;
}

void *fs_broker_impl(const fs_broker *broker)
{
    return broker ? broker->impl : NULL;
}

const fs_broker_ops *fs_broker_get_ops(const fs_broker *broker)
{
    return broker ? broker->ops : NULL;
}

const char *fs_broker_name(const fs_broker *broker)
{
    return broker ? broker->ops->name : NULL;
}

const char *fs_broker_url(const fs_broker *broker)
{
    return broker ? broker->url : NULL;
}

bool fs_broker_running(const fs_broker *broker)
{
    return broker && atomic_load(&((fs_broker *)broker)->running);
}

uint64_t fs_broker_handled(const fs_broker *broker)
{
    if (!broker)
        return 0;
    fs_broker *b = (fs_broker *)broker;
    uint64_t n = 0;
    pthread_mutex_lock(&b->lock);
    for (struct fs_subscriber *s = b->subs; s; s = s->next)
        n += fs_subscriber_handled(s);
    pthread_mutex_unlock(&b->lock);
    return n;
}

/* ------------------------------------------------------------------------ */
/* Middleware                                                               */

int fs_broker_add_middleware(fs_broker *b, const fs_middleware *mw)
{
    FS_CHECK_ARG(b, "fs_broker_add_middleware: broker is NULL");
    FS_CHECK_ARG(mw, "fs_broker_add_middleware: middleware is NULL");
    FS_CHECK_ARG(mw->consume || mw->publish,
                 "fs_broker_add_middleware: middleware '%s' has neither a consume nor a publish "
                 "hook",
                 mw->name ? mw->name : "(unnamed)");
    FS_CHECK_ARG(mw->scratch_size <= FS_MIDDLEWARE_SCRATCH_MAX,
                 "fs_broker_add_middleware: scratch_size %zu exceeds %d bytes", mw->scratch_size,
                 FS_MIDDLEWARE_SCRATCH_MAX);
    pthread_mutex_lock(&b->lock);
    int rc = FS_OK;
    if (b->frozen) {
        rc = fs__error(FS_ESTATE, "fs_broker_add_middleware: the broker was already started; add "
                                  "middleware before fs_broker_start");
        goto out;
    }
    for (size_t i = 0; mw->unique_key && i < b->mw_count; i++) {
        if (b->mws[i].unique_key && strcmp(b->mws[i].unique_key, mw->unique_key) == 0) {
            rc = fs__error(FS_ECONFLICT,
                           "fs_broker_add_middleware: broker %s already has a %s middleware (one "
                           "per broker: a second would count every message twice)",
                           b->ops->name, mw->unique_key);
            goto out;
        }
    }
    fs__mw *mws = realloc(b->mws, (b->mw_count + 1) * sizeof *mws);
    size_t *cc = realloc(b->consume_chain, (b->mw_count + 1) * sizeof *cc);
    if (cc)
        b->consume_chain = cc;
    size_t *pc = realloc(b->publish_chain, (b->mw_count + 1) * sizeof *pc);
    if (pc)
        b->publish_chain = pc;
    if (mws)
        b->mws = mws;
    if (!mws || !cc || !pc) {
        rc = fs__error(FS_ENOMEM, "out of memory adding a middleware");
        goto out;
    }
    fs__mw *e = &b->mws[b->mw_count];
    memset(e, 0, sizeof *e);
    e->name = fs_kit_strdup(mw->name ? mw->name : "middleware");
    e->unique_key = mw->unique_key ? fs_kit_strdup(mw->unique_key) : NULL;
    if (!e->name || (mw->unique_key && !e->unique_key)) {
        free(e->name);
        free(e->unique_key);
        rc = fs__error(FS_ENOMEM, "out of memory adding a middleware");
        goto out;
    }
    e->consume = mw->consume;
    e->publish = mw->publish;
    e->publish_result = mw->publish_result;
    e->scratch_size = mw->scratch_size;
    e->scratch_off = b->scratch_total;
    b->scratch_total += (mw->scratch_size + 15u) & ~(size_t)15u;
    e->state = mw->state;
    e->free_state = mw->free_state;
    if (e->consume)
        b->consume_chain[b->consume_count++] = b->mw_count;
    if (e->publish)
        b->publish_chain[b->publish_count++] = b->mw_count;
    b->mw_count++;
out:
    pthread_mutex_unlock(&b->lock);
    return rc;
}

size_t fs_broker_middleware_count(const fs_broker *b)
{
    return b ? b->mw_count : 0;
}

/* ------------------------------------------------------------------------ */
/* Subscribers                                                              */

static void subscriber_free(struct fs_subscriber *sub)
{
    fs_broker *b = sub->broker;
    if (sub->adapter_sub && b->ops->unsubscribe)
        b->ops->unsubscribe(b->impl, sub->adapter_sub);
    if (sub->free_user)
        sub->free_user(sub->user);
    fs__subscriber_free_frames(sub);
    pthread_mutex_destroy(&sub->fetch_mu);
    free(sub->source);
    free(sub->name);
    free(sub);
}

uint64_t fs__label_id_new(void)
{
    static atomic_uint_fast64_t next = 1;
    return atomic_fetch_add_explicit(&next, 1, memory_order_relaxed);
}

uint64_t fs_adapter_label_id(void)
{
    return fs__label_id_new();
}

int fs_subscribe(fs_broker *b, const char *source, fs_handler_fn handler, void *user,
                 const fs_subscriber_options *opts, fs_subscriber **out)
{
    if (out)
        *out = NULL;
    FS_CHECK_ARG(b, "fs_subscribe: broker is NULL");
    FS_CHECK_ARG(source && *source, "fs_subscribe: source is NULL or empty");
    FS_CHECK_ARG(handler, "fs_subscribe: handler is NULL (source '%s')", source);
    fs_subscriber_options o = FS_SUBSCRIBER_OPTIONS_INIT;
    if (opts)
        o = *opts;
    FS_CHECK_ARG(policy_valid(o.ack_policy), "fs_subscribe: invalid ack policy %d for '%s'",
                 (int)o.ack_policy, source);
    if (o.concurrency == 0)
        o.concurrency = 1;
    FS_CHECK_ARG(o.concurrency <= FS__MAX_CONCURRENCY,
                 "fs_subscribe: concurrency %u for '%s' exceeds %d", o.concurrency, source,
                 FS__MAX_CONCURRENCY);
    FS_CHECK_ARG(o.batch_size <= 1000000, "fs_subscribe: batch_size %zu for '%s' is too large",
                 o.batch_size, source);
    if (o.batch_size && o.batch_timeout_ms == 0)
        o.batch_timeout_ms = 100;

    if (o.redelivery.delay_ms == 0)
        o.redelivery.delay_ms = FS__DEFAULT_REDELIVERY_MS;
    if (o.redelivery.max_delay_ms == 0)
        o.redelivery.max_delay_ms = FS__DEFAULT_REDELIVERY_MAX_MS;
    if (o.redelivery.max_delay_ms < o.redelivery.delay_ms)
        o.redelivery.max_delay_ms = o.redelivery.delay_ms;

    struct fs_subscriber *sub = calloc(1, sizeof *sub);
    if (!sub)
        return fs__error(FS_ENOMEM, "out of memory creating a subscriber");
    pthread_mutex_init(&sub->fetch_mu, NULL);
    sub->broker = b;
    sub->source = fs_kit_strdup(source);
    sub->name = fs_kit_strdup(o.name && *o.name ? o.name : source);
    if (!sub->source || !sub->name) {
        subscriber_free(sub);
        return fs__error(FS_ENOMEM, "out of memory creating a subscriber");
    }
    sub->handler = handler;
    sub->user = user;
    sub->policy = o.ack_policy != FS_ACK_POLICY_DEFAULT ? o.ack_policy : b->default_policy;
    sub->concurrency = o.concurrency;
    sub->batch_size = o.batch_size;
    sub->batch_timeout_ms = o.batch_timeout_ms;
    sub->redelivery = o.redelivery;

    fs_subscribe_spec spec;
    memset(&spec, 0, sizeof spec);
    spec.source = sub->source;
    spec.broker_options = o.broker_options;
    spec.ack_policy = sub->policy;
    spec.concurrency = sub->concurrency;
    spec.batch_size = sub->batch_size;
    spec.batch_timeout_ms = sub->batch_timeout_ms;
    spec.reply_inbox = false;
    spec.subscriber = sub;
    spec.redelivery = o.redelivery;
    fs__spec_outputs_init(b, &spec);

    pthread_mutex_lock(&b->lock);
    int rc = FS_OK;
    if (b->closed) {
        rc = fs__error(FS_ECLOSED, "fs_subscribe: broker %s is closed", b->ops->name);
        goto fail;
    }
    rc = b->ops->subscribe(b->impl, &spec, &sub->adapter_sub);
    if (rc < 0)
        goto fail;
    rc = fs__spec_outputs_check(b, &spec);
    if (rc < 0) {
        if (b->ops->unsubscribe)
            b->ops->unsubscribe(b->impl, sub->adapter_sub);
        sub->adapter_sub = NULL;
        goto fail;
    }
    sub->no_ack = spec.no_ack;
    sub->presettled = spec.presettled;
    if (spec.fixed_source)
        sub->handler_id = fs__label_id_new();
    memcpy(sub->settle_as, spec.settle_as, sizeof sub->settle_as);
    sub->ordered = spec.ordered_settle;
    if (sub->policy == FS_ACK_POLICY_NACK_ON_ERROR && !sub->no_ack && !(b->ops->caps & FS_CAP_NACK))
        fs__log(FS_LOG_WARN, "core",
                "subscriber %s: broker %s has no nack: NACK_ON_ERROR releases a failed message "
                "unsettled (the status still says what the handler did)",
                sub->name, b->ops->name);
    if (atomic_load(&b->running)) {
        if (b->ops->subscription_start) {
            rc = b->ops->subscription_start(b->impl, sub->adapter_sub);
            if (rc < 0)
                goto fail;
        }
        rc = fs__subscriber_start_workers(sub);
        if (rc < 0) {
            fs__subscriber_signal_stop(sub);
            fs__subscriber_join(sub);
            goto fail;
        }
    }
    sub->next = b->subs;
    b->subs = sub;
    pthread_mutex_unlock(&b->lock);
    sub->free_user = o.free_user;
    if (out)
        *out = sub;
    return FS_OK;
fail:
    pthread_mutex_unlock(&b->lock);
    subscriber_free(sub);
    return rc;
}

/* ------------------------------------------------------------------------ */
/* Lifecycle                                                                */

int fs__broker_ensure_connected(fs_broker *b)
{
    if (atomic_load_explicit(&b->connected, memory_order_acquire))
        return FS_OK;
    return fs_broker_connect(b);
}

static int connect_locked(fs_broker *b)
{
    if (b->closed)
        return fs__error(FS_ECLOSED, "broker %s (%s) is closed", b->ops->name, b->url);
    if (atomic_load(&b->connected))
        return FS_OK;
    if (b->ops->connect) {
        int rc = b->ops->connect(b->impl);
        if (rc < 0)
            return rc;
    }
    atomic_store_explicit(&b->connected, true, memory_order_release);
    fs__log(FS_LOG_INFO, "core", "broker %s connected (%s)", b->ops->name, b->url);
    return FS_OK;
}

int fs_broker_connect(fs_broker *b)
{
    FS_CHECK_ARG(b, "fs_broker_connect: broker is NULL");
    pthread_mutex_lock(&b->lock);
    int rc = connect_locked(b);
    pthread_mutex_unlock(&b->lock);
    return rc;
}

/* Wait (lock held) until no worker is alive, up to timeout_ms (<0: forever). */
static bool wait_workers(fs_broker *b, int timeout_ms)
{
    struct timespec deadline = fs_kit_deadline_ts(timeout_ms);
    while (b->live_workers > 0) {
        if (timeout_ms < 0) {
            pthread_cond_wait(&b->cond, &b->lock);
        } else if (pthread_cond_timedwait(&b->cond, &b->lock, &deadline) != 0 &&
                   b->live_workers > 0) {
            return false;
        }
    }
    return true;
}

static void join_all(fs_broker *b)
{
    for (struct fs_subscriber *s = b->subs; s; s = s->next)
        fs__subscriber_join(s);
}

/* Lock held, no worker alive: join them and tell the adapter once. */
static void finish_stop(fs_broker *b)
{
    join_all(b);
    if (b->stopped_pending && b->ops->stopped)
        b->ops->stopped(b->impl);
    b->stopped_pending = false;
}

int fs_broker_start(fs_broker *b)
{
    FS_CHECK_ARG(b, "fs_broker_start: broker is NULL");
    pthread_mutex_lock(&b->lock);
    int rc = FS_OK;
    if (atomic_load(&b->running)) {
        rc = fs__error(FS_ESTATE, "broker %s is already running", b->ops->name);
        goto out;
    }
    if (b->live_workers > 0) {
        rc = fs__error(FS_ESTATE, "broker %s: handlers of the previous run are still running",
                       b->ops->name);
        goto out;
    }
    finish_stop(b);
    rc = connect_locked(b);
    if (rc < 0)
        goto out;
    b->frozen = true;
    if (b->ops->start) {
        rc = b->ops->start(b->impl);
        if (rc < 0)
            goto out;
    }
    for (struct fs_subscriber *s = b->subs; s; s = s->next) {
        rc = fs__subscriber_start_workers(s);
        if (rc < 0) {
            for (struct fs_subscriber *t = b->subs; t; t = t->next)
                fs__subscriber_signal_stop(t);
            if (b->ops->stop)
                b->ops->stop(b->impl);
            wait_workers(b, -1);
            join_all(b);
            goto out;
        }
    }
    atomic_store(&b->running, true);
    fs__log(FS_LOG_INFO, "core", "broker %s started", b->ops->name);
out:
    pthread_mutex_unlock(&b->lock);
    return rc;
}

static int stop_locked(fs_broker *b, int timeout_ms)
{
    if (!atomic_load(&b->running))
        return FS_OK;
    atomic_store(&b->running, false);
    for (struct fs_subscriber *s = b->subs; s; s = s->next)
        fs__subscriber_signal_stop(s);
    if (b->ops->stop)
        b->ops->stop(b->impl);
    b->stopped_pending = true;
    if (!wait_workers(b, timeout_ms)) {
        fs__log(FS_LOG_WARN, "core",
                "broker %s: %u worker(s) still busy after %d ms; they finish in the background",
                b->ops->name, b->live_workers, timeout_ms);
        return fs__error(FS_ETIMEDOUT, "broker %s: handlers still running after %d ms",
                         b->ops->name, timeout_ms);
    }
    finish_stop(b);
    fs__log(FS_LOG_INFO, "core", "broker %s stopped", b->ops->name);
    return FS_OK;
}

/* Stopping a broker from one of its own handlers would wait for itself. */
static bool in_own_handler(const fs_broker *b)
{
    return fs__current_frame && fs__current_frame->broker == b;
}

int fs_broker_stop(fs_broker *b)
{
    FS_CHECK_ARG(b, "fs_broker_stop: broker is NULL");
    if (in_own_handler(b))
        return fs__error(FS_ESTATE, "fs_broker_stop called from a handler of the same broker "
                                    "(it would wait for itself); use fs_app_stop");
    pthread_mutex_lock(&b->lock);
    int rc = stop_locked(b, b->opts.graceful_timeout_ms);
    pthread_mutex_unlock(&b->lock);
    return rc;
}

int fs__broker_stop_timeout(fs_broker *b, int timeout_ms)
{
    pthread_mutex_lock(&b->lock);
    int rc = stop_locked(b, timeout_ms);
    pthread_mutex_unlock(&b->lock);
    return rc;
}

int fs_broker_close(fs_broker *b)
{
    FS_CHECK_ARG(b, "fs_broker_close: broker is NULL");
    if (in_own_handler(b))
        return fs__error(FS_ESTATE, "fs_broker_close called from a handler of the same broker");
    pthread_mutex_lock(&b->lock);
    int rc = stop_locked(b, b->opts.graceful_timeout_ms);
    if (!b->closed) {
        /* Handlers that outlived the graceful timeout may still settle: wait for them. */
        wait_workers(b, -1);
        finish_stop(b);
        b->closed = true;
        bool was_connected = atomic_exchange(&b->connected, false);
        pthread_mutex_unlock(&b->lock);
        fs__request_shutdown(b);
        if (was_connected && b->ops->close)
            b->ops->close(b->impl);
        if (was_connected)
            fs__log(FS_LOG_INFO, "core", "broker %s closed", b->ops->name);
        return rc;
    }
    pthread_mutex_unlock(&b->lock);
    return rc;
}

int fs_broker_ping(fs_broker *b, int timeout_ms)
{
    FS_CHECK_ARG(b, "fs_broker_ping: broker is NULL");
    if (!atomic_load(&b->connected))
        return fs__error(FS_ECLOSED, "broker %s is not connected", b->ops->name);
    if (!b->ops->ping)
        return FS_OK;
    return b->ops->ping(b->impl, timeout_ms);
}

int fs_broker_foreach_subscriber(fs_broker *b, void (*fn)(fs_subscriber *sub, void *user),
                                 void *user)
{
    FS_CHECK_ARG(b && fn, "fs_broker_foreach_subscriber: broker and fn are required");
    pthread_mutex_lock(&b->lock);
    for (struct fs_subscriber *s = b->subs; s; s = s->next)
        fn(s, user);
    pthread_mutex_unlock(&b->lock);
    return FS_OK;
}

void fs_broker_free(fs_broker *b)
{
    if (!b)
        return;
    if (in_own_handler(b)) {
        fs__log(FS_LOG_ERROR, "core", "fs_broker_free called from a handler of broker %s: ignored",
                b->ops->name);
        return;
    }
    fs_broker_close(b);
    fs__request_shutdown(b);
    pthread_mutex_lock(&b->lock);
    wait_workers(b, -1);
    finish_stop(b);
    struct fs_subscriber *s = b->subs;
    b->subs = NULL;
    struct fs_publisher *p = b->pubs;
    b->pubs = NULL;
    pthread_mutex_unlock(&b->lock);
    while (s) {
        struct fs_subscriber *next = s->next;
        subscriber_free(s);
        s = next;
    }
    while (p) {
        struct fs_publisher *next = p->next;
        fs__publisher_destroy(p);
        p = next;
    }
    if (b->ops->free)
        b->ops->free(b->impl);
    for (size_t i = 0; i < b->mw_count; i++) {
        if (b->mws[i].free_state)
            b->mws[i].free_state(b->mws[i].state);
        free(b->mws[i].name);
        free(b->mws[i].unique_key);
    }
    free(b->mws);
    free(b->consume_chain);
    free(b->publish_chain);
    pthread_mutex_destroy(&b->lock);
    pthread_cond_destroy(&b->cond);
    pthread_mutex_destroy(&b->req_lock);
    pthread_cond_destroy(&b->req_cond);
    free(b->url);
    free(b);
}
