"""With API keys configured the public API lets in only keys with the right scope, at their
rate; ops endpoints stay keyless on their own port, and keys never show up in logs or
metrics."""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator

import httpx
import pytest

from orchestrator.cli import Orchestrator
from orchestrator.http.auth import RateLimiter, parse_api_keys
from tests.conftest import orchestrator_settings
from tests.processes import WorkerProcess

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


def test_token_bucket_refills_at_its_rate() -> None:
    now = [0.0]
    limiter = RateLimiter(per_minute=60, clock=lambda: now[0])
    assert all(limiter.retry_after("k") == 0 for _ in range(60))
    assert limiter.retry_after("k") == pytest.approx(1.0)
    now[0] = 0.5
    assert limiter.retry_after("k") == pytest.approx(0.5)
    now[0] = 1.0
    assert limiter.retry_after("k") == 0


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
