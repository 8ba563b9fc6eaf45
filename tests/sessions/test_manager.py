"""The session manager without LiveKit: which sessions are open, what happens to those of a
replica that stopped heartbeating, and the checks made before a room is ever joined. The
store's clock is injected, so heartbeat expiry is exact."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from fleet.memory_store import MemoryStore
from fleet.records import VoiceInfo, WorkerRecord
from fleet.workers import put_worker
from orchestrator import errors
from orchestrator.metrics.recorder import FleetMetrics
from orchestrator.sessions.manager import (
    REPLICA_KIND,
    SESSION_KIND,
    ManagerOptions,
    SessionManager,
    SessionRecord,
)
from orchestrator.workers.channels import WorkerChannels
from orchestrator.workers.registry import WorkerRegistry

VOICE = "en_US-joe-medium"


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def session_record(session_id: str, owner: str, state: str = "active") -> SessionRecord:
    return SessionRecord(
        session_id=session_id,
        room=f"room-{session_id}",
        voice=VOICE,
        owner=owner,
        owner_url="http://127.0.0.1:1",
        state=state,
        created_at=1.0,
    )


@pytest.fixture
async def setup() -> AsyncIterator[tuple[SessionManager, MemoryStore, FakeClock]]:
    clock = FakeClock()
    store = MemoryStore(clock=clock)
    await put_worker(
        store,
        WorkerRecord(
            worker_id="w1",
            address="127.0.0.1:1",
            engine="piper",
            voices=(VoiceInfo(VOICE, 22050, "en_US"),),
            default_voice=VOICE,
            max_streams=4,
        ),
        ttl_seconds=10**6,
    )
    channels = WorkerChannels()
    registry = WorkerRegistry(store, channels, refresh_seconds=60)
    await registry.refresh()
    manager = SessionManager(
        # The tests run maintenance rounds themselves; the background one (every 10 s of
        # real time) does not come in between.
        ManagerOptions(instance_id="me", url="http://127.0.0.1:2", replica_ttl_seconds=30),
        store,
        registry,
        channels,
        FleetMetrics(store, "me"),
    )
    await manager.start()
    yield manager, store, clock
    await manager.aclose()
    await channels.aclose()


async def stored_state(store: MemoryStore, session_id: str) -> str | None:
    raw = await store.get_record(SESSION_KIND, session_id)
    return None if raw is None else SessionRecord.from_json(raw).state


async def test_sessions_of_a_replica_that_stopped_heartbeating_are_marked_failed(
    setup: tuple[SessionManager, MemoryStore, FakeClock],
) -> None:
    manager, store, clock = setup
    await store.put_record(REPLICA_KIND, "ghost", "{}", ttl_seconds=5.0)
    await store.put_record(REPLICA_KIND, "alive", "{}", ttl_seconds=10**6)
    for session_id, owner in (("s-ghost", "ghost"), ("s-alive", "alive")):
        record = session_record(session_id, owner).to_json()
        await store.put_record(SESSION_KIND, session_id, record, None)

    clock.now += 4.9  # ghost's last heartbeat still counts
    await manager.maintain()
    assert await stored_state(store, "s-ghost") == "active"

    clock.now += 0.2  # 5.1 s after it
    await manager.maintain()
    assert await stored_state(store, "s-ghost") == "failed"
    assert await stored_state(store, "s-alive") == "active"
    record = await manager.record("s-ghost")
    assert record.error is not None and "stopped heartbeating" in record.error


async def test_check_open_refuses_ended_and_unknown_sessions(
    setup: tuple[SessionManager, MemoryStore, FakeClock],
) -> None:
    manager, store, _ = setup
    await store.put_record(
        SESSION_KIND, "done", session_record("done", "me", state="ended").to_json(), None
    )
    with pytest.raises(errors.ServiceError) as ended:
        await manager.check_open("done")
    assert ended.value.code is errors.SESSION_ENDED
    with pytest.raises(errors.ServiceError) as unknown:
        await manager.check_open("never")
    assert unknown.value.code is errors.SESSION_NOT_FOUND


async def test_forwarding_to_a_dead_owner_fails_the_session(
    setup: tuple[SessionManager, MemoryStore, FakeClock],
) -> None:
    manager, store, _ = setup
    record = session_record("orphan", "nobody")
    await store.put_record(SESSION_KIND, "orphan", record.to_json(), None)
    with pytest.raises(errors.ServiceError) as gone:
        await manager.forward(record, "POST", "/sessions/orphan/say", {"text": "hi"}, {})
    assert gone.value.code is errors.SESSION_ENDED
    assert await stored_state(store, "orphan") == "failed"


async def test_create_checks_the_voice_and_drain_before_joining_a_room(
    setup: tuple[SessionManager, MemoryStore, FakeClock],
) -> None:
    manager, _, _ = setup
    with pytest.raises(errors.VoiceNotFound) as unknown:
        await manager.create(None, "nobody-voice")
    assert unknown.value.known == [VOICE]
    manager.draining = True
    with pytest.raises(errors.ServiceError) as draining:
        await manager.create(None, VOICE)
    assert draining.value.code is errors.DRAINING
    assert manager.local == {}
