"""Fleet benchmarks: a session outliving its replica, the fleet-wide rate limit, event
streams that resume.

- takeover: two orchestrator processes share Redis, a Piper worker and a real
  livekit-server; an rtc listener hears a session speak. The replica running it is killed
  (SIGKILL) mid-utterance, and `say` is sent to the other one (retried while it answers
  503). Measured at the listener: kill -> first speech on a track the dead replica never
  published, i.e. the next utterance audible through the new owner. Also kill -> `say`
  accepted. The replica TTL is the default's (it bounds when the death is noticed).
- rate limit: the API-key middleware alone, over a trivial app: time per request with no
  limit, with the in-process count and with the Redis count (moving window, `limits`);
  overhead = median per request minus the no-limit median, runs interleaved.
- resume: while the session speaks, a client reads its event stream a few events at a
  time, then reconnects with Last-Event-ID to either replica (the owner's own log, or the
  store), 100 times; what it got is compared with the full history, event by event.

`python -m bench.fleet` runs these alone and writes bench/results/<time>-fleet.json.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import random
import statistics
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx

from bench.stats import summary
from orchestrator.http.auth import AuthMiddleware, parse_api_keys
from orchestrator.http.rate_limit import RateLimiter, RateLimitOptions
from tests.livekit_server import LiveKitServer, ensure_livekit_server_binary
from tests.processes import OrchestratorProcess, RedisServer, WorkerProcess, free_port
from tests.sessions.listener import Listener

SPEECH = (
    "Here is the full list of opening hours for every branch in the city. The central branch "
    "opens at eight in the morning and closes at six in the evening on weekdays."
)
AFTER = "Still here, through the other replica."
API_KEY = "bench-rate-limit-key-0123456789"


def _replica(name: str, redis: RedisServer, lk: LiveKitServer, env: dict[str, str]) -> Any:
    return OrchestratorProcess(
        env={
            "ORCH_INSTANCE_ID": name,
            "ORCH_REDIS_URL": redis.url,
            **lk.orchestrator_env(),
            "ORCH_LOG_LEVEL": "warning",
            **env,
        }
    )


async def _poll(check: Callable[[], Awaitable[bool] | bool], within: float) -> None:
    deadline = time.perf_counter() + within
    while True:
        done = check()
        if not isinstance(done, bool):
            done = await done
        if done:
            return
        if time.perf_counter() > deadline:
            raise TimeoutError(f"not done within {within} s")
        await asyncio.sleep(0.01)


async def _say_until_accepted(api: httpx.AsyncClient, session_id: str, text: str) -> float:
    """perf_counter when a replica accepted the `say` (503 while the owner's death is not
    yet known: retried at once)."""
    deadline = time.perf_counter() + 120
    while time.perf_counter() < deadline:
        said = await api.post(f"/sessions/{session_id}/say", json={"text": text})
        if said.status_code == 202:
            return time.perf_counter()
        if said.status_code != 503:
            raise RuntimeError(f"say answered {said.status_code}: {said.text}")
        await asyncio.sleep(0.05)
    raise TimeoutError("no replica accepted the utterance")


class _Fleet:
    """Two live replicas; a killed one is replaced by a fresh process."""

    def __init__(self, redis: RedisServer, lk: LiveKitServer, env: dict[str, str]) -> None:
        self.redis, self.lk, self.env = redis, lk, env
        self.born = 0
        self.replicas: list[Any] = []

    async def fill(self) -> None:
        while len(self.replicas) < 2:
            self.born += 1
            replica = _replica(f"bench-{free_port()}-{self.born}", self.redis, self.lk, self.env)
            await asyncio.to_thread(replica.start)
            self.replicas.append(replica)

    def stop(self) -> None:
        for replica in self.replicas:
            replica.stop()


async def _one_takeover(fleet: _Fleet) -> dict[str, float]:
    owner, other = fleet.replicas
    async with (
        httpx.AsyncClient(base_url=owner.api, timeout=60) as a,
        httpx.AsyncClient(base_url=other.api, timeout=60) as b,
    ):
        created = (await a.post("/sessions", json={})).json()
        session_id = created["session_id"]
        listener = Listener()
        try:
            await listener.join(created["url"], created["token"])
            await asyncio.wait_for(listener.subscribed.wait(), 30)
            asked = time.perf_counter()
            said = await a.post(f"/sessions/{session_id}/say", json={"text": SPEECH})
            said.raise_for_status()
            if not await listener.recording.wait_audible(1.0, asked, within=60):
                raise RuntimeError("the owner's speech never reached the listener")
            dead_tracks = frozenset(listener.recording.tracks)
            killed = time.perf_counter()
            owner.kill()
            fleet.replicas.remove(owner)
            accepted = await _say_until_accepted(b, session_id, AFTER)
            rec = listener.recording
            await _poll(lambda: rec.first_audible(killed, dead_tracks) is not None, 60)
            audible = rec.first_audible(killed, dead_tracks)
            assert audible is not None
        finally:
            await listener.leave()
            with contextlib.suppress(httpx.HTTPError):
                await b.delete(f"/sessions/{session_id}")
    return {"kill_to_audible": audible - killed, "kill_to_accepted": accepted - killed}


async def _takeovers(fleet: _Fleet, kills: int) -> dict[str, Any]:
    audible: list[float] = []
    accepted: list[float] = []
    for _ in range(kills):
        await fleet.fill()
        one = await _one_takeover(fleet)
        audible.append(one["kill_to_audible"])
        accepted.append(one["kill_to_accepted"])
    return {
        "kills": kills,
        "kill_to_next_utterance_audible_seconds": summary(audible),
        "kill_to_say_accepted_seconds": summary(accepted),
        "samples_audible_seconds": [round(v, 3) for v in audible],
        "replica_ttl_seconds": float(fleet.env.get("ORCH_REPLICA_TTL_SECONDS", "5.0")),
    }


async def _events(
    api: httpx.AsyncClient, session_id: str, after: int
) -> AsyncIterator[dict[str, Any]]:
    headers = {"Last-Event-ID": str(after)}
    async with api.stream("GET", f"/sessions/{session_id}/events", headers=headers) as reply:
        reply.raise_for_status()
        data = None
        async for line in reply.aiter_lines():
            if line.startswith("data: "):
                data = json.loads(line[6:])
            elif not line and data is not None:
                yield data
                data = None


async def _resume(fleet: _Fleet, reconnects: int, seed: int = 17) -> dict[str, Any]:
    await fleet.fill()
    rng = random.Random(seed)
    apis = [httpx.AsyncClient(base_url=r.api, timeout=60) for r in fleet.replicas]
    created = (await apis[0].post("/sessions", json={})).json()
    session_id = created["session_id"]
    listener = Listener()
    await listener.join(created["url"], created["token"])
    await asyncio.wait_for(listener.subscribed.wait(), 30)
    stop = asyncio.Event()

    async def speak() -> None:  # events keep coming: queued, started, finished...
        while not stop.is_set():
            await rng.choice(apis).post(f"/sessions/{session_id}/say", json={"text": "Hi."})
            await asyncio.sleep(0.3)

    producer = asyncio.create_task(speak(), name="bench-speaker")
    got: list[dict[str, Any]] = []
    served_by = {"owner": 0, "other": 0}
    try:
        for _ in range(reconnects):
            which = rng.randrange(2)
            served_by["owner" if which == 0 else "other"] += 1
            wanted = rng.randint(1, 4)
            after = got[-1]["seq"] if got else -1
            async for event in _events(apis[which], session_id, after):
                got.append(event)
                wanted -= 1
                if wanted == 0:
                    break  # the client drops the connection here
        stop.set()
        await producer
        await apis[0].delete(f"/sessions/{session_id}")
        # The last reconnection reads on to the end of the session.
        async for event in _events(apis[1], session_id, got[-1]["seq"]):
            got.append(event)
        truth = [e async for e in _events(apis[1], session_id, -1)]
    finally:
        stop.set()
        producer.cancel()
        with contextlib.suppress(asyncio.CancelledError, httpx.HTTPError):
            await producer
        await listener.leave()
        for api in apis:
            await api.aclose()
    seqs = [e["seq"] for e in got]
    truth_seqs = [e["seq"] for e in truth]
    return {
        "reconnects": reconnects,
        "reconnects_served_by": served_by,
        "events_in_history": len(truth),
        "events_received": len(got),
        "duplicates": len(seqs) - len(set(seqs)),
        "missing": len(set(truth_seqs) - set(seqs)),
        "out_of_order": sum(1 for x, y in zip(seqs, seqs[1:], strict=False) if y <= x),
        "gap_events": sum(1 for e in got if e["type"] == "gap"),
        "identical_to_history": [(e["seq"], e["type"]) for e in got]
        == [(e["seq"], e["type"]) for e in truth],
    }


async def _rate_limit(redis: RedisServer, requests: int, rounds: int) -> dict[str, Any]:
    async def app(scope: Any, receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: Any) -> None:
        return None

    keys = parse_api_keys(json.dumps({API_KEY: ["synthesize", "sessions"]}))
    budget = requests * rounds + 1  # never refused: the check itself is what is timed
    limiters: dict[str, RateLimiter | None] = {
        "no_limit": None,
        "in_process": RateLimiter(RateLimitOptions(per_minute=budget)),
        "redis": RateLimiter(RateLimitOptions(per_minute=budget, redis_url=redis.url)),
    }
    middlewares = {name: AuthMiddleware(app, keys, lim) for name, lim in limiters.items()}
    scope = {
        "type": "http",
        "path": "/synthesize",
        "headers": [(b"authorization", f"Bearer {API_KEY}".encode())],
    }
    per_request: dict[str, list[float]] = {name: [] for name in middlewares}
    try:
        for _ in range(rounds):  # interleaved: the machine's noise hits every variant alike
            for name, middleware in middlewares.items():
                for _ in range(requests):
                    started = time.perf_counter()
                    await middleware(scope, receive, send)
                    per_request[name].append(time.perf_counter() - started)
        assert limiters["redis"] is not None and limiters["redis"].shared
    finally:
        for limiter in limiters.values():
            if limiter is not None:
                await limiter.aclose()
    medians = {name: statistics.median(v) for name, v in per_request.items()}
    base = medians["no_limit"]
    return {
        "requests_per_variant": requests * rounds,
        "median_per_request_us": {k: round(v * 1e6, 1) for k, v in medians.items()},
        "overhead_per_request_us": {
            k: round((v - base) * 1e6, 1) for k, v in medians.items() if k != "no_limit"
        },
        "ratio_to_no_limit": {k: round(v / base, 2) for k, v in medians.items()},
    }


async def _run(kills: int, reconnects: int, requests: int) -> dict[str, Any]:
    binary = ensure_livekit_server_binary()
    redis = RedisServer().start()
    worker = WorkerProcess(
        env={"REDIS_URL": redis.url, "TTS_WORKER_HEARTBEAT_INTERVAL_SECONDS": "0.2"}
    ).start()
    try:
        result: dict[str, Any] = {
            "rate_limit": await _rate_limit(redis, requests, rounds=5),
        }
        with LiveKitServer(binary) as lk:
            fleet = _Fleet(redis, lk, {})
            try:
                result["takeover"] = await _takeovers(fleet, kills)
                result["resume"] = await _resume(fleet, reconnects)
            finally:
                fleet.stop()
        result["measured_at"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        return result
    finally:
        worker.stop()
        redis.stop()


def run(kills: int = 10, reconnects: int = 100, requests: int = 400) -> dict[str, Any]:
    return asyncio.run(_run(kills, reconnects, requests))


def table(result: dict[str, Any]) -> str:
    take = result["takeover"]
    lines = [f"{'takeover (kill -9 of the owner)':<42}{'n':>4}{'p50':>10}{'p95':>10}"]
    for name, key in (
        ("kill -> next utterance audible", "kill_to_next_utterance_audible_seconds"),
        ("kill -> say accepted", "kill_to_say_accepted_seconds"),
    ):
        s = take[key]
        lines.append(f"{name:<42}{s['n']:>4}{s['p50']:>9.2f}s{s['p95']:>9.2f}s")
    rate = result["rate_limit"]
    lines.append("")
    lines.append(f"{'rate limit, per request':<42}{'median':>10}{'overhead':>10}")
    for name, median in rate["median_per_request_us"].items():
        extra = rate["overhead_per_request_us"].get(name)
        shown = "" if extra is None else f"{extra:>8.1f}us"
        lines.append(f"{name:<42}{median:>8.1f}us{shown:>10}")
    res = result["resume"]
    lines.append("")
    lines.append(
        f"resume: {res['reconnects']} reconnects, {res['events_received']} events received of "
        f"{res['events_in_history']}; duplicates {res['duplicates']}, missing "
        f"{res['missing']}, out of order {res['out_of_order']}, identical to history: "
        f"{res['identical_to_history']}"
    )
    return "\n".join(lines)


def main() -> None:
    """`python -m bench.fleet`: these scenarios alone, their JSON in bench/results/."""
    parser = argparse.ArgumentParser(description=main.__doc__)
    parser.add_argument("--kills", type=int, default=10)
    parser.add_argument("--reconnects", type=int, default=100)
    parser.add_argument("--requests", type=int, default=400, help="per variant and round")
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results")
    args = parser.parse_args()
    from bench.run import save_scenario  # bench.run imports this module: import it late

    result = run(args.kills, args.reconnects, args.requests)
    print(table(result))
    print(f"wrote {save_scenario('fleet', result, args.out)}")


if __name__ == "__main__":
    main()
