"""The Redis-backed store shared by every replica and worker of a fleet."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Mapping
from typing import Any

from redis import asyncio as aioredis
from redis.exceptions import RedisError

from fleet.store import COUNTERS_BATCH_FIELD, StoreUnavailable

# Compare and set of one record (and its kind's index), atomic inside Redis. A record that
# already holds the new value counts as set: a retry whose first answer was lost.
# KEYS: record, index. ARGV: "1" to expect no record, expected, value, ttl ms ("" none), key.
_SWAP = """
local current = redis.call('GET', KEYS[1])
if current ~= ARGV[3] then
  if ARGV[1] == '1' then
    if current then return 0 end
  elseif current ~= ARGV[2] then
    return 0
  end
end
if ARGV[4] == '' then
  redis.call('SET', KEYS[1], ARGV[3])
else
  redis.call('SET', KEYS[1], ARGV[3], 'PX', ARGV[4])
end
redis.call('SADD', KEYS[2], ARGV[5])
return 1
"""

# Append entry `seq` to a stream whose IDs are "<seq>-1", only above the last one.
# KEYS: stream. ARGV: seq, entry, max length, ttl ms.
_APPEND = """
local last = redis.call('XREVRANGE', KEYS[1], '+', '-', 'COUNT', 1)
if #last > 0 and tonumber(string.match(last[1][1], '^(%d+)')) >= tonumber(ARGV[1]) then
  return 0
end
redis.call('XADD', KEYS[1], 'MAXLEN', ARGV[3], ARGV[1] .. '-1', 'e', ARGV[2])
redis.call('PEXPIRE', KEYS[1], ARGV[4])
return 1
"""

# Add a batch of counter deltas unless it is the batch added last (a resend after a lost
# answer; redis-py itself resends a command whose answer timed out).
# KEYS: hash. ARGV: batch field, batch id, then field and delta pairs.
_ADD_BATCH = """
if redis.call('HGET', KEYS[1], ARGV[1]) == ARGV[2] then return 0 end
for i = 3, #ARGV, 2 do
  redis.call('HINCRBYFLOAT', KEYS[1], ARGV[i], ARGV[i + 1])
end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
return 1
"""


@contextlib.asynccontextmanager
async def _call() -> AsyncIterator[None]:
    """One store operation: a Redis failure is StoreUnavailable, and a cancellation of the
    calling task is never lost. redis-py can swallow a CancelledError that arrives while a
    command is in flight and return normally, so a cancelled owner (a periodic refresh)
    would go on as if nothing happened and its `cancel_and_wait` would never return."""
    task = asyncio.current_task()
    cancels = task.cancelling() if task is not None else 0
    try:
        yield
    except (RedisError, OSError) as exc:
        if task is not None and task.cancelling() > cancels:
            raise asyncio.CancelledError from None
        raise StoreUnavailable(f"redis unreachable: {type(exc).__name__}") from exc
    if task is not None and task.cancelling() > cancels:
        raise asyncio.CancelledError


class RedisStore:
    """Records in Redis: one (optionally expiring) key per record plus a set of keys per
    kind, so readers list a kind without SCAN; keys whose record expired are pruned from the
    set by whoever lists next. Counters are hashes updated with HINCRBYFLOAT. Logs are
    streams whose entry IDs carry the writer's sequence numbers (`<seq>-1`)."""

    kind = "redis"

    def __init__(self, url: str, *, prefix: str = "vo:", timeout_seconds: float = 1.0) -> None:
        self._redis = aioredis.from_url(
            url,
            socket_timeout=timeout_seconds,
            socket_connect_timeout=timeout_seconds,
            decode_responses=False,
        )
        self._prefix = prefix
        # A blocking read must end well inside the socket timeout, or it reads as an outage.
        self._max_block_ms = max(int(timeout_seconds * 500), 1)
        self._swap = self._redis.register_script(_SWAP)
        self._append = self._redis.register_script(_APPEND)
        self._add_batch = self._redis.register_script(_ADD_BATCH)

    async def ping(self) -> None:
        async with _call():
            await self._redis.ping()

    def _record_key(self, kind: str, key: str) -> str:
        return f"{self._prefix}{kind}:{key}"

    def _index_key(self, kind: str) -> str:
        return f"{self._prefix}{kind}-index"

    async def put_record(self, kind: str, key: str, value: str, ttl_seconds: float | None) -> None:
        async with _call(), self._redis.pipeline(transaction=True) as pipe:
            pipe.set(self._record_key(kind, key), value, px=_ms(ttl_seconds))
            pipe.sadd(self._index_key(kind), key)
            await pipe.execute()

    async def swap_record(
        self, kind: str, key: str, expected: str | None, value: str, ttl_seconds: float | None
    ) -> bool:
        ttl = _ms(ttl_seconds)
        args = ["1" if expected is None else "0", expected or "", value, ttl or "", key]
        async with _call():
            done = await self._swap(
                keys=[self._record_key(kind, key), self._index_key(kind)], args=args
            )
        return bool(done)

    async def get_record(self, kind: str, key: str) -> str | None:
        async with _call():
            raw = await self._redis.get(self._record_key(kind, key))
        return None if raw is None else _text(raw)

    async def list_records(self, kind: str) -> dict[str, str]:
        async with _call():
            keys = sorted(_text(m) for m in await self._redis.smembers(self._index_key(kind)))
            if not keys:
                return {}
            raws = await self._redis.mget([self._record_key(kind, k) for k in keys])
            gone = [k for k, raw in zip(keys, raws, strict=True) if raw is None]
            if gone:
                await self._redis.srem(self._index_key(kind), *gone)
        return {k: _text(raw) for k, raw in zip(keys, raws, strict=True) if raw is not None}

    async def remove_record(self, kind: str, key: str) -> None:
        async with _call(), self._redis.pipeline(transaction=True) as pipe:
            pipe.delete(self._record_key(kind, key))
            pipe.srem(self._index_key(kind), key)
            await pipe.execute()

    async def append_log(
        self, key: str, seq: int, entry: str, *, max_len: int, ttl_seconds: float
    ) -> bool:
        if seq < 0:
            raise ValueError("log sequence numbers start at 0")
        args: list[str | int] = [seq, entry, max_len, _ms(ttl_seconds) or 1]
        async with _call():
            done = await self._append(keys=[self._prefix + key], args=args)
        return bool(done)

    async def read_log(
        self, key: str, after: int, *, limit: int, wait_seconds: float = 0.0
    ) -> list[tuple[int, str]]:
        # XREAD returns entries above the given ID; it blocks only while there are none.
        since = f"{after}-1" if after >= 0 else "0-0"
        block = min(int(wait_seconds * 1000), self._max_block_ms) if wait_seconds > 0 else None
        async with _call():
            found: Any = await self._redis.xread(
                {self._prefix + key: since}, count=limit, block=block
            )
        if not found:
            return []
        [(_, entries)] = found
        return [(int(_text(eid).split("-")[0]), _text(data[b"e"])) for eid, data in entries]

    async def add_counters(self, key: str, deltas: Mapping[str, float], *, batch: str) -> bool:
        args: list[str | float] = [COUNTERS_BATCH_FIELD, batch]
        for name, delta in deltas.items():
            args += [name, delta]
        async with _call():
            done = await self._add_batch(keys=[self._prefix + key], args=args)
        return bool(done)

    async def read_counters(self, prefix: str) -> dict[str, dict[str, float]]:
        full = self._prefix + prefix
        async with _call():
            keys = [key async for key in self._redis.scan_iter(match=f"{full}*", count=500)]
            async with self._redis.pipeline(transaction=False) as pipe:
                for key in keys:
                    pipe.hgetall(key)
                hashes = await pipe.execute()
        return {
            _text(key)[len(full) :]: {
                _text(k): float(v) for k, v in values.items() if _text(k) != COUNTERS_BATCH_FIELD
            }
            for key, values in zip(keys, hashes, strict=True)
        }

    async def aclose(self) -> None:
        await self._redis.aclose()


def _ms(seconds: float | None) -> int | None:
    return None if seconds is None else max(int(seconds * 1000), 1)


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value
