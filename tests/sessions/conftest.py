"""An orchestrator joined to the real livekit-server of tests/conftest.py."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest

from orchestrator.cli import Orchestrator
from tests.conftest import orchestrator_settings
from tests.livekit_server import LiveKitServer
from tests.processes import WorkerProcess


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
            events_keepalive_seconds=0.5,
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
