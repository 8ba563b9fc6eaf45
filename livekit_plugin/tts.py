"""A livekit-agents TTS plugin over our gRPC workers, for LiveKit users who run their own
AgentSession:

    session = AgentSession(tts=WorkerTTS("tts-piper:7001"), ...)

It streams: text pushed by the LLM goes to the worker as it arrives, and the worker cuts it
at clauses itself, so no sentence tokenizer is needed here. Its transcripts are aligned: the
text comes out as timed pieces (a word each from Piper, a clause from engines without word
times) on the audio's clock, so an AgentSession with `use_tts_aligned_transcript=True`
shows captions that follow the voice.
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
    """TTS backed by one voice-orchestrator worker (address host:port)."""

    def __init__(self, address: str, *, voice: str = "", sample_rate: int = 48000) -> None:
        super().__init__(
            capabilities=tts.TTSCapabilities(streaming=True, aligned_transcript=True),
            sample_rate=sample_rate,
            num_channels=1,
        )
        self.address = address
        self.voice = voice
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


class _Transcript:
    """The text written to one worker stream, handed out as timed pieces as the worker
    times it. Each piece runs from the end of the previous one to the end of its timed span
    (the spaces and punctuation before a word go with it), so the pieces add up to the
    text."""

    def __init__(self, text: str = "") -> None:
        self.text = text
        self._sent = 0  # code points handed out

    def timed(self, timings: Iterable[tts_pb2.TextTiming]) -> list[TimedString]:
        pieces = []
        for timing in timings:
            end = timing.text_span.end
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
        """What the worker never timed (text with nothing to speak), at the audio's end."""
        tail = self.text[self._sent :]
        self._sent = len(self.text)
        if not tail.strip():
            return []
        return [TimedString(tail, start_time=at_seconds, end_time=at_seconds)]


def _push_timed(emitter: tts.AudioEmitter, pieces: list[TimedString]) -> None:
    if pieces:
        emitter.push_timed_transcript(pieces)


async def _pump_frames(
    call: SynthesizeCall,
    emitter: tts.AudioEmitter,
    request_id: str,
    transcript: _Transcript,
) -> None:
    """Worker frames into the emitter, each frame's timed text before its audio (a timing
    rides on the frame where its audio starts); gRPC errors into livekit-agents errors."""
    try:
        while True:
            message = await call.read()
            if not isinstance(message, tts_pb2.SynthesizeResponse):
                raise APIConnectionError("worker stream ended without stats")
            if message.HasField("stats"):
                stats = message.stats
                _push_timed(emitter, transcript.timed(stats.timings))
                _push_timed(emitter, transcript.rest(stats.audio_seconds))
                return
            _push_timed(emitter, transcript.timed(message.frame.timings))
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
            await _pump_frames(call, output_emitter, request_id, _Transcript(self.input_text))
            output_emitter.flush()
        finally:
            call.cancel()


class _SynthesizeStream(tts.SynthesizeStream):
    async def _run(self, output_emitter: tts.AudioEmitter) -> None:
        owner = self._tts
        assert isinstance(owner, WorkerTTS)
        request_id, call = await owner.open_call(output_emitter, stream=True)
        output_emitter.start_segment(segment_id=request_id)
        transcript = _Transcript()

        async def send_text() -> None:
            async for data in self._input_ch:
                # Flush marks are not needed: the worker cuts clauses and sentences itself.
                if isinstance(data, str) and data:
                    transcript.text += data  # before the worker can time it
                    await write(call, tts_pb2.SynthesizeRequest(text=tts_pb2.TextChunk(text=data)))
            await write(call, tts_pb2.SynthesizeRequest(end_of_input=tts_pb2.EndOfInput()))

        sender = asyncio.create_task(send_text(), name="worker-tts-send")
        try:
            await _pump_frames(call, output_emitter, request_id, transcript)
            output_emitter.end_segment()
        finally:
            await cancel_and_wait(sender)
            call.cancel()
