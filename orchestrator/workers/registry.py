"""The orchestrator's view of the worker fleet: a cache of the store's registry, refreshed
in the background, and the choice of a worker for each utterance.

Requests read only the cache, so synthesis goes on from the last known registry while the
store is down; /readyz reports that degraded state.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import time
from collections import Counter

import grpc

from fleet import aio
from fleet.aio import TaskSet
from fleet.records import VoiceInfo, WorkerRecord
from fleet.store import Store, StoreUnavailable
from fleet.workers import list_workers, put_worker
from orchestrator import errors
from orchestrator.workers.channels import WorkerChannels
from tts_rpc.v1 import tts_pb2

log = logging.getLogger(__name__)

_POLL_TIMEOUT_SECONDS = 2.0
# A worker gone from the registry keeps its channel this long (and while streams use it):
# a busy worker that misses a heartbeat must not have its streams cut.
_FORGET_AFTER_SECONDS = 60.0


class WorkerRegistry:
    """Cached registry plus worker selection (least loaded worker that has the voice)."""

    def __init__(
        self,
        store: Store,
        channels: WorkerChannels,
        *,
        refresh_seconds: float,
        static_workers: list[str] | None = None,
        static_ttl_seconds: float = 5.0,
        default_voice: str | None = None,
    ) -> None:
        self._store = store
        self._channels = channels
        self._refresh_seconds = refresh_seconds
        # Embedded mode has no worker heartbeats: the registry polls these addresses and
        # writes the same records the workers would, under the same TTL.
        self._static_workers = static_workers or []
        self._static_ttl = static_ttl_seconds
        self._default_voice = default_voice
        self._workers: list[WorkerRecord] = []
        self._inflight: Counter[str] = Counter()
        self._tasks = TaskSet("registry")
        self._last_seen: dict[str, tuple[float, str]] = {}  # address -> (when, worker id)
        self.store_error: str | None = None

    async def start(self) -> None:
        await asyncio.gather(*(self._poll(a) for a in self._static_workers))
        await self.refresh()
        refresh = aio.every(self._refresh_seconds, self.refresh, what="registry refresh")
        self._tasks.spawn(refresh, "refresh")
        # One poller per worker: a slow or dead worker never delays the cache refresh, so a
        # dead worker's record expires on time while the others are busy.
        for address in self._static_workers:
            poll = aio.every(
                self._refresh_seconds, functools.partial(self._poll, address), what="worker poll"
            )
            self._tasks.spawn(poll, f"poll-{address}")

    async def aclose(self) -> None:
        await self._tasks.aclose()

    @property
    def workers(self) -> list[WorkerRecord]:
        return list(self._workers)

    async def refresh(self) -> None:
        """Reload the cache from the store."""
        try:
            workers = await list_workers(self._store)
        except StoreUnavailable as exc:
            if self.store_error is None:
                log.warning(
                    "store unavailable; serving from the cached registry",
                    extra={"reason": str(exc)},
                )
            self.store_error = str(exc)
            return
        if self.store_error is not None:
            log.info("store reachable again")
        self.store_error = None
        self._forget_stale_channels(workers)
        self._workers = workers

    def _forget_stale_channels(self, workers: list[WorkerRecord]) -> None:
        now = time.monotonic()
        for worker in self._workers:
            self._last_seen[worker.address] = (now, worker.worker_id)
        live = {w.address for w in workers} | set(self._static_workers)
        for address, (seen, worker_id) in list(self._last_seen.items()):
            if address in live:
                continue
            if now - seen > _FORGET_AFTER_SECONDS and not self._inflight[worker_id]:
                del self._last_seen[address]
                self._tasks.spawn(self._channels.forget(address), "channel-close")

    async def _poll(self, address: str) -> None:
        stub = self._channels.stub(address)
        try:
            caps = await stub.GetCapabilities(
                tts_pb2.GetCapabilitiesRequest(), timeout=_POLL_TIMEOUT_SECONDS
            )
        except grpc.aio.AioRpcError:
            return  # its record simply expires
        with contextlib.suppress(StoreUnavailable):
            await put_worker(
                self._store, WorkerRecord.from_capabilities(caps, address), self._static_ttl
            )

    # -- selection ----------------------------------------------------------------------

    def voices(self) -> dict[str, VoiceInfo]:
        """Every voice some live worker offers."""
        found: dict[str, VoiceInfo] = {}
        for worker in self._workers:
            for voice in worker.voices:
                found.setdefault(voice.name, voice)
        return found

    def default_voice(self) -> str | None:
        if self._default_voice:
            return self._default_voice
        return self._workers[0].default_voice if self._workers else None

    def pick(self, voice: str, exclude: frozenset[str] = frozenset()) -> WorkerRecord:
        """The least loaded worker that has the voice, skipping worker ids in exclude."""
        if not self._workers:
            raise errors.no_worker()
        having = [w for w in self._workers if w.voice(voice) is not None]
        if not having:
            raise errors.voice_not_found(voice, sorted(self.voices()))
        candidates = [w for w in having if not w.draining and w.worker_id not in exclude]
        if not candidates:
            raise errors.no_worker(f"no worker with voice {voice!r} is accepting streams")
        return min(candidates, key=self._load)

    def _load(self, worker: WorkerRecord) -> float:
        # The heartbeat lags behind a burst: this replica's own open streams are exact, so
        # a burst spreads over workers instead of piling onto the one that looked idle.
        reported = worker.active_streams + worker.queued_streams
        busy = max(reported, self._inflight[worker.worker_id])
        return busy / max(worker.max_streams, 1)

    def in_flight(self, worker_id: str) -> int:
        """Streams this replica has open on the worker."""
        return self._inflight[worker_id]

    def opened(self, worker_id: str) -> None:
        self._inflight[worker_id] += 1

    def closed(self, worker_id: str) -> None:
        self._inflight[worker_id] -= 1
        if self._inflight[worker_id] <= 0:
            del self._inflight[worker_id]
