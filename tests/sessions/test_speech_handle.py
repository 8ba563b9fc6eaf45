"""A cancelled utterance tells its worker in band and reads on to the worker's final stats,
so the worker ends it as cancelled rather than seeing the call dropped mid-read (a cancelled
read cancels the whole gRPC call), and the handle winds up without raising into its
session."""

from __future__ import annotations

import asyncio

from fleet.aio import poll_until
from fleet.memory_store import MemoryStore
from orchestrator.metrics.recorder import FleetMetrics
from orchestrator.sessions.events import EventLog
from orchestrator.sessions.playout import AgentSource
from orchestrator.sessions.speech_handle import SpeechHandle, UtteranceState
from orchestrator.workers.stream import WorkerStream
from tests.fakes.worker_stub import UNTIL_CANCEL, FakeChannels, FakeWorker, stats
from tests.workers.test_stream import VOICE, record, registry_of
from tts_rpc.v1 import tts_pb2

RATE = 48000


async def test_a_cancel_goes_in_band_and_the_worker_s_stats_end_the_utterance() -> None:
    registry = await registry_of(record("a", active=0))
    second = tts_pb2.SynthesizeResponse(
        frame=tts_pb2.AudioFrame(audio=b"\x01\x00" * RATE, sample_rate=RATE)
    )
    worker = FakeWorker([[second, UNTIL_CANCEL, stats()]])
    stream = WorkerStream(
        registry,
        FakeChannels({"a:7001": worker}),  # type: ignore[arg-type]
        voice=VOICE,
        sample_rate=RATE,
        max_lead_seconds=3.0,
    )
    handle = SpeechHandle(interruptible=True, sample_rate=RATE)
    handle.add_text("Hello there, this is a long one.", final=True)
    metrics = FleetMetrics(MemoryStore(), "handle-test")
    play = asyncio.create_task(
        handle.play(stream, AgentSource(RATE, 100), EventLog("s"), metrics, lambda: None)
    )
    assert await poll_until(lambda: handle.audio.samples > 0, timeout_seconds=5)
    handle.cancel()
    async with asyncio.timeout(5):
        await play  # returns normally: nothing raised into the session
    call = worker.calls[0]
    assert call.written[-1].control.command == tts_pb2.CONTROL_COMMAND_CANCEL
    assert stream.stats is not None  # read on to the worker's stats, not dropped mid-read
    assert handle.state is UtteranceState.CANCELLED
    assert registry.in_flight("a") == 0
