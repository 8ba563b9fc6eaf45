"""The client side of one utterance on a TTS worker.

Before the first audio frame, a failure (worker killed, at capacity, too slow) moves the
utterance to another worker and replays the text sent so far, so the caller never notices.
After the first frame, a failure ends the stream with WorkerStreamError: speech is never
restarted from the top.

A caller that plays the audio (a session) may bound how far synthesis runs ahead of its
listener (`max_lead_seconds`) and report where the listener is (`report_playout`): the
worker then synthesizes just ahead of playout, and text the listener never reaches (the
utterance was cancelled) is never synthesized.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from dataclasses import dataclass

import grpc

from fleet.records import WorkerRecord
from orchestrator import errors
from orchestrator.errors import NoWorkerAvailable, ServiceError, Subject
from orchestrator.workers.calls import (
    SynthesizeCall,
    at_capacity,
    done_writing,
    retryable,
    write,
)
from orchestrator.workers.channels import WorkerChannels
from orchestrator.workers.registry import WorkerRegistry
from tts_rpc.v1 import tts_pb2

log = logging.getLogger(__name__)

CAPACITY_BACKOFF_SECONDS = 0.1
MAX_CAPACITY_BACKOFF_SECONDS = 1.0


@dataclass(frozen=True)
class StreamOptions:
    """How hard one utterance tries to reach its first audio."""

    first_audio_timeout_seconds: float = 10.0
    """How long to wait for a worker's first frame before trying another worker."""
    max_attempts: int = 3
    """Workers tried for one utterance before its first audio."""
    capacity_wait_seconds: float = 5.0
    """How long an utterance that every worker refused for capacity keeps asking (backing
    off) before it fails: a worker refuses a stream it could not keep fed right now, which
    one that ends a moment later changes."""

    def __post_init__(self) -> None:
        if self.first_audio_timeout_seconds <= 0:
            raise ValueError("first_audio_timeout_seconds must be positive")
        if self.max_attempts < 1:
            raise ValueError("max_attempts must be at least 1")
        if self.capacity_wait_seconds < 0:
            raise ValueError("capacity_wait_seconds must not be negative")


class WorkerStreamError(Exception):
    """The worker stream failed with a gRPC status; after_audio tells if audio was sent."""

    def __init__(self, code: grpc.StatusCode, details: str, after_audio: bool) -> None:
        super().__init__(f"{code.name}: {details}")
        self.code = code
        self.details = details
        self.after_audio = after_audio

    def as_service_error(self) -> ServiceError:
        """What the failure means to the caller: the worker refused the voice or the text,
        failed on it, or none could be reached."""
        what = f"{self.code.name}: {self.details}"
        if self.code == grpc.StatusCode.NOT_FOUND:
            return errors.voice_refused(self.details)
        # grpc-core's own INTERNAL error is a refusal at capacity that ended the call while
        # it was written to (see calls.at_capacity): the worker did not fail on the text.
        failed = self.code in (grpc.StatusCode.INTERNAL, grpc.StatusCode.UNKNOWN)
        if failed and not at_capacity(self.code, self.details):
            return errors.synthesis_failed(what)
        if self.code == grpc.StatusCode.INVALID_ARGUMENT:
            # The worker names the field first ("speed 2: the cosyvoice engine has no...").
            field = Subject.SPEED if self.details.startswith("speed") else Subject.BODY
            return errors.invalid_value(self.details, field)
        return errors.worker_unavailable(what)


class WorkerStream:
    """One utterance: send text and controls, read frames. One reader; writers may run
    beside it."""

    def __init__(
        self,
        registry: WorkerRegistry,
        channels: WorkerChannels,
        *,
        voice: str,
        sample_rate: int = 0,
        frame_duration_ms: int = 20,
        speed: float = 1.0,
        verbatim: bool = False,
        utterance_id: str | None = None,
        options: StreamOptions | None = None,
        max_lead_seconds: float = 0.0,
    ) -> None:
        """`speed` is the speaking rate (0.25-4.0); `verbatim` sends the text to the engine
        as it is, without the worker's normalization (markdown, numbers, emoji...);
        `max_lead_seconds` bounds how far synthesis runs ahead of the playout position this
        stream reports (0: no bound)."""
        options = options or StreamOptions()
        self._registry = registry
        self._channels = channels
        self.utterance_id = utterance_id or uuid.uuid4().hex
        self._config = tts_pb2.SynthesisConfig(
            utterance_id=self.utterance_id,
            voice=voice,
            sample_rate=sample_rate,
            encoding=tts_pb2.AUDIO_ENCODING_PCM_S16LE,
            frame_duration_ms=frame_duration_ms,
            speed=speed,
            verbatim=verbatim,
            max_lead_seconds=max_lead_seconds,
        )
        self._first_audio_timeout = options.first_audio_timeout_seconds
        self._max_attempts = options.max_attempts
        self._capacity_wait = options.capacity_wait_seconds
        self._created = time.monotonic()
        self._backoff = CAPACITY_BACKOFF_SECONDS
        self._call: SynthesizeCall | None = None
        self.worker: WorkerRecord | None = None
        self._tried: set[str] = set()
        self._replay: list[tts_pb2.SynthesizeRequest] = []
        # One write at a time on the call (grpc fails a second one, and with it the whole
        # call; text, controls and playout reports come from different tasks), and a retry's
        # config and replay before anything written after them: the reader retries while a
        # writer may be sending.
        self._writing = asyncio.Lock()
        self._input_ended = False
        self._got_audio = False
        self._holding: str | None = None  # worker id counted as in flight in the registry
        self.stats: tts_pb2.SynthesisStats | None = None

    @property
    def attempts(self) -> int:
        return len(self._tried)

    async def start(self) -> None:
        """Open the stream on the best worker. Raises VoiceNotFound or NoWorkerAvailable."""
        await self._open()

    async def send_text(self, text: str) -> None:
        await self._send(tts_pb2.SynthesizeRequest(text=tts_pb2.TextChunk(text=text)))

    async def end_input(self) -> None:
        self._input_ended = True
        await self._send(tts_pb2.SynthesizeRequest(end_of_input=tts_pb2.EndOfInput()))

    async def pause(self) -> None:
        await self._control(tts_pb2.CONTROL_COMMAND_PAUSE)

    async def resume(self) -> None:
        await self._control(tts_pb2.CONTROL_COMMAND_RESUME)

    async def cancel(self) -> None:
        await self._control(tts_pb2.CONTROL_COMMAND_CANCEL)

    async def report_playout(self, played_seconds: float) -> None:
        """Where the listener is: seconds of this utterance's audio played so far."""
        if not self._got_audio:
            return  # nothing is played before the first frame (and a retry needs no replay)
        position = tts_pb2.PlayoutPosition(played_seconds=played_seconds)
        async with self._writing:
            await self._write(tts_pb2.SynthesizeRequest(playout=position))

    async def next_frame(self) -> tts_pb2.AudioFrame | None:
        """The next frame, or None when the utterance has ended (stats are then set)."""
        while True:
            assert self._call is not None
            try:
                if self._got_audio or not self._input_ended:
                    message = await self._call.read()
                else:
                    message = await asyncio.wait_for(self._call.read(), self._first_audio_timeout)
            except TimeoutError:
                await self._retry_or_raise(
                    grpc.StatusCode.DEADLINE_EXCEEDED, "no audio before the first-audio timeout"
                )
                continue
            except grpc.aio.AioRpcError as exc:
                await self._retry_or_raise(exc.code(), exc.details() or "")
                continue
            if not isinstance(message, tts_pb2.SynthesizeResponse):
                # grpc.aio.EOF: a clean end always carries stats first; without them the
                # worker vanished mid-stream.
                await self._retry_or_raise(
                    grpc.StatusCode.UNAVAILABLE, "stream ended without stats"
                )
                continue
            if message.HasField("frame"):
                if not self._got_audio:
                    self._got_audio = True
                    self._replay.clear()
                return message.frame
            self.stats = message.stats
            self._release_worker()
            async with self._writing:
                await done_writing(self._call)  # the worker may end the call now
            return None

    async def aclose(self) -> None:
        """Cancel the worker stream if it is still running (client gone, error)."""
        if self._call is not None and not self._call.done():
            self._call.cancel()
        self._release_worker()

    # -- internals ----------------------------------------------------------------------

    async def _open(self) -> None:
        async with self._writing:
            worker = self._registry.pick(self._config.voice, frozenset(self._tried))
            self._tried.add(worker.worker_id)
            self.worker = worker
            self._holding = worker.worker_id
            self._registry.opened(worker.worker_id)
            # Called without a request iterator: requests go through explicit call.write().
            stub = self._channels.stub(worker.address)
            self._call = stub.Synthesize()  # type: ignore[call-arg]
            for message in [tts_pb2.SynthesizeRequest(config=self._config), *self._replay]:
                await self._write(message)

    async def _retry_or_raise(self, code: grpc.StatusCode, details: str) -> None:
        failed = self.worker
        if self._call is not None and not self._call.done():
            self._call.cancel()
        self._release_worker()
        if self._got_audio or not retryable(code, details):
            raise WorkerStreamError(code, details, self._got_audio)
        log.warning(
            "worker failed before first audio; retrying on another",
            extra={
                "utterance_id": self.utterance_id,
                "code": code.name,
                "worker_id": failed.worker_id if failed else None,
            },
        )
        while True:
            if len(self._tried) < self._max_attempts:
                with contextlib.suppress(NoWorkerAvailable):  # every worker was tried
                    await self._open()
                    return
            # Refusals for capacity pass: ask every worker again, backing off.
            waited = time.monotonic() - self._created
            if not at_capacity(code, details) or waited + self._backoff > self._capacity_wait:
                raise WorkerStreamError(code, details, self._got_audio)
            await asyncio.sleep(self._backoff)
            self._backoff = min(2 * self._backoff, MAX_CAPACITY_BACKOFF_SECONDS)
            self._tried.clear()

    async def _send(self, message: tts_pb2.SynthesizeRequest) -> None:
        async with self._writing:
            if not self._got_audio:
                self._replay.append(message)
            await self._write(message)

    async def _control(self, command: tts_pb2.ControlCommand.ValueType) -> None:
        await self._send(tts_pb2.SynthesizeRequest(control=tts_pb2.Control(command=command)))

    async def _write(self, message: tts_pb2.SynthesizeRequest) -> None:
        """Write one message; the caller holds `_writing` (grpc takes one write at a time)."""
        if self._call is None or self._call.done():
            return
        await write(self._call, message)  # a failed write: the read side decides on a retry

    def _release_worker(self) -> None:
        if self._holding is not None:
            self._registry.closed(self._holding)
            self._holding = None
