"""The CosyVoice engine behind the worker's gRPC stream, over the contract fake of upstream
(tests/fakes/cosyvoice.py): frames leave as upstream yields them, 24 kHz is resampled to every
rate, PAUSE/RESUME/CANCEL act per utterance, a cancelled or abandoned stream ends upstream's
LLM thread and frees its state; and a real `tts-worker` process with TTS_WORKER_ENGINE=cosyvoice
is listed and routed to by the orchestrator like a Piper worker."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import grpc
import httpx
import pytest

from orchestrator.cli import Orchestrator
from tests.conftest import orchestrator_settings
from tests.fakes import cosyvoice as fake
from tests.fakes.clips import dominant_hz, write_clip
from tests.processes import WorkerProcess
from tests.tts_worker.grpc_client import END, Received, Stream, config, control, text
from tts_rpc.v1 import tts_pb2, tts_pb2_grpc
from tts_worker.admission import Admission
from tts_worker.engines.cosyvoice import CosyVoiceEngine, ZeroShotVoice, load_cosyvoice2
from tts_worker.scheduler import Scheduler, SchedulerOptions
from tts_worker.service import TextToSpeechService
from tts_worker.utterance import SUPPORTED_SAMPLE_RATES, Limits

SENTENCE = "CosyVoice streams this sentence chunk by chunk."  # one segment, several chunks
LONG = " ".join(
    f"Sentence number {n} keeps the fake model busy for a good while longer." for n in range(8)
)
TOKEN_SECONDS = 0.004  # a chunk (25 tokens) every 0.1 s, 1 s of audio each
VOICES = {"narrator": 2.0, "guide": 3.0}  # reference clip seconds: each its own pitch


def tokens(sentence: str) -> int:
    return round(len(sentence) * fake.TOKENS_PER_CHAR)


def seconds_of(sentence: str) -> float:
    return tokens(sentence) * fake.TOKEN_SAMPLES / fake.SAMPLE_RATE


def voice_hz(name: str) -> float:
    return fake.prompt_hz(int(VOICES[name] * fake.PROMPT_RATE))


@dataclass
class InProcess:
    engine: CosyVoiceEngine
    model: fake.FakeCosyVoice2
    channel: grpc.aio.Channel


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The stock CosyVoice2-0.5B layout (no built-in speakers) and two reference clips."""
    folder = fake.write_model_dir(tmp_path_factory.mktemp("CosyVoice2-0.5B"))
    voices = folder / "voices"
    voices.mkdir()
    for name, seconds in VOICES.items():
        write_clip(voices / f"{name}.wav", seconds=seconds, rate=44100)
        (voices / f"{name}.txt").write_text(f"This is how the {name} sounds.", encoding="utf-8")
    return folder


@pytest.fixture(scope="module")
async def worker(model_dir: Path) -> AsyncIterator[InProcess]:
    """The worker's servicer, in this process, on the engine built by its own loader."""
    voices = {
        name: ZeroShotVoice(model_dir / "voices" / f"{name}.wav", f"This is how the {name} sounds.")
        for name in VOICES
    }
    with fake.installed(token_seconds=TOKEN_SECONDS) as built:
        engine = CosyVoiceEngine(model_dir, load_cosyvoice2, voices, default_voice="narrator")
    executor = ThreadPoolExecutor(4, thread_name_prefix="test-inference")
    scheduler = Scheduler(executor, SchedulerOptions(parallelism=4))
    service = TextToSpeechService(
        engine,
        executor,
        scheduler,
        Admission(4, 8),
        Limits(30, 250, 4000, 20000),
        "cosyvoice-in-process",
    )
    server = grpc.aio.server()
    tts_pb2_grpc.add_TextToSpeechServicer_to_server(service, server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
        yield InProcess(engine, built[0], channel)
    await server.stop(None)
    executor.shutdown(wait=True, cancel_futures=True)


async def until(condition: Callable[[], bool], seconds: float = 5.0) -> None:
    """Poll a condition the worker's threads make true, up to a bound."""
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.01)


def upstream_idle(worker: InProcess) -> bool:
    """No LLM thread of ours running, nothing left in upstream's per-utterance state."""
    state = worker.engine.upstream_state()
    return not worker.engine.live_llm_threads() and not any(state.values())


async def test_frames_leave_before_upstream_finishes_the_sentence(worker: InProcess) -> None:
    """Streaming inside one sentence: the first frame reaches the client while upstream's
    LLM is still generating that sentence's later tokens."""
    stream = Stream(worker.channel)
    await stream.send(config(utterance_id="cosy-first", voice="guide"), text(SENTENCE), END)
    first = await stream.read_one()
    assert first is not None and first.HasField("frame")
    assert worker.model.model.texts_spoken[-1] == SENTENCE
    received = await stream.read_all()
    assert received.stats is not None and not received.stats.cancelled
    assert received.audio_seconds == pytest.approx(seconds_of(SENTENCE), abs=0.021)
    finished_ns = list(worker.model.model.llm_finished_ns.values())[-1]
    assert first.frame.produced_unix_ns < finished_ns, (
        "the whole sentence was generated before the first frame"
    )
    assert received.arrivals_ns[0] < received.frames[-1].produced_unix_ns


@pytest.mark.parametrize("rate", SUPPORTED_SAMPLE_RATES)
async def test_24_khz_is_resampled_to_the_requested_rate(worker: InProcess, rate: int) -> None:
    stream = Stream(worker.channel)
    await stream.send(
        config(utterance_id=f"cosy-{rate}", voice="guide", sample_rate=rate), text(SENTENCE), END
    )
    received = await stream.read_all()
    assert received.stats is not None
    assert {f.sample_rate for f in received.frames} == {rate}
    assert {len(f.audio) for f in received.frames[:-1]} == {rate * 20 // 1000 * 2}
    assert received.audio_seconds == pytest.approx(seconds_of(SENTENCE), abs=0.021)
    pcm = b"".join(f.audio for f in received.frames)
    assert dominant_hz(pcm, rate) == pytest.approx(voice_hz("guide"), abs=2.0)


async def test_default_voice_at_cosyvoices_24_khz(worker: InProcess) -> None:
    stream = Stream(worker.channel)
    await stream.send(config(utterance_id="cosy-native"), text(SENTENCE), END)
    received = await stream.read_all()
    assert {f.sample_rate for f in received.frames} == {24000}
    pcm = b"".join(f.audio for f in received.frames)
    assert dominant_hz(pcm, 24000) == pytest.approx(voice_hz("narrator"), abs=2.0)


async def test_cancel_mid_stream_ends_upstreams_generation_and_spares_the_other(
    worker: InProcess,
) -> None:
    """CANCEL ends this utterance's LLM thread and drops its state in upstream; the other
    stream, on the same voice, goes on to its end."""
    a, b = Stream(worker.channel), Stream(worker.channel)
    await a.send(config(utterance_id="cosy-a", voice="narrator"), text(LONG), END)
    await b.send(config(utterance_id="cosy-b", voice="narrator"), text(SENTENCE), END)
    await a.read_one()
    await b.read_one()
    await a.send(control(tts_pb2.CONTROL_COMMAND_CANCEL))
    received_a, received_b = await asyncio.gather(a.read_all(), b.read_all())
    assert received_a.stats is not None and received_a.stats.cancelled
    assert received_b.stats is not None and not received_b.stats.cancelled
    assert received_b.audio_seconds == pytest.approx(seconds_of(SENTENCE), abs=0.021)
    assert await a.call.code() == grpc.StatusCode.OK
    await until(lambda: upstream_idle(worker))
    spoken = [t for t in worker.model.model.texts_spoken if t in LONG]
    assert len(spoken) < 8, "upstream went on to the utterance's later sentences"
    assert received_a.audio_seconds < sum(seconds_of(s + ".") for s in LONG.split(". ")) / 2


async def test_client_gone_ends_upstreams_generation(worker: InProcess) -> None:
    """The client cancels its call mid-sentence: the worker's stream ends and upstream stops."""
    stream = Stream(worker.channel)
    await stream.send(config(utterance_id="cosy-gone", voice="guide"), text(LONG), END)
    await stream.read_one()
    started = len(worker.model.model.texts_spoken)
    stream.call.cancel()
    await until(lambda: upstream_idle(worker))
    assert len(worker.model.model.texts_spoken) - started <= 1


async def test_concurrent_streams_of_one_voice_each_get_their_own_text(
    worker: InProcess,
) -> None:
    """Upstream writes each utterance's text into the voice's speaker entry (the fake refuses
    two at once, which would end a stream in INTERNAL); four streams of one voice each hear
    exactly their own sentence."""
    sentences = [f"Stream {n} says {'a few more words ' * n}and stops." for n in range(4)]
    streams = [Stream(worker.channel) for _ in sentences]
    for n, (stream, sentence) in enumerate(zip(streams, sentences, strict=True)):
        await stream.send(config(utterance_id=f"cosy-same-{n}", voice="guide"), text(sentence), END)
    results: list[Received] = await asyncio.gather(*(s.read_all() for s in streams))
    for sentence, received in zip(sentences, results, strict=True):
        assert received.stats is not None and not received.stats.cancelled
        assert received.audio_seconds == pytest.approx(seconds_of(sentence), abs=0.021)
    await until(lambda: upstream_idle(worker))


async def test_pause_holds_frames_until_resume(worker: InProcess) -> None:
    """Paused before any text: upstream computes the first chunk, its frames wait for RESUME."""
    stream = Stream(worker.channel)
    reader = asyncio.create_task(stream.read_all())
    await stream.send(
        config(utterance_id="cosy-pause", voice="narrator"),
        control(tts_pb2.CONTROL_COMMAND_PAUSE),
        text(SENTENCE),
        END,
    )
    spoken = len(worker.model.model.texts_spoken)
    await until(lambda: len(worker.model.model.texts_spoken) > spoken)
    thread = worker.model.model.llm_threads[-1]
    await until(lambda: not thread.is_alive())  # the first chunk was computed long before
    resumed_ns = time.time_ns()
    await stream.send(control(tts_pb2.CONTROL_COMMAND_RESUME))
    received = await asyncio.wait_for(reader, timeout=10)
    assert received.frames[0].produced_unix_ns < resumed_ns <= received.arrivals_ns[0]
    assert received.stats is not None and not received.stats.cancelled
    assert received.audio_seconds == pytest.approx(seconds_of(SENTENCE), abs=0.021)


async def test_a_speed_is_refused_since_upstream_streams_without_one(worker: InProcess) -> None:
    """Upstream's streaming mode ignores `speed` (R3): the worker refuses it, naming the
    field, rather than speak at another speed than asked."""
    stream = Stream(worker.channel)
    # Only the config, as below: the worker ends the stream on it.
    await stream.send(config(utterance_id="cosy-speed", voice="guide", speed=1.5))
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await stream.read_all()
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "speed 1.5: the cosyvoice engine has no speed control" in (caught.value.details() or "")


async def test_unknown_voice_is_not_found(worker: InProcess) -> None:
    stream = Stream(worker.channel)
    # Only the config: the worker ends the stream on it, and a write racing that end can
    # leave the client with grpc-core's bare INTERNAL instead of the worker's status.
    await stream.send(config(utterance_id="cosy-nobody", voice="nobody"))
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await stream.read_all()
    assert caught.value.code() == grpc.StatusCode.NOT_FOUND
    assert "nobody" in (caught.value.details() or "")


# -- a real worker process, engine chosen by TTS_WORKER_ENGINE -------------------------------


@pytest.fixture(scope="module")
def cosyvoice_worker(model_dir: Path) -> Iterator[WorkerProcess]:
    worker = WorkerProcess(
        env={
            "TTS_WORKER_ENGINE": "cosyvoice",
            "TTS_WORKER_COSYVOICE_MODEL_DIR": str(model_dir),
            "TTS_WORKER_COSYVOICE_VOICES_DIR": str(model_dir / "voices"),
            "TTS_WORKER_COSYVOICE_MODEL_FACTORY": "tests.fakes.cosyvoice:load",
            "FAKE_COSYVOICE_TOKEN_SECONDS": "0.001",
        }
    ).start()
    yield worker
    worker.stop()


async def test_worker_process_runs_the_cosyvoice_engine(
    cosyvoice_worker: WorkerProcess,
) -> None:
    async with grpc.aio.insecure_channel(cosyvoice_worker.address) as channel:
        stub = tts_pb2_grpc.TextToSpeechStub(channel)
        capabilities = await stub.GetCapabilities(tts_pb2.GetCapabilitiesRequest())
        assert capabilities.engine == "cosyvoice"
        assert capabilities.default_voice == "guide"  # the first zero-shot voice
        voices = {v.name: v for v in capabilities.voices}
        assert set(voices) == set(VOICES)
        assert {v.engine for v in voices.values()} == {"cosyvoice"}
        assert {v.native_sample_rate for v in voices.values()} == {24000}
        assert voices["narrator"].loaded is False
        loaded = await stub.LoadVoice(tts_pb2.LoadVoiceRequest(name="narrator"))
        assert loaded.voice.loaded
        stream = Stream(channel)
        await stream.send(
            config(utterance_id="cosy-process", voice="narrator", sample_rate=48000),
            text(SENTENCE),
            END,
        )
        received = await stream.read_all()
        assert received.stats is not None and received.stats.frames == len(received.frames)
        assert {f.sample_rate for f in received.frames} == {48000}
    assert "cosyvoice model replaced by a test factory" in cosyvoice_worker.log()


async def test_orchestrator_routes_to_the_cosyvoice_worker(
    cosyvoice_worker: WorkerProcess,
) -> None:
    orch = Orchestrator(orchestrator_settings(workers=[cosyvoice_worker.address]))
    await orch.start()
    try:
        base = f"http://127.0.0.1:{orch.settings.port}"
        async with httpx.AsyncClient(base_url=base, timeout=30) as client:
            for _ in range(50):  # the registry polls the worker it is given
                listed = (await client.get("/v1/voices")).json()
                if "narrator" in str(listed):
                    break
                await asyncio.sleep(0.1)
            assert "narrator" in str(listed) and "guide" in str(listed)
            response = await client.post(
                "/synthesize",
                json={"text": SENTENCE, "voice": "guide", "sample_rate": 16000},
            )
            assert response.status_code == 200, response.text
            assert response.headers["X-Sample-Rate"] == "16000"
            assert response.content[:4] == b"RIFF"
            assert len(response.content) > 16000 * 2 * 0.5  # at least half a second of audio
            missing = await client.post("/synthesize", json={"text": "Hi.", "voice": "nobody"})
            assert missing.status_code == 404
    finally:
        await orch.stop()


def test_worker_without_weights_exits_naming_the_folder(tmp_path: Path) -> None:
    absent = tmp_path / "weights-not-mounted"
    worker = WorkerProcess(
        env={"TTS_WORKER_ENGINE": "cosyvoice", "TTS_WORKER_COSYVOICE_MODEL_DIR": str(absent)}
    )
    with pytest.raises(RuntimeError, match="worker exited early"):
        worker.start()
    assert worker.stop() != 0
    assert f"CosyVoice model folder {absent} does not exist" in worker.log()
