#!/usr/bin/python3
"""A real Prometheus server scrapes the endpoint over HTTPS with basic auth.

  check_prometheus_tls.py SECURE_SERVER [PROMETHEUS]

Makes a test CA with openssl, a server certificate for 127.0.0.1 and a
client certificate, and starts fs_test_secure_server (secure_server.c) with
TLS, a required client certificate and basic auth. Then:
  - without credentials, with a wrong password and with a wrong user: 401,
    a Basic challenge, and no metric name, help text or value in the answer;
  - without a client certificate: 403, nothing leaks;
  - plain HTTP to the HTTPS port gets no metrics, and the server goes on;
  - with the right credentials: 200 and the metrics;
  - a Prometheus server (tests/support/promserver.py) configured with the CA,
    the client certificate and the credentials scrapes it: the target is up
    and the counter's value arrives;
  - the same checks with a "sha256:" hash instead of the plain password (the
    bcrypt hash is covered by test_http_auth.c).
Everything on loopback, in a temporary directory, bounded in time.
"""

import base64
import hashlib
import os
import socket
import ssl
import subprocess
import sys
import tempfile
import urllib.error
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "support"))
import child  # noqa: E402
import promserver  # noqa: E402

USER = "prometheus"
PASSWORD = "correct horse:battery"


class CheckFailed(AssertionError):
    pass


def openssl(*args, cwd):
    subprocess.run(["openssl"] + list(args), cwd=cwd, check=True, stdout=subprocess.DEVNULL,
                   stderr=subprocess.PIPE, timeout=60)


def make_pki(d):
    """CA, server certificate for 127.0.0.1, client certificate; PEM files in d."""
    openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
            "-nodes", "-keyout", "ca.key", "-out", "ca.pem", "-days", "2", "-subj",
            "/CN=faststream test CA", "-addext", "basicConstraints=critical,CA:TRUE",
            "-addext", "keyUsage=critical,keyCertSign,cRLSign", cwd=d)
    for name, ext in (("server", "subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth"),
                      ("client", "extendedKeyUsage=clientAuth")):
        openssl("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
                "-keyout", name + ".key", "-out", name + ".csr", "-subj", "/CN=" + name, cwd=d)
        with open(os.path.join(d, name + ".ext"), "w") as f:
            f.write(ext + "\n")
        openssl("x509", "-req", "-in", name + ".csr", "-CA", "ca.pem", "-CAkey", "ca.key",
                "-CAcreateserial", "-out", name + ".pem", "-days", "2", "-extfile",
                name + ".ext", cwd=d)
    return {k: os.path.join(d, k) for k in
            ("ca.pem", "server.pem", "server.key", "client.pem", "client.key")}


class Server:
    def __init__(self, path, pki, password="-", hash_="-"):
        self.proc = subprocess.Popen(
            [path, pki["server.pem"], pki["server.key"], pki["ca.pem"], USER, password, hash_],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        line = child.first_line(self.proc)
        if not line.startswith("PORT "):
            self.proc.kill()
            raise CheckFailed("the server did not start: %r %s" % (
                line, self.proc.stderr.read().decode()))
        self.port = int(line.split()[1])
        self.url = "https://127.0.0.1:%d" % self.port

    def close(self):
        self.proc.stdin.close()
        try:
            rc = self.proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            raise CheckFailed("the server did not stop")
        err = self.proc.stderr.read().decode()
        if rc != 0:
            raise CheckFailed("the server exited %d:\n%s" % (rc, err))


def fetch(url, pki, credentials=None, client_cert=True):
    ctx = ssl.create_default_context(cafile=pki["ca.pem"])
    if client_cert:
        ctx.load_cert_chain(pki["client.pem"], pki["client.key"])
    headers = {}
    if credentials is not None:
        headers["Authorization"] = "Basic " + base64.b64encode(credentials.encode()).decode()
    req = urllib.request.Request(url, headers=headers)
    try:
        with urllib.request.urlopen(req, timeout=20, context=ctx) as r:
            return r.status, dict(r.headers), r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, dict(e.headers), e.read().decode()


def expect_refused(server, pki, status, credentials=None, client_cert=True, path="/metrics"):
    got, headers, body = fetch(server.url + path, pki, credentials, client_cert)
    if got != status:
        raise CheckFailed("%s with %r (client cert %s): %d, want %d" % (
            path, credentials, client_cert, got, status))
    for secret in ("secure_scrapes", "Secret", "42", "# HELP", "# TYPE"):
        if secret in body:
            raise CheckFailed("a %d answer leaks %r: %r" % (status, secret, body))
    if status == 401 and "Basic" not in headers.get("WWW-Authenticate", ""):
        raise CheckFailed("401 without a Basic challenge: %r" % headers)


def check_plain_http_refused(server):
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as s:
        s.sendall(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
        data = b""
        try:
            while True:
                chunk = s.recv(4096)
                if not chunk:
                    break
                data += chunk
        except (socket.timeout, ConnectionResetError):
            pass
    if b"secure_scrapes" in data:
        raise CheckFailed("plain HTTP got the metrics")


def check_server(server, pki, prometheus, via_prometheus):
    expect_refused(server, pki, 401)
    expect_refused(server, pki, 401, USER + ":wrong")
    expect_refused(server, pki, 401, "someone:" + PASSWORD)
    expect_refused(server, pki, 401, path="/no-such-path")
    expect_refused(server, pki, 403, USER + ":" + PASSWORD, client_cert=False)
    check_plain_http_refused(server)
    status, _, body = fetch(server.url + "/metrics", pki, USER + ":" + PASSWORD)
    if status != 200 or "secure_scrapes_total 42" not in body:
        raise CheckFailed("the right credentials got %d: %r" % (status, body[:300]))
    print("%s: 401 without/with wrong credentials, 403 without a client certificate, "
          "200 with both" % server.url)
    if not via_prometheus:
        return
    job = {
        "job_name": "secure",
        "scheme": "https",
        "metrics_path": "/metrics",
        "tls_config": {"ca_file": pki["ca.pem"], "cert_file": pki["client.pem"],
                       "key_file": pki["client.key"]},
        "basic_auth": {"username": USER, "password": PASSWORD},
        "static_configs": [{"targets": ["127.0.0.1:%d" % server.port]}],
    }
    with promserver.start([], interval=1.0, prometheus=prometheus,
                          scrape_configs=[job]) as prom:
        prom.wait_for_up(timeout=60)
        value = prom.wait_for('secure_scrapes_total{job="secure"}',
                              lambda rows: len(rows) == 1, timeout=30)
        got = float(value[0]["value"][1])
        if got != 42:
            raise CheckFailed("Prometheus read %r, want 42" % got)
        print("Prometheus scraped %s over HTTPS with basic auth and a client certificate: "
              "secure_scrapes_total = %g" % (server.url, got))


def run(server_path, prometheus):
    with tempfile.TemporaryDirectory(prefix="fs-tls-") as d:
        pki = make_pki(d)
        for password, hash_, via_prometheus in (
                (PASSWORD, "-", True),
                ("-", "sha256:" + hashlib.sha256(PASSWORD.encode()).hexdigest(), False)):
            server = Server(server_path, pki, password, hash_)
            try:
                check_server(server, pki, prometheus, via_prometheus)
            finally:
                server.close()


def main(argv):
    if len(argv) < 2:
        print(__doc__, file=sys.stderr)
        return 2
    try:
        run(argv[1], argv[2] if len(argv) > 2 else "/usr/bin/prometheus")
    except (CheckFailed, promserver.PromServerError, subprocess.CalledProcessError) as e:
        print("FAIL: %s" % e, file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
