"""Redis goes away during traffic and comes back: synthesis keeps going from the cached
registry, /readyz says why it is degraded, and the metrics recorded meanwhile reach Redis
once it is back, read from Redis itself (the fleet summary would add this replica's
unflushed counts and so hide a broken flush). Nothing crashes."""

from __future__ import annotations

import asyncio

import httpx
import redis.asyncio as aioredis

from orchestrator.cli import Orchestrator
from orchestrator.metrics.catalogue import COUNTERS_KEY
from tests.conftest import orchestrator_settings
from tests.processes import RedisServer, WorkerProcess

SYNTHESIZE_OK = 'voiceorch_requests_total{route="synthesize",status="2xx"}'


async def stored_count(redis_url: str, instance_id: str) -> float:
    """This replica's count of successful /synthesize requests, as Redis holds it."""
    client = aioredis.from_url(redis_url)
    try:
        value = await client.hget(f"vo:{COUNTERS_KEY}{instance_id}", SYNTHESIZE_OK)
    finally:
        await client.aclose()
    return float(value) if value is not None else 0.0


async def test_synthesis_survives_a_redis_outage() -> None:
    redis = RedisServer().start()
    worker = await asyncio.to_thread(
        WorkerProcess(
            env={
                "REDIS_URL": redis.url,
                "TTS_WORKER_HEARTBEAT_INTERVAL_SECONDS": "0.2",
            }
        ).start
    )
    orch = Orchestrator(orchestrator_settings(redis_url=redis.url, metrics_flush_seconds=0.2))
    instance = orch.settings.resolved_instance_id()
    await orch.start()
    api = httpx.AsyncClient(base_url=f"http://127.0.0.1:{orch.settings.port}", timeout=60)
    ops = httpx.AsyncClient(base_url=f"http://127.0.0.1:{orch.settings.ops_port}", timeout=10)
    try:
        for _ in range(100):
            if orch.services.registry.workers:
                break
            await asyncio.sleep(0.05)
        assert (await api.post("/synthesize", json={"text": "Before."})).status_code == 200
        for _ in range(100):  # flushed: what is in Redis now is lost with it
            if await stored_count(redis.url, instance) == 1:
                break
            await asyncio.sleep(0.1)
        assert await stored_count(redis.url, instance) == 1

        await asyncio.to_thread(redis.stop)
        for _ in range(100):
            ready = await ops.get("/readyz")
            if ready.status_code == 503:
                break
            await asyncio.sleep(0.05)
        assert "store unavailable" in ready.json()["reason"]
        during = [
            (await api.post("/synthesize", json={"text": f"During the outage {i}."})).status_code
            for i in range(5)
        ]
        assert during == [200] * 5  # served from the cached registry
        assert (await ops.get("/metrics")).status_code == 200

        await asyncio.to_thread(redis.start)  # same port, empty: a restarted Redis
        for _ in range(200):
            if (await ops.get("/readyz")).status_code == 200:
                break
            await asyncio.sleep(0.05)
        assert (await ops.get("/readyz")).status_code == 200
        assert (await api.post("/synthesize", json={"text": "After."})).status_code == 200

        # The restarted Redis is empty: it must now hold exactly the 5 requests served during
        # the outage (kept in memory, written once it answered) and the one after it.
        for _ in range(100):
            if await stored_count(redis.url, instance) >= 6:
                break
            await asyncio.sleep(0.1)
        assert await stored_count(redis.url, instance) == 6
    finally:
        await api.aclose()
        await ops.aclose()
        await orch.stop()
        worker.stop()
        redis.stop()
