"""One utterance of the plugin on the fleet: a `WorkerStream` driven by tasks that the
plugin owns, not by the livekit-agents stream that asked for it.

Why: when AgentSession interrupts a speech it closes the TTS stream, which cancels whatever
that stream is awaiting. A cancelled read or write on a gRPC call cancels the whole call,
so the worker would only see its client vanish. Here the stream's task awaits queues
instead; the call is read and written by the plugin's own tasks, and closing the stream
early sends CANCEL in band first: the worker stops synthesizing at once and ends the
utterance itself, as cancelled.
"""

from __future__ import annotations

import asyncio
import enum
import time
from collections.abc import AsyncIterator

from livekit.agents import APIConnectionError, APIError, APIStatusError, tts

from fleet.aio import TaskSet, cancel_and_wait
from livekit_plugin.alignment import TranscriptAligner
from orchestrator import errors
from orchestrator.errors import ServiceError
from orchestrator.workers.stream import WorkerStream, WorkerStreamError
from tts_rpc.v1 import tts_pb2

# How long an interrupted utterance waits for the worker's own end (its stats) after CANCEL,
# before the call is cut: the worker answers within a frame or two unless it is gone.
_WIND_DOWN_SECONDS = 2.0

_UNAVAILABLE = {errors.NO_WORKER.code, errors.WORKER_UNAVAILABLE.code, errors.DRAINING.code}
_STATUS = {
    errors.VOICE_NOT_FOUND.code: 404,
    errors.INVALID_VALUE.code: 400,
    errors.TEXT_TOO_LONG.code: 400,
}


class _Request(enum.Enum):
    END = "end of input"
    PAUSE = "pause"
    RESUME = "resume"
    CANCEL = "cancel"


_Frame = tts_pb2.AudioFrame | WorkerStreamError | None


def as_api_error(error: ServiceError | WorkerStreamError, request_id: str | None) -> APIError:
    """A fleet failure as the livekit-agents error its retry policy understands: no worker
    reachable is a connection error (retried, while no audio has been heard); a refused
    voice or text is a 4xx and a failed synthesis a 500, neither retried."""
    after_audio = isinstance(error, WorkerStreamError) and error.after_audio
    service = error.as_service_error() if isinstance(error, WorkerStreamError) else error
    if service.code.code in _UNAVAILABLE:
        return APIConnectionError(service.message, retryable=not after_audio)
    return APIStatusError(
        service.message,
        status_code=_STATUS.get(service.code.code, 500),
        request_id=request_id,
        retryable=False,
    )


class _Pacer:
    """Keeps the worker at most `lead` seconds ahead of playback: past it the worker is
    paused until half of that has played. Playback is taken to start with the first frame
    handed over; it never starts earlier, so the estimate of what is buffered only errs low
    and a paused worker is resumed early rather than late."""

    def __init__(self, lead_seconds: float) -> None:
        self._lead = lead_seconds
        self._origin: float | None = None
        self._pushed = 0.0

    async def after(self, utterance: PluginUtterance, seconds: float) -> None:
        if not self._lead:
            return
        now = time.monotonic()
        if self._origin is None:
            self._origin = now
        self._pushed += seconds
        ahead = self._pushed - (now - self._origin)
        if ahead > self._lead:
            utterance.request(_Request.PAUSE)
            await asyncio.sleep(ahead - self._lead / 2)
            utterance.request(_Request.RESUME)


class PluginUtterance:
    """Text in through `send_text`/`end_input`, audio and timed text out through `play`;
    `close()` when done, however it ended."""

    def __init__(self, stream: WorkerStream, tasks: TaskSet, *, lead_seconds: float) -> None:
        self.id = stream.utterance_id
        self.aligner = TranscriptAligner()
        self._stream = stream
        self._tasks = tasks
        self._pacer = _Pacer(lead_seconds)
        self._requests: asyncio.Queue[str | _Request] = asyncio.Queue()
        self._frames: asyncio.Queue[_Frame] = asyncio.Queue()
        self._started: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._reader: asyncio.Task[None] | None = None
        self._over = False  # the worker ended the stream (stats or an error)
        self._closed = False
        self._writer = tasks.spawn(self._write(), f"write-{self.id}")

    async def started(self) -> None:
        """Once the stream is open on a worker; raises ServiceError when none can take it
        (no worker, unknown voice). Waiting here never touches the call."""
        await asyncio.wait([self._started])
        self._started.result()

    def send_text(self, text: str) -> None:
        self.aligner.add_text(text)
        self._requests.put_nowait(text)

    def end_input(self) -> None:
        self._requests.put_nowait(_Request.END)

    def request(self, control: _Request) -> None:
        self._requests.put_nowait(control)

    async def play(self, emitter: tts.AudioEmitter) -> None:
        """Every frame into the emitter, each after the timed text that starts in it; at the
        end the timings known only then and the untimed rest, so the transcript is whole.
        Raises the livekit-agents error of a failed stream."""
        audio_seconds = 0.0
        async for frame in self._frames_out():
            emitter.push_timed_transcript(self.aligner.timed(frame.timings))
            emitter.push(frame.audio)
            audio_seconds += frame.duration_seconds
            await self._pacer.after(self, frame.duration_seconds)
        stats = self._stream.stats
        late = self.aligner.timed(stats.timings) if stats is not None else []
        emitter.push_timed_transcript(late + self.aligner.rest(audio_seconds))

    def close(self) -> None:
        """Release the stream in the background: at once if the worker already ended it,
        otherwise after CANCEL in band and the worker's own end (bounded)."""
        if self._closed:
            return
        self._closed = True
        if self._started.done() and not self._started.cancelled():
            self._started.exception()  # retrieved here when nobody waited for it
        self._tasks.spawn(self._wind_down(), f"close-{self.id}")

    # -- the plugin's own tasks -----------------------------------------------------------

    async def _frames_out(self) -> AsyncIterator[tts_pb2.AudioFrame]:
        while (item := await self._frames.get()) is not None:
            if isinstance(item, WorkerStreamError):
                raise as_api_error(item, self.id) from item
            yield item

    async def _write(self) -> None:
        """Open the stream, then send text and controls in order, one write at a time."""
        try:
            await self._stream.start()
        except asyncio.CancelledError:
            self._started.cancel()
            raise
        except Exception as exc:  # no worker, unknown voice: the waiting stream raises it
            self._started.set_exception(exc)
            return
        self._started.set_result(None)
        self._reader = self._tasks.spawn(self._read(), f"read-{self.id}")
        while True:
            request = await self._requests.get()
            if isinstance(request, str):
                await self._stream.send_text(request)
            elif request is _Request.END:
                await self._stream.end_input()
            elif request is _Request.PAUSE:
                await self._stream.pause()
            elif request is _Request.RESUME:
                await self._stream.resume()
            else:
                await self._stream.cancel()
                return

    async def _read(self) -> None:
        try:
            while (frame := await self._stream.next_frame()) is not None:
                self._frames.put_nowait(frame)
        except WorkerStreamError as exc:
            self._frames.put_nowait(exc)
        else:
            self._frames.put_nowait(None)
        finally:
            self._over = True

    async def _wind_down(self) -> None:
        try:
            if not self._over:
                # Closed early (interrupted): nothing queued matters any more but CANCEL.
                while not self._requests.empty():
                    self._requests.get_nowait()
                self._requests.put_nowait(_Request.CANCEL)
                await asyncio.wait([self._writer], timeout=_WIND_DOWN_SECONDS)
                if self._reader is not None:
                    await asyncio.wait([self._reader], timeout=_WIND_DOWN_SECONDS)
        finally:
            await cancel_and_wait(self._writer, self._reader)
            await self._stream.aclose()
