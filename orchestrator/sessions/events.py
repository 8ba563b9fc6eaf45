"""A session's events: what happened, in order, kept for late readers and fanned out live
to every server-sent-events client.

With a `persist` callback (the fleet's event history), an event reaches the readers only
once it is persisted (`publish()`): an id a client has seen is then never reused by the
replica that takes the session over after a crash.
"""

from __future__ import annotations

import asyncio
import enum
import itertools
import json
import logging
import time
from collections import deque
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass
from typing import Any

log = logging.getLogger(__name__)

HISTORY = 10_000
"""Events a session keeps for late readers; older ones are dropped (bounded memory)."""


class EventKind(enum.StrEnum):
    SESSION_STARTED = "session_started"
    SESSION_ENDED = "session_ended"
    UTTERANCE_QUEUED = "utterance_queued"
    CHAT_RECEIVED = "chat_received"
    SPEECH_STARTED = "speech_started"
    INTERRUPTED = "interrupted"
    RESUMED = "resumed"
    CANCELLED = "cancelled"
    FINISHED = "finished"
    USER_AUDIO_STARTED = "user_audio_started"
    USER_SPEECH_STARTED = "user_speech_started"
    USER_SPEECH_STOPPED = "user_speech_stopped"
    USER_TRANSCRIPT = "user_transcript"
    LIVEKIT_RECONNECTING = "livekit_reconnecting"
    LIVEKIT_RECONNECTED = "livekit_reconnected"
    AGENT_RECONNECTED = "agent_reconnected"
    GAP = "gap"
    """Not stored: tells a resuming reader that events it asked for are no longer kept."""
    ERROR = "error"


@dataclass(frozen=True)
class SessionEvent:
    seq: int
    kind: str
    """An EventKind (a kind this version does not know stays a plain string)."""
    at: float
    data: dict[str, Any]

    def as_dict(self) -> dict[str, Any]:
        return {"seq": self.seq, "type": str(self.kind), "at": self.at, **self.data}

    def to_json(self) -> str:
        return json.dumps(self.as_dict())

    @classmethod
    def from_json(cls, raw: str) -> SessionEvent:
        data = json.loads(raw)
        seq, kind, at = data.pop("seq"), data.pop("type"), data.pop("at")
        known = kind in EventKind._value2member_map_
        return cls(seq, EventKind(kind) if known else kind, at, data)

    @property
    def ends_session(self) -> bool:
        """The last event of a session: it ended, or failed (an error of no utterance)."""
        return self.kind == EventKind.SESSION_ENDED or (
            self.kind == EventKind.ERROR and "utterance_id" not in self.data
        )


def gap(after: int, first_kept: int) -> SessionEvent:
    """The marker a reader gets when events after `after` are no longer kept; its seq is the
    last one missed, so resuming from it continues with the first event kept."""
    missed = {"missed_from": after + 1, "missed_to": first_kept - 1}
    return SessionEvent(first_kept - 1, EventKind.GAP, time.time(), missed)


class EventLog:
    """Ordered events of one session; readers get the past, then live events until close."""

    def __init__(
        self,
        session_id: str,
        history: int = HISTORY,
        *,
        past: Sequence[SessionEvent] = (),
        persist: Callable[[SessionEvent], None] | None = None,
    ) -> None:
        self._session_id = session_id
        self._events: deque[SessionEvent] = deque(past, maxlen=history)
        last = past[-1].seq if past else -1
        self._seq = itertools.count(last + 1)
        self._emitted = self._published = last
        self._persist = persist
        self._readers: set[asyncio.Queue[SessionEvent | None]] = set()
        self._closing = False
        self.closed = False

    @property
    def last_seq(self) -> int:
        """The seq of the last event emitted (-1 before the first)."""
        return self._emitted

    def emit(self, kind: EventKind, **data: Any) -> SessionEvent:
        event = SessionEvent(next(self._seq), kind, time.time(), data)
        self._emitted = event.seq
        self._events.append(event)
        # The kind only: event data can hold spoken text, which is personal data.
        log.info("session event", extra={"session_id": self._session_id, "event": kind.value})
        if self._persist is None:
            self.publish(event)
        else:
            self._persist(event)
        return event

    def publish(self, event: SessionEvent) -> None:
        """Hand an emitted event to the readers (in seq order; repeats are ignored)."""
        if event.seq <= self._published:
            return
        self._published = event.seq
        for reader in self._readers:
            reader.put_nowait(event)
        if self._closing and self._published >= self._emitted:
            self._finish()

    def close(self) -> None:
        """No more events: every reader's iteration ends once the last one is published."""
        self._closing = True
        if self._published >= self._emitted:
            self._finish()

    def _finish(self) -> None:
        if not self.closed:
            self.closed = True
            for reader in self._readers:
                reader.put_nowait(None)

    def history(self) -> list[SessionEvent]:
        return list(self._events)

    async def follow(self, after: int = -1) -> AsyncIterator[SessionEvent]:
        """Past events (after seq `after`), then live ones until the log closes. A `gap`
        event comes first when some of the events asked for are no longer kept."""
        queue: asyncio.Queue[SessionEvent | None] = asyncio.Queue()
        if self._events and self._events[0].seq > after + 1:
            queue.put_nowait(gap(after, self._events[0].seq))
        for event in self._events:
            if after < event.seq <= self._published:
                queue.put_nowait(event)
        if self.closed:
            queue.put_nowait(None)
        else:
            self._readers.add(queue)
        try:
            while (item := await queue.get()) is not None:
                yield item
        finally:
            self._readers.discard(queue)
