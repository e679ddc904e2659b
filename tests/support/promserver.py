"""A real Prometheus server for tests, started on loopback and cleaned up.

Uses only the Python standard library; run it with /usr/bin/python3 (Debian's
interpreter) and the Debian `prometheus` package (/usr/bin/prometheus).

    import sys
    sys.path.insert(0, "/path/to/faststream-c/tests/support")
    import promserver

    with promserver.start(["127.0.0.1:9102"], interval=1.0) as prom:
        prom.wait_for_up()                       # every target scraped, up == 1
        print(prom.url)                          # http://127.0.0.1:<free port>
        v = prom.query_value('my_counter_total{job="faststream"}')  # one float
        rows = prom.query('sum by (handler) (rate(x_total[1m]))')   # API "result" list
        prom.wait_for('x_total', lambda rows: rows and float(rows[0]["value"][1]) >= 10)

start(targets, interval=1.0, metrics_path="/metrics", job="faststream",
      prometheus="/usr/bin/prometheus", timeout=60, scrape_configs=None)
    Writes a config scraping `targets` ("host:port" strings) every `interval`
    seconds (scrape_timeout = interval), picks a free port on 127.0.0.1,
    starts Prometheus with a temporary --storage.tsdb.path and waits until
    /-/ready answers. `scrape_configs`, if given, is a list of extra scrape
    config dicts (serialised to YAML as JSON, which YAML accepts). Raises
    PromServerError (with the server log) when it cannot start.

PromServer: .url, .query(expr, time=None) -> list, .query_value(expr) -> float
(exactly one series required), .query_range(expr, start, end, step) -> list,
.wait_for(expr, predicate, timeout=30) -> list, .wait_for_up(timeout=30),
.targets() -> activeTargets list, .metadata(metric) -> list, .log() -> str,
.stop() (idempotent; kills the server and deletes the temporary directory).
The server is also stopped at interpreter exit and on SIGTERM/SIGINT; if the
test is killed outright (SIGKILL), the kernel sends the server SIGTERM
(PR_SET_PDEATHSIG) and the next start() removes the dead test's temporary
directory.
"""

import atexit
import ctypes
import glob
import json
import math
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request

__all__ = ["start", "PromServer", "PromServerError", "free_port"]


class PromServerError(RuntimeError):
    pass


_running = []


def _cleanup_all():
    for server in list(_running):
        server.stop()


def _on_signal(signum, frame):
    _cleanup_all()
    raise SystemExit(128 + signum)


atexit.register(_cleanup_all)


def _install_signal_handlers():
    for sig in (signal.SIGTERM, signal.SIGINT):
        try:
            if signal.getsignal(sig) in (signal.SIG_DFL, signal.default_int_handler):
                signal.signal(sig, _on_signal)
        except ValueError:  # not the main thread
            pass


_TMP_PREFIX = "fs-prometheus-"


def _die_with_parent():
    """In the child before exec: SIGTERM when the test process dies."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        PR_SET_PDEATHSIG = 1
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)
    except (OSError, AttributeError):
        pass


def _remove_stale_dirs():
    """Temporary directories of tests that were killed before cleaning up."""
    for path in glob.glob(os.path.join(tempfile.gettempdir(), _TMP_PREFIX + "*")):
        try:
            pid = int(os.path.basename(path)[len(_TMP_PREFIX):].split("-", 1)[0])
        except ValueError:
            continue
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            shutil.rmtree(path, ignore_errors=True)
        except PermissionError:
            pass


def free_port(host="127.0.0.1"):
    """A port that was free a moment ago (bind to port 0, read it, close)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def _duration(seconds):
    return "%dms" % max(1, int(round(seconds * 1000)))


class PromServer:
    def __init__(self, targets, interval, metrics_path, job, prometheus, timeout, scrape_configs):
        self.url = None
        self._proc = None
        self._logf = None
        _remove_stale_dirs()
        self._dir = tempfile.mkdtemp(prefix="%s%d-" % (_TMP_PREFIX, os.getpid()))
        _running.append(self)
        try:
            self._start(targets, interval, metrics_path, job, prometheus, timeout,
                        scrape_configs or [])
        except BaseException:
            self.stop()
            raise

    def _start(self, targets, interval, metrics_path, job, prometheus, timeout, extra):
        if not os.access(prometheus, os.X_OK):
            raise PromServerError("%s not found: install the Debian package 'prometheus' "
                                  "(scripts/install-deps.sh)" % prometheus)
        config = {
            "global": {"scrape_interval": _duration(interval),
                       "scrape_timeout": _duration(interval),
                       "evaluation_interval": _duration(interval)},
            "scrape_configs": [{"job_name": job, "metrics_path": metrics_path,
                                "static_configs": [{"targets": list(targets)}]}] + list(extra),
        }
        config_path = os.path.join(self._dir, "prometheus.yml")
        with open(config_path, "w") as f:
            json.dump(config, f, indent=2)  # JSON is YAML
        last_error = None
        for _attempt in range(3):
            port = free_port()
            self.url = "http://127.0.0.1:%d" % port
            self._logf = open(os.path.join(self._dir, "prometheus.log"), "ab")
            self._proc = subprocess.Popen(
                [prometheus, "--config.file=" + config_path,
                 "--storage.tsdb.path=" + os.path.join(self._dir, "data"),
                 "--web.listen-address=127.0.0.1:%d" % port, "--log.level=info"],
                stdin=subprocess.DEVNULL, stdout=self._logf, stderr=subprocess.STDOUT,
                preexec_fn=_die_with_parent)
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline:
                if self._proc.poll() is not None:
                    break
                try:
                    with urllib.request.urlopen(self.url + "/-/ready", timeout=2) as r:
                        if r.status == 200:
                            return
                except (urllib.error.URLError, OSError):
                    pass
                time.sleep(0.1)
            last_error = "Prometheus did not become ready on %s (exit code %s)" % (
                self.url, self._proc.poll())
            self._kill()
            if "address already in use" not in self.log().lower():
                break  # not a port race: retrying will not help
        raise PromServerError(last_error + "\n--- prometheus log ---\n" + self.log()[-4000:])

    def _kill(self):
        if self._proc is not None and self._proc.poll() is None:
            self._proc.terminate()
            try:
                self._proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait()
        self._proc = None
        if self._logf is not None:
            self._logf.close()
            self._logf = None

    def stop(self):
        """Stop the server and delete its temporary directory. Idempotent."""
        self._kill()
        if self._dir is not None:
            shutil.rmtree(self._dir, ignore_errors=True)
            self._dir = None
        if self in _running:
            _running.remove(self)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()
        return False

    def log(self):
        """The server's log so far ("" once stopped)."""
        if self._dir is None:
            return ""
        try:
            with open(os.path.join(self._dir, "prometheus.log"), "rb") as f:
                return f.read().decode("utf-8", "replace")
        except OSError:
            return ""

    def _api(self, path, params=None):
        url = self.url + path
        if params:
            url += "?" + urllib.parse.urlencode(params)
        try:
            with urllib.request.urlopen(url, timeout=10) as r:
                body = json.load(r)
        except urllib.error.HTTPError as e:
            raise PromServerError("%s: HTTP %d: %s" % (url, e.code, e.read()[:500])) from None
        if body.get("status") != "success":
            raise PromServerError("%s: %s" % (url, body))
        return body["data"]

    def query(self, expr, time=None):
        """Evaluate an instant query; returns the API's "result" list."""
        params = {"query": expr}
        if time is not None:
            params["time"] = repr(time)
        data = self._api("/api/v1/query", params)
        if data["resultType"] in ("scalar", "string"):
            return [{"metric": {}, "value": data["result"]}]
        return data["result"]

    def query_value(self, expr):
        """The float value of a query that must return exactly one series."""
        rows = self.query(expr)
        if len(rows) != 1:
            raise PromServerError("%s: %d series, expected 1: %s" % (expr, len(rows), rows))
        return float(rows[0]["value"][1])

    def query_range(self, expr, start, end, step):
        data = self._api("/api/v1/query_range",
                         {"query": expr, "start": repr(start), "end": repr(end), "step": repr(step)})
        return data["result"]

    def targets(self):
        return self._api("/api/v1/targets")["activeTargets"]

    def metadata(self, metric):
        return self._api("/api/v1/metadata", {"metric": metric}).get(metric, [])

    def wait_for(self, expr, predicate, timeout=30):
        """Poll `expr` until predicate(result) is true; returns the result."""
        deadline = time.monotonic() + timeout
        rows = None
        while True:
            rows = self.query(expr)
            if predicate(rows):
                return rows
            if time.monotonic() > deadline:
                raise PromServerError("timed out waiting on %s; last result: %s" % (expr, rows))
            time.sleep(0.2)

    def wait_for_up(self, timeout=30):
        """Wait until every target has been scraped successfully (up == 1)."""
        deadline = time.monotonic() + timeout
        while True:
            targets = self.targets()
            if targets and all(t["health"] == "up" for t in targets):
                return targets
            if time.monotonic() > deadline:
                raise PromServerError("targets not up: %s\n--- prometheus log ---\n%s" % (
                    [(t["scrapeUrl"], t["health"], t.get("lastError")) for t in targets],
                    self.log()[-4000:]))
            time.sleep(0.2)


def start(targets, interval=1.0, metrics_path="/metrics", job="faststream",
          prometheus="/usr/bin/prometheus", timeout=60, scrape_configs=None):
    """Start Prometheus scraping `targets`; see the module documentation."""
    _install_signal_handlers()
    return PromServer(targets, interval, metrics_path, job, prometheus, timeout, scrape_configs)


def bucket_quantile(q, buckets):
    """Prometheus' histogram_quantile on one series (PromQL bucketQuantile).

    `buckets` is a list of (upper_bound, cumulative_count), +Inf included.
    """
    if math.isnan(q):
        return math.nan
    if q < 0:
        return -math.inf
    if q > 1:
        return math.inf
    buckets = sorted(buckets)
    if len(buckets) < 2 or not math.isinf(buckets[-1][0]):
        return math.nan
    # coalesceBuckets, ensureMonotonic
    merged = []
    for ub, c in buckets:
        if merged and merged[-1][0] == ub:
            merged[-1] = (ub, merged[-1][1] + c)
        else:
            merged.append((ub, c))
    buckets = merged
    mono = []
    maxc = -math.inf
    for ub, c in buckets:
        maxc = max(maxc, c)
        mono.append((ub, maxc))
    buckets = mono
    observations = buckets[-1][1]
    if observations == 0:
        return math.nan
    rank = q * observations
    b = next((i for i in range(len(buckets) - 1) if buckets[i][1] >= rank), len(buckets) - 1)
    if b == len(buckets) - 1:
        return buckets[-2][0]
    if b == 0 and buckets[0][0] <= 0:
        return buckets[0][0]
    bucket_start = 0.0
    bucket_end = buckets[b][0]
    count = buckets[b][1]
    if b > 0:
        bucket_start = buckets[b - 1][0]
        count -= buckets[b - 1][1]
        rank -= buckets[b - 1][1]
    return bucket_start + (bucket_end - bucket_start) * (rank / count)
