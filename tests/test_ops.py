"""The alert rules (ops/prometheus/herald-alerts.yml) are valid Prometheus rules
(promtool, in `make lint`) and name only metrics Herald exports."""

from __future__ import annotations

import re

import yaml
from prometheus_client import REGISTRY

import gateway.callbacks.dispatcher  # noqa: F401 - registers the callback metrics
from tests.support.processes import ROOT

RULES = ROOT / "ops" / "prometheus" / "herald-alerts.yml"


def test_every_metric_an_alert_names_is_exported() -> None:
    exported = set()
    for family in REGISTRY.collect():
        exported.add(family.name)
        if family.type == "counter":
            exported.add(f"{family.name}_total")
    rules = yaml.safe_load(RULES.read_text())
    named = {
        name
        for group in rules["groups"]
        for rule in group["rules"]
        for name in re.findall(r"\bherald_[a-z_]+", rule["expr"])
    }
    assert named, "the rules name no Herald metric"
    assert named <= exported, f"not exported: {sorted(named - exported)}"
