"""The dashboards and alerts against real data: two orchestrator replicas sharing a real
Redis and the Piper workers of the production compose stack with deploy/compose.workers.yml
(one process per worker service), scraped every second by a real Prometheus configured
from monitoring/prometheus.yml (each DNS name resolved to the processes of the services
that answer to it, and every job renamed: nothing may depend on our job names), while real
synthesis requests and errors run, and a LiveKit session (real livekit-server, rtc
listener) goes through one barge-in and one false interruption. Prometheus scrapes every
worker, every panel query of every dashboard returns data, the fleet totals equal the
traffic sent (no double counting), and an alert travels through a real Alertmanager to a
webhook."""

from __future__ import annotations

import asyncio
import importlib
import json
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

import grpc
import httpx
import numpy as np
import pytest

from orchestrator.cli import Orchestrator
from tests.conftest import orchestrator_settings
from tests.deploy.compose import services_answering
from tests.livekit_server import LiveKitServer
from tests.monitoring.promql import (
    MONITORING,
    alert_rules,
    expand,
    metric_names,
    panel_queries,
    read_yaml,
)
from tests.monitoring.servers import AlertmanagerServer, PrometheusServer, WebhookReceiver
from tests.processes import RedisServer, WorkerProcess, free_port
from tests.sessions.listener import RATE, Listener
from tests.tts_worker.grpc_client import END, Stream, config
from tests.tts_worker.grpc_client import text as grpc_text

pytestmark = pytest.mark.slow

# GPU series: the worker exports them when NVML answers (a GPU machine with nvidia-ml-py) and
# not otherwise; their panels are checked against what NVML says here (GpuMemoryCollector is
# unit-tested with a fake NVML in test_worker_metrics.py).
LONG_TEXT = (
    "Here is the full list of opening hours for every branch in the city. The central branch "
    "opens at eight in the morning and closes at six in the evening on weekdays."
)
GPU_ONLY = {
    "voiceorch_worker_gpu_memory_used_bytes",
    "voiceorch_worker_gpu_memory_total_bytes",
    "voiceorch_worker_gpu_utilization_ratio",
}


def nvml_devices() -> int:
    """The GPUs NVML reports on this machine, read here apart from the worker: 0 without
    nvidia-ml-py, without a driver or without a device."""
    try:
        nvml: Any = importlib.import_module("pynvml")
        nvml.nvmlInit()
    except Exception:  # no package, no driver: the worker exports no GPU series either
        return 0
    try:
        return int(nvml.nvmlDeviceGetCount())
    finally:
        nvml.nvmlShutdown()


COMPOSE_FILES = ("docker-compose.prod.yml", "deploy/compose.workers.yml")


@dataclass
class Traffic:
    """What the fixture sent, per replica, and what the fleet totals must be."""

    requests: int = 0
    by_replica: list[int] = field(default_factory=lambda: [0, 0])
    audio: int = 0
    synthesize_ok: int = 0
    speech_ok: int = 0
    voice_not_found: int = 0
    invalid_value: int = 0
    session_utterances: int = 0
    bargeins: int = 0
    false_interruptions: int = 0


@dataclass
class Stack:
    redis: RedisServer
    workers: list[WorkerProcess]
    orchestrators: list[Orchestrator]
    prometheus: PrometheusServer
    alertmanager: AlertmanagerServer
    webhook: WebhookReceiver
    traffic: Traffic
    client: httpx.AsyncClient

    @property
    def worker(self) -> WorkerProcess:
        return self.workers[0]

    async def query(self, expr: str) -> list[dict[str, Any]]:
        response = await self.client.get(
            f"{self.prometheus.url}/api/v1/query", params={"query": expand(expr)}
        )
        body = response.json()
        assert body["status"] == "success", (expr, body)
        result: list[dict[str, Any]] = body["data"]["result"]
        return result

    async def scalar(self, expr: str) -> float:
        result = await self.query(expr)
        assert len(result) == 1, (expr, result)
        return float(result[0]["value"][1])


async def eventually(check: Callable[[], Any], within: float = 30.0) -> None:
    """Poll an async check until it passes (bounded); re-raise its last failure."""
    deadline = asyncio.get_running_loop().time() + within
    while True:
        try:
            await check()
            return
        except AssertionError:
            if asyncio.get_running_loop().time() > deadline:
                raise
        await asyncio.sleep(0.25)


def _rules_with_quick_redis_alert() -> str:
    """The committed rules, RedisUnreachable's `for` cut to 1 s so the test need not wait a
    minute; every other rule unchanged."""
    rules = []
    for rule in alert_rules():
        if rule["alert"] == "RedisUnreachable":
            rule = {**rule, "for": "1s"}
        rules.append(rule)
    return json.dumps({"groups": [{"name": "voiceorch", "rules": rules}]})


async def _user_speech(worker: WorkerProcess, text: str) -> np.ndarray:
    """The listener's voice, straight from the worker (so it adds no orchestrator traffic)."""
    async with grpc.aio.insecure_channel(worker.address) as channel:
        stream = Stream(channel)
        await stream.send(config(sample_rate=RATE), grpc_text(text), END)
        received = await stream.read_all()
    return np.frombuffer(b"".join(f.audio for f in received.frames), dtype=np.int16)


async def _run_session(stack: Stack, livekit: LiveKitServer) -> None:
    """On replica 0: one utterance cancelled by real speech, one resumed after an "okay".

    Utterance states are polled with GET /sessions/{id} (no SSE), and every request the
    test makes is counted, so the request totals stay exact."""
    traffic = stack.traffic

    def count(response: httpx.Response) -> None:
        traffic.requests += 1
        traffic.by_replica[0] += 1

    user = await _user_speech(stack.worker, "Sorry, I need to stop you there for a second.")
    # An acknowledgement: the session hears only "okay" and lets the agent go on.
    okay = await _user_speech(stack.worker, "Okay.")
    base = f"http://127.0.0.1:{stack.orchestrators[0].settings.port}"
    async with httpx.AsyncClient(
        base_url=base, timeout=60, event_hooks={"response": [_sync_hook(count)]}
    ) as api:
        created = (await api.post("/sessions", json={})).json()
        session_id = created["session_id"]
        listener = Listener()
        await listener.join(created["url"], created["token"])
        await listener.subscribed.wait()

        async def state(utterance_id: str) -> str:
            body = (await api.get(f"/sessions/{session_id}")).json()
            return str({u["utterance_id"]: u["state"] for u in body["utterances"]}[utterance_id])

        async def until(utterance_id: str, wanted: str) -> None:
            for _ in range(300):
                if await state(utterance_id) == wanted:
                    return
                await asyncio.sleep(0.1)
            raise AssertionError(f"utterance never reached {wanted}")

        try:
            for speech, outcome in ((user, "cancelled"), (okay, "finished")):
                said = await api.post(f"/sessions/{session_id}/say", json={"text": LONG_TEXT})
                utterance_id = said.json()["utterance_id"]
                await until(utterance_id, "speaking")
                await asyncio.sleep(1.5)
                listener.talk(speech)
                await until(utterance_id, outcome)
                await asyncio.sleep(1.0)  # the listener's speech is over before the next
            traffic.session_utterances, traffic.bargeins, traffic.false_interruptions = 2, 2, 1
        finally:
            await listener.leave()
            await api.delete(f"/sessions/{session_id}")


def _sync_hook(count: Callable[[httpx.Response], None]) -> Callable[[httpx.Response], Any]:
    async def hook(response: httpx.Response) -> None:
        count(response)

    return hook


async def _send_traffic(stack: Stack) -> None:
    traffic = stack.traffic
    apis = [
        httpx.AsyncClient(base_url=f"http://127.0.0.1:{o.settings.port}", timeout=60)
        for o in stack.orchestrators
    ]
    try:

        async def post(replica: int, path: str, body: dict[str, Any], status: int) -> None:
            response = await apis[replica].post(path, json=body)
            assert response.status_code == status, response.text
            traffic.requests += 1
            traffic.by_replica[replica] += 1

        for i in range(3):
            await post(0, "/synthesize", {"text": f"Replica zero, sentence {i}."}, 200)
        for i in range(2):
            await post(1, "/synthesize", {"text": f"Replica one, sentence {i}."}, 200)
        traffic.synthesize_ok = 5
        speech = {"model": "tts-1", "input": "OpenAI style.", "voice": "en_US-joe-medium"}
        await post(1, "/v1/audio/speech", speech, 200)
        traffic.speech_ok = 1
        traffic.audio = 6
        for _ in range(2):
            await post(0, "/synthesize", {"text": "Who?", "voice": "nobody-here"}, 404)
        traffic.voice_not_found = 2
        await post(1, "/synthesize", {"text": ""}, 422)
        traffic.invalid_value = 1
    finally:
        for api in apis:
            await api.aclose()


def prometheus_config(targets: dict[str, list[str]], alertmanager: int) -> dict[str, Any]:
    """monitoring/prometheus.yml as the test runs it: each DNS name a job looks up becomes
    the addresses of the processes standing in for the compose services that answer to it;
    jobs with nothing to find here (node-exporter, Prometheus itself) are left out; every
    job is renamed; scrapes every second; the test's Alertmanager."""
    committed = read_yaml(MONITORING / "prometheus.yml")
    jobs = []
    for job in committed["scrape_configs"]:
        names = [name for sd in job.get("dns_sd_configs", []) for name in sd["names"]]
        found = sorted(
            address
            for name in names
            for service in services_answering(name, COMPOSE_FILES)
            for address in targets.get(service, [])
        )
        if found:
            kept = {k: v for k, v in job.items() if k != "dns_sd_configs"}
            renamed = f"elsewhere-{job['job_name']}"
            jobs.append({**kept, "job_name": renamed, "static_configs": [{"targets": found}]})
    return {
        "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
        "rule_files": ["alerts.yml"],
        "alerting": {
            "alertmanagers": [{"static_configs": [{"targets": [f"127.0.0.1:{alertmanager}"]}]}]
        },
        "scrape_configs": jobs,
    }


@pytest.fixture(scope="module")
async def stack(livekit_server: LiveKitServer) -> AsyncIterator[Stack]:
    redis = RedisServer().start()
    # One worker process per worker service of the production stack plus the workers file.
    services = services_answering("tts-worker", COMPOSE_FILES)
    workers = [
        WorkerProcess(
            env={
                "REDIS_URL": redis.url,
                "TTS_WORKER_WORKER_ID": service,
                "TTS_WORKER_HEARTBEAT_INTERVAL_SECONDS": "0.2",
                "TTS_WORKER_REGISTRY_TTL_SECONDS": "2.0",
            }
        ).start(wait=False)
        for service in services
    ]
    for worker in workers:
        await asyncio.to_thread(worker.wait_serving)
    webhook = WebhookReceiver().start()
    alertmanager = AlertmanagerServer(
        {
            "route": {
                "receiver": "webhook",
                "group_by": ["alertname"],
                "group_wait": "1s",
                "group_interval": "1s",
                "repeat_interval": "1h",
            },
            "receivers": [{"name": "webhook", "webhook_configs": [{"url": webhook.url}]}],
        }
    ).start()
    run_id = free_port()
    orchestrators = [
        Orchestrator(
            orchestrator_settings(
                redis_url=redis.url,
                instance_id=f"live-{run_id}-{i}",
                metrics_flush_seconds=0.2,
                livekit_url=livekit_server.url,
                livekit_api_key=livekit_server.api_key,
                livekit_api_secret=livekit_server.api_secret,
            )
        )
        for i in range(2)
    ]
    prometheus: PrometheusServer | None = None
    client = httpx.AsyncClient(timeout=10)
    try:
        for orch in orchestrators:
            await orch.start()
        targets = {
            service: [f"127.0.0.1:{w.metrics_port}"]
            for service, w in zip(services, workers, strict=True)
        }
        targets["orchestrator"] = [f"127.0.0.1:{o.settings.ops_port}" for o in orchestrators]
        prometheus = PrometheusServer(
            prometheus_config(targets, alertmanager.port),
            rules={"alerts.yml": _rules_with_quick_redis_alert()},
        ).start()
        stack = Stack(
            redis, workers, orchestrators, prometheus, alertmanager, webhook, Traffic(), client
        )

        async def registered() -> None:
            for orch in orchestrators:
                found = sorted(w.worker_id for w in orch.services.registry.workers)
                assert found == services

        async def scraped() -> None:
            up = await stack.query("up")
            assert len(up) == len(workers) + 2, up
            assert all(r["value"][1] == "1" for r in up), up

        await eventually(registered)
        await eventually(scraped)
        await _send_traffic(stack)
        await _run_session(stack, livekit_server)
        yield stack
    finally:
        for orch in orchestrators:
            await orch.stop()
        await client.aclose()
        if prometheus is not None:
            prometheus.stop()
        alertmanager.stop()
        webhook.stop()
        for worker in workers:
            worker.stop()
        redis.stop()


async def test_prometheus_scrapes_every_worker_the_workers_file_adds(stack: Stack) -> None:
    """The production stack plus deploy/compose.workers.yml has three Piper workers, all
    answering to the alias the committed config looks up: Prometheus scrapes each, and
    finds it by the component it reports, under a job name that is not ours."""
    assert len(stack.workers) == 3
    expected = sorted(f"127.0.0.1:{w.metrics_port}" for w in stack.workers)
    found = await stack.query('voiceorch_build_info{component="tts-worker"}')
    assert sorted(r["metric"]["instance"] for r in found) == expected
    assert {r["metric"]["job"] for r in found} == {"elsewhere-tts-worker"}
    per_worker = await stack.query(
        "sum by (instance) (process_resident_memory_bytes * on (job, instance) group_left () "
        'voiceorch_build_info{component="tts-worker"})'
    )
    assert sorted(r["metric"]["instance"] for r in per_worker) == expected


async def test_fleet_totals_equal_the_traffic_sent(stack: Stack) -> None:
    """Both replicas scraped: summed over instances, each request counts exactly once."""
    t = stack.traffic

    async def converged() -> None:
        assert await stack.scalar("sum(voiceorch_requests_total)") == t.requests

    await eventually(converged)
    per_instance = {
        r["metric"]["instance"]: float(r["value"][1])
        for r in await stack.query("sum by (instance) (voiceorch_requests_total)")
    }
    assert sorted(per_instance.values()) == sorted(float(n) for n in t.by_replica)
    q = stack.scalar
    assert await q('sum(voiceorch_requests_total{route="synthesize",status="2xx"})') == 5
    assert await q('sum(voiceorch_requests_total{route="openai_speech",status="2xx"})') == 1
    assert await q('sum(voiceorch_requests_total{status="4xx"})') == 3
    first_audio = t.audio + t.session_utterances
    assert await q("sum(voiceorch_first_audio_seconds_count)") == first_audio
    assert await q('sum(voiceorch_first_audio_seconds_count{route="session"})') == 2
    assert await q("sum(voiceorch_bargeins_total)") == t.bargeins
    assert await q("sum(voiceorch_false_interruptions_total)") == t.false_interruptions
    assert await q("sum(voiceorch_bargein_onset_to_stop_seconds_count)") == t.bargeins
    # Every pause ends in a decision: the resumed ones are the false interruptions.
    cancelled = t.bargeins - t.false_interruptions
    decisions = "sum(voiceorch_bargein_pause_to_decision_seconds_count{decision=%r})"
    assert await q(decisions % "cancel") == cancelled
    assert await q(decisions % "resume") == t.false_interruptions
    assert await q("sum(voiceorch_sessions_started_total)") == 1
    assert await q("sum(voiceorch_sessions_ended_total)") == 1
    assert await q('sum(voiceorch_errors_total{kind="voice_not_found"})') == t.voice_not_found
    assert await q('sum(voiceorch_errors_total{kind="invalid_value"})') == t.invalid_value
    assert await q('sum(voiceorch_errors_total{class="server"})') == 0

    # The fleet view each replica serves from Redis agrees.
    for orch in stack.orchestrators:
        url = f"http://127.0.0.1:{orch.settings.ops_port}/metrics/summary"

        async def summary_agrees(url: str = url) -> None:
            summary = (await stack.client.get(url)).json()
            assert summary["requests"]["total"] == t.requests
            assert summary["first_audio_seconds"]["count"] == t.audio + t.session_utterances
            assert summary["errors"]["by_kind"] == {
                "voice_not_found": t.voice_not_found,
                "invalid_value": t.invalid_value,
            }
            assert len(summary["instances"]) == 2

        await eventually(summary_agrees)


async def test_counters_moved_by_traffic_are_positive(stack: Stack) -> None:
    """What the traffic must have moved did move, on the orchestrators and the worker."""
    t = stack.traffic
    at_least = {
        'sum(voiceorch_worker_streams_total{outcome="completed"})': t.audio,
        "sum(voiceorch_worker_first_frame_seconds_count)": t.audio,
        "sum(voiceorch_worker_inference_seconds_count)": t.audio,
        "sum(voiceorch_worker_queue_seconds_count)": t.audio,
        "sum(voiceorch_worker_realtime_factor_count)": t.audio,
        "sum(voiceorch_worker_audio_seconds_total)": 1,
        "max(voiceorch_worker_voice_load_seconds)": 0.001,
        "sum(voiceorch_first_audio_seconds_sum)": 0.001,
        "max(voiceorch_fleet_capacity_streams)": 1,
        "max(voiceorch_worker_max_streams)": 1,
    }

    async def moved() -> None:
        for expr, want in at_least.items():
            assert await stack.scalar(expr) >= want, expr
        # Session speech feeds the real-time factor and queue time as HTTP synthesis does:
        # every HTTP utterance and the session's finished one, at most every stream the
        # workers completed (less the listener's voice, asked of a worker directly).
        rtf = await stack.scalar("sum(voiceorch_realtime_factor_count)")
        completed = await stack.scalar('sum(voiceorch_worker_streams_total{outcome="completed"})')
        assert t.audio + 1 <= rtf <= completed - 1, (rtf, completed)
        assert await stack.scalar("sum(voiceorch_queue_seconds_count)") == rtf

    await eventually(moved)


async def test_every_panel_query_returns_data(stack: Stack) -> None:
    """Each query of each dashboard, as Grafana would run it, returns series, and the
    barge-in panels carry the session's real (non-zero) data. The GPU panel shows one series
    per device NVML reports on this machine, and none where it reports none."""

    async def traffic_scraped() -> None:
        assert await stack.scalar("sum(voiceorch_requests_total)") == stack.traffic.requests

    await eventually(traffic_scraped)
    devices = {str(index) for index in range(nvml_devices())}
    empty, zero_only = [], []
    for query in panel_queries():
        result = await stack.query(query.expr)
        where = f"{query.dashboard} / {query.panel} / {query.ref}: {query.expr}"
        if metric_names(query.expr) <= GPU_ONLY:
            assert {r["metric"].get("device") for r in result} == devices, where
            continue
        if not result:
            empty.append(where)
        elif all(float(r["value"][1]) == 0 or r["value"][1] == "NaN" for r in result):
            zero_only.append(where)
    assert not empty, "\n".join(empty)
    bargein_zero = [z for z in zero_only if "barge" in z.lower() or "false_interr" in z]
    assert not bargein_zero, "\n".join(bargein_zero)
    print("\npanel queries with only zero or NaN values (no data of that kind yet):")
    print("\n".join(f"  {z}" for z in zero_only))


async def test_an_alert_reaches_the_webhook_through_alertmanager(stack: Stack) -> None:
    """Redis goes away: the replicas report voiceorch_store_up 0, RedisUnreachable fires in
    Prometheus, Alertmanager routes it, the webhook receives it. (Runs last: it stops Redis.)"""
    stack.redis.stop()

    async def delivered() -> None:
        alerts = [
            alert
            for message in stack.webhook.received
            for alert in message["alerts"]
            if alert["labels"]["alertname"] == "RedisUnreachable"
        ]
        assert alerts
        assert all(a["status"] == "firing" for a in alerts)
        targets = {f"127.0.0.1:{o.settings.ops_port}" for o in stack.orchestrators}
        assert {a["labels"]["instance"] for a in alerts} <= targets
        assert alerts[0]["labels"]["severity"] == "page"
        assert "cannot reach Redis" in alerts[0]["annotations"]["summary"]

    await eventually(delivered, within=60)
