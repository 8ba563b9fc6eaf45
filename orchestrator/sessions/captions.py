"""The agent's captions: what the listener has heard of each utterance, streamed into the
room as `lk.transcription` text (one segment per utterance, as LiveKit agents send theirs).
The text is paced by the samples played, not by the text received, so a caption never runs
ahead of the voice, and a cancelled utterance's caption ends where the listener stopped
hearing it."""

from __future__ import annotations

import asyncio
from typing import Protocol

from livekit import rtc

TOPIC = "lk.transcription"
SEGMENT_ID = "lk.segment_id"
TRACK_ID = "lk.transcribed_track_id"
FINAL = "lk.transcription_final"
PERIOD_SECONDS = 0.1  # how often the heard text is read: two or three words at most


class Heard(Protocol):
    """What the captions follow: an utterance (a SpeechHandle)."""

    id: str

    @property
    def over(self) -> bool: ...

    def heard_text(self) -> str: ...


async def stream_captions(
    participant: rtc.LocalParticipant,
    utterance: Heard,
    track_sid: str,
    period_seconds: float = PERIOD_SECONDS,
) -> None:
    """Sends the utterance's heard text as it grows until the utterance is over, then what
    else was heard by its end, and closes the segment as final."""
    writer: rtc.TextStreamWriter | None = None
    sent = ""

    async def send(text: str) -> None:
        nonlocal writer, sent
        # Heard text only grows, but its word cut can move back a little: send extensions only.
        if len(text) <= len(sent) or not text.startswith(sent):
            return
        if writer is None:
            attributes = {SEGMENT_ID: utterance.id, TRACK_ID: track_sid, FINAL: "false"}
            writer = await participant.stream_text(topic=TOPIC, attributes=attributes)
        await writer.write(text[len(sent) :])
        sent = text

    while not utterance.over:
        await send(utterance.heard_text())
        await asyncio.sleep(period_seconds)
    await send(utterance.heard_text())
    if writer is not None:
        await writer.aclose(attributes={FINAL: "true"})
