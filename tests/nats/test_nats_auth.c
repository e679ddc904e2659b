/*
 * Connecting: user/password, token and TLS with a client certificate
 * (certificates made with openssl for the test), the connection name as the
 * server shows it (/connz), a server list whose first server is down, and
 * the errors when credentials are missing or wrong. Runs its own
 * nats-servers on FS_NATS_PORT+200..202 (monitor FS_NATS_MONITOR_PORT+200).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "nats_test.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>

enum { USERPASS, TOKEN, TLS, SERVERS };
static int base_port, mon_port;
static char dir[256];
static pid_t servers[SERVERS];

static bool listening(int p)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)p)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    bool ok = connect(fd, (struct sockaddr *)&a, sizeof a) == 0;
    close(fd);
    return ok;
}

static pid_t spawn(char *const argv[])
{
    pid_t pid = fork();
    if (pid == 0) {
        int fd = open("/dev/null", O_RDWR);
        dup2(fd, 0);
        dup2(fd, 1);
        dup2(fd, 2);
        execvp(argv[0], argv);
        _exit(127);
    }
    return pid;
}

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
    for (int i = 0; i < SERVERS; i++) {
        if (servers[i] > 0) {
            kill(servers[i], SIGTERM);
            waitpid(servers[i], NULL, 0);
            servers[i] = -1;
        }
    }
}

static int setup(void **state)
{
    (void)state;
    const char *p = getenv("FS_NATS_PORT"), *m = getenv("FS_NATS_MONITOR_PORT");
    base_port = (p && *p ? atoi(p) : 14222) + 200;
    mon_port = (m && *m ? atoi(m) : 18222) + 200;
    snprintf(dir, sizeof dir, "%s/nats-auth-XXXXXX", getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
    if (!mkdtemp(dir) || make_certs() < 0)
        return -1;
    char ports[SERVERS][16], mon[16], cert[300], key[300], ca[300];
    for (int i = 0; i < SERVERS; i++)
        snprintf(ports[i], sizeof ports[i], "%d", base_port + i);
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
    for (int i = 0; i < SERVERS; i++) {
        if (listening(base_port + i)) {
            fprintf(stderr, "port %d is taken (a previous run's server?)\n", base_port + i);
            return -1;
        }
    }
    atexit(kill_servers); /* whatever way the run ends, the servers go with it */
    servers[USERPASS] = spawn(up);
    servers[TOKEN] = spawn(tok);
    servers[TLS] = spawn(tls);
    for (int i = 0; i < 800; i++) { /* up to 20 s: three servers start on a loaded machine */
        if (listening(base_port) && listening(base_port + 1) && listening(base_port + 2) &&
            listening(mon_port))
            return 0;
        nt_sleep_ms(25);
    }
    return -1;
}

static int teardown(void **state)
{
    (void)state;
    kill_servers();
    return run("rm -rf '%s'", dir) == 0 ? 0 : -1;
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
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)mon_port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
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
    snprintf(url, sizeof url, "nats://alice:s3cret@127.0.0.1:%d?name=fs-auth-%ld", base_port,
             (long)getpid());
    fs_broker *b = NULL;
    assert_int_equal(try_connect(url, &b), FS_OK);
    static char page[65536];
    connz(page, sizeof page);
    char name[48];
    snprintf(name, sizeof name, "\"name\": \"fs-auth-%ld\"", (long)getpid());
    if (!strstr(page, name))
        fail_msg("/connz does not show %s:\n%.2000s", name, page);
    fs_broker_free(b);

    snprintf(url, sizeof url, "nats://alice:wrong@127.0.0.1:%d", base_port);
    assert_int_equal(try_connect(url, NULL), FS_EIO);
    assert_non_null(strstr(fs_last_error(), "no server answered"));
    snprintf(url, sizeof url, "nats://127.0.0.1:%d", base_port);
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
    snprintf(url, sizeof url, "nats://t0ken@127.0.0.1:%d", base_port + TOKEN);
    assert_int_equal(try_connect(url, NULL), FS_OK);
    snprintf(url, sizeof url, "nats://127.0.0.1:%d?token=t0ken", base_port + TOKEN);
    assert_int_equal(try_connect(url, NULL), FS_OK);
    snprintf(url, sizeof url, "nats://127.0.0.1:%d?token=nope", base_port + TOKEN);
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
             base_port + TLS, dir, dir, dir);
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
    snprintf(url, sizeof url, "tls://127.0.0.1:%d?tls_ca=%s/ca.pem", base_port + TLS, dir);
    assert_true(try_connect(url, NULL) < 0);
}

static void test_server_list(void **state)
{
    (void)state;
    char url[160];
    /* The first server does not answer (port 1); nats.c goes on to the next. */
    snprintf(url, sizeof url, "nats://127.0.0.1:1,nats://t0ken@127.0.0.1:%d", base_port + TOKEN);
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
