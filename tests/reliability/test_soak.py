"""30 concurrent clients mixing /synthesize, /v1/audio/speech and LiveKit sessions for two
minutes: no server error (a 503 at capacity is retried after its Retry-After, as clients
do), memory flat after warm-up, tasks back to baseline afterwards.
Sessions have a listener (the rtc SDK) and really speak: every utterance accepted is heard,
counted at the listener. The listeners run in a process of their own, so the memory measured
is the orchestrator's (with its clients' HTTP calls), not the listeners' rooms as well."""

from __future__ import annotations

import asyncio
import os
import random
import statistics
import time
from collections import Counter

import httpx
import psutil
import pytest

from orchestrator.cli import Orchestrator
from tests.conftest import orchestrator_settings
from tests.livekit_server import LiveKitServer
from tests.processes import WorkerProcess
from tests.reliability.remote_listeners import RemoteListeners

SECONDS = float(os.environ.get("VO_TEST_SOAK_SECONDS", "120"))
WARM_UP = min(20.0, SECONDS / 4)
CLIENTS = 30
TEXTS = ["Your table is ready.", "Thanks, see you soon.", "The next train leaves at nine."]
HEARD_SECONDS = 0.3
"""Speech that must reach a session's listener for its utterance to count as heard (each
text is well over a second of audio)."""


SERVER_ERRORS: list[str] = []


RETRIES = 5
"""503s with Retry-After that a client honours before it gives up (the OpenAI SDK retries
them too): a worker at capacity refuses streams it could not keep fed."""
RSS_SAMPLE_SECONDS = 1.0


def failures(response: httpx.Response) -> None:
    """Keep what a 5xx said (its message names the worker's gRPC status) for the report."""
    if response.status_code >= 500:
        SERVER_ERRORS.append(response.text[:300])


async def post(
    api: httpx.AsyncClient, url: str, body: dict[str, str], seen: Counter[str]
) -> httpx.Response:
    """POST as a well-behaved client: a 503 that says when to come back is retried then."""
    for _ in range(RETRIES):
        response = await api.post(url, json=body)
        retry_after = response.headers.get("retry-after")
        if response.status_code != 503 or retry_after is None:
            break
        seen["refused, retried"] += 1
        await asyncio.sleep(float(retry_after))
    return response


def describe(task: asyncio.Task[object]) -> str:
    """A task's name and where it waits, for a failure message."""
    frames = task.get_stack(limit=1)
    where = f" at {frames[0].f_code.co_qualname}:{frames[0].f_lineno}" if frames else ""
    return f"{task.get_name()} ({task.get_coro()!r}){where}"


async def sample_rss(process: psutil.Process, samples: list[int]) -> None:
    while True:
        samples.append(process.memory_info().rss)
        await asyncio.sleep(RSS_SAMPLE_SECONDS)


async def client_loop(
    api: httpx.AsyncClient, listeners: RemoteListeners, until: float, seen: Counter[str]
) -> None:
    rng = random.Random()
    while time.monotonic() < until:
        pick = rng.random()
        if pick < 0.45:
            response = await post(api, "/synthesize", {"text": rng.choice(TEXTS)}, seen)
            seen[f"synthesize {response.status_code}"] += 1
            failures(response)
        elif pick < 0.9:
            response = await post(
                api,
                "/v1/audio/speech",
                {
                    "model": "tts-1",
                    "input": rng.choice(TEXTS),
                    "voice": "en_US-joe-medium",
                    "response_format": "pcm",
                },
                seen,
            )
            seen[f"speech {response.status_code}"] += 1
            failures(response)
        else:
            await session_round(api, listeners, rng, seen)


async def utterance_state(api: httpx.AsyncClient, session_id: str, utterance_id: str) -> str:
    found = (await api.get(f"/sessions/{session_id}")).json().get("utterances") or []
    return next((u["state"] for u in found if u["utterance_id"] == utterance_id), "unknown")


async def session_round(
    api: httpx.AsyncClient, listeners: RemoteListeners, rng: random.Random, seen: Counter[str]
) -> None:
    """A session with a listener: it says one text, and the listener hears it."""
    created = await post(api, "/sessions", {}, seen)
    seen[f"session {created.status_code}"] += 1
    failures(created)
    if created.status_code != 201:
        return
    session = created.json()
    session_id = session["session_id"]
    try:
        await listeners.join(session_id, session["url"], session["token"])
        asked = time.perf_counter()
        said = await post(api, f"/sessions/{session_id}/say", {"text": rng.choice(TEXTS)}, seen)
        seen[f"say {said.status_code}"] += 1
        failures(said)
        if said.status_code == 202:
            if await listeners.hear(session_id, HEARD_SECONDS, asked, within=60):
                seen["heard"] += 1
            else:  # the utterance's state tells refused (failed) from lost (still speaking)
                utterance = said.json()["utterance_id"]
                state = await utterance_state(api, session_id, utterance)
                seen[f"not heard ({state})"] += 1
    finally:
        await listeners.leave(session_id)
        ended = await api.delete(f"/sessions/{session_id}")
        seen[f"delete {ended.status_code}"] += 1
        failures(ended)


@pytest.mark.timeout(int(SECONDS) + 300)
async def test_soak_mixed_traffic(
    piper_worker: WorkerProcess, livekit_server: LiveKitServer
) -> None:
    orch = Orchestrator(
        orchestrator_settings(
            workers=[piper_worker.address],
            livekit_url=livekit_server.url,
            livekit_api_key=livekit_server.api_key,
            livekit_api_secret=livekit_server.api_secret,
        )
    )
    await orch.start()
    listeners = RemoteListeners()
    await listeners.start()
    process = psutil.Process()
    try:
        before = asyncio.all_tasks()
        baseline_tasks = len(before)
        seen: Counter[str] = Counter()
        limits = httpx.Limits(max_connections=CLIENTS)
        async with httpx.AsyncClient(
            base_url=f"http://127.0.0.1:{orch.settings.port}", timeout=120, limits=limits
        ) as api:
            started = time.monotonic()
            until = started + SECONDS
            clients = [
                asyncio.create_task(client_loop(api, listeners, until, seen))
                for _ in range(CLIENTS)
            ]
            await asyncio.sleep(WARM_UP)
            # Sampled, not read once: how many rooms and streams are open at one instant
            # moves RSS by tens of MiB (each room runs its own native threads), so one read
            # at each end compares two random loads. A leak shows as a rise from the first
            # third of the run to the last.
            rss: list[int] = []
            sampler = asyncio.create_task(sample_rss(process, rss))
            await asyncio.gather(*clients)
            sampler.cancel()
        for _ in range(100):  # sessions' room deletions and streams wind down
            if len(asyncio.all_tasks()) <= baseline_tasks:
                break
            await asyncio.sleep(0.1)
        tasks_end = len(asyncio.all_tasks())
        leftover = [describe(t) for t in asyncio.all_tasks() - before]
        listeners_rss = psutil.Process(listeners.pid).memory_info().rss
    finally:
        await listeners.aclose()
        await orch.stop()
    third = len(rss) // 3
    rss_first, rss_last = statistics.median(rss[:third]), statistics.median(rss[-third:])
    growth = (rss_last - rss_first) / rss_first
    print(
        f"\nsoak {SECONDS:.0f}s x {CLIENTS} clients: {dict(seen)}; RSS median "
        f"{rss_first / 2**20:.0f} -> {rss_last / 2**20:.0f} MiB ({growth:+.1%}) over "
        f"{len(rss)} samples; tasks {baseline_tasks} -> {tasks_end}; listeners' process "
        f"{listeners_rss / 2**20:.0f} MiB"
    )
    assert not [k for k in seen if k.split()[-1].startswith("5")], (seen, SERVER_ERRORS[:5])
    assert sum(seen.values()) > CLIENTS
    assert seen["say 202"] > 0 and seen["heard"] == seen["say 202"], seen
    assert growth < 0.10
    assert tasks_end <= baseline_tasks, leftover
