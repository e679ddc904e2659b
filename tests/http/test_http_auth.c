/*
 * Basic auth on the HTTP endpoint with a plain password, a SHA-256 hash and
 * a bcrypt hash: the right credentials get the metrics; none, a wrong
 * password or a wrong user get 401 with a challenge and a body that names
 * nothing, on every path; bad settings are refused at creation, naming what
 * is wrong; the TLS options are checked likewise (the TLS handshake itself
 * is tested with a real Prometheus server in check_prometheus_tls.py).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <crypt.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "faststream/http.h"
#include "http/http_internal.h"
#include "support/http_client.h"

#define HOST "127.0.0.1"

static void base64(const char *in, char *out)
{
    static const char tab[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    size_t n = strlen(in), j = 0;
    for (size_t i = 0; i < n; i += 3) {
        unsigned v = (unsigned char)in[i] << 16;
        if (i + 1 < n)
            v |= (unsigned char)in[i + 1] << 8;
        if (i + 2 < n)
            v |= (unsigned char)in[i + 2];
        out[j++] = tab[(v >> 18) & 63];
        out[j++] = tab[(v >> 12) & 63];
        out[j++] = i + 1 < n ? tab[(v >> 6) & 63] : '=';
        out[j++] = i + 2 < n ? tab[v & 63] : '=';
    }
    out[j] = '\0';
}

/* GET path with `user:password` (NULL: no Authorization header). */
static int get(uint16_t port, const char *path, const char *credentials, test_http_response *r)
{
    char headers[512] = "";
    if (credentials) {
        char b64[256];
        base64(credentials, b64);
        snprintf(headers, sizeof headers, "Authorization: Basic %s\r\n", b64);
    }
    if (test_http_request(HOST, port, "GET", path, headers, r) != 0)
        fail_msg("GET %s: %s", path, test_http_error());
    return r->status;
}

static void expect_refused(uint16_t port, const char *path, const char *credentials)
{
    test_http_response r;
    int status = get(port, path, credentials, &r);
    if (status != 401)
        fail_msg("GET %s with %s: %d, want 401", path, credentials ? credentials : "nothing",
                 status);
    char buf[128];
    const char *challenge = test_http_header(&r, "WWW-Authenticate", buf, sizeof buf);
    assert_non_null(challenge);
    assert_non_null(strstr(challenge, "Basic"));
    assert_null(strstr(r.body, "secret"));
    assert_null(strstr(r.body, "metrics"));
    assert_null(strstr(r.head, "openmetrics"));
    test_http_response_free(&r);
}

static void check_server(const char *password, const char *hash)
{
    fs_registry *reg;
    assert_int_equal(fs_registry_new(&reg), FS_OK);
    fs_counter *c;
    assert_int_equal(fs_counter_new(reg, "secret_requests_total", "Requests", &c), FS_OK);
    fs_http_options o = FS_HTTP_OPTIONS_INIT;
    o.port = FS_HTTP_PORT_ANY;
    o.registry = reg;
    o.basic_auth_user = "prometheus";
    o.basic_auth_password = password;
    o.basic_auth_hash = hash;
    fs_http_server *srv;
    if (fs_http_server_new(&o, &srv) != FS_OK || fs_http_server_start(srv) != FS_OK)
        fail_msg("server: %s", fs_last_error());
    uint16_t port = fs_http_server_port(srv);
    test_http_response r;
    for (int i = 0; i < 3; i++) { /* the bcrypt cache answers the later ones */
        assert_int_equal(get(port, "/metrics", "prometheus:s3cret:with:colons", &r), 200);
        assert_non_null(strstr(r.body, "secret_requests_total"));
        test_http_response_free(&r);
    }
    expect_refused(port, "/metrics", NULL);
    expect_refused(port, "/metrics", "prometheus:wrong");
    expect_refused(port, "/metrics", "prometheus:s3cret:with:colon");
    expect_refused(port, "/metrics", "prometheus:s3cret:with:colonsX");
    expect_refused(port, "/metrics", "Prometheus:s3cret:with:colons");
    expect_refused(port, "/metrics", "prometheus:");
    expect_refused(port, "/metrics", ":");
    expect_refused(port, "/health", NULL);
    expect_refused(port, "/no-such-path", NULL); /* 401, not 404: nothing about routes leaks */
    /* A malformed Authorization header. */
    assert_int_equal(test_http_request(HOST, port, "GET", "/metrics",
                                       "Authorization: Basic !!!notbase64\r\n", &r),
                     0);
    assert_int_equal(r.status, 401);
    test_http_response_free(&r);
    assert_int_equal(get(port, "/health", "prometheus:s3cret:with:colons", &r), 204);
    test_http_response_free(&r);
    fs_http_server_free(srv);
    fs_registry_free(reg);
}

static void test_plain_password(void **state)
{
    (void)state;
    check_server("s3cret:with:colons", NULL);
}

static void test_sha256_hash(void **state)
{
    (void)state;
    uint8_t d[32];
    const char *pw = "s3cret:with:colons";
    fs__http_sha256(pw, strlen(pw), d);
    char hash[7 + 65] = "sha256:";
    for (int i = 0; i < 32; i++)
        sprintf(hash + 7 + 2 * i, "%02X", d[i]); /* upper-case hex is accepted too */
    check_server(NULL, hash);
}

static void test_bcrypt_hash(void **state)
{
    (void)state;
    char salt[CRYPT_GENSALT_OUTPUT_SIZE];
    assert_non_null(crypt_gensalt_rn("$2b$", 5, NULL, 0, salt, sizeof salt));
    struct crypt_data *data = calloc(1, sizeof *data);
    assert_non_null(data);
    const char *hash = crypt_rn("s3cret:with:colons", salt, data, (int)sizeof *data);
    assert_non_null(hash);
    assert_int_equal(strncmp(hash, "$2b$05$", 7), 0);
    char copy[128];
    snprintf(copy, sizeof copy, "%s", hash);
    free(data);
    check_server(NULL, copy);
}

static void test_auth_check_unit(void **state)
{
    (void)state;
    fs__http_auth a;
    assert_int_equal(fs__http_auth_init(&a, "u", "p", NULL), FS_OK);
    assert_true(fs__http_auth_check(&a, "u", "p"));
    assert_false(fs__http_auth_check(&a, "u", "P"));
    assert_false(fs__http_auth_check(&a, "U", "p"));
    assert_false(fs__http_auth_check(&a, NULL, "p"));
    assert_false(fs__http_auth_check(&a, "u", NULL));
    assert_false(fs__http_auth_check(&a, "u", ""));
    fs__http_auth_destroy(&a);
    assert_int_equal(fs__http_auth_init(&a, NULL, NULL, NULL), FS_OK);
    assert_true(fs__http_auth_check(&a, NULL, NULL)); /* disabled */
    fs__http_auth_destroy(&a);
}

static void expect_invalid(fs_http_options *o, int status, const char *want)
{
    fs_http_server *srv = (fs_http_server *)1;
    assert_int_equal(fs_http_server_new(o, &srv), status);
    assert_null(srv);
    if (!strstr(fs_last_error(), want))
        fail_msg("error \"%s\" does not mention \"%s\"", fs_last_error(), want);
}

static void test_bad_settings(void **state)
{
    (void)state;
    fs_http_options o = FS_HTTP_OPTIONS_INIT;
    o.basic_auth_password = "x";
    expect_invalid(&o, FS_EINVAL, "basic_auth_user");
    o.basic_auth_user = "u";
    o.basic_auth_hash = "sha256:00";
    expect_invalid(&o, FS_EINVAL, "exactly one");
    o.basic_auth_password = NULL;
    expect_invalid(&o, FS_EINVAL, "64 hex");
    o.basic_auth_hash = "sha256:zz00000000000000000000000000000000000000000000000000000000000000";
    expect_invalid(&o, FS_EINVAL, "64 hex");
    o.basic_auth_hash = "$2b$05$short";
    expect_invalid(&o, FS_EINVAL, "crypt(3)");
    o.basic_auth_hash = "plainlooking";
    expect_invalid(&o, FS_EINVAL, "crypt(3)");
    o.basic_auth_hash = NULL;
    o.basic_auth_password = "x";
    o.basic_auth_user = "a:b";
    expect_invalid(&o, FS_EINVAL, "':'");
    o.basic_auth_user = "";
    expect_invalid(&o, FS_EINVAL, "non-empty");

    o = (fs_http_options)FS_HTTP_OPTIONS_INIT;
    o.tls_cert_file = "/nonexistent/cert.pem";
    expect_invalid(&o, FS_EINVAL, "go together");
    o.tls_key_file = "/nonexistent/key.pem";
    expect_invalid(&o, FS_EIO, "/nonexistent/cert.pem");
    o.tls_cert_file = NULL;
    o.tls_key_file = NULL;
    o.tls_client_ca_file = "/nonexistent/ca.pem";
    expect_invalid(&o, FS_EINVAL, "tls_client_ca_file");
    o.tls_client_ca_file = NULL;
    o.tls_cert_file = "/dev/null";
    o.tls_key_file = "/dev/null";
    expect_invalid(&o, FS_EINVAL, "empty");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_auth_check_unit), cmocka_unit_test(test_plain_password),
        cmocka_unit_test(test_sha256_hash),     cmocka_unit_test(test_bcrypt_hash),
        cmocka_unit_test(test_bad_settings),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
