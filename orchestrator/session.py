"""One LiveKit session: the agent in a room, speaking utterances and handling barge-in.

The agent publishes one 48 kHz track and runs Silero VAD on the listener's audio. On speech
onset it pauses at once (Playout drops every queued frame, the worker stream is paused);
the BargeInController then turns the pause into a resume (a short sound, then silence) or a
cancel (real speech). Every step is an event, served to clients as server-sent events.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import itertools
import logging
import time
import uuid
from collections.abc import AsyncIterator, Awaitable
from dataclasses import dataclass, field
from typing import Any

from livekit import rtc
from livekit.agents import vad as agents_vad

from orchestrator.bargein import Action, BargeInController, BargeInSettings, TurnSpeech, VadUpdate
from orchestrator.fleet_metrics import FleetMetrics
from orchestrator.livekit_tokens import agent_token
from orchestrator.playout import Playout
from orchestrator.registry import WorkerRegistry
from orchestrator.settings import OrchestratorSettings
from orchestrator.tts_stream import TTSStream, WorkerStreamError
from orchestrator.utterance_audio import UtteranceAudio
from orchestrator.worker_channels import WorkerChannels

log = logging.getLogger(__name__)

SAMPLE_RATE = 48000
VAD_RATE = 16000
CHAT_TOPIC = "lk.chat"
AGENT_IDENTITY_PREFIX = "voice-agent-"


class SessionState(enum.StrEnum):
    CONNECTING = "connecting"
    ACTIVE = "active"
    ENDED = "ended"
    FAILED = "failed"


class UtteranceClosed(Exception):
    """Text was sent to an utterance that is already complete or over."""


@dataclass
class Utterance:
    id: str
    interruptible: bool
    text: str = ""
    final: bool = False
    state: str = "queued"  # queued, speaking, paused, finished, cancelled, failed
    _chunks: asyncio.Queue[str | None] = field(default_factory=asyncio.Queue)

    def add_text(self, text: str, final: bool) -> None:
        if self.final:
            raise UtteranceClosed(f"utterance {self.id} already has all its text")
        if text:
            self.text += text
            self._chunks.put_nowait(text)
        if final:
            self.final = True
            self._chunks.put_nowait(None)


@dataclass(frozen=True)
class SessionEvent:
    seq: int
    type: str
    at: float
    data: dict[str, Any]

    def as_dict(self) -> dict[str, Any]:
        return {"seq": self.seq, "type": self.type, "at": self.at, **self.data}


class VoiceSession:
    """The agent side of one room. Create with `start()`; end with `aclose()`."""

    def __init__(
        self,
        settings: OrchestratorSettings,
        registry: WorkerRegistry,
        channels: WorkerChannels,
        vad: agents_vad.VAD,
        metrics: FleetMetrics,
        *,
        room_name: str,
        voice: str,
        session_id: str | None = None,
    ) -> None:
        self.settings = settings
        self.id = session_id or uuid.uuid4().hex
        self.room_name = room_name
        self.voice = voice
        self.identity = AGENT_IDENTITY_PREFIX + self.id[:12]
        self.state = SessionState.CONNECTING
        self.created_at = time.time()
        self.ended_at: float | None = None
        self.error: str | None = None
        self._registry = registry
        self._channels = channels
        self._vad = vad
        self._metrics = metrics
        # The barge-in being decided: (onset -> silence, decision -> last frame) in seconds.
        self._bargein: tuple[float, float] | None = None
        self._room = rtc.Room()
        self._source = rtc.AudioSource(SAMPLE_RATE, 1, queue_size_ms=settings.playout_queue_ms)
        self._playout = Playout(self._source)
        self._publication: rtc.LocalTrackPublication | None = None
        self.controller = BargeInController(
            BargeInSettings(
                settings.bargein_min_interruption_seconds,
                settings.bargein_false_interruption_silence_seconds,
            )
        )
        self._queue: asyncio.Queue[Utterance] = asyncio.Queue()
        self.utterances: dict[str, Utterance] = {}
        self._current: Utterance | None = None
        self._stream: TTSStream | None = None
        self._audio: UtteranceAudio | None = None
        self._tasks: set[asyncio.Task[Any]] = set()
        self._events: list[SessionEvent] = []
        self._seq = itertools.count()
        self._listeners: set[asyncio.Queue[SessionEvent | None]] = set()
        self._reconnect_deadline: asyncio.Task[None] | None = None
        # perf_counter of each pause decision and how long after it the last frame went out.
        self.pause_decided_at: list[float] = []
        self.decision_to_last_frame: list[float] = []

    # -- lifecycle ----------------------------------------------------------------------

    async def start(self) -> None:
        """Join the room and publish the agent's track. Raises rtc.ConnectError on failure;
        nothing is left running then."""
        self._room.on("track_subscribed", self._on_track_subscribed)
        self._room.on("disconnected", self._on_disconnected)
        self._room.on("reconnecting", self._on_reconnecting)
        self._room.on("reconnected", self._on_reconnected)
        self._room.register_text_stream_handler(CHAT_TOPIC, self._on_chat)
        token = agent_token(
            self.settings.livekit_api_key,
            self.settings.livekit_api_secret.get_secret_value(),
            room=self.room_name,
            identity=self.identity,
        )
        try:
            await asyncio.wait_for(
                self._room.connect(
                    self.settings.livekit_url,
                    token,
                    rtc.RoomOptions(auto_subscribe=True, dynacast=False),
                ),
                self.settings.livekit_connect_timeout_seconds,
            )
            track = rtc.LocalAudioTrack.create_audio_track("agent-voice", self._source)
            self._publication = await self._room.local_participant.publish_track(
                track,
                # DTX stays off (stated, not left to a default): synthesized speech has short
                # pauses that DTX would gate, clipping word onsets.
                rtc.TrackPublishOptions(source=rtc.TrackSource.SOURCE_MICROPHONE, dtx=False),
            )
        except BaseException:
            await self._teardown()
            raise
        self.state = SessionState.ACTIVE
        self._metrics.session_started()
        self._spawn(self._speak_forever(), "speaker")
        self._emit("session_started", room=self.room_name)

    async def aclose(self, reason: str = "deleted") -> None:
        if self.state in (SessionState.ENDED, SessionState.FAILED):
            return
        self.state = SessionState.ENDED
        self._ended()
        self._emit("session_ended", reason=reason)
        await self._teardown()
        self._close_listeners()

    async def _fail(self, reason: str) -> None:
        if self.state in (SessionState.ENDED, SessionState.FAILED):
            return
        self.state = SessionState.FAILED
        self.error = reason
        self._ended()
        self._emit("error", reason=reason)
        await self._teardown()
        self._close_listeners()

    def _ended(self) -> None:
        self.ended_at = time.time()
        self._metrics.session_ended(self.ended_at - self.created_at, len(self.utterances))

    async def _teardown(self) -> None:
        await self._playout.aclose()
        if self._stream is not None:
            await self._stream.aclose()
        tasks = [t for t in self._tasks if t is not asyncio.current_task()]
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        with contextlib.suppress(Exception):
            self._room.unregister_text_stream_handler(CHAT_TOPIC)
        with contextlib.suppress(Exception):
            await self._room.disconnect()
        with contextlib.suppress(Exception):
            await self._source.aclose()

    # -- speaking -----------------------------------------------------------------------

    @property
    def busy(self) -> bool:
        return self.state is SessionState.ACTIVE and (
            self._current is not None or not self._queue.empty()
        )

    def say(self, text: str, *, interruptible: bool = True, final: bool = True) -> Utterance:
        """Queue an utterance; with final=False more text follows through append_text()."""
        utterance = Utterance(id=uuid.uuid4().hex, interruptible=interruptible)
        utterance.add_text(text, final)
        self.utterances[utterance.id] = utterance
        self._queue.put_nowait(utterance)
        self._emit("utterance_queued", utterance_id=utterance.id)
        return utterance

    def append_text(self, utterance_id: str, text: str, final: bool) -> Utterance:
        utterance = self.utterances[utterance_id]
        if utterance.state in ("finished", "cancelled", "failed"):
            raise UtteranceClosed(f"utterance {utterance_id} is {utterance.state}")
        utterance.add_text(text, final)
        return utterance

    async def _speak_forever(self) -> None:
        while True:
            utterance = await self._queue.get()
            if utterance.state == "queued":
                await self._speak(utterance)

    async def _speak(self, utterance: Utterance) -> None:
        assert self._publication is not None
        try:
            # Audio sent before anyone subscribes is lost, and would skew "heard".
            await asyncio.wait_for(
                self._publication.wait_for_subscription(), self.settings.listener_wait_seconds
            )
        except TimeoutError:
            utterance.state = "failed"
            self._emit("error", utterance_id=utterance.id, reason="nobody is listening")
            return
        stream = TTSStream(
            self._registry,
            self._channels,
            voice=self.voice,
            sample_rate=SAMPLE_RATE,
            utterance_id=utterance.id,
            first_audio_timeout_seconds=self.settings.first_audio_timeout_seconds,
            max_attempts=self.settings.max_attempts,
        )
        audio = UtteranceAudio(SAMPLE_RATE)
        self._current, self._stream, self._audio = utterance, stream, audio
        tasks: list[asyncio.Task[None]] = []
        started = time.perf_counter()
        try:
            await stream.start()
            tasks.append(self._spawn(self._send_text(utterance, stream, audio), "text"))
            receive = self._receive_audio(utterance, stream, audio, started)
            tasks.append(self._spawn(receive, "audio"))
            utterance.state = "speaking"
            self.controller.agent_started(utterance.interruptible)
            self._playout.start(audio)
            self._emit("speech_started", utterance_id=utterance.id)
            await self._playout.wait_finished()
            if utterance.state == "speaking":
                utterance.state = "finished"
                self._emit(
                    "finished",
                    utterance_id=utterance.id,
                    position_seconds=round(audio.samples / SAMPLE_RATE, 3),
                )
        except Exception as exc:
            utterance.state = "failed"
            self._metrics.count_error("session_error")
            self._emit("error", utterance_id=utterance.id, reason=str(exc))
        finally:
            self.controller.agent_finished()
            for task in tasks:
                task.cancel()
            for task in tasks:
                with contextlib.suppress(asyncio.CancelledError):
                    await task
            await stream.aclose()
            self._current = self._stream = self._audio = None

    async def _send_text(
        self, utterance: Utterance, stream: TTSStream, audio: UtteranceAudio
    ) -> None:
        while (chunk := await utterance._chunks.get()) is not None:
            audio.text += chunk
            await stream.send_text(chunk)
        await stream.end_input()

    async def _receive_audio(
        self, utterance: Utterance, stream: TTSStream, audio: UtteranceAudio, started: float
    ) -> None:
        try:
            while (frame := await stream.next_frame()) is not None:
                if not audio.samples:
                    self._metrics.observe_first_audio(time.perf_counter() - started, "session")
                audio.append(frame)
        except WorkerStreamError as exc:
            if utterance.state in ("speaking", "paused"):
                self._emit("error", utterance_id=utterance.id, reason=str(exc))
        finally:
            audio.finish()

    # -- barge-in -----------------------------------------------------------------------

    def _apply(self, action: Action, onset_lag: float = 0.0) -> None:
        """Carry out a barge-in decision. onset_lag is the speech the VAD had already heard
        when it reported the onset: the part of onset -> silence before the decision."""
        utterance, audio, stream = self._current, self._audio, self._stream
        if action is Action.NONE or utterance is None or audio is None or stream is None:
            return
        decided = time.perf_counter()
        if action is Action.PAUSE:
            heard = self._playout.pause()
            last_frame = self._record_last_frame(decided)
            self._bargein = (onset_lag + time.perf_counter() - decided, last_frame)
            utterance.state = "paused"
            self._spawn(stream.pause(), "worker-pause")
            self._emit_heard("interrupted", utterance.id, audio, heard)
        elif action is Action.RESUME:
            utterance.state = "speaking"
            if self._bargein is not None:
                self._metrics.observe_bargein(self._bargein[0], None)
                self._metrics.count_false_interruption()
                self._bargein = None
            self._playout.resume()
            self._spawn(stream.resume(), "worker-resume")
            self._emit("resumed", utterance_id=utterance.id)
        elif action is Action.CANCEL:
            utterance.state = "cancelled"
            if self._bargein is not None:
                self._metrics.observe_bargein(*self._bargein)
                self._bargein = None
            heard = self._playout.stop()
            self._spawn(stream.cancel(), "worker-cancel")
            self._emit_heard("cancelled", utterance.id, audio, heard)

    def _record_last_frame(self, decided: float) -> float:
        """Decision -> last frame handed to LiveKit (zero when none followed the decision)."""
        last = self._playout.last_frame_at
        seconds = max(0.0, (last or decided) - decided)
        self.pause_decided_at.append(decided)
        self.decision_to_last_frame.append(seconds)
        return seconds

    def _emit_heard(self, kind: str, utterance_id: str, audio: UtteranceAudio, heard: int) -> None:
        self._emit(
            kind,
            utterance_id=utterance_id,
            position_seconds=round(heard / SAMPLE_RATE, 4),
            text_heard=audio.text_heard(heard),
        )

    async def _listen(self, track: rtc.Track, participant: rtc.RemoteParticipant) -> None:
        audio = rtc.AudioStream(track, sample_rate=VAD_RATE, num_channels=1)
        vad_stream = self._vad.stream()
        decisions = self._spawn(self._decide(vad_stream, participant.identity), "vad-decide")
        try:
            async for event in audio:
                vad_stream.push_frame(event.frame)
        finally:
            decisions.cancel()
            await vad_stream.aclose()
            await audio.aclose()

    async def _decide(self, vad_stream: agents_vad.VADStream, identity: str) -> None:
        turn = TurnSpeech()
        async for event in vad_stream:
            if event.type == agents_vad.VADEventType.START_OF_SPEECH:
                turn.turn_started()
                action = self.controller.user_speech_started(event.timestamp)
                self._apply(action, onset_lag=event.speech_duration)
                self._emit("user_speech_started", participant=identity)
            elif event.type == agents_vad.VADEventType.INFERENCE_DONE:
                silence = event.raw_accumulated_silence
                voiced = turn.update(event.raw_accumulated_speech)
                speech = voiced if event.speaking else 0.0
                self._apply(self.controller.update(VadUpdate(event.timestamp, speech, silence)))
            elif event.type == agents_vad.VADEventType.END_OF_SPEECH:
                self.controller.user_speech_stopped(event.timestamp)
                self._emit(
                    "user_speech_stopped",
                    participant=identity,
                    speech_seconds=round(event.speech_duration, 3),
                )

    # -- room callbacks (sync: they spawn tasks) ----------------------------------------

    def _on_track_subscribed(
        self,
        track: rtc.Track,
        publication: rtc.RemoteTrackPublication,
        participant: rtc.RemoteParticipant,
    ) -> None:
        if track.kind == rtc.TrackKind.KIND_AUDIO and not participant.identity.startswith(
            AGENT_IDENTITY_PREFIX
        ):
            self._spawn(self._listen(track, participant), f"listen-{participant.identity}")

    def _on_disconnected(self, reason: Any) -> None:
        if self.state is SessionState.ACTIVE:
            self._spawn(self._fail(f"disconnected from LiveKit: {reason}"), "fail")

    def _on_reconnecting(self) -> None:
        # The rtc client's own retries can outlast any useful wait (and under load its final
        # "disconnected" has been seen never to arrive), so the session bounds the outage itself.
        if self.state is not SessionState.ACTIVE or self._reconnect_deadline is not None:
            return
        self._emit("livekit_reconnecting")
        self._reconnect_deadline = self._spawn(self._fail_unless_reconnected(), "reconnect")

    def _on_reconnected(self) -> None:
        if self._reconnect_deadline is not None:
            self._reconnect_deadline.cancel()
            self._reconnect_deadline = None
            self._emit("livekit_reconnected")

    async def _fail_unless_reconnected(self) -> None:
        grace = self.settings.livekit_reconnect_grace_seconds
        await asyncio.sleep(grace)
        self._reconnect_deadline = None
        await self._fail(f"LiveKit connection lost for more than {grace:g}s")

    def _on_chat(self, reader: rtc.TextStreamReader, participant_identity: str) -> None:
        async def read() -> None:
            text = await reader.read_all()
            if text.strip() and self.state is SessionState.ACTIVE:
                utterance = self.say(text)
                self._emit(
                    "chat_received", participant=participant_identity, utterance_id=utterance.id
                )

        self._spawn(read(), "chat")

    # -- events -------------------------------------------------------------------------

    def _emit(self, kind: str, **data: Any) -> None:
        event = SessionEvent(next(self._seq), kind, time.time(), data)
        self._events.append(event)
        for listener in self._listeners:
            listener.put_nowait(event)
        log.info("session event", extra={"session_id": self.id, "event": kind})

    async def events(self, after: int = -1) -> AsyncIterator[SessionEvent]:
        """Past events (after seq `after`), then live ones until the session ends."""
        queue: asyncio.Queue[SessionEvent | None] = asyncio.Queue()
        for event in self._events:
            if event.seq > after:
                queue.put_nowait(event)
        if self.state in (SessionState.ENDED, SessionState.FAILED):
            queue.put_nowait(None)
        else:
            self._listeners.add(queue)
        try:
            while (item := await queue.get()) is not None:
                yield item
        finally:
            self._listeners.discard(queue)

    def _close_listeners(self) -> None:
        for listener in self._listeners:
            listener.put_nowait(None)

    def _spawn(self, coro: Awaitable[Any], name: str) -> asyncio.Task[Any]:
        task = asyncio.ensure_future(coro)
        task.set_name(f"session-{self.id[:8]}-{name}")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task
