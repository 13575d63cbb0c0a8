"""Prometheus and Alertmanager files of docker/, checked by the real promtool and amtool when installed.

The rules are unit-tested (alerts_test.yml: given series, which alerts fire when), and every metric they
use must be one the worker exports (worker/metrics.py), so a renamed metric cannot silently mute an alert.
"""

import re
import shutil
import subprocess

import pytest
import yaml
from prometheus_client import REGISTRY

import aigen_contracts
from tests.stack.facts import REPO
from worker import metrics  # noqa: F401 (registers the worker's metrics in REGISTRY)

PROMETHEUS = REPO / "docker" / "prometheus"
RULES = yaml.safe_load((PROMETHEUS / "alerts.yml").read_text())


def tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        pytest.skip(
            f"{name} is not installed (Debian: prometheus / prometheus-alertmanager; ./run-tests as root)"
        )
    return path


def exported_samples() -> set[str]:
    names = set()
    for family in REGISTRY.collect():
        if family.name.startswith("aigen_worker"):
            names |= {family.name, f"{family.name}_total", f"{family.name}_bucket", f"{family.name}_count"}
    return names


def test_every_metric_the_rules_use_is_exported_by_the_worker():
    used = set()
    for group in RULES["groups"]:
        for rule in group["rules"]:
            used |= set(re.findall(r"\b(aigen_[a-z_]+)\b", rule["expr"]))
    assert used, "the rules use no worker metric"
    assert used - exported_samples() == set()


def test_rules_carry_the_label_scheme_alertmanager_groups_by():
    for group in RULES["groups"]:
        for rule in group["rules"]:
            assert rule["labels"]["service"] == "ai_generation"
            assert rule["labels"]["severity"] in {"warning", "critical"}
            assert rule["annotations"]["summary"] and rule["annotations"]["description"]


def test_prometheus_config_and_rules_pass_promtool(tmp_path):
    promtool = tool("promtool")
    for name in ("prometheus.yml", "alerts.yml"):
        shutil.copy(PROMETHEUS / name, tmp_path / name)
    result = subprocess.run(
        [promtool, "check", "config", str(tmp_path / "prometheus.yml")], capture_output=True, text=True
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS: 5 rules found" in result.stdout + result.stderr


def test_alert_rules_fire_and_resolve_as_specified(tmp_path):
    promtool = tool("promtool")
    shutil.copy(PROMETHEUS / "alerts.yml", tmp_path / "alerts.yml")
    shutil.copy(REPO / "tests" / "stack" / "alerts_test.yml", tmp_path / "alerts_test.yml")
    result = subprocess.run(
        [promtool, "test", "rules", str(tmp_path / "alerts_test.yml")], capture_output=True, text=True
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_alertmanager_config_passes_amtool():
    amtool = tool("amtool")
    config = REPO / "docker" / "alertmanager" / "alertmanager.yml"
    result = subprocess.run([amtool, "check-config", str(config)], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_alertmanager_groups_by_the_labels_alerts_carry():
    config = yaml.safe_load((REPO / "docker" / "alertmanager" / "alertmanager.yml").read_text())
    assert set(config["route"]["group_by"]) <= {"alertname", "service", "backend", "error_type", "severity"}


def test_alertmanager_groups_every_source_of_one_condition_into_one_notification():
    # schemas/alerts.json: each source (worker, odoo, n8n) labels its own alerts with source=..., so
    # grouping must leave source out for the worker's and Odoo's alert to share a notification
    contract = aigen_contracts.load("alerts.json")
    config = yaml.safe_load((REPO / "docker" / "alertmanager" / "alertmanager.yml").read_text())
    assert config["route"]["group_by"] == contract["group_by"]
    assert "source" in contract["labels"] and "source" not in config["route"]["group_by"]
    for route in config["route"].get("routes", []):
        assert "group_by" not in route or route["group_by"] == contract["group_by"]
    for rule in config.get("inhibit_rules", []):
        assert "source" not in rule.get("equal", [])
