"""With API keys configured the public API lets in only keys with the right scope, at their
rate in that scope, counted once for the whole fleet (in Redis) or in process on a single
node; ops endpoints stay keyless on their own port, and keys never show up in logs or
metrics."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import AsyncIterator

import httpx
import pytest
import redis.asyncio as aioredis

from orchestrator.cli import Orchestrator
from orchestrator.http.auth import parse_api_keys
from orchestrator.http.rate_limit import KEY_PREFIX, RateLimiter, RateLimitOptions
from tests.conftest import orchestrator_settings
from tests.processes import RedisServer, WorkerProcess, free_port

SYNTH_KEY = "synth-only-key-0123456789"
FULL_KEY = "full-access-key-9876543210"
SLOW_KEY = "rate-limited-key-555555555"


@pytest.fixture(scope="module")
async def secured(piper_worker: WorkerProcess) -> AsyncIterator[Orchestrator]:
    keys = {
        SYNTH_KEY: ["synthesize"],
        FULL_KEY: ["synthesize", "sessions"],
        SLOW_KEY: ["synthesize"],
    }
    orch = Orchestrator(
        orchestrator_settings(
            workers=[piper_worker.address],
            api_keys=json.dumps(keys),
            rate_limit_per_minute=30,
        )
    )
    await orch.start()
    yield orch
    await orch.stop()


def client(orch: Orchestrator, key: str | None = None, ops: bool = False) -> httpx.AsyncClient:
    port = orch.settings.ops_port if ops else orch.settings.port
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    return httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", headers=headers, timeout=60)


async def test_no_or_wrong_key_is_401(secured: Orchestrator) -> None:
    async with client(secured) as anonymous, client(secured, "not-a-real-key-at-all") as wrong:
        for api in (anonymous, wrong):
            response = await api.post("/synthesize", json={"text": "hello"})
            assert response.status_code == 401
            assert response.headers["www-authenticate"] == "Bearer"
            assert response.json()["error"]["param"] == "authorization"
        assert (await anonymous.post("/sessions", json={})).status_code == 401


async def test_scope_is_enforced(secured: Orchestrator, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    async with client(secured, SYNTH_KEY) as api:
        spoken = await api.post("/synthesize", json={"text": "Allowed to speak."})
        assert spoken.status_code == 200
        denied = await api.post("/sessions", json={})
        assert denied.status_code == 403
        assert "sessions" in denied.json()["error"]["message"]
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{secured.settings.port}") as raw:
        by_header = await raw.get("/v1/voices", headers={"X-API-Key": FULL_KEY})
        assert by_header.status_code == 200
        assert (await raw.get("/openapi.json")).status_code == 200  # docs hold no secrets
    async with client(secured, ops=True) as ops:
        assert (await ops.get("/readyz")).status_code == 200
        metrics = (await ops.get("/metrics")).text
    for key in (SYNTH_KEY, FULL_KEY):
        assert key not in metrics
        assert key not in caplog.text


async def test_rate_limit_answers_429_with_retry_after(secured: Orchestrator) -> None:
    async with client(secured, SLOW_KEY) as api:
        statuses = [(await api.get("/v1/voices")).status_code for _ in range(31)]
        assert statuses[:30] == [200] * 30
        assert statuses[30] == 429
        limited = await api.get("/v1/voices")
        assert int(limited.headers["retry-after"]) >= 1
    async with client(secured, FULL_KEY) as other:  # buckets are per key
        assert (await other.get("/v1/voices")).status_code == 200


async def test_counts_are_per_key_and_per_scope_with_scope_limits() -> None:
    limiter = RateLimiter(RateLimitOptions(per_minute=2, scopes={"sessions": 1}))
    try:
        assert [await limiter.retry_after("a", "synthesize") for _ in range(2)] == [0, 0]
        assert await limiter.retry_after("a", "synthesize") > 0
        assert await limiter.retry_after("a", "sessions") == 0  # its own count and limit
        assert await limiter.retry_after("a", "sessions") > 0
        assert await limiter.retry_after("b", "synthesize") == 0  # another key
    finally:
        await limiter.aclose()


async def test_retry_after_is_when_the_oldest_request_leaves_the_window() -> None:
    """Moving window: N requests in any 60 s. Refused just after N requests, the wait is the
    rest of the minute since the first of them."""
    limiter = RateLimiter(RateLimitOptions(per_minute=3))
    try:
        started = time.time()
        for _ in range(3):
            assert await limiter.retry_after("k", "synthesize") == 0
        wait = await limiter.retry_after("k", "synthesize")
        assert 60 - (time.time() - started) - 1.0 <= wait <= 60.0
    finally:
        await limiter.aclose()


async def test_one_limit_for_the_fleet_in_redis(redis_server: RedisServer) -> None:
    """Two replicas sharing Redis allow the limit once between them (in process each would
    allow it in full), and the counts are in Redis itself."""
    key = f"fleet-{free_port()}"  # fresh counts: windows outlive a test run by a minute
    shared = [RateLimiter(RateLimitOptions(3, redis_url=redis_server.url)) for _ in range(2)]
    alone = [RateLimiter(RateLimitOptions(3)) for _ in range(2)]
    raw = aioredis.from_url(redis_server.url)
    try:
        waits = [await shared[i % 2].retry_after(key, "synthesize") for i in range(4)]
        assert waits[:3] == [0, 0, 0] and waits[3] > 0
        assert all(limiter.shared for limiter in shared)
        local = [await alone[i % 2].retry_after(key, "synthesize") for i in range(4)]
        assert local == [0, 0, 0, 0]
        stored = [k.decode() async for k in raw.scan_iter(match=f"{KEY_PREFIX}*{key}*")]
        assert len(stored) == 1 and "synthesize" in stored[0], stored
        assert await raw.llen(stored[0]) == 3  # the three requests let through
    finally:
        await raw.aclose()
        for limiter in (*shared, *alone):
            await limiter.aclose()


async def test_without_redis_each_replica_counts_on_its_own() -> None:
    """Redis unreachable: the limit still holds, per replica, instead of failing calls."""
    limiter = RateLimiter(RateLimitOptions(2, redis_url=f"redis://127.0.0.1:{free_port()}/0"))
    try:
        waits = [await limiter.retry_after("k", "synthesize") for _ in range(3)]
        assert waits[:2] == [0, 0] and waits[2] > 0
        assert not limiter.shared
    finally:
        await limiter.aclose()


async def test_replicas_answer_429_once_the_fleet_used_the_limit(
    redis_server: RedisServer,
) -> None:
    """Through the HTTP API of two orchestrators on one Redis: 4 a minute in all."""
    key = f"fleet-http-key-{free_port()}-0123456789"
    common = {
        "redis_url": redis_server.url,
        "api_keys": json.dumps({key: ["synthesize"]}),
        "rate_limit_per_minute": 4,
    }
    replicas = [Orchestrator(orchestrator_settings(**common)) for _ in range(2)]
    for orch in replicas:
        await orch.start()
    try:
        statuses = []
        for i in range(6):
            async with client(replicas[i % 2], key) as api:
                statuses.append((await api.get("/v1/voices")).status_code)
        assert [s == 429 for s in statuses] == [False] * 4 + [True] * 2, statuses
    finally:
        for orch in replicas:
            await orch.stop()


@pytest.mark.parametrize(
    ("raw", "words"),
    [
        ("not json", "not valid JSON"),
        ("[]", "JSON object"),
        ('{"short": ["synthesize"]}', "shorter than 16"),
        ('{"long-enough-key-1234": ["admin"]}', "scopes"),
        ('{"long-enough-key-1234": []}', "scopes"),
    ],
)
def test_bad_key_configuration_is_refused_without_echoing_keys(raw: str, words: str) -> None:
    with pytest.raises(ValueError, match=words) as caught:
        parse_api_keys(raw)
    assert "long-enough-key-1234" not in str(caught.value)
