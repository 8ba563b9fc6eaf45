"""The logic behind the synthesis routes: resolve the voice, pick a worker, wait for first
audio. It raises `orchestrator.errors` service errors and knows nothing of HTTP."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from orchestrator import errors
from orchestrator.metrics.recorder import FleetMetrics
from orchestrator.synthesis.encoders import ResponseFormat, encoded_rate
from orchestrator.synthesis.protocol import (
    AudioModel,
    AudioModelsResponse,
    AudioVoice,
    AudioVoicesResponse,
    ModelOut,
    ModelsResponse,
    VoiceOut,
    VoicesResponse,
)
from orchestrator.synthesis.voices import VoiceResolver
from orchestrator.workers.channels import WorkerChannels
from orchestrator.workers.registry import WorkerRegistry
from orchestrator.workers.stream import StreamOptions, WorkerStream, WorkerStreamError
from tts_rpc.v1 import tts_pb2


@dataclass(frozen=True)
class SynthesisOptions:
    """What the synthesis service needs of the settings."""

    max_text_chars: int = 5000
    """Longest text accepted; longer is refused as text_too_long."""
    voice_aliases: dict[str, str] = field(default_factory=dict)
    """Extra names for voices (OpenAI's "alloy"...): an operator's explicit map, never a guess;
    a target of "default" is the default voice."""
    normalize_text: bool = True
    """Whether the worker reads text as a person would, unless a request says otherwise."""
    stream: StreamOptions = field(default_factory=StreamOptions)

    def __post_init__(self) -> None:
        if self.max_text_chars < 1:
            raise ValueError("max_text_chars must be at least 1")


@dataclass(frozen=True)
class SpeechJob:
    """What one request asks to be spoken, in domain terms."""

    text: str
    voice: str | None = None
    model: str | None = None
    """OpenAI's model field: one of its models, an engine or a voice (see voices.py)."""
    sample_rate: int | None = None
    """Requested rate; None: the voice's own. Formats with fixed rates take the nearest."""
    format: ResponseFormat = ResponseFormat.WAV
    speed: float = 1.0
    normalize: bool | None = None
    """None: the service's default."""


# Engines that take free-form instructions: none yet. Piper has no such input, and the
# CosyVoice engine speaks zero-shot voices, not CosyVoice's instruct mode.
INSTRUCTION_ENGINES: frozenset[str] = frozenset()


@dataclass
class StartedSynthesis:
    """A worker stream that has produced its first frame."""

    stream: WorkerStream
    first: tts_pb2.AudioFrame

    @property
    def engine(self) -> str | None:
        return self.stream.worker.engine if self.stream.worker is not None else None

    def follows_instructions(self) -> bool:
        return self.engine in INSTRUCTION_ENGINES


class SynthesisService:
    """Turns a synthesis request into a worker stream that has produced audio."""

    def __init__(
        self,
        options: SynthesisOptions,
        registry: WorkerRegistry,
        channels: WorkerChannels,
        *,
        metrics: FleetMetrics | None = None,
    ) -> None:
        self.options = options
        self.registry = registry
        self.resolver = VoiceResolver(registry, options.voice_aliases)
        self.channels = channels
        self.metrics = metrics
        self.draining = False
        self.active = 0  # responses still streaming; a drain waits for them
        self.started_at = int(time.time())

    def finished(self) -> None:
        """A response started by `start()` has ended (streamed out, failed or abandoned)."""
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

    def audio_voices(self) -> AudioVoicesResponse:
        """Voices and the aliases that name one now, as OpenAI-compatible clients list them."""
        listed = self.voices().voices
        by_name = {voice.name: voice for voice in listed}
        out = [
            AudioVoice(id=v.name, name=v.name, language=v.language, engines=v.engines)
            for v in listed
        ]
        for alias in sorted(self.resolver.aliases):
            target = by_name.get(self.resolver.alias_target(alias) or "")
            if target is not None and alias not in by_name:
                out.append(
                    AudioVoice(
                        id=alias,
                        name=f"{alias} ({target.name})",
                        language=target.language,
                        engines=target.engines,
                        alias_of=target.name,
                    )
                )
        return AudioVoicesResponse(voices=out)

    def models(self) -> ModelsResponse:
        """What `model` may name, in OpenAI's list shape."""
        return ModelsResponse(
            data=[
                ModelOut(id=model, created=self.started_at, owned_by="voice-orchestrator")
                for model in self.resolver.models()
            ]
        )

    def audio_models(self) -> AudioModelsResponse:
        return AudioModelsResponse(models=[AudioModel(id=m) for m in self.resolver.models()])

    async def start(self, job: SpeechJob) -> StartedSynthesis:
        """Open a worker stream for the text and wait for its first frame. The caller owns
        the result: it must call `finished()` once the stream is done with."""
        if self.draining:
            raise errors.draining()
        self.active += 1
        try:
            return await self._start(job)
        except BaseException:
            self.active -= 1
            raise

    async def _start(self, job: SpeechJob) -> StartedSynthesis:
        if len(job.text) > self.options.max_text_chars:
            raise errors.text_too_long(len(job.text), self.options.max_text_chars)
        name = self.resolver.resolve(job.voice, job.model)
        native_rate = self.registry.voices()[name].native_sample_rate
        normalize = self.options.normalize_text if job.normalize is None else job.normalize
        stream = WorkerStream(
            self.registry,
            self.channels,
            voice=name,
            # The worker resamples once, straight to a rate the format's codec takes.
            sample_rate=encoded_rate(job.format, job.sample_rate or native_rate),
            speed=job.speed,
            verbatim=not normalize,
            options=self.options.stream,
        )
        try:
            await stream.start()
            await stream.send_text(job.text)
            await stream.end_input()
            first = await stream.next_frame()
        except WorkerStreamError as exc:
            await stream.aclose()
            raise exc.as_service_error() from exc
        except BaseException:
            await stream.aclose()
            raise
        if first is None:
            await stream.aclose()
            raise errors.no_audio()
        return StartedSynthesis(stream, first)
