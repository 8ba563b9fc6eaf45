"""Admission bounds active streams, queues a bounded number, and knows when it is idle.
Its clock is injected: the queued time it reports is exact."""

from __future__ import annotations

import asyncio

import pytest

from tts_worker.admission import Admission, QueueFull


class FakeClock:
    def __init__(self) -> None:
        self.now = 50.0

    def __call__(self) -> float:
        return self.now


async def test_slots_queue_and_refuse_past_the_queue() -> None:
    clock = FakeClock()
    admission = Admission(max_active=1, max_queued=1, clock=clock)
    assert await admission.acquire() == 0.0  # a free slot: no wait
    waiting = asyncio.create_task(admission.acquire())
    await asyncio.sleep(0)  # let it reach the queue
    assert (admission.active, admission.queued) == (1, 1)
    with pytest.raises(QueueFull):
        await admission.acquire()
    clock.now += 0.75
    admission.release()
    assert await waiting == 0.75
    assert (admission.active, admission.queued) == (1, 0)
    admission.release()


async def test_idle_only_when_nothing_is_active_or_queued() -> None:
    admission = Admission(max_active=1, max_queued=4)
    assert admission.idle  # from the start
    await admission.acquire()
    assert not admission.idle
    idle = asyncio.create_task(admission.wait_idle())
    queued = asyncio.create_task(admission.acquire())
    await asyncio.sleep(0)  # let it reach the queue
    admission.release()  # the queued stream takes the slot: still not idle
    await queued
    assert not admission.idle
    admission.release()
    assert admission.idle
    await asyncio.wait_for(idle, 1)


async def test_a_cancelled_waiter_leaves_the_queue() -> None:
    admission = Admission(max_active=1, max_queued=1)
    await admission.acquire()
    waiter = asyncio.create_task(admission.acquire())
    await asyncio.sleep(0)
    waiter.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiter
    assert admission.queued == 0
    admission.release()
    await asyncio.wait_for(admission.wait_idle(), 1)
