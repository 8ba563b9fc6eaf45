"""Takeover: a session outlives the replica that ran it. What the dead replica left
unfinished is reported, never replayed: utterances that were playing get an `error` with
the heard position its owner last recorded (only for the one it recorded), queued ones an
`error` saying they were never spoken, then `agent_reconnected`; and for real, a kill -9
of the owner hands the session to the other replica, which the listener hears."""

from __future__ import annotations

import asyncio
import contextlib
import time

import httpx
import pytest

from fleet.redis_store import RedisStore
from orchestrator.sessions.events import EventKind, EventLog, SessionEvent
from orchestrator.sessions.records import SESSION_KIND, SessionRecord
from orchestrator.sessions.takeover import (
    PLAYING_LOST,
    QUEUED_LOST,
    announce,
    lost_utterances,
)
from tests.livekit_server import LiveKitServer
from tests.processes import OrchestratorProcess, RedisServer, WorkerProcess, free_port
from tests.sessions.events import EventLog as EventStream
from tests.sessions.listener import RATE, Listener


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


# -- the real thing: kill -9 of the owner replica ---------------------------------------

LONG_TEXT = (
    "Here is the full list of opening hours for every branch in the city. The central branch "
    "opens at eight in the morning and closes at six in the evening on weekdays, and at noon "
    "on Saturdays. The harbour branch keeps the same hours but closes for lunch."
)
QUEUED_TEXT = "This sentence waits in the queue and must never be heard."
AFTER_TEXT = "I am back, speaking through the other replica."


def replica(
    name: str, redis_server: RedisServer, livekit: LiveKitServer, **env: str
) -> OrchestratorProcess:
    return OrchestratorProcess(
        env={
            "ORCH_INSTANCE_ID": name,
            "ORCH_REDIS_URL": redis_server.url,
            **livekit.orchestrator_env(),
            "ORCH_REPLICA_TTL_SECONDS": "1.5",
            "ORCH_LOG_JSON": "false",
            **env,
        }
    )


async def say_until_accepted(api: httpx.AsyncClient, session_id: str, text: str) -> str:
    """POST say until a replica accepts it: 503 (with Retry-After) while the dead owner's
    heartbeat has not expired yet."""
    deadline = asyncio.get_running_loop().time() + 60
    while True:
        said = await api.post(f"/sessions/{session_id}/say", json={"text": text})
        if said.status_code == 202:
            return str(said.json()["utterance_id"])
        assert said.status_code == 503, said.text
        assert asyncio.get_running_loop().time() < deadline, said.text
        await asyncio.sleep(float(said.headers.get("retry-after", "1")) / 4)


@pytest.mark.timeout(240)
async def test_killing_the_owner_hands_the_session_to_another_replica(
    redis_server: RedisServer, fleet_worker: WorkerProcess, livekit_server: LiveKitServer
) -> None:
    """kill -9 of the replica running a session mid-utterance: the other replica claims it,
    rejoins the room, and the listener hears the next `say` sent to it. The event stream
    (served by the other replica throughout) reports the utterance cut off with the heard
    position its owner last recorded, the queued one as never spoken, then
    agent_reconnected; ids never repeat; nothing said before the crash is heard again.
    The other replica's connect timeout for new sessions is far below any real join: its
    rejoin waits REJOIN_TIMEOUT_SECONDS instead, as it must on a loaded machine."""
    run = free_port()
    owner = replica(f"a-{run}", redis_server, livekit_server)
    other = replica(
        f"b-{run}", redis_server, livekit_server, ORCH_LIVEKIT_CONNECT_TIMEOUT_SECONDS="0.001"
    )
    await asyncio.gather(asyncio.to_thread(owner.start), asyncio.to_thread(other.start))
    store = RedisStore(redis_server.url)
    listener = Listener()
    async with (
        httpx.AsyncClient(base_url=owner.api, timeout=60) as a,
        httpx.AsyncClient(base_url=other.api, timeout=60) as b,
    ):
        created = (await a.post("/sessions", json={})).json()
        session_id = created["session_id"]
        events = EventStream(b, session_id)
        try:
            await listener.join(created["url"], created["token"])
            await asyncio.wait_for(listener.subscribed.wait(), 30)
            cut = (await a.post(f"/sessions/{session_id}/say", json={"text": LONG_TEXT})).json()
            queued = await a.post(f"/sessions/{session_id}/say", json={"text": QUEUED_TEXT})
            started = await events.wait("speech_started", utterance_id=cut["utterance_id"])

            async def checkpoint() -> float:
                """The owner's last recorded heard position of the cut utterance."""
                raw = await store.get_record(SESSION_KIND, session_id)
                record = SessionRecord.from_json(raw or "{}")
                if record.playing_utterance != cut["utterance_id"]:
                    return 0.0
                return record.playing_heard_seconds or 0.0

            deadline = asyncio.get_running_loop().time() + 30
            while (recorded := await checkpoint()) < 1.0:  # a second heard, and recorded
                assert asyncio.get_running_loop().time() < deadline
                await asyncio.sleep(0.1)
            owner.kill()
            killed_at = time.time()

            after_id = await say_until_accepted(b, session_id, AFTER_TEXT)
            reconnected = await events.wait("agent_reconnected", within=60)
            finished = await events.wait("finished", within=60, utterance_id=after_id)
            # Whatever was still on its way has arrived after 0.5 s more of the track.
            await listener.recording.wait_for(listener.recording.samples() + RATE // 2, within=10)
        finally:
            await events.aclose()
            await listener.leave()
            with contextlib.suppress(httpx.HTTPError):
                await b.delete(f"/sessions/{session_id}")
            other.stop()
            owner.kill()
            await store.aclose()

    assert reconnected["previous_owner"] == f"a-{run}"
    assert reconnected["owner"] == f"b-{run}"
    assert reconnected["lost_utterances"] == 2
    lost = {e["utterance_id"]: e for e in events.of("error")}
    playing, waiting = lost[cut["utterance_id"]], lost[queued.json()["utterance_id"]]
    assert playing["reason"] == PLAYING_LOST and waiting["reason"] == QUEUED_LOST
    # A lower bound: at least what the test saw recorded, at most the time it was playing.
    assert recorded <= playing["position_seconds"] <= killed_at - started["at"]
    assert playing["position_is_lower_bound"] is True
    seqs = [e["seq"] for e in events.events]
    assert seqs == list(range(len(seqs)))  # one stream, across the takeover: no repeat, no hole
    # Heard after the takeover: the new utterance, and nothing said before the crash.
    heard = listener.recording.audible_seconds(since=reconnected["received"])
    assert 0.3 * finished["position_seconds"] < heard <= finished["position_seconds"]
    assert [e["utterance_id"] for e in events.of("speech_started")] == [
        cut["utterance_id"],
        after_id,
    ]
