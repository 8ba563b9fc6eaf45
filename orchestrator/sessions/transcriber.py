"""Transcripts of one listener: their audio kept per turn, recognized while they speak
(partial transcripts) and when their turn ends (a final one), on their audio's own clock.

A turn opens at the VAD's onset (with a little audio before it, which Whisper needs) and
ends at its end of speech. While the listener speaks, the turn so far is recognized every
`partial_interval_seconds` of new audio, and once more as soon as they fall silent, so a
barge-in decision has the words of the whole turn without waiting for the VAD's end of
speech; that last partial becomes the final when nothing was said after it. A turn longer
than `max_segment_seconds` is cut into segments, each with its own final, so memory and a
recognition's cost stay bounded however long someone talks.

One recognition runs at a time per listener. A partial that comes due while one is still
running is dropped (and counted: the recognizer is not keeping up); a final is never
dropped, it waits its turn.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Protocol

import numpy as np
import numpy.typing as npt

from fleet.aio import TaskSet
from orchestrator.sessions.bargein import VadUpdate
from orchestrator.sessions.recognizer import MAX_WINDOW_SECONDS, Recognized

log = logging.getLogger(__name__)

PRE_ROLL_SECONDS = 0.3
"""Audio kept before the onset: Whisper misses a word that starts at sample zero."""
END_PAD_SECONDS = 0.2
"""Audio after the end of speech that a final hears (the VAD's end is a window early)."""


@dataclass(frozen=True)
class TranscriberOptions:
    partial_interval_seconds: float = 0.4
    """New audio between two partial transcripts while the listener speaks."""
    pause_seconds: float = 0.1
    """Silence after which the turn so far is recognized (its words for the barge-in)."""
    max_segment_seconds: float = 25.0
    """Longest stretch of one turn recognized at once; longer turns are cut."""

    def __post_init__(self) -> None:
        if self.partial_interval_seconds <= 0 or self.pause_seconds <= 0:
            raise ValueError("partial_interval_seconds and pause_seconds must be positive")
        if not 1.0 <= self.max_segment_seconds <= MAX_WINDOW_SECONDS - PRE_ROLL_SECONDS - 1:
            raise ValueError("max_segment_seconds must be within 1..28")


@dataclass(frozen=True)
class Transcript:
    """One transcript of a segment of a listener's turn. Times are seconds of the
    listener's audio (the VAD's clock)."""

    segment_id: str
    turn: float
    """The `at` of the onset that opened the turn."""
    text: str
    final: bool
    start: float
    """Where the segment's speech starts (the onset, or where a long turn was cut)."""
    end: float
    """Where it ends: the end of speech for a final, the audio heard so far for a partial."""
    covers: float
    """Audio up to which it was recognized."""
    compute_seconds: float
    """What its recognition cost (0 for a final that reuses the last partial)."""


class TranscriptSink(Protocol):
    def transcript(self, transcript: Transcript) -> None:
        """A partial or final transcript is ready."""

    def partial_dropped(self) -> None:
        """A partial came due while the previous recognition was still running."""


Recognize = Callable[[npt.NDArray[np.int16]], Awaitable[Recognized]]


@dataclass
class _Job:
    segment_id: str
    turn: float
    start: int  # samples: reported start of speech
    end: int  # samples: end reported (end of speech for a final)
    covers: int  # samples: end of the audio recognized
    pcm: npt.NDArray[np.int16]
    final: bool
    result: Recognized | None = None


@dataclass
class _Segment:
    id: str
    turn: float
    onset: int  # samples: reported start
    audio_from: int  # samples: where its audio (with pre-roll) starts
    next_partial: int
    submitted: int = 0  # samples: end of the audio of the last job submitted
    last: _Job | None = None


class Transcriber:
    """Turns one listener's audio and VAD events into transcripts for a sink."""

    def __init__(
        self,
        recognize: Recognize,
        sink: TranscriptSink,
        options: TranscriberOptions,
        *,
        sample_rate: int = 16000,
        name: str = "transcriber",
    ) -> None:
        self.options = options
        self.rate = sample_rate
        self._recognize = recognize
        self._sink = sink
        self._buffer = bytearray()  # s16le audio from sample `_base` to `_received`
        self._base = 0
        self._received = 0
        self._segment: _Segment | None = None
        self._jobs: asyncio.Queue[_Job] = asyncio.Queue()
        self._pending = 0  # jobs queued or running
        self._idle = asyncio.Event()  # set whenever a job finishes
        self._tasks = TaskSet(name)
        self._worker: asyncio.Task[None] | None = None

    @property
    def buffered_seconds(self) -> float:
        """Audio held now (bounded by a segment, plus its pre-roll)."""
        return len(self._buffer) / 2 / self.rate

    @property
    def busy(self) -> bool:
        return self._pending > 0

    # -- input ----------------------------------------------------------------------------

    def received(self, pcm: bytes | memoryview) -> None:
        """The listener's next audio (s16le mono at sample_rate), as it arrives."""
        self._buffer += pcm
        self._received += len(pcm) // 2
        if self._segment is None:
            # Between turns only the pre-roll is kept (trimmed in steps, not every frame).
            keep = self._samples(PRE_ROLL_SECONDS)
            if self._received - self._base > 2 * keep:
                self._trim(self._received - keep)

    def speech_started(self, at: float, onset: float) -> None:
        """A turn opens: onset (seconds) is where its speech starts, `at` the onset report."""
        start = min(self._received, max(0, self._samples(onset)))
        audio_from = max(self._base, start - self._samples(PRE_ROLL_SECONDS))
        self._trim(audio_from)
        self._segment = self._new_segment(at, start, audio_from)

    def reading(self, reading: VadUpdate) -> None:
        """A VAD reading: partial transcripts come due by it."""
        segment = self._segment
        if segment is None:
            return
        now = self._received
        cut = segment.audio_from + self._samples(self.options.max_segment_seconds)
        if now >= cut:
            # Cut at the segment's length, not here: audio may have run ahead of the VAD.
            self._submit(segment, cut, cut, final=True)
            self._trim(cut)
            self._segment = self._new_segment(segment.turn, cut, cut)
            return
        if reading.silence_seconds < self.options.pause_seconds:
            if now >= segment.next_partial:
                segment.next_partial = now + self._samples(self.options.partial_interval_seconds)
                if self.busy:
                    self._sink.partial_dropped()
                else:
                    self._submit(segment, now, now, final=False)
        else:
            speech_end = self._samples(reading.at - reading.silence_seconds)
            if segment.submitted < speech_end and not self.busy:
                self._submit(segment, now, now, final=False)

    def speech_stopped(self, at: float, speech_end: float) -> None:
        """The turn ends; its speech ended at speech_end (seconds)."""
        segment, self._segment = self._segment, None
        if segment is None:
            return
        end = max(segment.onset, min(self._received, self._samples(speech_end)))
        last = segment.last
        if last is not None and last.covers >= end:
            last.end = end
            if last.result is None:
                last.final = True  # still to run: its result will be the final
            else:
                self._emit(last, final=True, compute_seconds=0.0)
        else:
            covers = min(self._received, end + self._samples(END_PAD_SECONDS))
            self._submit(segment, end, covers, final=True)
        self._trim(self._received - self._samples(PRE_ROLL_SECONDS))

    async def finish(self) -> None:
        """The audio ended (the track is gone): a turn still open gets its final, and every
        final already due is recognized before this returns."""
        if self._segment is not None:
            self.speech_stopped(self._received / self.rate, self._received / self.rate)
        while self._pending:
            await self._idle.wait()

    async def aclose(self) -> None:
        await self._tasks.aclose()

    # -- work -----------------------------------------------------------------------------

    def _new_segment(self, turn: float, onset: int, audio_from: int) -> _Segment:
        interval = self._samples(self.options.partial_interval_seconds)
        return _Segment(uuid.uuid4().hex[:16], turn, onset, audio_from, onset + interval)

    def _submit(self, segment: _Segment, end: int, covers: int, *, final: bool) -> None:
        first = segment.audio_from - self._base
        pcm = np.frombuffer(self._buffer, np.int16)[first : covers - self._base].copy()
        job = _Job(segment.id, segment.turn, segment.onset, end, covers, pcm, final)
        segment.submitted = covers
        segment.last = job
        self._pending += 1
        self._jobs.put_nowait(job)
        if self._worker is None:
            self._worker = self._tasks.spawn(self._work(), "recognize")

    async def _work(self) -> None:
        while True:
            job = await self._jobs.get()
            try:
                job.result = await self._recognize(job.pcm)
            except Exception:  # one failed recognition must not stop the listener's next ones
                log.warning("speech recognition failed", exc_info=True)
                continue
            finally:
                self._pending -= 1
                self._idle.set()
                self._idle.clear()
                job.pcm = np.zeros(0, np.int16)  # the audio is no longer needed
            self._emit(job, final=job.final, compute_seconds=job.result.compute_seconds)

    def _emit(self, job: _Job, *, final: bool, compute_seconds: float) -> None:
        assert job.result is not None
        self._sink.transcript(
            Transcript(
                segment_id=job.segment_id,
                turn=job.turn,
                text=job.result.text,
                final=final,
                start=job.start / self.rate,
                end=job.end / self.rate,
                covers=job.covers / self.rate,
                compute_seconds=compute_seconds,
            )
        )

    def _trim(self, keep_from: int) -> None:
        """Forget the audio before sample keep_from."""
        drop = min(max(0, keep_from - self._base), self._received - self._base)
        if drop:
            del self._buffer[: drop * 2]
            self._base += drop

    def _samples(self, seconds: float) -> int:
        return round(seconds * self.rate)
