"""One Synthesize stream: text in, frames out, with its own pause gate and cancel flag.

Controls act on this object only: every stream owns its gate, its segmenter and its
framer, so PAUSE or CANCEL on one utterance can never touch another. Its engine calls take
their turn through the worker's Scheduler (tts_worker/scheduler.py), which orders them by
playback deadline and may ask for a shorter chunk.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Iterator
from dataclasses import dataclass
from typing import TypeVar

import grpc

from tts_rpc.v1 import tts_pb2
from tts_worker.audio_framer import BYTES_PER_SAMPLE, AudioFramer
from tts_worker.engines.base import Engine, EngineAudio, TimedAudio, VoiceSpec
from tts_worker.scheduler import Scheduler
from tts_worker.text.segments import SpokenSegment, UtteranceText
from tts_worker.text_segmenter import Segment, TextSegmenter, split_segment

T = TypeVar("T")

SUPPORTED_SAMPLE_RATES = (8000, 16000, 22050, 24000, 44100, 48000)
_CONTROL_TO_SPACE = dict.fromkeys([*range(0, 9), 11, 12, *range(14, 32), 127], " ")
DEFAULT_FRAME_MS = 20
# A chunk cut to the scheduler's budget keeps at least this many words on each side.
_MIN_CHUNK_WORDS = 3


@dataclass
class StreamError(Exception):
    """A client mistake that ends the stream with a gRPC status."""

    code: grpc.StatusCode
    details: str


@dataclass(frozen=True)
class Limits:
    min_clause_chars: int
    max_segment_chars: int
    max_text_chunk_chars: int
    max_utterance_chars: int
    first_segment_words: int = 0
    """The first segment ends at the first natural break after this many words (0: off)."""


class Utterance:
    """State of one stream. `accept()` feeds requests in; `responses()` yields frames."""

    def __init__(
        self,
        config: tts_pb2.SynthesisConfig,
        voice: VoiceSpec,
        engine: Engine,
        scheduler: Scheduler,
        limits: Limits,
    ) -> None:
        self.id = config.utterance_id
        self.voice = voice
        self.sample_rate = config.sample_rate or voice.native_sample_rate
        self.frame_ms = config.frame_duration_ms or DEFAULT_FRAME_MS
        self.speed = config.speed or 1.0
        self._engine = engine
        self._scheduler = scheduler
        self._limits = limits
        self._segmenter = TextSegmenter(
            limits.min_clause_chars, limits.max_segment_chars, limits.first_segment_words
        )
        # Each segment is read as a person would say it just before synthesis; numbers and
        # the like are spelled out in English only.
        self._text = UtteranceText(
            normalize_text=not config.verbatim,
            written_forms=voice.language.lower().startswith("en"),
        )
        self._segments: asyncio.Queue[Segment | None] = asyncio.Queue()
        self._held: Segment | None = None  # the rest of a segment cut to the chunk budget
        self._playback = scheduler.open(config.max_lead_seconds, voice.name)
        self._playing = asyncio.Event()
        self._playing.set()
        self._cancelled = asyncio.Event()
        self._input_ended = False
        self._chars = 0
        self.error: StreamError | None = None
        # Stats
        self.first_text_at: float | None = None
        self.first_frame_seconds = 0.0
        self.synthesis_seconds = 0.0
        self.audio_samples = 0
        self.frames = 0
        self.queue_seconds = 0.0
        self.synthesized_end = 0  # end offset of the text given to the engine
        # Text timings not yet sent, in the order their audio starts (see AudioFrame.timings).
        self._timings: deque[tts_pb2.TextTiming] = deque()
        self._engine_samples = 0  # engine audio so far, at the voice's native rate

    @property
    def cancelled(self) -> bool:
        return self._cancelled.is_set()

    @property
    def paused(self) -> bool:
        return not self._playing.is_set()

    def close(self) -> None:
        """The stream is over: it no longer takes part in the worker's schedule."""
        self._scheduler.close(self._playback)

    # -- input side ---------------------------------------------------------------------

    def accept(self, request: tts_pb2.SynthesizeRequest) -> None:
        """Apply one client message; raise StreamError for anything malformed or out of order."""
        kind = request.WhichOneof("request")
        if kind == "text":
            self._accept_text(request.text.text)
        elif kind == "control":
            self._accept_control(request.control.command)
        elif kind == "playout":
            played = request.playout.played_seconds
            if not (math.isfinite(played) and played >= 0):
                raise StreamError(
                    grpc.StatusCode.INVALID_ARGUMENT,
                    "playout.played_seconds must be a finite number of seconds, 0 or more",
                )
            self._playback.report(played)
        elif kind == "end_of_input":
            if self._input_ended:
                raise StreamError(grpc.StatusCode.INVALID_ARGUMENT, "end_of_input sent twice")
            self._end_input()
        elif kind == "config":
            raise StreamError(
                grpc.StatusCode.INVALID_ARGUMENT, "config may only be the first message"
            )
        else:
            raise StreamError(grpc.StatusCode.INVALID_ARGUMENT, "empty request message")

    def end_of_requests(self) -> None:
        """The client half-closed its side: that ends the text too."""
        if not self._input_ended:
            self._end_input()

    def cancel(self) -> None:
        self._cancelled.set()

    def fail(self, error: StreamError) -> None:
        self.error = error
        self._cancelled.set()

    def _accept_text(self, text: str) -> None:
        if self._input_ended:
            raise StreamError(grpc.StatusCode.INVALID_ARGUMENT, "text after end_of_input")
        if len(text) > self._limits.max_text_chunk_chars:
            raise StreamError(
                grpc.StatusCode.INVALID_ARGUMENT,
                f"text chunk of {len(text)} characters exceeds the limit of "
                f"{self._limits.max_text_chunk_chars}",
            )
        self._chars += len(text)
        self._playback.unsynthesized_chars += len(text)
        if self._chars > self._limits.max_utterance_chars:
            raise StreamError(
                grpc.StatusCode.INVALID_ARGUMENT,
                f"utterance text exceeds the limit of "
                f"{self._limits.max_utterance_chars} characters",
            )
        # Control characters (a NUL breaks espeak) become spaces: one for one, so the text
        # spans frames report still index the caller's text.
        text = text.translate(_CONTROL_TO_SPACE)
        if self.first_text_at is None and text.strip():
            self.first_text_at = time.perf_counter()
        self._text.push(text)
        for segment in self._segmenter.push(text):
            self._segments.put_nowait(segment)

    def _accept_control(self, command: int) -> None:
        if command == tts_pb2.CONTROL_COMMAND_PAUSE:
            self._playing.clear()
            self._playback.pause()
        elif command == tts_pb2.CONTROL_COMMAND_RESUME:
            self._playing.set()
            self._playback.resume()
        elif command == tts_pb2.CONTROL_COMMAND_CANCEL:
            self.cancel()
        else:
            raise StreamError(
                grpc.StatusCode.INVALID_ARGUMENT, f"unknown control command {command}"
            )

    def _end_input(self) -> None:
        self._input_ended = True
        for segment in self._segmenter.flush():
            self._segments.put_nowait(segment)
        self._segments.put_nowait(None)
        self._playback.input_ended = True

    # -- output side --------------------------------------------------------------------

    async def responses(self) -> AsyncIterator[tts_pb2.SynthesizeResponse]:
        """Frames as soon as each chunk is synthesized, then the stats message."""
        framer = AudioFramer(self.voice.native_sample_rate, self.sample_rate, self.frame_ms)
        span = tts_pb2.TextSpan()
        while not self.cancelled:
            segment = await self._next_segment()
            if segment is None:
                break
            spoken = self._text.spoken(segment)
            if spoken is None:
                continue  # nothing to say (a code block)
            span = tts_pb2.TextSpan(start=segment.start, end=segment.end)
            words = spoken.text
            if words[-1:].isalnum() and segment.end < self._chars:
                # Cut mid-sentence (before "and", or to a chunk budget): a trailing comma has
                # the engine read it as a clause, where a bare end is read as a sentence's and
                # its last word clipped (Whisper heard "shipped" as "shit" 2 times in 3).
                words += ","
            chunks = self._engine.synthesize(self.voice.name, words, speed=self.speed)
            self.synthesized_end = segment.end
            self._playback.unsynthesized_chars = self._chars - segment.end
            segment_starts_at = self._engine_samples
            words_timed = False
            while True:
                chunk = await self._next_chunk(chunks)
                if chunk is None:
                    break
                produced_ns = time.time_ns()
                if isinstance(chunk, TimedAudio):
                    self._time_words(chunk, spoken)
                    words_timed = True
                    chunk = chunk.audio
                self._engine_samples += len(chunk)
                for pcm in framer.push(chunk):
                    if not await self._wait_playing():
                        break
                    yield self._frame(pcm, span, produced_ns)
            if self.cancelled:
                break
            self._scheduler.note_segment(
                self.voice.name,
                len(segment.text),
                (self._engine_samples - segment_starts_at)
                / self.voice.native_sample_rate
                * self.speed,
            )
            if not words_timed and self._engine_samples > segment_starts_at:
                # No word times from this engine: the clause is timed as a whole, once its
                # end is known; the next frame carries it.
                self._timings.append(
                    self._timing(
                        segment.start,
                        segment.end,
                        segment_starts_at,
                        self._engine_samples,
                        tts_pb2.TIMING_UNIT_CLAUSE,
                    )
                )
        if not self.cancelled:
            self._playback.unsynthesized_chars = 0  # all of it (what is left makes no sound)
            produced_ns = time.time_ns()
            for pcm in framer.flush():
                if not await self._wait_playing():
                    break
                yield self._frame(pcm, span, produced_ns)
        if self.error is None:
            yield tts_pb2.SynthesizeResponse(stats=self.stats())

    def stats(self) -> tts_pb2.SynthesisStats:
        heard = self.audio_seconds
        return tts_pb2.SynthesisStats(
            # What only became known after the last frame, for audio that was sent.
            timings=[t for t in self._timings if t.start_seconds < heard],
            utterance_id=self.id,
            audio_seconds=self.audio_seconds,
            synthesis_seconds=self.synthesis_seconds,
            first_frame_seconds=self.first_frame_seconds,
            queue_seconds=self.queue_seconds,
            frames=self.frames,
            cancelled=self.cancelled,
            synthesized_seconds=self._engine_samples / self.voice.native_sample_rate,
            text_synthesized_end=self.synthesized_end,
        )

    @property
    def audio_seconds(self) -> float:
        return self.audio_samples / self.sample_rate

    def _frame(
        self, pcm: bytes, span: tts_pb2.TextSpan, produced_ns: int
    ) -> tts_pb2.SynthesizeResponse:
        samples = len(pcm) // BYTES_PER_SAMPLE
        if self.frames == 0 and self.first_text_at is not None:
            self.first_frame_seconds = time.perf_counter() - self.first_text_at
        ends_at = (self.audio_samples + samples) / self.sample_rate
        timings = []
        while self._timings and self._timings[0].start_seconds < ends_at:
            timings.append(self._timings.popleft())
        frame = tts_pb2.AudioFrame(
            sequence_number=self.frames,
            audio=pcm,
            sample_rate=self.sample_rate,
            encoding=tts_pb2.AUDIO_ENCODING_PCM_S16LE,
            start_seconds=self.audio_samples / self.sample_rate,
            duration_seconds=samples / self.sample_rate,
            produced_unix_ns=produced_ns,
            text_span=span,
            timings=timings,
        )
        self.frames += 1
        self.audio_samples += samples
        self._playback.sent(samples / self.sample_rate)
        return tts_pb2.SynthesizeResponse(frame=frame)

    def _time_words(self, chunk: TimedAudio, spoken: SpokenSegment) -> None:
        for word in spoken.words(chunk.words):
            self._timings.append(
                self._timing(
                    word.start,
                    word.end,
                    self._engine_samples + word.start_sample,
                    self._engine_samples + word.end_sample,
                    tts_pb2.TIMING_UNIT_WORD,
                )
            )

    def _timing(
        self,
        start: int,
        end: int,
        first_sample: int,
        end_sample: int,
        unit: tts_pb2.TimingUnit.ValueType,
    ) -> tts_pb2.TextTiming:
        # Engine samples at the native rate: resampling keeps time, so seconds agree with
        # the frames' own clock.
        rate = self.voice.native_sample_rate
        return tts_pb2.TextTiming(
            text_span=tts_pb2.TextSpan(start=start, end=end),
            start_seconds=first_sample / rate,
            end_seconds=end_sample / rate,
            unit=unit,
        )

    async def _next_segment(self) -> Segment | None:
        """The next piece of text to synthesize, cut to the scheduler's chunk budget."""
        segment, self._held = self._held, None
        if segment is None:
            segment = await self._unless_cancelled(self._segments.get())
            if segment is None:
                return None
        budget = self._scheduler.chunk_budget(self._playback)
        if budget is not None:
            seconds_per_char = self._scheduler.seconds_per_char(self.voice.name) / self.speed
            max_chars = int(budget / seconds_per_char)
            segment, self._held = split_segment(segment, max_chars, _MIN_CHUNK_WORDS)
        return segment

    async def _next_chunk(self, chunks: Iterator[EngineAudio]) -> EngineAudio | None:
        done = await self._unless_cancelled(
            self._scheduler.run(self._playback, lambda: next(chunks, None))
        )
        if done is None:
            return None
        chunk, seconds = done
        self.synthesis_seconds += seconds
        if chunk is not None:
            audio = chunk.audio if isinstance(chunk, TimedAudio) else chunk
            self._scheduler.measured(len(audio) / self.voice.native_sample_rate, seconds)
        return chunk

    async def _wait_playing(self) -> bool:
        """Hold frames while paused; False once the utterance is cancelled."""
        if not self._playing.is_set():
            await self._unless_cancelled(self._playing.wait())
        return not self.cancelled

    async def _unless_cancelled(self, awaitable: Awaitable[T]) -> T | None:
        """Await, but give up (returning None) the moment the utterance is cancelled."""
        task = asyncio.ensure_future(awaitable)
        if self.cancelled:
            task.cancel()
            return None
        stop = asyncio.ensure_future(self._cancelled.wait())
        try:
            await asyncio.wait({task, stop}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            # Also on our own cancellation: never leave either helper task behind.
            stop.cancel()
            if not task.done():
                # An engine call already running in a thread finishes there; its result
                # is dropped.
                task.cancel()
        return task.result() if task.done() and not task.cancelled() else None
