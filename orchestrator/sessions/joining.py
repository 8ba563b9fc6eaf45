"""Joining a LiveKit room within a time limit, without ever abandoning a connect half-way.

The rtc SDK's native side finishes a connect by waiting for the Python side to say it is
ready for the room's events (`Room.connect` does, once its callback arrives). A connect
cancelled before that (a timeout, a session deleted while it joins) never says it, and the
native side then ends the whole process: "FFI Panic: timed out waiting for
ReadyForRoomEventRequest after ConnectCallback", then SIGTERM. Seen in the 30-client soak,
where joins under load outlasted the 5 s limit. So the connect always runs to its end;
only the wait for it is bounded, and a room that connects after its caller gave up is left
again at once."""

from __future__ import annotations

import asyncio
import contextlib
import logging

from livekit import rtc

log = logging.getLogger(__name__)

REJOIN_TIMEOUT_SECONDS = 30.0
"""The least a takeover's rejoin waits for the room. A new session's join is bounded by
the connect timeout (5 s by default) because its caller waits for the answer; an orphan's
room is silent until it is rejoined, and a rejoin that gives up fails the session for
good, so a connect slowed by a loaded machine is waited for."""

_ABANDONED: set[asyncio.Task[None]] = set()
"""Connects whose caller gave up, kept referenced until they end and their room is left."""


async def join_room(
    room: rtc.Room, url: str, token: str, options: rtc.RoomOptions, timeout_seconds: float
) -> None:
    """Connect `room`, or raise TimeoutError (or the connect's own error) with the room not
    connected. Cancellation leaves the connect running to its end, then leaves the room."""
    connecting = asyncio.ensure_future(room.connect(url, token, options))
    try:
        await asyncio.wait_for(asyncio.shield(connecting), timeout_seconds)
    except BaseException:
        _leave_when_connected(room, connecting)
        raise


def _leave_when_connected(room: rtc.Room, connecting: asyncio.Future[None]) -> None:
    async def leave() -> None:
        with contextlib.suppress(BaseException):
            await connecting  # its own failure needs no leaving
            await room.disconnect()
            log.info("left a room that connected after its join was abandoned")

    task = asyncio.get_running_loop().create_task(leave(), name="room-abandoned-join")
    _ABANDONED.add(task)
    task.add_done_callback(_ABANDONED.discard)
