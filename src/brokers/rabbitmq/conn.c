/*
 * The connection and its owner thread (see internal.h): connecting (TCP or
 * TLS, login, channels), the inbox other threads post work to, the frame
 * loop, and reconnection with backoff.
 */
#include "internal.h"

#include <amqp_ssl_socket.h>
#include <amqp_tcp_socket.h>
#include <errno.h>
#include <poll.h>
#include <sys/socket.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <linux/futex.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

static bool read_frames(rconn *c, uint64_t now);

static struct timeval tv_ms(int ms)
{
    struct timeval tv = {ms / 1000, (ms % 1000) * 1000};
    return tv;
}

/* ------------------------------------------------------------------------ */
/* Errors of synchronous methods                                            */

int fs__rmq_rpc_error(rconn *c, amqp_channel_t ch, const char *what, char *err, size_t n)
{
    c->release_all = true; /* its reply was decoded into the channel's buffers */
    c->rpc_ran = true;
    amqp_rpc_reply_t r = amqp_get_rpc_reply(c->st);
    if (r.reply_type == AMQP_RESPONSE_NORMAL)
        return FS_OK;
    if (r.reply_type == AMQP_RESPONSE_SERVER_EXCEPTION && r.reply.id == AMQP_CHANNEL_CLOSE_METHOD) {
        amqp_channel_close_t *cc = r.reply.decoded;
        snprintf(err, n, "rabbitmq: %s: %.*s", what, (int)cc->reply_text.len,
                 (char *)cc->reply_text.bytes);
        int code = cc->reply_code;
        amqp_channel_close_ok_t ok = {0};
        amqp_send_method(c->st, ch, AMQP_CHANNEL_CLOSE_OK_METHOD, &ok);
        fs__rmq_channel_closed(c, ch);
        return code == 406   ? FS_ECONFLICT
               : code == 404 ? FS_ENOTFOUND
               : code == 403 ? FS_EBROKER
                             : FS_EBROKER;
    }
    if (r.reply_type == AMQP_RESPONSE_SERVER_EXCEPTION &&
        r.reply.id == AMQP_CONNECTION_CLOSE_METHOD) {
        amqp_connection_close_t *cc = r.reply.decoded;
        snprintf(err, n, "rabbitmq: %s: connection closed by the server: %.*s", what,
                 (int)cc->reply_text.len, (char *)cc->reply_text.bytes);
        amqp_connection_close_ok_t ok = {0};
        amqp_send_method(c->st, 0, AMQP_CONNECTION_CLOSE_OK_METHOD, &ok);
        atomic_store(&c->up, false);
        return FS_EIO;
    }
    if (r.reply_type == AMQP_RESPONSE_LIBRARY_EXCEPTION) {
        snprintf(err, n, "rabbitmq: %s: %s", what, amqp_error_string2(r.library_error));
        if (r.library_error != AMQP_STATUS_TIMEOUT)
            atomic_store(&c->up, false); /* the connection is unusable */
        return r.library_error == AMQP_STATUS_TIMEOUT ? FS_ETIMEDOUT : FS_EIO;
    }
    snprintf(err, n, "rabbitmq: %s: unexpected reply", what);
    return FS_EPROTOCOL;
}

int fs__rmq_channel_open(rconn *c, amqp_channel_t ch, char *err, size_t n)
{
    amqp_channel_open(c->st, ch);
    return fs__rmq_rpc_error(c, ch, "channel.open", err, n);
}

void fs__rmq_channel_closed(rconn *c, amqp_channel_t ch)
{
    rpch *pc = fs__rmq_pub_by_channel(c, ch);
    if (pc)
        pc->open = false;
    else if (ch == RMQ_CH_TOPO)
        c->topo_open = false;
    else if (ch == RMQ_CH_RPC)
        c->rpc_open = false;
    else {
        rsub *s = fs__rmq_sub_by_channel(c->b, ch);
        if (s) {
            s->active = false;
            s->gen++;
        }
    }
}

/* ------------------------------------------------------------------------ */
/* Connecting                                                               */

static int login_error(rmq_broker *b, amqp_rpc_reply_t r, char *err, size_t n)
{
    if (r.reply_type == AMQP_RESPONSE_SERVER_EXCEPTION &&
        r.reply.id == AMQP_CONNECTION_CLOSE_METHOD) {
        amqp_connection_close_t *cc = r.reply.decoded;
        int code = cc->reply_code;
        if (code == 530 || code == 402) {
            snprintf(err, n, "rabbitmq: vhost '%s' not found on %s:%d (or not allowed: %.*s)",
                     b->vhost, b->host, b->port, (int)cc->reply_text.len,
                     (char *)cc->reply_text.bytes);
            return FS_ENOTFOUND;
        }
        snprintf(err, n, "rabbitmq: login refused for user '%s' on %s:%d (%.*s)", b->user, b->host,
                 b->port, (int)cc->reply_text.len, (char *)cc->reply_text.bytes);
        return FS_EBROKER;
    }
    if (r.reply_type == AMQP_RESPONSE_LIBRARY_EXCEPTION &&
        (r.library_error == AMQP_STATUS_CONNECTION_CLOSED ||
         r.library_error == AMQP_STATUS_SOCKET_CLOSED)) {
        snprintf(err, n,
                 "rabbitmq: login refused for user '%s' on %s:%d (the server closed the "
                 "connection: wrong user or password?)",
                 b->user, b->host, b->port);
        return FS_EBROKER;
    }
    snprintf(err, n, "rabbitmq: login to %s:%d failed: %s", b->host, b->port,
             r.reply_type == AMQP_RESPONSE_LIBRARY_EXCEPTION ? amqp_error_string2(r.library_error)
                                                             : "unexpected reply");
    return r.library_error == AMQP_STATUS_TIMEOUT ? FS_ETIMEDOUT : FS_EIO;
}

static int open_socket(rconn *c, char *err, size_t n)
{
    rmq_broker *b = c->b;
    amqp_socket_t *s = b->tls ? amqp_ssl_socket_new(c->st) : amqp_tcp_socket_new(c->st);
    if (!s) {
        snprintf(err, n, "rabbitmq: cannot create a %s socket", b->tls ? "TLS" : "TCP");
        return FS_ENOMEM;
    }
    if (b->tls) {
        amqp_ssl_socket_set_verify_peer(s, b->verify);
        amqp_ssl_socket_set_verify_hostname(s, b->verify);
        if (b->cafile && amqp_ssl_socket_set_cacert(s, b->cafile)) {
            snprintf(err, n, "rabbitmq: cannot load the CA file %s", b->cafile);
            return FS_EINVAL;
        }
        if (b->certfile && amqp_ssl_socket_set_key(s, b->certfile, b->keyfile)) {
            snprintf(err, n, "rabbitmq: cannot load the client certificate %s / key %s",
                     b->certfile, b->keyfile);
            return FS_EINVAL;
        }
    }
    struct timeval tv = tv_ms(b->connect_timeout_ms);
    int rc = amqp_socket_open_noblock(s, b->host, b->port, &tv);
    if (rc) {
        snprintf(err, n, "rabbitmq: cannot connect to %s:%d%s: %s", b->host, b->port,
                 b->tls ? " (TLS)" : "", amqp_error_string2(rc));
        return rc == AMQP_STATUS_TIMEOUT ? FS_ETIMEDOUT : FS_EIO;
    }
    c->fd = amqp_socket_get_sockfd(s);
    /* A connect to a loopback port in the ephemeral range (32768-60999)
     * with nobody listening can connect the socket to itself (TCP
     * simultaneous open), and would then hold the port the server wants to
     * listen on. The test servers' ports lie outside it; a user's may not. */
    struct sockaddr_storage la, pa;
    socklen_t ll = sizeof la, pl = sizeof pa;
    if (!getsockname(c->fd, (struct sockaddr *)&la, &ll) &&
        !getpeername(c->fd, (struct sockaddr *)&pa, &pl) && ll == pl && !memcmp(&la, &pa, ll)) {
        snprintf(err, n,
                 "rabbitmq: cannot connect to %s:%d: nobody listening (the socket "
                 "connected to itself)",
                 b->host, b->port);
        return FS_EIO;
    }
    return FS_OK;
}

static void drop_connection(rconn *c)
{
    if (c->st)
        amqp_destroy_connection(c->st);
    c->st = NULL;
    c->fd = -1;
    c->sock_in_ep = false; /* closing the socket took it out of ep_fd */
    c->topo_open = c->rpc_open = false;
    c->rep_active = false;
    for (unsigned i = 0; i < c->npub; i++)
        c->pubs[i].open = c->pubs[i].ret_active = false;
    atomic_store(&c->up, false);
}

/* Open the connection and every channel, redeclare and resume consumers. */
static int connect_once(rconn *c, char *err, size_t n)
{
    rmq_broker *b = c->b;
    c->st = amqp_new_connection();
    if (!c->st) {
        snprintf(err, n, "rabbitmq: out of memory");
        return FS_ENOMEM;
    }
    int rc = open_socket(c, err, n);
    if (rc) {
        drop_connection(c);
        return rc;
    }
    struct timeval tv = tv_ms(b->connect_timeout_ms);
    amqp_set_handshake_timeout(c->st, &tv);
    amqp_set_rpc_timeout(c->st, &tv);
    amqp_table_entry_t props[2];
    int np = 0;
    props[np].key = amqp_cstring_bytes("connection_name");
    props[np].value.kind = AMQP_FIELD_KIND_UTF8;
    props[np].value.value.bytes = amqp_cstring_bytes(b->conn_name ? b->conn_name : "faststream-c");
    np++;
    amqp_table_t pt = {np, props};
    amqp_rpc_reply_t r =
        amqp_login_with_properties(c->st, b->vhost, 0, b->frame_max, b->heartbeat, &pt,
                                   AMQP_SASL_METHOD_PLAIN, b->user, b->password);
    if (r.reply_type != AMQP_RESPONSE_NORMAL) {
        rc = login_error(b, r, err, n);
        drop_connection(c);
        return rc;
    }
    atomic_store(&c->up, true);
    c->readable = true;
    if ((rc = fs__rmq_pub_open_all(c, err, n)))
        goto fail;
    if ((rc = fs__rmq_channel_open(c, RMQ_CH_TOPO, err, n)))
        goto fail;
    c->topo_open = true;
    if ((rc = fs__rmq_rpc_setup(c, err, n)))
        goto fail;
    pthread_mutex_lock(&b->mu);
    for (rsub *s = b->subs; s && !rc; s = s->next)
        if (s->want && !s->active)
            rc = fs__rmq_sub_consume(c, s, err, n);
    pthread_mutex_unlock(&b->mu);
    if (rc)
        goto fail;
    struct epoll_event ev = {.events = EPOLLIN, .data.fd = c->fd};
    if (epoll_ctl(c->ep_fd, EPOLL_CTL_ADD, c->fd, &ev) && errno != EEXIST) {
        snprintf(err, n, "rabbitmq: epoll_ctl: %s", strerror(errno));
        rc = FS_EIO;
        goto fail;
    }
    c->sock_in_ep = true;
    atomic_fetch_add(&c->epoch, 1);
    return FS_OK;
fail:
    drop_connection(c);
    return rc;
}

/* The connection is gone: fail what waits for it, forget its deliveries. */
static void connection_lost(rconn *c, const char *why)
{
    rmq_broker *b = c->b;
    drop_connection(c);
    char msg[400];
    snprintf(msg, sizeof msg, "rabbitmq: connection to %s:%d lost: %s", b->host, b->port, why);
    fs__rmq_pub_fail_all(c, FS_EIO, "ConnectionError", msg);
    fs__rmq_rpc_fail_all(c, FS_EIO, msg);
    pthread_mutex_lock(&b->mu);
    for (rsub *s = b->subs; s; s = s->next)
        fs__rmq_sub_conn_lost(s);
    pthread_mutex_unlock(&b->mu);
    if (!atomic_load(&c->quit))
        fs_adapter_log(FS_LOG_WARN, RMQ, "%s; reconnecting", msg + strlen(RMQ ": "));
    fs_kit_backoff_reset(&c->backoff);
    c->retry_at_ns = fs_kit_now_ns();
}

static void try_reconnect(rconn *c, uint64_t now)
{
    char err[320];
    int rc = connect_once(c, err, sizeof err);
    if (!rc) {
        fs_adapter_log(FS_LOG_INFO, RMQ, "reconnected to %s:%d", c->b->host, c->b->port);
        c->down_logged = false;
        fs_kit_backoff_reset(&c->backoff);
        return;
    }
    if (!c->down_logged)
        fs_adapter_log(FS_LOG_WARN, RMQ, "%s (retrying with backoff)", err + strlen(RMQ ": "));
    c->down_logged = true;
    c->retry_at_ns = now + (uint64_t)fs_kit_backoff_next(&c->backoff) * 1000000ull;
}

/* ------------------------------------------------------------------------ */
/* The inbox                                                                */

void fs__rmq_done_init(rdone *d)
{
    atomic_init(&d->v, 0);
}

void fs__rmq_done_post(rdone *d)
{
    /* After the exchange the waiter may return and reuse the memory: a
     * wake-up on it then is at most spurious for a futex waiter there. */
    if (atomic_exchange_explicit(&d->v, 2, memory_order_acq_rel) == 1)
        syscall(SYS_futex, &d->v, FUTEX_WAKE_PRIVATE, 1, NULL, NULL, 0);
}

void fs__rmq_done_wait(rdone *d)
{
    uint32_t v = atomic_load_explicit(&d->v, memory_order_acquire);
    while (v != 2) {
        if (v == 0 && !atomic_compare_exchange_weak_explicit(&d->v, &v, 1, memory_order_acq_rel,
                                                             memory_order_acquire))
            continue; /* v is the current value */
        syscall(SYS_futex, &d->v, FUTEX_WAIT_PRIVATE, 1, NULL, NULL, 0);
        v = atomic_load_explicit(&d->v, memory_order_acquire);
    }
}

void fs__rmq_post(rconn *c, rcmd *cmd)
{
    rcmd *head = atomic_load_explicit(&c->inbox, memory_order_relaxed);
    do
        cmd->next = head;
    while (!atomic_compare_exchange_weak_explicit(&c->inbox, &head, cmd, memory_order_release,
                                                  memory_order_relaxed));
    if (atomic_load_explicit(&c->sleeping, memory_order_seq_cst) &&
        atomic_exchange(&c->sleeping, false)) {
        uint64_t one = 1;
        /* syscall(): write() is a cancellation point, whose bookkeeping in a
         * threaded process costs more than the call (nobody cancels us) */
        syscall(SYS_write, c->wake_fd, &one, sizeof one);
    }
}

/* ------------------------------------------------------------------------ */
/* Lending the connection to a publisher while the owner sleeps             */

static void wake_owner(rconn *c)
{
    uint64_t one = 1;
    syscall(SYS_write, c->wake_fd, &one, sizeof one);
}

/* The socket in the owner's epoll set: armed (EPOLLIN) or not (while lent,
 * so that the frames the borrower reads do not wake the owner). */
static void arm_socket(rconn *c, bool on)
{
    struct epoll_event ev = {.events = on ? EPOLLIN : 0, .data.fd = c->fd};
    syscall(SYS_epoll_ctl, c->ep_fd, EPOLL_CTL_MOD, c->fd, &ev);
}

bool fs__rmq_borrow(rconn *c)
{
    uint32_t v = RMQ_OWN_IDLE;
    if (atomic_load_explicit(&c->own, memory_order_relaxed) != v ||
        !atomic_compare_exchange_strong_explicit(&c->own, &v, RMQ_OWN_LENT, memory_order_acquire,
                                                 memory_order_relaxed))
        return false;
    /* The owner lends only a connection that is up, its socket in ep_fd. */
    arm_socket(c, false);
    c->now_ns = fs_kit_now_ns();
    return true;
}

bool fs__rmq_borrow_wait(rconn *c, rdone *d)
{
    for (;;) {
        if (!atomic_load_explicit(&c->up, memory_order_relaxed))
            break;
        /* Done only with rabbitmq-c's buffers empty: the owner sleeps on the socket alone. */
        if (!amqp_frames_enqueued(c->st) && !amqp_data_in_buffer(c->st)) {
            if (atomic_load_explicit(&d->v, memory_order_acquire) == 2)
                return true;
            /* A bounded wait: beyond it, the owner takes over (its timers,
             * the confirm deadline); the eventfd: someone wants the owner. */
            struct timespec ts = {0, 20000000};
            struct pollfd p[2] = {{c->fd, POLLIN, 0}, {c->wake_fd, POLLIN, 0}};
            long n = syscall(SYS_ppoll, p, 2, &ts, NULL, 0);
            if (n <= 0 || p[1].revents)
                break;
        }
        c->readable = true;
        if (!read_frames(c, c->now_ns))
            break;
    }
    c->readable = true; /* the owner reads on from here */
    return false;
}

void fs__rmq_give_back(rconn *c, bool wake)
{
    arm_socket(c, true); /* data already there wakes the owner at once */
    uint32_t v = RMQ_OWN_LENT;
    if (!atomic_compare_exchange_strong_explicit(&c->own, &v, RMQ_OWN_IDLE, memory_order_release,
                                                 memory_order_relaxed)) {
        /* The owner woke meanwhile and waits: hand it over directly. */
        atomic_store_explicit(&c->own, RMQ_OWN_RUN, memory_order_release);
        syscall(SYS_futex, &c->own, FUTEX_WAKE_PRIVATE, 1, NULL, NULL, 0);
        return;
    }
    if (wake)
        wake_owner(c);
}

/* The owner after its sleep: the connection back from IDLE, or from the
 * borrower (told through the eventfd, which it polls, and waited for);
 * true when it waited (its eventfd was written). */
static bool take_back(rconn *c)
{
    bool waited = false;
    for (;;) {
        uint32_t v = atomic_load_explicit(&c->own, memory_order_acquire);
        if (v == RMQ_OWN_RUN)
            return waited;
        if (v == RMQ_OWN_IDLE) {
            if (atomic_compare_exchange_weak_explicit(&c->own, &v, RMQ_OWN_RUN,
                                                      memory_order_acquire, memory_order_relaxed))
                return waited;
            continue;
        }
        waited = true;
        if (v == RMQ_OWN_LENT) {
            if (atomic_compare_exchange_weak_explicit(&c->own, &v, RMQ_OWN_LENT | RMQ_OWN_WANT,
                                                      memory_order_relaxed, memory_order_relaxed))
                wake_owner(c); /* the borrower polls the eventfd: it gives back soon */
            continue;
        }
        syscall(SYS_futex, &c->own, FUTEX_WAIT_PRIVATE, v, NULL, NULL, 0);
    }
}

int fs__rmq_call(rmq_broker *b, int (*fn)(rconn *, rcall *), rcall *call)
{
    rconn *c = &b->conn;
    if (!c->thread_started || atomic_load(&b->closed))
        return fs_adapter_error(FS_ECLOSED, "rabbitmq: not connected (fs_broker_connect first)");
    call->cmd.kind = CMD_CALL;
    call->fn = fn;
    call->rc = FS_OK;
    call->err[0] = '\0';
    call->etype = NULL;
    fs__rmq_done_init(&call->done);
    fs__rmq_post(c, &call->cmd);
    fs__rmq_done_wait(&call->done);
    if (call->rc < 0)
        return fs_adapter_error(call->rc, "%s", call->err[0] ? call->err : "rabbitmq: failed");
    return call->rc;
}

static void run_cmd(rconn *c, rcmd *cmd)
{
    switch (cmd->kind) {
    case CMD_RELEASE: {
        rrec *r = (rrec *)((char *)cmd - offsetof(rrec, cmd));
        fs__rmq_sub_release(c, r);
        break;
    }
    case CMD_PUBLISH:
        fs__rmq_pub_run(c, (rpub *)cmd);
        break;
    case CMD_CALL: {
        rcall *call = (rcall *)cmd;
        call->rc = call->fn(c, call);
        if (!call->async)
            fs__rmq_done_post(&call->done);
        break;
    }
    }
}

/* Run everything posted so far, oldest first. */
static void drain_inbox(rconn *c)
{
    rcmd *list = atomic_exchange_explicit(&c->inbox, NULL, memory_order_acquire);
    rcmd *rev = NULL;
    while (list) {
        rcmd *next = list->next;
        list->next = rev;
        rev = list;
        list = next;
    }
    while (rev) {
        rcmd *next = rev->next;
        run_cmd(c, rev);
        rev = next;
    }
}

/* ------------------------------------------------------------------------ */
/* Frames                                                                   */

static void dispatch(rconn *c, const amqp_frame_t *f)
{
    if (f->channel == 0) {
        if (f->frame_type == AMQP_FRAME_METHOD &&
            f->payload.method.id == AMQP_CONNECTION_CLOSE_METHOD) {
            amqp_connection_close_t *cc = f->payload.method.decoded;
            snprintf(c->last_error, sizeof c->last_error, "closed by the server: %d %.*s",
                     cc->reply_code, (int)cc->reply_text.len, (char *)cc->reply_text.bytes);
            amqp_connection_close_ok_t ok = {0};
            amqp_send_method(c->st, 0, AMQP_CONNECTION_CLOSE_OK_METHOD, &ok);
            atomic_store(&c->up, false);
        } else if (f->frame_type == AMQP_FRAME_METHOD &&
                   f->payload.method.id == AMQP_CONNECTION_BLOCKED_METHOD) {
            fs_adapter_log(FS_LOG_WARN, RMQ, "the server blocked publishing (resource alarm)");
        }
        return;
    }
    if (f->frame_type == AMQP_FRAME_METHOD && f->payload.method.id == AMQP_CHANNEL_CLOSE_METHOD) {
        amqp_channel_close_t *cc = f->payload.method.decoded;
        char msg[320];
        snprintf(msg, sizeof msg, "rabbitmq: channel %u closed by the server: %d %.*s",
                 (unsigned)f->channel, cc->reply_code, (int)cc->reply_text.len,
                 (char *)cc->reply_text.bytes);
        amqp_channel_close_ok_t ok = {0};
        amqp_send_method(c->st, f->channel, AMQP_CHANNEL_CLOSE_OK_METHOD, &ok);
        fs__rmq_channel_closed(c, f->channel);
        rpch *pc = fs__rmq_pub_by_channel(c, f->channel);
        if (pc) {
            char text[256];
            snprintf(text, sizeof text, "%.*s", (int)cc->reply_text.len,
                     (char *)cc->reply_text.bytes);
            fs__rmq_pub_closed(c, pc, cc->reply_code, text);
        } else if (f->channel == RMQ_CH_RPC) {
            fs__rmq_rpc_fail_all(c, FS_EBROKER, msg);
            char err[320];
            fs__rmq_rpc_setup(c, err, sizeof err);
        } else if (f->channel != RMQ_CH_TOPO) {
            fs_adapter_log(FS_LOG_ERROR, RMQ, "%s; consuming again later", msg + strlen(RMQ ": "));
        }
        return;
    }
    rpch *pc = fs__rmq_pub_by_channel(c, f->channel);
    if (pc)
        fs__rmq_pub_frame(c, pc, f);
    else if (f->channel == RMQ_CH_RPC)
        fs__rmq_rpc_frame(c, f);
    else {
        rsub *s = fs__rmq_sub_by_channel(c->b, f->channel);
        if (s)
            fs__rmq_sub_frame(c, s, f);
    }
}

/*
 * Read and dispatch the frames available now; false when the connection
 * failed. rabbitmq-c is only asked when there is something to read (the
 * socket polled readable, or bytes or frames it holds already), and at least
 * every quarter heartbeat, when it also sends our heartbeats.
 */
static bool read_frames(rconn *c, uint64_t now)
{
    if (!c->readable && !amqp_data_in_buffer(c->st) && !amqp_frames_enqueued(c->st) &&
        now < c->next_io_ns)
        return atomic_load(&c->up);
    c->readable = false;
    uint64_t hb = c->b->heartbeat > 0 ? (uint64_t)c->b->heartbeat * 250000000ull : 1000000000ull;
    c->next_io_ns = now + hb;
    amqp_channel_t used[8]; /* the channels frames came on (their buffers are released) */
    unsigned nused = 0;
    for (int i = 0; i < 512 && atomic_load(&c->up); i++) {
        amqp_frame_t f;
        struct timeval zero = {0, 0};
        int rc = amqp_simple_wait_frame_noblock(c->st, &f, &zero);
        if (rc == AMQP_STATUS_TIMEOUT)
            break;
        if (rc != AMQP_STATUS_OK) {
            snprintf(c->last_error, sizeof c->last_error, "%s", amqp_error_string2(rc));
            return false;
        }
        unsigned k = 0;
        while (k < nused && k < 8 && used[k] != f.channel)
            k++;
        if (k == nused && nused++ < 8)
            used[k] = f.channel;
        dispatch(c, &f);
        if (!c->st || !atomic_load(&c->up))
            break;
        if (!amqp_frames_enqueued(c->st) && !amqp_data_in_buffer(c->st)) {
            /* one channel's buffers, not every channel's (7 and more) each time */
            if (c->release_all || nused > 8) {
                amqp_maybe_release_buffers(c->st);
                c->release_all = false;
            } else {
                for (k = 0; k < nused; k++)
                    amqp_maybe_release_buffers_on_channel(c->st, used[k]);
            }
            break; /* the rest, if any, when poll says so */
        }
    }
    return atomic_load(&c->up);
}

static void retry_subs(rconn *c)
{
    rmq_broker *b = c->b;
    pthread_mutex_lock(&b->mu);
    for (rsub *s = b->subs; s && c->st; s = s->next)
        if (s->want && !s->active) {
            char err[320];
            int rc = fs__rmq_sub_consume(c, s, err, sizeof err);
            if (rc && !s->err_logged)
                fs_adapter_log(FS_LOG_ERROR, RMQ, "%s (retrying every second)",
                               err + strlen(RMQ ": "));
            s->err_logged = rc != 0;
        }
    pthread_mutex_unlock(&b->mu);
}

static void *owner_main(void *arg)
{
    rconn *c = arg;
    uint64_t next_retry_subs = 0;
    while (!atomic_load(&c->quit)) {
        uint64_t now = fs_kit_now_ns();
        c->now_ns = now;
        c->rpc_ran = false;
        if (!c->st && now >= c->retry_at_ns)
            try_reconnect(c, now);
        drain_inbox(c);
        uint64_t due = now + 1000000000ull;
        if (c->delayed)
            fs__rmq_delayed_run(c, now, &due);
        if (now >= c->pub_due_ns || c->waiting) /* else the earliest confirm deadline */
            fs__rmq_pub_timeouts(c, now, &due);
        else if (c->pub_due_ns < due)
            due = c->pub_due_ns;
        if (c->st) {
            if (!read_frames(c, now)) {
                connection_lost(c, c->last_error[0] ? c->last_error : "closed");
                continue;
            }
            if (now >= next_retry_subs) {
                fs__rmq_pub_reopen(c);
                retry_subs(c);
                next_retry_subs = now + 1000000000ull;
            }
            if (amqp_frames_enqueued(c->st) || amqp_data_in_buffer(c->st))
                continue;
        } else if (c->retry_at_ns < due) {
            due = c->retry_at_ns;
        }
        if (c->b->heartbeat > 0) {
            uint64_t hb = now + (uint64_t)c->b->heartbeat * 250000000ull;
            if (hb < due)
                due = hb;
        }
        atomic_store(&c->sleeping, true);
        if (atomic_load(&c->inbox) || atomic_load(&c->quit)) {
            atomic_store(&c->sleeping, false);
            c->readable = true; /* not polled: try reading anyway (busy times) */
            continue;
        }
        if (c->rpc_ran || !c->st) /* slow work since `now` (a declare, a connect) */
            now = fs_kit_now_ns();
        uint64_t wait = due > now ? due - now : 0;
        int wait_ms = wait >= 3600000000000ull ? 3600000 : (int)((wait + 999999) / 1000000);
        bool lend = c->st && c->sock_in_ep && atomic_load(&c->up);
        if (lend) /* a publisher may take the connection while we sleep */
            atomic_store_explicit(&c->own, RMQ_OWN_IDLE, memory_order_release);
        struct epoll_event ev[4];
        /* epoll_wait(), without cancellation */
        long n = syscall(SYS_epoll_wait, c->ep_fd, ev, 4, wait_ms);
        bool woken = lend && take_back(c); /* then our own wake-up is pending */
        atomic_store(&c->sleeping, false);
        for (long i = 0; i < n; i++) {
            if (ev[i].data.fd == c->wake_fd)
                woken = true;
            else
                c->readable = true;
        }
        if (woken) {
            uint64_t v;
            syscall(SYS_read, c->wake_fd, &v, sizeof v);
        }
    }
    /* Quitting: fail what still waits, close cleanly. */
    drain_inbox(c);
    fs__rmq_pub_fail_all(c, FS_ECLOSED, "ConnectionClosed", "rabbitmq: the broker was closed");
    fs__rmq_rpc_fail_all(c, FS_ECLOSED, "rabbitmq: the broker was closed");
    while (c->delayed) { /* nacks still waiting: send them now */
        rrec *r = c->delayed;
        c->delayed = r->next;
        r->delay_done = true;
        fs__rmq_sub_release(c, r);
    }
    if (c->st) {
        amqp_connection_close(c->st, AMQP_REPLY_SUCCESS);
        drop_connection(c);
    }
    return NULL;
}

int fs__rmq_conn_start(rmq_broker *b)
{
    rconn *c = &b->conn;
    if (c->thread_started)
        return atomic_load(&c->up) || c->st ? FS_OK : FS_OK;
    c->b = b;
    if (c->wake_fd < 0)
        c->wake_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (c->wake_fd < 0)
        return fs_adapter_error(FS_EIO, "rabbitmq: eventfd: %s", strerror(errno));
    if (c->ep_fd < 0) {
        c->ep_fd = epoll_create1(EPOLL_CLOEXEC);
        struct epoll_event ev = {.events = EPOLLIN, .data.fd = c->wake_fd};
        if (c->ep_fd < 0 || epoll_ctl(c->ep_fd, EPOLL_CTL_ADD, c->wake_fd, &ev)) {
            int e = errno;
            if (c->ep_fd >= 0)
                close(c->ep_fd);
            c->ep_fd = -1;
            return fs_adapter_error(FS_EIO, "rabbitmq: epoll: %s", strerror(e));
        }
    }
    atomic_store(&c->own, RMQ_OWN_RUN);
    char err[320];
    int rc = connect_once(c, err, sizeof err);
    if (rc)
        return fs_adapter_error(rc, "%s", err);
    atomic_store(&c->quit, false);
    fs_kit_backoff_init(&c->backoff, RMQ_BACKOFF_MIN_MS, RMQ_BACKOFF_MAX_MS);
    int err2 = pthread_create(&c->thread, NULL, owner_main, c);
    if (err2) {
        drop_connection(c);
        return fs_adapter_error(FS_ENOMEM, "rabbitmq: cannot start the connection thread: %s",
                                strerror(err2));
    }
    c->thread_started = true;
    return FS_OK;
}

void fs__rmq_conn_shutdown(rmq_broker *b)
{
    rconn *c = &b->conn;
    if (!c->thread_started)
        return;
    atomic_store(&c->quit, true);
    uint64_t one = 1;
    ssize_t w = write(c->wake_fd, &one, sizeof one);
    (void)w;
    pthread_join(c->thread, NULL);
    c->thread_started = false;
    /* Posted while the owner was quitting (the broker was closed meanwhile): nothing
     * waits forever. With st NULL, run_cmd fails publishes and recycles records. */
    rcmd *list = atomic_exchange(&c->inbox, NULL);
    while (list) {
        rcmd *next = list->next;
        if (list->kind == CMD_CALL) {
            rcall *call = (rcall *)list;
            call->rc = FS_ECLOSED;
            snprintf(call->err, sizeof call->err, "rabbitmq: the broker was closed");
            fs__rmq_done_post(&call->done);
        } else {
            run_cmd(c, list);
        }
        list = next;
    }
}
