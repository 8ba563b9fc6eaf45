"""SIGTERM drains: readiness fails and new work gets 503 / UNAVAILABLE at once, work under
way finishes, then the process exits 0. Orchestrator and worker both."""

from __future__ import annotations

import asyncio
import signal

import grpc
import httpx
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from tests.audio_checks import parse_wav
from tests.processes import OrchestratorProcess, WorkerProcess
from tests.tts_worker.grpc_client import END, Stream, config, text

LONG_TEXT = " ".join(["This sentence keeps the stream going while the process drains."] * 6)


async def test_orchestrator_sigterm_finishes_streams_then_exits_zero(
    piper_worker: WorkerProcess,
) -> None:
    orch = OrchestratorProcess(
        env={
            "ORCH_WORKERS": f'["{piper_worker.address}"]',
            "ORCH_DRAIN_TIMEOUT_SECONDS": "60",
        }
    ).start()
    assert orch.proc is not None
    try:
        async with (
            httpx.AsyncClient(timeout=60) as client,
            client.stream("POST", orch.api + "/synthesize", json={"text": LONG_TEXT}) as streaming,
        ):
            assert streaming.status_code == 200
            body = streaming.aiter_raw()
            chunks = [await anext(body)]
            orch.proc.send_signal(signal.SIGTERM)
            for _ in range(100):
                ready = await client.get(orch.ops + "/readyz")
                if ready.status_code == 503:
                    break
                await asyncio.sleep(0.05)
            assert ready.json()["reason"].startswith("draining")
            refused = await client.post(orch.api + "/synthesize", json={"text": "new"})
            assert refused.status_code == 503
            assert refused.json()["error"]["code"] == "draining"
            async for chunk in body:
                chunks.append(chunk)
        audio = parse_wav(b"".join(chunks))
        assert audio.seconds > 20  # the whole utterance, not a cut-off
        assert await asyncio.to_thread(orch.proc.wait, 30) == 0
    finally:
        orch.stop()


async def test_worker_sigterm_finishes_streams_then_exits_zero() -> None:
    worker = WorkerProcess(env={"TTS_WORKER_DRAIN_GRACE_SECONDS": "60"}).start()
    assert worker.proc is not None
    try:
        async with grpc.aio.insecure_channel(worker.address) as channel:
            stream = Stream(channel)
            await stream.send(config(utterance_id="draining"), text(LONG_TEXT), END)
            await stream.read_one()
            worker.proc.send_signal(signal.SIGTERM)
            health = health_pb2_grpc.HealthStub(channel)
            for _ in range(100):
                status = (await health.Check(health_pb2.HealthCheckRequest())).status
                if status == health_pb2.HealthCheckResponse.NOT_SERVING:
                    break
                await asyncio.sleep(0.05)
            assert status == health_pb2.HealthCheckResponse.NOT_SERVING
            refused = Stream(channel)

            async def late_stream() -> None:
                # Only the config, which the draining worker refuses (see the unknown-speaker
                # test). The refusal can end the call before the write completes: grpc then
                # raises it from the write instead of the read.
                await refused.send(config(utterance_id="late"))
                await refused.read_all()

            with pytest.raises(grpc.aio.AioRpcError) as caught:
                await late_stream()
            assert caught.value.code() == grpc.StatusCode.UNAVAILABLE
            received = await stream.read_all()
            assert received.stats is not None and not received.stats.cancelled
            assert received.audio_seconds > 20
        assert await asyncio.to_thread(worker.proc.wait, 30) == 0
    finally:
        worker.stop()
