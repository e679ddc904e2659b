/*
 * fs_test_secure_server: serves a small registry over HTTPS with basic auth
 * for check_prometheus_tls.py.
 *
 *   fs_test_secure_server CERT KEY CLIENT_CA|- USER PASSWORD|- HASH|-
 *
 * "-" leaves a setting out. Prints "PORT <n>" once serving on 127.0.0.1 (a
 * free port) and serves until stdin reaches EOF; exits 0 after a clean stop.
 */
#include "faststream/http.h"

#include <stdio.h>
#include <string.h>

static const char *opt(const char *s)
{
    return strcmp(s, "-") == 0 ? NULL : s;
}

int main(int argc, char **argv)
{
    if (argc != 7) {
        fprintf(stderr, "usage: %s CERT KEY CLIENT_CA|- USER PASSWORD|- HASH|-\n", argv[0]);
        return 2;
    }
    fs_registry *reg;
    fs_counter *c;
    if (fs_registry_new(&reg) || fs_counter_new(reg, "secure_scrapes_total", "Secret", &c)) {
        fprintf(stderr, "registry: %s\n", fs_last_error());
        return 1;
    }
    fs_counter_add(c, 42);
    fs_http_options o = FS_HTTP_OPTIONS_INIT;
    o.port = FS_HTTP_PORT_ANY;
    o.registry = reg;
    o.tls_cert_file = argv[1];
    o.tls_key_file = argv[2];
    o.tls_client_ca_file = opt(argv[3]);
    o.basic_auth_user = opt(argv[4]);
    o.basic_auth_password = opt(argv[5]);
    o.basic_auth_hash = opt(argv[6]);
    fs_http_server *srv;
    if (fs_http_server_new(&o, &srv) || fs_http_server_start(srv)) {
        fprintf(stderr, "server: %s\n", fs_last_error());
        return 1;
    }
    printf("PORT %u\n", (unsigned)fs_http_server_port(srv));
    fflush(stdout);
    char buf[256];
    while (fgets(buf, sizeof buf, stdin)) {
    }
    fs_http_server_free(srv);
    fs_registry_free(reg);
    return 0;
}
