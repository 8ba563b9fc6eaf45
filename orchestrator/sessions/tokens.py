"""LiveKit's server side as sessions use it: access tokens, narrowly scoped and
short-lived, and deleting a room."""

from __future__ import annotations

import logging
from datetime import timedelta

import aiohttp
from livekit import api

log = logging.getLogger(__name__)

AGENT_TOKEN_TTL = timedelta(hours=6)
DELETE_ROOM_TIMEOUT_SECONDS = 3.0


def _token(key: str, secret: str, *, room: str, identity: str, ttl: timedelta, agent: bool) -> str:
    """One room, its microphone track and data; an agent may also create the room."""
    grants = api.VideoGrants(
        room_join=True,
        room=room,
        room_create=agent,
        room_admin=False,
        can_subscribe=True,
        can_publish=True,
        can_publish_data=True,
        can_publish_sources=["microphone"],
        agent=agent,
    )
    token = api.AccessToken(key, secret).with_identity(identity)
    if agent:
        token = token.with_kind("agent")
    return token.with_grants(grants).with_ttl(ttl).to_jwt()


def user_token(key: str, secret: str, *, room: str, identity: str, ttl_seconds: int) -> str:
    """A listener's token: joins one room, may publish only its microphone and data (chat)."""
    ttl = timedelta(seconds=ttl_seconds)
    return _token(key, secret, room=room, identity=identity, ttl=ttl, agent=False)


def agent_token(key: str, secret: str, *, room: str, identity: str) -> str:
    """The orchestrator's own participant: joins (and may create) one room as an agent."""
    return _token(key, secret, room=room, identity=identity, ttl=AGENT_TOKEN_TTL, agent=True)


async def delete_room(url: str, key: str, secret: str, room: str) -> None:
    """Disconnect everyone in the room (rooms otherwise linger for minutes). Never fails:
    the room may already be gone."""
    http_url = url.replace("ws://", "http://").replace("wss://", "https://")
    lk = api.LiveKitAPI(
        http_url, key, secret, timeout=aiohttp.ClientTimeout(total=DELETE_ROOM_TIMEOUT_SECONDS)
    )
    try:
        await lk.room.delete_room(api.DeleteRoomRequest(room=room))
    except Exception as exc:  # the room may already be gone; never fail a DELETE on it
        log.info("room delete skipped", extra={"room": room, "reason": type(exc).__name__})
    finally:
        await lk.aclose()
