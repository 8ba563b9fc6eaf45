"""Feeds an utterance into the agent's LiveKit audio source in real time, and stops it at
once: pause drops every queued frame (ours and those inside the source) and remembers the
exact sample the listener heard, so resume continues from there."""

from __future__ import annotations

import asyncio
import logging
import time

from livekit import rtc

from fleet.aio import cancel_and_wait
from orchestrator.sessions.utterance_audio import UtteranceAudio

log = logging.getLogger(__name__)

HELD_BACK_SECONDS = 0.003
"""A capture that should go in over the queue size and is still pending after this was held
back by the native side (one that fits completes at once, and its answer takes well under
a millisecond when the loop is free)."""


class AgentSource:
    """The session's one LiveKit audio source, shared by its utterances' playouts.

    A capture is never abandoned half-way: rtc refuses the next capture (InvalidState) if
    one was cancelled while LiveKit was still taking it, which a pause does whenever the
    source's queue is full. So a cancelled feeder leaves its capture to finish (it is
    cleared from the queue with the rest), and the next capture waits for it. A capture
    whose task has not started yet is withdrawn instead (`withdraw_unstarted`): rtc has not
    queued it, so it was not heard, and started after the pause it would play after it.

    What the native queue holds: rtc estimates it from wall time (`queued_duration`), and
    drops the estimate to zero when no new capture has come within it. Its native side
    plays 10 ms per tick of its own thread, and a capture that finds the queue over
    `queue_size_ms` completes only once the ticks have brought it down to that. A tick
    thread starved for a while (CPU load) so leaves the queue full while the estimate
    reads zero: the heard position came out 120 ms (the whole queue) late. So while a
    capture is held back like that, the queue counts as at least `queue_size_ms`.
    """

    def __init__(self, sample_rate: int, queue_size_ms: int) -> None:
        self.rtc = rtc.AudioSource(sample_rate, 1, queue_size_ms=queue_size_ms)
        self.sample_rate = sample_rate
        self.queue_samples = sample_rate * queue_size_ms // 1000
        self._inflight: asyncio.Future[None] | None = None
        self._unstarted = 0  # samples of the in-flight capture while rtc has not queued it
        self._held_back_since: float | None = None  # see `queued_samples`

    @property
    def queued_duration(self) -> float:
        return self.rtc.queued_duration

    @property
    def queued_samples(self) -> int:
        """Samples given to `capture` and not played out yet (see the class doc), counting
        a capture rtc has not queued yet."""
        estimate = self._rtc_estimate()
        since = self._held_back_since
        if since is not None and time.monotonic() - since >= HELD_BACK_SECONDS:
            estimate = max(estimate, self.queue_samples)
        return estimate + self._unstarted

    def _rtc_estimate(self) -> int:
        return round(self.rtc.queued_duration * self.sample_rate)

    def clear_queue(self) -> None:
        self.rtc.clear_queue()
        self._held_back_since = None  # the capture completes at the next tick, over nothing

    async def wait_for_playout(self) -> None:
        await self.rtc.wait_for_playout()

    async def capture(self, frame: rtc.AudioFrame) -> None:
        if self._inflight is not None and not self._inflight.done():
            await asyncio.wait([self._inflight])
        self._unstarted = frame.samples_per_channel
        self._inflight = asyncio.ensure_future(self._capture(frame))
        self._inflight.add_done_callback(_retrieve)
        await asyncio.shield(self._inflight)

    def withdraw_unstarted(self) -> int:
        """Cancel a capture rtc has not queued yet; the samples it held (0: none)."""
        withdrawn, self._unstarted = self._unstarted, 0
        if withdrawn and self._inflight is not None:
            self._inflight.cancel()  # not started: cancelling it runs none of it
        return withdrawn

    async def _capture(self, frame: rtc.AudioFrame) -> None:
        # rtc queues the frame before its first await: from here on it is rtc's.
        self._unstarted = 0
        over = self._rtc_estimate() + frame.samples_per_channel > self.queue_samples
        self._held_back_since = since = time.monotonic() if over else None
        try:
            await self.rtc.capture_frame(frame)
        finally:
            if since is not None and self._held_back_since == since:
                self._held_back_since = None

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
        return max(0, self._position - self.source.queued_samples)

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
        self._position -= self.source.withdraw_unstarted()
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
