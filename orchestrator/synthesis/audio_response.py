"""The HTTP body of one utterance: frames streamed as they arrive, and the worker stream
closed whatever happens to the client."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable

from starlette.responses import StreamingResponse
from starlette.types import Receive, Scope, Send

from orchestrator.metrics.recorder import FleetMetrics
from orchestrator.synthesis.protocol import AudioFormat
from orchestrator.synthesis.serving import StartedSynthesis
from orchestrator.synthesis.wav import wav_header
from orchestrator.workers.stream import WorkerStreamError

log = logging.getLogger(__name__)

MEDIA_TYPES: dict[str, str] = {"wav": "audio/wav", "pcm": "audio/pcm"}


class AudioStreamResponse(StreamingResponse):
    """Streams an utterance; a client disconnect cancels the worker stream at once."""

    def __init__(
        self,
        started: StartedSynthesis,
        fmt: AudioFormat,
        metrics: FleetMetrics | None = None,
        on_close: Callable[[], None] | None = None,
    ) -> None:
        self._stream = started.stream
        self._metrics = metrics
        self._on_close = on_close
        first = started.first
        headers = {
            "X-Sample-Rate": str(first.sample_rate),
            "X-Audio-Format": "wav" if fmt == "wav" else "pcm_s16le",
            "X-Channels": "1",
            "X-Utterance-Id": self._stream.utterance_id,
            "Cache-Control": "no-store",
            # Reverse proxies must pass frames on at once instead of buffering the body.
            "X-Accel-Buffering": "no",
        }
        super().__init__(self._body(started, fmt), media_type=MEDIA_TYPES[fmt], headers=headers)

    async def _body(self, started: StartedSynthesis, fmt: AudioFormat) -> AsyncIterator[bytes]:
        first = started.first
        if fmt == "wav":
            yield wav_header(first.sample_rate) + first.audio
        else:
            yield first.audio
        try:
            while (frame := await self._stream.next_frame()) is not None:
                yield frame.audio
            if self._metrics is not None and (stats := self._stream.stats) is not None:
                self._metrics.observe_synthesis(
                    stats.audio_seconds, stats.synthesis_seconds, stats.queue_seconds
                )
        except WorkerStreamError as exc:
            # Headers are gone: all we can do is end the body without its final chunk, so
            # the client sees a failed transfer rather than a complete-looking short file.
            log.error(
                "worker stream failed mid-utterance",
                extra={"utterance_id": self._stream.utterance_id, "code": exc.code.name},
            )
            raise

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            # Client disconnect cancels the body task and lands here: cancel the worker.
            await self._stream.aclose()
            if self._on_close is not None:
                self._on_close()
