"""The LiveKit server goes away under a session: the session reports an error event, ends
up failed in the registry, and leaves no task behind."""

from __future__ import annotations

import asyncio

import httpx

from orchestrator.cli import Orchestrator
from tests.conftest import orchestrator_settings
from tests.livekit_server import LiveKitServer, ensure_livekit_server_binary
from tests.processes import WorkerProcess
from tests.sessions.events import EventLog


async def test_livekit_restart_fails_the_session_cleanly(piper_worker: WorkerProcess) -> None:
    binary = await asyncio.to_thread(ensure_livekit_server_binary)
    server = LiveKitServer(binary)
    await asyncio.to_thread(server.__enter__)
    orch = Orchestrator(
        orchestrator_settings(
            workers=[piper_worker.address],
            livekit_url=server.url,
            livekit_api_key=server.api_key,
            livekit_api_secret=server.api_secret,
            replica_ttl_seconds=0.6,
        )
    )
    await orch.start()
    try:
        async with httpx.AsyncClient(
            base_url=f"http://127.0.0.1:{orch.settings.port}", timeout=30
        ) as api:
            created = (await api.post("/sessions", json={})).json()
            session_id = created["session_id"]
            events = EventLog(api, session_id)
            await events.wait("session_started")
            await asyncio.to_thread(server.__exit__, None, None, None)  # the server dies
            # The rtc client retries the lost server for a while before it reports the loss.
            error = await events.wait("error", within=180)
            assert "LiveKit" in error["reason"]
            for _ in range(100):
                state = (await api.get(f"/sessions/{session_id}")).json()["state"]
                if state == "failed":
                    break
                await asyncio.sleep(0.1)
            assert state == "failed"
            said = await api.post(f"/sessions/{session_id}/say", json={"text": "hello?"})
            assert said.status_code == 409
            await events.aclose()
        await asyncio.sleep(0.2)
        prefix = f"session-{session_id[:8]}"
        assert not [t.get_name() for t in asyncio.all_tasks() if t.get_name().startswith(prefix)]
        assert session_id not in orch.services.sessions.local
    finally:
        await orch.stop()
        await asyncio.to_thread(server.__exit__, None, None, None)
