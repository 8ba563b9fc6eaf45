"""Keeps this worker's entry in the fleet registry fresh."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from fleet.records import WorkerRecord
from fleet.store import Store, StoreUnavailable
from fleet.workers import put_worker
from tts_rpc.v1 import tts_pb2

log = logging.getLogger(__name__)


async def heartbeat_forever(
    store: Store,
    capabilities: Callable[[], tts_pb2.Capabilities],
    address: str,
    interval_seconds: float,
    ttl_seconds: float,
) -> None:
    """Write the worker's record every interval; keep trying through store outages."""
    healthy = True
    while True:
        try:
            await put_worker(
                store, WorkerRecord.from_capabilities(capabilities(), address), ttl_seconds
            )
            if not healthy:
                log.info("heartbeat restored")
            healthy = True
        except StoreUnavailable as exc:
            if healthy:
                log.warning("heartbeat failed", extra={"reason": str(exc)})
            healthy = False
        await asyncio.sleep(interval_seconds)
