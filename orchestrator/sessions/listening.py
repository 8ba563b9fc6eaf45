"""Listening to one participant: their audio through Silero VAD, turned into barge-in
inputs for the session, with each onset placed in the audio the agent actually received,
and, when the session recognizes speech, through a `Transcriber` into transcripts.

The VAD's clock is the audio itself (seconds of the participant's audio processed). To say
when an onset *happened* on the server, `ReceivedAudio` remembers when each stretch of that
audio arrived: the arrival of the first voiced sample, not the VAD's report of it, is where
the barge-in latency starts.
"""

from __future__ import annotations

import bisect
import time
from collections import deque
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np
from livekit import rtc
from livekit.agents import vad as agents_vad

# Silero must be imported on the main thread (it registers a plugin): keep it at the top.
from livekit.plugins import silero

from fleet.aio import TaskSet
from orchestrator.sessions.bargein import TurnSpeech, VadUpdate
from orchestrator.sessions.onset import speech_onset
from orchestrator.sessions.transcriber import (
    Recognize,
    Transcriber,
    TranscriberOptions,
    Transcript,
)

VAD_RATE = 16000
ARRIVALS_KEPT = 4000
"""Received frames whose arrival time is remembered (40 s of 10 ms frames): an onset is
reported within a few windows of its audio, and a transcript's start at most a segment
(under 30 s) before it is ready, so this bounds memory and never runs short."""


@dataclass(frozen=True)
class VadOptions:
    """Silero's settings for every listener of this replica's sessions."""

    activation_threshold: float = 0.5
    min_speech_seconds: float = 0.032


def load_vad(options: VadOptions) -> Any:
    """Silero's model, shared by every listener (loading it blocks for ~50 ms)."""
    return silero.VAD.load(
        min_speech_duration=options.min_speech_seconds,
        activation_threshold=options.activation_threshold,
    )


class ReceivedAudio:
    """When each part of one participant's audio arrived, by position in that audio."""

    def __init__(
        self, sample_rate: int = VAD_RATE, clock: Callable[[], float] = time.perf_counter
    ) -> None:
        self.sample_rate = sample_rate
        self.samples = 0
        self._clock = clock
        self._arrivals: deque[tuple[int, float]] = deque()  # (end sample, arrival time)
        self._forgotten = 0  # samples before this one have no arrival time any more

    def received(self, samples: int) -> None:
        """A frame of `samples` samples arrived just now."""
        self.samples += samples
        self._arrivals.append((self.samples, self._clock()))
        if len(self._arrivals) > ARRIVALS_KEPT:
            self._forgotten = self._arrivals.popleft()[0]

    def arrival_of(self, audio_seconds: float) -> float | None:
        """The clock time at which the sample at audio_seconds arrived; None if it is older
        than what is remembered or has not arrived yet."""
        sample = int(audio_seconds * self.sample_rate)
        if sample < self._forgotten:
            return None
        at = bisect.bisect_right(self._arrivals, sample, key=lambda arrival: arrival[0])
        return self._arrivals[at][1] if at < len(self._arrivals) else None


class ListenerSink(Protocol):
    """What a listener reports to its session."""

    def user_audio_started(self, identity: str) -> None:
        """The participant's first audio arrived: from here on the session hears them."""

    def user_speech_started(self, identity: str, at: float, onset_arrival: float | None) -> None:
        """Speech onset, reported at `at` on the VAD's clock; onset_arrival is when its first
        voiced sample arrived (on the listener's clock), None if no longer known."""

    def user_speech_update(self, identity: str, reading: VadUpdate) -> None:
        """One VAD reading while the participant may be speaking."""

    def user_speech_stopped(self, identity: str, at: float, speech_seconds: float) -> None:
        """The VAD's end of speech (after its own silence window)."""

    def user_transcript(self, listener: Listener, transcript: Transcript) -> None:
        """A transcript of the listener's speech (only when the session recognizes it)."""

    def user_transcript_dropped(self, listener: Listener) -> None:
        """A partial transcript was dropped: recognition is not keeping up."""


class Listener:
    """Runs the VAD over one participant's audio and reports to the sink; with a recognizer,
    transcribes it too."""

    def __init__(
        self,
        vad: agents_vad.VAD,
        identity: str,
        sink: ListenerSink,
        clock: Callable[[], float] = time.perf_counter,
        *,
        track_sid: str = "",
        recognize: Recognize | None = None,
        transcription: TranscriberOptions | None = None,
    ) -> None:
        self.identity = identity
        self.track_sid = track_sid
        self._vad = vad
        self._sink = sink
        self.received = ReceivedAudio(VAD_RATE, clock)
        self._tasks = TaskSet(f"listener-{identity}")
        self.transcriber = (
            None
            if recognize is None
            else Transcriber(
                recognize,
                self,
                transcription or TranscriberOptions(),
                sample_rate=VAD_RATE,
                name=f"transcriber-{identity}",
            )
        )

    # TranscriptSink: the transcriber reports here, the listener tells the session who spoke.
    def transcript(self, transcript: Transcript) -> None:
        self._sink.user_transcript(self, transcript)

    def partial_dropped(self) -> None:
        self._sink.user_transcript_dropped(self)

    async def run(self, frames: AsyncIterator[rtc.AudioFrame]) -> None:
        """Consume 16 kHz mono frames until they end (or the task is cancelled)."""
        vad_stream = self._vad.stream()
        decisions = self._tasks.spawn(self._decide(vad_stream), "vad")
        try:
            async for frame in frames:
                if not self.received.samples:
                    self._sink.user_audio_started(self.identity)
                self.received.received(frame.samples_per_channel)
                if self.transcriber is not None:
                    self.transcriber.received(frame.data.cast("B"))
                vad_stream.push_frame(frame)
            # The track ended: let the VAD finish what it was given, then its events end.
            vad_stream.end_input()
            await decisions
            if self.transcriber is not None:  # and the last words get their transcript
                await self.transcriber.finish()
        finally:
            await self._tasks.aclose()
            await vad_stream.aclose()
            if self.transcriber is not None:
                await self.transcriber.aclose()

    async def _decide(self, vad_stream: agents_vad.VADStream) -> None:
        turn = TurnSpeech()
        async for event in vad_stream:
            if event.type == agents_vad.VADEventType.START_OF_SPEECH:
                turn.turn_started()
                # The event comes at the end of the window that completed the onset, and
                # speech_duration is the run of voiced windows up to it; the sound itself
                # started earlier, and is found in the audio the event carries.
                onset = speech_onset(
                    np.frombuffer(event.frames[0].data, np.int16),
                    event.frames[0].sample_rate,
                    end_seconds=event.timestamp,
                    first_voiced_seconds=event.timestamp - event.speech_duration,
                )
                arrival = self.received.arrival_of(max(0.0, onset))
                self._sink.user_speech_started(self.identity, event.timestamp, arrival)
                if self.transcriber is not None:
                    self.transcriber.speech_started(event.timestamp, onset)
            elif event.type == agents_vad.VADEventType.INFERENCE_DONE:
                silence = event.raw_accumulated_silence
                voiced = turn.update(event.raw_accumulated_speech)
                speech = voiced if event.speaking else 0.0
                reading = VadUpdate(event.timestamp, speech, silence)
                self._sink.user_speech_update(self.identity, reading)
                if self.transcriber is not None:
                    self.transcriber.reading(reading)
            elif event.type == agents_vad.VADEventType.END_OF_SPEECH:
                self._sink.user_speech_stopped(
                    self.identity, event.timestamp, event.speech_duration
                )
                if self.transcriber is not None:
                    speech_end = event.timestamp - event.silence_duration
                    self.transcriber.speech_stopped(event.timestamp, speech_end)


async def track_frames(track: rtc.Track) -> AsyncIterator[rtc.AudioFrame]:
    """A subscribed audio track as 16 kHz mono frames (LiveKit resamples natively)."""
    stream = rtc.AudioStream(track, sample_rate=VAD_RATE, num_channels=1)
    try:
        async for event in stream:
            yield event.frame
    finally:
        await stream.aclose()
