"""`voice-orchestrator`: the public API and the ops endpoints in one process."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal

import uvicorn

from fleet.logs import configure_logging
from orchestrator.app import Services, create_apps
from orchestrator.settings import OrchestratorSettings

log = logging.getLogger(__name__)


class _Server(uvicorn.Server):
    """A uvicorn server that leaves signal handling to the Orchestrator."""

    @contextlib.contextmanager
    def capture_signals(self):  # type: ignore[no-untyped-def]  # matches uvicorn's own
        yield


class Orchestrator:
    """Runs both HTTP servers over shared services; tests start it in-process."""

    def __init__(self, settings: OrchestratorSettings) -> None:
        self.settings = settings
        self.services = Services.create(settings)
        public, ops = create_apps(self.services)
        self.public = _Server(
            uvicorn.Config(
                public,
                host=settings.host,
                port=settings.port,
                lifespan="off",
                log_config=None,
                access_log=False,
                timeout_graceful_shutdown=5,
            )
        )
        self.ops = _Server(
            uvicorn.Config(
                ops,
                host=settings.ops_host,
                port=settings.ops_port,
                lifespan="off",
                log_config=None,
                access_log=False,
            )
        )
        self._tasks: list[asyncio.Task[None]] = []

    async def start(self) -> None:
        await self.services.start()
        for name, server in (("public", self.public), ("ops", self.ops)):
            self._tasks.append(asyncio.create_task(server.serve(), name=f"http-{name}"))
        while not (self.public.started and self.ops.started):
            if any(t.done() for t in self._tasks):
                await asyncio.gather(*self._tasks)  # surfaces the bind error
                raise OSError("an HTTP server stopped during start-up")
            await asyncio.sleep(0.02)
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
        deadline = asyncio.get_running_loop().time() + self.settings.drain_timeout_seconds
        while services.synthesis.active or services.sessions.busy():
            if asyncio.get_running_loop().time() >= deadline:
                log.warning(
                    "drain timeout: stopping with work under way",
                    extra={"streams": services.synthesis.active},
                )
                break
            await asyncio.sleep(0.05)
        await self.stop()

    async def stop(self) -> None:
        for server in (self.public, self.ops):
            server.should_exit = True
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self.services.aclose()


async def serve(settings: OrchestratorSettings) -> None:
    orchestrator = Orchestrator(settings)
    await orchestrator.start()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    await orchestrator.drain()


def main() -> None:
    settings = OrchestratorSettings()
    configure_logging(settings.log_level, settings.log_json)
    asyncio.run(serve(settings))


if __name__ == "__main__":
    main()
