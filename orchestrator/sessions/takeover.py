"""Taking over a session whose replica stopped heartbeating.

Every replica looks for such orphans on each maintenance round (and on a call for one),
and claims one with a compare-and-set of its record in the store: of the replicas that
race for it, exactly one wins. The winner rejoins the room as the agent (the same identity,
so LiveKit drops the dead replica's participant), continues the session's event history
from the store, and goes on speaking.

What the dead replica was doing is gone with it; it is reported, never replayed, so nothing
is spoken twice: each utterance that was playing gets an `error` event with the position
its old owner last recorded as heard (a lower bound, at most one maintenance round old),
each queued one an `error` saying it was never spoken, then `agent_reconnected`.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Awaitable, Callable, Container, Sequence
from dataclasses import dataclass

from orchestrator.sessions.events import EventKind, EventLog, SessionEvent
from orchestrator.sessions.records import SessionRecord

TAKEOVERS_AT_ONCE = 8
"""Rooms one replica rejoins concurrently when it adopts many orphans at once."""
ORPHAN_GIVE_UP_SECONDS = 60.0
"""An orphan no replica could take over in this long (all full or draining) fails."""
PLAYING_LOST = "its orchestrator replica stopped during playout"
QUEUED_LOST = "never spoken: its orchestrator replica stopped first"

_OVER = frozenset({EventKind.FINISHED, EventKind.CANCELLED, EventKind.ERROR})


@dataclass(frozen=True)
class LostUtterances:
    """Utterances a dead replica had not finished, as its event history tells."""

    playing: tuple[str, ...]
    """Started (speaking, or paused by a barge-in) and not over."""
    queued: tuple[str, ...]
    """Queued and never started."""


def lost_utterances(history: Sequence[SessionEvent]) -> LostUtterances:
    queued: dict[str, None] = {}
    playing: dict[str, None] = {}
    for event in history:
        utterance = event.data.get("utterance_id")
        if not isinstance(utterance, str) or event.kind == EventKind.CHAT_RECEIVED:
            continue
        if event.kind == EventKind.UTTERANCE_QUEUED:
            queued[utterance] = None
        elif event.kind == EventKind.SPEECH_STARTED:
            queued.pop(utterance, None)
            playing[utterance] = None
        elif event.kind in _OVER:
            queued.pop(utterance, None)
            playing.pop(utterance, None)
    return LostUtterances(tuple(playing), tuple(queued))


def announce(events: EventLog, previous: SessionRecord, owner: str) -> LostUtterances:
    """Tell the session's readers what was lost with the old owner, then that the agent is
    back (from `owner`). Returns what was lost."""
    lost = lost_utterances(events.history())
    for utterance in lost.playing:
        heard: dict[str, object] = {}
        if utterance == previous.playing_utterance and previous.playing_heard_seconds is not None:
            heard = {
                "position_seconds": round(previous.playing_heard_seconds, 3),
                "position_is_lower_bound": True,
            }
        events.emit(EventKind.ERROR, utterance_id=utterance, reason=PLAYING_LOST, **heard)
    for utterance in lost.queued:
        events.emit(EventKind.ERROR, utterance_id=utterance, reason=QUEUED_LOST)
    events.emit(
        EventKind.AGENT_RECONNECTED,
        previous_owner=previous.owner,
        owner=owner,
        lost_utterances=len(lost.playing) + len(lost.queued),
    )
    return lost


class Orphans:
    """One replica's search for orphans, each maintenance round: sessions still active
    whose owner no longer heartbeats (or names this replica, restarted under the same name,
    without running them). Each goes to `adopt` (True: this replica runs it now, or another
    replica won it); one that nobody adopts for ORPHAN_GIVE_UP_SECONDS goes to `give_up`."""

    def __init__(
        self,
        instance_id: str,
        adopt: Callable[[str, set[str]], Awaitable[bool]],
        give_up: Callable[[str], Awaitable[object]],
    ) -> None:
        self._me = instance_id
        self._adopt = adopt
        self._give_up = give_up
        self._since: dict[str, float] = {}

    async def round(
        self, records: dict[str, SessionRecord], alive: set[str], local: Container[str]
    ) -> None:
        orphans = []
        for session_id, record in records.items():
            gone = record.owner not in alive or record.owner == self._me
            if record.state == "active" and gone and session_id not in local:
                orphans.append(session_id)
            else:
                self._since.pop(session_id, None)
        # Every replica sees the same orphans: a random order spreads them between replicas.
        random.shuffle(orphans)
        limit = asyncio.Semaphore(TAKEOVERS_AT_ONCE)

        async def adopt(session_id: str) -> None:
            async with limit:
                if await self._adopt(session_id, alive):
                    self._since.pop(session_id, None)
                    return
            first = self._since.setdefault(session_id, time.monotonic())
            if time.monotonic() - first > ORPHAN_GIVE_UP_SECONDS:
                await self._give_up(session_id)

        await asyncio.gather(*(adopt(s) for s in orphans))
