#!/usr/bin/python3
"""The Grafana dashboard shipped in deploy/grafana/ is the documented one.

    check_grafana_dashboard.py DASHBOARD_JSON [PROVISIONING_DIR]

Checks, without Grafana (which Debian 12 does not package):
  1. the JSON parses and is a dashboard (title, uid, panels, templating);
  2. its panels are exactly the panels of DASHBOARD.md (dashboard_queries.py),
     each with exactly the documented query, plus the backlog panel, and no
     other query;
  3. its variables are the documented ones: metrics_prefix (constant
     "faststream"), app_name, handler and destination with the documented
     label_values() definitions, and a Prometheus data source variable that
     every panel and target uses;
  4. the provisioning files load that folder and define a Prometheus source.
check_dashboard.py --grafana evaluates the same queries against a real
Prometheus scraping the demo.
"""

import json
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from dashboard_queries import PANELS, VARIABLES  # noqa: E402

BACKLOG = ("Backlog",
           '{app_name=~"$app_name", __name__=~"${metrics_prefix}_received_messages_backlog", '
           'handler=~"$handler"}')
DEFINITIONS = {
    "app_name": "label_values(app_name)",
    "handler": 'label_values({__name__=~"${metrics_prefix}_received_messages_total", '
               'app_name=~"$app_name"},handler)',
    "destination": 'label_values({__name__=~"${metrics_prefix}_published_messages_total", '
                   'app_name=~"$app_name"},destination)',
}

errors = []


def check(cond, msg):
    if not cond:
        errors.append(msg)


def panel_queries(dash):
    """(title, expr) of every target of every panel (rows flattened)."""
    out = []
    stack = list(dash.get("panels", []))
    while stack:
        p = stack.pop(0)
        stack[0:0] = p.get("panels", [])
        for t in p.get("targets", []):
            out.append((p.get("title"), t.get("expr")))
    return out


def main():
    if len(sys.argv) not in (2, 3):
        print(__doc__, file=sys.stderr)
        return 2
    with open(sys.argv[1], encoding="utf-8") as f:
        dash = json.load(f)
    for key in ("title", "uid", "panels", "templating"):
        check(key in dash, "the dashboard has no %r" % key)

    got = panel_queries(dash)
    want = list(PANELS) + [BACKLOG]
    check(len(got) == len(want), "%d panel queries, expected %d" % (len(got), len(want)))
    got_map = dict(got)
    for title, expr in want:
        if title not in got_map:
            errors.append("panel %r is missing" % title)
        elif got_map[title] != expr:
            errors.append("panel %r has query\n    %s\n  expected\n    %s" %
                          (title, got_map[title], expr))
    for title, _ in got:
        check(title in dict(want), "panel %r is not a documented panel" % title)

    variables = {v.get("name"): v for v in dash.get("templating", {}).get("list", [])}
    prefix = variables.get("metrics_prefix", {})
    check(prefix.get("type") == "constant" and prefix.get("query") == VARIABLES["${metrics_prefix}"],
          "metrics_prefix must be a constant 'faststream'")
    for name, definition in DEFINITIONS.items():
        v = variables.get(name)
        if not v:
            errors.append("variable %s is missing" % name)
            continue
        q = v.get("query")
        q = q.get("query") if isinstance(q, dict) else q
        check(q == definition, "variable %s is %r, expected %r" % (name, q, definition))
        check(v.get("allValue") == ".*", "variable %s: All must mean .* (as checked)" % name)
    ds = variables.get("datasource", {})
    check(ds.get("type") == "datasource" and ds.get("query") == "prometheus",
          "a Prometheus data source variable is missing")
    for p in dash.get("panels", []):
        for obj in [p] + p.get("targets", []):
            uid = (obj.get("datasource") or {}).get("uid")
            check(uid == "${datasource}", "panel %r does not use ${datasource}" % p.get("title"))

    if len(sys.argv) == 3:
        prov = sys.argv[2]
        dpath = os.path.join(prov, "dashboards", "faststream.yml")
        spath = os.path.join(prov, "datasources", "prometheus.yml")
        for path in (dpath, spath):
            check(os.path.exists(path), "%s is missing" % path)
        if os.path.exists(dpath):
            text = open(dpath, encoding="utf-8").read()
            check("type: file" in text and "/var/lib/grafana/dashboards" in text,
                  "%s does not load the dashboards folder" % dpath)
        if os.path.exists(spath):
            check("type: prometheus" in open(spath, encoding="utf-8").read(),
                  "%s defines no Prometheus data source" % spath)

    if errors:
        print("FAIL: the shipped Grafana dashboard differs from DASHBOARD.md:", file=sys.stderr)
        for e in errors:
            print("  " + e, file=sys.stderr)
        return 1
    print("ok   %d panels with the documented queries, variables and provisioning" % len(got))
    return 0


if __name__ == "__main__":
    sys.exit(main())
