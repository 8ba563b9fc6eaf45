"""Admission bounds active streams, queues a bounded number, and knows when it is idle."""

from __future__ import annotations

import asyncio

import pytest

from tts_worker.admission import Admission, QueueFull


async def test_slots_queue_and_refuse_past_the_queue() -> None:
    admission = Admission(max_active=1, max_queued=1)
    await admission.acquire()
    waiting = asyncio.create_task(admission.acquire())
    await asyncio.sleep(0)
    assert (admission.active, admission.queued) == (1, 1)
    with pytest.raises(QueueFull):
        await admission.acquire()
    admission.release()
    assert await waiting >= 0.0
    assert (admission.active, admission.queued) == (1, 0)
    admission.release()


async def test_idle_only_when_nothing_is_active_or_queued() -> None:
    admission = Admission(max_active=1, max_queued=4)
    await asyncio.wait_for(admission.wait_idle(), 1)  # idle from the start
    await admission.acquire()
    idle = asyncio.create_task(admission.wait_idle())
    queued = asyncio.create_task(admission.acquire())
    await asyncio.sleep(0.01)
    assert not idle.done()
    admission.release()  # the queued stream takes the slot: still not idle
    await queued
    await asyncio.sleep(0.01)
    assert not idle.done()
    admission.release()
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
