"""Opening the store a configuration names: Redis, or the in-process single-node store."""

from __future__ import annotations

from fleet.memory_store import MemoryStore
from fleet.redis_store import RedisStore
from fleet.store import Store


def open_store(redis_url: str | None, *, prefix: str = "vo:") -> Store:
    """Redis when a URL is configured, otherwise the in-process single-node store."""
    if redis_url:
        return RedisStore(redis_url, prefix=prefix)
    return MemoryStore()
