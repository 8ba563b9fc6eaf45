"""The store interface: the fleet's shared memory, implemented by Redis and in process."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Protocol

COUNTERS_BATCH_FIELD = "_batch"
"""The field of a counter hash that holds the id of the last batch added to it; the store's
own bookkeeping, left out of what `read_counters` returns."""


class StoreUnavailable(Exception):
    """The store cannot be reached (Redis down, connection refused, timeout)."""


class Store(Protocol):
    """Shared memory of the fleet. Both implementations pass the same test suite."""

    kind: str

    async def ping(self) -> None:
        """Raise StoreUnavailable when the store cannot serve requests."""

    async def put_record(self, kind: str, key: str, value: str, ttl_seconds: float | None) -> None:
        """Store a JSON record under (kind, key); with a TTL it expires unless refreshed."""

    async def swap_record(
        self, kind: str, key: str, expected: str | None, value: str, ttl_seconds: float | None
    ) -> bool:
        """Compare and set: store the record only if it now holds `expected` (None: only if
        there is none). True when this call stored it: of callers racing with the same
        expectation, exactly one wins. A record that already holds `value` also answers
        True: the retry of a swap whose first answer was lost."""

    async def get_record(self, kind: str, key: str) -> str | None:
        """The record, or None when absent or expired."""

    async def list_records(self, kind: str) -> dict[str, str]:
        """Every live record of a kind, by key."""

    async def remove_record(self, kind: str, key: str) -> None:
        """Delete a record (no error when absent)."""

    async def append_log(
        self, key: str, seq: int, entry: str, *, max_len: int, ttl_seconds: float
    ) -> bool:
        """Add entry number `seq` (0 or more) to the log at key, keeping its newest max_len
        entries; the log expires ttl_seconds after its last append. False, and nothing
        written, unless seq is above the log's last entry: a stale writer cannot interleave."""

    async def read_log(
        self, key: str, after: int, *, limit: int, wait_seconds: float = 0.0
    ) -> list[tuple[int, str]]:
        """Up to `limit` (seq, entry) pairs with seq above `after`, oldest first. When there
        is none yet, wait up to wait_seconds for one (a shorter wait is allowed: callers
        loop)."""

    async def add_counters(self, key: str, deltas: Mapping[str, float], *, batch: str) -> bool:
        """Atomically add each delta to the named field of the hash at key, unless `batch`
        is the id of the last batch added to it (then False, and nothing changes). A writer
        that lost the answer resends the same batch: it counts once, whether or not the
        first try reached the store."""

    async def read_counters(self, prefix: str) -> dict[str, dict[str, float]]:
        """Every counter hash whose key starts with prefix, keyed by the rest of the key
        (without the batch field)."""

    async def aclose(self) -> None:
        """Release connections."""
