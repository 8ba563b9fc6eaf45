"""A listener built on the livekit rtc SDK: joins with the token POST /sessions returned,
records the agent's audio with arrival times, and talks back into the room."""

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


@dataclass
class Recording:
    chunks: list[npt.NDArray[np.int16]] = field(default_factory=list)
    arrivals: list[float] = field(default_factory=list)  # perf_counter per chunk

    def pcm(self) -> npt.NDArray[np.int16]:
        return np.concatenate(self.chunks) if self.chunks else np.zeros(0, np.int16)

    async def wait_for(self, samples: int, within: float) -> None:
        """Until at least `samples` have been received (the track plays on in silence)."""
        received = await poll_until(lambda: self.samples() >= samples, timeout_seconds=within)
        assert received, f"only {self.samples()} of {samples} samples arrived in {within} s"

    def samples(self) -> int:
        return sum(len(chunk) for chunk in self.chunks)

    def sample_at(self, moment: float) -> int:
        """Samples received before a perf_counter moment."""
        total = 0
        for chunk, arrived in zip(self.chunks, self.arrivals, strict=True):
            if arrived > moment:
                break
            total += len(chunk)
        return total


@dataclass
class Caption:
    """One `lk.transcription` segment as it arrived: each delta with its perf_counter."""

    attributes: dict[str, str]
    deltas: list[tuple[float, str]] = field(default_factory=list)
    closed: asyncio.Event = field(default_factory=asyncio.Event)

    @property
    def text(self) -> str:
        return "".join(delta for _, delta in self.deltas)


class Listener:
    """The user side of a session."""

    def __init__(self) -> None:
        self.room = rtc.Room()
        self.recording = Recording()
        self.source = rtc.AudioSource(RATE, 1, queue_size_ms=200)
        self._tasks: list[asyncio.Task[None]] = []
        self._speech: asyncio.Queue[npt.NDArray[np.int16]] = asyncio.Queue()
        self.subscribed = asyncio.Event()
        self.captions: list[Caption] = []  # the agent's, in the order they started
        # perf_counter at which the last talk() starts leaving the microphone source: the
        # moment it is pushed plus what is queued ahead of it in the source.
        self.speech_onset_at: float | None = None

    async def join(self, url: str, token: str) -> None:
        self.room.on("track_subscribed", self._on_track)
        self.room.register_text_stream_handler("lk.transcription", self._on_caption)
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
            self._tasks.append(asyncio.create_task(self._record(track), name="listener-rec"))

    def _on_caption(self, reader: rtc.TextStreamReader, participant_identity: str) -> None:
        caption = Caption(dict(reader.info.attributes))
        self.captions.append(caption)
        self._tasks.append(asyncio.create_task(self._read_caption(reader, caption)))

    async def _read_caption(self, reader: rtc.TextStreamReader, caption: Caption) -> None:
        async for delta in reader:
            caption.deltas.append((time.perf_counter(), delta))
        caption.closed.set()

    async def _record(self, track: rtc.Track) -> None:
        stream = rtc.AudioStream(track, sample_rate=RATE, num_channels=1)
        self.subscribed.set()
        try:
            async for event in stream:
                self.recording.chunks.append(np.frombuffer(event.frame.data, dtype=np.int16).copy())
                self.recording.arrivals.append(time.perf_counter())
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

    async def chat(self, text: str) -> None:
        await self.room.local_participant.send_text(text, topic="lk.chat")

    async def leave(self) -> None:
        await cancel_and_wait(*self._tasks)
        await self.room.disconnect()
        await self.source.aclose()
