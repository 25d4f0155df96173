#!/usr/bin/env python3
"""Evaluates every panel query of the provisioned Grafana dashboard against a live Prometheus.

    compose-panels.py PROMETHEUS_URL DASHBOARD_JSON DATASOURCES_YML [--quiet]

Checks first that each panel and target uses the provisioned datasource (its uid), then, per target,
that every metric name the query names exists in Prometheus (an unknown or misspelt metric), and that
the query answers with at least one series whose value is a number (not NaN). Prints one line per
panel; exit 1 with every failure listed. Used by scripts/compose-check.sh (poll it: rates need two
scrapes)."""
import json
import math
import re
import sys
import urllib.parse
import urllib.request

url, dashboard_path, datasources_path = sys.argv[1:4]
quiet = "--quiet" in sys.argv[4:]


def query(expr):
    with urllib.request.urlopen(f"{url}/api/v1/query?" + urllib.parse.urlencode({"query": expr}), timeout=10) as r:
        body = json.load(r)
    if body.get("status") != "success":
        raise RuntimeError(f"{expr}: {body}")
    return body["data"]["result"]


uids = re.findall(r"^\s*uid:\s*(\S+)", open(datasources_path).read(), re.M)
dashboard = json.load(open(dashboard_path))
failures, lines = [], []
for panel in dashboard["panels"]:
    title = panel["title"]
    if panel.get("datasource", {}).get("uid") not in uids:
        failures.append(f"{title}: datasource {panel.get('datasource')} is not a provisioned one ({uids})")
    series = 0
    for target in panel["targets"]:
        expr = target["expr"]
        if target.get("datasource", {}).get("uid") not in uids:
            failures.append(f"{title}: target {target['refId']} uses datasource {target.get('datasource')}")
        for name in sorted(set(re.findall(r"\b(tradeflow_[a-z0-9_]+|up)\b", expr))):
            if not query(f'count({{__name__="{name}"}})'):
                failures.append(f"{title}: unknown metric {name} (in {expr})")
        result = query(expr)
        numbers = [r for r in result if not math.isnan(float(r["value"][1]))]
        if not numbers:
            failures.append(f"{title}: no series with a value for {expr} ({len(result)} NaN)")
        series += len(numbers)
    lines.append(f"panel '{title}': {len(panel['targets'])} queries, {series} series")
if failures:
    print("\n".join(failures), file=sys.stderr)
    sys.exit(1)
if not quiet:
    print("\n".join(lines))
