"""The logic behind the synthesis routes: pick a worker, wait for first audio, stream."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable

import grpc
from starlette.responses import StreamingResponse
from starlette.types import Receive, Scope, Send

from orchestrator.api.errors import APIError
from orchestrator.api.protocol import AudioFormat, VoiceOut, VoicesResponse
from orchestrator.audio_format import wav_header
from orchestrator.fleet_metrics import FleetMetrics
from orchestrator.registry import NoWorkerAvailable, VoiceNotFound, WorkerRegistry
from orchestrator.settings import OrchestratorSettings
from orchestrator.tts_stream import TTSStream, WorkerStreamError
from orchestrator.worker_channels import WorkerChannels
from tts_rpc.v1 import tts_pb2

log = logging.getLogger(__name__)

MEDIA_TYPES: dict[str, str] = {"wav": "audio/wav", "pcm": "audio/pcm"}


class AudioStreamResponse(StreamingResponse):
    """Streams an utterance; whatever happens to the client, the worker stream is closed."""

    def __init__(
        self,
        stream: TTSStream,
        first: tts_pb2.AudioFrame,
        fmt: AudioFormat,
        metrics: FleetMetrics | None = None,
        on_close: Callable[[], None] | None = None,
    ) -> None:
        self._stream = stream
        self._metrics = metrics
        self._on_close = on_close
        rate = first.sample_rate
        headers = {
            "X-Sample-Rate": str(rate),
            "X-Audio-Format": "wav" if fmt == "wav" else "pcm_s16le",
            "X-Channels": "1",
            "X-Utterance-Id": stream.utterance_id,
            "Cache-Control": "no-store",
            # Reverse proxies must pass frames on at once instead of buffering the body.
            "X-Accel-Buffering": "no",
        }
        super().__init__(self._body(first, fmt), media_type=MEDIA_TYPES[fmt], headers=headers)

    async def _body(self, first: tts_pb2.AudioFrame, fmt: AudioFormat) -> AsyncIterator[bytes]:
        if fmt == "wav":
            yield wav_header(first.sample_rate) + first.audio
        else:
            yield first.audio
        try:
            while (frame := await self._stream.next_frame()) is not None:
                yield frame.audio
            if self._metrics is not None and (stats := self._stream.stats) is not None:
                self._metrics.observe_synthesis(
                    stats.audio_seconds, stats.synthesis_seconds, stats.queue_seconds
                )
        except WorkerStreamError as exc:
            # Headers are gone: all we can do is end the body without its final chunk, so
            # the client sees a failed transfer rather than a complete-looking short file.
            log.error(
                "worker stream failed mid-utterance",
                extra={"utterance_id": self._stream.utterance_id, "code": exc.code.name},
            )
            raise

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            # Client disconnect cancels the body task and lands here: cancel the worker.
            await self._stream.aclose()
            if self._on_close is not None:
                self._on_close()


class SynthesisService:
    """Turns an HTTP synthesis request into a worker stream that has produced audio."""

    def __init__(
        self,
        settings: OrchestratorSettings,
        registry: WorkerRegistry,
        channels: WorkerChannels,
        *,
        metrics: FleetMetrics | None = None,
    ) -> None:
        self.settings = settings
        self.registry = registry
        self.channels = channels
        self.metrics = metrics
        self.draining = False
        self.active = 0  # responses still streaming; a drain waits for them

    def _closed(self) -> None:
        self.active -= 1

    def voices(self) -> VoicesResponse:
        by_name: dict[str, VoiceOut] = {}
        for worker in self.registry.workers:
            for voice in worker.voices:
                out = by_name.setdefault(
                    voice.name,
                    VoiceOut(
                        name=voice.name,
                        native_sample_rate=voice.native_sample_rate,
                        language=voice.language,
                        engines=[],
                        workers=0,
                    ),
                )
                out.workers += 1
                if worker.engine not in out.engines:
                    out.engines.append(worker.engine)
        return VoicesResponse(
            default_voice=self.registry.default_voice(),
            voices=[by_name[name] for name in sorted(by_name)],
        )

    async def stream(
        self,
        *,
        text: str,
        voice: str | None,
        sample_rate: int | None,
        fmt: AudioFormat,
        text_param: str,
        voice_param: str,
    ) -> AudioStreamResponse:
        if self.draining:
            raise APIError(
                503,
                "draining",
                "this replica is shutting down; retry on another",
                headers={"Retry-After": "1"},
            )
        self.active += 1
        try:
            return await self._stream(text, voice, sample_rate, fmt, text_param, voice_param)
        except BaseException:
            self.active -= 1
            raise

    async def _stream(
        self,
        text: str,
        voice: str | None,
        sample_rate: int | None,
        fmt: AudioFormat,
        text_param: str,
        voice_param: str,
    ) -> AudioStreamResponse:
        if len(text) > self.settings.max_text_chars:
            raise APIError(
                413,
                "text_too_long",
                f"{text_param} has {len(text)} characters; "
                f"the limit is {self.settings.max_text_chars}",
                param=text_param,
            )
        name = self._resolve_voice(voice, voice_param)
        native_rate = self.registry.voices()[name].native_sample_rate
        stream = TTSStream(
            self.registry,
            self.channels,
            voice=name,
            sample_rate=sample_rate or native_rate,
            first_audio_timeout_seconds=self.settings.first_audio_timeout_seconds,
            max_attempts=self.settings.max_attempts,
        )
        try:
            await stream.start()
            await stream.send_text(text)
            await stream.end_input()
            first = await stream.next_frame()
        except BaseException as exc:
            await stream.aclose()
            raise self._api_error(exc, name, voice_param) from exc
        if first is None:
            await stream.aclose()
            raise APIError(422, "no_audio", f"{text_param} produced no audio", param=text_param)
        return AudioStreamResponse(stream, first, fmt, self.metrics, on_close=self._closed)

    def _resolve_voice(self, voice: str | None, param: str) -> str:
        if voice is None:
            default = self.registry.default_voice()
            if default is None:
                raise APIError(
                    503, "no_worker", "no TTS worker is registered", headers={"Retry-After": "1"}
                )
            return default
        # Explicit operator-configured aliases only (e.g. OpenAI's "alloy"): never a guess.
        voice = self.settings.voice_aliases.get(voice, voice)
        voices = self.registry.voices()
        if voice not in voices and not voices:
            raise APIError(
                503, "no_worker", "no TTS worker is registered", headers={"Retry-After": "1"}
            )
        if voice not in voices:
            raise APIError(
                404,
                "voice_not_found",
                f"voice {voice!r} is not available; available voices: {sorted(voices)}",
                param=param,
            )
        return voice

    @staticmethod
    def _api_error(exc: BaseException, voice: str, voice_param: str) -> BaseException:
        if isinstance(exc, VoiceNotFound):
            return APIError(404, "voice_not_found", str(exc), param=voice_param)
        if isinstance(exc, NoWorkerAvailable):
            return APIError(503, "no_worker", str(exc), headers={"Retry-After": "1"})
        if isinstance(exc, WorkerStreamError):
            if exc.code == grpc.StatusCode.NOT_FOUND:
                return APIError(404, "voice_not_found", exc.details, param=voice_param)
            if exc.code in (grpc.StatusCode.INTERNAL, grpc.StatusCode.UNKNOWN):
                return APIError(
                    502,
                    "synthesis_failed",
                    f"the worker could not synthesize this text ({exc.code.name}: {exc.details})",
                )
            if exc.code == grpc.StatusCode.INVALID_ARGUMENT:
                return APIError(422, "invalid_value", exc.details)
            return APIError(
                503,
                "worker_unavailable",
                f"no worker could synthesize the request ({exc.code.name}: {exc.details})",
                headers={"Retry-After": "1"},
            )
        return exc
