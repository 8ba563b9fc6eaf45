"""A session's events: what happened, in order, kept for late readers and fanned out live
to every server-sent-events client."""

from __future__ import annotations

import asyncio
import enum
import itertools
import logging
import time
from collections import deque
from collections.abc import AsyncIterator
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
    USER_SPEECH_STARTED = "user_speech_started"
    USER_SPEECH_STOPPED = "user_speech_stopped"
    USER_TRANSCRIPT = "user_transcript"
    LIVEKIT_RECONNECTING = "livekit_reconnecting"
    LIVEKIT_RECONNECTED = "livekit_reconnected"
    ERROR = "error"


@dataclass(frozen=True)
class SessionEvent:
    seq: int
    kind: EventKind
    at: float
    data: dict[str, Any]

    def as_dict(self) -> dict[str, Any]:
        return {"seq": self.seq, "type": self.kind.value, "at": self.at, **self.data}


class EventLog:
    """Ordered events of one session; readers get the past, then live events until close."""

    def __init__(self, session_id: str, history: int = HISTORY) -> None:
        self._session_id = session_id
        self._events: deque[SessionEvent] = deque(maxlen=history)
        self._seq = itertools.count()
        self._readers: set[asyncio.Queue[SessionEvent | None]] = set()
        self.closed = False

    def emit(self, kind: EventKind, **data: Any) -> SessionEvent:
        event = SessionEvent(next(self._seq), kind, time.time(), data)
        self._events.append(event)
        for reader in self._readers:
            reader.put_nowait(event)
        # The kind only: event data can hold spoken text, which is personal data.
        log.info("session event", extra={"session_id": self._session_id, "event": kind.value})
        return event

    def close(self) -> None:
        """No more events: every reader's iteration ends."""
        self.closed = True
        for reader in self._readers:
            reader.put_nowait(None)

    def history(self) -> list[SessionEvent]:
        return list(self._events)

    async def follow(self, after: int = -1) -> AsyncIterator[SessionEvent]:
        """Past events (after seq `after`), then live ones until the log closes."""
        queue: asyncio.Queue[SessionEvent | None] = asyncio.Queue()
        for event in self._events:
            if event.seq > after:
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
