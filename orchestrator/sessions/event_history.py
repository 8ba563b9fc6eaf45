"""Session events kept in the store, so they outlive the replica that emitted them.

Every event a session emits is appended, in order, to a bounded log per session in the
store (Redis: a stream), and only then handed to the session's own readers (`EventLog.
publish`). So any replica can serve a reader that resumes with `Last-Event-ID`, and a
replica that takes a session over continues its numbering after the last event anyone saw.

While the store is down, events still reach the owner's readers (published unpersisted)
and are written, in order, once it answers again; only a crash of the owner during the
outage can then lose events, and their ids.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass

from fleet.aio import TaskSet
from fleet.store import Store, StoreUnavailable
from orchestrator.sessions.events import EventLog, SessionEvent, gap

log = logging.getLogger(__name__)

RETRY_SECONDS = 0.5
"""Pause between attempts while the store does not answer."""
READ_WAIT_SECONDS = 0.5
"""How long one read of the store waits for new events (followers loop)."""
OPEN_CHECK_SECONDS = 2.0
"""How often an idle follower checks that its session has not ended without a final event."""
MAX_PENDING = 10_000
"""Events waiting for the store, all sessions together; beyond it the oldest are dropped."""
CLOSE_FLUSH_SECONDS = 2.0
"""How long closing may spend writing events still waiting for the store."""


@dataclass(frozen=True)
class EventHistoryOptions:
    """How much of a session's history the fleet keeps, and how streams stay open."""

    history: int = 1000
    """Events kept per session (in the store and in the owner's memory)."""
    ttl_seconds: float = 3600.0
    """How long a session's events are kept after its last one."""
    keepalive_seconds: float = 15.0
    """Interval of the comment lines that keep an idle event stream open through proxies."""

    def __post_init__(self) -> None:
        if self.history < 1:
            raise ValueError("history must keep at least one event")
        if self.ttl_seconds <= 0 or self.keepalive_seconds <= 0:
            raise ValueError("ttl_seconds and keepalive_seconds must be positive")


def _key(session_id: str) -> str:
    return f"events:{session_id}"


class EventHistory:
    """Writes every session's events to the store in order, and reads them back."""

    def __init__(self, store: Store, options: EventHistoryOptions) -> None:
        self.store = store
        self.options = options
        self._pending: deque[tuple[str, EventLog, SessionEvent]] = deque()
        self._logs: dict[str, EventLog] = {}  # the log persisted for each session run here
        self._wake = asyncio.Event()
        self._tasks = TaskSet("event-history")
        self._store_down = False

    def start(self) -> None:
        self._tasks.spawn(self._write_forever(), "writer")

    async def aclose(self) -> None:
        """Stop writing; events still waiting get one bounded last chance."""
        await self._tasks.aclose()
        with contextlib.suppress(StoreUnavailable, TimeoutError):
            await asyncio.wait_for(self._write_pending(), CLOSE_FLUSH_SECONDS)

    def log_for(self, session_id: str, past: Sequence[SessionEvent] = ()) -> EventLog:
        """A session's event log whose events are persisted before readers see them; `past`
        is the history of a session taken over, whose numbering it continues."""

        def persist(event: SessionEvent) -> None:
            if self._logs.get(session_id) is not events:  # detached: readers here only
                events.publish(event)
                return
            if len(self._pending) >= MAX_PENDING:
                _, dropped_log, dropped = self._pending.popleft()
                dropped_log.publish(dropped)  # its readers still get it; the store does not
            self._pending.append((session_id, events, event))
            self._wake.set()

        events = EventLog(session_id, self.options.history, past=past, persist=persist)
        self._logs[session_id] = events
        return events

    def detach(self, session_id: str, *, drop_pending: bool = False) -> None:
        """Persist no more of the session's events (it ended here, or another replica runs
        it now: then, with drop_pending, not even those still waiting for the store)."""
        events = self._logs.pop(session_id, None)
        if drop_pending and events is not None:
            for _, owner, event in self._pending:
                if owner is events:
                    events.publish(event)
            self._pending = deque(item for item in self._pending if item[1] is not events)

    async def _write_forever(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            try:
                await self._write_pending()
            except StoreUnavailable as exc:
                if not self._store_down:
                    log.warning("session events not persisted yet", extra={"reason": str(exc)})
                self._store_down = True
                # Readers on this replica need not wait for the store.
                for _, events, event in self._pending:
                    events.publish(event)
                await asyncio.sleep(RETRY_SECONDS)
                self._wake.set()

    async def _write_pending(self) -> None:
        while self._pending:
            session_id, events, event = self._pending[0]
            await self.append(session_id, event)  # False: already there (a retried write)
            if self._pending and self._pending[0][2] is event:  # (not dropped meanwhile)
                self._pending.popleft()
            events.publish(event)
            self._store_down = False

    async def append(self, session_id: str, event: SessionEvent) -> bool:
        """Write one event; False when the log already holds one at or after its seq."""
        return await self.store.append_log(
            _key(session_id),
            event.seq,
            event.to_json(),
            max_len=self.options.history,
            ttl_seconds=self.options.ttl_seconds,
        )

    async def load(self, session_id: str) -> list[SessionEvent]:
        """Every event the store still keeps of a session, oldest first."""
        raw = await self.store.read_log(_key(session_id), -1, limit=self.options.history)
        return [SessionEvent.from_json(entry) for _, entry in raw]

    async def follow(
        self, session_id: str, after: int, is_open: Callable[[], Awaitable[bool]]
    ) -> AsyncIterator[SessionEvent]:
        """Events after seq `after` as the store gets them, until the session's last event
        (or, when that never comes, until `is_open()` says it has ended). A `gap` event
        stands for events no longer kept."""
        checked = time.monotonic()
        while True:
            try:
                found = await self.store.read_log(
                    _key(session_id), after, limit=100, wait_seconds=READ_WAIT_SECONDS
                )
            except StoreUnavailable:
                await asyncio.sleep(RETRY_SECONDS)  # the stream's keep-alives go on meanwhile
                continue
            if found and found[0][0] > after + 1:
                yield gap(after, found[0][0])
            for seq, raw in found:
                event = SessionEvent.from_json(raw)
                after = seq
                yield event
                if event.ends_session:
                    return
            if not found and time.monotonic() - checked > OPEN_CHECK_SECONDS:
                checked = time.monotonic()
                if not await is_open():
                    return
