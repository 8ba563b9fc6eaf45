"""The LiveKit server goes away under a session: past the reconnect grace the session reports
an error event, ends up failed in the registry and leaves no task behind; back within the
grace, the session carries on."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

import httpx

from fleet.aio import poll_until
from orchestrator.cli import Orchestrator
from tests.audio_checks import Pcm, transcribe, word_error_rate
from tests.conftest import orchestrator_settings
from tests.livekit_server import LiveKitServer, ensure_livekit_server_binary
from tests.processes import WorkerProcess
from tests.sessions.events import EventLog
from tests.sessions.listener import RATE, Listener

SPOKEN = "The connection is back, and your order is on its way."


@contextlib.asynccontextmanager
async def _orchestrator_on(
    server: LiveKitServer, worker: WorkerProcess, **overrides: Any
) -> AsyncIterator[tuple[Orchestrator, httpx.AsyncClient]]:
    """An orchestrator whose sessions join rooms on server, and a client for its API."""
    orch = Orchestrator(
        orchestrator_settings(
            workers=[worker.address],
            livekit_url=server.url,
            livekit_api_key=server.api_key,
            livekit_api_secret=server.api_secret,
            **overrides,
        )
    )
    await orch.start()
    try:
        async with httpx.AsyncClient(
            base_url=f"http://127.0.0.1:{orch.settings.port}", timeout=30
        ) as api:
            yield orch, api
    finally:
        await orch.stop()


async def test_livekit_gone_fails_the_session_cleanly(piper_worker: WorkerProcess) -> None:
    binary = await asyncio.to_thread(ensure_livekit_server_binary)
    server = LiveKitServer(binary)
    await asyncio.to_thread(server.__enter__)
    try:
        async with _orchestrator_on(
            server, piper_worker, replica_ttl_seconds=0.6, livekit_reconnect_grace_seconds=2.0
        ) as (orch, api):
            created = (await api.post("/sessions", json={})).json()
            session_id = created["session_id"]
            events = EventLog(api, session_id)
            await events.wait("session_started")
            await asyncio.to_thread(server.__exit__, None, None, None)  # the server dies
            # The rtc client notices the loss, retries, and the session gives up after its
            # reconnect grace (2 s here) whether or not the client ever reports "disconnected".
            reconnecting = await events.wait("livekit_reconnecting", within=60)
            error = await events.wait("error", within=30, after=reconnecting["seq"])
            assert "LiveKit" in error["reason"]
            state = ""
            for _ in range(100):  # the session's record follows its failure at once
                state = (await api.get(f"/sessions/{session_id}")).json()["state"]
                if state == "failed":
                    break
                await asyncio.sleep(0.1)
            assert state == "failed"
            said = await api.post(f"/sessions/{session_id}/say", json={"text": "hello?"})
            assert said.status_code == 409
            await events.aclose()
            prefix = f"session-{session_id[:8]}"

            def left() -> list[str]:
                return [n for t in asyncio.all_tasks() if (n := t.get_name()).startswith(prefix)]

            assert await poll_until(lambda: not left(), timeout_seconds=5), left()
            # The manager's next maintenance round retires the failed session.
            local = orch.services.sessions.local
            assert await poll_until(lambda: session_id not in local, timeout_seconds=10)
    finally:
        await asyncio.to_thread(server.__exit__, None, None, None)


async def test_livekit_back_within_grace_keeps_the_session(piper_worker: WorkerProcess) -> None:
    """A LiveKit restart shorter than the reconnect grace is ridden out: the session rejoins
    the room on the new server and speaks to a listener there."""
    binary = await asyncio.to_thread(ensure_livekit_server_binary)
    server = LiveKitServer(binary)
    await asyncio.to_thread(server.__enter__)
    restarted = LiveKitServer(
        binary, port=server.port, tcp_port=server.tcp_port, udp_port=server.udp_port
    )
    listener = Listener()
    try:
        async with _orchestrator_on(
            server, piper_worker, livekit_reconnect_grace_seconds=120.0
        ) as (_, api):
            created = (await api.post("/sessions", json={})).json()
            session_id = created["session_id"]
            events = EventLog(api, session_id)
            await events.wait("session_started")
            await asyncio.to_thread(server.__exit__, None, None, None)
            await events.wait("livekit_reconnecting", within=60)
            await asyncio.to_thread(restarted.__enter__)
            await events.wait("livekit_reconnected", within=90)
            assert (await api.get(f"/sessions/{session_id}")).json()["state"] == "active"
            await listener.join(created["url"], created["token"])
            said = await api.post(f"/sessions/{session_id}/say", json={"text": SPOKEN})
            assert said.status_code == 202
            await events.wait("finished", within=60, utterance_id=said.json()["utterance_id"])
            heard = transcribe(Pcm(listener.recording.pcm(), RATE))
            assert word_error_rate(SPOKEN, heard) <= 0.25, heard
            assert not [e for e in events.events if e["type"] == "error"]
            await events.aclose()
    finally:
        await listener.leave()
        await asyncio.to_thread(restarted.__exit__, None, None, None)
        await asyncio.to_thread(server.__exit__, None, None, None)
