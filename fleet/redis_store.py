"""The Redis-backed store shared by every replica and worker of a fleet."""

from __future__ import annotations

from collections.abc import Mapping

from redis import asyncio as aioredis
from redis.exceptions import RedisError

from fleet.records import WorkerRecord
from fleet.store import StoreUnavailable


class RedisStore:
    """Worker registry in Redis: one expiring key per worker plus a set of worker ids.

    The set lets readers list workers without SCAN; ids whose key has expired are
    pruned from it by whoever lists next.
    """

    kind = "redis"

    def __init__(self, url: str, *, prefix: str = "vo:", timeout_seconds: float = 1.0) -> None:
        self._redis = aioredis.from_url(
            url,
            socket_timeout=timeout_seconds,
            socket_connect_timeout=timeout_seconds,
            decode_responses=False,
        )
        self._prefix = prefix
        self._workers_key = f"{prefix}workers"

    def _worker_key(self, worker_id: str) -> str:
        return f"{self._prefix}worker:{worker_id}"

    async def ping(self) -> None:
        try:
            await self._redis.ping()
        except (RedisError, OSError) as exc:
            raise StoreUnavailable(f"redis unreachable: {type(exc).__name__}") from exc

    async def put_worker(self, record: WorkerRecord, ttl_seconds: float) -> None:
        try:
            async with self._redis.pipeline(transaction=True) as pipe:
                pipe.set(
                    self._worker_key(record.worker_id),
                    record.to_json(),
                    px=max(int(ttl_seconds * 1000), 1),
                )
                pipe.sadd(self._workers_key, record.worker_id)
                await pipe.execute()
        except (RedisError, OSError) as exc:
            raise StoreUnavailable(f"redis unreachable: {type(exc).__name__}") from exc

    async def remove_worker(self, worker_id: str) -> None:
        try:
            async with self._redis.pipeline(transaction=True) as pipe:
                pipe.delete(self._worker_key(worker_id))
                pipe.srem(self._workers_key, worker_id)
                await pipe.execute()
        except (RedisError, OSError) as exc:
            raise StoreUnavailable(f"redis unreachable: {type(exc).__name__}") from exc

    async def list_workers(self) -> list[WorkerRecord]:
        try:
            members = await self._redis.smembers(self._workers_key)
            ids = sorted(_text(m) for m in members)
            if not ids:
                return []
            raws = await self._redis.mget([self._worker_key(i) for i in ids])
            gone = [wid for wid, raw in zip(ids, raws, strict=True) if raw is None]
            if gone:
                await self._redis.srem(self._workers_key, *gone)
        except (RedisError, OSError) as exc:
            raise StoreUnavailable(f"redis unreachable: {type(exc).__name__}") from exc
        return [WorkerRecord.from_json(raw) for raw in raws if raw is not None]

    async def add_counters(self, key: str, deltas: Mapping[str, float]) -> None:
        try:
            async with self._redis.pipeline(transaction=True) as pipe:
                for name, delta in deltas.items():
                    pipe.hincrbyfloat(self._prefix + key, name, delta)
                await pipe.execute()
        except (RedisError, OSError) as exc:
            raise StoreUnavailable(f"redis unreachable: {type(exc).__name__}") from exc

    async def read_counters(self, prefix: str) -> dict[str, dict[str, float]]:
        full = self._prefix + prefix
        try:
            keys = [key async for key in self._redis.scan_iter(match=f"{full}*", count=500)]
            async with self._redis.pipeline(transaction=False) as pipe:
                for key in keys:
                    pipe.hgetall(key)
                hashes = await pipe.execute()
        except (RedisError, OSError) as exc:
            raise StoreUnavailable(f"redis unreachable: {type(exc).__name__}") from exc
        return {
            _text(key)[len(full) :]: {_text(k): float(v) for k, v in values.items()}
            for key, values in zip(keys, hashes, strict=True)
        }

    async def aclose(self) -> None:
        await self._redis.aclose()


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value
