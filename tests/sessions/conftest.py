"""LiveKit fixtures: a real livekit-server (built from its Go module) and an orchestrator
joined to it. If the server cannot be built here, every test in this folder fails loudly
with the build's reason: these tests must run in CI."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import httpx
import pytest

from orchestrator.cli import Orchestrator
from tests.conftest import orchestrator_settings
from tests.livekit_server import LiveKitServer, ensure_livekit_server_binary
from tests.processes import WorkerProcess


@pytest.fixture(scope="session")
def livekit_server() -> Iterator[LiveKitServer]:
    binary = ensure_livekit_server_binary()
    with LiveKitServer(binary) as server:
        yield server


@pytest.fixture(scope="session")
async def session_orchestrator(
    piper_worker: WorkerProcess, livekit_server: LiveKitServer
) -> AsyncIterator[Orchestrator]:
    orch = Orchestrator(
        orchestrator_settings(
            workers=[piper_worker.address],
            livekit_url=livekit_server.url,
            livekit_api_key=livekit_server.api_key,
            livekit_api_secret=livekit_server.api_secret,
        )
    )
    await orch.start()
    yield orch
    await orch.stop()


@pytest.fixture(scope="session")
async def session_api(session_orchestrator: Orchestrator) -> AsyncIterator[httpx.AsyncClient]:
    base = f"http://127.0.0.1:{session_orchestrator.settings.port}"
    async with httpx.AsyncClient(base_url=base, timeout=60) as client:
        yield client
