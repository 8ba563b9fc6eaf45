"""The session manager without LiveKit: which sessions are open, who takes over those of a
replica that stopped heartbeating, and the checks made before a room is ever joined. The
store's clock is injected, so heartbeat expiry is exact."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest

from fleet.memory_store import MemoryStore
from fleet.records import VoiceInfo, WorkerRecord
from fleet.workers import put_worker
from orchestrator import errors
from orchestrator.metrics.recorder import FleetMetrics
from orchestrator.sessions.events import EventKind, SessionEvent
from orchestrator.sessions.manager import (
    REPLICA_KIND,
    SESSION_KIND,
    ManagerOptions,
    SessionManager,
    SessionRecord,
)
from orchestrator.sessions.session import LiveKitOptions, SessionOptions
from orchestrator.workers.channels import WorkerChannels
from orchestrator.workers.registry import WorkerRegistry
from tests.processes import free_port

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
    manager = await second_manager(store, "me", registry, channels)
    yield manager, store, clock
    await manager.aclose()
    await channels.aclose()


async def second_manager(
    store: MemoryStore,
    instance_id: str,
    registry: WorkerRegistry | None = None,
    channels: WorkerChannels | None = None,
) -> SessionManager:
    """A replica on the shared store whose LiveKit is unreachable (a closed port)."""
    channels = channels or WorkerChannels()
    registry = registry or WorkerRegistry(store, channels, refresh_seconds=60)
    await registry.refresh()
    livekit = LiveKitOptions(url=f"ws://127.0.0.1:{free_port()}", connect_timeout_seconds=2)
    manager = SessionManager(
        # The tests run maintenance rounds themselves; the background one (every 10 s of
        # real time) does not come in between.
        ManagerOptions(
            instance_id=instance_id,
            url=f"http://127.0.0.1:{free_port()}",
            session=SessionOptions(livekit=livekit),
            replica_ttl_seconds=30,
        ),
        store,
        registry,
        channels,
        FleetMetrics(store, instance_id),
    )
    await manager.start()
    return manager


def event(seq: int, kind: EventKind, **data: object) -> SessionEvent:
    return SessionEvent(seq, kind, 1.0, dict(data))


def recording(
    claim: Callable[..., Awaitable[SessionRecord | None]], claims: list[str]
) -> Callable[..., Awaitable[SessionRecord | None]]:
    """Wraps a replica's claim to note each one that succeeded."""

    async def wrapped(*args: object) -> SessionRecord | None:
        won = await claim(*args)
        if won is not None:
            claims.append(won.owner)
        return won

    return wrapped


async def stored_state(store: MemoryStore, session_id: str) -> str | None:
    raw = await store.get_record(SESSION_KIND, session_id)
    return None if raw is None else SessionRecord.from_json(raw).state


async def test_an_orphan_is_claimed_once_and_fails_when_its_room_cannot_be_rejoined(
    setup: tuple[SessionManager, MemoryStore, FakeClock],
) -> None:
    """Two replicas race for the session of a replica whose heartbeat expired: exactly one
    claims it (epoch 1); with LiveKit unreachable it cannot rejoin, so the session fails
    with that reason, and a final error event ends its history."""
    manager, store, clock = setup
    rival = await second_manager(store, "rival")
    try:
        await store.put_record(REPLICA_KIND, "ghost", "{}", ttl_seconds=5.0)
        await store.put_record(REPLICA_KIND, "alive", "{}", ttl_seconds=10**6)
        for session_id, owner in (("s-ghost", "ghost"), ("s-alive", "alive")):
            record = session_record(session_id, owner).to_json()
            await store.put_record(SESSION_KIND, session_id, record, None)
        await manager.history.append("s-ghost", event(0, EventKind.SESSION_STARTED))

        clock.now += 4.9  # ghost's last heartbeat still counts
        await asyncio.gather(manager.maintain(), rival.maintain())
        assert await stored_state(store, "s-ghost") == "active"

        clock.now += 0.2  # 5.1 s after it
        claims: list[str] = []
        for replica in (manager, rival):
            replica.records.claim = recording(replica.records.claim, claims)
        await asyncio.gather(manager.maintain(), rival.maintain())
        assert len(claims) == 1, claims
        record = await manager.record("s-ghost")
        assert (record.state, record.owner, record.epoch) == ("failed", claims[0], 1)
        assert record.error is not None and "could not be rejoined" in record.error
        assert await stored_state(store, "s-alive") == "active"
        [_, last] = await manager.history.load("s-ghost")
        assert (last.seq, last.kind, last.ends_session) == (1, EventKind.ERROR, True)
        assert manager.local == {} and rival.local == {}
    finally:
        await rival.aclose()


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


async def test_a_call_for_a_session_of_a_dead_replica_takes_it_over_first(
    setup: tuple[SessionManager, MemoryStore, FakeClock],
) -> None:
    """A call reaching a replica for a session whose owner no longer heartbeats is not
    forwarded to the dead owner: this replica takes the session over (here LiveKit is
    unreachable, so the session fails and the call is told it has ended)."""
    manager, store, _ = setup
    record = session_record("orphan", "nobody")
    await store.put_record(SESSION_KIND, "orphan", record.to_json(), None)
    with pytest.raises(errors.ServiceError) as gone:
        await manager.locate("orphan")
    assert gone.value.code is errors.SESSION_ENDED
    stored = await manager.record("orphan")
    assert (stored.state, stored.owner) == ("failed", "me")


async def test_a_delete_for_a_session_of_a_dead_replica_ends_it_without_rejoining(
    setup: tuple[SessionManager, MemoryStore, FakeClock],
) -> None:
    manager, store, _ = setup
    await store.put_record(
        SESSION_KIND, "orphan", session_record("orphan", "nobody").to_json(), None
    )
    ended = await manager.end("orphan")
    assert (ended.state, ended.owner) == ("ended", "nobody")
    [last] = await manager.history.load("orphan")
    assert last.kind == EventKind.SESSION_ENDED


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
