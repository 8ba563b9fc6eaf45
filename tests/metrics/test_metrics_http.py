"""The real orchestrator feeds its metrics: each request, error and first audio on the
public API moves the series /metrics exports on the ops port (the flat-zero dashboard of
the system this grew out of is the failure pinned down here)."""

from __future__ import annotations

import asyncio

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from orchestrator.cli import Orchestrator
from tests.conftest import orchestrator_settings
from tests.processes import running_worker

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


async def scrape(ops: httpx.AsyncClient) -> Samples:
    response = await ops.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    out: Samples = {}
    for family in text_string_to_metric_families(response.text):
        for s in family.samples:
            out[(s.name, frozenset(s.labels.items()))] = s.value
    return out


def delta(before: Samples, after: Samples, name: str, **labels: str) -> float:
    key = (name, frozenset(labels.items()))
    return after[key] - before[key]


async def test_requests_errors_and_first_audio_are_counted(
    api: httpx.AsyncClient, ops: httpx.AsyncClient, orchestrator: Orchestrator
) -> None:
    before = await scrape(ops)
    ok = await api.post("/synthesize", json={"text": "Metrics, please."})
    assert ok.status_code == 200
    speech = await api.post(
        "/v1/audio/speech",
        json={"model": "tts-1", "input": "And here.", "voice": "en_US-joe-medium"},
    )
    assert speech.status_code == 200
    assert (await api.post("/synthesize", json={"text": "x", "voice": "nobody"})).status_code == 404
    assert (await api.post("/synthesize", json={"text": ""})).status_code == 422
    assert (
        await api.post("/synthesize", content=b"{", headers={"content-type": "application/json"})
    ).status_code == 400
    assert (
        await api.post("/synthesize", content=b"text", headers={"content-type": "text/plain"})
    ).status_code == 415
    huge = "a" * (orchestrator.settings.max_body_bytes + 10)
    assert (await api.post("/synthesize", json={"text": huge})).status_code == 413
    assert (await api.get("/no-such-route")).status_code == 404
    after = await scrape(ops)

    assert delta(before, after, "voiceorch_requests_total", route="synthesize", status="2xx") == 1
    assert (
        delta(before, after, "voiceorch_requests_total", route="openai_speech", status="2xx") == 1
    )
    assert delta(before, after, "voiceorch_requests_total", route="synthesize", status="4xx") == 5
    assert delta(before, after, "voiceorch_requests_total", route="other", status="4xx") == 1
    for kind in (
        "voice_not_found",
        "invalid_value",
        "invalid_json",
        "unsupported_media_type",
        "body_too_large",
        "not_found",
    ):
        assert (
            delta(before, after, "voiceorch_errors_total", kind=kind, **{"class": "client"}) == 1
        ), kind
    for route in ("synthesize", "openai_speech"):
        assert delta(before, after, "voiceorch_first_audio_seconds_count", route=route) == 1
        seconds = delta(before, after, "voiceorch_first_audio_seconds_sum", route=route)
        assert 0 < seconds < orchestrator.settings.first_audio_timeout_seconds
    # Worker stats of the two completed utterances.
    assert delta(before, after, "voiceorch_realtime_factor_count") == 2
    assert delta(before, after, "voiceorch_queue_seconds_count") == 2
    assert 0 < delta(before, after, "voiceorch_realtime_factor_sum") < 2 * 5


async def test_registry_gauges_describe_the_worker(ops: httpx.AsyncClient) -> None:
    """Worker utilisation, state and queue depth come from the registry cache."""
    samples = await scrape(ops)
    workers = {
        dict(labels)["state"]: v
        for (name, labels), v in samples.items()
        if name == "voiceorch_fleet_workers"
    }
    assert sum(workers.values()) == 1
    assert samples[("voiceorch_fleet_capacity_streams", frozenset())] >= 1
    utilisation = [
        v for (name, _), v in samples.items() if name == "voiceorch_fleet_worker_utilisation_ratio"
    ]
    assert len(utilisation) == 1 and 0 <= utilisation[0] <= 1
    assert samples[("voiceorch_store_up", frozenset({("store", "memory")}))] == 1


async def test_summary_is_the_fleet_view(api: httpx.AsyncClient, ops: httpx.AsyncClient) -> None:
    before = (await ops.get("/metrics/summary")).json()
    assert (await api.post("/synthesize", json={"text": "Summarise me."})).status_code == 200
    after = (await ops.get("/metrics/summary")).json()
    assert after["requests"]["total"] == before["requests"]["total"] + 1
    first = after["first_audio_seconds"]
    assert first["count"] == before["first_audio_seconds"]["count"] + 1
    assert 0 < first["p50"] <= first["p95"] <= first["p99"]
    assert 0 <= first["sla_compliance_percent"] <= 100
    assert after["sla_first_audio_seconds"] == 0.5
    assert set(after) >= {"bargein", "sessions", "errors", "realtime_factor", "queue_seconds"}


async def test_audio_cut_off_mid_stream_counts_as_a_server_error() -> None:
    """A worker killed after the first audio: the response was a 200, but the body is cut
    off; that is a server-side failure the error-rate alert must see."""
    with running_worker() as worker:
        orch = Orchestrator(orchestrator_settings(workers=[worker.address]))
        await orch.start()
        try:
            async with (
                httpx.AsyncClient(base_url=f"http://127.0.0.1:{orch.settings.ops_port}") as ops,
                httpx.AsyncClient(
                    base_url=f"http://127.0.0.1:{orch.settings.port}", timeout=60
                ) as api,
            ):
                deadline = asyncio.get_running_loop().time() + 30
                while not orch.services.registry.workers:
                    assert asyncio.get_running_loop().time() < deadline
                    await asyncio.sleep(0.05)
                before = await scrape(ops)
                long_text = " ".join(
                    f"This is sentence number {i} of a long read." for i in range(60)
                )

                async def listen_while_the_worker_dies() -> None:
                    async with api.stream("POST", "/synthesize", json={"text": long_text}) as r:
                        assert r.status_code == 200
                        async for _ in r.aiter_bytes():
                            worker.kill()

                with pytest.raises(httpx.HTTPError):
                    await listen_while_the_worker_dies()
                after = await scrape(ops)
        finally:
            await orch.stop()
    server = {"class": "server"}
    assert delta(before, after, "voiceorch_errors_total", kind="stream_interrupted", **server) == 1
    assert delta(before, after, "voiceorch_errors_total", kind="internal_error", **server) == 0
    assert delta(before, after, "voiceorch_requests_total", route="synthesize", status="2xx") == 1
    assert delta(before, after, "voiceorch_first_audio_seconds_count", route="synthesize") == 1
    assert delta(before, after, "voiceorch_realtime_factor_count") == 0  # no stats: no RTF
