"""The Redis-backed store shared by every replica and worker of a fleet."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Mapping

from redis import asyncio as aioredis
from redis.exceptions import RedisError

from fleet.store import StoreUnavailable


class RedisStore:
    """Records in Redis: one (optionally expiring) key per record plus a set of keys per
    kind, so readers list a kind without SCAN; keys whose record expired are pruned from the
    set by whoever lists next. Counters are hashes updated with HINCRBYFLOAT."""

    kind = "redis"

    def __init__(self, url: str, *, prefix: str = "vo:", timeout_seconds: float = 1.0) -> None:
        self._redis = aioredis.from_url(
            url,
            socket_timeout=timeout_seconds,
            socket_connect_timeout=timeout_seconds,
            decode_responses=False,
        )
        self._prefix = prefix

    async def ping(self) -> None:
        async with _call():
            await self._redis.ping()

    def _record_key(self, kind: str, key: str) -> str:
        return f"{self._prefix}{kind}:{key}"

    def _index_key(self, kind: str) -> str:
        return f"{self._prefix}{kind}-index"

    async def put_record(self, kind: str, key: str, value: str, ttl_seconds: float | None) -> None:
        async with _call(), self._redis.pipeline(transaction=True) as pipe:
            ttl_ms = None if ttl_seconds is None else max(int(ttl_seconds * 1000), 1)
            pipe.set(self._record_key(kind, key), value, px=ttl_ms)
            pipe.sadd(self._index_key(kind), key)
            await pipe.execute()

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

    async def add_counters(self, key: str, deltas: Mapping[str, float]) -> None:
        async with _call(), self._redis.pipeline(transaction=True) as pipe:
            for name, delta in deltas.items():
                pipe.hincrbyfloat(self._prefix + key, name, delta)
            await pipe.execute()

    async def read_counters(self, prefix: str) -> dict[str, dict[str, float]]:
        full = self._prefix + prefix
        async with _call():
            keys = [key async for key in self._redis.scan_iter(match=f"{full}*", count=500)]
            async with self._redis.pipeline(transaction=False) as pipe:
                for key in keys:
                    pipe.hgetall(key)
                hashes = await pipe.execute()
        return {
            _text(key)[len(full) :]: {_text(k): float(v) for k, v in values.items()}
            for key, values in zip(keys, hashes, strict=True)
        }

    async def aclose(self) -> None:
        await self._redis.aclose()


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


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
