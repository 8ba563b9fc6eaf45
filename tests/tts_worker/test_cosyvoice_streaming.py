"""The CosyVoice engine behind the worker's gRPC stream, with the fake model: frames leave as
CosyVoice yields them, 24 kHz is resampled to every rate, PAUSE/RESUME/CANCEL act per
utterance; and a real `tts-worker` process with TTS_WORKER_ENGINE=cosyvoice is listed and
routed to by the orchestrator like a Piper worker."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import grpc
import httpx
import pytest

from orchestrator.cli import Orchestrator
from tests.conftest import orchestrator_settings
from tests.fakes.clips import dominant_hz, write_clip
from tests.fakes.cosyvoice import CHUNK_SECONDS, SPEAKERS, FakeCosyVoice2
from tests.processes import WorkerProcess
from tests.tts_worker.grpc_client import END, Stream, config, control, text
from tts_rpc.v1 import tts_pb2, tts_pb2_grpc
from tts_worker.admission import Admission
from tts_worker.engines.cosyvoice import CosyVoiceEngine, ZeroShotVoice
from tts_worker.service import TextToSpeechService
from tts_worker.utterance import SUPPORTED_SAMPLE_RATES, Limits

SENTENCE = "CosyVoice streams this sentence chunk by chunk."  # one segment, 4 chunks
LONG = " ".join(
    f"Sentence number {n} keeps the fake model busy for a good while longer." for n in range(8)
)
CHUNK_DELAY = 0.08


@dataclass
class InProcess:
    model: FakeCosyVoice2
    channel: grpc.aio.Channel


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("CosyVoice2-0.5B")
    voices = folder / "voices"
    voices.mkdir()
    write_clip(voices / "narrator.wav", seconds=2.0, rate=44100)
    (voices / "narrator.txt").write_text("This is how the narrator sounds.", encoding="utf-8")
    return folder


@pytest.fixture(scope="module")
async def worker(model_dir: Path) -> AsyncIterator[InProcess]:
    """The worker's servicer, in this process, on the engine over one fake model."""
    models: list[FakeCosyVoice2] = []

    def factory(folder: Path) -> FakeCosyVoice2:
        models.append(FakeCosyVoice2(folder, CHUNK_DELAY))
        return models[-1]

    clip = model_dir / "voices" / "narrator.wav"
    engine = CosyVoiceEngine(
        model_dir, factory, {"narrator": ZeroShotVoice(clip, "This is how the narrator sounds.")}
    )
    executor = ThreadPoolExecutor(4, thread_name_prefix="test-inference")
    service = TextToSpeechService(
        engine, executor, Admission(4, 8), Limits(30, 250, 4000, 20000), "cosyvoice-in-process"
    )
    server = grpc.aio.server()
    tts_pb2_grpc.add_TextToSpeechServicer_to_server(service, server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
        yield InProcess(models[0], channel)
    await server.stop(None)
    executor.shutdown(wait=True, cancel_futures=True)


async def test_frames_leave_before_cosyvoice_finishes_the_segment(worker: InProcess) -> None:
    """Streaming inside one segment: the first frame reaches the client while the model
    is still computing that segment's later chunks."""
    stream = Stream(worker.channel)
    await stream.send(config(utterance_id="cosy-first", voice="english_male"), text(SENTENCE), END)
    first = await stream.read_one()
    assert first is not None and first.HasField("frame")
    call = worker.model.calls[-1]
    assert call.text == SENTENCE and call.stream
    assert call.finished is None, "the whole segment was synthesized before the first frame"
    assert call.chunks < FakeCosyVoice2.chunks_for(SENTENCE)
    received = await stream.read_all()
    assert received.stats is not None and not received.stats.cancelled
    assert call.finished is not None
    assert received.arrivals_ns[0] < received.frames[-1].produced_unix_ns


@pytest.mark.parametrize("rate", SUPPORTED_SAMPLE_RATES)
async def test_24_khz_is_resampled_to_the_requested_rate(worker: InProcess, rate: int) -> None:
    stream = Stream(worker.channel)
    await stream.send(
        config(utterance_id=f"cosy-{rate}", voice="english_female", sample_rate=rate),
        text(SENTENCE),
        END,
    )
    received = await stream.read_all()
    assert received.stats is not None
    assert {f.sample_rate for f in received.frames} == {rate}
    assert {len(f.audio) for f in received.frames[:-1]} == {rate * 20 // 1000 * 2}
    expected = FakeCosyVoice2.chunks_for(SENTENCE) * CHUNK_SECONDS
    assert received.audio_seconds == pytest.approx(expected, abs=0.021)
    pcm = b"".join(f.audio for f in received.frames)
    assert dominant_hz(pcm, rate) == pytest.approx(worker.model.tone_hz("english_female"), abs=2.0)


async def test_default_rate_is_cosyvoice_24_khz(worker: InProcess) -> None:
    stream = Stream(worker.channel)
    await stream.send(config(utterance_id="cosy-native"), text(SENTENCE), END)
    received = await stream.read_all()
    assert {f.sample_rate for f in received.frames} == {24000}
    assert worker.model.calls[-1].speaker == SPEAKERS[0]  # the engine's default voice


async def test_zero_shot_voice_streams_with_its_own_prompt(worker: InProcess) -> None:
    stream = Stream(worker.channel)
    await stream.send(
        config(utterance_id="cosy-zs", voice="narrator", sample_rate=16000), text(SENTENCE), END
    )
    received = await stream.read_all()
    assert received.stats is not None and received.stats.frames == len(received.frames)
    call = worker.model.calls[-1]
    assert (call.method, call.speaker) == ("inference_zero_shot", "narrator")
    assert worker.model.prompts["narrator"][0] == "This is how the narrator sounds."
    pcm = b"".join(f.audio for f in received.frames)
    assert dominant_hz(pcm, 16000) == pytest.approx(worker.model.tone_hz("narrator"), abs=2.0)


async def test_cancel_mid_stream_stops_cosyvoice_and_spares_the_other(worker: InProcess) -> None:
    a, b = Stream(worker.channel), Stream(worker.channel)
    await a.send(config(utterance_id="cosy-a", voice="english_male"), text(LONG), END)
    await b.send(config(utterance_id="cosy-b", voice="english_female"), text(SENTENCE), END)
    await a.read_one()
    await b.read_one()
    await a.send(control(tts_pb2.CONTROL_COMMAND_CANCEL))
    received_a, received_b = await asyncio.gather(a.read_all(), b.read_all())
    assert received_a.stats is not None and received_a.stats.cancelled
    assert received_b.stats is not None and not received_b.stats.cancelled
    assert await a.call.code() == grpc.StatusCode.OK
    calls_a = [c for c in worker.model.calls if c.speaker == "english_male" and c.text in LONG]
    produced = sum(c.chunks for c in calls_a)
    await asyncio.sleep(4 * CHUNK_DELAY)
    # The model stopped: no new segment started, the running one produced at most the
    # chunk it was computing, and it was closed rather than run to its end.
    calls_after = [c for c in worker.model.calls if c.speaker == "english_male" and c.text in LONG]
    assert len(calls_after) == len(calls_a) < 8
    assert sum(c.chunks for c in calls_after) <= produced + 1
    assert any(c.closed_early for c in calls_after)
    whole = 8 * FakeCosyVoice2.chunks_for(LONG.split(". ")[0]) * CHUNK_SECONDS
    assert received_a.audio_seconds < whole / 2


async def test_pause_holds_frames_until_resume(worker: InProcess) -> None:
    stream = Stream(worker.channel)
    reader = asyncio.create_task(stream.read_all())
    await stream.send(
        config(utterance_id="cosy-pause", voice="english_female"),
        control(tts_pb2.CONTROL_COMMAND_PAUSE),
        text(SENTENCE),
        END,
    )
    await asyncio.sleep(FakeCosyVoice2.chunks_for(SENTENCE) * CHUNK_DELAY + 0.2)
    assert stream.received.frames == []
    resumed_ns = time.time_ns()
    await stream.send(control(tts_pb2.CONTROL_COMMAND_RESUME))
    received = await asyncio.wait_for(reader, timeout=10)
    assert received.arrivals_ns[0] >= resumed_ns
    assert received.stats is not None and not received.stats.cancelled
    assert received.audio_seconds == pytest.approx(
        FakeCosyVoice2.chunks_for(SENTENCE) * CHUNK_SECONDS, abs=0.021
    )


async def test_unknown_speaker_is_not_found(worker: InProcess) -> None:
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
            "FAKE_COSYVOICE_CHUNK_DELAY": "0.02",
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
        assert capabilities.default_voice == SPEAKERS[0]
        voices = {v.name: v for v in capabilities.voices}
        assert set(voices) == {*SPEAKERS, "narrator"}
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
            assert "narrator" in str(listed) and "english_male" in str(listed)
            response = await client.post(
                "/synthesize",
                json={"text": SENTENCE, "voice": "english_male", "sample_rate": 16000},
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
