"""The sessions API: tokens scoped to one room, errors that say what is wrong, replicas that
route `say` to the owner, and sessions of a dead replica marked failed."""

from __future__ import annotations

import asyncio
import json
import time

import httpx
import pytest
from livekit import api

from fleet.aio import poll_until
from fleet.store import Store
from orchestrator.cli import Orchestrator
from orchestrator.sessions.manager import SESSION_KIND, SessionRecord
from tests.conftest import orchestrator_settings
from tests.livekit_server import LiveKitServer
from tests.processes import RedisServer, WorkerProcess, free_port
from tests.sessions.events import EventLog
from tests.sessions.listener import Listener


async def test_user_token_is_scoped_short_lived_and_audio_only(
    session_api: httpx.AsyncClient,
    livekit_server: LiveKitServer,
    session_orchestrator: Orchestrator,
) -> None:
    created = (await session_api.post("/sessions", json={"room": "scoped-room"})).json()
    try:
        claims = api.TokenVerifier(livekit_server.api_key, livekit_server.api_secret).verify(
            created["token"]
        )
        grants = claims.video
        assert grants.room == "scoped-room" and grants.room_join
        assert grants.can_publish_sources == ["microphone"]
        assert not grants.room_admin and not grants.room_create
        ttl = session_orchestrator.settings.user_token_ttl_seconds
        assert created["expires_at"] == pytest.approx(time.time() + ttl, abs=5)
        assert created["url"] == livekit_server.url
    finally:
        await session_api.delete(f"/sessions/{created['session_id']}")


async def test_event_streams_stay_open_with_keep_alive_comments(
    session_api: httpx.AsyncClient,
) -> None:
    """An idle stream gets comment lines (every ORCH_EVENTS_KEEPALIVE_SECONDS, 0.5 s here)
    that proxies see as traffic and clients ignore; a malformed Last-Event-ID is a 422."""
    created = (await session_api.post("/sessions", json={})).json()
    events = EventLog(session_api, created["session_id"])
    try:
        await events.wait("session_started")
        await events.until(lambda: events.comments >= 2, within=10)
        assert [e["type"] for e in events.events] == ["session_started"]
        bad = await session_api.get(
            f"/sessions/{created['session_id']}/events", headers={"Last-Event-ID": "abc"}
        )
        assert bad.status_code == 422 and bad.json()["error"]["param"] == "last-event-id"
    finally:
        await events.aclose()
        await session_api.delete(f"/sessions/{created['session_id']}")
    # Over, and nothing left to read after its last event: 409, so EventSource stops.
    late = await session_api.get(
        f"/sessions/{created['session_id']}/events",
        headers={"Last-Event-ID": str(events.last_seq + 1)},
    )
    assert late.status_code == 409


async def test_unknown_and_ended_sessions(session_api: httpx.AsyncClient) -> None:
    missing = await session_api.post("/sessions/nope/say", json={"text": "hello"})
    assert missing.status_code == 404
    assert missing.json()["error"]["param"] == "session_id"
    assert (await session_api.get("/sessions/nope")).status_code == 404

    created = (await session_api.post("/sessions", json={})).json()
    session_id = created["session_id"]
    ended = await session_api.delete(f"/sessions/{session_id}")
    assert ended.status_code == 200 and ended.json()["state"] == "ended"
    late = await session_api.post(f"/sessions/{session_id}/say", json={"text": "too late"})
    assert late.status_code == 409
    assert "ended" in late.json()["error"]["message"]
    assert (await session_api.get(f"/sessions/{session_id}")).json()["state"] == "ended"


@pytest.mark.parametrize(
    ("path", "body", "param"),
    [
        ("/sessions", {"room": "has spaces"}, "room"),
        ("/sessions", {"voice": ""}, "voice"),
        ("/sessions", {"unknown": 1}, "unknown"),
        ("/sessions/{id}/say", {}, "text"),
        ("/sessions/{id}/say", {"text": "  "}, "text"),
        ("/sessions/{id}/say", {"text": "hi", "interruptible": "maybe"}, "interruptible"),
        ("/sessions/{id}/say", {"text": "hi", "speed": 0.2}, "speed"),
        ("/sessions/{id}/say", {"text": "hi", "speed": 4.5}, "speed"),
        ("/sessions/{id}/say", {"text": "hi", "normalize": "maybe"}, "normalize"),
    ],
)
async def test_malformed_bodies_are_422(
    session_api: httpx.AsyncClient, path: str, body: dict[str, object], param: str
) -> None:
    response = await session_api.post(path.replace("{id}", "any"), json=body)
    assert response.status_code == 422
    assert response.json()["error"]["param"] == param


async def test_unknown_voice_is_404(session_api: httpx.AsyncClient) -> None:
    response = await session_api.post("/sessions", json={"voice": "en_XX-nobody"})
    assert response.status_code == 404
    assert "en_XX-nobody" in response.json()["error"]["message"]


async def test_livekit_unreachable_is_503_and_leaks_nothing(piper_worker: WorkerProcess) -> None:
    """Joining fails fast with a reason, and no task of the failed session survives."""
    orch = Orchestrator(
        orchestrator_settings(
            workers=[piper_worker.address],
            livekit_url=f"ws://127.0.0.1:{free_port()}",
            livekit_connect_timeout_seconds=3,
        )
    )
    await orch.start()
    try:
        baseline = {t.get_name() for t in asyncio.all_tasks()}
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{orch.settings.port}") as client:
            response = await client.post("/sessions", json={}, timeout=30)
        assert response.status_code == 503
        assert "cannot join LiveKit" in response.json()["error"]["message"]
        assert orch.services.sessions.local == {}

        def leaked() -> set[str]:
            names = {t.get_name() for t in asyncio.all_tasks()} - baseline
            return {name for name in names if name.startswith("session-")}

        # Tasks end as they are cancelled and awaited; none may be left running.
        assert await poll_until(lambda: not leaked(), timeout_seconds=5), leaked()
    finally:
        await orch.stop()


async def test_say_through_another_replica_is_spoken_by_the_owner(
    redis_server: RedisServer,
    fleet_worker: WorkerProcess,
    livekit_server: LiveKitServer,
) -> None:
    """A `say` sent to the replica that does not run the session is spoken by the one that
    does; either replica serves the session's events, and resumes them after the id a
    client saw last (Last-Event-ID) with nothing repeated and nothing skipped."""
    common = {
        "redis_url": redis_server.url,
        "livekit_url": livekit_server.url,
        "livekit_api_key": livekit_server.api_key,
        "livekit_api_secret": livekit_server.api_secret,
        "replica_ttl_seconds": 1.0,
    }
    owner = Orchestrator(orchestrator_settings(instance_id=f"owner-{free_port()}", **common))
    other = Orchestrator(orchestrator_settings(instance_id=f"other-{free_port()}", **common))
    await owner.start()
    await other.start()
    try:
        for _ in range(200):
            if owner.services.registry.workers and other.services.registry.workers:
                break
            await asyncio.sleep(0.05)
        async with (
            httpx.AsyncClient(base_url=f"http://127.0.0.1:{owner.settings.port}", timeout=60) as a,
            httpx.AsyncClient(base_url=f"http://127.0.0.1:{other.settings.port}", timeout=60) as b,
        ):
            created = (await a.post("/sessions", json={})).json()
            session_id = created["session_id"]
            listener = Listener()
            events = EventLog(b, session_id)  # served from the store by the non-owner
            await listener.join(created["url"], created["token"])
            resumed: list[EventLog] = []
            try:
                said = await b.post(
                    f"/sessions/{session_id}/say",
                    json={"text": "Routed through the other replica."},
                )
                assert said.status_code == 202, said.text
                utterance_id = said.json()["utterance_id"]
                finished = await events.wait("finished", within=60, utterance_id=utterance_id)
                seen = (await b.get(f"/sessions/{session_id}")).json()
                assert seen["owner"] == owner.settings.instance_id
                assert seen["state"] == "active"
                assert seen["utterances"] is None  # b does not host it
                everything = [e["seq"] for e in events.events]
                assert everything == list(range(finished["seq"] + 1))
                assert [e["sse_id"] for e in events.events] == [str(n) for n in everything]
                for api in (a, b):  # the owner's own log, and the store
                    resumed.append(EventLog(api, session_id, last_event_id=1))
                    await resumed[-1].until(lambda r=resumed[-1]: len(r.events) >= 2)
                    assert [e["seq"] for e in resumed[-1].events] == everything[2:]
            finally:
                await listener.leave()
                for log in (events, *resumed):
                    await log.aclose()
            assert (await b.delete(f"/sessions/{session_id}")).json()["state"] == "ended"
            assert session_id not in owner.services.sessions.local
    finally:
        await other.stop()
        await owner.stop()


async def test_sessions_of_a_dead_replica_are_marked_failed(redis_server: RedisServer) -> None:
    """A session whose owner stopped heartbeating is taken over; when its room cannot be
    rejoined (no LiveKit here) it fails with that reason, never left dangling as active."""
    orch = Orchestrator(orchestrator_settings(redis_url=redis_server.url, replica_ttl_seconds=0.6))
    await orch.start()
    try:
        store: Store = orch.services.store
        orphan = SessionRecord(
            session_id=f"orphan-{free_port()}",
            room="gone",
            voice="v",
            owner="crashed-replica",
            owner_url="http://127.0.0.1:9",
            state="active",
            created_at=time.time(),
        )
        await store.put_record(SESSION_KIND, orphan.session_id, orphan.to_json(), None)
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{orch.settings.port}") as client:
            for _ in range(50):
                state = (await client.get(f"/sessions/{orphan.session_id}")).json()
                if state["state"] == "failed":
                    break
                await asyncio.sleep(0.1)
            assert state["state"] == "failed"
            assert "replica" in state["error"]
            said = await client.post(f"/sessions/{orphan.session_id}/say", json={"text": "hi"})
            assert said.status_code == 409
        raw = await store.get_record(SESSION_KIND, orphan.session_id)
        assert raw is not None and json.loads(raw)["state"] == "failed"
    finally:
        await orch.stop()
