"""The in-process store that serves a single node when no Redis is configured."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping

from fleet.records import WorkerRecord


class MemoryStore:
    """Dictionary-backed store with the same expiry semantics as the Redis one."""

    kind = "memory"

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._workers: dict[str, tuple[float, WorkerRecord]] = {}
        self._counters: dict[str, dict[str, float]] = {}

    async def ping(self) -> None:
        return None

    async def put_worker(self, record: WorkerRecord, ttl_seconds: float) -> None:
        self._workers[record.worker_id] = (self._clock() + ttl_seconds, record)

    async def remove_worker(self, worker_id: str) -> None:
        self._workers.pop(worker_id, None)

    async def list_workers(self) -> list[WorkerRecord]:
        now = self._clock()
        expired = [wid for wid, (deadline, _) in self._workers.items() if deadline <= now]
        for wid in expired:
            del self._workers[wid]
        return [record for _, record in self._workers.values()]

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
