"""Session events that outlive their replica: an event reaches readers only once it is in
the store (so its id is never reused after a takeover), any replica can resume a reader
after the id it saw, a reader asking for more than is kept gets a `gap` first, and a store
outage holds up nobody on the owner."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest

from fleet.memory_store import MemoryStore
from fleet.store import StoreUnavailable
from orchestrator.sessions.event_history import EventHistory, EventHistoryOptions
from orchestrator.sessions.events import EventKind, EventLog, SessionEvent


async def take(stream: AsyncIterator[SessionEvent], n: int) -> list[SessionEvent]:
    out = []
    async for event in stream:
        out.append(event)
        if len(out) == n:
            break
    return out


class GatedStore(MemoryStore):
    """The in-process store whose log appends wait for the test to open a gate, or fail
    while it says the store is down."""

    def __init__(self) -> None:
        super().__init__()
        self.gate = asyncio.Event()
        self.down = False

    async def append_log(self, key: str, seq: int, entry: str, **kw: Any) -> bool:
        if self.down:
            raise StoreUnavailable("down for the test")
        await self.gate.wait()
        return await super().append_log(key, seq, entry, **kw)


@pytest.fixture
async def gated() -> AsyncIterator[tuple[GatedStore, EventHistory]]:
    store = GatedStore()
    history = EventHistory(store, EventHistoryOptions(history=5))
    history.start()
    yield store, history
    store.gate.set()
    await history.aclose()


async def test_readers_see_an_event_only_once_it_is_persisted(
    gated: tuple[GatedStore, EventHistory],
) -> None:
    store, history = gated
    log = history.log_for("s")
    reader = asyncio.create_task(take(log.follow(), 2))
    log.emit(EventKind.SESSION_STARTED, room="r")
    log.emit(EventKind.UTTERANCE_QUEUED, utterance_id="u")
    assert await store.read_log("events:s", -1, limit=10) == []
    assert not reader.done()
    store.gate.set()
    events = await reader
    assert [(e.seq, e.kind) for e in events] == [
        (0, EventKind.SESSION_STARTED),
        (1, EventKind.UTTERANCE_QUEUED),
    ]
    stored = await store.read_log("events:s", -1, limit=10)
    assert [SessionEvent.from_json(raw) for _, raw in stored] == events


async def test_a_store_outage_publishes_at_once_and_persists_in_order_later(
    gated: tuple[GatedStore, EventHistory],
) -> None:
    store, history = gated
    store.down = True
    store.gate.set()
    log = history.log_for("s")
    reader = asyncio.create_task(take(log.follow(), 3))
    for i in range(3):
        log.emit(EventKind.UTTERANCE_QUEUED, utterance_id=f"u{i}")
    assert [e.seq for e in await reader] == [0, 1, 2]
    store.down = False

    async def persisted() -> list[int]:
        seen: list[int] = []
        while len(seen) < 3:  # each read waits for the writer's next append
            after = seen[-1] if seen else -1
            found = await store.read_log("events:s", after, limit=10, wait_seconds=1)
            seen += [seq for seq, _ in found]
        return seen

    assert await asyncio.wait_for(persisted(), 5) == [0, 1, 2]


async def test_a_replica_that_takes_over_continues_the_numbering() -> None:
    store = MemoryStore()
    first = EventHistory(store, EventHistoryOptions())
    first.start()
    log = first.log_for("s")
    for _ in range(3):
        log.emit(EventKind.UTTERANCE_QUEUED, utterance_id="u")
    log.close()
    assert [e.seq async for e in log.follow()] == [0, 1, 2]  # all persisted, then closed
    await first.aclose()

    second = EventHistory(store, EventHistoryOptions())
    second.start()
    try:
        past = await second.load("s")
        resumed = second.log_for("s", past)
        resumed.emit(EventKind.AGENT_RECONNECTED, owner="b")
        events = await take(second.follow("s", 1, _open), 2)
        assert [(e.seq, e.kind) for e in events] == [
            (2, EventKind.UTTERANCE_QUEUED),
            (3, EventKind.AGENT_RECONNECTED),
        ]
    finally:
        await second.aclose()


async def _open() -> bool:
    return True


async def test_a_reader_further_back_than_the_history_gets_a_gap_first() -> None:
    store = MemoryStore()
    history = EventHistory(store, EventHistoryOptions(history=3))
    history.start()
    try:
        log = history.log_for("s")
        for _ in range(6):
            log.emit(EventKind.UTTERANCE_QUEUED, utterance_id="u")
        stored = await take(history.follow("s", 0, _open), 4)
        local = await take(log.follow(0), 4)
        for events in (stored, local):
            first = events[0]
            assert first.kind == EventKind.GAP
            assert (first.seq, first.data) == (2, {"missed_from": 1, "missed_to": 2})
            assert [e.seq for e in events[1:]] == [3, 4, 5]
        assert [e.seq for e in await take(history.follow("s", 3, _open), 2)] == [4, 5]
    finally:
        await history.aclose()


async def test_following_the_store_ends_with_the_session() -> None:
    store = MemoryStore()
    history = EventHistory(store, EventHistoryOptions())
    history.start()
    try:
        log = history.log_for("s")
        log.emit(EventKind.SESSION_STARTED)
        log.emit(EventKind.SESSION_ENDED, reason="deleted")
        events = [e async for e in history.follow("s", -1, _open)]
        assert [e.kind for e in events] == [EventKind.SESSION_STARTED, EventKind.SESSION_ENDED]
    finally:
        await history.aclose()


async def test_a_detached_log_publishes_locally_and_drops_what_waited(
    gated: tuple[GatedStore, EventHistory],
) -> None:
    """A session another replica took over: its leftover events never reach the store."""
    store, history = gated
    log = history.log_for("s")
    log.emit(EventKind.UTTERANCE_QUEUED, utterance_id="u")
    history.detach("s", drop_pending=True)
    log.emit(EventKind.SESSION_ENDED, reason="taken over")
    log.close()
    assert [e.seq async for e in log.follow()] == [0, 1]
    other = history.log_for("t")
    other.emit(EventKind.SESSION_STARTED)
    store.gate.set()
    # The writer keeps emission order: once t's event is stored, s's would have been.
    assert await store.read_log("events:t", -1, limit=1, wait_seconds=5)
    assert await store.read_log("events:s", -1, limit=10) == []


def test_an_unknown_kind_from_a_newer_replica_is_kept_as_text() -> None:
    raw = '{"seq": 4, "type": "user_transcript", "at": 1.5, "text": "hi"}'
    event = SessionEvent.from_json(raw)
    assert (event.seq, event.kind, event.data) == (4, "user_transcript", {"text": "hi"})
    assert SessionEvent.from_json(event.to_json()) == event


def test_close_waits_for_the_last_event_to_be_published() -> None:
    pending: list[SessionEvent] = []
    log = EventLog("s", persist=pending.append)
    log.emit(EventKind.SESSION_ENDED, reason="x")
    log.close()
    assert not log.closed
    log.publish(pending[0])
    assert log.closed
