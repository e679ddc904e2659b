#!/usr/bin/python3
"""A real Prometheus server scrapes fs_test_exporter (exporter.c).

  check_prometheus.py EXPORTER [PROMETHEUS]

Starts the exporter and, through tests/support/promserver.py, a Prometheus
server on loopback (free port, temporary storage, scrape interval 1s) that
scrapes it. Then, through Prometheus' HTTP query API:
  - every target is up;
  - the received-messages counter of the "orders" handler is exactly what the
    exporter counted, and so is every escaping-heavy handler's counter (the
    label values arrive intact);
  - histogram_quantile over the exporter's histograms equals the quantiles
    computed here from the exporter's raw observations with Prometheus' own
    interpolation (promserver.bucket_quantile);
  - a change made after the first scrapes (GET /bump on the exporter) shows up;
  - the metadata API reports the help text the exporter registered.
Prometheus scrapes with its default Accept header (OpenMetrics first) and
gzip, so this also checks those paths against Prometheus' own parser.
"""

import math
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "support"))
import promserver  # noqa: E402
from fsexporter import CheckFailed, Exporter, histogram_buckets, number  # noqa: E402


def promql_string(s):
    return '"' + s.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


def selector(name, labels):
    return name + "{" + ",".join("%s=%s" % (k, promql_string(v)) for k, v in labels.items()) + "}"


def close(a, b):
    return a == b or abs(a - b) <= 1e-9 * max(abs(a), abs(b))


def run(exporter_path, prometheus):
    with Exporter(exporter_path) as ex, \
            promserver.start(["127.0.0.1:%d" % ex.port], interval=1.0,
                             prometheus=prometheus) as prom:
        prom.wait_for_up(timeout=60)
        series = ex.account["series"]
        checked = 0

        # Counters, including every escaping-heavy label value.
        for s in series:
            if s["kind"] != "counter":
                continue
            # Prometheus drops labels with an empty value; label="" matches their absence.
            labels = {k: v for k, v in s["labels"].items() if v != ""}
            expr = selector(s["name"], s["labels"])
            rows = prom.wait_for(expr, lambda rows: len(rows) >= 1, timeout=30)
            rows = [r for r in rows if set(r["metric"]) - {"__name__", "job", "instance"} == set(labels)]
            if len(rows) != 1:
                raise CheckFailed("%s: %d series: %s" % (expr, len(rows), rows))
            got = float(rows[0]["value"][1])
            if got != number(s["value"]):
                raise CheckFailed("%s = %r, the exporter counted %r" % (expr, got, s["value"]))
            metric = {k: v for k, v in rows[0]["metric"].items()
                      if k not in ("__name__", "job", "instance")}
            if metric != labels:
                raise CheckFailed("%s: labels came back as %r" % (expr, metric))
            checked += 1
        print("counters: %d series match, e.g. orders = %s" % (checked, next(
            s["value"] for s in series if s["kind"] == "counter"
            and s["labels"].get("handler") == "orders")))

        # Histogram quantiles.
        quantiles = 0
        for s in series:
            if s["kind"] != "histogram" or not s["observations"]:
                continue
            labels = s["labels"]
            buckets = histogram_buckets(s)
            for q in (0.5, 0.9, 0.99):
                want = promserver.bucket_quantile(q, buckets)
                expr = "histogram_quantile(%s, %s)" % (q, selector(s["name"] + "_bucket", labels))
                got = prom.query_value(expr)
                if not close(got, want):
                    raise CheckFailed("%s = %r, expected %r from the observations %s" % (
                        expr, got, want, s["observations"]))
                quantiles += 1
            # And the count/sum the exporter made.
            n = prom.query_value(selector(s["name"] + "_count", labels))
            if n != len(s["observations"]):
                raise CheckFailed("%s_count = %s, want %d" % (s["name"], n, len(s["observations"])))
        print("histogram_quantile: %d checks match Prometheus' interpolation" % quantiles)

        # The orders duration quantile, spelled out for the log.
        orders = next(s for s in series if s["kind"] == "histogram"
                      and s["name"].endswith("duration_seconds")
                      and s["labels"].get("handler") == "orders")
        q90 = promserver.bucket_quantile(0.9, histogram_buckets(orders))
        print("p90 of orders duration: %r" % q90)
        if not (math.isfinite(q90) and 0 < q90 < 10):
            raise CheckFailed("implausible p90 %r" % q90)

        # A change travels through the live scrapes: /bump adds 5 to the orders counter.
        orders_counter = next(s for s in series if s["kind"] == "counter"
                              and s["name"] == "faststream_received_messages_total"
                              and s["labels"].get("handler") == "orders")
        status, _, body = ex.fetch("/bump")
        bumped = float(body)
        if status != 200 or bumped != number(orders_counter["value"]) + 5:
            raise CheckFailed("/bump answered %s %r" % (status, body))
        expr = selector(orders_counter["name"], orders_counter["labels"])
        prom.wait_for(expr, lambda rows: len(rows) == 1 and float(rows[0]["value"][1]) == bumped,
                      timeout=30)
        print("live scrape: %s went to %s" % (expr, bumped))

        # Help text, as Prometheus' metadata API reports it.
        for fam, help_text in (("faststream_received_messages", None), ("demo_io_bytes", None)):
            s = next(s for s in series if s["name"] == fam + "_total")
            meta = prom.metadata(fam) or prom.metadata(fam + "_total")
            if not any(m["help"] == s["help"] for m in meta):
                raise CheckFailed("metadata of %s: %s, want help %r" % (fam, meta, s["help"]))
        print("metadata: help text intact")


def main(argv):
    if len(argv) < 2:
        print(__doc__, file=sys.stderr)
        return 2
    try:
        run(argv[1], argv[2] if len(argv) > 2 else "/usr/bin/prometheus")
    except (CheckFailed, promserver.PromServerError) as e:
        print("FAIL: %s" % e, file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
