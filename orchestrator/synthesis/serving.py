"""The logic behind the synthesis routes: resolve the voice, pick a worker, wait for first
audio. It raises `orchestrator.errors` service errors and knows nothing of HTTP."""

from __future__ import annotations

from dataclasses import dataclass, field

from orchestrator import errors
from orchestrator.metrics.recorder import FleetMetrics
from orchestrator.synthesis.protocol import VoiceOut, VoicesResponse
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
    """Extra names for voices (OpenAI's "alloy"...): an operator's explicit map, never a guess."""
    stream: StreamOptions = field(default_factory=StreamOptions)

    def __post_init__(self) -> None:
        if self.max_text_chars < 1:
            raise ValueError("max_text_chars must be at least 1")


@dataclass
class StartedSynthesis:
    """A worker stream that has produced its first frame."""

    stream: WorkerStream
    first: tts_pb2.AudioFrame


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
        self.channels = channels
        self.metrics = metrics
        self.draining = False
        self.active = 0  # responses still streaming; a drain waits for them

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

    async def start(
        self, *, text: str, voice: str | None, sample_rate: int | None
    ) -> StartedSynthesis:
        """Open a worker stream for the text and wait for its first frame. The caller owns
        the result: it must call `finished()` once the stream is done with."""
        if self.draining:
            raise errors.draining()
        self.active += 1
        try:
            return await self._start(text, voice, sample_rate)
        except BaseException:
            self.active -= 1
            raise

    async def _start(
        self, text: str, voice: str | None, sample_rate: int | None
    ) -> StartedSynthesis:
        if len(text) > self.options.max_text_chars:
            raise errors.text_too_long(len(text), self.options.max_text_chars)
        name = self.resolve_voice(voice)
        native_rate = self.registry.voices()[name].native_sample_rate
        stream = WorkerStream(
            self.registry,
            self.channels,
            voice=name,
            sample_rate=sample_rate or native_rate,
            options=self.options.stream,
        )
        try:
            await stream.start()
            await stream.send_text(text)
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

    def resolve_voice(self, voice: str | None) -> str:
        """The voice a request names (or the default), checked against the fleet."""
        if voice is None:
            default = self.registry.default_voice()
            if default is None:
                raise errors.no_worker()
            return default
        voice = self.options.voice_aliases.get(voice, voice)
        voices = self.registry.voices()
        if not voices:
            raise errors.no_worker()
        if voice not in voices:
            raise errors.voice_not_found(voice, sorted(voices))
        return voice
