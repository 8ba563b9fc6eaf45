"""Session listeners in a process of their own, so that a test measuring the orchestrator's
memory measures the orchestrator alone: each rtc room holds native memory that the rtc SDK
does not give back when the room is left (see docs/RELIABILITY.md), and the listeners'
rooms would count it a second time.

Run as `python -m tests.reliability.remote_listeners`: one JSON request per line on stdin,
one JSON answer per line on stdout, matched by `id`. `RemoteListeners` drives it."""

from __future__ import annotations

import asyncio
import json
import sys
from typing import Any

from tests.sessions.listener import Listener

JOIN_SECONDS = 30.0


class _Host:
    """The child's side: listeners by name, one task per request."""

    def __init__(self) -> None:
        self.listeners: dict[str, Listener] = {}

    async def handle(self, request: dict[str, Any]) -> dict[str, Any]:
        op, name = request["op"], request["name"]
        if op == "join":
            listener = self.listeners[name] = Listener()
            await listener.join(request["url"], request["token"])
            await asyncio.wait_for(listener.subscribed.wait(), JOIN_SECONDS)
            return {}
        if op == "hear":
            heard = await self.listeners[name].recording.wait_audible(
                request["seconds"], request["since"], within=request["within"]
            )
            return {"heard": heard}
        if op == "leave":
            listener = self.listeners.pop(name, None)
            if listener is not None:
                await listener.leave()
            return {}
        raise ValueError(f"unknown op {op!r}")


async def _serve() -> None:
    host = _Host()
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    pending: set[asyncio.Task[None]] = set()

    async def answer(request: dict[str, Any]) -> None:
        try:
            reply = {"id": request["id"], **await host.handle(request)}
        except Exception as exc:  # reported to the test, which fails with it
            reply = {"id": request["id"], "error": f"{type(exc).__name__}: {exc}"}
        print(json.dumps(reply), flush=True)

    while line := await reader.readline():
        task = asyncio.create_task(answer(json.loads(line)))
        pending.add(task)
        task.add_done_callback(pending.discard)
    await asyncio.gather(*pending)
    for name in list(host.listeners):
        await host.handle({"op": "leave", "name": name})


class RemoteListeners:
    """The test's side: `join`, `hear` and `leave` run in the child process."""

    def __init__(self) -> None:
        self._proc: asyncio.subprocess.Process | None = None
        self._answers: dict[int, asyncio.Future[dict[str, Any]]] = {}
        self._next = 0
        self._reader: asyncio.Task[None] | None = None

    @property
    def pid(self) -> int:
        assert self._proc is not None
        return self._proc.pid

    async def start(self) -> None:
        self._proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "tests.reliability.remote_listeners",
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
        )
        self._reader = asyncio.create_task(self._read(), name="remote-listeners")

    async def _read(self) -> None:
        assert self._proc is not None and self._proc.stdout is not None
        while line := await self._proc.stdout.readline():
            reply = json.loads(line)
            future = self._answers.pop(reply.pop("id"), None)
            if future is not None and not future.done():
                future.set_result(reply)
        for future in self._answers.values():  # the child is gone
            future.set_exception(RuntimeError("the listeners' process ended"))

    async def _call(self, op: str, name: str, **fields: object) -> dict[str, Any]:
        assert self._proc is not None and self._proc.stdin is not None
        self._next += 1
        future = self._answers[self._next] = asyncio.get_running_loop().create_future()
        request = {"id": self._next, "op": op, "name": name, **fields}
        self._proc.stdin.write(json.dumps(request).encode() + b"\n")
        await self._proc.stdin.drain()
        reply = await future
        if "error" in reply:
            raise RuntimeError(f"listener {op} failed: {reply['error']}")
        return reply

    async def join(self, name: str, url: str, token: str) -> None:
        """A listener joins the room and has subscribed to the agent's track."""
        await self._call("join", name, url=url, token=token)

    async def hear(self, name: str, seconds: float, since: float, within: float) -> bool:
        """Whether `seconds` of speech arrived after `since` (a perf_counter moment: the
        same clock in both processes) within `within` seconds."""
        reply = await self._call("hear", name, seconds=seconds, since=since, within=within)
        return bool(reply["heard"])

    async def leave(self, name: str) -> None:
        await self._call("leave", name)

    async def aclose(self) -> None:
        if self._proc is None:
            return
        assert self._proc.stdin is not None
        self._proc.stdin.close()  # the child leaves its rooms and ends
        try:
            await asyncio.wait_for(self._proc.wait(), 30)
        except TimeoutError:
            self._proc.kill()  # never left running after the test
            await self._proc.wait()
            raise
        finally:
            if self._reader is not None:
                await self._reader


if __name__ == "__main__":
    asyncio.run(_serve())
