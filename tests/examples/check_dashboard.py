#!/usr/bin/python3
"""Every panel of the FastStream Grafana dashboard lights up on the demo.

    check_dashboard.py DEMO PROMETHEUS PROMTOOL [--broker URL] [--seconds N]

Starts the demo service (faststream-demo) on a free port for a limited
--duration, a real Prometheus server (1 s scrape interval, temporary
storage) scraping it, lets them run about N seconds (default 20), then:

  1. checks the demo's /metrics with `promtool check metrics` (nothing may
     be reported);
  2. evaluates, through Prometheus' HTTP API, every panel query of
     DASHBOARD.md with the variable values given there, and requires each
     to return at least one series and no error;
  3. requires the demo to exit by itself with status 0 when its duration
     is over (a graceful shutdown).

--broker URL runs the demo on another broker (e.g. redis://127.0.0.1:6379),
--service NAME on the local server scripts/services.sh runs for NAME;
--expect-broker LABEL then requires every series the demo exports to say
broker="LABEL". --grafana JSON also evaluates every panel query of that
Grafana dashboard (deploy/grafana/dashboards/faststream.json) the same way;
its backlog panel must answer too when --backlog is given (the demo
exports the opt-in backlog family unless told --no-backlog; give --backlog
for brokers whose adapter can tell).
"""

import argparse
import json
import os
import subprocess
import sys
import time
import urllib.error
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "support"))
sys.path.insert(0, HERE)

import promserver  # noqa: E402
from dashboard_queries import PANELS, expand  # noqa: E402


def fail(msg, demo_log=None):
    print("FAIL: " + msg, file=sys.stderr)
    if demo_log:
        print("--- demo output ---\n" + demo_log[-4000:], file=sys.stderr)
    sys.exit(1)


def fetch(url, timeout=5):
    with urllib.request.urlopen(url, timeout=timeout) as r:
        return r.status, r.read()


def wait_for_metrics(url, proc, timeout=30):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            return False
        try:
            status, _ = fetch(url)
            if status == 200:
                return True
        except (urllib.error.URLError, OSError):
            pass
        time.sleep(0.1)
    return False


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("demo")
    ap.add_argument("prometheus")
    ap.add_argument("promtool")
    ap.add_argument("--broker", default=None)
    ap.add_argument("--seconds", type=float, default=20.0)
    ap.add_argument("--expect-broker", default=None)
    ap.add_argument("--service", default=None,
                    help="run on this local server (scripts/services.sh url NAME); "
                         "implies --expect-broker NAME")
    ap.add_argument("--grafana", default=None)
    ap.add_argument("--backlog", action="store_true")
    args = ap.parse_args()

    if args.service:
        services = os.path.join(os.path.dirname(os.path.dirname(HERE)), "scripts", "services.sh")
        url = subprocess.run([services, "url", args.service], stdout=subprocess.PIPE,
                             check=True).stdout.decode().strip()
        args.broker = args.broker or url
        args.expect_broker = args.expect_broker or args.service

    panels = list(PANELS)
    if args.grafana:
        with open(args.grafana, encoding="utf-8") as f:
            dash = json.load(f)
        panels = [("grafana: " + p["title"], t["expr"])
                  for p in dash["panels"] for t in p.get("targets", [])
                  if args.backlog or "_backlog" not in t["expr"]]

    for tool in (args.demo, args.prometheus, args.promtool):
        if not os.access(tool, os.X_OK):
            fail("%s is missing (build the demo; install Debian's prometheus package)" % tool)

    port = promserver.free_port()
    listen = "127.0.0.1:%d" % port
    # The demo outlives the observation window by a margin, then stops itself.
    duration = int(args.seconds) + 30
    cmd = [args.demo, "--listen", listen, "--duration", str(duration)]
    if args.broker:
        cmd += ["--broker", args.broker]
    log_path = os.path.join(os.environ.get("TMPDIR", "/tmp"), "fs-demo-%d.log" % os.getpid())
    logf = open(log_path, "w+b")
    demo = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=logf, stderr=subprocess.STDOUT)

    def demo_log():
        logf.flush()
        with open(log_path, "rb") as f:
            return f.read().decode("utf-8", "replace")

    try:
        metrics_url = "http://%s/metrics" % listen
        if not wait_for_metrics(metrics_url, demo):
            fail("the demo did not serve %s (exit code %s)" % (metrics_url, demo.poll()),
                 demo_log())
        out = demo_log()
        if metrics_url not in out:
            fail("the demo did not print where to look (%s)" % metrics_url, out)

        status, _ = fetch("http://%s/health" % listen)
        if status != 204:
            fail("health answered %d, expected 204" % status, demo_log())

        with promserver.start([listen], interval=1.0, prometheus=args.prometheus) as prom:
            prom.wait_for_up()
            time.sleep(args.seconds)

            # 1. promtool on what the demo serves right now.
            _, body = fetch(metrics_url)
            pt = subprocess.run([args.promtool, "check", "metrics"], input=body,
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
            report = pt.stdout.decode("utf-8", "replace").strip()
            if pt.returncode != 0 or report:
                fail("promtool check metrics reported (exit %d):\n%s" % (pt.returncode, report))
            print("ok   promtool check metrics: nothing reported")

            # 2. Every dashboard panel query.
            failures = []
            for title, template in panels:
                expr = expand(template)
                try:
                    rows = prom.query(expr)
                except promserver.PromServerError as e:
                    failures.append("%s: error: %s" % (title, e))
                    continue
                if not rows:
                    failures.append("%s: no series for %s" % (title, expr))
                    continue
                print("ok   %-55s %d series" % (title, len(rows)))
            if failures:
                fail("%d of %d dashboard panels are empty or failed:\n  %s" % (
                    len(failures), len(panels), "\n  ".join(failures)), demo_log())
            print("all %d dashboard panel queries returned data" % len(panels))

            if args.expect_broker:
                brokers = {r["metric"].get("broker") for r in
                           prom.query('{__name__=~"faststream_.+", broker!=""}')}
                if brokers != {args.expect_broker}:
                    fail("the demo's series say broker=%s, expected only %s" % (
                        sorted(b or "" for b in brokers), args.expect_broker), demo_log())
                print("ok   every series says broker=\"%s\"" % args.expect_broker)

            # The demo's promise: every received status, two or more
            # exception types, and publish errors.
            def label_set(expr, label):
                return {r["metric"].get(label) for r in prom.query(expr)}
            statuses = label_set("sum by (status) (faststream_received_processed_messages_total)",
                                 "status")
            missing = {"acked", "nacked", "rejected", "skipped", "error"} - statuses
            if missing:
                fail("the demo produced no %s messages" % ", ".join(sorted(missing)), demo_log())
            types = label_set("sum by (exception_type) "
                              "(faststream_received_processed_messages_exceptions_total)",
                              "exception_type")
            if len(types) < 2:
                fail("the demo produced fewer than two exception types: %s" % types, demo_log())
            if "error" not in label_set("sum by (status) (faststream_published_messages_total)",
                                        "status"):
                fail("the demo produced no publish errors", demo_log())
            print("ok   statuses %s, exception types %s, publish errors" % (
                sorted(statuses), sorted(types)))

        # 3. The demo stops by itself after --duration, cleanly.
        try:
            rc = demo.wait(timeout=duration + 30)
        except subprocess.TimeoutExpired:
            fail("the demo did not stop after --duration %d" % duration, demo_log())
        if rc != 0:
            fail("the demo exited with status %d" % rc, demo_log())
        print("ok   the demo stopped by itself with status 0")
    finally:
        if demo.poll() is None:
            demo.terminate()
            try:
                demo.wait(timeout=15)
            except subprocess.TimeoutExpired:
                demo.kill()
                demo.wait()
        logf.close()
        os.unlink(log_path)


if __name__ == "__main__":
    main()
