"""Shared fixtures: real Redis, real Piper worker processes, a real livekit-server, and
in-process orchestrators (one without LiveKit, one joined to it)."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Iterator

import httpx
import pytest

from fleet.memory_store import MemoryStore
from fleet.redis_store import RedisStore
from fleet.store import Store
from orchestrator.cli import Orchestrator
from orchestrator.settings import OrchestratorSettings
from tests.livekit_server import LiveKitServer, ensure_livekit_server_binary
from tests.processes import RedisServer, WorkerProcess, free_port


@pytest.fixture(scope="session")
def redis_server() -> Iterator[RedisServer]:
    server = RedisServer().start()
    yield server
    server.stop()


@pytest.fixture(params=["memory", "redis"])
async def store(request: pytest.FixtureRequest) -> AsyncIterator[Store]:
    """Each store-backed test runs against both stores: the embedded one and a real Redis."""
    if request.param == "memory":
        yield MemoryStore()
        return
    server: RedisServer = request.getfixturevalue("redis_server")
    redis = RedisStore(server.url, prefix=f"test{free_port()}:")
    yield redis
    await redis.aclose()


@pytest.fixture(scope="session")
def livekit_server() -> Iterator[LiveKitServer]:
    """A real livekit-server built from its Go module. If it cannot be built here, every
    test using it fails loudly with the build's reason: these tests must run in CI."""
    binary = ensure_livekit_server_binary()
    with LiveKitServer(binary) as server:
        yield server


@pytest.fixture(scope="session")
def piper_worker() -> Iterator[WorkerProcess]:
    """One embedded-mode worker (no Redis) shared by the API tests."""
    worker = WorkerProcess().start()
    yield worker
    worker.stop()


@pytest.fixture(scope="session")
def fleet_worker(redis_server: RedisServer) -> Iterator[WorkerProcess]:
    """A worker registered in the shared Redis (heartbeats), for tests of several
    orchestrator replicas sharing that Redis."""
    worker = WorkerProcess(
        env={"REDIS_URL": redis_server.url, "TTS_WORKER_HEARTBEAT_INTERVAL_SECONDS": "0.2"}
    ).start()
    yield worker
    worker.stop()


@pytest.fixture(autouse=True)
async def shared_worker_left_idle(request: pytest.FixtureRequest) -> AsyncIterator[None]:
    """Every test leaves the shared worker as it found it: a stream a test (or the code under
    test) never closes holds one of the worker's slots for good, and the tests after it
    would queue behind it. The stream is named at the test that leaked it."""
    yield
    if "piper_worker" not in request.fixturenames:
        return
    worker: WorkerProcess = request.getfixturevalue("piper_worker")
    busy = await worker.busy_streams(within=10.0)
    assert not busy, f"streams left open on the shared worker: {busy}"


def orchestrator_settings(**overrides: object) -> OrchestratorSettings:
    values: dict[str, object] = {
        "port": free_port(),
        "ops_port": free_port(),
        "workers": [],
        "registry_refresh_seconds": 0.2,
        "log_json": False,
    }
    values.update(overrides)
    return OrchestratorSettings.model_validate(values)


@contextlib.asynccontextmanager
async def running_orchestrator(**overrides: object) -> AsyncIterator[Orchestrator]:
    """An in-process orchestrator with the given settings, stopped on exit."""
    orch = Orchestrator(orchestrator_settings(**overrides))
    await orch.start()
    try:
        yield orch
    finally:
        await orch.stop()


@pytest.fixture(scope="session")
async def orchestrator(piper_worker: WorkerProcess) -> AsyncIterator[Orchestrator]:
    """In-process orchestrator in embedded mode, discovering the shared worker."""
    async with running_orchestrator(workers=[piper_worker.address]) as orch:
        yield orch


@pytest.fixture(scope="session")
async def api(orchestrator: Orchestrator) -> AsyncIterator[httpx.AsyncClient]:
    base = f"http://127.0.0.1:{orchestrator.settings.port}"
    async with httpx.AsyncClient(base_url=base, timeout=60) as client:
        yield client


def livekit_settings(livekit: LiveKitServer) -> dict[str, object]:
    """Orchestrator settings that join the given livekit-server."""
    return {
        "livekit_url": livekit.url,
        "livekit_api_key": livekit.api_key,
        "livekit_api_secret": livekit.api_secret,
    }


@pytest.fixture(scope="session")
async def session_orchestrator(
    piper_worker: WorkerProcess, livekit_server: LiveKitServer
) -> AsyncIterator[Orchestrator]:
    """An orchestrator joined to the real livekit-server: sessions and the browser page."""
    settings = livekit_settings(livekit_server)
    async with running_orchestrator(
        workers=[piper_worker.address], events_keepalive_seconds=0.5, **settings
    ) as orch:
        yield orch


@pytest.fixture(scope="session")
async def session_api(session_orchestrator: Orchestrator) -> AsyncIterator[httpx.AsyncClient]:
    base = f"http://127.0.0.1:{session_orchestrator.settings.port}"
    async with httpx.AsyncClient(base_url=base, timeout=60) as client:
        yield client


@pytest.fixture(scope="session")
async def ops(orchestrator: Orchestrator) -> AsyncIterator[httpx.AsyncClient]:
    base = f"http://127.0.0.1:{orchestrator.settings.ops_port}"
    async with httpx.AsyncClient(base_url=base, timeout=10) as client:
        yield client
