"""The Helm chart: `helm lint`, `helm template`, and offline schema validation of the result.

helm is built from its Go module (scripts/deploy_tools.sh); schemas come from the
`kubernetes-validate` package (offline). The ServiceMonitor and PrometheusRule CRDs have no
schema there: the monitors' references (Service labels, port names) are checked against the
rendered Services, and the rules by promtool, with the repository's rule unit tests.
"""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.deploy.conftest import ROOT, system_tool, venv_tool

CHART = ROOT / "deploy" / "helm" / "voice-orchestrator"
KUBE_VERSION = "1.31.0"
SECRETS = [
    "--set",
    "secrets.redisPassword=0123456789abcdef,secrets.livekitApiKey=APIkey,"
    "secrets.livekitApiSecret=0123456789abcdef0123456789abcdef",
]


def helm_run(helm: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([helm, *args], capture_output=True, text=True, timeout=120)


@pytest.fixture(scope="module")
def rendered_text(helm: str) -> str:
    result = helm_run(
        helm, "template", "vo", str(CHART), "--namespace", "voice",
        "--kube-version", KUBE_VERSION, *SECRETS,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    return result.stdout


@pytest.fixture(scope="module")
def manifests(rendered_text: str) -> list[dict[str, Any]]:
    return [doc for doc in yaml.safe_load_all(rendered_text) if doc]


def by_kind(manifests: list[dict[str, Any]], kind: str) -> dict[str, dict[str, Any]]:
    return {m["metadata"]["name"]: m for m in manifests if m["kind"] == kind}


def containers(manifests: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {
        c["name"]: c
        for d in by_kind(manifests, "Deployment").values()
        for c in d["spec"]["template"]["spec"]["containers"]
    }


def test_helm_lint_is_clean(helm: str) -> None:
    """`helm lint --strict` passes with the required values given."""
    result = helm_run(
        helm, "lint", "--strict", str(CHART), "--kube-version", KUBE_VERSION, *SECRETS
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_chart_refuses_to_render_without_secrets(helm: str) -> None:
    """No default secret: rendering stops and names the value to set."""
    result = helm_run(helm, "template", "vo", str(CHART), "--kube-version", KUBE_VERSION)
    assert result.returncode != 0
    assert "secrets.redisPassword (or secrets.existingSecret) is required" in result.stderr


def test_existing_secret_replaces_the_chart_secret(helm: str) -> None:
    """With secrets.existingSecret the chart creates no Secret and every pod reads that one."""
    result = helm_run(
        helm, "template", "vo", str(CHART), "--kube-version", KUBE_VERSION,
        "--set", "secrets.existingSecret=voice-secrets",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    docs = [d for d in yaml.safe_load_all(result.stdout) if d]
    assert not by_kind(docs, "Secret")
    names = {
        env["valueFrom"]["secretKeyRef"]["name"]
        for c in containers(docs).values()
        for env in c["env"]
        if "secretKeyRef" in env.get("valueFrom", {})
    }
    assert names == {"voice-secrets"}


def test_rendered_manifests_pass_offline_schema_validation(
    rendered_text: str, tmp_path: Path
) -> None:
    """Every built-in kind validates strictly (unknown fields rejected) against Kubernetes 1.31."""
    path = tmp_path / "rendered.yaml"
    path.write_text(rendered_text)
    result = subprocess.run(
        [str(venv_tool("kubernetes-validate")), "--strict", "-k", KUBE_VERSION, str(path)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    passed = re.findall(r"passed for resource (\S+)", result.stdout + result.stderr)
    assert len(passed) >= 10, result.stdout + result.stderr
    unknown = re.findall(r"Couldn't find schema for kind (\w+)", result.stdout + result.stderr)
    assert set(unknown) <= {"ServiceMonitor", "PrometheusRule"}, unknown


def test_chart_has_the_expected_objects(manifests: list[dict[str, Any]]) -> None:
    """Deployments, Services, PDBs, the worker HPA, ServiceMonitors and the dashboards."""
    kinds = sorted(m["kind"] for m in manifests)
    for kind, count in {
        "Deployment": 3,
        "Service": 3,
        "PodDisruptionBudget": 2,
        "HorizontalPodAutoscaler": 1,
        "ServiceMonitor": 2,
        "PrometheusRule": 1,
        "ConfigMap": 1,
        "Secret": 1,
    }.items():
        assert kinds.count(kind) == count, (kind, kinds)


def test_probes_use_livez_readyz_and_grpc_health(manifests: list[dict[str, Any]]) -> None:
    """The orchestrator is probed on /livez and /readyz (ops port), workers by gRPC health."""
    found = containers(manifests)
    orchestrator = found["orchestrator"]
    port_names = {p["name"]: p["containerPort"] for p in orchestrator["ports"]}
    assert port_names == {"http": 8080, "ops": 8081}
    assert orchestrator["livenessProbe"]["httpGet"] == {"path": "/livez", "port": "ops"}
    assert orchestrator["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "ops"}
    worker = found["tts-piper"]
    for probe in ("startupProbe", "livenessProbe", "readinessProbe"):
        assert worker[probe]["grpc"] == {"port": 7001}, probe


def test_every_pod_is_non_root_with_a_read_only_root(manifests: list[dict[str, Any]]) -> None:
    """Pods run as non-root; containers cannot escalate, drop every capability, write no root."""
    for name, deployment in by_kind(manifests, "Deployment").items():
        pod = deployment["spec"]["template"]["spec"]
        assert pod["securityContext"]["runAsNonRoot"] is True, name
        assert pod["securityContext"]["seccompProfile"]["type"] == "RuntimeDefault", name
        assert pod["automountServiceAccountToken"] is False, name
        for container in pod["containers"]:
            context = container["securityContext"]
            assert context["readOnlyRootFilesystem"] is True, name
            assert context["allowPrivilegeEscalation"] is False, name
            assert context["capabilities"]["drop"] == ["ALL"], name
            assert container["resources"]["limits"] and container["resources"]["requests"]
    for name in ("vo-voice-orchestrator-orchestrator", "vo-voice-orchestrator-tts-piper"):
        pod = by_kind(manifests, "Deployment")[name]["spec"]["template"]["spec"]
        assert pod["securityContext"]["runAsUser"] == 1000, name


def test_workers_drain_within_their_termination_grace(manifests: list[dict[str, Any]]) -> None:
    """Kubernetes waits longer than the worker's drain before it kills the pod."""
    deployment = by_kind(manifests, "Deployment")["vo-voice-orchestrator-tts-piper"]
    pod = deployment["spec"]["template"]["spec"]
    env = {e["name"]: e.get("value") for e in pod["containers"][0]["env"]}
    assert float(env["TTS_WORKER_DRAIN_GRACE_SECONDS"]) < pod["terminationGracePeriodSeconds"]
    assert env["TTS_WORKER_ADVERTISE_ADDRESS"] == "$(POD_IP):7001"
    assert env["TTS_WORKER_REDIS_URL"] == "$(REDIS_URL)"


def test_workers_scale_on_queue_depth_not_cpu(manifests: list[dict[str, Any]]) -> None:
    """The HPA targets the worker Deployment with the worker's own queue-depth metric."""
    (hpa,) = by_kind(manifests, "HorizontalPodAutoscaler").values()
    assert hpa["spec"]["scaleTargetRef"]["name"] == "vo-voice-orchestrator-tts-piper"
    (metric,) = hpa["spec"]["metrics"]
    assert metric["type"] == "Pods"
    name = metric["pods"]["metric"]["name"]
    assert name == "voiceorch_worker_queue_depth"
    # The worker really exports it (a renamed metric would silently stop the autoscaling).
    assert f'"{name}"' in (ROOT / "tts_worker" / "metrics.py").read_text()


def test_pod_disruption_budgets_select_their_pods(manifests: list[dict[str, Any]]) -> None:
    """Each PDB's selector matches the pods of one Deployment."""
    pods = {
        name: d["spec"]["template"]["metadata"]["labels"]
        for name, d in by_kind(manifests, "Deployment").items()
    }
    for name, pdb in by_kind(manifests, "PodDisruptionBudget").items():
        selector = pdb["spec"]["selector"]["matchLabels"]
        matched = [p for p, labels in pods.items() if selector.items() <= labels.items()]
        assert matched == [name], (name, matched)


def test_service_monitors_point_at_existing_metrics_ports(
    manifests: list[dict[str, Any]],
) -> None:
    """Each ServiceMonitor selects a Service that has the port it scrapes."""
    services = by_kind(manifests, "Service")
    for name, monitor in by_kind(manifests, "ServiceMonitor").items():
        selector = monitor["spec"]["selector"]["matchLabels"]
        matched = [
            s for s in services.values() if selector.items() <= s["metadata"]["labels"].items()
        ]
        assert len(matched) == 1, name
        ports = {p["name"] for p in matched[0]["spec"]["ports"]}
        for endpoint in monitor["spec"]["endpoints"]:
            assert endpoint["port"] in ports, (name, endpoint)
            assert endpoint["path"] == "/metrics"


def test_dashboards_config_map_holds_every_dashboard(manifests: list[dict[str, Any]]) -> None:
    """The repository's dashboards ship as one ConfigMap, labelled for Grafana's sidecar."""
    (config_map,) = by_kind(manifests, "ConfigMap").values()
    assert config_map["metadata"]["labels"]["grafana_dashboard"] == "1"
    expected = sorted(
        p.name for p in (ROOT / "monitoring" / "grafana" / "dashboards").glob("*.json")
    )
    assert expected and sorted(config_map["data"]) == expected
    for name, text in config_map["data"].items():
        assert json.loads(text)["panels"], name


def test_prometheus_rule_ships_the_alert_rules_promtool_tests(
    manifests: list[dict[str, Any]], tmp_path: Path
) -> None:
    """The chart's PrometheusRule holds monitoring/alerts.yml's groups unchanged, and those
    rules, taken out of the rendered object, pass the repository's promtool unit tests."""
    (rule,) = by_kind(manifests, "PrometheusRule").values()
    monitoring = ROOT / "monitoring"
    assert rule["spec"] == yaml.safe_load((monitoring / "alerts.yml").read_text())
    (tmp_path / "alerts.yml").write_text(yaml.safe_dump(rule["spec"]))
    (tmp_path / "alerts.test.yml").write_text((monitoring / "alerts.test.yml").read_text())
    promtool = system_tool("promtool")
    for args in (["check", "rules", "alerts.yml"], ["test", "rules", "alerts.test.yml"]):
        done = subprocess.run(
            [promtool, *args], cwd=tmp_path, capture_output=True, text=True, timeout=60
        )
        assert done.returncode == 0, done.stdout + done.stderr


def test_monitors_name_their_jobs_by_component(manifests: list[dict[str, Any]]) -> None:
    """Readable job names; nothing depends on them (dashboards select on build info)."""
    for monitor in by_kind(manifests, "ServiceMonitor").values():
        assert monitor["spec"]["jobLabel"] == "app.kubernetes.io/component"
