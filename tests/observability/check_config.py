#!/usr/bin/env python3
"""Checks the committed Prometheus configurations and Grafana dashboard
(tools/observability/) without a server:

  - promtool check config accepts prometheus.yml and prometheus-compose.yml,
    and both scrape the same jobs (one per service, named after it);
  - grafana-dashboard.json is JSON with a title, a uid, the `datasource`
    and `job` variables, panels with distinct ids, each with a Prometheus
    datasource and targets that each have an expression and a refId;
  - every metric a query reads is one the README's "Watching the system"
    section documents (so a renamed metric cannot leave a panel empty).

That the queries return data from the running services is checked by
integration.workflow.prometheus, against a real Prometheus.
Usage: check_config.py REPOSITORY_ROOT [PROMTOOL]
"""

import json
import os
import re
import subprocess
import sys

root = sys.argv[1]
promtool = sys.argv[2] if len(sys.argv) > 2 else "promtool"
obs = os.path.join(root, "tools", "observability")
failures = []


def check(ok, what):
    print(("ok:   " if ok else "FAIL: ") + what)
    if not ok:
        failures.append(what)


jobs = {}
for name in ("prometheus.yml", "prometheus-compose.yml"):
    path = os.path.join(obs, name)
    r = subprocess.run([promtool, "check", "config", path], capture_output=True, text=True)
    check(r.returncode == 0, f"promtool check config {name}" + ("" if r.returncode == 0 else ": " + r.stdout + r.stderr))
    with open(path, encoding="utf-8") as f:
        jobs[name] = sorted(re.findall(r"^\s*- job_name:\s*(\S+)", f.read(), re.M))
check(jobs["prometheus.yml"] == jobs["prometheus-compose.yml"],
      f"both configurations scrape the same jobs: {jobs['prometheus.yml']}")
for svc in ("order-service", "billing-service", "notification-service"):
    check(svc in jobs["prometheus.yml"], f"a job named {svc}")

with open(os.path.join(obs, "grafana-dashboard.json"), encoding="utf-8") as f:
    dash = json.load(f)
check(bool(dash.get("title")) and bool(dash.get("uid")), "the dashboard has a title and a uid")
variables = {v.get("name") for v in dash.get("templating", {}).get("list", [])}
check({"datasource", "job"} <= variables, f"variables datasource and job ({sorted(variables)})")


def walk(panels):
    for p in panels:
        yield p
        yield from walk(p.get("panels", []))


ids, exprs = [], []
for p in walk(dash.get("panels", [])):
    ids.append(p.get("id"))
    if p.get("type") == "row":
        continue
    title = p.get("title", "?")
    check(p.get("datasource", {}).get("type") == "prometheus", f"panel \"{title}\" reads Prometheus")
    targets = p.get("targets", [])
    check(len(targets) > 0, f"panel \"{title}\" has queries")
    for t in targets:
        check(bool(t.get("expr")) and bool(t.get("refId")), f"panel \"{title}\": {t.get('expr')!r} has a refId")
        exprs.append(t.get("expr", ""))
check(len(ids) == len(set(ids)), "panel ids are distinct")
check(len(exprs) >= 10, f"{len(exprs)} queries")

with open(os.path.join(root, "README.md"), encoding="utf-8") as f:
    readme = f.read()
m = re.search(r"^## Watching the system$(.*?)^## ", readme, re.M | re.S)
check(m is not None, "README has a section \"Watching the system\"")
section = m.group(1) if m else ""
used = set()
for e in exprs:
    used.update(re.findall(r"\b((?:lev|shop|process)_[a-z_]+?)(?:_bucket|_sum|_count)?\b(?=\s*[{\[(])", e))
for name in sorted(used):
    check(f"`{name}" in section, f"{name} is documented in README's Watching the system")

print(f"{len(failures)} failed")
sys.exit(1 if failures else 0)
