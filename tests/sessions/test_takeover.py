"""Takeover: what a dead replica left unfinished is reported, never replayed. Utterances
that were playing get an `error` with the heard position its owner last recorded (only
for the one it recorded); queued ones an `error` saying they were never spoken; then
`agent_reconnected`."""

from __future__ import annotations

from orchestrator.sessions.events import EventKind, EventLog, SessionEvent
from orchestrator.sessions.records import SessionRecord
from orchestrator.sessions.takeover import (
    PLAYING_LOST,
    QUEUED_LOST,
    announce,
    lost_utterances,
)


def ev(seq: int, kind: EventKind, **data: object) -> SessionEvent:
    return SessionEvent(seq, kind, 1.0, dict(data))


HISTORY = [
    ev(0, EventKind.SESSION_STARTED, room="r"),
    ev(1, EventKind.UTTERANCE_QUEUED, utterance_id="done"),
    ev(2, EventKind.SPEECH_STARTED, utterance_id="done"),
    ev(3, EventKind.FINISHED, utterance_id="done", position_seconds=1.2),
    ev(4, EventKind.UTTERANCE_QUEUED, utterance_id="cut"),
    ev(5, EventKind.SPEECH_STARTED, utterance_id="cut"),
    ev(6, EventKind.CANCELLED, utterance_id="cut", position_seconds=0.4),
    ev(7, EventKind.UTTERANCE_QUEUED, utterance_id="paused"),
    ev(8, EventKind.SPEECH_STARTED, utterance_id="paused"),
    ev(9, EventKind.INTERRUPTED, utterance_id="paused", position_seconds=0.9),
    ev(10, EventKind.UTTERANCE_QUEUED, utterance_id="waiting"),
    ev(11, EventKind.CHAT_RECEIVED, participant="p", utterance_id="waiting"),
    ev(12, EventKind.UTTERANCE_QUEUED, utterance_id="failed"),
    ev(13, EventKind.ERROR, utterance_id="failed", reason="nobody is listening"),
]


def test_lost_utterances_are_those_started_or_queued_and_not_over() -> None:
    lost = lost_utterances(HISTORY)
    assert lost.playing == ("paused",)
    assert lost.queued == ("waiting",)


def test_announce_reports_each_lost_utterance_then_the_reconnection() -> None:
    log = EventLog("s", past=HISTORY)
    previous = SessionRecord(
        session_id="s",
        room="r",
        voice="v",
        owner="dead",
        owner_url="http://127.0.0.1:1",
        state="active",
        created_at=1.0,
        playing_utterance="paused",
        playing_heard_seconds=0.87,
    )
    announce(log, previous, "me")
    new = [e.as_dict() for e in log.history()[len(HISTORY) :]]
    for event in new:
        del event["at"]
    assert new == [
        {
            "seq": 14,
            "type": "error",
            "utterance_id": "paused",
            "reason": PLAYING_LOST,
            "position_seconds": 0.87,
            "position_is_lower_bound": True,
        },
        {"seq": 15, "type": "error", "utterance_id": "waiting", "reason": QUEUED_LOST},
        {
            "seq": 16,
            "type": "agent_reconnected",
            "previous_owner": "dead",
            "owner": "me",
            "lost_utterances": 2,
        },
    ]


def test_a_checkpoint_of_another_utterance_gives_no_position() -> None:
    log = EventLog("s", past=HISTORY)
    previous = SessionRecord(
        "s", "r", "v", "dead", "u", "active", 1.0, playing_utterance="done",
        playing_heard_seconds=1.0,
    )  # fmt: skip
    announce(log, previous, "me")
    [error] = [e for e in log.history() if e.data.get("utterance_id") == "paused"][-1:]
    assert error.kind == EventKind.ERROR and "position_seconds" not in error.data
