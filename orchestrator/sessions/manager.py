"""Sessions across replicas: this replica's own sessions, which replica owns every other
one (records in the store), forwarding of calls to the owner, and taking over the sessions
of a replica that stopped heartbeating (`takeover.py`).

It raises `orchestrator.errors` service errors; the routes turn them into HTTP answers.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field, replace
from typing import Any

import httpx
from livekit import rtc

from fleet import aio
from fleet.aio import TaskSet
from fleet.store import Store, StoreUnavailable
from orchestrator import errors
from orchestrator.metrics.recorder import FleetMetrics
from orchestrator.sessions import takeover
from orchestrator.sessions.event_history import EventHistory, EventHistoryOptions
from orchestrator.sessions.events import EventKind, EventLog, SessionEvent
from orchestrator.sessions.listening import VadOptions, load_vad
from orchestrator.sessions.recognizer import Recognizer, RecognizerOptions, load_recognizer
from orchestrator.sessions.records import (
    REPLICA_KIND,
    SESSION_KIND,
    CreatedSession,
    SessionRecord,
    SessionRecords,
)
from orchestrator.sessions.session import SessionOptions, SessionState, VoiceSession
from orchestrator.sessions.speech_handle import SpeechHandle, UtteranceClosed
from orchestrator.sessions.tokens import delete_room, user_token
from orchestrator.workers.channels import WorkerChannels
from orchestrator.workers.registry import WorkerRegistry

__all__ = ["REPLICA_KIND", "SESSION_KIND", "CreatedSession", "SessionManager", "SessionRecord"]

log = logging.getLogger(__name__)

# Ended sessions stay visible for a while so late calls get 409 rather than 404.
ENDED_RECORD_TTL_SECONDS = 3600.0
FORWARD_TIMEOUT_SECONDS = 10.0
GONE = (SessionState.ENDED, SessionState.FAILED)


@dataclass(frozen=True)
class ManagerOptions:
    """What the session manager needs of the settings."""

    instance_id: str
    url: str
    """This replica's public API, for forwarded calls."""
    session: SessionOptions = field(default_factory=SessionOptions)
    vad: VadOptions = field(default_factory=VadOptions)
    events: EventHistoryOptions = field(default_factory=EventHistoryOptions)
    recognizer: RecognizerOptions = field(default_factory=RecognizerOptions)
    max_sessions: int = 100
    max_text_chars: int = 5000
    replica_ttl_seconds: float = 5.0
    """A replica silent this long is gone: its sessions are taken over."""
    user_token_ttl_seconds: int = 600
    livekit_public_url: str | None = None
    """LiveKit URL handed to clients; None: the agent's own URL."""
    normalize_text: bool = True
    """Whether the worker reads text as a person would, unless a `say` says otherwise."""


class SessionManager:
    """Hosts this replica's sessions, finds everyone else's, adopts the orphans."""

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
        self.history = EventHistory(store, options.events)
        self.records = SessionRecords(store, options.instance_id, options.url)
        self._orphans = takeover.Orphans(options.instance_id, self._adopt, self._give_up_on)
        self._joining: set[str] = set()
        self._vad: Any = None
        self.recognizer: Recognizer | None = None
        self.recognizer_error: str | None = None  # why it failed to load (sessions say so)
        self._tasks = TaskSet("session-manager")
        self._http: httpx.AsyncClient | None = None
        self.draining = False

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        # Models load once per process, off the loop.
        self._vad = await loop.run_in_executor(None, load_vad, self.options.vad)
        self.recognizer, self.recognizer_error = await load_recognizer(self.options.recognizer)
        self._http = httpx.AsyncClient(timeout=FORWARD_TIMEOUT_SECONDS)
        self.history.start()
        await self._heartbeat()
        interval = self.options.replica_ttl_seconds / 3
        # Apart: rejoining rooms must never delay the heartbeat that keeps ours ours.
        self._tasks.spawn(aio.every(interval, self._heartbeat, what="replica heartbeat"), "beat")
        self._tasks.spawn(aio.every(interval, self.maintain, what="session maintenance"), "maint")

    async def aclose(self) -> None:
        await self._tasks.aclose()
        for session in list(self.local.values()):
            await self.end(session.id, reason="orchestrator stopping")
        with contextlib.suppress(StoreUnavailable):
            await self.store.remove_record(REPLICA_KIND, self.instance_id)
        await self.history.aclose()
        if self._http is not None:
            await self._http.aclose()
        if self.recognizer is not None:
            self.recognizer.close()

    # -- create / read / end ------------------------------------------------------------

    def _new_session(
        self, room: str, voice: str, session_id: str, events: EventLog
    ) -> VoiceSession:
        return VoiceSession(
            self.options.session,
            self.registry,
            self.channels,
            self._vad,
            self.metrics,
            room_name=room,
            voice=voice,
            session_id=session_id,
            events=events,
            recognizer=self.recognizer,
            recognizer_error=self.recognizer_error,
        )

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
        if (active := self._hosted()) >= self.options.max_sessions:
            raise errors.at_capacity(f"this replica already hosts {active} sessions")
        session_id = uuid.uuid4().hex
        room = room or f"voice-{session_id[:12]}"
        session = self._new_session(room, voice, session_id, self.history.log_for(session_id))
        livekit = self.options.session.livekit
        try:
            await session.start()  # on failure, nothing is left behind
        except (rtc.ConnectError, TimeoutError, OSError) as exc:
            raise errors.livekit_unreachable(
                f"cannot join LiveKit at {livekit.url}: {type(exc).__name__}: {exc}"
            ) from None
        self.local[session.id] = session
        await self.records.write(session)
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

    def _hosted(self) -> int:
        active = sum(s.state is SessionState.ACTIVE for s in self.local.values())
        return active + len(self._joining)

    async def record(self, session_id: str) -> SessionRecord:
        """The session's record: the store's, or this replica's own while the store is down
        (or after it lost the record, restarted empty)."""
        session = self.local.get(session_id)
        try:
            raw = await self.store.get_record(SESSION_KIND, session_id)
        except StoreUnavailable as exc:
            if session is None:
                raise errors.store_unavailable(f"the session store does not answer: {exc}") from exc
            raw = None
        if raw is not None:
            return SessionRecord.from_json(raw)
        if session is not None:
            return self.records.of(session)
        raise errors.session_not_found(session_id)

    async def end(self, session_id: str, reason: str = "deleted") -> SessionRecord:
        record = await self.record(session_id)
        session = self._hosting(record)
        if session is None:
            if record.state in GONE:
                return record
            if record.owner == self.instance_id or not await self._owner_alive(record):
                # Nobody runs it: end it from here, no need to rejoin the room first.
                return await self._close_orphan(record.session_id, SessionState.ENDED, reason)
            return await self._forward_delete(record)
        await session.aclose(reason)
        await self._delete_room(session.room_name)
        self.local.pop(session_id, None)
        await self.records.write(session, ttl=ENDED_RECORD_TTL_SECONDS)
        self._forget(session_id)
        return self.records.of(session)

    def busy(self) -> bool:
        """Some session here is speaking or has utterances waiting."""
        return any(session.busy for session in self.local.values())

    def owned(self, session_id: str) -> VoiceSession | None:
        return self.local.get(session_id)

    def _hosting(self, record: SessionRecord) -> VoiceSession | None:
        """This replica's session of the record, if the store agrees it is ours."""
        session = self.local.get(record.session_id)
        if session is not None and record.owner != self.instance_id:
            # Another replica took it over while this one was cut off: it is theirs.
            self._tasks.spawn(self._release(session), "release")
            return None
        return session

    async def check_open(self, session_id: str) -> SessionRecord:
        """The record of a session that can still speak; session_ended otherwise."""
        record = await self.record(session_id)
        if record.state in GONE:
            detail = f": {record.error}" if record.error else ""
            raise errors.session_ended(f"session {session_id} has {record.state}{detail}")
        return record

    async def locate(self, session_id: str) -> VoiceSession | SessionRecord:
        """Where a call for an open session runs: here (the session), or on its owner (the
        record to forward it to). A session whose replica is gone is taken over first."""
        record = await self.check_open(session_id)
        session = self._hosting(record)
        if session is not None:
            return session
        if record.owner != self.instance_id and await self._owner_alive(record):
            return record
        taken = await self._take_over(session_id)
        if taken is not None:
            return taken
        record = await self.check_open(session_id)  # another replica won it, or it failed
        if record.owner == self.instance_id:
            raise errors.owner_moved()  # being rejoined here right now
        return record

    # -- speaking (on the owner) --------------------------------------------------------

    def say(
        self,
        session: VoiceSession,
        text: str,
        *,
        interruptible: bool,
        final: bool,
        speed: float = 1.0,
        normalize: bool | None = None,
    ) -> SpeechHandle:
        if self.draining:
            raise errors.draining("this replica is shutting down; no new utterances")
        self._check_length(len(text))
        verbatim = not (self.options.normalize_text if normalize is None else normalize)
        return session.say(
            text, interruptible=interruptible, final=final, speed=speed, verbatim=verbatim
        )

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

    # -- events -------------------------------------------------------------------------

    async def events(self, session_id: str, after: int) -> AsyncIterator[SessionEvent]:
        """The session's events after seq `after`, then live ones until it ends: from this
        replica's own log when it runs the session, else from the store. session_ended
        when it is over and nothing is left to read."""
        record = await self.record(session_id)
        session = self._hosting(record)
        if session is not None and (not session.events.closed or session.events.last_seq > after):
            return session.events.follow(after)
        if record.state in GONE:
            with contextlib.suppress(StoreUnavailable):
                if await self.store.read_log(f"events:{session_id}", after, limit=1):
                    return self.history.follow(session_id, after, lambda: self._is_open(session_id))
            raise errors.session_ended(f"session {session_id} has {record.state}")
        return self.history.follow(session_id, after, lambda: self._is_open(session_id))

    async def _is_open(self, session_id: str) -> bool:
        try:
            return (await self.record(session_id)).state not in GONE
        except errors.ServiceError as exc:
            return exc.code is errors.STORE_UNAVAILABLE  # not known: keep following

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
        assert self._http is not None
        try:
            return await self._http.request(
                method, record.owner_url + path, json=body, headers=headers
            )
        except httpx.HTTPError as exc:
            # Dead but still within its heartbeat TTL: retried, it is taken over.
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
        """One round of upkeep (every third of the replica TTL): this replica's records
        (ended sessions, playout checkpoints, sessions lost to another replica), then the
        orphans of replicas that stopped heartbeating."""
        try:
            alive = set(await self.store.list_records(REPLICA_KIND))
            records = await self.store.list_records(SESSION_KIND)
            await self._sync_local(records)
            parsed = {k: SessionRecord.from_json(v) for k, v in records.items()}
            await self._orphans.round(parsed, alive, self.local)
        except StoreUnavailable as exc:
            log.warning("session store unavailable", extra={"reason": str(exc)})

    async def _heartbeat(self) -> None:
        value = json.dumps({"url": self.url, "at": time.time()})
        await self.store.put_record(
            REPLICA_KIND, self.instance_id, value, self.options.replica_ttl_seconds
        )

    async def _sync_local(self, records: dict[str, str]) -> None:
        for session in list(self.local.values()):
            if self.records.lost(session.id, records.get(session.id)):
                await self._release(session)
            elif session.state in GONE:  # failed on its own (room lost)
                self.local.pop(session.id, None)
                await self._delete_room(session.room_name)
                await self.records.write(session, ttl=ENDED_RECORD_TTL_SECONDS)
                self._forget(session.id)
            elif self.records.changed(session) and not await self.records.write(session):
                await self._release(session)  # the playout checkpoint found it taken

    async def _adopt(self, session_id: str, alive: set[str]) -> bool:
        return await self._take_over(session_id, alive) is not None

    async def _give_up_on(self, session_id: str) -> None:
        reason = "its orchestrator replica stopped heartbeating and no replica could take it"
        await self._close_orphan(session_id, SessionState.FAILED, reason)

    # -- takeover -----------------------------------------------------------------------

    async def _take_over(
        self, session_id: str, alive: set[str] | None = None
    ) -> VoiceSession | None:
        """Claim an orphan (one winner, through the store) and rejoin its room. None when
        it is not an orphan, another replica won it, this one is full, or rejoining failed
        (the session has then failed, with the reason)."""
        if self.draining or session_id in self._joining or session_id in self.local:
            return None
        if self._hosted() >= self.options.max_sessions:
            return None
        found = await self.records.get(session_id)
        if found is None:
            return None
        record, raw = found
        if alive is None:
            alive = set(await self.store.list_records(REPLICA_KIND))
        if record.state != SessionState.ACTIVE or (
            record.owner != self.instance_id and record.owner in alive
        ):
            return None
        self._joining.add(session_id)
        try:
            claim = await self.records.claim(record, raw)
            if claim is None:
                return None
            log.warning(
                "taking over a session",
                extra={"session_id": session_id, "previous_owner": record.owner},
            )
            return await self._rejoin(claim, record)
        finally:
            self._joining.discard(session_id)

    async def _rejoin(self, claim: SessionRecord, previous: SessionRecord) -> VoiceSession | None:
        past = await self.history.load(claim.session_id)
        if past and past[-1].ends_session:  # it ended; only its record was left behind
            await self._close_orphan(claim.session_id, SessionState.ENDED, "ended")
            return None
        events = self.history.log_for(claim.session_id, past)
        session = self._new_session(claim.room, claim.voice, claim.session_id, events)
        session.created_at = claim.created_at
        try:
            await session.start(takeover=True)
        except (rtc.ConnectError, TimeoutError, OSError) as exc:
            self._forget(claim.session_id)
            reason = (
                "its orchestrator replica stopped heartbeating and the room could not be "
                f"rejoined: {type(exc).__name__}"
            )
            await self._close_orphan(claim.session_id, SessionState.FAILED, reason)
            return None
        self.local[session.id] = session
        takeover.announce(events, previous, self.instance_id)
        await self.records.write(session)
        return session

    async def _release(self, session: VoiceSession) -> None:
        """Another replica took this session over (this one was cut off from the store for
        longer than the TTL): leave it to them, room and history untouched."""
        if self.local.get(session.id) is not session:
            return
        log.warning("session taken over by another replica", extra={"session_id": session.id})
        self.local.pop(session.id, None)
        self._forget(session.id, drop_pending=True)
        session.events.close()  # its readers reconnect, and find the new owner's events
        await session.aclose("taken over by another replica")

    def _forget(self, session_id: str, *, drop_pending: bool = False) -> None:
        self.records.forget(session_id)
        self.history.detach(session_id, drop_pending=drop_pending)

    async def _close_orphan(
        self, session_id: str, state: SessionState, reason: str
    ) -> SessionRecord:
        """End or fail a session nobody runs: its record, a last event, its room."""
        found = await self.records.get(session_id)
        if found is None:
            raise errors.session_not_found(session_id)
        record, raw = found
        if record.state in GONE:
            return record
        final = await self.records.finish(record, raw, state, reason, ENDED_RECORD_TTL_SECONDS)
        if final is None:
            return await self.record(session_id)  # someone else got there first
        log.warning("orphaned session closed", extra={"session_id": session_id, "state": state})
        past = await self.history.load(session_id)
        kind = EventKind.SESSION_ENDED if state is SessionState.ENDED else EventKind.ERROR
        last = SessionEvent(past[-1].seq + 1 if past else 0, kind, time.time(), {"reason": reason})
        await self.history.append(session_id, last)
        await self._delete_room(record.room)
        return final

    async def _delete_room(self, room: str) -> None:
        livekit = self.options.session.livekit
        await delete_room(livekit.url, livekit.api_key, livekit.api_secret, room)
