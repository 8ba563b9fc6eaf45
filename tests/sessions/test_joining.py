"""A join given up half-way (its time limit, or its session deleted) must not abandon the
rtc SDK's connect: the SDK's native side ends the process when a connect never answers
its callback. The connect runs on, and the room is left once it has connected."""

from __future__ import annotations

import asyncio
import uuid

import pytest
from livekit import api, rtc

from orchestrator.sessions import joining
from orchestrator.sessions.tokens import agent_token
from tests.livekit_server import LiveKitServer


async def participants(server: LiveKitServer, room: str) -> list[str]:
    http_url = server.url.replace("ws://", "http://")
    async with api.LiveKitAPI(http_url, server.api_key, server.api_secret) as lk:
        listed = await lk.room.list_participants(api.ListParticipantsRequest(room=room))
    return [p.identity for p in listed.participants]


class RecordingRoom(rtc.Room):
    """A room that remembers a connect that ran to its end (the SDK then has its answer)."""

    connected_once = False

    async def connect(self, url: str, token: str, options: rtc.RoomOptions | None = None) -> None:
        await super().connect(url, token, options or rtc.RoomOptions())
        self.connected_once = True


async def test_an_abandoned_join_connects_then_leaves(livekit_server: LiveKitServer) -> None:
    name = f"join-{uuid.uuid4().hex[:8]}"
    token = agent_token(
        livekit_server.api_key, livekit_server.api_secret, room=name, identity="agent"
    )
    room = RecordingRoom()
    with pytest.raises(TimeoutError):
        # Far shorter than any connect: the wait gives up while the connect is under way.
        await joining.join_room(room, livekit_server.url, token, rtc.RoomOptions(), 0.001)
    assert not room.isconnected()
    abandoned = set(joining._ABANDONED)
    assert len(abandoned) == 1
    await asyncio.wait_for(asyncio.gather(*abandoned), 30)
    assert room.connected_once
    assert not room.isconnected()
    # The server saw the agent join and leave: it is not in the room.
    assert "agent" not in await participants(livekit_server, name)


async def test_a_join_in_time_connects(livekit_server: LiveKitServer) -> None:
    name = f"join-{uuid.uuid4().hex[:8]}"
    token = agent_token(
        livekit_server.api_key, livekit_server.api_secret, room=name, identity="agent"
    )
    room = rtc.Room()
    await joining.join_room(room, livekit_server.url, token, rtc.RoomOptions(), 30)
    try:
        assert room.isconnected()
        assert "agent" in await participants(livekit_server, name)
    finally:
        await room.disconnect()
