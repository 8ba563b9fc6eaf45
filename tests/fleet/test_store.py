"""Both stores pass the same registry suite: the embedded default and Redis."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from fleet.memory_store import MemoryStore
from fleet.records import VoiceInfo, WorkerRecord
from fleet.redis_store import RedisStore
from fleet.store import Store, StoreUnavailable
from fleet.workers import list_workers, put_worker, remove_worker
from tests.processes import RedisServer, free_port


def record(worker_id: str, active: int = 0) -> WorkerRecord:
    return WorkerRecord(
        worker_id=worker_id,
        address=f"127.0.0.1:{7000 + len(worker_id)}",
        engine="piper",
        voices=(VoiceInfo("en_US-joe-medium", 22050, "en_US"),),
        default_voice="en_US-joe-medium",
        max_streams=4,
        active_streams=active,
    )


@pytest.fixture(params=["memory", "redis"])
async def store(request: pytest.FixtureRequest) -> AsyncIterator[Store]:
    if request.param == "memory":
        yield MemoryStore()
        return
    server: RedisServer = request.getfixturevalue("redis_server")
    redis = RedisStore(server.url, prefix=f"test{free_port()}:")
    yield redis
    await redis.aclose()


async def test_put_and_list(store: Store) -> None:
    await put_worker(store, record("a"), ttl_seconds=10)
    await put_worker(store, record("b"), ttl_seconds=10)
    await put_worker(store, record("a", active=3), ttl_seconds=10)  # a refresh replaces
    workers = sorted(await list_workers(store), key=lambda w: w.worker_id)
    assert [w.worker_id for w in workers] == ["a", "b"]
    assert workers[0] == record("a", active=3)


async def test_worker_that_stops_heartbeating_drops_out_after_ttl(store: Store) -> None:
    await put_worker(store, record("steady"), ttl_seconds=10)
    await put_worker(store, record("silent"), ttl_seconds=0.3)
    assert {w.worker_id for w in await list_workers(store)} == {"steady", "silent"}
    await asyncio.sleep(0.5)
    assert {w.worker_id for w in await list_workers(store)} == {"steady"}


async def test_heartbeat_extends_the_ttl(store: Store) -> None:
    for _ in range(4):
        await put_worker(store, record("beating"), ttl_seconds=0.3)
        await asyncio.sleep(0.15)
    assert [w.worker_id for w in await list_workers(store)] == ["beating"]


async def test_remove_is_immediate(store: Store) -> None:
    await put_worker(store, record("leaving"), ttl_seconds=10)
    await remove_worker(store, "leaving")
    await remove_worker(store, "never-there")
    assert await list_workers(store) == []


async def test_ping(store: Store) -> None:
    await store.ping()


async def test_unreachable_redis_raises_store_unavailable() -> None:
    redis = RedisStore(f"redis://127.0.0.1:{free_port()}/0", timeout_seconds=0.2)
    try:
        with pytest.raises(StoreUnavailable):
            await redis.ping()
        with pytest.raises(StoreUnavailable):
            await redis.list_records("worker")
        with pytest.raises(StoreUnavailable):
            await redis.put_record("worker", "x", "{}", 1)
    finally:
        await redis.aclose()


async def test_counters_add_up_and_read_by_prefix(store: Store) -> None:
    """Counter hashes: concurrent increments add, and a prefix read finds every instance."""
    await asyncio.gather(
        *(store.add_counters("m:replica-a", {"requests": 1.0, "seconds": 0.25}) for _ in range(20))
    )
    await store.add_counters("m:replica-b", {"requests": 3.0})
    await store.add_counters("other:x", {"requests": 100.0})
    counters = await store.read_counters("m:")
    assert counters == {
        "replica-a": {"requests": 20.0, "seconds": 5.0},
        "replica-b": {"requests": 3.0},
    }


async def test_records_with_and_without_ttl(store: Store) -> None:
    """Generic records (sessions, replicas): TTL expiry, permanence without TTL, removal."""
    await store.put_record("session", "s1", '{"state": "active"}', ttl_seconds=None)
    await store.put_record("replica", "r1", "{}", ttl_seconds=0.3)
    await store.put_record("replica", "r2", "{}", ttl_seconds=10)
    assert await store.get_record("session", "s1") == '{"state": "active"}'
    assert set(await store.list_records("replica")) == {"r1", "r2"}
    await asyncio.sleep(0.5)
    assert set(await store.list_records("replica")) == {"r2"}
    assert await store.get_record("replica", "r1") is None
    assert await store.get_record("session", "s1") is not None
    await store.remove_record("session", "s1")
    await store.remove_record("session", "absent")
    assert await store.list_records("session") == {}
