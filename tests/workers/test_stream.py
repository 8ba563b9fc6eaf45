"""The retrying worker stream against fake workers: a failure before the first audio moves
the utterance to another worker with the text replayed; after the first audio it is never
restarted; the registry's in-flight count follows the stream."""

from __future__ import annotations

import asyncio

import grpc
import pytest

from fleet.memory_store import MemoryStore
from fleet.records import VoiceInfo, WorkerRecord
from fleet.workers import put_worker
from orchestrator import errors
from orchestrator.workers.channels import WorkerChannels
from orchestrator.workers.registry import WorkerRegistry
from orchestrator.workers.stream import StreamOptions, WorkerStream, WorkerStreamError
from tests.fakes.worker_stub import HANG, FakeChannels, FakeWorker, frame, stats, status
from tts_rpc.v1 import tts_pb2

VOICE = "en_US-joe-medium"


def record(worker_id: str, active: int) -> WorkerRecord:
    return WorkerRecord(
        worker_id=worker_id,
        address=f"{worker_id}:7001",
        engine="piper",
        voices=(VoiceInfo(VOICE, 22050, "en_US"),),
        default_voice=VOICE,
        max_streams=4,
        active_streams=active,
    )


async def registry_of(*workers: WorkerRecord) -> WorkerRegistry:
    store = MemoryStore()
    for worker in workers:
        await put_worker(store, worker, ttl_seconds=60)
    registry = WorkerRegistry(store, WorkerChannels(), refresh_seconds=60)
    await registry.refresh()
    return registry


def kinds(call_written: list[tts_pb2.SynthesizeRequest]) -> list[str]:
    return [str(message.WhichOneof("request")) for message in call_written]


async def open_stream(
    registry: WorkerRegistry, channels: FakeChannels, **options: float
) -> WorkerStream:
    stream = WorkerStream(
        registry,
        channels,  # type: ignore[arg-type]  # the fake has WorkerChannels.stub()
        voice=VOICE,
        options=StreamOptions(**options),  # type: ignore[arg-type]
    )
    await stream.start()
    await stream.send_text("Hello there.")
    await stream.end_input()
    return stream


async def test_failure_before_first_audio_moves_to_another_worker_with_the_text() -> None:
    # "a" is idle, so it is picked first; it dies before sending audio.
    registry = await registry_of(record("a", active=0), record("b", active=2))
    a = FakeWorker([[status(grpc.StatusCode.UNAVAILABLE, "worker killed")]])
    b = FakeWorker([[frame(0, 6), frame(6, 12), stats()]])
    stream = await open_stream(registry, FakeChannels({"a:7001": a, "b:7001": b}))

    first = await stream.next_frame()
    assert first is not None and first.text_span.end == 6
    assert stream.worker is not None and stream.worker.worker_id == "b"
    assert stream.attempts == 2
    # The new worker got the whole utterance: config, the text, the end of input.
    assert kinds(b.calls[0].written) == ["config", "text", "end_of_input"]
    assert b.calls[0].written[1].text.text == "Hello there."
    assert await stream.next_frame() is not None
    assert not b.calls[0].half_closed
    assert await stream.next_frame() is None
    assert stream.stats is not None
    # Half-closed once the stats are in: the worker holds its end of the call until then.
    assert b.calls[0].half_closed
    assert registry.in_flight("a") == registry.in_flight("b") == 0


async def test_writes_during_a_retry_wait_for_the_new_calls_config() -> None:
    """The reader moves the utterance to another worker while a writer is sending text: the
    new call gets its config first, then every text in order, never two writes at once."""
    registry = await registry_of(record("a", active=0), record("b", active=2))
    a = FakeWorker([[status(grpc.StatusCode.UNAVAILABLE, "worker killed")]])
    b = FakeWorker([[frame(), stats()]])
    channels = FakeChannels({"a:7001": a, "b:7001": b})
    stream = WorkerStream(registry, channels, voice=VOICE)  # type: ignore[arg-type]
    await stream.start()
    words = [f"word{i} " for i in range(20)]

    async def write_all() -> None:
        for word in words:
            await stream.send_text(word)
        await stream.end_input()

    writer = asyncio.create_task(write_all())
    assert await stream.next_frame() is not None  # the retry runs inside this read
    await writer
    call = b.calls[0]
    assert not call.overlapped
    assert kinds(call.written) == ["config", *["text"] * len(words), "end_of_input"]
    assert "".join(m.text.text for m in call.written[1:-1]) == "".join(words)


async def test_failure_after_first_audio_is_not_restarted() -> None:
    registry = await registry_of(record("a", active=0), record("b", active=2))
    a = FakeWorker([[frame(), status(grpc.StatusCode.UNAVAILABLE, "worker killed")]])
    b = FakeWorker([[frame(), stats()]])
    stream = await open_stream(registry, FakeChannels({"a:7001": a, "b:7001": b}))

    assert await stream.next_frame() is not None
    with pytest.raises(WorkerStreamError) as failed:
        await stream.next_frame()
    assert failed.value.after_audio
    assert failed.value.code == grpc.StatusCode.UNAVAILABLE
    assert b.calls == []  # speech is never restarted from the top
    assert registry.in_flight("a") == 0


async def test_worker_refusal_is_not_retried() -> None:
    registry = await registry_of(record("a", active=0), record("b", active=2))
    a = FakeWorker([[status(grpc.StatusCode.INVALID_ARGUMENT, "text too long")]])
    b = FakeWorker([[frame(), stats()]])
    stream = await open_stream(registry, FakeChannels({"a:7001": a, "b:7001": b}))

    with pytest.raises(WorkerStreamError) as failed:
        await stream.next_frame()
    assert failed.value.code == grpc.StatusCode.INVALID_ARGUMENT
    assert not failed.value.after_audio
    assert b.calls == []


async def test_hung_worker_is_left_after_the_first_audio_timeout() -> None:
    registry = await registry_of(record("a", active=0), record("b", active=2))
    a = FakeWorker([[HANG]])
    b = FakeWorker([[frame(), stats()]])
    stream = await open_stream(
        registry, FakeChannels({"a:7001": a, "b:7001": b}), first_audio_timeout_seconds=0.05
    )

    assert await stream.next_frame() is not None
    assert a.calls[0].cancelled
    assert stream.worker is not None and stream.worker.worker_id == "b"


async def test_attempts_are_bounded() -> None:
    registry = await registry_of(record("a", active=0), record("b", active=1))
    down = [status(grpc.StatusCode.UNAVAILABLE, "down")]
    a, b = FakeWorker([down]), FakeWorker([down])
    stream = await open_stream(registry, FakeChannels({"a:7001": a, "b:7001": b}), max_attempts=2)

    with pytest.raises(WorkerStreamError):
        await stream.next_frame()
    assert stream.attempts == 2
    assert len(a.calls) == len(b.calls) == 1


async def test_a_stream_ending_without_stats_counts_as_a_lost_worker() -> None:
    """grpc.aio.EOF without the final stats message: the worker vanished mid-stream."""
    registry = await registry_of(record("a", active=0), record("b", active=2))
    a = FakeWorker([[]])  # EOF at once
    b = FakeWorker([[frame(), stats()]])
    stream = await open_stream(registry, FakeChannels({"a:7001": a, "b:7001": b}))

    assert await stream.next_frame() is not None
    assert stream.worker is not None and stream.worker.worker_id == "b"


async def test_close_cancels_the_call_and_releases_the_worker() -> None:
    registry = await registry_of(record("a", active=0))
    a = FakeWorker([[frame(), HANG]])
    stream = await open_stream(registry, FakeChannels({"a:7001": a}))
    assert await stream.next_frame() is not None
    assert registry.in_flight("a") == 1
    await stream.aclose()
    assert a.calls[0].cancelled
    assert registry.in_flight("a") == 0


async def test_playout_reports_go_in_band_after_the_first_audio_and_are_never_replayed() -> None:
    """A session reports where its listener is; before the first frame there is nothing played
    (and a retry on another worker must not replay a position of the failed one)."""
    registry = await registry_of(record("a", active=0))
    a = FakeWorker([[frame(0, 6), frame(6, 12), stats()]])
    stream = WorkerStream(
        registry,
        FakeChannels({"a:7001": a}),  # type: ignore[arg-type]
        voice=VOICE,
        max_lead_seconds=2.5,
    )
    await stream.start()
    await stream.send_text("Hello there.")
    await stream.report_playout(0.0)  # before any audio: not sent
    await stream.end_input()
    assert await stream.next_frame() is not None
    await stream.report_playout(0.02)
    written = a.calls[0].written
    assert kinds(written) == ["config", "text", "end_of_input", "playout"]
    assert written[0].config.max_lead_seconds == 2.5
    assert written[3].playout.played_seconds == pytest.approx(0.02)
    while await stream.next_frame() is not None:
        pass


AT_CAPACITY = [status(grpc.StatusCode.RESOURCE_EXHAUSTED, "worker at capacity")]


async def test_a_stream_every_worker_refused_for_capacity_asks_again_until_one_takes_it() -> None:
    """A worker refuses what it could not keep fed now; the only worker frees up a moment
    later, and the utterance (its text replayed) is placed there instead of failing."""
    registry = await registry_of(record("a", active=0))
    a = FakeWorker([AT_CAPACITY, AT_CAPACITY, [frame(), stats()]])
    stream = await open_stream(registry, FakeChannels({"a:7001": a}), capacity_wait_seconds=5)

    assert await stream.next_frame() is not None
    assert len(a.calls) == 3
    assert kinds(a.calls[2].written) == ["config", "text", "end_of_input"]


async def test_asking_again_for_capacity_is_bounded() -> None:
    registry = await registry_of(record("a", active=0))
    a = FakeWorker([AT_CAPACITY] * 20)
    stream = await open_stream(registry, FakeChannels({"a:7001": a}), capacity_wait_seconds=0.5)

    with pytest.raises(WorkerStreamError) as caught:
        await stream.next_frame()
    assert caught.value.code == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert 1 < len(a.calls) < 20
    refused = caught.value.as_service_error()
    assert refused.code is errors.WORKER_UNAVAILABLE and refused.retry_after_seconds == 1


async def test_grpc_cores_local_error_before_audio_is_a_refusal_not_a_synthesis_failure() -> None:
    """A worker's refusal that ends the call while the first text is still being written
    reaches the client as grpc-core's own INTERNAL error: the worker is unavailable (503),
    it did not fail on the text (502)."""
    registry = await registry_of(record("a", active=0))
    lost = [status(grpc.StatusCode.INTERNAL, "Internal error from Core")]
    a = FakeWorker([lost, lost])
    stream = await open_stream(registry, FakeChannels({"a:7001": a}), capacity_wait_seconds=0)

    with pytest.raises(WorkerStreamError) as caught:
        await stream.next_frame()
    assert caught.value.as_service_error().code is errors.WORKER_UNAVAILABLE
