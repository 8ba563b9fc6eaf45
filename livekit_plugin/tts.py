"""A livekit-agents TTS plugin over our gRPC workers, for LiveKit users who run their own
AgentSession:

    session = AgentSession(tts=WorkerTTS("tts-piper:7001"), ...)

It streams: text pushed by the LLM goes to the worker as it arrives, and the worker cuts it
at clauses itself, so no sentence tokenizer is needed here. The worker times each word it
speaks (from the engine's own durations); those timings reach LiveKit as an aligned
transcript, so `use_tts_aligned_transcript=True` captions follow the words as heard.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterable

import grpc
from livekit.agents import APIConnectionError, APIStatusError, tts
from livekit.agents.types import DEFAULT_API_CONNECT_OPTIONS, APIConnectOptions, TimedString

from fleet.aio import cancel_and_wait
from orchestrator.workers.calls import SynthesizeCall, retryable, write
from tts_rpc.v1 import tts_pb2, tts_pb2_grpc


class WorkerTTS(tts.TTS[None]):
    """TTS backed by one voice-orchestrator worker (address host:port).

    `speed` is the speaking rate (0.25 to 4.0, 2.0 twice as fast; the worker refuses
    anything else, raised as a non-retryable APIStatusError). `normalize=False` sends the
    text to the engine exactly as written, without reading markdown, numbers and prices
    as a person would."""

    def __init__(
        self,
        address: str,
        *,
        voice: str = "",
        sample_rate: int = 48000,
        speed: float = 1.0,
        normalize: bool = True,
    ) -> None:
        super().__init__(
            capabilities=tts.TTSCapabilities(streaming=True, aligned_transcript=True),
            sample_rate=sample_rate,
            num_channels=1,
        )
        self.address = address
        self.voice = voice
        self.speed = speed
        self.normalize = normalize
        self._channel: grpc.aio.Channel | None = None
        self._voices: set[str] | None = None

    @property
    def provider(self) -> str:
        return "voice-orchestrator"

    @property
    def model(self) -> str:
        return self.voice or "default"

    def stub(self) -> tts_pb2_grpc.TextToSpeechAsyncStub:
        if self._channel is None:
            self._channel = grpc.aio.insecure_channel(self.address)
        return tts_pb2_grpc.TextToSpeechStub(self._channel)

    async def check_voice(self, request_id: str) -> None:
        """Refuse an unknown voice before streaming: the worker would end the stream with
        NOT_FOUND while text is still being written to it, a race gRPC may then report as a
        bare INTERNAL error."""
        if not self.voice:
            return
        if self._voices is None:
            try:
                listed = await self.stub().ListVoices(tts_pb2.ListVoicesRequest(), timeout=10)
            except grpc.aio.AioRpcError as exc:
                raise APIConnectionError(f"worker unavailable: {exc.details()}") from exc
            self._voices = {v.name for v in listed.voices}
        if self.voice not in self._voices:
            raise APIStatusError(
                f"worker error NOT_FOUND: voice {self.voice!r} is not available",
                status_code=404,
                request_id=request_id,
                retryable=False,
            )

    async def open_call(
        self, emitter: tts.AudioEmitter, *, stream: bool
    ) -> tuple[str, SynthesizeCall]:
        """Check the voice, set up the emitter and open a worker stream with its config
        written; returns the request id and the call."""
        request_id = uuid.uuid4().hex
        await self.check_voice(request_id)
        emitter.initialize(
            request_id=request_id,
            sample_rate=self.sample_rate,
            num_channels=1,
            mime_type="audio/pcm",
            stream=stream,
        )
        call = self.stub().Synthesize()  # type: ignore[call-arg]  # explicit writes below
        config = tts_pb2.SynthesisConfig(
            utterance_id=request_id,
            voice=self.voice,
            sample_rate=self.sample_rate,
            encoding=tts_pb2.AUDIO_ENCODING_PCM_S16LE,
            speed=self.speed,
            verbatim=not self.normalize,
        )
        await write(call, tts_pb2.SynthesizeRequest(config=config))
        return request_id, call

    def synthesize(
        self, text: str, *, conn_options: APIConnectOptions = DEFAULT_API_CONNECT_OPTIONS
    ) -> tts.ChunkedStream:
        return _ChunkedStream(tts=self, input_text=text, conn_options=conn_options)

    def stream(
        self, *, conn_options: APIConnectOptions = DEFAULT_API_CONNECT_OPTIONS
    ) -> tts.SynthesizeStream:
        return _SynthesizeStream(tts=self, conn_options=conn_options)

    async def aclose(self) -> None:
        if self._channel is not None:
            await self._channel.close(grace=None)
            self._channel = None


class _AlignedText:
    """The utterance's text as sent, cut into the pieces the worker timed.

    LiveKit's synchronizer concatenates the pieces into the transcript, so each piece runs
    from the end of the previous one to the end of its timed span: the spaces and marks
    between words travel with the next word, and nothing of the text is lost."""

    def __init__(self, text: str = "") -> None:
        self.text = text
        self._sent = 0

    def timed(self, timings: Iterable[tts_pb2.TextTiming]) -> list[TimedString]:
        pieces = []
        for timing in timings:
            end = min(timing.text_span.end, len(self.text))
            if end > self._sent:
                pieces.append(
                    TimedString(
                        self.text[self._sent : end],
                        start_time=timing.start_seconds,
                        end_time=timing.end_seconds,
                    )
                )
                self._sent = end
        return pieces

    def rest(self, at_seconds: float) -> list[TimedString]:
        """What no timing covered (a closing mark, text normalization dropped), at the end."""
        if self._sent >= len(self.text):
            return []
        piece = TimedString(self.text[self._sent :], start_time=at_seconds, end_time=at_seconds)
        self._sent = len(self.text)
        return [piece]


async def _pump_frames(
    call: SynthesizeCall,
    emitter: tts.AudioEmitter,
    request_id: str,
    text: _AlignedText,
) -> None:
    """Worker frames into the emitter with the words they start, gRPC errors into
    livekit-agents errors."""
    try:
        while True:
            message = await call.read()
            if not isinstance(message, tts_pb2.SynthesizeResponse):
                raise APIConnectionError("worker stream ended without stats")
            if message.HasField("stats"):
                stats = message.stats
                pieces = text.timed(stats.timings) + text.rest(stats.audio_seconds)
                if pieces:
                    emitter.push_timed_transcript(pieces)
                return
            # Before the audio: the emitter hands timings on with the next frame it sends.
            if pieces := text.timed(message.frame.timings):
                emitter.push_timed_transcript(pieces)
            emitter.push(message.frame.audio)
    except grpc.aio.AioRpcError as exc:
        if retryable(exc.code(), exc.details() or ""):
            raise APIConnectionError(f"worker unavailable: {exc.details()}") from exc
        raise APIStatusError(
            f"worker error {exc.code().name}: {exc.details()}",
            status_code=400 if exc.code() == grpc.StatusCode.INVALID_ARGUMENT else 500,
            request_id=request_id,
            retryable=False,
        ) from exc


class _ChunkedStream(tts.ChunkedStream):
    async def _run(self, output_emitter: tts.AudioEmitter) -> None:
        owner = self._tts
        assert isinstance(owner, WorkerTTS)
        request_id, call = await owner.open_call(output_emitter, stream=False)
        try:
            await write(
                call, tts_pb2.SynthesizeRequest(text=tts_pb2.TextChunk(text=self.input_text))
            )
            await write(call, tts_pb2.SynthesizeRequest(end_of_input=tts_pb2.EndOfInput()))
            await _pump_frames(call, output_emitter, request_id, _AlignedText(self.input_text))
            output_emitter.flush()
        finally:
            call.cancel()


class _SynthesizeStream(tts.SynthesizeStream):
    async def _run(self, output_emitter: tts.AudioEmitter) -> None:
        owner = self._tts
        assert isinstance(owner, WorkerTTS)
        request_id, call = await owner.open_call(output_emitter, stream=True)
        output_emitter.start_segment(segment_id=request_id)
        text = _AlignedText()

        async def send_text() -> None:
            async for data in self._input_ch:
                # Flush marks are not needed: the worker cuts clauses and sentences itself.
                if isinstance(data, str) and data:
                    # Kept before it is written: the worker's spans index all text sent.
                    text.text += data
                    await write(call, tts_pb2.SynthesizeRequest(text=tts_pb2.TextChunk(text=data)))
            await write(call, tts_pb2.SynthesizeRequest(end_of_input=tts_pb2.EndOfInput()))

        sender = asyncio.create_task(send_text(), name="worker-tts-send")
        try:
            await _pump_frames(call, output_emitter, request_id, text)
            output_emitter.end_segment()
        finally:
            await cancel_and_wait(sender)
            call.cancel()
