"""Task ownership, in one place for both processes: every background task has an owner that
names it, cancels it and waits for it, and no task fails silently.

- `cancel_and_wait(*tasks)`: cancel, then wait until each has finished; a failure other
  than cancellation is logged with the task's name, never raised into the caller's teardown.
- `TaskSet`: the tasks one object owns (named, failures logged as they happen).
- `every(interval, step)`: a periodic loop whose failed steps are logged and retried.
- `poll_until(predicate)`: a bounded wait on a condition that has no event to wait on.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any, TypeVar

log = logging.getLogger(__name__)

T = TypeVar("T")


def _log_failure(task: asyncio.Task[Any]) -> None:
    if task.cancelled():
        return
    error = task.exception()
    if error is not None:
        log.error(
            "background task failed",
            extra={"task": task.get_name()},
            exc_info=(type(error), error, error.__traceback__),
        )


async def cancel_and_wait(*tasks: asyncio.Task[Any] | None) -> None:
    """Cancel the tasks and wait until every one has finished. The caller's own cancellation
    still propagates (after the tasks are done); the tasks' failures are logged, not raised."""
    pending = [t for t in tasks if t is not None and t is not asyncio.current_task()]
    for task in pending:
        task.cancel()
    if not pending:
        return
    waiter = asyncio.gather(*pending, return_exceptions=True)
    try:
        await asyncio.shield(waiter)
    except asyncio.CancelledError:
        await waiter  # finish the teardown we started, then let the cancellation through
        raise
    for task in pending:
        _log_failure(task)


class TaskSet:
    """Background tasks owned by one object: each is named after its owner, its failure is
    logged the moment it happens, and `aclose()` cancels and awaits what is left."""

    def __init__(self, owner: str) -> None:
        self.owner = owner
        self._tasks: set[asyncio.Task[Any]] = set()

    def spawn(self, coro: Coroutine[Any, Any, T], name: str) -> asyncio.Task[T]:
        task = asyncio.create_task(coro, name=f"{self.owner}-{name}")
        self._tasks.add(task)
        task.add_done_callback(self._done)
        return task

    def _done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        _log_failure(task)

    def __len__(self) -> int:
        return len(self._tasks)

    async def aclose(self) -> None:
        """Cancel every task (except the caller's own) and wait for them."""
        await cancel_and_wait(*self._tasks)


async def every(
    interval_seconds: float,
    step: Callable[[], Awaitable[object]],
    *,
    what: str,
    first_delay: bool = True,
) -> None:
    """Run `step` every interval until cancelled; a failed step is logged and the loop goes on
    (a store or worker that is down now may answer on the next round)."""
    if first_delay:
        await asyncio.sleep(interval_seconds)
    while True:
        try:
            await step()
        except Exception:
            log.exception("periodic step failed", extra={"what": what})
        await asyncio.sleep(interval_seconds)


async def poll_until(
    predicate: Callable[[], bool], *, timeout_seconds: float, interval_seconds: float = 0.02
) -> bool:
    """Wait until predicate() holds, at most timeout_seconds; True if it did. For conditions
    that offer no event to wait on (a server's `started` flag, work counted elsewhere)."""
    deadline = time.monotonic() + timeout_seconds
    while not predicate():
        if time.monotonic() >= deadline:
            return False
        await asyncio.sleep(interval_seconds)
    return True
