"""The alert rules (ops/prometheus/herald-alerts.yml) are valid Prometheus rules
(promtool, in `make lint`), pass their unit tests (`promtool test rules`), and name only
metrics Herald exports; so does the Grafana dashboard (ops/grafana/herald.json)."""

from __future__ import annotations

import json
import re
import subprocess

import yaml
from prometheus_client import REGISTRY

import deliveryd.metrics  # noqa: F401 - registers the workers' metrics
import gateway.callbacks.dispatcher
import gateway.http.middleware
import gateway.outbox  # noqa: F401 - registers the outbox's metrics
import mesh.metrics  # noqa: F401 - registers every process's metrics
from tests.support.processes import ROOT

RULES = ROOT / "ops" / "prometheus" / "herald-alerts.yml"
RULE_TESTS = ROOT / "ops" / "prometheus" / "herald-alerts.test.yml"
DASHBOARD = ROOT / "ops" / "grafana" / "herald.json"
HERALD_METRIC = re.compile(r"\bherald_[a-z_]+")


def exported() -> set[str]:
    names = set()
    for family in REGISTRY.collect():
        names.add(family.name)
        if family.type == "counter":
            names.add(f"{family.name}_total")
        if family.type == "histogram":
            names.update(f"{family.name}_{part}" for part in ("bucket", "sum", "count"))
    return names


def test_every_metric_an_alert_names_is_exported() -> None:
    rules = yaml.safe_load(RULES.read_text())
    named = {
        name
        for group in rules["groups"]
        for rule in group["rules"]
        for name in HERALD_METRIC.findall(rule["expr"])
    }
    assert named, "the rules name no Herald metric"
    assert named <= exported(), f"not exported: {sorted(named - exported())}"


def test_the_alert_rules_pass_their_unit_tests() -> None:
    done = subprocess.run(
        ["promtool", "test", "rules", str(RULE_TESTS)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    # Every alert has a test that expects it to fire.
    tests = yaml.safe_load(RULE_TESTS.read_text())["tests"]
    fired = {
        case["alertname"]
        for test in tests
        for case in test["alert_rule_test"]
        if case.get("exp_alerts")
    }
    alerts = {r["alert"] for g in yaml.safe_load(RULES.read_text())["groups"] for r in g["rules"]}
    assert fired == alerts


def test_the_dashboard_charts_exported_metrics_and_every_alerted_one() -> None:
    dashboard = json.loads(DASHBOARD.read_text())
    exprs = [t["expr"] for p in dashboard["panels"] for t in p.get("targets", [])]
    charted = {name for expr in exprs for name in HERALD_METRIC.findall(expr)}
    assert charted <= exported(), f"not exported: {sorted(charted - exported())}"
    rules = yaml.safe_load(RULES.read_text())
    alerted = {
        name
        for group in rules["groups"]
        for rule in group["rules"]
        for name in re.findall(r"\b(?:herald|rabbitmq)_[a-z_]+", rule["expr"])
    }
    all_charted = {n for e in exprs for n in re.findall(r"\b(?:herald|rabbitmq)_[a-z_]+", e)}
    assert alerted <= all_charted, f"alerted but not charted: {sorted(alerted - all_charted)}"
