"""POST /synthesize in every response format: streamed with the right Content-Type and
rate, decodable by another library than the encoder's; the first encoded bytes leave
before the last frame is synthesized; a client that hangs up closes the encoder too."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable

import httpx
import pytest

from orchestrator.cli import Orchestrator
from orchestrator.synthesis import api_router
from orchestrator.synthesis.audio_response import EncodedSpeech
from orchestrator.synthesis.serving import SpeechJob, StartedSynthesis
from tests.audio_checks import parse_wav, transcribe, word_error_rate
from tests.synthesis.decoders import CONTENT_TYPES, decode
from tts_rpc.v1 import tts_pb2

SENTENCE = "The quick brown fox jumps over the lazy dog near the river bank."
LONG = (
    "The first sentence is short. The second one takes a little longer to say. "
    "A third sentence follows the second one here. And the fourth sentence ends this text."
)
# The voice speaks at 22.05 kHz: mp3, aac, flac, wav and pcm keep it, Opus takes the next
# rate its codec has, and G.711 is 8 kHz by definition.
RATES = {"opus": 24000, "mulaw": 8000}
NATIVE = 22050


@pytest.fixture
def frames_seen(
    orchestrator: Orchestrator, monkeypatch: pytest.MonkeyPatch
) -> list[tts_pb2.AudioFrame]:
    """Every frame the synthesis service takes from the worker, as the worker stamped it."""
    service = orchestrator.services.synthesis
    seen: list[tts_pb2.AudioFrame] = []
    start: Callable[[SpeechJob], Awaitable[StartedSynthesis]] = service.start

    async def recording_start(job: SpeechJob) -> StartedSynthesis:
        started = await start(job)
        seen.append(started.first)
        next_frame = started.stream.next_frame

        async def recording_next() -> tts_pb2.AudioFrame | None:
            frame = await next_frame()
            if frame is not None:
                seen.append(frame)
            return frame

        monkeypatch.setattr(started.stream, "next_frame", recording_next)
        return started

    monkeypatch.setattr(service, "start", recording_start)
    return seen


@pytest.mark.parametrize("fmt", list(CONTENT_TYPES))
async def test_every_format_decodes_to_the_speech(api: httpx.AsyncClient, fmt: str) -> None:
    """The body decodes (libsndfile, dr_flac, FAAD2, the wave module) to audio as long as
    the raw PCM of the same text, at the rate the headers state."""
    response = await api.post("/synthesize", json={"text": SENTENCE, "format": fmt})
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == CONTENT_TYPES[fmt]
    rate = RATES.get(fmt, NATIVE)
    assert response.headers["x-sample-rate"] == str(rate)
    audio = decode(fmt, response.content, pcm_rate=rate)
    reference = parse_wav((await api.post("/synthesize", json={"text": SENTENCE})).content)
    # Piper's durations vary a few % run to run; codecs pad up to ~0.1 s.
    assert audio.seconds == pytest.approx(reference.seconds, rel=0.15, abs=0.15)
    if fmt == "mulaw":  # telephony's own path: 8 kHz, companded
        assert word_error_rate(SENTENCE, transcribe(audio)) <= 0.2


@pytest.mark.parametrize("fmt", ["mp3", "opus"])
async def test_first_encoded_bytes_leave_before_the_last_frame_is_synthesized(
    api: httpx.AsyncClient, frames_seen: list[tts_pb2.AudioFrame], fmt: str
) -> None:
    """Encoding streams: the client holds encoded audio before the worker has even produced
    the last sentence's frames (the worker's own production timestamps, same clock)."""
    first_bytes_ns = 0
    body = b""
    async with api.stream("POST", "/synthesize", json={"text": LONG, "format": fmt}) as response:
        assert response.status_code == 200
        async for chunk in response.aiter_raw():
            if chunk and not first_bytes_ns:
                first_bytes_ns = time.time_ns()
            body += chunk
    assert len(frames_seen) > 100
    produced = [frame.produced_unix_ns for frame in frames_seen]
    assert produced[0] < produced[-1], "the text came out as one chunk: nothing to compare"
    assert first_bytes_ns < produced[-1]
    assert decode(fmt, body).seconds > 4.0


async def test_hanging_up_closes_the_encoder(
    api: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A client that leaves after the first bytes: the codec is released (and the worker
    stream cancelled, which the shared-worker check after every test verifies)."""
    opened: list[EncodedSpeech] = []

    class Recorded(EncodedSpeech):
        def __init__(self, *args: object, **kwargs: object) -> None:
            super().__init__(*args, **kwargs)  # type: ignore[arg-type]
            opened.append(self)

    monkeypatch.setattr(api_router, "EncodedSpeech", Recorded)
    async with api.stream(
        "POST", "/synthesize", json={"text": LONG * 4, "format": "mp3"}
    ) as response:
        assert response.status_code == 200
        async for chunk in response.aiter_raw():
            if chunk:
                break  # leaving the block closes the connection mid-utterance
    [speech] = opened
    for _ in range(200):
        if speech.encoder.closed:
            break
        await asyncio.sleep(0.025)
    assert speech.encoder.closed
