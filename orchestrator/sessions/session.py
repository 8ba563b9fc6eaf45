"""One LiveKit session: the agent in a room, speaking utterances and handling barge-in.

The agent publishes one 48 kHz track and listens to every other participant. Utterances
are `SpeechHandle`s, spoken one at a time, each captioned in the room as it plays. On a
listener's speech onset the current handle is paused at once; the BargeInController then
turns the pause into a resume (acknowledgements, or a short sound then silence) or a cancel
(other words, or long speech). With a recognizer, each listener's speech is transcribed
(events and room transcriptions). Every step is an event (`events.EventLog`).

Times of user transcripts are on the session's clock: seconds since the session started,
at which the listener's audio arrived here.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import logging
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from livekit import rtc
from livekit.agents import vad as agents_vad

from fleet.aio import TaskSet
from orchestrator.metrics.recorder import FleetMetrics
from orchestrator.sessions.backchannel import ENGLISH_ACKNOWLEDGEMENTS, AcknowledgementRules
from orchestrator.sessions.bargein import (
    Action,
    AgentState,
    BargeInController,
    BargeInMeter,
    BargeInSettings,
    TurnWords,
    VadUpdate,
)
from orchestrator.sessions.captions import AgentCaptions
from orchestrator.sessions.events import EventKind, EventLog
from orchestrator.sessions.joining import REJOIN_TIMEOUT_SECONDS, join_room
from orchestrator.sessions.listening import Listener, track_frames
from orchestrator.sessions.playout import AgentSource
from orchestrator.sessions.recognizer import Recognizer
from orchestrator.sessions.speech_handle import OVER, SpeechHandle, UtteranceState
from orchestrator.sessions.tokens import agent_token
from orchestrator.sessions.transcriber import TranscriberOptions, Transcript
from orchestrator.sessions.transcriptions import RoomTranscriptions, UserSegment
from orchestrator.workers.channels import WorkerChannels
from orchestrator.workers.registry import WorkerRegistry
from orchestrator.workers.stream import StreamOptions, WorkerStream

log = logging.getLogger(__name__)

SAMPLE_RATE = 48000
CHAT_TOPIC = "lk.chat"
AGENT_IDENTITY_PREFIX = "voice-agent-"


class SessionState(enum.StrEnum):
    CONNECTING = "connecting"
    ACTIVE = "active"
    ENDED = "ended"
    FAILED = "failed"


@dataclass(frozen=True)
class LiveKitOptions:
    """Where and how the agent joins LiveKit."""

    url: str = "ws://127.0.0.1:7880"
    api_key: str = "devkey"
    api_secret: str = field(default="secret", repr=False)
    connect_timeout_seconds: float = 5.0
    reconnect_grace_seconds: float = 15.0
    """How long the rtc client may try to reconnect before the session fails."""


@dataclass(frozen=True)
class SessionOptions:
    """What a session needs of the settings."""

    livekit: LiveKitOptions = field(default_factory=LiveKitOptions)
    bargein: BargeInSettings = field(default_factory=BargeInSettings)
    stream: StreamOptions = field(default_factory=StreamOptions)
    listener_wait_seconds: float = 30.0
    """How long an utterance waits for someone to subscribe to the agent's audio."""
    playout_queue_ms: int = 100
    """Audio buffered inside LiveKit's source; the most that can play after a pause."""
    synthesis_lead_seconds: float = 3.0
    """The worker synthesizes at most this far ahead of the playout position; 0: no bound."""
    transcription: TranscriberOptions = field(default_factory=TranscriberOptions)
    acknowledgements: Sequence[str] = ENGLISH_ACKNOWLEDGEMENTS
    """Words and phrases that let a paused utterance resume (the recognizer's language)."""

    def __post_init__(self) -> None:
        if self.listener_wait_seconds <= 0:
            raise ValueError("listener_wait_seconds must be positive")
        if self.synthesis_lead_seconds < 0:
            raise ValueError("synthesis_lead_seconds must not be negative")
        if not 20 <= self.playout_queue_ms <= 1000:
            raise ValueError("playout_queue_ms must be within 20..1000")


class VoiceSession:
    """The agent side of one room. Create with `start()`; end with `aclose()`."""

    def __init__(
        self,
        options: SessionOptions,
        registry: WorkerRegistry,
        channels: WorkerChannels,
        vad: agents_vad.VAD,
        metrics: FleetMetrics,
        *,
        room_name: str,
        voice: str,
        session_id: str | None = None,
        events: EventLog | None = None,
        recognizer: Recognizer | None = None,
        recognizer_error: str | None = None,
    ) -> None:
        self.options = options
        self.id = session_id or uuid.uuid4().hex
        self.room_name = room_name
        self.voice = voice
        self.identity = AGENT_IDENTITY_PREFIX + self.id[:12]
        self.state = SessionState.CONNECTING
        self.created_at = time.time()
        self.ended_at: float | None = None
        self.error: str | None = None
        self.events = events or EventLog(self.id)
        self.utterances: dict[str, SpeechHandle] = {}
        self.controller = BargeInController(options.bargein, words=recognizer is not None)
        self.clock_origin = time.perf_counter()
        """perf_counter() at the session's second 0 (user transcript times count from it)."""
        self._registry = registry
        self._channels = channels
        self._vad = vad
        self._metrics = metrics
        self._meter = BargeInMeter(metrics)
        self._room = rtc.Room()
        self._source = AgentSource(SAMPLE_RATE, options.playout_queue_ms)
        self._publication: rtc.LocalTrackPublication | None = None
        self._queue: asyncio.Queue[SpeechHandle] = asyncio.Queue()
        self._current: SpeechHandle | None = None
        self._tasks = TaskSet(f"session-{self.id[:8]}")
        self._reconnect_deadline: asyncio.Task[None] | None = None
        self._recognizer = recognizer
        self._recognizer_error = recognizer_error
        self._rules = AcknowledgementRules(options.acknowledgements)
        self._transcriptions = RoomTranscriptions(self._room)
        self._bargein_owner: str | None = None  # whose speech paused the agent
        self._captions: AgentCaptions | None = None

    # -- lifecycle ----------------------------------------------------------------------

    async def start(self, *, takeover: bool = False) -> None:
        """Join the room and publish the agent's track. Raises rtc.ConnectError on failure;
        nothing is left running then. With takeover, the session goes on from a replica
        that stopped: it is not counted or announced as a new one, and its join waits at
        least REJOIN_TIMEOUT_SECONDS."""
        self._room.on("track_subscribed", self._on_track_subscribed)
        self._room.on("disconnected", self._on_disconnected)
        self._room.on("reconnecting", self._on_reconnecting)
        self._room.on("reconnected", self._on_reconnected)
        self._room.register_text_stream_handler(CHAT_TOPIC, self._on_chat)
        livekit = self.options.livekit
        token = agent_token(
            livekit.api_key, livekit.api_secret, room=self.room_name, identity=self.identity
        )
        timeout = livekit.connect_timeout_seconds
        if takeover:
            timeout = max(timeout, REJOIN_TIMEOUT_SECONDS)
        options = rtc.RoomOptions(auto_subscribe=True, dynacast=False)
        try:
            await join_room(self._room, livekit.url, token, options, timeout)
            track = rtc.LocalAudioTrack.create_audio_track("agent-voice", self._source.rtc)
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
        self._tasks.spawn(self._speak_forever(), "speaker")
        self._tasks.spawn(self._transcriptions.run(), "transcriptions")
        if takeover:
            self._metrics.session_taken_over()
        else:
            self._metrics.session_started()
            self.events.emit(EventKind.SESSION_STARTED, room=self.room_name)
        if self._recognizer_error is not None:
            self.events.emit(
                EventKind.ERROR,
                reason=f"speech recognition unavailable: {self._recognizer_error}; "
                "no transcripts, and barge-in decides by duration alone",
            )

    async def aclose(self, reason: str = "deleted") -> None:
        await self._end(SessionState.ENDED, EventKind.SESSION_ENDED, reason=reason)

    async def _fail(self, reason: str) -> None:
        self.error = reason
        await self._end(SessionState.FAILED, EventKind.ERROR, reason=reason)

    async def _end(self, state: SessionState, kind: EventKind, *, reason: str) -> None:
        if self.state in (SessionState.ENDED, SessionState.FAILED):
            return
        self.state = state
        self.ended_at = time.time()
        self._metrics.session_ended(self.ended_at - self.created_at, len(self.utterances))
        self.events.emit(kind, reason=reason)
        await self._teardown()
        self.events.close()

    async def _teardown(self) -> None:
        current = self._current
        await self._tasks.aclose()  # the speaker's cancellation winds up the current handle
        if current is not None:
            await current.aclose()
        with contextlib.suppress(ValueError):  # never registered: start() failed first
            self._room.unregister_text_stream_handler(CHAT_TOPIC)
        try:
            await self._room.disconnect()
            await self._source.aclose()
        except Exception:  # the room is being left either way; say why it did not go cleanly
            log.warning("leaving the room failed", extra={"session_id": self.id}, exc_info=True)

    # -- speaking -----------------------------------------------------------------------

    @property
    def current(self) -> SpeechHandle | None:
        """The utterance being spoken (or paused by a barge-in), if any."""
        return self._current

    @property
    def busy(self) -> bool:
        return self.state is SessionState.ACTIVE and (
            self._current is not None or not self._queue.empty()
        )

    def say(
        self,
        text: str,
        *,
        interruptible: bool = True,
        final: bool = True,
        speed: float = 1.0,
        verbatim: bool = False,
    ) -> SpeechHandle:
        """Queue an utterance; with final=False more text follows through append_text()."""
        handle = SpeechHandle(
            interruptible=interruptible, sample_rate=SAMPLE_RATE, speed=speed, verbatim=verbatim
        )
        handle.add_text(text, final)
        self.utterances[handle.id] = handle
        self._queue.put_nowait(handle)
        self.events.emit(EventKind.UTTERANCE_QUEUED, utterance_id=handle.id)
        return handle

    def append_text(self, utterance_id: str, text: str, final: bool) -> SpeechHandle:
        """More text for an open utterance; KeyError if unknown, UtteranceClosed if over."""
        handle = self.utterances[utterance_id]
        handle.add_text(text, final)
        return handle

    async def _speak_forever(self) -> None:
        while True:
            handle = await self._queue.get()
            if handle.state not in OVER:
                await self._speak(handle)

    async def _speak(self, handle: SpeechHandle) -> None:
        assert self._publication is not None
        try:
            # Audio sent before anyone subscribes is lost, and would skew "heard".
            await asyncio.wait_for(
                self._publication.wait_for_subscription(), self.options.listener_wait_seconds
            )
        except TimeoutError:
            handle.fail(self.events, "nobody is listening")
            return
        stream = WorkerStream(
            self._registry,
            self._channels,
            voice=self.voice,
            sample_rate=SAMPLE_RATE,
            speed=handle.speed,
            verbatim=handle.verbatim,
            utterance_id=handle.id,
            options=self.options.stream,
            max_lead_seconds=self.options.synthesis_lead_seconds,
        )
        self._current = handle
        self._captions = self._caption(handle)
        try:
            await handle.play(
                stream,
                self._source,
                self.events,
                self._metrics,
                on_speaking=lambda: self.controller.agent_started(handle.interruptible),
            )
        finally:
            if handle.state is UtteranceState.FINISHED:
                self._captions.finish()
            else:  # a cancel already ended it at the heard position; a failure ends it here
                self._captions.stop_at(handle.heard_samples)
            self._captions = None
            self.controller.agent_finished()
            self._bargein_owner = None
            self._current = None

    @property
    def track_sid(self) -> str:
        """The agent's audio track, once published."""
        return self._publication.sid if self._publication is not None else ""

    def _caption(self, handle: SpeechHandle) -> AgentCaptions:
        """The utterance's caption in the room, following its playout."""
        captions = AgentCaptions(
            handle.audio,
            lambda: handle.heard_samples,
            self._transcriptions.caption(f"SG_{handle.id}", self.track_sid),
        )
        self._tasks.spawn(captions.run(), "caption")
        return captions

    # -- barge-in (ListenerSink) -----------------------------------------------------------

    def user_audio_started(self, identity: str) -> None:
        self.events.emit(EventKind.USER_AUDIO_STARTED, participant=identity)

    def user_speech_started(self, identity: str, at: float, onset_arrival: float | None) -> None:
        action = self.controller.user_speech_started(at)
        if action is Action.PAUSE:
            self._bargein_owner = identity
        self._apply(action, onset_arrival)
        self.events.emit(EventKind.USER_SPEECH_STARTED, participant=identity)

    def user_speech_update(self, identity: str, reading: VadUpdate) -> None:
        # The pause is decided by the speech of whoever caused it, on their audio's clock.
        if identity == self._bargein_owner:
            self._apply(self.controller.update(reading))

    def user_speech_stopped(self, identity: str, at: float, speech_seconds: float) -> None:
        self.controller.user_speech_stopped(at)
        self.events.emit(
            EventKind.USER_SPEECH_STOPPED,
            participant=identity,
            speech_seconds=round(speech_seconds, 3),
        )

    def user_transcript(self, listener: Listener, transcript: Transcript) -> None:
        """A listener's transcript: an event, a transcription in the room, and words for a
        barge-in decision."""
        received = listener.received
        start = received.arrival_of(transcript.start)
        # The last sample's arrival (the end itself is the first sample not heard).
        end = received.arrival_of(max(transcript.start, transcript.end - 1 / received.sample_rate))
        self.events.emit(
            EventKind.USER_TRANSCRIPT,
            participant=listener.identity,
            segment_id=transcript.segment_id,
            text=transcript.text,
            final=transcript.final,
            **_seconds("start_seconds", None if start is None else start - self.clock_origin),
            **_seconds("end_seconds", None if end is None else end - self.clock_origin),
        )
        self._metrics.observe_transcript(
            transcript.final,
            transcript.compute_seconds,
            None if end is None or not transcript.final else time.perf_counter() - end,
        )
        self._transcriptions.publish(
            UserSegment(
                listener.identity,
                listener.track_sid,
                transcript.segment_id,
                transcript.text,
                transcript.final,
            )
        )
        if listener.identity == self._bargein_owner:
            heard = self._rules.hear(transcript.text)
            words = TurnWords(transcript.turn, transcript.covers, heard)
            self._apply(self.controller.transcript(words))

    def user_transcript_dropped(self, listener: Listener) -> None:
        self._metrics.count_partial_dropped()

    def _apply(self, action: Action, onset_arrival: float | None = None) -> None:
        """Carry out a barge-in decision on the utterance being spoken."""
        handle = self._current
        if action is not Action.PAUSE and self.controller.state is not AgentState.PAUSED:
            self._bargein_owner = None  # decided (or nothing to decide): anyone may pause next
        if action is Action.NONE or handle is None:
            return
        if action is Action.PAUSE:
            heard = handle.pause()
            onset_to_stop = self._meter.stopped(onset_arrival)
            self.events.emit(
                EventKind.INTERRUPTED,
                utterance_id=handle.id,
                **handle.heard(heard),
                **_seconds("onset_to_stop_seconds", onset_to_stop),
            )
        elif action is Action.RESUME:
            reason = self.controller.reason
            decided = self._meter.decided(action, reason)
            handle.resume()
            self.events.emit(
                EventKind.RESUMED,
                utterance_id=handle.id,
                reason=reason,
                **_seconds("pause_seconds", decided),
            )
        elif action is Action.CANCEL:
            reason = self.controller.reason
            decided = self._meter.decided(action, reason)
            heard = handle.cancel()
            if self._captions is not None:
                self._captions.stop_at(heard)
            self.events.emit(
                EventKind.CANCELLED,
                utterance_id=handle.id,
                reason=reason,
                **handle.heard(heard),
                **_seconds("pause_seconds", decided),
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
            listener = Listener(
                self._vad,
                participant.identity,
                self,
                track_sid=track.sid,
                recognize=self._recognizer.recognize if self._recognizer is not None else None,
                transcription=self.options.transcription,
            )
            self._tasks.spawn(listener.run(track_frames(track)), f"listen-{participant.identity}")

    def _on_disconnected(self, reason: Any) -> None:
        if self.state is SessionState.ACTIVE:
            self._tasks.spawn(self._fail(f"disconnected from LiveKit: {reason}"), "fail")

    def _on_reconnecting(self) -> None:
        # The rtc client's own retries can outlast any useful wait (and under load its final
        # "disconnected" has been seen never to arrive), so the session bounds the outage itself.
        if self.state is not SessionState.ACTIVE or self._reconnect_deadline is not None:
            return
        self.events.emit(EventKind.LIVEKIT_RECONNECTING)
        self._reconnect_deadline = self._tasks.spawn(self._fail_unless_reconnected(), "reconnect")

    def _on_reconnected(self) -> None:
        deadline, self._reconnect_deadline = self._reconnect_deadline, None
        if deadline is not None:
            deadline.cancel()
            self.events.emit(EventKind.LIVEKIT_RECONNECTED)

    async def _fail_unless_reconnected(self) -> None:
        grace = self.options.livekit.reconnect_grace_seconds
        await asyncio.sleep(grace)
        self._reconnect_deadline = None
        await self._fail(f"LiveKit connection lost for more than {grace:g}s")

    def _on_chat(self, reader: rtc.TextStreamReader, participant_identity: str) -> None:
        async def read() -> None:
            text = await reader.read_all()
            if text.strip() and self.state is SessionState.ACTIVE:
                handle = self.say(text)
                self.events.emit(
                    EventKind.CHAT_RECEIVED,
                    participant=participant_identity,
                    utterance_id=handle.id,
                )

        self._tasks.spawn(read(), "chat")


def _seconds(name: str, value: float | None) -> dict[str, float]:
    return {} if value is None else {name: round(value, 4)}
