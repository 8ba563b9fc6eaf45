"""The store interface, and how to open the right one for a configuration."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Protocol

from fleet.records import WorkerRecord


class StoreUnavailable(Exception):
    """The store cannot be reached (Redis down, connection refused, timeout)."""


class Store(Protocol):
    """Shared memory of the fleet. Both implementations pass the same test suite."""

    kind: str

    async def ping(self) -> None:
        """Raise StoreUnavailable when the store cannot serve requests."""

    async def put_worker(self, record: WorkerRecord, ttl_seconds: float) -> None:
        """Register or refresh a worker; it disappears ttl_seconds after its last refresh."""

    async def remove_worker(self, worker_id: str) -> None:
        """Drop a worker at once (clean shutdown)."""

    async def list_workers(self) -> list[WorkerRecord]:
        """Every worker whose heartbeat has not expired."""

    async def add_counters(self, key: str, deltas: Mapping[str, float]) -> None:
        """Atomically add each delta to the named field of the hash at key."""

    async def read_counters(self, prefix: str) -> dict[str, dict[str, float]]:
        """Every counter hash whose key starts with prefix, keyed by the rest of the key."""

    async def aclose(self) -> None:
        """Release connections."""


def open_store(redis_url: str | None, *, prefix: str = "vo:") -> Store:
    """Redis when a URL is configured, otherwise the in-process single-node store."""
    if redis_url:
        from fleet.redis_store import RedisStore

        return RedisStore(redis_url, prefix=prefix)
    from fleet.memory_store import MemoryStore

    return MemoryStore()
