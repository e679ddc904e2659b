/*
 * Connecting: user/password, token and TLS with a client certificate
 * (certificates made with openssl for the test), the connection name as the
 * server shows it (/connz), a server list whose first server is down, and
 * the errors when credentials are missing or wrong. Runs its own
 * nats-servers on free ports of tests/support/server.h.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "nats_test.h"
#include "support/server.h"

enum { USERPASS, TOKEN, TLS, SERVERS };
static ts_server srv[SERVERS]; /* the certificates are in srv[0].dir */
static int mon_port;           /* the USERPASS server's monitoring port */
static const char *dir;

static int run(const char *fmt, ...)
{
    char cmd[2048];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(cmd, sizeof cmd, fmt, ap);
    va_end(ap);
    return system(cmd);
}

/* A CA, a server certificate for 127.0.0.1 and a client certificate, in dir. */
static int make_certs(void)
{
    return run("cd '%s' && printf 'subjectAltName=IP:127.0.0.1\\n' >server.ext && "
               "printf 'extendedKeyUsage=clientAuth\\n' >client.ext && "
               "openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes "
               "2>/dev/null "
               "-keyout ca.key -out ca.pem -days 1 -subj /CN=fs-test-ca && "
               "for n in server client; do "
               "openssl req -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes "
               "-keyout $n.key -out $n.csr -subj /CN=$n && "
               "openssl x509 -req -in $n.csr -CA ca.pem -CAkey ca.key -CAcreateserial "
               "-out $n.pem -days 1 -extfile $n.ext || exit 1; done >/dev/null 2>&1",
               dir) == 0
               ? 0
               : -1;
}

static void kill_servers(void)
{
    for (int i = 0; i < SERVERS; i++)
        ts_server_kill(&srv[i]);
}

static bool all_listening(void *arg)
{
    (void)arg;
    for (int i = 0; i < SERVERS; i++)
        if (!port_answers(srv[i].port))
            return false;
    return port_answers(mon_port);
}

static int setup(void **state)
{
    (void)state;
    for (int i = 0; i < SERVERS; i++) {
        if (ts_server_prepare(&srv[i], "nats-auth") != 0)
            return -1;
        srv[i].quiet = true;
    }
    mon_port = ts_free_port();
    dir = srv[0].dir;
    if (make_certs() < 0)
        return -1;
    char ports[SERVERS][16], mon[16], cert[300], key[300], ca[300];
    for (int i = 0; i < SERVERS; i++)
        snprintf(ports[i], sizeof ports[i], "%d", srv[i].port);
    snprintf(mon, sizeof mon, "%d", mon_port);
    snprintf(cert, sizeof cert, "%s/server.pem", dir);
    snprintf(key, sizeof key, "%s/server.key", dir);
    snprintf(ca, sizeof ca, "%s/ca.pem", dir);
    char *up[] = {"nats-server", "-a",     "127.0.0.1", "-p",     ports[USERPASS], "-m",
                  mon,           "--user", "alice",     "--pass", "s3cret",        NULL};
    char *tok[] = {"nats-server", "-a", "127.0.0.1", "-p", ports[TOKEN], "--auth", "t0ken", NULL};
    char *tls[] = {"nats-server", "-a",        "127.0.0.1", "-p",       ports[TLS],
                   "--tlsverify", "--tlscert", cert,        "--tlskey", key,
                   "--tlscacert", ca,          NULL};
    atexit(kill_servers); /* whatever way the run ends, the servers go with it */
    ts_server_spawn(&srv[USERPASS], up);
    ts_server_spawn(&srv[TOKEN], tok);
    ts_server_spawn(&srv[TLS], tls);
    /* up to 20 s: three servers start on a loaded machine */
    return ts_wait(all_listening, NULL, 20000) ? 0 : -1;
}

static int teardown(void **state)
{
    (void)state;
    int rc = 0;
    for (int i = 0; i < SERVERS; i++)
        rc |= ts_server_cleanup(&srv[i]);
    return rc;
}

/* Connect to `url` (opts may be NULL); the status of fs_broker_connect. */
static int try_connect(const char *url, fs_broker **keep)
{
    fs_nats_options o = FS_NATS_OPTIONS_INIT;
    o.connect_timeout_ms = 3000;
    fs_broker *b = NULL;
    int rc = fs_nats_broker_new(url, &o, &b);
    if (rc)
        fail_msg("%s: %s", url, fs_last_error());
    rc = fs_broker_connect(b);
    if (keep && rc == FS_OK)
        *keep = b;
    else
        fs_broker_free(b);
    return rc;
}

/* The monitoring port's /connz. */
static void connz(char *buf, size_t n)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = port_loopback(mon_port);
    assert_int_equal(connect(fd, (struct sockaddr *)&a, sizeof a), 0);
    const char req[] = "GET /connz HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n";
    assert_int_equal(write(fd, req, sizeof req - 1), (ssize_t)(sizeof req - 1));
    size_t got = 0;
    ssize_t r;
    while (got < n - 1 && (r = read(fd, buf + got, n - 1 - got)) > 0)
        got += (size_t)r;
    buf[got] = '\0';
    close(fd);
}

static void test_user_password_and_name(void **state)
{
    (void)state;
    char url[160];
    snprintf(url, sizeof url, "nats://alice:s3cret@127.0.0.1:%d?name=fs-auth-%ld",
             srv[USERPASS].port, (long)getpid());
    fs_broker *b = NULL;
    assert_int_equal(try_connect(url, &b), FS_OK);
    static char page[65536];
    connz(page, sizeof page);
    char name[48];
    snprintf(name, sizeof name, "\"name\": \"fs-auth-%ld\"", (long)getpid());
    if (!strstr(page, name))
        fail_msg("/connz does not show %s:\n%.2000s", name, page);
    fs_broker_free(b);

    snprintf(url, sizeof url, "nats://alice:wrong@127.0.0.1:%d", srv[USERPASS].port);
    assert_int_equal(try_connect(url, NULL), FS_EIO);
    assert_non_null(strstr(fs_last_error(), "no server answered"));
    snprintf(url, sizeof url, "nats://127.0.0.1:%d", srv[USERPASS].port);
    assert_int_equal(try_connect(url, NULL), FS_EIO);
    /* Options override the URL. */
    fs_nats_options o = FS_NATS_OPTIONS_INIT;
    o.user = "alice";
    o.password = "s3cret";
    assert_int_equal(fs_nats_broker_new(url, &o, &b), FS_OK);
    assert_int_equal(fs_broker_connect(b), FS_OK);
    fs_broker_free(b);
}

static void test_token(void **state)
{
    (void)state;
    char url[128];
    snprintf(url, sizeof url, "nats://t0ken@127.0.0.1:%d", srv[TOKEN].port);
    assert_int_equal(try_connect(url, NULL), FS_OK);
    snprintf(url, sizeof url, "nats://127.0.0.1:%d?token=t0ken", srv[TOKEN].port);
    assert_int_equal(try_connect(url, NULL), FS_OK);
    snprintf(url, sizeof url, "nats://127.0.0.1:%d?token=nope", srv[TOKEN].port);
    assert_int_equal(try_connect(url, NULL), FS_EIO);
}

static fs_outcome count_one(fs_message *m, void *user)
{
    (void)m;
    atomic_fetch_add((_Atomic int *)user, 1);
    return FS_OUTCOME_OK;
}

static void test_tls_client_certificate(void **state)
{
    (void)state;
    char url[1024];
    snprintf(url, sizeof url,
             "tls://127.0.0.1:%d?tls_ca=%s/ca.pem&tls_cert=%s/client.pem&tls_key=%s/client.key",
             srv[TLS].port, dir, dir, dir);
    fs_broker *b = NULL;
    assert_int_equal(try_connect(url, &b), FS_OK);
    _Atomic int got = 0;
    fs_subscriber *sub = NULL;
    assert_int_equal(fs_subscribe(b, "tls.check", count_one, (void *)&got, NULL, &sub), FS_OK);
    assert_int_equal(fs_broker_start(b), FS_OK);
    assert_int_equal(fs_publish_bytes(b, "tls.check", "x", 1), FS_OK);
    assert_int_equal(fs_subscriber_wait_handled(sub, 1, 5000), FS_OK);
    fs_broker_free(b);
    /* Without the client certificate the server refuses. */
    snprintf(url, sizeof url, "tls://127.0.0.1:%d?tls_ca=%s/ca.pem", srv[TLS].port, dir);
    assert_true(try_connect(url, NULL) < 0);
}

static void test_server_list(void **state)
{
    (void)state;
    char url[160];
    /* The first server does not answer (port 1); nats.c goes on to the next. */
    snprintf(url, sizeof url, "nats://127.0.0.1:1,nats://t0ken@127.0.0.1:%d", srv[TOKEN].port);
    assert_int_equal(try_connect(url, NULL), FS_OK);
}

int main(void)
{
    fs_set_log_level(FS_LOG_OFF);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_user_password_and_name),
        cmocka_unit_test(test_token),
        cmocka_unit_test(test_tls_client_certificate),
        cmocka_unit_test(test_server_list),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
