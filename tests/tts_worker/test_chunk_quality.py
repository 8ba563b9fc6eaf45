"""Shorter first chunks and chunks cut under load are checked, not assumed: Whisper hears the
bench corpus as well from the worker's chunked streams (run all at once, so the scheduler cuts
chunks) as from Piper speaking each whole text in one call, and the join between an
utterance's first and second chunk has no click (no jump between neighbouring samples larger
than speech itself makes)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Iterator
from concurrent.futures import ThreadPoolExecutor

import grpc
import numpy as np
import pytest

from tests.audio_checks import Pcm, normalize, parse_pcm, transcribe, word_error_rate
from tests.processes import ROOT, WorkerProcess
from tests.tts_worker.grpc_client import END, Stream, config, text
from tts_rpc.v1 import tts_pb2
from tts_worker.engines.base import EngineAudio, TimedAudio, VoiceSpec
from tts_worker.engines.piper import PiperEngine, packaged_voice_files
from tts_worker.scheduler import Scheduler, SchedulerOptions
from tts_worker.utterance import Limits, Utterance

CORPUS: dict[str, str] = json.loads((ROOT / "bench" / "corpus.json").read_text(encoding="utf-8"))
RATE = 22050  # the voice's own rate: no resampling between the engine and the frames
VOICE = "en_US-joe-medium"
# A click is a jump between neighbouring samples; Piper's speech itself makes jumps of up to
# about this much (measured over the corpus, see the test), so a join must stay below it.
CLICK = 0.1
DRAWS = 3


@pytest.fixture(scope="module")
def engine() -> PiperEngine:
    piper = PiperEngine(packaged_voice_files(), VOICE)
    piper.load_voice(VOICE)
    return piper


@pytest.fixture(scope="module")
async def channel(piper_worker: WorkerProcess) -> AsyncIterator[grpc.aio.Channel]:
    async with grpc.aio.insecure_channel(piper_worker.address) as ch:
        yield ch


def errors(reference: str, heard: str) -> float:
    return word_error_rate(reference, heard) * len(normalize(reference))


def whole_text(engine: PiperEngine, words: str) -> Pcm:
    chunks = [c.audio if isinstance(c, TimedAudio) else c for c in engine.synthesize(VOICE, words)]
    audio = np.concatenate(chunks)
    return Pcm((np.clip(audio, -1, 1) * 32767).astype(np.int16), RATE)


async def streamed(channel: grpc.aio.Channel, name: str, words: str) -> Pcm:
    stream = Stream(channel)
    await stream.send(config(utterance_id=f"wer-{name}", sample_rate=RATE), text(words), END)
    received = await stream.read_all()
    return parse_pcm(b"".join(f.audio for f in received.frames), RATE)


async def test_whisper_hears_the_chunked_streams_as_well_as_whole_texts(
    channel: grpc.aio.Channel, engine: PiperEngine
) -> None:
    # Piper draws durations and pitch with noise, and Whisper's errors follow them, so both
    # sides are averaged over a few draws. Measured: whole texts 1 to 2 word errors of 146,
    # chunked streams 2 to 4 (a chunk cut at a plain space under load, "at your door | by
    # Thursday", can start on a weak word). This guards that cost; it is not yet the
    # "unchanged" the scheduling issue asks for.
    ours, whole = [], []
    for draw in range(DRAWS):
        heard = await asyncio.gather(
            *(streamed(channel, f"{n}-{draw}", t) for n, t in CORPUS.items())
        )
        pairs = zip(CORPUS.values(), heard, strict=True)
        ours.append(sum(errors(t, transcribe(pcm)) for t, pcm in pairs))
        whole.append(sum(errors(t, transcribe(whole_text(engine, t))) for t in CORPUS.values()))
    words = sum(len(normalize(t)) for t in CORPUS.values())
    mean_ours, mean_whole = sum(ours) / DRAWS, sum(whole) / DRAWS
    assert mean_ours <= mean_whole + 2, f"word errors chunked {ours}, whole {whole}, of {words}"


class Recording:
    """The real engine, noting where each of its chunks ends in the utterance's samples."""

    def __init__(self, engine: PiperEngine) -> None:
        self._engine = engine
        self.name = engine.name
        self.supports_speed = engine.supports_speed
        self.ends: list[int] = []
        self._samples = 0

    @property
    def default_voice(self) -> str:
        return self._engine.default_voice

    def voices(self) -> list[VoiceSpec]:
        return self._engine.voices()

    def voice(self, name: str) -> VoiceSpec:
        return self._engine.voice(name)

    def load_voice(self, name: str) -> VoiceSpec:
        return self._engine.load_voice(name)

    def unload_voice(self, name: str) -> None:
        self._engine.unload_voice(name)

    def synthesize(self, voice: str, words: str, speed: float = 1.0) -> Iterator[EngineAudio]:
        for chunk in self._engine.synthesize(voice, words, speed):
            audio = chunk.audio if isinstance(chunk, TimedAudio) else chunk
            self._samples += len(audio)
            self.ends.append(self._samples)
            yield chunk


async def utterance_pcm(recording: Recording, words: str) -> np.ndarray:
    with ThreadPoolExecutor(1) as pool:
        scheduler = Scheduler(pool, SchedulerOptions())
        utt = Utterance(
            tts_pb2.SynthesisConfig(utterance_id="join"),
            recording.voice(VOICE),
            recording,
            scheduler,
            Limits(30, 250, 4000, 20000, first_segment_words=3),
        )
        utt.accept(tts_pb2.SynthesizeRequest(text=tts_pb2.TextChunk(text=words)))
        utt.end_of_requests()
        pcm = b"".join([r.frame.audio async for r in utt.responses() if r.HasField("frame")])
        utt.close()
    return np.frombuffer(pcm, dtype="<i2").astype(np.float64) / 32768.0


@pytest.mark.parametrize("name", ["medium", "multi_clause", "long_sentence", "paragraph"])
async def test_the_first_join_has_no_click(engine: PiperEngine, name: str) -> None:
    recording = Recording(engine)
    audio = await utterance_pcm(recording, CORPUS[name])
    first_end = recording.ends[0]
    assert len(recording.ends) > 1 and first_end < len(audio)
    steps = np.abs(np.diff(audio))
    join = float(steps[first_end - 1])  # audio[first_end] - audio[first_end - 1]
    # Speech itself: the largest step of the utterance is far above any click threshold,
    # so the bound below is not met by a silent or broken signal.
    assert float(steps.max()) > CLICK / 4
    assert join < CLICK, f"jump of {join:.3f} full scale where chunk 2 starts"
