"""Both stores pass the same registry suite: the embedded default and Redis. Expiry runs
on an injected clock for the in-process store, and is read back from Redis itself (its own
PTTL) for Redis: no test waits on the wall clock for a TTL."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
import redis.asyncio as aioredis

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


async def test_put_and_list(store: Store) -> None:
    await put_worker(store, record("a"), ttl_seconds=10)
    await put_worker(store, record("b"), ttl_seconds=10)
    await put_worker(store, record("a", active=3), ttl_seconds=10)  # a refresh replaces
    workers = sorted(await list_workers(store), key=lambda w: w.worker_id)
    assert [w.worker_id for w in workers] == ["a", "b"]
    assert workers[0] == record("a", active=3)


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


async def test_memory_record_expires_exactly_at_its_ttl() -> None:
    clock = FakeClock()
    store = MemoryStore(clock=clock)
    await put_worker(store, record("steady"), ttl_seconds=10)
    await put_worker(store, record("silent"), ttl_seconds=0.3)
    clock.now += 0.299
    assert {w.worker_id for w in await list_workers(store)} == {"steady", "silent"}
    clock.now += 0.002
    assert {w.worker_id for w in await list_workers(store)} == {"steady"}
    assert await store.get_record("worker", "silent") is None


async def test_memory_heartbeat_extends_the_ttl() -> None:
    clock = FakeClock()
    store = MemoryStore(clock=clock)
    for _ in range(4):  # 0.6 s in all, each refresh inside the previous 0.3 s TTL
        await put_worker(store, record("beating"), ttl_seconds=0.3)
        clock.now += 0.15
    assert [w.worker_id for w in await list_workers(store)] == ["beating"]
    clock.now += 0.16  # 0.31 s after the last refresh
    assert await list_workers(store) == []


async def test_memory_record_without_ttl_never_expires() -> None:
    clock = FakeClock()
    store = MemoryStore(clock=clock)
    await store.put_record("session", "s1", "{}", ttl_seconds=None)
    clock.now += 10**9
    assert await store.get_record("session", "s1") == "{}"


@pytest.fixture
async def redis_pair(
    redis_server: RedisServer,
) -> AsyncIterator[tuple[RedisStore, aioredis.Redis, str]]:
    """A RedisStore and a plain client on the same server, to read what the store wrote."""
    prefix = f"ttl{free_port()}:"
    store = RedisStore(redis_server.url, prefix=prefix)
    raw = aioredis.from_url(redis_server.url)
    yield store, raw, prefix
    await store.aclose()
    await raw.aclose()


async def test_redis_sets_the_ttl_on_the_record_key(
    redis_pair: tuple[RedisStore, aioredis.Redis, str],
) -> None:
    store, raw, prefix = redis_pair
    await put_worker(store, record("silent"), ttl_seconds=30)
    await store.put_record("session", "s1", "{}", ttl_seconds=None)
    ttl_ms = await raw.pttl(f"{prefix}worker:silent")
    assert 29_000 < ttl_ms <= 30_000
    assert await raw.pttl(f"{prefix}session:s1") == -1  # no expiry


async def test_redis_heartbeat_resets_the_ttl(
    redis_pair: tuple[RedisStore, aioredis.Redis, str],
) -> None:
    store, raw, prefix = redis_pair
    await put_worker(store, record("beating"), ttl_seconds=30)
    await raw.pexpire(f"{prefix}worker:beating", 5_000)  # as if 25 s had passed
    await put_worker(store, record("beating"), ttl_seconds=30)
    assert await raw.pttl(f"{prefix}worker:beating") > 29_000


async def test_redis_expired_record_is_gone_from_lists(
    redis_pair: tuple[RedisStore, aioredis.Redis, str],
) -> None:
    """Redis expires the key itself; listing then prunes it from the kind's index."""
    store, raw, prefix = redis_pair
    await put_worker(store, record("steady"), ttl_seconds=30)
    await put_worker(store, record("silent"), ttl_seconds=30)
    await raw.delete(f"{prefix}worker:silent")  # what Redis does when the TTL runs out
    assert {w.worker_id for w in await list_workers(store)} == {"steady"}
    assert await raw.smembers(f"{prefix}worker-index") == {b"steady"}


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
    """Counter hashes: batches add up, and a prefix read finds every instance."""
    for n in range(20):
        added = await store.add_counters(
            "m:replica-a", {"requests": 1.0, "seconds": 0.25}, batch=f"a:{n}"
        )
        assert added
    await asyncio.gather(
        store.add_counters("m:replica-b", {"requests": 3.0}, batch="b:1"),
        store.add_counters("other:x", {"requests": 100.0}, batch="x:1"),
    )
    counters = await store.read_counters("m:")
    assert counters == {
        "replica-a": {"requests": 20.0, "seconds": 5.0},
        "replica-b": {"requests": 3.0},
    }


async def test_a_resent_counter_batch_counts_once(store: Store) -> None:
    """A writer that lost the answer resends its batch: added once, whether the first try
    reached the store or not; the next batch adds again."""
    assert await store.add_counters("m:r", {"requests": 2.0}, batch="run1:1")
    assert not await store.add_counters("m:r", {"requests": 2.0}, batch="run1:1")
    assert (await store.read_counters("m:"))["r"] == {"requests": 2.0}
    assert await store.add_counters("m:r", {"requests": 1.0}, batch="run1:2")
    assert await store.add_counters("m:r", {"requests": 1.0}, batch="run2:1")  # a restart
    assert (await store.read_counters("m:"))["r"] == {"requests": 4.0}


async def test_records_with_and_without_ttl(store: Store) -> None:
    """Generic records (sessions, replicas): permanence without TTL, listing, removal."""
    await store.put_record("session", "s1", '{"state": "active"}', ttl_seconds=None)
    await store.put_record("replica", "r1", "{}", ttl_seconds=10)
    await store.put_record("replica", "r2", "{}", ttl_seconds=10)
    assert await store.get_record("session", "s1") == '{"state": "active"}'
    assert set(await store.list_records("replica")) == {"r1", "r2"}
    await store.remove_record("session", "s1")
    await store.remove_record("session", "absent")
    assert await store.list_records("session") == {}


async def test_swap_record_has_exactly_one_winner(store: Store) -> None:
    """Compare and set: of many callers expecting the same record, one stores its value;
    the others see False and the record holds the winner's value."""
    await store.put_record("session", "s1", '{"owner": "dead"}', ttl_seconds=None)
    claims = [f'{{"owner": "r{i}"}}' for i in range(10)]
    won = await asyncio.gather(
        *(store.swap_record("session", "s1", '{"owner": "dead"}', c, None) for c in claims)
    )
    assert sum(won) == 1
    assert await store.get_record("session", "s1") == claims[won.index(True)]
    # Expecting no record: only when there is none, and the new one is listed.
    assert not await store.swap_record("session", "s1", None, "{}", None)
    assert await store.swap_record("session", "s2", None, '{"new": 1}', 10)
    assert (await store.list_records("session"))["s2"] == '{"new": 1}'
    assert not await store.swap_record("session", "s3", "{}", "{}", None)  # absent != "{}"
    assert await store.get_record("session", "s3") is None


async def test_a_retried_swap_still_wins(store: Store) -> None:
    """A swap resent because its answer was lost finds its own value stored: True, while a
    rival with the same (now stale) expectation still loses."""
    await store.put_record("session", "s", "old", ttl_seconds=None)
    assert await store.swap_record("session", "s", "old", "mine", None)
    assert await store.swap_record("session", "s", "old", "mine", None)  # the retry
    assert not await store.swap_record("session", "s", "old", "theirs", None)
    assert await store.swap_record("session", "t", None, "first", None)
    assert await store.swap_record("session", "t", None, "first", None)  # the retry
    assert await store.get_record("session", "s") == "mine"


async def test_memory_swap_record_keeps_the_ttl_semantics() -> None:
    clock = FakeClock()
    store = MemoryStore(clock=clock)
    assert await store.swap_record("session", "s", None, "a", ttl_seconds=1.0)
    clock.now += 1.001
    assert await store.swap_record("session", "s", None, "b", ttl_seconds=None)  # expired
    assert await store.get_record("session", "s") == "b"


async def test_log_keeps_order_refuses_stale_writers_and_is_bounded(store: Store) -> None:
    """Entries come back after a given seq, oldest first; a seq at or below the last is
    refused; only the newest max_len stay."""
    key = f"log-{free_port()}"
    for seq in range(5):
        assert await store.append_log(key, seq, f"e{seq}", max_len=3, ttl_seconds=60)
    assert not await store.append_log(key, 4, "again", max_len=3, ttl_seconds=60)
    assert not await store.append_log(key, 1, "late", max_len=3, ttl_seconds=60)
    assert await store.read_log(key, -1, limit=10) == [(2, "e2"), (3, "e3"), (4, "e4")]
    assert await store.read_log(key, 2, limit=10) == [(3, "e3"), (4, "e4")]
    assert await store.read_log(key, 2, limit=1) == [(3, "e3")]
    assert await store.read_log(key, 4, limit=10) == []
    assert await store.append_log(key, 9, "skip", max_len=3, ttl_seconds=60)  # gaps allowed
    assert await store.read_log(key, 4, limit=10) == [(9, "skip")]
    assert await store.read_log(f"never-{key}", -1, limit=10) == []


async def test_log_reader_waits_for_the_next_entry(store: Store) -> None:
    """A reader with nothing to read waits for the next append instead of returning empty."""
    key = f"log-{free_port()}"
    await store.append_log(key, 0, "first", max_len=10, ttl_seconds=60)
    reader = asyncio.create_task(store.read_log(key, 0, limit=10, wait_seconds=5))
    await asyncio.sleep(0)  # the reader is waiting (or about to: either way it must see it)
    await store.append_log(key, 1, "second", max_len=10, ttl_seconds=60)
    assert await reader == [(1, "second")]


async def test_memory_log_expires_after_its_last_append() -> None:
    clock = FakeClock()
    store = MemoryStore(clock=clock)
    await store.append_log("log", 0, "a", max_len=10, ttl_seconds=5)
    clock.now += 4
    await store.append_log("log", 1, "b", max_len=10, ttl_seconds=5)
    clock.now += 4.9
    assert [seq for seq, _ in await store.read_log("log", -1, limit=10)] == [0, 1]
    clock.now += 0.2
    assert await store.read_log("log", -1, limit=10) == []
    assert await store.append_log("log", 0, "fresh", max_len=10, ttl_seconds=5)


async def test_redis_log_is_a_bounded_stream_with_a_ttl(
    redis_pair: tuple[RedisStore, aioredis.Redis, str],
) -> None:
    store, raw, prefix = redis_pair
    for seq in range(4):
        await store.append_log("events:s1", seq, "{}", max_len=2, ttl_seconds=30)
    assert await raw.xlen(f"{prefix}events:s1") == 2
    assert 29_000 < await raw.pttl(f"{prefix}events:s1") <= 30_000


async def test_a_task_cancelled_during_a_store_call_ends(store: Store) -> None:
    """A cancelled caller is cancelled, whenever the cancel lands in a store call: redis-py
    may swallow a CancelledError that arrives mid-command, and a periodic refresh that went
    on after it kept its owner's close waiting forever."""
    await put_worker(store, record("a"), ttl_seconds=30)
    await put_worker(store, record("b"), ttl_seconds=30)
    stop = False

    async def listing() -> None:
        while not stop:
            await list_workers(store)
            await asyncio.sleep(0)  # the in-process store never yields by itself

    try:
        for trial in range(100):
            task = asyncio.create_task(listing())
            await asyncio.sleep((trial % 40) * 0.0001)  # land the cancel at varied points
            task.cancel()
            done, _ = await asyncio.wait([task], timeout=5)
            assert task in done and task.cancelled(), f"cancel {trial} was swallowed"
    finally:
        stop = True
