"""The plugin's view of the worker fleet: the orchestrator's own registry (least-loaded
worker with the voice) and channels, over the orchestrator's store or a list of polled
addresses. Started on first use, inside the event loop that uses it."""

from __future__ import annotations

import asyncio
import uuid

from fleet.backends import open_store
from fleet.store import Store
from livekit_plugin.options import FleetOptions
from orchestrator.workers.channels import WorkerChannels
from orchestrator.workers.registry import WorkerRegistry
from orchestrator.workers.stream import StreamOptions, WorkerStream

# Embedded mode: a polled worker stays listed this long after its last answer (as the
# orchestrator's ORCH_REGISTRY_TTL_SECONDS): longer than a few missed polls of a busy worker,
# and never shorter than the orchestrator's default, which outlasts a poll's own 2 s timeout
# (a shorter one dropped a live worker whose answer was merely slow).
_STATIC_TTL_FACTOR = 5.0
_MIN_STATIC_TTL_SECONDS = 5.0


class WorkerPool:
    """Registry, channels and store of one plugin instance."""

    def __init__(self, options: FleetOptions) -> None:
        self.options = options
        self._channels = WorkerChannels(options.tls.credentials() if options.tls else None)
        self._store: Store | None = None
        self._registry: WorkerRegistry | None = None
        self._lock = asyncio.Lock()

    async def registry(self) -> WorkerRegistry:
        """The started registry: the first call reads the store (or polls every listed
        worker once) before it returns, so the first utterance already has a choice."""
        async with self._lock:
            if self._registry is None:
                options = self.options
                # Redis for the orchestrator's store; without it the in-process store that
                # the registry fills by polling the listed workers.
                self._store = open_store(options.redis_url)
                registry = WorkerRegistry(
                    self._store,
                    self._channels,
                    refresh_seconds=options.refresh_seconds,
                    static_workers=list(options.workers) or None,
                    static_ttl_seconds=max(
                        _STATIC_TTL_FACTOR * options.refresh_seconds, _MIN_STATIC_TTL_SECONDS
                    ),
                )
                await registry.start()
                self._registry = registry
            return self._registry

    def open(
        self,
        registry: WorkerRegistry,
        *,
        voice: str,
        sample_rate: int,
        speed: float,
        verbatim: bool,
        first_audio_timeout_seconds: float,
    ) -> WorkerStream:
        """A stream for one utterance (not yet started)."""
        return WorkerStream(
            registry,
            self._channels,
            voice=voice,
            sample_rate=sample_rate,
            speed=speed,
            verbatim=verbatim,
            utterance_id=uuid.uuid4().hex,
            options=StreamOptions(
                first_audio_timeout_seconds=first_audio_timeout_seconds,
                max_attempts=self.options.max_attempts,
            ),
        )

    async def aclose(self) -> None:
        async with self._lock:
            if self._registry is not None:
                await self._registry.aclose()
                self._registry = None
            await self._channels.aclose()
            if self._store is not None:
                await self._store.aclose()
                self._store = None
