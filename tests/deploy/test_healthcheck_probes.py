"""The container health probes (`tts_worker.healthcheck`, `orchestrator.http.healthcheck`).

They are what HEALTHCHECK, compose and Kubernetes exec probes run, so each is run here as a
real process against real servers: it must exit 0 only when the service is truly ready.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import grpc
import httpx
import pytest
from grpc_health.v1 import health, health_pb2, health_pb2_grpc

from orchestrator.cli import Orchestrator
from tests.conftest import orchestrator_settings
from tests.deploy.conftest import ROOT
from tests.processes import WorkerProcess, free_port
from tts_worker.healthcheck import serving_status


def probe(module: str, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", module, *args],
        cwd=ROOT,
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=30,
    )


async def async_probe(module: str, *args: str, **env: str) -> tuple[int, str]:
    """The probe as a subprocess while this event loop keeps serving the in-process app."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", module, *args,
        cwd=ROOT, env={**os.environ, **env},
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, err = await asyncio.wait_for(proc.communicate(), 30)
    assert proc.returncode is not None
    return proc.returncode, (out + err).decode()


@pytest.fixture
def health_server() -> Iterator[tuple[str, health.HealthServicer]]:
    """A gRPC server with only the standard health service, whose status the test sets."""
    server = grpc.server(ThreadPoolExecutor(2))
    servicer = health.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(servicer, server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    try:
        yield f"127.0.0.1:{port}", servicer
    finally:
        server.stop(0)


def test_worker_probe_passes_against_a_real_worker(piper_worker: WorkerProcess) -> None:
    """A running Piper worker answers SERVING: exit 0, by address or from TTS_WORKER_PORT."""
    assert probe("tts_worker.healthcheck", piper_worker.address).returncode == 0
    result = probe("tts_worker.healthcheck", TTS_WORKER_PORT=str(piper_worker.port))
    assert result.returncode == 0, result.stderr


def test_worker_probe_fails_unless_serving(
    health_server: tuple[str, health.HealthServicer],
) -> None:
    """NOT_SERVING (a draining worker) and UNKNOWN fail the probe; SERVING passes it."""
    address, servicer = health_server
    servicer.set("", health_pb2.HealthCheckResponse.NOT_SERVING)
    result = probe("tts_worker.healthcheck", address)
    assert result.returncode == 1 and "status 2" in result.stderr, result.stderr
    servicer.set("", health_pb2.HealthCheckResponse.UNKNOWN)
    assert probe("tts_worker.healthcheck", address).returncode == 1
    servicer.set("", health_pb2.HealthCheckResponse.SERVING)
    assert probe("tts_worker.healthcheck", address).returncode == 0


def test_worker_probe_fails_fast_when_nothing_listens() -> None:
    """A dead worker fails the probe within its own timeout (HEALTHCHECK --timeout is 3 s)."""
    started = time.monotonic()
    result = probe("tts_worker.healthcheck", f"127.0.0.1:{free_port()}")
    assert result.returncode == 1
    assert time.monotonic() - started < 3.0
    assert "UNAVAILABLE" in result.stderr or "DEADLINE" in result.stderr, result.stderr


def test_worker_probe_decodes_health_responses() -> None:
    """The hand-written decoder reads the status field the way protobuf does."""
    for status in (0, 1, 2, 3):
        encoded = health_pb2.HealthCheckResponse(status=status).SerializeToString()
        assert serving_status(encoded) == status
    # Unknown fields before the status are skipped, not mistaken for it.
    assert serving_status(b"\x12\x03abc\x08\x01") == 1


async def test_orchestrator_probe_fails_with_the_reason_when_not_ready() -> None:
    """/readyz 503 (no worker) fails the probe, and the probe prints why."""
    orch = Orchestrator(orchestrator_settings(workers=[]))
    await orch.start()
    try:
        code, output = await async_probe(
            "orchestrator.http.healthcheck", ORCH_OPS_PORT=str(orch.settings.ops_port)
        )
    finally:
        await orch.stop()
    assert code == 1
    assert "503" in output and "no TTS worker is registered" in output


async def test_orchestrator_probe_passes_when_ready(orchestrator: Orchestrator) -> None:
    """With a worker registered, /readyz is 200 and the probe exits 0."""
    ops = f"http://127.0.0.1:{orchestrator.settings.ops_port}"
    async with httpx.AsyncClient(base_url=ops, timeout=5) as client:
        deadline = time.monotonic() + 30
        while (await client.get("/readyz")).status_code != 200:
            assert time.monotonic() < deadline, "orchestrator never became ready"
            await asyncio.sleep(0.2)
    code, output = await async_probe(
        "orchestrator.http.healthcheck", ORCH_OPS_PORT=str(orchestrator.settings.ops_port)
    )
    assert code == 0, output
    code, output = await async_probe("orchestrator.http.healthcheck", f"{ops}/readyz")
    assert code == 0, output


async def test_orchestrator_probe_fails_when_nothing_listens() -> None:
    """A dead orchestrator fails the probe (connection refused), never passes it."""
    code, output = await async_probe(
        "orchestrator.http.healthcheck", ORCH_OPS_PORT=str(free_port())
    )
    assert code == 1
    assert "refused" in output.lower(), output
