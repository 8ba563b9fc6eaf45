"""Transcriptions in the room, as LiveKit's own agents publish them, so any LiveKit client
shows them: text streams on the `lk.transcription` topic with the segment's id, the track
the text belongs to, and whether it is final.

- A listener's transcript is sent on the listener's behalf (their identity, their microphone
  track): every partial as a stream holding the segment's text so far, then the final.
- The agent's caption is one stream per utterance whose deltas follow the voice; its
  closing attributes mark it final.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from dataclasses import dataclass

from livekit import rtc

log = logging.getLogger(__name__)

TOPIC = "lk.transcription"
SEGMENT_ID = "lk.segment_id"
TRACK_ID = "lk.transcribed_track_id"
FINAL = "lk.transcription_final"
PENDING_LIMIT = 64
"""User transcripts waiting to be published; past it the oldest partial is dropped (a later
update of its segment replaces it anyway), never a final."""


@dataclass(frozen=True)
class UserSegment:
    identity: str
    track_sid: str
    segment_id: str
    text: str
    final: bool


class RoomTranscriptions:
    """Publishes transcriptions through the agent's local participant. User transcripts go
    out in order, one at a time, from `run()` (a task the session owns)."""

    def __init__(self, room: rtc.Room) -> None:
        self._room = room
        self._pending: deque[UserSegment] = deque()
        self._more = asyncio.Event()

    def publish(self, segment: UserSegment) -> None:
        """Queue a listener's partial or final transcript of one segment."""
        self._pending.append(segment)
        if len(self._pending) > PENDING_LIMIT:
            partial = next((s for s in self._pending if not s.final), None)
            if partial is not None:
                self._pending.remove(partial)
        self._more.set()

    async def run(self) -> None:
        while True:
            await self._more.wait()
            self._more.clear()
            while self._pending:
                await self._user_segment(self._pending.popleft())

    async def _user_segment(self, segment: UserSegment) -> None:
        attributes = {SEGMENT_ID: segment.segment_id, FINAL: "true" if segment.final else "false"}
        if segment.track_sid:
            attributes[TRACK_ID] = segment.track_sid
        try:
            writer = await self._room.local_participant.stream_text(
                topic=TOPIC, sender_identity=segment.identity, attributes=attributes
            )
            await writer.write(segment.text)
            await writer.aclose()
        except Exception as exc:  # the room may be going away; the SSE event still went out
            # The type only: the exception's text could carry the transcript.
            log.warning("transcript not published", extra={"reason": type(exc).__name__})

    def caption(self, segment_id: str, track_sid: str) -> CaptionStream:
        return CaptionStream(self._room, segment_id, track_sid)


class CaptionStream:
    """The agent's caption of one utterance as one delta stream (a CaptionWriter)."""

    def __init__(self, room: rtc.Room, segment_id: str, track_sid: str) -> None:
        self._room = room
        self._attributes = {SEGMENT_ID: segment_id, FINAL: "false"}
        if track_sid:
            self._attributes[TRACK_ID] = track_sid
        self._writer: rtc.TextStreamWriter | None = None
        self._failed = False

    async def write(self, delta: str) -> None:
        if self._failed:
            return
        try:
            if self._writer is None:
                self._writer = await self._room.local_participant.stream_text(
                    topic=TOPIC, attributes=dict(self._attributes)
                )
            await self._writer.write(delta)
        except Exception as exc:  # a caption must never stop the voice it follows
            self._failed = True
            log.warning("caption not published", extra={"reason": type(exc).__name__})

    async def close(self) -> None:
        if self._writer is None or self._failed:
            return
        try:
            await self._writer.aclose(attributes={**self._attributes, FINAL: "true"})
        except Exception as exc:
            log.warning("caption not closed", extra={"reason": type(exc).__name__})
