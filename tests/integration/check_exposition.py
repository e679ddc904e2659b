#!/usr/bin/python3
"""External checks of the /metrics exposition of a realistic registry.

  check_exposition.py promtool EXPORTER [PROMTOOL]
      `promtool check metrics` on the text format must exit 0 and print nothing
      (no error, not even a lint warning).
  check_exposition.py parsers EXPORTER
      prometheus_client's text and OpenMetrics parsers read the endpoint; every
      sample (name, labels, value), every family (type, help) and nothing else
      must match what the exporter says it exported (its account); the process
      collector's samples are checked against /proc separately.

EXPORTER is fs_test_exporter (exporter.c). Run with /usr/bin/python3.
"""

import math
import os
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from fsexporter import (OPENMETRICS_ACCEPT, TEXT_ACCEPT, CheckFailed, Exporter,  # noqa: E402
                        expected_families, expected_samples, label_key, same_value)

PROCESS_SAMPLES = {"process_cpu_seconds_total", "process_resident_memory_bytes",
                   "process_virtual_memory_bytes", "process_start_time_seconds",
                   "process_open_fds", "process_max_fds"}


def check_promtool(exporter_path, promtool):
    if not os.access(promtool, os.X_OK):
        raise CheckFailed("%s not found: install the Debian package 'prometheus'" % promtool)
    with Exporter(exporter_path) as ex:
        status, headers, text = ex.fetch(headers={"Accept": TEXT_ACCEPT})
        if status != 200 or not headers["Content-Type"].startswith("text/plain; version=0.0.4"):
            raise CheckFailed("unexpected response %s %s" % (status, headers))
        r = subprocess.run([promtool, "check", "metrics"], input=text.encode(),
                           capture_output=True, timeout=60)
        if r.returncode != 0 or r.stdout or r.stderr:
            raise CheckFailed("promtool check metrics: exit %d\n%s%s\n--- input ---\n%s" % (
                r.returncode, r.stdout.decode(), r.stderr.decode(), text))
        print("promtool: %d lines, nothing reported" % text.count("\n"))


def proc_start_time(pid):
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    start_ticks = int(fields[19])  # field 22 of stat; 0-based 19 after "pid (comm)"
    with open("/proc/stat") as f:
        btime = next(int(line.split()[1]) for line in f if line.startswith("btime "))
    return btime + start_ticks / os.sysconf("SC_CLK_TCK")


def proc_max_fds(pid):
    with open("/proc/%d/limits" % pid) as f:
        for line in f:
            if line.startswith("Max open files"):
                soft = line.split()[3]
                return math.inf if soft == "unlimited" else float(soft)
    raise CheckFailed("no 'Max open files' in /proc/%d/limits" % pid)


def check_process(samples, pid, fmt):
    got = {s.name: s for s in samples}
    if set(got) != PROCESS_SAMPLES:
        raise CheckFailed("%s: process samples %s, want %s" % (fmt, sorted(got), sorted(PROCESS_SAMPLES)))
    for s in samples:
        if s.labels:
            raise CheckFailed("%s: %s has labels %s" % (fmt, s.name, s.labels))
    v = {name: s.value for name, s in got.items()}
    if v["process_max_fds"] != proc_max_fds(pid):
        raise CheckFailed("%s: process_max_fds %s, /proc says %s" % (fmt, v["process_max_fds"], proc_max_fds(pid)))
    if abs(v["process_start_time_seconds"] - proc_start_time(pid)) > 0.02:
        raise CheckFailed("%s: process_start_time_seconds %s, /proc says %s" % (
            fmt, v["process_start_time_seconds"], proc_start_time(pid)))
    if not 3 <= v["process_open_fds"] <= v["process_max_fds"]:
        raise CheckFailed("%s: process_open_fds %s" % (fmt, v["process_open_fds"]))
    if not 0 < v["process_resident_memory_bytes"] <= v["process_virtual_memory_bytes"]:
        raise CheckFailed("%s: memory %s / %s" % (fmt, v["process_resident_memory_bytes"],
                                                  v["process_virtual_memory_bytes"]))
    if not 0 <= v["process_cpu_seconds_total"] < 3600:
        raise CheckFailed("%s: process_cpu_seconds_total %s" % (fmt, v["process_cpu_seconds_total"]))
    if not time.time() - 3600 < v["process_start_time_seconds"] <= time.time():
        raise CheckFailed("%s: process_start_time_seconds %s" % (fmt, v["process_start_time_seconds"]))


def compare(families, account, pid, openmetrics):
    fmt = "OpenMetrics" if openmetrics else "text"
    want = expected_samples(account, openmetrics)
    want_fams = expected_families(account, openmetrics)
    problems = []
    process = []
    got = {}
    for fam in families:
        if fam.name.startswith("process_"):
            process.extend(fam.samples)
            continue
        if fam.name not in want_fams:
            problems.append("unexpected family %s (%s)" % (fam.name, fam.type))
        elif (fam.type, fam.documentation) != want_fams[fam.name]:
            problems.append("family %s: type/help %r, want %r" % (
                fam.name, (fam.type, fam.documentation), want_fams[fam.name]))
        for s in fam.samples:
            if s.timestamp is not None or s.exemplar is not None:
                problems.append("%s%s: unexpected timestamp or exemplar" % (s.name, s.labels))
            key = (s.name, label_key(s.labels))
            if key in got:
                problems.append("duplicate sample %s" % (key,))
            got[key] = s.value
    missing = [f for f in want_fams if f not in {fam.name for fam in families}]
    for f in missing:
        problems.append("missing family %s" % f)
    for key, value in want.items():
        if key not in got:
            problems.append("missing sample %s %s = %r" % (key[0], dict(key[1]), value))
        elif not same_value(value, got[key]):
            problems.append("%s %s = %r, want %r" % (key[0], dict(key[1]), got[key], value))
    for key in got:
        if key not in want:
            problems.append("unexpected sample %s %s = %r" % (key[0], dict(key[1]), got[key]))
    if problems:
        raise CheckFailed("%s: %d problems:\n  %s" % (fmt, len(problems), "\n  ".join(problems)))
    check_process(process, pid, fmt)
    print("%s: %d samples in %d families match the exporter's account, process collector ok" % (
        fmt, len(got), len(families)))


def check_parsers(exporter_path):
    from prometheus_client.openmetrics.parser import \
        text_string_to_metric_families as parse_openmetrics
    from prometheus_client.parser import text_string_to_metric_families as parse_text

    with Exporter(exporter_path) as ex:
        status, headers, text = ex.fetch(headers={"Accept": TEXT_ACCEPT})
        if not headers["Content-Type"].startswith("text/plain; version=0.0.4"):
            raise CheckFailed("text: Content-Type %s" % headers["Content-Type"])
        compare(list(parse_text(text)), ex.account, ex.pid, openmetrics=False)

        status, headers, om = ex.fetch(headers={"Accept": OPENMETRICS_ACCEPT,
                                                "Accept-Encoding": "gzip"})
        if not headers["Content-Type"].startswith("application/openmetrics-text; version=1.0.0"):
            raise CheckFailed("OpenMetrics: Content-Type %s" % headers["Content-Type"])
        if headers.get("Content-Encoding") != "gzip":
            raise CheckFailed("OpenMetrics: asked for gzip, got %s" % headers.get("Content-Encoding"))
        try:
            families = list(parse_openmetrics(om))
        except Exception as e:
            raise CheckFailed("the OpenMetrics parser refused the exposition: %s\n%s" % (e, om))
        compare(families, ex.account, ex.pid, openmetrics=True)


def main(argv):
    if len(argv) < 3 or argv[1] not in ("promtool", "parsers"):
        print(__doc__, file=sys.stderr)
        return 2
    try:
        if argv[1] == "promtool":
            check_promtool(argv[2], argv[3] if len(argv) > 3 else "/usr/bin/promtool")
        else:
            check_parsers(argv[2])
    except CheckFailed as e:
        print("FAIL: %s" % e, file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
