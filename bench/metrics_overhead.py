"""Cost of the fleet metrics: /metrics scrape time with 100 active sessions and 10k recorded
utterances (target p95 <= 10 ms), and what recording adds to the audio path per call
(target <= 0.2 ms).

The scrape goes over real HTTP to the real ops app (uvicorn on loopback, in a thread of its
own, as Prometheus would reach it), with a registry of 8 workers. `run()` returns the
numbers; `python -m bench.metrics_overhead` prints a table.
"""

from __future__ import annotations

import asyncio
import random
import threading
import time
from collections.abc import Callable
from typing import Any

import httpx
import uvicorn

from bench.stats import summary
from fleet.memory_store import MemoryStore
from fleet.records import VoiceInfo, WorkerRecord
from fleet.workers import put_worker
from orchestrator.http.ops import create_ops_app
from orchestrator.metrics.recorder import FleetMetrics
from orchestrator.workers.channels import WorkerChannels
from orchestrator.workers.registry import WorkerRegistry
from tests.processes import free_port

SESSIONS = 100
UTTERANCES = 10_000
WORKERS = 8


def _record_utterance(metrics: FleetMetrics, rng: random.Random) -> None:
    """What the audio path records for one utterance."""
    metrics.count_request("synthesize", 200)
    metrics.observe_first_audio(rng.lognormvariate(-1.6, 0.5), "synthesize")
    metrics.observe_synthesis(2.0, 2.0 * rng.uniform(0.05, 0.4), rng.uniform(0, 0.05))


def _loaded_metrics() -> tuple[FleetMetrics, WorkerRegistry, WorkerChannels]:
    store = MemoryStore()
    channels = WorkerChannels()
    registry = WorkerRegistry(store, channels, refresh_seconds=3600)

    async def prepare() -> None:
        for i in range(WORKERS):
            record = WorkerRecord(
                f"worker-{i}",
                f"10.0.0.{i}:7001",
                "piper",
                (VoiceInfo("en_US-joe-medium", 22050, "en_US"),),
                "en_US-joe-medium",
                max_streams=8,
                active_streams=i % 8,
                queued_streams=i % 3,
            )
            await put_worker(store, record, ttl_seconds=3600)
        await registry.refresh()

    asyncio.run(prepare())
    metrics = FleetMetrics(store, "bench", fleet=registry)
    asyncio.run(metrics.load())
    rng = random.Random(7)
    for _ in range(SESSIONS):
        metrics.session_started()
    for _ in range(UTTERANCES):
        _record_utterance(metrics, rng)
    for _ in range(500):
        metrics.observe_bargein_stop(rng.uniform(0.05, 0.3))
        metrics.observe_bargein_decision(rng.choice(("resume", "cancel")), rng.uniform(0.1, 1.0))
    metrics.count_error("voice_not_found")
    return metrics, registry, channels


def _ns_per_call(fn: Callable[[], None], calls: int = 100_000, repeats: int = 5) -> float:
    best = float("inf")
    for _ in range(repeats):
        started = time.perf_counter_ns()
        for _ in range(calls):
            fn()
        best = min(best, (time.perf_counter_ns() - started) / calls)
    return best


def run(scrapes: int = 500) -> dict[str, Any]:
    """Scrape latency over HTTP (ms) and recording cost (ns per call)."""
    metrics, registry, _channels = _loaded_metrics()
    app = create_ops_app(registry, metrics)
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, lifespan="off", log_level="warning")
    )
    thread = threading.Thread(target=server.run, name="ops-server", daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 10
        while not server.started:
            if time.monotonic() > deadline:
                raise RuntimeError("ops server did not start")
            time.sleep(0.01)
        latencies = []
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=5) as client:
            body = client.get("/metrics").content  # warm-up
            for _ in range(scrapes):
                started = time.perf_counter()
                response = client.get("/metrics")
                latencies.append((time.perf_counter() - started) * 1000)
                assert response.status_code == 200
    finally:
        server.should_exit = True
        thread.join(10)

    render = []
    for _ in range(200):
        started = time.perf_counter()
        metrics.exposition()
        render.append((time.perf_counter() - started) * 1000)

    rng = random.Random(1)
    return {
        "sessions": SESSIONS,
        "utterances": UTTERANCES,
        "workers": WORKERS,
        "exposition_bytes": len(body),
        "exposition_lines": body.count(b"\n"),
        "scrape_http_ms": summary(latencies),
        "render_ms": summary(render),
        "record_ns": {
            "observe_first_audio": _ns_per_call(
                lambda: metrics.observe_first_audio(0.21, "synthesize")
            ),
            "count_request": _ns_per_call(lambda: metrics.count_request("synthesize", 200)),
            "observe_synthesis": _ns_per_call(lambda: metrics.observe_synthesis(2.0, 0.4, 0.01)),
            "observe_bargein_stop": _ns_per_call(lambda: metrics.observe_bargein_stop(0.12)),
            "one_utterance": _ns_per_call(lambda: _record_utterance(metrics, rng), calls=50_000),
        },
    }


def table(result: dict[str, Any]) -> str:
    scrape, render = result["scrape_http_ms"], result["render_ms"]
    rows = [
        f"/metrics, {result['sessions']} sessions, {result['utterances']} utterances, "
        f"{result['workers']} workers ({result['exposition_lines']} lines, "
        f"{result['exposition_bytes']} bytes)",
        f"  scrape over HTTP   p50 {scrape['p50']:.2f} ms   p95 {scrape['p95']:.2f} ms"
        f"   (target p95 <= 10 ms)",
        f"  render only        p50 {render['p50']:.2f} ms   p95 {render['p95']:.2f} ms",
        "recording on the audio path (ns per call; target <= 200000 ns)",
    ]
    rows += [f"  {name:<20} {ns:>8.0f} ns" for name, ns in result["record_ns"].items()]
    return "\n".join(rows)


if __name__ == "__main__":
    print(table(run()))
