"""The in-process store that serves a single node when no Redis is configured."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping


class MemoryStore:
    """Dictionary-backed store with the same expiry semantics as the Redis one."""

    kind = "memory"

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._counters: dict[str, dict[str, float]] = {}
        self._records: dict[str, dict[str, tuple[float | None, str]]] = {}

    async def ping(self) -> None:
        return None

    async def put_record(self, kind: str, key: str, value: str, ttl_seconds: float | None) -> None:
        deadline = None if ttl_seconds is None else self._clock() + ttl_seconds
        self._records.setdefault(kind, {})[key] = (deadline, value)

    async def get_record(self, kind: str, key: str) -> str | None:
        return (await self.list_records(kind)).get(key)

    async def list_records(self, kind: str) -> dict[str, str]:
        records = self._records.get(kind, {})
        now = self._clock()
        for key in [
            k for k, (deadline, _) in records.items() if deadline is not None and deadline <= now
        ]:
            del records[key]
        return {key: value for key, (_, value) in records.items()}

    async def remove_record(self, kind: str, key: str) -> None:
        self._records.get(kind, {}).pop(key, None)

    async def add_counters(self, key: str, deltas: Mapping[str, float]) -> None:
        counters = self._counters.setdefault(key, {})
        for name, delta in deltas.items():
            counters[name] = counters.get(name, 0.0) + delta

    async def read_counters(self, prefix: str) -> dict[str, dict[str, float]]:
        return {
            key[len(prefix) :]: dict(values)
            for key, values in self._counters.items()
            if key.startswith(prefix)
        }

    async def aclose(self) -> None:
        return None
