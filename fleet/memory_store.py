"""The in-process store that serves a single node when no Redis is configured."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field


@dataclass
class _Log:
    entries: deque[tuple[int, str]]
    deadline: float
    appended: asyncio.Event = field(default_factory=asyncio.Event)


class MemoryStore:
    """Dictionary-backed store with the same expiry semantics as the Redis one."""

    kind = "memory"

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._counters: dict[str, dict[str, float]] = {}
        self._last_batch: dict[str, str] = {}
        self._records: dict[str, dict[str, tuple[float | None, str]]] = {}
        self._logs: dict[str, _Log] = {}

    async def ping(self) -> None:
        return None

    async def put_record(self, kind: str, key: str, value: str, ttl_seconds: float | None) -> None:
        deadline = None if ttl_seconds is None else self._clock() + ttl_seconds
        self._records.setdefault(kind, {})[key] = (deadline, value)

    async def swap_record(
        self, kind: str, key: str, expected: str | None, value: str, ttl_seconds: float | None
    ) -> bool:
        # No await before the write: nothing can run in between, so the swap is atomic.
        current = (await self.list_records(kind)).get(key)
        if current != expected and current != value:
            return False
        await self.put_record(kind, key, value, ttl_seconds)
        return True

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

    def _live_log(self, key: str) -> _Log | None:
        log = self._logs.get(key)
        if log is not None and log.deadline <= self._clock():
            # Expired. A reader waiting on it wakes at its own timeout and reads again.
            del self._logs[key]
            return None
        return log

    async def append_log(
        self, key: str, seq: int, entry: str, *, max_len: int, ttl_seconds: float
    ) -> bool:
        log = self._live_log(key)
        if log is None:
            log = self._logs[key] = _Log(deque(maxlen=max_len), 0.0)
        if log.entries and seq <= log.entries[-1][0]:
            return False
        if log.entries.maxlen != max_len:
            log.entries = deque(log.entries, maxlen=max_len)
        log.entries.append((seq, entry))
        log.deadline = self._clock() + ttl_seconds
        log.appended.set()
        log.appended = asyncio.Event()
        return True

    async def read_log(
        self, key: str, after: int, *, limit: int, wait_seconds: float = 0.0
    ) -> list[tuple[int, str]]:
        found = self._read(key, after, limit)
        if found or wait_seconds <= 0:
            return found
        log = self._live_log(key)
        if log is None:  # nothing to wait on yet: an empty log that expires with the wait
            log = self._logs[key] = _Log(deque(), self._clock() + wait_seconds)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(log.appended.wait(), wait_seconds)
        return self._read(key, after, limit)

    def _read(self, key: str, after: int, limit: int) -> list[tuple[int, str]]:
        log = self._live_log(key)
        if log is None:
            return []
        return [(seq, entry) for seq, entry in log.entries if seq > after][:limit]

    async def add_counters(self, key: str, deltas: Mapping[str, float], *, batch: str) -> bool:
        if self._last_batch.get(key) == batch:
            return False
        counters = self._counters.setdefault(key, {})
        for name, delta in deltas.items():
            counters[name] = counters.get(name, 0.0) + delta
        self._last_batch[key] = batch
        return True

    async def read_counters(self, prefix: str) -> dict[str, dict[str, float]]:
        return {
            key[len(prefix) :]: dict(values)
            for key, values in self._counters.items()
            if key.startswith(prefix)
        }

    async def aclose(self) -> None:
        return None
