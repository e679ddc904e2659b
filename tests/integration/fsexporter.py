"""Drive fs_test_exporter (exporter.c) from the integration checks.

    with Exporter(path) as ex:       # starts it, reads its account
        status, headers, body = ex.fetch("/metrics", {"Accept": ...})
        for key, want in expected_samples(ex.account, openmetrics=False).items(): ...
    # leaving the block closes its stdin: it must exit 0 (ASan leak check included)
"""

import gzip
import json
import math
import os
import shutil
import subprocess
import sys
import tempfile
import urllib.request

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                                "support"))
import child  # noqa: E402

TEXT_ACCEPT = "text/plain;version=0.0.4"
OPENMETRICS_ACCEPT = "application/openmetrics-text; version=1.0.0"


class CheckFailed(AssertionError):
    pass


class Exporter:
    def __init__(self, path):
        if not os.access(path, os.X_OK):
            raise CheckFailed("exporter %s is not built" % path)
        self._dir = tempfile.mkdtemp(prefix="fs-exporter-")
        account_path = os.path.join(self._dir, "expect.json")
        self._stderr = open(os.path.join(self._dir, "stderr"), "w+b")
        self.proc = subprocess.Popen([path, account_path], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, stderr=self._stderr)
        line = child.first_line(self.proc)
        if not line.startswith("PORT "):
            err = self.stderr()
            self.close(check=False)
            raise CheckFailed("the exporter did not start: %r\n%s" % (line, err))
        self.port = int(line.split()[1])
        self.pid = self.proc.pid
        self.url = "http://127.0.0.1:%d" % self.port
        with open(account_path) as f:
            self.account = json.load(f)

    def stderr(self):
        self._stderr.flush()
        self._stderr.seek(0)
        return self._stderr.read().decode("utf-8", "replace")

    def fetch(self, path="/metrics", headers=None):
        req = urllib.request.Request(self.url + path, headers=headers or {})
        with urllib.request.urlopen(req, timeout=30) as r:
            body = r.read()
            hdrs = dict(r.headers.items())
            if hdrs.get("Content-Encoding") == "gzip":
                body = gzip.decompress(body)
            return r.status, hdrs, body.decode("utf-8")

    def close(self, check=True):
        if self.proc.poll() is None:
            try:
                self.proc.stdin.close()
                self.proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        rc = self.proc.returncode
        err = self.stderr()
        self._stderr.close()
        shutil.rmtree(self._dir, ignore_errors=True)
        if check and rc != 0:
            raise CheckFailed("the exporter exited with %s:\n%s" % (rc, err))

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, tb):
        self.close(check=exc_type is None)
        return False


class Between:
    """An expected value known to lie in [lo, hi] (a _created timestamp)."""

    def __init__(self, lo, hi):
        self.lo, self.hi = lo, hi

    def matches(self, v):
        # The account writes the window with microsecond precision.
        return self.lo - 1e-6 <= v <= self.hi + 1e-6

    def __repr__(self):
        return "Between(%.6f, %.6f)" % (self.lo, self.hi)


def number(v):
    if isinstance(v, str):
        return {"NaN": math.nan, "+Inf": math.inf, "-Inf": -math.inf}[v]
    return float(v)


def same_value(want, got):
    if isinstance(want, Between):
        return want.matches(got)
    if math.isnan(want):
        return math.isnan(got)
    return want == got


def label_key(labels):
    """Labels as a hashable key; `le` compared as a number."""
    return tuple(sorted((k, float(v) if k == "le" else v) for k, v in labels.items()))


def histogram_buckets(series):
    """[(upper bound, cumulative count)] from the raw observations, +Inf last."""
    obs = [number(o) for o in series["observations"]]
    bounds = [number(b) for b in series["bounds"]] + [math.inf]
    return [(b, sum(1 for o in obs if o <= b)) for b in bounds]


def expected_samples(account, openmetrics):
    """{(sample name, label key): expected value} for one exposition format."""
    out = {}

    def put(name, labels, value):
        key = (name, label_key(labels))
        if key in out:
            raise CheckFailed("the account lists %s twice" % (key,))
        out[key] = value

    for s in account["series"]:
        kind, name, labels = s["kind"], s["name"], s["labels"]
        if kind == "counter":
            put(name, labels, number(s["value"]))
            if openmetrics:
                put(name[:-len("_total")] + "_created", labels,
                    Between(s["created_lo"], s["created_hi"]))
        elif kind in ("gauge", "info", "collected_gauge", "collected_counter"):
            put(name, labels, number(s["value"]))
        elif kind == "histogram":
            for bound, count in histogram_buckets(s):
                put(name + "_bucket", dict(labels, le=repr(bound)), float(count))
            total = 0.0
            for o in s["observations"]:
                total += number(o)  # in observation order, as the exporter observed
            put(name + "_count", labels, float(len(s["observations"])))
            put(name + "_sum", labels, total)
            if openmetrics:
                put(name + "_created", labels, Between(s["created_lo"], s["created_hi"]))
        else:
            raise CheckFailed("unknown kind %s" % kind)
    return out


def expected_families(account, openmetrics):
    """{family name: (type, help)} as each format's parser reports them."""
    out = {}
    for s in account["series"]:
        kind, name = s["kind"], s["name"]
        if kind in ("counter", "collected_counter"):
            fam, typ = name[:-len("_total")], "counter"
        elif kind in ("gauge", "collected_gauge"):
            fam, typ = name, "gauge"
        elif kind == "histogram":
            fam, typ = name, "histogram"
        elif openmetrics:
            fam, typ = name[:-len("_info")], "info"
        else:
            fam, typ = name, "gauge"
        out[fam] = (typ, s["help"])
    return out
