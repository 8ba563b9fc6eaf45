"""`voice-orchestrator`: the public API and the ops endpoints in one process."""

from __future__ import annotations

import asyncio
import contextlib
import logging

import uvicorn
from fastapi import FastAPI

from fleet import aio
from fleet.logs import configure_logging
from fleet.process import serve_until_signalled
from orchestrator.app import Services, create_apps
from orchestrator.settings import OrchestratorSettings

log = logging.getLogger(__name__)

STARTUP_TIMEOUT_SECONDS = 30.0
KEEP_ALIVE_SECONDS = 75
"""Idle HTTP keep-alive on both servers (nginx's default)."""


class _Server(uvicorn.Server):
    """A uvicorn server that leaves signal handling to the Orchestrator."""

    @contextlib.contextmanager
    def capture_signals(self):  # type: ignore[no-untyped-def]  # matches uvicorn's own
        yield


def _server(app: FastAPI, host: str, port: int, graceful_seconds: int | None) -> _Server:
    """uvicorn in our loop: no lifespan (Services start and stop around it), our logging."""
    config = uvicorn.Config(
        app,
        host=host,
        port=port,
        lifespan="off",
        log_config=None,
        access_log=False,
        timeout_graceful_shutdown=graceful_seconds,
        # Longer than the idle expiry of client pools and proxies (httpx: 5 s, as uvicorn's
        # default): the client closes an idle connection first, instead of sending a request
        # on one the server closes in the same instant (the client reads a reset).
        timeout_keep_alive=KEEP_ALIVE_SECONDS,
    )
    return _Server(config)


class Orchestrator:
    """Runs both HTTP servers over shared services; tests start it in-process."""

    def __init__(self, settings: OrchestratorSettings) -> None:
        self.settings = settings
        self.services = Services.create(settings)
        public, ops = create_apps(self.services)
        # The public server's streams get 5 s to end on shutdown; the ops one has none.
        self.public = _server(public, settings.host, settings.port, graceful_seconds=5)
        self.ops = _server(ops, settings.ops_host, settings.ops_port, graceful_seconds=None)
        self._tasks: list[asyncio.Task[None]] = []

    async def start(self) -> None:
        await self.services.start()
        for name, server in (("public", self.public), ("ops", self.ops)):
            self._tasks.append(asyncio.create_task(server.serve(), name=f"http-{name}"))
        # uvicorn offers only a `started` flag to wait on; a server that stops instead (a bind
        # error) ends its task, which ends the wait too.
        await aio.poll_until(
            lambda: (
                (self.public.started and self.ops.started) or any(t.done() for t in self._tasks)
            ),
            timeout_seconds=STARTUP_TIMEOUT_SECONDS,
        )
        if not (self.public.started and self.ops.started):
            await asyncio.gather(*self._tasks)  # surfaces the bind error
            raise OSError("an HTTP server did not start")
        log.info(
            "orchestrator ready",
            extra={
                "port": self.settings.port,
                "ops_port": self.settings.ops_port,
                "store": self.services.store.kind,
            },
        )

    async def drain(self) -> None:
        """Refuse new work (readyz and new requests answer 503), let streams and utterances
        under way finish within the drain timeout, then stop."""
        services = self.services
        services.synthesis.draining = True
        services.sessions.draining = True
        log.info("draining", extra={"timeout_seconds": self.settings.drain_timeout_seconds})
        idle = await aio.poll_until(
            lambda: not services.synthesis.active and not services.sessions.busy(),
            timeout_seconds=self.settings.drain_timeout_seconds,
            interval_seconds=0.05,
        )
        if not idle:
            log.warning(
                "drain timeout: stopping with work under way",
                extra={"streams": services.synthesis.active},
            )
        await self.stop()

    async def stop(self) -> None:
        for server in (self.public, self.ops):
            server.should_exit = True
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self.services.aclose()


def main() -> None:
    settings = OrchestratorSettings()
    configure_logging(settings.log_level, settings.log_json)
    asyncio.run(serve_until_signalled(Orchestrator(settings)))


if __name__ == "__main__":
    main()
