"""LiveKit access tokens: narrowly scoped and short-lived."""

from __future__ import annotations

from datetime import timedelta

from livekit import api


def user_token(key: str, secret: str, *, room: str, identity: str, ttl_seconds: int) -> str:
    """A listener's token: joins one room, may publish only its microphone and data (chat)."""
    grants = api.VideoGrants(
        room_join=True,
        room=room,
        can_subscribe=True,
        can_publish=True,
        can_publish_data=True,
        can_publish_sources=["microphone"],
        room_create=False,
        room_admin=False,
    )
    return (
        api.AccessToken(key, secret)
        .with_identity(identity)
        .with_grants(grants)
        .with_ttl(timedelta(seconds=ttl_seconds))
        .to_jwt()
    )


def agent_token(key: str, secret: str, *, room: str, identity: str) -> str:
    """The orchestrator's own participant: joins (and may create) one room as an agent."""
    grants = api.VideoGrants(
        room_join=True,
        room=room,
        room_create=True,
        can_subscribe=True,
        can_publish=True,
        can_publish_data=True,
        can_publish_sources=["microphone"],
        agent=True,
    )
    return (
        api.AccessToken(key, secret)
        .with_identity(identity)
        .with_kind("agent")
        .with_grants(grants)
        .with_ttl(timedelta(hours=6))
        .to_jwt()
    )
