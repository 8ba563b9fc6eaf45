"""A listener built on the livekit rtc SDK: joins with the token POST /sessions returned,
records the agent's audio with arrival times, talks back into the room, and collects the
transcriptions published in it (`lk.transcription`)."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt
from livekit import rtc

from fleet.aio import cancel_and_wait, poll_until

RATE = 48000
FRAME = RATE // 100  # 10 ms
AUDIBLE = 1000
"""int16 peak above which a received chunk counts as speech (silence and codec noise stay
far below)."""


@dataclass
class Recording:
    chunks: list[npt.NDArray[np.int16]] = field(default_factory=list)
    arrivals: list[float] = field(default_factory=list)  # perf_counter per chunk
    peaks: list[int] = field(default_factory=list)  # int16 peak per chunk
    tracks: list[str] = field(default_factory=list)  # the track (sid) each chunk came on

    def pcm(self) -> npt.NDArray[np.int16]:
        return np.concatenate(self.chunks) if self.chunks else np.zeros(0, np.int16)

    async def wait_for(self, samples: int, within: float) -> None:
        """Until at least `samples` have been received (the track plays on in silence)."""
        received = await poll_until(lambda: self.samples() >= samples, timeout_seconds=within)
        assert received, f"only {self.samples()} of {samples} samples arrived in {within} s"

    def samples(self) -> int:
        return sum(len(chunk) for chunk in self.chunks)

    def audible_seconds(self, since: float = 0.0) -> float:
        """Seconds of speech (chunks peaking over AUDIBLE) that arrived after a perf_counter
        moment."""
        return sum(
            len(chunk) / RATE
            for chunk, arrived, peak in zip(self.chunks, self.arrivals, self.peaks, strict=True)
            if arrived > since and peak > AUDIBLE
        )

    async def wait_audible(self, seconds: float, since: float, within: float) -> bool:
        """Until `seconds` of speech have arrived after `since` (False if not within)."""
        return await poll_until(
            lambda: self.audible_seconds(since) >= seconds,
            timeout_seconds=within,
            interval_seconds=0.05,
        )

    def first_audible(
        self, since: float, skip_tracks: frozenset[str] = frozenset()
    ) -> float | None:
        """Arrival of the first speech chunk after `since` on a track not in skip_tracks
        (those of an agent that is gone); None while there is none."""
        for arrived, peak, track in zip(self.arrivals, self.peaks, self.tracks, strict=True):
            if arrived > since and peak > AUDIBLE and track not in skip_tracks:
                return arrived
        return None

    def sample_at(self, moment: float) -> int:
        """Samples received before a perf_counter moment."""
        total = 0
        for chunk, arrived in zip(self.chunks, self.arrivals, strict=True):
            if arrived > moment:
                break
            total += len(chunk)
        return total


@dataclass
class TextStream:
    """One `lk.transcription` text stream as it arrived: each chunk with its arrival."""

    stream_id: str
    sender: str
    attributes: dict[str, str]
    chunks: list[tuple[str, float]] = field(default_factory=list)
    complete: bool = False

    @property
    def text(self) -> str:
        return "".join(chunk for chunk, _ in self.chunks)


class Listener:
    """The user side of a session."""

    def __init__(self) -> None:
        self.room = rtc.Room()
        self.recording = Recording()
        self.source = rtc.AudioSource(RATE, 1, queue_size_ms=200)
        self._tasks: list[asyncio.Task[None]] = []
        self._recorders: dict[str, asyncio.Task[None]] = {}  # by track sid
        self._speech: asyncio.Queue[npt.NDArray[np.int16]] = asyncio.Queue()
        self.subscribed = asyncio.Event()
        # perf_counter at which the last talk() starts leaving the microphone source: the
        # moment it is pushed plus what is queued ahead of it in the source.
        self.speech_onset_at: float | None = None
        self.transcriptions: list[TextStream] = []

    async def join(self, url: str, token: str) -> None:
        self.room.on("track_subscribed", self._on_track)
        self.room.on("track_unsubscribed", self._on_track_gone)
        self.room.register_text_stream_handler("lk.transcription", self._on_transcription)
        await self.room.connect(url, token, rtc.RoomOptions(auto_subscribe=True))
        track = rtc.LocalAudioTrack.create_audio_track("mic", self.source)
        await self.room.local_participant.publish_track(
            track, rtc.TrackPublishOptions(source=rtc.TrackSource.SOURCE_MICROPHONE)
        )
        self._tasks.append(asyncio.create_task(self._microphone(), name="listener-mic"))

    def _on_track(
        self, track: rtc.Track, pub: rtc.RemoteTrackPublication, participant: rtc.RemoteParticipant
    ) -> None:
        if track.kind == rtc.TrackKind.KIND_AUDIO:
            recorder = asyncio.create_task(self._record(track), name="listener-rec")
            self._recorders[track.sid] = recorder
            self._tasks.append(recorder)

    def _on_track_gone(
        self, track: rtc.Track, pub: rtc.RemoteTrackPublication, participant: rtc.RemoteParticipant
    ) -> None:
        """Stop recording an unsubscribed track, as a client stops playing it. An agent that
        rejoins under the same identity (a takeover) was seen to leave the old track's
        stream yielding the new track's audio, chunk for chunk: recorded twice, it would
        count as heard twice."""
        recorder = self._recorders.pop(track.sid, None)
        if recorder is not None:
            recorder.cancel()

    def _on_transcription(self, reader: rtc.TextStreamReader, participant_identity: str) -> None:
        stream = TextStream(reader.info.stream_id, participant_identity, reader.info.attributes)
        self.transcriptions.append(stream)

        async def read() -> None:
            async for chunk in reader:
                stream.chunks.append((chunk, time.perf_counter()))
            stream.complete = True

        self._tasks.append(asyncio.create_task(read(), name="listener-transcription"))

    def segments(self, sender: str) -> dict[str, list[TextStream]]:
        """Complete transcription streams from a sender, by segment id, in arrival order."""
        found: dict[str, list[TextStream]] = {}
        for stream in self.transcriptions:
            if stream.sender == sender and stream.complete:
                found.setdefault(stream.attributes["lk.segment_id"], []).append(stream)
        return found

    async def _record(self, track: rtc.Track) -> None:
        stream = rtc.AudioStream(track, sample_rate=RATE, num_channels=1)
        self.subscribed.set()
        try:
            async for event in stream:
                chunk = np.frombuffer(event.frame.data, dtype=np.int16).copy()
                self.recording.chunks.append(chunk)
                self.recording.arrivals.append(time.perf_counter())
                self.recording.peaks.append(int(np.abs(chunk.astype(np.int32)).max(initial=0)))
                self.recording.tracks.append(track.sid)
        finally:
            await stream.aclose()

    async def _microphone(self) -> None:
        """Publish continuous audio: silence, with queued speech mixed in when asked."""
        pending = np.zeros(0, np.int16)
        while True:
            if not pending.size and not self._speech.empty():
                pending = self._speech.get_nowait()
                self.speech_onset_at = time.perf_counter() + self.source.queued_duration
            chunk = pending[:FRAME] if pending.size else np.zeros(FRAME, np.int16)
            pending = pending[FRAME:]
            if len(chunk) < FRAME:
                chunk = np.pad(chunk, (0, FRAME - len(chunk)))
            await self.source.capture_frame(rtc.AudioFrame(chunk.tobytes(), RATE, 1, FRAME))

    def talk(self, pcm: npt.NDArray[np.int16]) -> None:
        """Say this (48 kHz mono) into the room as soon as the current audio allows."""
        self._speech.put_nowait(pcm)

    async def say(self, pcm: npt.NDArray[np.int16]) -> float:
        """Say this; returns once it is under way, with the moment (perf_counter) its first
        sample leaves the microphone source."""
        before = self.speech_onset_at
        self.talk(pcm)
        assert await poll_until(lambda: self.speech_onset_at != before, timeout_seconds=10)
        assert self.speech_onset_at is not None
        return self.speech_onset_at

    @property
    def mic_track_sid(self) -> str:
        return next(iter(self.room.local_participant.track_publications))

    async def chat(self, text: str) -> None:
        await self.room.local_participant.send_text(text, topic="lk.chat")

    async def leave(self) -> None:
        await cancel_and_wait(*self._tasks)
        await self.room.disconnect()
        await self.source.aclose()
