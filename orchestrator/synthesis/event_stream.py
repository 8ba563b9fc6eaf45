"""Speech as server-sent events: OpenAI's `speech.audio.delta` and `speech.audio.done`, and,
beyond OpenAI, `speech.audio.timestamps`: when each word (or clause) of the caller's text is
heard, as the worker measured it from what the engine produced.

    data: {"type": "speech.audio.delta", "audio": "<base64 of the response format>"}
    data: {"type": "speech.audio.timestamps", "timestamps": [{"text": "quick",
           "text_start": 4, "text_end": 9, "start": 0.31, "end": 0.52, "unit": "word"}]}
    data: {"type": "speech.audio.done", "audio_seconds": 3.12}

Times are seconds on the audio's own timeline (its first sample is 0); `text_start` and
`text_end` index the text as sent (code points). A timing comes right after the delta that
holds the start of its audio (or, while a codec still holds the first milliseconds back, with
the first delta).
"""

from __future__ import annotations

import base64
import json
from collections.abc import AsyncIterator, Callable, Iterable, Mapping
from typing import Any

from sse_starlette import EventSourceResponse, ServerSentEvent
from starlette.types import Receive, Scope, Send

from orchestrator.synthesis.audio_response import EncodedSpeech, close_after
from tts_rpc.v1 import tts_pb2

UNITS = {tts_pb2.TIMING_UNIT_WORD: "word", tts_pb2.TIMING_UNIT_CLAUSE: "clause"}


def _event(kind: str, **fields: Any) -> ServerSentEvent:
    return ServerSentEvent(data=json.dumps({"type": kind, **fields}), event=kind)


def timestamps(text: str, timings: Iterable[tts_pb2.TextTiming]) -> list[dict[str, Any]]:
    """Timings as the events carry them."""
    return [
        {
            "text": text[t.text_span.start : t.text_span.end],
            "text_start": t.text_span.start,
            "text_end": t.text_span.end,
            "start": round(t.start_seconds, 4),
            "end": round(t.end_seconds, 4),
            "unit": UNITS.get(t.unit, "clause"),
        }
        for t in timings
    ]


class SpeechEventsResponse(EventSourceResponse):
    """Streams an utterance as events; a client disconnect cancels the worker stream and
    closes the encoder, as for plain audio."""

    def __init__(
        self,
        speech: EncodedSpeech,
        text: str,
        on_close: Callable[[], None] | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        self._speech = speech
        self._on_close = on_close
        super().__init__(self._events(text), headers={**speech.headers(), **(headers or {})})

    async def _events(self, text: str) -> AsyncIterator[ServerSentEvent]:
        pending: list[tts_pb2.TextTiming] = []
        audio_sent = False
        async for chunk in self._speech.chunks():
            if chunk.audio:
                audio = base64.b64encode(chunk.audio).decode("ascii")
                yield _event("speech.audio.delta", audio=audio)
                audio_sent = True
            pending += chunk.timings
            # A codec may hold the first milliseconds back: the first event is audio.
            if pending and audio_sent:
                yield _event("speech.audio.timestamps", timestamps=timestamps(text, pending))
                pending = []
        stats = self._speech.stream.stats
        audio_seconds = round(stats.audio_seconds, 4) if stats is not None else None
        yield _event("speech.audio.done", audio_seconds=audio_seconds)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await close_after(self._speech, self._on_close, super().__call__(scope, receive, send))
