"""A livekit-agents TTS plugin over voice-orchestrator's gRPC workers, for LiveKit users who
run their own AgentSession:

    session = AgentSession(tts=WorkerTTS(workers=["tts-piper:7001"]), ...)
    session = AgentSession(tts=WorkerTTS(redis_url="redis://redis:6379/0"), ...)

Each utterance goes to the least-loaded worker that has the voice and moves to another one
if that worker fails before the first audio, exactly as in the orchestrator (the same
registry and stream code). Text pushed by the LLM goes to the worker as it arrives; the
worker cuts it at clauses itself, so no sentence tokenizer is needed here. Frames carry the
worker's word timings as aligned transcripts (`use_tts_aligned_transcript=True`).
"""

from __future__ import annotations

import asyncio
import dataclasses
from pathlib import Path
from typing import Any

from livekit.agents import tts, utils
from livekit.agents.types import DEFAULT_API_CONNECT_OPTIONS, NOT_GIVEN, APIConnectOptions
from livekit.agents.types import NotGivenOr as Maybe

from fleet.aio import TaskSet, cancel_and_wait
from livekit_plugin.options import (
    FleetOptions,
    TLSOptions,
    TTSOptions,
    check_sample_rate,
)
from livekit_plugin.pool import WorkerPool
from livekit_plugin.settings import PluginSettings
from livekit_plugin.utterance import PluginUtterance, as_api_error
from orchestrator.errors import ServiceError


class WorkerTTS(tts.TTS[None]):
    """TTS backed by a fleet of voice-orchestrator workers. Every argument left out is read
    from its `VOICEORCH_TTS_*` environment variable (see the configuration reference), and
    every value is checked here: a bad one raises ValueError naming it."""

    def __init__(
        self,
        *,
        workers: Maybe[list[str]] = NOT_GIVEN,
        redis_url: Maybe[str] = NOT_GIVEN,
        voice: Maybe[str] = NOT_GIVEN,
        speed: Maybe[float] = NOT_GIVEN,
        normalize: Maybe[bool] = NOT_GIVEN,
        sample_rate: Maybe[int] = NOT_GIVEN,
        max_lead_seconds: Maybe[float] = NOT_GIVEN,
        tls: Maybe[bool] = NOT_GIVEN,
        tls_ca_file: Maybe[str | Path] = NOT_GIVEN,
        tls_cert_file: Maybe[str | Path] = NOT_GIVEN,
        tls_key_file: Maybe[str | Path] = NOT_GIVEN,
        registry_refresh_seconds: Maybe[float] = NOT_GIVEN,
        max_attempts: Maybe[int] = NOT_GIVEN,
    ) -> None:
        given = {
            "workers": workers,
            "redis_url": redis_url,
            "voice": voice,
            "speed": speed,
            "normalize": normalize,
            "sample_rate": sample_rate,
            "max_lead_seconds": max_lead_seconds,
            "tls": tls,
            "tls_ca_file": tls_ca_file,
            "tls_cert_file": tls_cert_file,
            "tls_key_file": tls_key_file,
            "registry_refresh_seconds": registry_refresh_seconds,
            "max_attempts": max_attempts,
        }
        settings = PluginSettings.model_validate(
            {k: v for k, v in given.items() if utils.is_given(v)}
        )
        self._opts = TTSOptions(
            voice=settings.voice,
            speed=settings.speed,
            normalize=settings.normalize,
            max_lead_seconds=settings.max_lead_seconds,
        )
        tls_on = settings.tls or settings.tls_ca_file or settings.tls_cert_file
        fleet = FleetOptions(
            workers=tuple(settings.workers),
            redis_url=settings.redis_url.get_secret_value() if settings.redis_url else None,
            tls=(
                TLSOptions(settings.tls_ca_file, settings.tls_cert_file, settings.tls_key_file)
                if tls_on
                else None
            ),
            refresh_seconds=settings.registry_refresh_seconds,
            max_attempts=settings.max_attempts,
        )
        super().__init__(
            capabilities=tts.TTSCapabilities(streaming=True, aligned_transcript=True),
            sample_rate=check_sample_rate(settings.sample_rate),
            num_channels=1,
        )
        self._pool = WorkerPool(fleet)
        self._tasks = TaskSet("worker-tts")

    @property
    def provider(self) -> str:
        return "voice-orchestrator"

    @property
    def model(self) -> str:
        return self._opts.voice or "default"

    @property
    def options(self) -> TTSOptions:
        """What the next utterance is spoken with."""
        return self._opts

    def update_options(
        self,
        *,
        voice: Maybe[str] = NOT_GIVEN,
        speed: Maybe[float] = NOT_GIVEN,
        normalize: Maybe[bool] = NOT_GIVEN,
        max_lead_seconds: Maybe[float] = NOT_GIVEN,
    ) -> None:
        """Change how the next utterance is spoken (the one being spoken goes on as it
        began). Raises ValueError for a bad value; a voice no worker has is refused when
        the next utterance starts (or by `prewarm()`)."""
        changes: dict[str, Any] = {
            "voice": voice,
            "speed": speed,
            "normalize": normalize,
            "max_lead_seconds": max_lead_seconds,
        }
        self._opts = dataclasses.replace(
            self._opts, **{k: v for k, v in changes.items() if utils.is_given(v)}
        )

    # livekit-agents calls prewarm() without waiting for it (typed `-> None` there); this
    # one also hands back the check, for callers who want to know before the first say().
    def prewarm(self) -> asyncio.Task[None]:  # type: ignore[override]
        """Connect to the fleet and check the voice, in the background. Await the returned
        task to wait for the check: it raises APIStatusError (404) naming a voice no worker
        has, or APIConnectionError when no worker answers. Call it inside the event loop."""
        return self._tasks.spawn(self._check(self._opts), "prewarm")

    async def _check(self, options: TTSOptions) -> None:
        try:
            registry = await self._pool.registry()
            registry.pick(options.voice or registry.default_voice() or "")
        except ServiceError as exc:
            raise as_api_error(exc, None) from None

    async def open_utterance(
        self, conn_options: APIConnectOptions, *, paced: bool
    ) -> PluginUtterance:
        """An utterance on the best worker for the current options, open and configured.
        Raises the livekit-agents error for no worker or an unknown voice."""
        options = self._opts
        try:
            registry = await self._pool.registry()
            stream = self._pool.open(
                registry,
                voice=options.voice or registry.default_voice() or "",
                sample_rate=self.sample_rate,
                speed=options.speed,
                verbatim=not options.normalize,
                first_audio_timeout_seconds=conn_options.timeout,
            )
        except ServiceError as exc:
            raise as_api_error(exc, None) from None
        lead = options.max_lead_seconds if paced else 0.0
        utterance = PluginUtterance(stream, self._tasks, lead_seconds=lead)
        try:
            await utterance.started()
        except ServiceError as exc:
            utterance.close()
            raise as_api_error(exc, utterance.id) from None
        except BaseException:
            utterance.close()
            raise
        return utterance

    def synthesize(
        self, text: str, *, conn_options: APIConnectOptions = DEFAULT_API_CONNECT_OPTIONS
    ) -> tts.ChunkedStream:
        return _ChunkedStream(tts=self, input_text=text, conn_options=conn_options)

    def stream(
        self, *, conn_options: APIConnectOptions = DEFAULT_API_CONNECT_OPTIONS
    ) -> tts.SynthesizeStream:
        return _SynthesizeStream(tts=self, conn_options=conn_options)

    async def aclose(self) -> None:
        await self._tasks.aclose()
        await self._pool.aclose()


def _initialize(
    emitter: tts.AudioEmitter, owner: WorkerTTS, request_id: str, *, stream: bool
) -> None:
    emitter.initialize(
        request_id=request_id,
        sample_rate=owner.sample_rate,
        num_channels=1,
        mime_type="audio/pcm",
        stream=stream,
    )


class _ChunkedStream(tts.ChunkedStream):
    """A whole text, synthesized as fast as the worker goes (no pacing)."""

    async def _run(self, output_emitter: tts.AudioEmitter) -> None:
        owner = self._tts
        assert isinstance(owner, WorkerTTS)
        utterance = await owner.open_utterance(self._conn_options, paced=False)
        try:
            _initialize(output_emitter, owner, utterance.id, stream=False)
            utterance.send_text(self.input_text)
            utterance.end_input()
            await utterance.play(output_emitter)
            output_emitter.flush()
        finally:
            utterance.close()


class _SynthesizeStream(tts.SynthesizeStream):
    """Text as the LLM produces it, one segment, paced to playback."""

    async def _run(self, output_emitter: tts.AudioEmitter) -> None:
        owner = self._tts
        assert isinstance(owner, WorkerTTS)
        utterance = await owner.open_utterance(self._conn_options, paced=True)
        try:
            _initialize(output_emitter, owner, utterance.id, stream=True)
            output_emitter.start_segment(segment_id=utterance.id)
            feeder = asyncio.create_task(self._feed(utterance), name="worker-tts-feed")
            try:
                await utterance.play(output_emitter)
            finally:
                await cancel_and_wait(feeder)
            output_emitter.end_segment()
        finally:
            utterance.close()

    async def _feed(self, utterance: PluginUtterance) -> None:
        async for data in self._input_ch:
            # Flush marks are not needed: the worker cuts clauses and sentences itself.
            if isinstance(data, str) and data:
                self._mark_started()
                utterance.send_text(data)
        utterance.end_input()
