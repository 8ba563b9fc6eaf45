"""Feeds an utterance into the agent's LiveKit audio source in real time, and stops it at
once: pause drops every queued frame (ours and those inside the source) and remembers the
exact sample the listener heard, so resume continues from there."""

from __future__ import annotations

import asyncio
import contextlib
import time

from livekit import rtc

from orchestrator.utterance_audio import UtteranceAudio


class Playout:
    """One utterance at a time through one rtc.AudioSource."""

    def __init__(self, source: rtc.AudioSource, frame_ms: int = 20) -> None:
        self.source = source
        self.sample_rate = source.sample_rate
        self.frame_samples = self.sample_rate * frame_ms // 1000
        self._audio: UtteranceAudio | None = None
        self._position = 0  # samples handed to the source
        self._feeder: asyncio.Task[None] | None = None
        self._finished = asyncio.Event()
        self.last_frame_at: float | None = None  # perf_counter of the last capture call

    @property
    def heard_samples(self) -> int:
        queued = round(self.source.queued_duration * self.sample_rate)
        return max(0, self._position - queued)

    def start(self, audio: UtteranceAudio) -> None:
        self._audio = audio
        self._position = 0
        self._finished.clear()
        self._start_feeder()

    async def wait_finished(self) -> None:
        """Returns when the utterance has played out entirely or was stopped."""
        await self._finished.wait()

    def pause(self) -> int:
        """Stop now; return the samples the listener heard, where resume will continue."""
        self._stop_feeder()
        heard = self.heard_samples
        self.source.clear_queue()
        self._position = heard
        return heard

    def resume(self) -> None:
        if self._audio is not None and not self._finished.is_set():
            self._start_feeder()

    def stop(self) -> int:
        """End the utterance now; return the samples heard."""
        heard = self.pause()
        self._finished.set()
        return heard

    async def aclose(self) -> None:
        self.stop()
        if self._feeder is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await self._feeder

    def _start_feeder(self) -> None:
        self._stop_feeder()
        self._feeder = asyncio.create_task(self._feed(), name="playout-feeder")

    def _stop_feeder(self) -> None:
        if self._feeder is not None and not self._feeder.done():
            self._feeder.cancel()

    async def _feed(self) -> None:
        audio = self._audio
        assert audio is not None
        while (pcm := await audio.read(self._position, self.frame_samples)) is not None:
            samples = len(pcm) // 2
            frame = rtc.AudioFrame(pcm, self.sample_rate, 1, samples)
            # Count before awaiting: the source accounts the frame as queued the moment the
            # call starts, so heard = position - queued stays exact even if we are cancelled.
            self._position += samples
            self.last_frame_at = time.perf_counter()
            await self.source.capture_frame(frame)
        await self.source.wait_for_playout()
        self._finished.set()
