"""One utterance of a session, from its first text to its last sample heard.

A `SpeechHandle` owns everything of its utterance: the worker stream, the audio buffer,
the playout into the session's LiveKit source, and the tasks that move text in and audio
out. The session schedules handles one at a time and applies barge-in decisions to the
current one through `pause()`, `resume()` and `cancel()`.
"""

from __future__ import annotations

import asyncio
import enum
import time
import uuid
from collections.abc import Callable

from fleet.aio import TaskSet
from fleet.records import WorkerRecord
from orchestrator import errors
from orchestrator.metrics.recorder import FleetMetrics
from orchestrator.sessions.events import EventKind, EventLog
from orchestrator.sessions.playout import AgentSource, Playout
from orchestrator.sessions.utterance_audio import UtteranceAudio
from orchestrator.workers.stream import WorkerStream, WorkerStreamError


class UtteranceState(enum.StrEnum):
    QUEUED = "queued"
    SPEAKING = "speaking"
    PAUSED = "paused"  # the listener barged in; resume or cancel is being decided
    FINISHED = "finished"
    CANCELLED = "cancelled"
    FAILED = "failed"


OVER = frozenset({UtteranceState.FINISHED, UtteranceState.CANCELLED, UtteranceState.FAILED})


class UtteranceClosed(Exception):
    """Text was sent to an utterance that is already complete or over."""


class SpeechHandle:
    """One utterance: queue text into it, play it, pause/resume/cancel it."""

    def __init__(self, *, interruptible: bool, sample_rate: int) -> None:
        self.id = uuid.uuid4().hex
        self.interruptible = interruptible
        self.state = UtteranceState.QUEUED
        self.text = ""
        self.final = False
        self.audio = UtteranceAudio(sample_rate)
        self._chunks: asyncio.Queue[str | None] = asyncio.Queue()
        self._tasks = TaskSet(f"utterance-{self.id[:8]}")
        self._playout: Playout | None = None
        self._stream: WorkerStream | None = None
        self._done = asyncio.Event()

    @property
    def worker(self) -> WorkerRecord | None:
        """The worker speaking the utterance, once its stream is open."""
        return self._stream.worker if self._stream is not None else None

    # -- text ---------------------------------------------------------------------------

    def add_text(self, text: str, final: bool) -> None:
        """More text for the utterance (as an LLM streams it); final=True closes it."""
        if self.state in OVER:
            raise UtteranceClosed(f"utterance {self.id} is {self.state}")
        if self.final:
            raise UtteranceClosed(f"utterance {self.id} already has all its text")
        if text:
            self.text += text
            self._chunks.put_nowait(text)
        if final:
            self.final = True
            self._chunks.put_nowait(None)

    # -- playing ------------------------------------------------------------------------

    async def play(
        self,
        stream: WorkerStream,
        source: AgentSource,
        events: EventLog,
        metrics: FleetMetrics,
        on_speaking: Callable[[], None],
    ) -> None:
        """Speak the utterance into source until it has played out, was cancelled or failed.
        Every outcome is an event; a failure is also counted."""
        self._stream = stream
        self._playout = Playout(source, self.audio)
        started = time.perf_counter()
        try:
            await stream.start()
            self._tasks.spawn(self._send_text(stream), "text")
            self._tasks.spawn(self._receive_audio(stream, events, metrics, started), "audio")
            self.state = UtteranceState.SPEAKING
            on_speaking()
            self._playout.start()
            events.emit(EventKind.SPEECH_STARTED, utterance_id=self.id)
            await self._playout.wait_finished()
            if self.state is UtteranceState.SPEAKING:
                self.state = UtteranceState.FINISHED
                events.emit(
                    EventKind.FINISHED,
                    utterance_id=self.id,
                    position_seconds=round(self.audio.samples / self.audio.sample_rate, 3),
                )
        except asyncio.CancelledError:
            if self.state not in OVER:  # the session is ending under it
                self.state = UtteranceState.CANCELLED
            raise
        except Exception as exc:
            self.state = UtteranceState.FAILED
            metrics.count_error(errors.SESSION_ERROR.code)
            reason = exc.message if isinstance(exc, errors.ServiceError) else str(exc)
            events.emit(EventKind.ERROR, utterance_id=self.id, reason=reason)
        finally:
            await self.aclose()

    def fail(self, events: EventLog, reason: str) -> None:
        """The utterance cannot be played at all (nobody listening, session ending)."""
        self.state = UtteranceState.FAILED
        events.emit(EventKind.ERROR, utterance_id=self.id, reason=reason)
        self._done.set()

    async def wait_for_playout(self) -> None:
        """Returns once the utterance is over, however it ended."""
        await self._done.wait()

    async def aclose(self) -> None:
        """Stop everything the handle owns: playout, text and audio tasks, worker stream."""
        try:
            if self._playout is not None:
                await self._playout.aclose()
            await self._tasks.aclose()
            if self._stream is not None and self.state is UtteranceState.CANCELLED:
                # In band, so the worker stops at once and reports the utterance cancelled.
                await self._stream.cancel()
        finally:
            # Even when the session's teardown cancels this wind-up half-way.
            if self._stream is not None:
                await self._stream.aclose()
            self._done.set()

    async def _send_text(self, stream: WorkerStream) -> None:
        while (chunk := await self._chunks.get()) is not None:
            self.audio.text += chunk
            await stream.send_text(chunk)
        await stream.end_input()

    async def _receive_audio(
        self, stream: WorkerStream, events: EventLog, metrics: FleetMetrics, started: float
    ) -> None:
        try:
            while (frame := await stream.next_frame()) is not None:
                if not self.audio.samples:
                    metrics.observe_first_audio(time.perf_counter() - started, "session")
                self.audio.append(frame)
        except WorkerStreamError as exc:
            if self.state in (UtteranceState.SPEAKING, UtteranceState.PAUSED):
                events.emit(EventKind.ERROR, utterance_id=self.id, reason=str(exc))
        finally:
            self.audio.finish()

    # -- barge-in -----------------------------------------------------------------------

    def pause(self) -> int:
        """Silence the utterance now and pause the worker; returns the samples heard."""
        assert self._playout is not None and self._stream is not None
        self.state = UtteranceState.PAUSED
        heard = self._playout.pause()
        self._tasks.spawn(self._stream.pause(), "worker-pause")
        return heard

    def resume(self) -> None:
        """Continue from the sample the listener last heard."""
        assert self._playout is not None and self._stream is not None
        self.state = UtteranceState.SPEAKING
        self._playout.resume()
        self._tasks.spawn(self._stream.resume(), "worker-resume")

    def cancel(self) -> int:
        """End the utterance where the listener stopped hearing it; returns the samples heard.
        The worker is told as `play()` winds up, right after this returns."""
        assert self._playout is not None
        self.state = UtteranceState.CANCELLED
        return self._playout.stop()

    @property
    def over(self) -> bool:
        return self.state in OVER

    def heard_text(self) -> str:
        """The text the listener has heard so far: all of it once the utterance finished."""
        if self.state is UtteranceState.FINISHED:
            return self.audio.text.strip()
        if self._playout is None:
            return ""
        return self.audio.text_heard(self._playout.heard_samples)

    def heard(self, samples: int) -> dict[str, object]:
        """The position and text the listener heard, as event data."""
        return {
            "position_seconds": round(samples / self.audio.sample_rate, 4),
            "text_heard": self.audio.text_heard(samples),
        }
