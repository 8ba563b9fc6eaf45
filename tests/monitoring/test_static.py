"""The monitoring kit checks out without running anything: promtool and amtool accept the
configs, the alert unit tests pass, the dashboards are what the generator writes, and every
metric a dashboard or alert asks for is one our code exports."""

from __future__ import annotations

import re
import subprocess
import sys
from typing import Any

import pytest
from prometheus_client import REGISTRY, CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from fleet.memory_store import MemoryStore
from fleet.records import VoiceInfo, WorkerRecord
from fleet.workers import put_worker
from orchestrator.metrics.recorder import FleetMetrics
from orchestrator.workers.channels import WorkerChannels
from orchestrator.workers.registry import WorkerRegistry
from tests.deploy.compose import resolved, services_answering
from tests.monitoring.fakes import FakeNvml
from tests.monitoring.promql import (
    MONITORING,
    alert_rules,
    dashboards,
    metric_names,
    panel_queries,
    read_yaml,
)
from tests.monitoring.servers import binary
from tests.processes import ROOT
from tts_worker import metrics as worker_metrics


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        list(args), cwd=MONITORING, capture_output=True, text=True, timeout=60, check=False
    )


def test_promtool_accepts_the_config_and_rules() -> None:
    config = run(binary("promtool"), "check", "config", "prometheus.yml")
    assert config.returncode == 0, config.stdout + config.stderr
    rules = run(binary("promtool"), "check", "rules", "alerts.yml")
    assert rules.returncode == 0, rules.stdout + rules.stderr
    assert "SUCCESS: 7 rules found" in rules.stdout


def test_alert_rules_pass_their_unit_tests() -> None:
    done = run(binary("promtool"), "test", "rules", "alerts.test.yml")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "SUCCESS" in done.stdout


def test_amtool_accepts_the_alertmanager_config() -> None:
    done = run(binary("amtool"), "check-config", "alertmanager.yml")
    assert done.returncode == 0, done.stdout + done.stderr


def test_the_issue_s_alerts_all_exist() -> None:
    names = {rule["alert"] for rule in alert_rules()}
    assert names == {
        "FirstAudioP95High",
        "SLAComplianceLow",
        "ErrorRateHigh",
        "WorkerUtilisationHigh",
        "QueueDepthHigh",
        "TargetDown",
        "RedisUnreachable",
    }
    tested = (MONITORING / "alerts.test.yml").read_text(encoding="utf-8")
    for name in names:
        assert f"alertname: {name}" in tested, f"{name} has no promtool unit test"


def test_prometheus_scrapes_every_part_every_15_seconds() -> None:
    config = read_yaml(MONITORING / "prometheus.yml")
    assert config["global"]["scrape_interval"] == "15s"
    jobs = {job["job_name"] for job in config["scrape_configs"]}
    assert {"orchestrator", "tts-worker", "node"} <= jobs
    assert config["rule_files"] == ["alerts.yml"]


def scrape_job(name: str) -> dict[str, Any]:
    config = read_yaml(MONITORING / "prometheus.yml")
    [job] = [job for job in config["scrape_configs"] if job["job_name"] == name]
    return dict(job)


def dns_names(job: dict[str, Any]) -> list[str]:
    return [name for sd in job.get("dns_sd_configs", []) for name in sd["names"]]


def test_prometheus_finds_every_compose_worker_by_its_alias() -> None:
    """The tts-worker job's DNS names resolve to every worker of the production stack,
    those deploy/compose.workers.yml adds and the CosyVoice one included; the orchestrator
    job's to the orchestrator."""
    files = ("docker-compose.prod.yml", "deploy/compose.workers.yml")
    services = resolved(files, "cosyvoice")["services"]
    roles = {name: spec["labels"]["com.voice-orchestrator.role"] for name, spec in services.items()}
    for job, role in (("tts-worker", "tts-worker"), ("orchestrator", "orchestrator")):
        found = {
            s for n in dns_names(scrape_job(job)) for s in services_answering(n, files, "cosyvoice")
        }
        assert sorted(found) == sorted(s for s, r in roles.items() if r == role), job
    assert len([r for r in roles.values() if r == "tts-worker"]) == 4


def test_no_query_or_alert_selects_on_a_scrape_job_name() -> None:
    """Another Prometheus (the Operator's ServiceMonitors, a shared one) names its jobs
    its own way: our processes say what they are in voiceorch_build_info{component}."""
    selects_job = re.compile(r"\bjob\s*(=~|!~|!=|=)")
    exprs = [q.expr for q in panel_queries()] + [rule["expr"] for rule in alert_rules()]
    assert not [e for e in exprs if selects_job.search(e)]
    assert any("voiceorch_build_info" in e for e in exprs)


def test_grafana_provisioning_points_at_the_dashboards() -> None:
    datasource = read_yaml(MONITORING / "grafana/provisioning/datasources/prometheus.yml")
    [source] = datasource["datasources"]
    assert source["type"] == "prometheus" and source["uid"] == "prometheus"
    provider = read_yaml(MONITORING / "grafana/provisioning/dashboards/voiceorch.yml")
    assert provider["providers"][0]["type"] == "file"
    for board in dashboards().values():
        for panel in board["panels"]:
            for target in panel.get("targets", []):
                assert target["datasource"]["uid"] == "prometheus"


def test_regenerating_the_dashboards_changes_nothing() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "scripts.gen_dashboards", "--check"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr


def test_the_main_dashboard_has_the_design_panels_with_sla_thresholds() -> None:
    """DESIGN.md §4: twelve panels or more, latency with its SLA drawn."""
    board = dashboards()["voiceorch-overview.json"]
    panels = {p["title"]: p for p in board["panels"] if p["type"] != "row"}
    assert len(panels) >= 12
    wanted = [
        "Time to first audio",
        "Worker utilisation",
        "Active sessions",
        "Requests",
        "SLA violations",
        "SLA compliance",
        "Barge-in",
        "Error rate",
        "Session duration",
        "Active vs idle workers",
        "Queue depth",
        "Messages per session",
    ]
    for topic in wanted:
        assert any(title.startswith(topic) for title in panels), topic
    latency = panels["Time to first audio (p50 / p95 / p99)"]
    steps = latency["fieldConfig"]["defaults"]["thresholds"]["steps"]
    assert {"color": "red", "value": 0.5} in steps
    assert latency["fieldConfig"]["defaults"]["custom"]["thresholdsStyle"]["mode"] != "off"
    compliance = panels["SLA compliance"]["fieldConfig"]["defaults"]["thresholds"]["steps"]
    assert {"color": "green", "value": 95.0} in compliance
    assert board["schemaVersion"] >= 39  # Grafana 11


def test_metric_names_are_parsed_out_of_promql() -> None:
    expr = (
        'histogram_quantile(0.95, sum by (le, route) (rate(voiceorch_a_bucket{x="y z"}[5m])))'
        ' / on(instance) group_left sum without (job) (up{job=~"a|b"} offset 1m) > 1e3'
    )
    assert metric_names(expr) == {"voiceorch_a_bucket", "up"}


async def exported_names() -> set[str]:
    """Sample names our code exports: the orchestrator's /metrics (with a worker in its
    registry) and the worker's (every series initialised, a GPU visible through NVML)."""
    store = MemoryStore()
    channels = WorkerChannels()
    registry = WorkerRegistry(store, channels, refresh_seconds=60)
    record = WorkerRecord(
        "w1", "127.0.0.1:1", "piper", (VoiceInfo("v", 22050),), "v", max_streams=4
    )
    await put_worker(store, record, ttl_seconds=60)
    await registry.refresh()
    fleet = FleetMetrics(store, "static", fleet=registry)
    await fleet.start()
    try:
        text = fleet.exposition().decode()
    finally:
        await fleet.aclose()
        await channels.aclose()

    worker_metrics.init_engine("piper", 8, {"v": 0.2})
    gpu = CollectorRegistry()
    gpu.register(worker_metrics.GpuMemoryCollector(nvml=FakeNvml()))
    text += generate_latest(REGISTRY).decode() + generate_latest(gpu).decode()
    return {
        sample.name for family in text_string_to_metric_families(text) for sample in family.samples
    }


async def test_every_metric_in_a_dashboard_or_alert_is_exported() -> None:
    """The lesson of the old system: a panel on a metric nothing exports is a flat zero."""
    exported = await exported_names() | {"up"}  # `up` is Prometheus's own
    asked: dict[str, set[str]] = {}
    for query in panel_queries():
        for name in metric_names(query.expr):
            asked.setdefault(name, set()).add(f"{query.dashboard}: {query.panel}")
    for rule in alert_rules():
        for name in metric_names(rule["expr"]):
            asked.setdefault(name, set()).add(f"alert {rule['alert']}")
    assert len(asked) >= 20
    missing = {name: where for name, where in asked.items() if name not in exported}
    assert not missing, missing


@pytest.mark.parametrize("query", panel_queries(), ids=lambda q: f"{q.panel}-{q.ref}")
def test_every_panel_query_names_a_metric(query: Any) -> None:
    assert metric_names(query.expr), query
