"""Feeds an utterance into the agent's LiveKit audio source in real time, and stops it at
once: pause drops every queued frame (ours and those inside the source) and remembers the
exact sample the listener heard, so resume continues from there."""

from __future__ import annotations

import asyncio
import logging

from livekit import rtc

from fleet.aio import cancel_and_wait
from orchestrator.sessions.utterance_audio import UtteranceAudio

log = logging.getLogger(__name__)


class AgentSource:
    """The session's one LiveKit audio source, shared by its utterances' playouts.

    A capture is never abandoned half-way: rtc refuses the next capture (InvalidState) if
    one was cancelled while LiveKit was still taking it, which a pause does whenever the
    source's queue is full. So a cancelled feeder leaves its capture to finish (it is
    cleared from the queue with the rest), and the next capture waits for it.
    """

    def __init__(self, sample_rate: int, queue_size_ms: int) -> None:
        self.rtc = rtc.AudioSource(sample_rate, 1, queue_size_ms=queue_size_ms)
        self.sample_rate = sample_rate
        self._inflight: asyncio.Future[None] | None = None

    @property
    def queued_duration(self) -> float:
        return self.rtc.queued_duration

    def clear_queue(self) -> None:
        self.rtc.clear_queue()

    async def wait_for_playout(self) -> None:
        await self.rtc.wait_for_playout()

    async def capture(self, frame: rtc.AudioFrame) -> None:
        if self._inflight is not None and not self._inflight.done():
            await asyncio.wait([self._inflight])
        self._inflight = asyncio.ensure_future(self.rtc.capture_frame(frame))
        self._inflight.add_done_callback(_retrieve)
        await asyncio.shield(self._inflight)

    async def aclose(self) -> None:
        if self._inflight is not None and not self._inflight.done():
            await asyncio.wait([self._inflight])
        await self.rtc.aclose()


def _retrieve(capture: asyncio.Future[None]) -> None:
    # A capture whose feeder was cancelled is awaited by nobody: its error is logged here.
    if not capture.cancelled() and (error := capture.exception()) is not None:
        log.warning("audio capture failed", exc_info=error)


class Playout:
    """One utterance through the session's AgentSource; the feeder task is its own."""

    def __init__(self, source: AgentSource, audio: UtteranceAudio, frame_ms: int = 20) -> None:
        self.source = source
        self.audio = audio
        self.sample_rate = source.sample_rate
        self.frame_samples = self.sample_rate * frame_ms // 1000
        self._position = 0  # samples handed to the source
        self._feeder: asyncio.Task[None] | None = None
        self._finished = asyncio.Event()
        self._error: Exception | None = None

    @property
    def heard_samples(self) -> int:
        queued = round(self.source.queued_duration * self.sample_rate)
        return max(0, self._position - queued)

    @property
    def finished(self) -> bool:
        return self._finished.is_set()

    def start(self) -> None:
        self._start_feeder()

    async def wait_finished(self) -> None:
        """Returns when the utterance has played out entirely or was stopped; raises what
        made the feeder fail, if it did."""
        await self._finished.wait()
        if self._error is not None:
            raise self._error

    def pause(self) -> int:
        """Stop now; return the samples the listener heard, where resume will continue."""
        self._stop_feeder()
        heard = self.heard_samples
        self.source.clear_queue()
        self._position = heard
        return heard

    def resume(self) -> None:
        if not self._finished.is_set():
            self._start_feeder()

    def stop(self) -> int:
        """End the utterance now; return the samples heard."""
        heard = self.pause()
        self._finished.set()
        return heard

    async def aclose(self) -> None:
        if not self._finished.is_set():
            self.stop()
        await cancel_and_wait(self._feeder)

    def _start_feeder(self) -> None:
        self._stop_feeder()
        self._feeder = asyncio.create_task(self._feed(), name="playout-feeder")

    def _stop_feeder(self) -> None:
        if self._feeder is not None and not self._feeder.done():
            self._feeder.cancel()

    async def _feed(self) -> None:
        try:
            await self._feed_until_done()
        except Exception as exc:  # the utterance ends with the error, never hangs on it
            self._error = exc
        self._finished.set()

    async def _feed_until_done(self) -> None:
        while (pcm := await self.audio.read(self._position, self.frame_samples)) is not None:
            samples = len(pcm) // 2
            frame = rtc.AudioFrame(pcm, self.sample_rate, 1, samples)
            # Count before awaiting: the source accounts the frame as queued the moment the
            # call starts, so heard = position - queued stays exact even if we are cancelled.
            self._position += samples
            await self.source.capture(frame)
        await self.source.wait_for_playout()
