"""The store interface: the fleet's shared memory, implemented by Redis and in process."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Protocol


class StoreUnavailable(Exception):
    """The store cannot be reached (Redis down, connection refused, timeout)."""


class Store(Protocol):
    """Shared memory of the fleet. Both implementations pass the same test suite."""

    kind: str

    async def ping(self) -> None:
        """Raise StoreUnavailable when the store cannot serve requests."""

    async def put_record(self, kind: str, key: str, value: str, ttl_seconds: float | None) -> None:
        """Store a JSON record under (kind, key); with a TTL it expires unless refreshed."""

    async def get_record(self, kind: str, key: str) -> str | None:
        """The record, or None when absent or expired."""

    async def list_records(self, kind: str) -> dict[str, str]:
        """Every live record of a kind, by key."""

    async def remove_record(self, kind: str, key: str) -> None:
        """Delete a record (no error when absent)."""

    async def add_counters(self, key: str, deltas: Mapping[str, float]) -> None:
        """Atomically add each delta to the named field of the hash at key."""

    async def read_counters(self, prefix: str) -> dict[str, dict[str, float]]:
        """Every counter hash whose key starts with prefix, keyed by the rest of the key."""

    async def aclose(self) -> None:
        """Release connections."""
