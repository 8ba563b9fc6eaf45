"""Sessions across replicas: which replica owns which session (in the store), forwarding of
calls to the owner, and marking sessions failed when their replica's heartbeat expires."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
import uuid
from dataclasses import asdict, dataclass
from typing import Any

import aiohttp
import httpx
from livekit import api

# Silero must be imported on the main thread (it registers a plugin): keep it at the top.
from livekit.plugins import silero

from fleet.store import Store, StoreUnavailable
from orchestrator.fleet_metrics import FleetMetrics
from orchestrator.registry import WorkerRegistry
from orchestrator.session import SessionState, VoiceSession
from orchestrator.settings import OrchestratorSettings
from orchestrator.worker_channels import WorkerChannels

log = logging.getLogger(__name__)

SESSION_KIND = "session"
REPLICA_KIND = "replica"
# Ended sessions stay visible for a while so late calls get 409 rather than 404.
ENDED_RECORD_TTL_SECONDS = 3600.0
FORWARD_TIMEOUT_SECONDS = 10.0


class SessionNotFound(LookupError):
    pass


class SessionGone(Exception):
    """The session has ended or failed; the message says how."""


class ReplicaUnreachable(Exception):
    pass


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


class SessionManager:
    """Hosts this replica's sessions and finds everyone else's."""

    def __init__(
        self,
        settings: OrchestratorSettings,
        store: Store,
        registry: WorkerRegistry,
        channels: WorkerChannels,
        metrics: FleetMetrics,
    ) -> None:
        self.settings = settings
        self.metrics = metrics
        self.store = store
        self.registry = registry
        self.channels = channels
        self.instance_id = settings.resolved_instance_id()
        self.url = settings.advertise_url or f"http://{settings.host}:{settings.port}"
        self.local: dict[str, VoiceSession] = {}
        self._vad: Any = None
        self._task: asyncio.Task[None] | None = None
        self._http: httpx.AsyncClient | None = None
        self.draining = False

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        # Loading the ONNX model blocks for ~50 ms: once per process, off the loop.
        self._vad = await loop.run_in_executor(None, self._load_vad)
        self._http = httpx.AsyncClient(timeout=FORWARD_TIMEOUT_SECONDS)
        await self._heartbeat()
        self._task = asyncio.create_task(self._maintain_forever(), name="session-manager")

    def _load_vad(self) -> Any:
        return silero.VAD.load(
            min_speech_duration=self.settings.vad_min_speech_seconds,
            activation_threshold=self.settings.vad_activation_threshold,
        )

    async def aclose(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        for session in list(self.local.values()):
            await self.end(session.id, reason="orchestrator stopping")
        with contextlib.suppress(StoreUnavailable):
            await self.store.remove_record(REPLICA_KIND, self.instance_id)
        if self._http is not None:
            await self._http.aclose()

    # -- create / read / end ------------------------------------------------------------

    async def create(self, room: str | None, voice: str) -> VoiceSession:
        active = sum(s.state is SessionState.ACTIVE for s in self.local.values())
        if active >= self.settings.max_sessions:
            raise ReplicaUnreachable(f"this replica already hosts {active} sessions")
        session_id = uuid.uuid4().hex
        session = VoiceSession(
            self.settings,
            self.registry,
            self.channels,
            self._vad,
            self.metrics,
            room_name=room or f"voice-{session_id[:12]}",
            voice=voice,
            session_id=session_id,
        )
        await session.start()  # raises rtc.ConnectError / TimeoutError, leaving nothing behind
        self.local[session.id] = session
        await self._save(session)
        return session

    async def record(self, session_id: str) -> SessionRecord:
        session = self.local.get(session_id)
        if session is not None:
            return self._record_of(session)
        raw = await self.store.get_record(SESSION_KIND, session_id)
        if raw is None:
            raise SessionNotFound(session_id)
        return SessionRecord.from_json(raw)

    async def end(self, session_id: str, reason: str = "deleted") -> SessionRecord:
        session = self.local.get(session_id)
        if session is None:
            record = await self.record(session_id)
            if record.state in (SessionState.ENDED, SessionState.FAILED):
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
        """The record of a session that can still speak; SessionGone otherwise."""
        record = await self.record(session_id)
        if record.state in (SessionState.ENDED, SessionState.FAILED):
            detail = f": {record.error}" if record.error else ""
            raise SessionGone(f"session {session_id} has {record.state}{detail}")
        return record

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
            raise SessionGone(f"session {record.session_id} has failed: its replica is gone")
        assert self._http is not None
        try:
            return await self._http.request(
                method, record.owner_url + path, json=body, headers=headers
            )
        except httpx.HTTPError as exc:
            raise ReplicaUnreachable(f"owner replica unreachable: {type(exc).__name__}") from exc

    async def _forward_delete(self, record: SessionRecord) -> SessionRecord:
        response = await self.forward(record, "DELETE", f"/sessions/{record.session_id}", None, {})
        if response.status_code >= 400:
            raise ReplicaUnreachable(f"owner replica answered {response.status_code}")
        return SessionRecord(**{**asdict(record), "state": SessionState.ENDED})

    async def _owner_alive(self, record: SessionRecord) -> bool:
        return await self.store.get_record(REPLICA_KIND, record.owner) is not None

    # -- maintenance --------------------------------------------------------------------

    async def _maintain_forever(self) -> None:
        interval = self.settings.replica_ttl_seconds / 3
        while True:
            await asyncio.sleep(interval)
            try:
                await self._heartbeat()
                await self._sync_local()
                await self._reap_orphans()
            except StoreUnavailable as exc:
                log.warning("session store unavailable", extra={"reason": str(exc)})
            except Exception:
                log.exception("session maintenance failed")

    async def _heartbeat(self) -> None:
        value = json.dumps({"url": self.url, "at": time.time()})
        await self.store.put_record(
            REPLICA_KIND, self.instance_id, value, self.settings.replica_ttl_seconds
        )

    async def _sync_local(self) -> None:
        """Sessions that failed on their own (room lost) get their record updated."""
        for session in list(self.local.values()):
            if session.state in (SessionState.ENDED, SessionState.FAILED):
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
        failed = SessionRecord(**{**asdict(record), "state": SessionState.FAILED, "error": reason})
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
        http_url = self.settings.livekit_url.replace("ws://", "http://").replace(
            "wss://", "https://"
        )
        lk = api.LiveKitAPI(
            http_url,
            self.settings.livekit_api_key,
            self.settings.livekit_api_secret.get_secret_value(),
            timeout=aiohttp.ClientTimeout(total=3),
        )
        try:
            await lk.room.delete_room(api.DeleteRoomRequest(room=room))
        except Exception as exc:  # the room may already be gone; never fail a DELETE on it
            log.info("room delete skipped", extra={"room": room, "reason": type(exc).__name__})
        finally:
            await lk.aclose()
