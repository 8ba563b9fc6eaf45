"""With Redis configured, the same code runs a fleet: workers heartbeat into Redis, the
orchestrator routes from it, and a dead worker drops out after its TTL."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import httpx

from orchestrator.cli import Orchestrator
from tests.audio_checks import parse_wav
from tests.conftest import orchestrator_settings
from tests.processes import RedisServer, WorkerProcess, free_port


async def wait_for(predicate: Callable[[], bool], within: float = 10.0) -> None:
    deadline = asyncio.get_running_loop().time() + within
    while not predicate():
        assert asyncio.get_running_loop().time() < deadline, "condition not met in time"
        await asyncio.sleep(0.05)


OWN_DB = 7
"""A Redis database of this test's own: the shared one holds session-wide workers (the
`fleet_worker` fixture), which would answer once this test's workers are gone."""


async def test_redis_fleet_routes_and_drops_dead_workers(redis_server: RedisServer) -> None:
    prefix = f"fleet{free_port()}"
    redis_url = redis_server.url.rsplit("/", 1)[0] + f"/{OWN_DB}"
    env = {
        "REDIS_URL": redis_url,
        "TTS_WORKER_HEARTBEAT_INTERVAL_SECONDS": "0.2",
        "TTS_WORKER_REGISTRY_TTL_SECONDS": "1.0",
        "TTS_WORKER_WORKER_ID": f"{prefix}-a",
    }
    worker_a = WorkerProcess(env=env).start()
    worker_b = WorkerProcess(env={**env, "TTS_WORKER_WORKER_ID": f"{prefix}-b"}).start()
    orch = Orchestrator(orchestrator_settings(redis_url=redis_url))
    await orch.start()
    registry = orch.services.registry
    try:
        ids = lambda: {w.worker_id for w in registry.workers}  # noqa: E731
        await wait_for(lambda: {worker_a.worker_id, worker_b.worker_id} <= ids())
        assert orch.services.store.kind == "redis"
        async with httpx.AsyncClient(
            base_url=f"http://127.0.0.1:{orch.settings.port}", timeout=60
        ) as api:
            response = await api.post("/synthesize", json={"text": "Served through Redis."})
            assert response.status_code == 200
            assert parse_wav(response.content).seconds > 0.5

            # kill -9: no goodbye, the entry must expire on its own.
            worker_a.kill()
            await wait_for(lambda: worker_a.worker_id not in ids(), within=5)
            assert worker_b.worker_id in ids()
            # SIGTERM: a clean drain removes the entry at once.
            assert worker_b.stop() == 0
            await wait_for(lambda: worker_b.worker_id not in ids(), within=2)

            response = await api.post("/synthesize", json={"text": "Nobody is left."})
            assert response.status_code == 503
    finally:
        await orch.stop()
        worker_a.stop()
        worker_b.stop()
