"""The gRPC servicer: validates each stream's config, admits it and runs its Utterance."""

from __future__ import annotations

import asyncio
import logging
import math
from collections.abc import AsyncIterator
from concurrent.futures import Executor

import grpc

from fleet.aio import cancel_and_wait
from tts_rpc.v1 import tts_pb2, tts_pb2_grpc
from tts_worker import metrics
from tts_worker.admission import Admission, QueueFull
from tts_worker.engines.base import MAX_SPEED, MIN_SPEED, Engine, VoiceNotFoundError, VoiceSpec
from tts_worker.scheduler import Scheduler
from tts_worker.utterance import SUPPORTED_SAMPLE_RATES, Limits, StreamError, Utterance

log = logging.getLogger(__name__)


def voice_message(spec: VoiceSpec, engine: str) -> tts_pb2.Voice:
    return tts_pb2.Voice(
        name=spec.name,
        engine=engine,
        native_sample_rate=spec.native_sample_rate,
        language=spec.language,
        loaded=spec.loaded,
    )


# How long a finished stream waits for its client's half-close (see Synthesize); clients
# that never half-close see the end of the stream this much later, nothing else. Generous on
# purpose: at 2 s, sessions in the 30-client soak read their stats late under load, wrote a
# playout report to the ended call, and grpc dropped their unread frames and kept the call.
CLIENT_CLOSE_GRACE_SECONDS = 30.0


class TextToSpeechService(tts_pb2_grpc.TextToSpeechServicer):
    """Serves one engine. Each Synthesize stream is independent of every other; their
    engine calls share the scheduler, in order of playback deadline."""

    def __init__(
        self,
        engine: Engine,
        executor: Executor,
        scheduler: Scheduler,
        admission: Admission,
        limits: Limits,
        worker_id: str,
    ) -> None:
        self.engine = engine
        self.executor = executor
        self.scheduler = scheduler
        self.admission = admission
        self.limits = limits
        self.worker_id = worker_id
        self.draining = False
        # Not every engine reports load times: Piper keeps them in `load_seconds`.
        self._load_seconds: dict[str, float] = getattr(engine, "load_seconds", {})
        metrics.init_engine(engine.name, admission.max_active, self._load_seconds)

    # A coroutine writing through the context, not an async generator: when a client goes
    # away, grpc stops iterating a generator handler without closing it, so its `finally`
    # (the slot's release) would wait for the garbage collector. Here the cancellation lands
    # in our own awaits and the slot is released at once. (The generated servicer types only
    # the generator form, hence the ignore.)
    async def Synthesize(  # type: ignore[override]
        self,
        request_iterator: AsyncIterator[tts_pb2.SynthesizeRequest],
        context: grpc.aio.ServicerContext[tts_pb2.SynthesizeRequest, tts_pb2.SynthesizeResponse],
    ) -> None:
        if self.draining:
            await context.abort(grpc.StatusCode.UNAVAILABLE, "worker is draining")
        first = await anext(aiter(request_iterator), None)
        if first is None:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, "stream ended before a config")
        assert first is not None
        kind = first.WhichOneof("request")
        if kind != "config":
            await context.abort(
                grpc.StatusCode.INVALID_ARGUMENT,
                f"the first message must be a config, got {kind or 'an empty message'}",
            )
        try:
            voice = self._check_config(first.config)
        except StreamError as error:
            await context.abort(error.code, error.details)
        engine = self.engine.name
        outcome = "error"
        # Refused at once when the deadlines of the streams already here (and this one's
        # first audio) cannot all be met: the orchestrator places it on another worker.
        refusal = self.scheduler.refusal()
        if refusal is not None:
            metrics.STREAMS.labels(engine, "rejected").inc()
            await context.abort(
                grpc.StatusCode.RESOURCE_EXHAUSTED, f"worker at capacity: {refusal}"
            )
        # Counted in the schedule from here on, queued or not: admission sees its demand.
        utterance = Utterance(first.config, voice, self.engine, self.scheduler, self.limits)
        metrics.QUEUED_STREAMS.labels(engine).inc()
        try:
            queue_seconds = await self.admission.acquire()
        except QueueFull as exc:
            utterance.close()
            metrics.STREAMS.labels(engine, "rejected").inc()
            await context.abort(grpc.StatusCode.RESOURCE_EXHAUSTED, f"worker at capacity: {exc}")
        except BaseException:
            utterance.close()
            raise
        finally:
            metrics.QUEUED_STREAMS.labels(engine).dec()
        metrics.QUEUE_SECONDS.labels(engine).observe(queue_seconds)
        metrics.ACTIVE_STREAMS.labels(engine).inc()
        utterance.queue_seconds = queue_seconds
        reader = asyncio.create_task(
            self._read(request_iterator, utterance), name=f"tts-read-{utterance.id}"
        )
        try:
            try:
                async for response in utterance.responses():
                    await context.write(response)
            except (asyncio.CancelledError, grpc.aio.AbortError):
                raise
            except Exception as exc:
                # The engine failed on this text: say so with a status, never a bare crash.
                log.exception("synthesis failed", extra={"utterance_id": utterance.id})
                outcome = "error"
                await context.abort(grpc.StatusCode.INTERNAL, f"synthesis failed: {exc!r}"[:300])
            if utterance.error is not None:
                outcome = "invalid"
                await context.abort(utterance.error.code, utterance.error.details)
            outcome = "cancelled" if utterance.cancelled else "completed"
        except asyncio.CancelledError:
            outcome = "client_cancelled"
            raise
        finally:
            # The slot first, before any await: a client that cancels right after the stats
            # message cancels this task again while it waits for the reader, and that second
            # cancellation must not skip the release.
            metrics.ACTIVE_STREAMS.labels(engine).dec()
            self.admission.release()
            utterance.close()
            self._record(utterance, outcome)
            try:
                if outcome in ("completed", "cancelled"):
                    # The stats are sent: stay on the call (its slot already free) until the
                    # client half-closes after reading them. A write of its own meanwhile (a
                    # PAUSE while the last frames are in flight, or that half-close) must not
                    # meet an ended call: grpc turns that into a local INTERNAL error and
                    # drops every response the client has not read yet.
                    await asyncio.wait([reader], timeout=CLIENT_CLOSE_GRACE_SECONDS)
            finally:
                await cancel_and_wait(reader)

    async def _read(
        self, requests: AsyncIterator[tts_pb2.SynthesizeRequest], utterance: Utterance
    ) -> None:
        try:
            async for request in requests:
                utterance.accept(request)
            utterance.end_of_requests()
        except StreamError as error:
            utterance.fail(error)
        except grpc.RpcError:
            # The client went away; the servicer is cancelled by grpc in the same breath.
            utterance.cancel()

    def _check_config(self, config: tts_pb2.SynthesisConfig) -> VoiceSpec:
        name = config.voice or self.engine.default_voice
        try:
            voice = self.engine.voice(name)
        except VoiceNotFoundError as exc:
            raise StreamError(grpc.StatusCode.NOT_FOUND, str(exc)) from None
        if config.sample_rate and config.sample_rate not in SUPPORTED_SAMPLE_RATES:
            raise StreamError(
                grpc.StatusCode.INVALID_ARGUMENT,
                f"sample_rate {config.sample_rate} unsupported; "
                f"use one of {SUPPORTED_SAMPLE_RATES}",
            )
        if config.encoding not in (
            tts_pb2.AUDIO_ENCODING_UNSPECIFIED,
            tts_pb2.AUDIO_ENCODING_PCM_S16LE,
        ):
            raise StreamError(
                grpc.StatusCode.INVALID_ARGUMENT, f"unknown encoding {config.encoding}"
            )
        if config.frame_duration_ms and not 5 <= config.frame_duration_ms <= 200:
            raise StreamError(
                grpc.StatusCode.INVALID_ARGUMENT, "frame_duration_ms must be between 5 and 200"
            )
        # 0 is proto3's unset; NaN fails the range test as it should.
        if config.speed != 0 and not MIN_SPEED <= config.speed <= MAX_SPEED:
            raise StreamError(
                grpc.StatusCode.INVALID_ARGUMENT,
                f"speed {config.speed:g} is out of range: use {MIN_SPEED:g} to {MAX_SPEED:g}",
            )
        if not (math.isfinite(config.max_lead_seconds) and config.max_lead_seconds >= 0):
            raise StreamError(
                grpc.StatusCode.INVALID_ARGUMENT,
                "max_lead_seconds must be a finite number of seconds, 0 (no bound) or more",
            )
        if config.speed not in (0, 1) and not self.engine.supports_speed:
            raise StreamError(
                grpc.StatusCode.INVALID_ARGUMENT,
                f"speed {config.speed:g}: the {self.engine.name} engine has no speed control",
            )
        return voice

    def _record(self, utterance: Utterance, outcome: str) -> None:
        engine = self.engine.name
        metrics.STREAMS.labels(engine, outcome).inc()
        metrics.AUDIO_SECONDS.labels(engine).inc(utterance.audio_seconds)
        if utterance.synthesis_seconds > 0:
            metrics.INFERENCE_SECONDS.labels(engine).observe(utterance.synthesis_seconds)
        metrics.note_voice_loads(engine, self._load_seconds)  # a voice may load on first use
        if utterance.frames:
            metrics.FIRST_FRAME_SECONDS.labels(engine).observe(utterance.first_frame_seconds)
        if utterance.audio_seconds > 0:
            metrics.REALTIME_FACTOR.labels(engine).observe(
                utterance.synthesis_seconds / utterance.audio_seconds
            )
        log.info(
            "utterance ended",
            extra={
                "utterance_id": utterance.id,
                "outcome": outcome,
                "voice": utterance.voice.name,
                "audio_seconds": round(utterance.audio_seconds, 3),
                "synthesis_seconds": round(utterance.synthesis_seconds, 3),
                "first_frame_seconds": round(utterance.first_frame_seconds, 3),
            },
        )

    async def ListVoices(
        self, request: tts_pb2.ListVoicesRequest, context: grpc.aio.ServicerContext[object, object]
    ) -> tts_pb2.ListVoicesResponse:
        return tts_pb2.ListVoicesResponse(
            voices=[voice_message(v, self.engine.name) for v in self.engine.voices()],
            default_voice=self.engine.default_voice,
        )

    async def LoadVoice(
        self, request: tts_pb2.LoadVoiceRequest, context: grpc.aio.ServicerContext[object, object]
    ) -> tts_pb2.LoadVoiceResponse:
        if not request.name:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, "name is required")
        loop = asyncio.get_running_loop()
        started = loop.time()
        try:
            spec = await loop.run_in_executor(self.executor, self.engine.load_voice, request.name)
        except VoiceNotFoundError as exc:
            await context.abort(grpc.StatusCode.NOT_FOUND, str(exc))
        seconds = loop.time() - started
        metrics.VOICE_LOAD_SECONDS.labels(self.engine.name, spec.name).set(seconds)
        return tts_pb2.LoadVoiceResponse(
            voice=voice_message(spec, self.engine.name), load_seconds=seconds
        )

    async def UnloadVoice(
        self, request: tts_pb2.UnloadVoiceRequest, context: grpc.aio.ServicerContext[object, object]
    ) -> tts_pb2.UnloadVoiceResponse:
        if request.name == self.engine.default_voice:
            await context.abort(
                grpc.StatusCode.FAILED_PRECONDITION, "the default voice stays loaded"
            )
        try:
            self.engine.unload_voice(request.name)
        except VoiceNotFoundError as exc:
            await context.abort(grpc.StatusCode.NOT_FOUND, str(exc))
        return tts_pb2.UnloadVoiceResponse()

    async def GetCapabilities(
        self,
        request: tts_pb2.GetCapabilitiesRequest,
        context: grpc.aio.ServicerContext[object, object],
    ) -> tts_pb2.Capabilities:
        return self.capabilities()

    def capabilities(self) -> tts_pb2.Capabilities:
        return tts_pb2.Capabilities(
            worker_id=self.worker_id,
            engine=self.engine.name,
            voices=[voice_message(v, self.engine.name) for v in self.engine.voices()],
            default_voice=self.engine.default_voice,
            sample_rates=list(SUPPORTED_SAMPLE_RATES),
            encodings=[tts_pb2.AUDIO_ENCODING_PCM_S16LE],
            max_concurrent_streams=self.admission.max_active,
            active_streams=self.admission.active,
            queued_streams=self.admission.queued,
            max_text_chunk_chars=self.limits.max_text_chunk_chars,
            max_utterance_chars=self.limits.max_utterance_chars,
            draining=self.draining,
        )
