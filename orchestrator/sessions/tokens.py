"""LiveKit access tokens: narrowly scoped and short-lived."""

from __future__ import annotations

from datetime import timedelta

from livekit import api

AGENT_TOKEN_TTL = timedelta(hours=6)


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
