"""How both processes run: start, serve until SIGTERM or SIGINT, drain, exit; and the
container probes' command line."""

from __future__ import annotations

import asyncio
import signal
import sys
from collections.abc import Callable
from importlib import metadata
from typing import Protocol


def package_version() -> str:
    """The installed version of this project (both processes report it in metrics)."""
    try:
        return metadata.version("voice-orchestrator")
    except metadata.PackageNotFoundError:
        return "unknown"


class Service(Protocol):
    async def start(self) -> None: ...

    async def drain(self) -> None: ...


async def serve_until_signalled(service: Service) -> None:
    """Start the service, wait for SIGTERM or SIGINT, then let it drain."""
    await service.start()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    await service.drain()


def run_probe(
    argv: list[str] | None, usage: str, check: Callable[[str], tuple[bool, str]], default: str
) -> int:
    """A health probe's main: one optional target argument; exit 0 only when healthy.
    Standard library only, so the probe starts fast in any image."""
    args = sys.argv[1:] if argv is None else argv
    if len(args) > 1:
        print(f"usage: {usage}", file=sys.stderr)
        return 2
    healthy, seen = check(args[0] if args else default)
    print(seen, file=sys.stdout if healthy else sys.stderr)
    return 0 if healthy else 1
