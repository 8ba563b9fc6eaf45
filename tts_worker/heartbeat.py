"""Keeps this worker's entry in the fleet registry fresh."""

from __future__ import annotations

import logging
from collections.abc import Callable

from fleet import aio
from fleet.records import WorkerRecord
from fleet.store import Store, StoreUnavailable
from fleet.workers import put_worker
from tts_rpc.v1 import tts_pb2

log = logging.getLogger(__name__)


class Heartbeat:
    """Writes the worker's record under its TTL; logs each change between failing and not,
    not every failed beat, through a store outage."""

    def __init__(
        self,
        store: Store,
        capabilities: Callable[[], tts_pb2.Capabilities],
        address: str,
        ttl_seconds: float,
    ) -> None:
        self._store = store
        self._capabilities = capabilities
        self._address = address
        self._ttl = ttl_seconds
        self.healthy = True

    async def beat(self) -> None:
        record = WorkerRecord.from_capabilities(self._capabilities(), self._address)
        try:
            await put_worker(self._store, record, self._ttl)
        except StoreUnavailable as exc:
            if self.healthy:
                log.warning("heartbeat failed", extra={"reason": str(exc)})
            self.healthy = False
            return
        if not self.healthy:
            log.info("heartbeat restored")
        self.healthy = True


async def heartbeat_forever(
    store: Store,
    capabilities: Callable[[], tts_pb2.Capabilities],
    address: str,
    interval_seconds: float,
    ttl_seconds: float,
) -> None:
    """Write the worker's record every interval; keep trying through store outages."""
    heartbeat = Heartbeat(store, capabilities, address, ttl_seconds)
    await aio.every(interval_seconds, heartbeat.beat, what="heartbeat", first_delay=False)
