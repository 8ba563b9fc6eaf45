"""What the fleet's store holds about sessions: one record per session (its owner replica,
state and playout checkpoint), and a heartbeat record per live replica; and this replica's
way of writing them without ever overwriting another replica's claim."""

from __future__ import annotations

import dataclasses
import json
from dataclasses import asdict, dataclass, replace
from typing import TYPE_CHECKING, Any

from fleet.store import Store, StoreUnavailable

if TYPE_CHECKING:
    from orchestrator.sessions.session import VoiceSession

SESSION_KIND = "session"
REPLICA_KIND = "replica"


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
    epoch: int = 0
    """Ownership generation: 0 for the replica that created it, +1 per takeover."""
    playing_utterance: str | None = None
    """Checkpoint written by the owner: the utterance being spoken..."""
    playing_heard_seconds: float | None = None
    """...and how much of it the listener had heard then."""

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, raw: str) -> SessionRecord:
        data: dict[str, Any] = json.loads(raw)
        # A newer replica's extra fields are not an error during a rolling upgrade.
        known = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})


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


class SessionRecords:
    """This replica's side of the session records: it writes those of the sessions it runs
    only while they are still its own (compare and set against what it last wrote), and
    claims or closes the records of sessions nobody runs."""

    def __init__(self, store: Store, instance_id: str, url: str) -> None:
        self.store = store
        self.instance_id = instance_id
        self.url = url
        self._written: dict[str, str] = {}  # the record this replica last stored, per session
        self._epochs: dict[str, int] = {}

    async def get(self, session_id: str) -> tuple[SessionRecord, str] | None:
        raw = await self.store.get_record(SESSION_KIND, session_id)
        return None if raw is None else (SessionRecord.from_json(raw), raw)

    def of(self, session: VoiceSession) -> SessionRecord:
        """The record of a session this replica runs, with its playout checkpoint."""
        current = session.current
        heard = current.heard_seconds if current is not None else None
        return SessionRecord(
            session_id=session.id,
            room=session.room_name,
            voice=session.voice,
            owner=self.instance_id,
            owner_url=self.url,
            state=session.state,
            created_at=session.created_at,
            error=session.error,
            epoch=self._epochs.get(session.id, 0),
            playing_utterance=current.id if current is not None and heard is not None else None,
            playing_heard_seconds=round(heard, 2) if heard is not None else None,
        )

    def changed(self, session: VoiceSession) -> bool:
        return self.of(session).to_json() != self._written.get(session.id)

    def lost(self, session_id: str, raw: str | None) -> bool:
        """Whether the store's record (as listed) says another replica runs the session."""
        if raw is None or raw == self._written.get(session_id):
            return False
        return SessionRecord.from_json(raw).owner != self.instance_id

    async def write(self, session: VoiceSession, ttl: float | None = None) -> bool:
        """Store the record of a session this replica runs, unless another replica has taken
        it over meanwhile (False). True also when the store is down (not known yet)."""
        raw = self.of(session).to_json()
        try:
            stored = await self.store.swap_record(
                SESSION_KIND, session.id, self._written.get(session.id), raw, ttl
            )
            if not stored:
                current = await self.store.get_record(SESSION_KIND, session.id)
                if self.lost(session.id, current):
                    return False
                # Gone (a restarted store) or an unacknowledged write of ours: ours again.
                stored = await self.store.swap_record(SESSION_KIND, session.id, current, raw, ttl)
        except StoreUnavailable:
            return True
        if stored:
            self._written[session.id] = raw
        return True

    async def claim(self, record: SessionRecord, raw: str) -> SessionRecord | None:
        """Make this replica the owner of an orphan, one epoch on; None when another replica
        changed the record first (it won)."""
        claim = replace(
            record,
            owner=self.instance_id,
            owner_url=self.url,
            epoch=record.epoch + 1,
            playing_utterance=None,
            playing_heard_seconds=None,
        )
        text = claim.to_json()
        if not await self.store.swap_record(SESSION_KIND, record.session_id, raw, text, None):
            return None
        self._written[record.session_id] = text
        self._epochs[record.session_id] = claim.epoch
        return claim

    async def finish(
        self, record: SessionRecord, raw: str, state: str, reason: str, ttl: float
    ) -> SessionRecord | None:
        """Close a session nobody runs (state ended or failed); None when the record changed
        meanwhile."""
        final = replace(
            record,
            state=state,
            error=reason if state == "failed" else None,
            playing_utterance=None,
            playing_heard_seconds=None,
        )
        text = final.to_json()
        done = await self.store.swap_record(SESSION_KIND, record.session_id, raw, text, ttl)
        return final if done else None

    def forget(self, session_id: str) -> None:
        self._written.pop(session_id, None)
        self._epochs.pop(session_id, None)
