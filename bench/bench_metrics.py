#!/usr/bin/python3
"""Python prometheus_client equivalents of bench_metrics.c (workloads a-f).

Run with Debian's interpreter, /usr/bin/python3, which sees
python3-prometheus-client (the client FastStream itself uses). Every workload
builds the same metrics as its C twin, calibrates its iteration count so that
one timed run lasts at least MIN_TIME seconds, runs REPEATS timed runs and
reports the best. The garbage collector is disabled while timing, as timeit
does.

Output: one "key ns_per_op" line per workload, comment lines start with '#'.
Usage: bench_metrics.py [--min-time SECONDS] [--repeats N] [--only KEY,KEY]
"""

import argparse
import gc
import sys
import threading
import time

try:
    from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
    from prometheus_client import generate_latest
except ImportError:
    sys.exit("bench_metrics.py: prometheus_client not found; run it with /usr/bin/python3 "
             "(Debian's python3-prometheus-client)")

MIN_TIME = 0.2
REPEATS = 3

# The metric schema of METRICS.md (what FastStream's PrometheusMiddleware registers).
LABELS3 = ("app_name", "broker", "handler")
VALUES3 = ("faststream", "memory", "orders")
STATUS_VALUES = VALUES3 + ("acked",)
SIZE_BUCKETS = [2.0 ** e for e in range(4, 25, 2)]  # 16 ... 16777216: 11 finite + +Inf
# Observed values for the histogram workload: spread over the default buckets.
OBSERVATIONS = [0.001, 0.007, 0.02, 0.03, 0.06, 0.08, 0.2, 0.3,
                0.6, 0.9, 2.0, 3.0, 6.0, 9.0, 20.0, 0.004]


def now_ns():
    return time.perf_counter_ns()


def measure(run):
    """run(n) performs n operations and returns the elapsed ns. Best ns/op of REPEATS."""
    n = 1
    while True:  # calibrate: grow n until one run takes >= MIN_TIME
        elapsed = run(n)
        if elapsed >= MIN_TIME * 1e9:
            break
        if elapsed < MIN_TIME * 1e9 / 100:
            n *= 10
        else:
            n = int(n * MIN_TIME * 1e9 * 1.1 / elapsed) + 1
    best = elapsed / n
    for _ in range(REPEATS - 1):
        best = min(best, run(n) / n)
    return best


def timed(fn):
    """Wrap fn(n) so that it returns elapsed ns with the GC off, as timeit does."""
    def run(n):
        gc_was_enabled = gc.isenabled()
        gc.disable()
        try:
            t0 = now_ns()
            fn(n)
            return now_ns() - t0
        finally:
            if gc_was_enabled:
                gc.enable()
    return run


def labelled_counter_family(registry, children=8):
    fam = Counter("bench_requests_total", "Requests.", LABELS3, registry=registry)
    for i in range(children):  # neighbours, so that the lookup is not into a 1-entry table
        fam.labels("faststream", "memory", "other-%04d" % i).inc()
    return fam


def bench_counter_inc():
    child = labelled_counter_family(CollectorRegistry()).labels(*VALUES3)

    def loop(n):
        for _ in range(n):
            child.inc()
    return measure(timed(loop))


def bench_counter_inc_2t():
    child = labelled_counter_family(CollectorRegistry()).labels(*VALUES3)

    def run(n):
        start = threading.Barrier(3)

        def worker():
            start.wait()
            for _ in range(n):
                child.inc()
        threads = [threading.Thread(target=worker) for _ in range(2)]
        for t in threads:
            t.start()
        gc.disable()
        start.wait()
        t0 = now_ns()
        for t in threads:
            t.join()
        elapsed = now_ns() - t0
        gc.enable()
        return elapsed  # wall time; divided by the per-thread count of n
    return measure(run)


def bench_labels_inc():
    fam = labelled_counter_family(CollectorRegistry())
    a, b, c = VALUES3

    def loop(n):
        for _ in range(n):
            fam.labels(a, b, c).inc()
    return measure(timed(loop))


def bench_hist_observe():
    fam = Histogram("bench_latency_seconds", "Latency.", LABELS3, registry=CollectorRegistry())
    child = fam.labels(*VALUES3)
    values = OBSERVATIONS

    def loop(n):
        for i in range(n):
            child.observe(values[i & 15])
    return measure(timed(loop))


def middleware_families(registry, prefix="faststream"):
    """The families of METRICS.md, as FastStream's middleware registers them."""
    return {
        "received": Counter(prefix + "_received_messages_total",
                            "Count of received messages by broker and handler",
                            LABELS3, registry=registry),
        "size": Histogram(prefix + "_received_messages_size_bytes",
                          "Histogram of received messages size in bytes by broker and handler",
                          LABELS3, registry=registry, buckets=SIZE_BUCKETS),
        "in_process": Gauge(prefix + "_received_messages_in_process",
                            "Gauge of received messages in process by broker and handler",
                            LABELS3, registry=registry),
        "processed": Counter(prefix + "_received_processed_messages_total",
                             "Count of received processed messages by broker, handler and status",
                             LABELS3 + ("status",), registry=registry),
        "duration": Histogram(prefix + "_received_processed_messages_duration_seconds",
                              "Histogram of received processed messages duration in seconds by "
                              "broker and handler", LABELS3, registry=registry),
        "exceptions": Counter(prefix + "_received_processed_messages_exceptions_total",
                              "Count of received processed messages exceptions by broker, handler "
                              "and exception_type", LABELS3 + ("exception_type",),
                              registry=registry),
    }


def bench_middleware():
    fams = middleware_families(CollectorRegistry())
    received, size_h, in_process = fams["received"], fams["size"], fams["in_process"]
    processed, duration = fams["processed"], fams["duration"]
    app, broker, handler = VALUES3
    count, size = 1, 100
    perf_counter = time.perf_counter

    def loop(n):
        for _ in range(n):
            received.labels(app, broker, handler).inc(count)           # 1
            size_h.labels(app, broker, handler).observe(size)          # 2
            in_process.labels(app, broker, handler).inc(count)         # 3
            start = perf_counter()                                     # 4 (the handler)
            elapsed = perf_counter() - start
            duration.labels(app, broker, handler).observe(elapsed)     # 6
            in_process.labels(app, broker, handler).dec(count)         # 7
            processed.labels(app, broker, handler, "acked").inc(count)  # 8
    return measure(timed(loop))


def bench_middleware_kept():
    fams = middleware_families(CollectorRegistry())
    received = fams["received"].labels(*VALUES3)
    size_h = fams["size"].labels(*VALUES3)
    in_process = fams["in_process"].labels(*VALUES3)
    processed = fams["processed"].labels(*STATUS_VALUES)
    duration = fams["duration"].labels(*VALUES3)
    count, size = 1, 100
    perf_counter = time.perf_counter

    def loop(n):
        for _ in range(n):
            received.inc(count)
            size_h.observe(size)
            in_process.inc(count)
            start = perf_counter()
            elapsed = perf_counter() - start
            duration.observe(elapsed)
            in_process.dec(count)
            processed.inc(count)
    return measure(timed(loop))


def render_registry(label_sets=1000):
    registry = CollectorRegistry()
    requests = Counter("bench_requests_total", "Requests by broker and handler.", LABELS3,
                       registry=registry)
    sizes = Histogram("bench_request_size_bytes", "Request sizes by broker and handler.", LABELS3,
                      registry=registry, buckets=SIZE_BUCKETS)
    for i in range(label_sets):
        values = ("faststream", "memory", "handler-%04d" % i)
        requests.labels(*values).inc(i + 1)
        sizes.labels(*values).observe(float(37 * i % 5000 + 1))
    return registry


def bench_render():
    registry = render_registry()

    def loop(n):
        for _ in range(n):
            generate_latest(registry)
    return measure(timed(loop))


BENCHES = [
    ("counter_inc", bench_counter_inc),
    ("counter_inc_2t", bench_counter_inc_2t),
    ("labels_inc", bench_labels_inc),
    ("hist_observe", bench_hist_observe),
    ("middleware", bench_middleware),
    ("middleware_kept", bench_middleware_kept),
    ("render_1000", bench_render),
]


def main():
    global MIN_TIME, REPEATS
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--min-time", type=float, default=MIN_TIME)
    ap.add_argument("--repeats", type=int, default=REPEATS)
    ap.add_argument("--only", default="")
    args = ap.parse_args()
    MIN_TIME, REPEATS = args.min_time, max(1, args.repeats)
    only = set(filter(None, args.only.split(",")))
    try:
        from importlib.metadata import version
        client_version = version("prometheus_client")
    except Exception:  # noqa: BLE001 - the version is only informative
        client_version = "?"
    print("# python %s, prometheus_client %s" % (sys.version.split()[0], client_version))
    for key, fn in BENCHES:
        if only and key not in only:
            continue
        print("%s %.3f" % (key, fn()), flush=True)


if __name__ == "__main__":
    main()
