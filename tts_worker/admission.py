"""Bounds how many utterances a worker synthesizes at once, with a bounded wait queue."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable


class QueueFull(Exception):
    """Every slot is busy and the wait queue is full."""


class Admission:
    """A semaphore that refuses to queue more than max_queued waiters."""

    def __init__(
        self, max_active: int, max_queued: int, clock: Callable[[], float] = time.perf_counter
    ) -> None:
        self._clock = clock
        self.max_active = max_active
        self.max_queued = max_queued
        self._semaphore = asyncio.Semaphore(max_active)
        self.active = 0
        self.queued = 0
        self._idle = asyncio.Event()
        self._idle.set()

    @property
    def idle(self) -> bool:
        return self._idle.is_set()

    async def wait_idle(self) -> None:
        """Returns once no stream is active or queued."""
        await self._idle.wait()

    async def acquire(self) -> float:
        """Wait for a slot; return the seconds spent queued. Raise QueueFull at once when
        the queue is already full."""
        if self._semaphore.locked() and self.queued >= self.max_queued:
            raise QueueFull(f"{self.active} streams active and {self.queued} queued")
        started = self._clock()
        self.queued += 1
        self._idle.clear()
        try:
            await self._semaphore.acquire()
        except BaseException:
            self.queued -= 1
            if not self.active and not self.queued:
                self._idle.set()
            raise
        self.queued -= 1
        self.active += 1
        return self._clock() - started

    def release(self) -> None:
        self.active -= 1
        self._semaphore.release()
        if not self.active and not self.queued:
            self._idle.set()
