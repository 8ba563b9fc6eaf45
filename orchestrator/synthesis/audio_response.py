"""The HTTP body of one utterance: frames encoded and streamed as they arrive, and the worker
stream and the encoder closed whatever happens to the client."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass

from starlette.responses import StreamingResponse
from starlette.types import Receive, Scope, Send

from orchestrator.metrics.recorder import FleetMetrics
from orchestrator.synthesis.encoders import ResponseFormat, StreamEncoder, create_encoder
from orchestrator.synthesis.serving import StartedSynthesis
from orchestrator.workers.stream import WorkerStreamError
from tts_rpc.v1 import tts_pb2

log = logging.getLogger(__name__)

# Formats written without a codec: cheaper to do inline than to hand to a thread.
_INLINE = frozenset({ResponseFormat.WAV, ResponseFormat.PCM})


@dataclass(frozen=True)
class EncodedChunk:
    """Encoded bytes for one frame (maybe none yet: codecs work in blocks), and the text
    timings whose audio starts in that frame."""

    audio: bytes
    timings: tuple[tts_pb2.TextTiming, ...] = ()


class EncodedSpeech:
    """One utterance's frames through one encoder. The codec runs in a thread, so the event
    loop never waits on it; `aclose()` cancels the worker stream and frees the codec."""

    def __init__(
        self,
        started: StartedSynthesis,
        fmt: ResponseFormat,
        metrics: FleetMetrics | None = None,
    ) -> None:
        self.stream = started.stream
        self.format = fmt
        self.encoder: StreamEncoder = create_encoder(fmt, started.first.sample_rate)
        self._first: tts_pb2.AudioFrame | None = started.first
        self._metrics = metrics

    def headers(self) -> dict[str, str]:
        """What the audio is: its rate, format and channels, and the utterance id."""
        return {
            "X-Sample-Rate": str(self.encoder.sample_rate),
            "X-Audio-Format": "pcm_s16le" if self.format == ResponseFormat.PCM else self.format,
            "X-Channels": "1",
            "X-Utterance-Id": self.stream.utterance_id,
        }

    async def chunks(self) -> AsyncIterator[EncodedChunk]:
        """One chunk per frame as it arrives, then the codec's last bytes with the timings
        known only at the end."""
        frame, self._first = self._first, None
        try:
            while frame is not None:
                yield EncodedChunk(
                    await self._run(self.encoder.encode, frame.audio), (*frame.timings,)
                )
                frame = await self.stream.next_frame()
        except WorkerStreamError as exc:
            # Headers are gone: all we can do is end the body without its final chunk, so
            # the client sees a failed transfer rather than a complete-looking short file.
            log.error(
                "worker stream failed mid-utterance",
                extra={"utterance_id": self.stream.utterance_id, "code": exc.code.name},
            )
            raise
        stats = self.stream.stats
        tail = await self._run(self.encoder.close)
        yield EncodedChunk(tail, (*stats.timings,) if stats is not None else ())
        if self._metrics is not None and stats is not None:
            self._metrics.observe_synthesis(
                stats.audio_seconds, stats.synthesis_seconds, stats.queue_seconds
            )

    async def aclose(self) -> None:
        """Cancel the worker stream if it still runs, and release the codec. Idempotent."""
        await self.stream.aclose()
        # A thread may still be inside encode() (the client left mid-frame): the encoder's
        # lock makes this close wait for it.
        await self._run(self.encoder.close)

    async def _run(self, call: Callable[..., bytes], *args: bytes) -> bytes:
        if self.format in _INLINE:
            return call(*args)
        return await asyncio.to_thread(call, *args)


class AudioStreamResponse(StreamingResponse):
    """Streams an utterance in one format; a client disconnect cancels the worker stream at
    once and closes the encoder."""

    def __init__(
        self,
        speech: EncodedSpeech,
        on_close: Callable[[], None] | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        self._speech = speech
        self._on_close = on_close
        super().__init__(
            self._body(),
            media_type=speech.encoder.content_type,
            headers={
                **speech.headers(),
                "Cache-Control": "no-store",
                # Reverse proxies must pass chunks on at once instead of buffering the body.
                "X-Accel-Buffering": "no",
                **(headers or {}),
            },
        )

    async def _body(self) -> AsyncIterator[bytes]:
        async for chunk in self._speech.chunks():
            if chunk.audio:
                yield chunk.audio

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await close_after(self._speech, self._on_close, super().__call__(scope, receive, send))


async def close_after(
    speech: EncodedSpeech, on_close: Callable[[], None] | None, response: Awaitable[None]
) -> None:
    """Send a response, then close its speech whatever happened (client disconnect cancels
    the body task and lands here)."""
    try:
        await response
    finally:
        try:
            await speech.aclose()
        finally:
            if on_close is not None:
                on_close()
