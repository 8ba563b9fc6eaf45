"""An engine without word alignment (CosyVoice, over the fake model): every clause is timed
as a whole from the audio it produced, and a speed it cannot honour is refused."""

from __future__ import annotations

from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import grpc
import pytest

from tests.fakes import cosyvoice as fake
from tests.fakes.clips import write_clip
from tests.tts_worker.grpc_client import END, Stream, config, text
from tts_rpc.v1 import tts_pb2, tts_pb2_grpc
from tts_worker.admission import Admission
from tts_worker.engines.cosyvoice import CosyVoiceEngine, ZeroShotVoice, load_cosyvoice2
from tts_worker.scheduler import Scheduler, SchedulerOptions
from tts_worker.service import TextToSpeechService
from tts_worker.utterance import Limits

TEXT = (
    "The first clause of this sentence is long enough, and the second one follows it. "
    "Then a short sentence."
)


@pytest.fixture(scope="module")
async def channel(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[grpc.aio.Channel]:
    folder = fake.write_model_dir(tmp_path_factory.mktemp("CosyVoice2-0.5B"))
    clip = folder / "narrator.wav"
    write_clip(clip, seconds=2.0, rate=44100)
    voices = {"narrator": ZeroShotVoice(Path(clip), "This is how the narrator sounds.")}
    with fake.installed(token_seconds=0.001):
        engine = CosyVoiceEngine(folder, load_cosyvoice2, voices, default_voice="narrator")
    executor = ThreadPoolExecutor(2, thread_name_prefix="test-inference")
    scheduler = Scheduler(executor, SchedulerOptions(parallelism=2))
    service = TextToSpeechService(
        engine, executor, scheduler, Admission(2, 4), Limits(30, 250, 4000, 20000), "clause-timings"
    )
    server = grpc.aio.server()
    tts_pb2_grpc.add_TextToSpeechServicer_to_server(service, server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as ch:
        yield ch
    await server.stop(None)
    executor.shutdown(wait=True, cancel_futures=True)


async def test_each_clause_is_timed_once_from_its_own_audio(channel: grpc.aio.Channel) -> None:
    """One CLAUSE timing per segment, in order, back to back on the audio clock, spans
    exactly the segments' text; the last one, known only after the last frame, comes in
    the stats."""
    stream = Stream(channel)
    await stream.send(config(utterance_id="clauses", sample_rate=24000), text(TEXT), END)
    received = await stream.read_all()
    assert received.stats is not None
    on_frames = [t for f in received.frames for t in f.timings]
    timings = on_frames + list(received.stats.timings)
    assert {t.unit for t in timings} == {tts_pb2.TIMING_UNIT_CLAUSE}
    spoken = [TEXT[t.text_span.start : t.text_span.end] for t in timings]
    assert spoken == [
        "The first clause of this sentence is long enough,",
        "and the second one follows it.",
        "Then a short sentence.",
    ]
    assert len(received.stats.timings) == 1
    assert timings[0].start_seconds == 0
    for before, after in zip(timings, timings[1:], strict=False):
        assert before.start_seconds < before.end_seconds == pytest.approx(after.start_seconds)
    assert timings[-1].end_seconds == pytest.approx(received.audio_seconds, abs=0.01)
    # A clause's timing rides on the first frame sent after its audio ended.
    spans = [(f.text_span.start, f.text_span.end) for f in received.frames]
    for frame, span in zip(received.frames, spans, strict=True):
        for timing in frame.timings:
            assert frame.start_seconds >= timing.end_seconds - frame.duration_seconds
            assert (timing.text_span.start, timing.text_span.end) != span


async def test_a_speed_cosyvoice_cannot_stream_is_refused(channel: grpc.aio.Channel) -> None:
    """Upstream's streaming path ignores speed: the worker says so instead of pretending."""
    stream = Stream(channel)
    await stream.send(config(utterance_id="speed", speed=1.5))
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await stream.read_all()
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "speed" in (caught.value.details() or "")
