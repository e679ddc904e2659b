/*
 * faststream-demo: a small trading system in one process, instrumented with
 * the Prometheus middleware, serving /metrics and /health.
 *
 *   order gateway --orders--> orders service --trades--> trades service
 *                                   --notifications--> notifications service
 *
 * - The order gateway (a thread) sends about 20 orders a second, with a
 *   burst of 60 every 5 seconds, some of them bad on purpose.
 * - The orders service validates and matches each order: unreadable orders
 *   fail (DecodeError), bad quantities fail (ValueError), orders for a
 *   halted symbol are rejected, and when the matching engine is busy the
 *   order is nacked to be tried again. A matched order becomes a trade.
 * - The trades service books trades in batches of up to 8 in a ledger that
 *   sometimes times out (TimeoutError); a booked batch is acked at once and
 *   one notification per trade is published as a batch.
 * - The notifications service delivers notifications, skipping the ones of
 *   muted accounts. The SMS provider allows 40 notifications a second: a
 *   small publish middleware enforces that quota, so the bursts make some
 *   publishes fail (RateLimited).
 *
 * Every status of the FastStream metric schema shows up at modest rates, so
 * every panel of the FastStream Grafana dashboard (ID 22130) has data.
 *
 *   faststream-demo [--broker URL] [--listen ADDR:PORT] [--duration SECONDS]
 *                   [--app-name NAME] [--no-dashboard] [--no-backlog] [--verbose]
 *                   [--tls-cert FILE --tls-key FILE [--tls-client-ca FILE]]
 *                   [--basic-auth USER:PASSWORD | --basic-auth-hash USER:HASH]
 *
 * Defaults: memory:// (in-process), 127.0.0.1:8000, run until Ctrl-C.
 */
#include <faststream/faststream.h>
#include <faststream/dashboard.h>
#include <faststream/prometheus.h>
#ifdef FS_DEMO_HAVE_NATS
#include <faststream/nats.h>
#endif
#ifdef FS_DEMO_HAVE_REDIS
#include <faststream/redis.h>
#endif
#ifdef FS_DEMO_HAVE_KAFKA
#include <faststream/kafka.h>
#endif
#ifdef FS_DEMO_HAVE_MQTT
#include <faststream/mqtt.h>
#endif
#ifdef FS_DEMO_HAVE_RABBITMQ
#include <faststream/rabbitmq.h>
#endif

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* ------------------------------------------------------------------------ */
/* Small helpers                                                            */

static double now_seconds(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void sleep_ms(double ms)
{
    struct timespec ts = {(time_t)(ms / 1000),
                          (long)((ms - (double)(long)(ms / 1000) * 1000) * 1e6)};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
        ;
}

/* A per-thread pseudo-random generator (handlers run on several threads). */
static unsigned random_below(unsigned n)
{
    static _Thread_local uint64_t state;
    if (state == 0)
        state = (uint64_t)(uintptr_t)&state ^ (uint64_t)time(NULL) ^ 0x9e3779b97f4a7c15ull;
    state ^= state << 13;
    state ^= state >> 7;
    state ^= state << 17;
    return (unsigned)(state % n);
}

/* True with a probability of `percent` / 100. */
static bool chance(double percent)
{
    return random_below(10000) < (unsigned)(percent * 100);
}

/* ------------------------------------------------------------------------ */
/* The order gateway                                                        */

static const char *const SYMBOLS[] = {"ACME", "GLOBEX", "INITECH", "UMBRELLA", "HOOLI"};
#define HALTED_SYMBOL "HOOLI" /* trading halted: its orders are rejected */

typedef struct demo {
    fs_app *app;
    fs_broker *broker;
    fs_publisher *orders, *trades, *notifications;
    const char *broker_url;
    const char *address;
    int duration; /* seconds; 0: until Ctrl-C */
    bool tls;
    pthread_t gateway;
    bool gateway_started;
    bool dashboard; /* the live page is served at / */
    atomic_bool stopping;
} demo;

static void send_order(demo *d, unsigned long id)
{
    char body[160];
    int n;
    if (chance(2)) { /* a client sends garbage */
        n = snprintf(body, sizeof body, "id=%lu account=", id);
    } else {
        int qty = chance(3) ? -(int)random_below(50) : 1 + (int)random_below(500);
        const char *symbol = chance(2) ? HALTED_SYMBOL : SYMBOLS[random_below(4)];
        n = snprintf(body, sizeof body, "id=%lu account=%u symbol=%s side=%s qty=%d price=%.2f", id,
                     1 + random_below(200), symbol, chance(50) ? "buy" : "sell", qty,
                     50 + random_below(10000) / 100.0);
    }
    /* A failed publish is counted by the middleware; the gateway goes on. */
    fs_publisher_publish_bytes(d->orders, body, (size_t)n);
}

static void *gateway_main(void *arg)
{
    demo *d = arg;
    double start = now_seconds(), next_burst = start + 2;
    unsigned long id = 0;
    while (!atomic_load(&d->stopping)) {
        double now = now_seconds();
        if (d->duration > 0 && now - start >= d->duration) {
            fs_app_stop(d->app); /* --duration is over: shut down gracefully */
            break;
        }
        if (now >= next_burst) { /* the market opens a new auction: a burst */
            for (int i = 0; i < 60; i++)
                send_order(d, ++id);
            next_burst += 5;
        }
        send_order(d, ++id);
        sleep_ms(50);
    }
    return NULL;
}

/* ------------------------------------------------------------------------ */
/* The orders service                                                       */

typedef struct order {
    unsigned long id;
    unsigned account;
    char symbol[16];
    char side[8];
    int qty;
    double price;
} order;

static bool parse_order(const fs_message *msg, order *o)
{
    char text[256];
    size_t n = fs_message_body_len(msg);
    if (n >= sizeof text)
        return false;
    memcpy(text, fs_message_body(msg), n);
    text[n] = '\0';
    return sscanf(text, "id=%lu account=%u symbol=%15s side=%7s qty=%d price=%lf", &o->id,
                  &o->account, o->symbol, o->side, &o->qty, &o->price) == 6;
}

static fs_outcome on_order(fs_message *msg, void *user)
{
    demo *d = user;
    order o;
    if (!parse_order(msg, &o))
        return fs_message_fail(msg, "DecodeError", "unreadable order");
    if (o.qty <= 0)
        return fs_message_fail(msg, "ValueError", "order %lu: quantity %d", o.id, o.qty);
    if (strcmp(o.symbol, HALTED_SYMBOL) == 0) /* trading halted: drop the order */
        return FS_OUTCOME_REJECT; /* FastStream's RejectMessage: "rejected" on every broker (an
                                     explicit reject() counts acked on MQTT, where it is an ack) */
    if (chance(2))
        return FS_OUTCOME_NACK; /* the matching engine is busy: deliver it again */

    sleep_ms(0.5 + random_below(2500) / 1000.0); /* matching */
    char trade[160];
    int n =
        snprintf(trade, sizeof trade, "order=%lu account=%u symbol=%s side=%s qty=%d price=%.2f",
                 o.id, o.account, o.symbol, o.side, o.qty, o.price);
    if (fs_publisher_publish_bytes(d->trades, trade, (size_t)n) < 0)
        return fs_message_fail(msg, fs_last_publish_error_type(), "cannot publish the trade");
    return FS_OUTCOME_OK;
}

/* ------------------------------------------------------------------------ */
/* The trades service (batches)                                             */

#define TRADE_BATCH 8

static fs_outcome on_trades(fs_message *batch, void *user)
{
    demo *d = user;
    if (chance(3))
        return fs_message_fail(batch, "TimeoutError", "the ledger did not answer in time");
    sleep_ms(2);           /* one ledger round trip for the whole batch */
    fs_message_ack(batch); /* booked: nothing below may undo that */

    /* Notifications are best effort: a failed publish is only counted. */
    char bodies[TRADE_BATCH][200];
    fs_envelope envs[TRADE_BATCH];
    size_t n = fs_message_count(batch);
    if (n > TRADE_BATCH) /* cannot happen with batch_size TRADE_BATCH; keeps the arrays safe */
        n = TRADE_BATCH;
    for (size_t i = 0; i < n; i++) {
        const fs_message *t = fs_message_at(batch, i);
        int len = snprintf(bodies[i], sizeof bodies[i], "filled: %.*s", (int)fs_message_body_len(t),
                           (const char *)fs_message_body(t));
        fs_envelope e = FS_ENVELOPE_INIT;
        e.body = bodies[i];
        e.body_len = (size_t)len < sizeof bodies[i] ? (size_t)len : sizeof bodies[i] - 1;
        envs[i] = e;
    }
    fs_publisher_publish_batch(d->notifications, envs, n);
    return FS_OUTCOME_OK;
}

/* ------------------------------------------------------------------------ */
/* The notifications service                                                */

static fs_outcome on_notification(fs_message *msg, void *user)
{
    (void)user;
    (void)msg;
    if (chance(1.5))
        return FS_OUTCOME_SKIP;                 /* a muted account: leave it alone */
    sleep_ms(0.2 + random_below(800) / 1000.0); /* hand it to the SMS provider */
    return FS_OUTCOME_OK;
}

/* ------------------------------------------------------------------------ */
/* A publish middleware: the SMS provider's quota, as a token bucket        */

typedef struct quota {
    const char *destination;
    double rate;   /* tokens per second */
    double burst;  /* bucket size */
    double tokens; /* guarded by lock */
    double last;
    pthread_mutex_t lock;
} quota;

static bool quota_take(quota *q, size_t n)
{
    pthread_mutex_lock(&q->lock);
    double now = now_seconds();
    q->tokens += (now - q->last) * q->rate;
    if (q->tokens > q->burst)
        q->tokens = q->burst;
    q->last = now;
    bool ok = q->tokens >= (double)n;
    if (ok)
        q->tokens -= (double)n;
    pthread_mutex_unlock(&q->lock);
    return ok;
}

static int quota_publish(fs_publish_ctx *ctx)
{
    quota *q = ctx->state;
    if (strcmp(ctx->destination_name, q->destination) != 0 || quota_take(q, ctx->count))
        return fs_publish_next(ctx);
    ctx->error_type = "RateLimited"; /* what the metrics report as exception_type */
    return FS_EFULL;
}

static void quota_free(void *state)
{
    quota *q = state;
    pthread_mutex_destroy(&q->lock);
    free(q);
}

static int add_quota(fs_broker *broker, const char *destination, double per_second)
{
    quota *q = calloc(1, sizeof *q);
    if (!q)
        return FS_ENOMEM;
    q->destination = destination;
    q->rate = q->burst = q->tokens = per_second;
    q->last = now_seconds();
    pthread_mutex_init(&q->lock, NULL);
    fs_middleware mw = {
        .name = "sms-quota", .publish = quota_publish, .state = q, .free_state = quota_free};
    int rc = fs_broker_add_middleware(broker, &mw);
    if (rc < 0)
        quota_free(q);
    return rc;
}

/* ------------------------------------------------------------------------ */
/* The only broker-specific part: what a name designates                    */

typedef struct broker_setup {
    const void *subscribe; /* fs_subscriber_options.broker_options */
    const void *publish;   /* fs_publisher_options.broker_options */
    fs_ack_policy policy;  /* the subscribers' ack policy (DEFAULT: the broker's) */
} broker_setup;

static broker_setup setup_for(const fs_broker *broker)
{
    broker_setup s = {NULL, NULL, FS_ACK_POLICY_DEFAULT}; /* defaults (memory://: named queues) */
    (void)broker;
#ifdef FS_DEMO_HAVE_NATS
    /* NATS core subjects have no acknowledgement: JetStream, one stream for the
     * demo's subjects (declared by the subscribers), pull consumers. */
    static const char *const subjects[] = {"orders", "trades", "notifications"};
    static fs_nats_stream_config nsc = FS_NATS_STREAM_CONFIG_INIT;
    static fs_nats_subscriber_options ns = FS_NATS_SUBSCRIBER_OPTIONS_INIT;
    static fs_nats_publish_options np = FS_NATS_PUBLISH_OPTIONS_INIT;
    if (fs_broker_is_nats(broker)) {
        nsc.name = ns.stream = np.stream = "FASTSTREAM_DEMO";
        nsc.subjects = subjects;
        nsc.subject_count = 3;
        nsc.max_msgs = 100000; /* keep the stream small */
        ns.declare_stream = &nsc;
        ns.deliver = FS_NATS_DELIVER_NEW;
        s.subscribe = &ns;
        s.publish = &np;
    }
#endif
#ifdef FS_DEMO_HAVE_REDIS
    /* Redis channels have no acknowledgement: use streams read by a consumer
     * group, where ack, nack (redelivery) and reject exist. */
    static fs_redis_subscriber_options rs = FS_REDIS_SUBSCRIBER_OPTIONS_INIT;
    static fs_redis_publish_options rp = FS_REDIS_PUBLISH_OPTIONS_INIT;
    if (fs_broker_is_redis(broker)) {
        rs.kind = FS_REDIS_STREAM;
        rs.group = "trading-demo";
        rp.kind = FS_REDIS_STREAM;
        rp.maxlen = 10000; /* keep the streams small */
        s.subscribe = &rs;
        s.publish = &rp;
    }
#endif
#ifdef FS_DEMO_HAVE_KAFKA
    /* Kafka's default (ACK_FIRST, auto-commit) counts every message acked:
     * settle after handling, so failures and nacks (seek back) show. No
     * group (a kafka://...?group_id= URL sets one): three members joining
     * one group would rebalance it three times. */
    if (fs_broker_is_kafka(broker))
        s.policy = FS_ACK_POLICY_REJECT_ON_ERROR;
#endif
    return s;
}

/* ------------------------------------------------------------------------ */
/* Application                                                              */

static int start_gateway(fs_app *app, void *user)
{
    demo *d = user;
    char base[128];
    const char *a = d->address;
    const char *scheme = d->tls ? "https" : "http";
    snprintf(base, sizeof base, strchr(a, ':') ? "%s://[%s]:%u" : "%s://%s:%u", scheme, a,
             (unsigned)fs_app_http_port(app));
    printf("faststream-demo: orders -> trades -> notifications on %s\n", d->broker_url);
    printf("  metrics:    %s/metrics\n", base);
    if (d->dashboard)
        printf("  dashboard:  %s/ (live charts in the browser)\n", base);
    printf("  health:     %s/health\n", base);
    printf("  Prometheus: scrape %s/metrics (deploy/prometheus.yml scrapes the default address)\n",
           base);
    printf(
        "  Grafana:    import dashboard 22130 (FastStream Metrics), metrics prefix faststream\n");
    if (d->duration > 0)
        printf("Running for %d s; Ctrl-C stops it earlier.\n", d->duration);
    else
        printf("Press Ctrl-C to stop.\n");
    fflush(stdout);
    if (pthread_create(&d->gateway, NULL, gateway_main, d) != 0)
        return FS_ENOMEM;
    d->gateway_started = true;
    return FS_OK;
}

static int stop_gateway(fs_app *app, void *user)
{
    (void)app;
    demo *d = user;
    atomic_store(&d->stopping, true);
    if (d->gateway_started)
        pthread_join(d->gateway, NULL);
    d->gateway_started = false;
    return FS_OK;
}

/* The demo fails messages on purpose several times a second; the metrics
 * count those failures, so the log shows them only with --verbose. */
static bool verbose;

static void demo_log(fs_log_level level, const char *component, const char *message, void *user)
{
    (void)user;
    if (!verbose && level == FS_LOG_ERROR && strcmp(component, "core") == 0 &&
        strncmp(message, "handler ", 8) == 0)
        return;
    fprintf(stderr, "faststream %s %s: %s\n", fs_log_level_name(level), component, message);
}

static int usage(const char *prog, int rc)
{
    fprintf(rc ? stderr : stdout,
            "usage: %s [--broker URL] [--listen ADDR:PORT] [--duration SECONDS] [--app-name NAME]\n"
            "          [--no-dashboard] [--no-backlog] [--verbose]\n"
            "  --broker URL        memory:// (default), redis://127.0.0.1:6379, ...\n"
            "  --listen ADDR:PORT  where /metrics and /health are served (127.0.0.1:8000)\n"
            "  --duration SECONDS  stop after this long (default: run until Ctrl-C)\n"
            "  --app-name NAME     the metrics' app_name label (default trading-demo)\n"
            "  --no-dashboard      do not serve the live dashboard page at /\n"
            "  --no-backlog        do not export the backlog family (messages waiting)\n"
            "  --verbose           log every handler failure\n"
            "  --tls-cert FILE     serve HTTPS with this PEM certificate (chain)...\n"
            "  --tls-key FILE      ...and this PEM private key\n"
            "  --tls-client-ca FILE  answer only clients with a certificate this CA signed\n"
            "  --basic-auth USER:PASSWORD       require HTTP basic auth\n"
            "  --basic-auth-hash USER:HASH      the same with a bcrypt or \"sha256:HEX\" hash\n",
            prog);
    return rc;
}

/* "ADDR:PORT" or "[IPv6]:PORT" into address and port. */
static bool parse_listen(char *arg, const char **addr, uint16_t *port)
{
    char *colon = strrchr(arg, ':');
    if (!colon || colon == arg)
        return false;
    *colon = '\0';
    char *end;
    long p = strtol(colon + 1, &end, 10);
    if (*end || colon[1] == '\0' || p < 0 || p > 65535)
        return false;
    if (arg[0] == '[' && colon[-1] == ']') {
        colon[-1] = '\0';
        arg++;
    }
    *addr = arg;
    *port = (uint16_t)p;
    return true;
}

/* "USER:SECRET" into user and secret (split at the first ':'). */
static bool parse_credentials(char *arg, const char **user, const char **secret)
{
    char *colon = strchr(arg, ':');
    if (!colon || colon == arg || !colon[1])
        return false;
    *colon = '\0';
    *user = arg;
    *secret = colon + 1;
    return true;
}

int main(int argc, char **argv)
{
    demo d = {.broker_url = "memory://", .address = "127.0.0.1"};
    const char *app_name = "trading-demo";
    bool dashboard = true, backlog = true;
    uint16_t port = 8000;
    fs_http_options http = FS_HTTP_OPTIONS_INIT;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        bool has_value = i + 1 < argc;
        if (strcmp(a, "--broker") == 0 && has_value) {
            d.broker_url = argv[++i];
        } else if (strcmp(a, "--listen") == 0 && has_value) {
            if (!parse_listen(argv[++i], &d.address, &port)) {
                fprintf(stderr, "faststream-demo: --listen wants ADDR:PORT\n");
                return 2;
            }
        } else if (strcmp(a, "--duration") == 0 && has_value) {
            char *end;
            long s = strtol(argv[++i], &end, 10);
            if (*end || s <= 0 || s > 1000000000) {
                fprintf(stderr, "faststream-demo: --duration wants a positive number of seconds\n");
                return 2;
            }
            d.duration = (int)s;
        } else if (strcmp(a, "--tls-cert") == 0 && has_value) {
            http.tls_cert_file = argv[++i];
        } else if (strcmp(a, "--tls-key") == 0 && has_value) {
            http.tls_key_file = argv[++i];
        } else if (strcmp(a, "--tls-client-ca") == 0 && has_value) {
            http.tls_client_ca_file = argv[++i];
        } else if ((strcmp(a, "--basic-auth") == 0 || strcmp(a, "--basic-auth-hash") == 0) &&
                   has_value) {
            bool hashed = a[12] == '-';
            if (!parse_credentials(argv[++i], &http.basic_auth_user,
                                   hashed ? &http.basic_auth_hash : &http.basic_auth_password)) {
                fprintf(stderr, "faststream-demo: %s wants USER:%s\n", a,
                        hashed ? "HASH" : "PASSWORD");
                return 2;
            }
        } else if (strcmp(a, "--app-name") == 0 && has_value) {
            app_name = argv[++i];
        } else if (strcmp(a, "--no-backlog") == 0) {
            backlog = false;
        } else if (strcmp(a, "--no-dashboard") == 0) {
            dashboard = false;
        } else if (strcmp(a, "--verbose") == 0) {
            verbose = true;
        } else if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
            return usage(argv[0], 0);
        } else {
            return usage(argv[0], 2);
        }
    }
    fs_set_log_handler(demo_log, NULL);
#ifdef FS_DEMO_HAVE_REDIS
    fs_redis_register(); /* make redis:// known even when linked statically */
#endif
#ifdef FS_DEMO_HAVE_KAFKA
    fs_kafka_register();
#endif
#ifdef FS_DEMO_HAVE_NATS
    fs_nats_register();
#endif
#ifdef FS_DEMO_HAVE_MQTT
    fs_mqtt_register(); /* make mqtt:// known even when linked statically */
#endif
#ifdef FS_DEMO_HAVE_RABBITMQ
    fs_rabbitmq_register(); /* amqp:// (each subscriber declares its queue) */
#endif

    fs_app_options ao = FS_APP_OPTIONS_INIT;
    ao.http_address = d.address;
    ao.http_port = port ? port : FS_APP_PORT_ANY; /* --listen ADDR:0 picks a free port */
    ao.dashboard = d.dashboard = dashboard && fs_dashboard_available();
    ao.http_options = &http;
    d.tls = http.tls_cert_file != NULL;
    if (fs_app_new(&ao, &d.app) < 0) {
        fprintf(stderr, "faststream-demo: %s\n", fs_last_error());
        return 1;
    }
    if (fs_broker_new(d.broker_url, NULL, &d.broker) < 0) {
        fprintf(stderr, "faststream-demo: %s\n", fs_last_error());
        fs_app_free(d.app);
        return 1;
    }

    broker_setup bs = setup_for(d.broker);
    fs_publisher_options pub = FS_PUBLISHER_OPTIONS_INIT;
    pub.broker_options = bs.publish;
    fs_subscriber_options orders = FS_SUBSCRIBER_OPTIONS_INIT;
    orders.concurrency = 2;
    orders.broker_options = bs.subscribe;
    orders.ack_policy = bs.policy;
    fs_subscriber_options trades = FS_SUBSCRIBER_OPTIONS_INIT;
    trades.batch_size = TRADE_BATCH;
    trades.batch_timeout_ms = 250;
    trades.broker_options = bs.subscribe;
    trades.ack_policy = bs.policy;
    fs_subscriber_options notifications = FS_SUBSCRIBER_OPTIONS_INIT;
    notifications.broker_options = bs.subscribe;
    notifications.ack_policy = bs.policy;
    /* Metrics first (outermost), so they see what the quota does. */
    fs_prometheus_options po = FS_PROMETHEUS_OPTIONS_INIT;
    po.app_name = app_name;
    po.backlog = backlog;
    if (fs_broker_add_prometheus(d.broker, &po) < 0 ||
        add_quota(d.broker, "notifications", 40) < 0 ||
        fs_publisher_new(d.broker, "orders", &pub, &d.orders) < 0 ||
        fs_publisher_new(d.broker, "trades", &pub, &d.trades) < 0 ||
        fs_publisher_new(d.broker, "notifications", &pub, &d.notifications) < 0 ||
        fs_subscribe(d.broker, "orders", on_order, &d, &orders, NULL) < 0 ||
        fs_subscribe(d.broker, "trades", on_trades, &d, &trades, NULL) < 0 ||
        fs_subscribe(d.broker, "notifications", on_notification, &d, &notifications, NULL) < 0) {
        fprintf(stderr, "faststream-demo: %s\n", fs_last_error());
        fs_broker_free(d.broker);
        fs_app_free(d.app);
        return 1;
    }
    if (fs_app_add_broker(d.app, d.broker) < 0) { /* on success the app owns it */
        fprintf(stderr, "faststream-demo: %s\n", fs_last_error());
        fs_broker_free(d.broker);
        fs_app_free(d.app);
        return 1;
    }
    if (fs_app_after_startup(d.app, start_gateway, &d) < 0 ||
        fs_app_on_shutdown(d.app, stop_gateway, &d) < 0) {
        fprintf(stderr, "faststream-demo: %s\n", fs_last_error());
        fs_app_free(d.app);
        return 1;
    }

    int rc = fs_app_run(d.app); /* until Ctrl-C, SIGTERM or --duration */
    if (rc < 0)
        fprintf(stderr, "faststream-demo: %s\n", fs_last_error());
    else
        printf("faststream-demo: stopped cleanly\n");
    fs_app_free(d.app);
    return rc < 0 ? 1 : 0;
}
