"""Sessions across replicas: this replica's own sessions, which replica owns every other
one (records in the store), forwarding of calls to the owner, and marking sessions failed
when their replica's heartbeat expires.

It raises `orchestrator.errors` service errors; the routes turn them into HTTP answers.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
import uuid
from dataclasses import asdict, dataclass, field, replace
from typing import Any

import aiohttp
import httpx
from livekit import api, rtc

# Silero must be imported on the main thread (it registers a plugin): keep it at the top.
from livekit.plugins import silero

from fleet import aio
from fleet.aio import TaskSet
from fleet.store import Store, StoreUnavailable
from orchestrator import errors
from orchestrator.metrics.recorder import FleetMetrics
from orchestrator.sessions.recognizer import Recognizer, RecognizerOptions, RecognizerUnavailable
from orchestrator.sessions.session import SessionOptions, SessionState, VoiceSession
from orchestrator.sessions.speech_handle import SpeechHandle, UtteranceClosed
from orchestrator.sessions.tokens import user_token
from orchestrator.workers.channels import WorkerChannels
from orchestrator.workers.registry import WorkerRegistry

log = logging.getLogger(__name__)

SESSION_KIND = "session"
REPLICA_KIND = "replica"
# Ended sessions stay visible for a while so late calls get 409 rather than 404.
ENDED_RECORD_TTL_SECONDS = 3600.0
FORWARD_TIMEOUT_SECONDS = 10.0
DELETE_ROOM_TIMEOUT_SECONDS = 3.0
GONE = (SessionState.ENDED, SessionState.FAILED)


@dataclass(frozen=True)
class VadOptions:
    activation_threshold: float = 0.5
    min_speech_seconds: float = 0.032


@dataclass(frozen=True)
class ManagerOptions:
    """What the session manager needs of the settings."""

    instance_id: str
    url: str
    """This replica's public API, for forwarded calls."""
    session: SessionOptions = field(default_factory=SessionOptions)
    vad: VadOptions = field(default_factory=VadOptions)
    recognizer: RecognizerOptions = field(default_factory=RecognizerOptions)
    max_sessions: int = 100
    max_text_chars: int = 5000
    replica_ttl_seconds: float = 5.0
    user_token_ttl_seconds: int = 600
    livekit_public_url: str | None = None
    """LiveKit URL handed to clients; None: the agent's own URL."""


@dataclass(frozen=True)
class SessionRecord:
    session_id: str
    room: str
    voice: str
    owner: str
    owner_url: str
    state: str
    created_at: float
    error: str | None = None

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, raw: str) -> SessionRecord:
        return cls(**json.loads(raw))


@dataclass(frozen=True)
class CreatedSession:
    """A new session and what its listener needs to join the room."""

    session_id: str
    room: str
    voice: str
    url: str
    token: str
    identity: str
    expires_at: float


class SessionManager:
    """Hosts this replica's sessions and finds everyone else's."""

    def __init__(
        self,
        options: ManagerOptions,
        store: Store,
        registry: WorkerRegistry,
        channels: WorkerChannels,
        metrics: FleetMetrics,
    ) -> None:
        self.options = options
        self.metrics = metrics
        self.store = store
        self.registry = registry
        self.channels = channels
        self.instance_id = options.instance_id
        self.url = options.url
        self.local: dict[str, VoiceSession] = {}
        self._vad: Any = None
        self.recognizer: Recognizer | None = None
        self.recognizer_error: str | None = None
        """Why sessions have no recognizer, when loading it failed (each says so)."""
        self._tasks = TaskSet("session-manager")
        self._http: httpx.AsyncClient | None = None
        self.draining = False

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        # Loading the ONNX model blocks for ~50 ms: once per process, off the loop.
        self._vad = await loop.run_in_executor(None, self._load_vad)
        if self.options.recognizer.enabled:
            try:
                # Loading a Whisper model blocks for a second or so: once, off the loop.
                self.recognizer = await loop.run_in_executor(
                    None, Recognizer.load, self.options.recognizer
                )
            except RecognizerUnavailable as exc:
                self.recognizer_error = str(exc)
                log.error("speech recognition unavailable", extra={"reason": str(exc)})
        self._http = httpx.AsyncClient(timeout=FORWARD_TIMEOUT_SECONDS)
        await self._heartbeat()
        interval = self.options.replica_ttl_seconds / 3
        self._tasks.spawn(aio.every(interval, self.maintain, what="session maintenance"), "maint")

    def _load_vad(self) -> Any:
        return silero.VAD.load(
            min_speech_duration=self.options.vad.min_speech_seconds,
            activation_threshold=self.options.vad.activation_threshold,
        )

    async def aclose(self) -> None:
        await self._tasks.aclose()
        for session in list(self.local.values()):
            await self.end(session.id, reason="orchestrator stopping")
        with contextlib.suppress(StoreUnavailable):
            await self.store.remove_record(REPLICA_KIND, self.instance_id)
        if self._http is not None:
            await self._http.aclose()
        if self.recognizer is not None:
            self.recognizer.close()

    # -- create / read / end ------------------------------------------------------------

    async def create(self, room: str | None, voice: str | None) -> CreatedSession:
        """Join a room as the agent (a new room when none is named)."""
        if self.draining:
            raise errors.draining("this replica is shutting down")
        voice = voice or self.registry.default_voice()
        if voice is None:
            raise errors.no_worker()
        voices = self.registry.voices()
        if voice not in voices:
            raise errors.voice_not_found(voice, sorted(voices))
        active = sum(s.state is SessionState.ACTIVE for s in self.local.values())
        if active >= self.options.max_sessions:
            raise errors.at_capacity(f"this replica already hosts {active} sessions")
        session_id = uuid.uuid4().hex
        session = VoiceSession(
            self.options.session,
            self.registry,
            self.channels,
            self._vad,
            self.metrics,
            room_name=room or f"voice-{session_id[:12]}",
            voice=voice,
            session_id=session_id,
            recognizer=self.recognizer,
            recognizer_error=self.recognizer_error,
        )
        livekit = self.options.session.livekit
        try:
            await session.start()  # on failure, nothing is left behind
        except (rtc.ConnectError, TimeoutError, OSError) as exc:
            raise errors.livekit_unreachable(
                f"cannot join LiveKit at {livekit.url}: {type(exc).__name__}: {exc}"
            ) from None
        self.local[session.id] = session
        await self._save(session)
        identity = f"user-{session.id[:12]}"
        ttl = self.options.user_token_ttl_seconds
        token = user_token(
            livekit.api_key,
            livekit.api_secret,
            room=session.room_name,
            identity=identity,
            ttl_seconds=ttl,
        )
        return CreatedSession(
            session_id=session.id,
            room=session.room_name,
            voice=session.voice,
            url=self.options.livekit_public_url or livekit.url,
            token=token,
            identity=identity,
            expires_at=time.time() + ttl,
        )

    async def record(self, session_id: str) -> SessionRecord:
        session = self.local.get(session_id)
        if session is not None:
            return self._record_of(session)
        raw = await self.store.get_record(SESSION_KIND, session_id)
        if raw is None:
            raise errors.session_not_found(session_id)
        return SessionRecord.from_json(raw)

    async def end(self, session_id: str, reason: str = "deleted") -> SessionRecord:
        session = self.local.get(session_id)
        if session is None:
            record = await self.record(session_id)
            if record.state in GONE:
                return record
            return await self._forward_delete(record)
        await session.aclose(reason)
        await self._delete_room(session.room_name)
        self.local.pop(session_id, None)
        await self._save(session, ttl=ENDED_RECORD_TTL_SECONDS)
        return self._record_of(session)

    def busy(self) -> bool:
        """Some session here is speaking or has utterances waiting."""
        return any(session.busy for session in self.local.values())

    def owned(self, session_id: str) -> VoiceSession | None:
        return self.local.get(session_id)

    async def check_open(self, session_id: str) -> SessionRecord:
        """The record of a session that can still speak; session_ended otherwise."""
        record = await self.record(session_id)
        if record.state in GONE:
            detail = f": {record.error}" if record.error else ""
            raise errors.session_ended(f"session {session_id} has {record.state}{detail}")
        return record

    # -- speaking (on the owner) --------------------------------------------------------

    def say(
        self, session: VoiceSession, text: str, *, interruptible: bool, final: bool
    ) -> SpeechHandle:
        if self.draining:
            raise errors.draining("this replica is shutting down; no new utterances")
        self._check_length(len(text))
        return session.say(text, interruptible=interruptible, final=final)

    def append_text(
        self, session: VoiceSession, utterance_id: str, text: str, final: bool
    ) -> SpeechHandle:
        handle = session.utterances.get(utterance_id)
        if handle is None:
            raise errors.utterance_not_found(utterance_id)
        self._check_length(len(handle.text) + len(text))
        try:
            return session.append_text(utterance_id, text, final)
        except UtteranceClosed as exc:
            raise errors.utterance_closed(str(exc)) from None

    def _check_length(self, length: int) -> None:
        if length > self.options.max_text_chars:
            raise errors.text_too_long(length, self.options.max_text_chars)

    # -- forwarding to the owner --------------------------------------------------------

    async def forward(
        self,
        record: SessionRecord,
        method: str,
        path: str,
        body: dict[str, Any] | None,
        headers: dict[str, str],
    ) -> httpx.Response:
        """Send a session call to the replica that owns the session."""
        if not await self._owner_alive(record):
            await self._mark_failed(record, "its orchestrator replica stopped heartbeating")
            raise errors.session_ended(
                f"session {record.session_id} has failed: its replica is gone"
            )
        assert self._http is not None
        try:
            return await self._http.request(
                method, record.owner_url + path, json=body, headers=headers
            )
        except httpx.HTTPError as exc:
            raise errors.owner_unreachable(
                f"owner replica unreachable: {type(exc).__name__}"
            ) from exc

    async def _forward_delete(self, record: SessionRecord) -> SessionRecord:
        response = await self.forward(record, "DELETE", f"/sessions/{record.session_id}", None, {})
        if response.status_code >= 400:
            raise errors.owner_unreachable(f"owner replica answered {response.status_code}")
        return replace(record, state=SessionState.ENDED)

    async def _owner_alive(self, record: SessionRecord) -> bool:
        return await self.store.get_record(REPLICA_KIND, record.owner) is not None

    # -- maintenance --------------------------------------------------------------------

    async def maintain(self) -> None:
        """One round of upkeep (run every third of the replica TTL): heartbeat, records of
        sessions that ended on their own, sessions of replicas that stopped heartbeating."""
        try:
            await self._heartbeat()
            await self._sync_local()
            await self._reap_orphans()
        except StoreUnavailable as exc:
            log.warning("session store unavailable", extra={"reason": str(exc)})

    async def _heartbeat(self) -> None:
        value = json.dumps({"url": self.url, "at": time.time()})
        await self.store.put_record(
            REPLICA_KIND, self.instance_id, value, self.options.replica_ttl_seconds
        )

    async def _sync_local(self) -> None:
        """Sessions that failed on their own (room lost) get their record updated."""
        for session in list(self.local.values()):
            if session.state in GONE:
                self.local.pop(session.id, None)
                await self._delete_room(session.room_name)
                await self._save(session, ttl=ENDED_RECORD_TTL_SECONDS)

    async def _reap_orphans(self) -> None:
        replicas = set(await self.store.list_records(REPLICA_KIND))
        for raw in (await self.store.list_records(SESSION_KIND)).values():
            record = SessionRecord.from_json(raw)
            if record.state == SessionState.ACTIVE and record.owner not in replicas:
                await self._mark_failed(record, "its orchestrator replica stopped heartbeating")

    async def _mark_failed(self, record: SessionRecord, reason: str) -> None:
        failed = replace(record, state=SessionState.FAILED, error=reason)
        await self.store.put_record(
            SESSION_KIND, record.session_id, failed.to_json(), ENDED_RECORD_TTL_SECONDS
        )
        log.warning(
            "session marked failed", extra={"session_id": record.session_id, "owner": record.owner}
        )

    async def _save(self, session: VoiceSession, ttl: float | None = None) -> None:
        with contextlib.suppress(StoreUnavailable):
            await self.store.put_record(
                SESSION_KIND, session.id, self._record_of(session).to_json(), ttl
            )

    def _record_of(self, session: VoiceSession) -> SessionRecord:
        return SessionRecord(
            session_id=session.id,
            room=session.room_name,
            voice=session.voice,
            owner=self.instance_id,
            owner_url=self.url,
            state=session.state,
            created_at=session.created_at,
            error=session.error,
        )

    async def _delete_room(self, room: str) -> None:
        """Disconnect everyone else too; rooms otherwise linger for minutes."""
        livekit = self.options.session.livekit
        http_url = livekit.url.replace("ws://", "http://").replace("wss://", "https://")
        lk = api.LiveKitAPI(
            http_url,
            livekit.api_key,
            livekit.api_secret,
            timeout=aiohttp.ClientTimeout(total=DELETE_ROOM_TIMEOUT_SECONDS),
        )
        try:
            await lk.room.delete_room(api.DeleteRoomRequest(room=room))
        except Exception as exc:  # the room may already be gone; never fail a DELETE on it
            log.info("room delete skipped", extra={"room": room, "reason": type(exc).__name__})
        finally:
            await lk.aclose()
