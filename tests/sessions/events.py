"""Follows a session's server-sent events in the background."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from typing import Any

import httpx


class EventLog:
    """Collects events from GET /sessions/{id}/events, with their local arrival times and
    SSE ids; keep-alive comments are counted. With last_event_id, it resumes after it."""

    def __init__(
        self, api: httpx.AsyncClient, session_id: str, last_event_id: int | None = None
    ) -> None:
        self.events: list[dict[str, Any]] = []
        self.comments = 0
        self.ended = False
        self._changed = asyncio.Event()
        headers = {} if last_event_id is None else {"Last-Event-ID": str(last_event_id)}
        self._task = asyncio.create_task(self._follow(api, session_id, headers), name="sse-follow")

    async def _follow(
        self, api: httpx.AsyncClient, session_id: str, headers: dict[str, str]
    ) -> None:
        async with api.stream("GET", f"/sessions/{session_id}/events", headers=headers) as response:
            response.raise_for_status()
            data, event_id = None, None
            async for line in response.aiter_lines():
                if line.startswith("data: "):
                    data = json.loads(line[6:])
                elif line.startswith("id: "):
                    event_id = line[4:]
                elif line.startswith(":"):
                    self.comments += 1
                    self._changed.set()
                elif not line and data is not None:
                    data["received"] = time.perf_counter()
                    data["sse_id"] = event_id
                    self.events.append(data)
                    data, event_id = None, None
                    self._changed.set()
        self.ended = True
        self._changed.set()

    async def until(self, done: Any, within: float = 30.0) -> None:
        """Wait (bounded) until done() holds, re-checking as lines arrive."""
        deadline = asyncio.get_running_loop().time() + within
        while not done():
            remaining = deadline - asyncio.get_running_loop().time()
            if remaining <= 0:
                raise AssertionError(f"not done within {within}s; saw {self.events}")
            self._changed.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._changed.wait(), remaining)

    async def wait(
        self, kind: str, within: float = 30.0, after: int = -1, **match: Any
    ) -> dict[str, Any]:
        """The first event of a kind (with seq > after) whose fields match, waiting for it
        if needed."""

        def found() -> dict[str, Any] | None:
            return next(
                (
                    event
                    for event in self.events
                    if event["type"] == kind
                    and event["seq"] > after
                    and all(event.get(k) == v for k, v in match.items())
                ),
                None,
            )

        try:
            await self.until(lambda: found() is not None, within)
        except AssertionError:
            raise AssertionError(
                f"no {kind} event {match} within {within}s; saw {self.events}"
            ) from None
        event = found()
        assert event is not None
        return event

    @property
    def last_seq(self) -> int:
        return self.events[-1]["seq"] if self.events else -1

    def of(self, kind: str) -> list[dict[str, Any]]:
        return [e for e in self.events if e["type"] == kind]

    async def aclose(self) -> None:
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await self._task
