"""The worker's Synthesize stream: frames leave as produced, and controls stay per stream."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import grpc
import pytest

from tests.processes import WorkerProcess
from tests.tts_worker.grpc_client import END, Stream, config, control, text
from tts_rpc.v1 import tts_pb2

PARAGRAPH = (
    "Streaming matters for voice agents, because a listener notices every pause. "
    "The worker should send the first clause while it is still computing the rest, "
    "and it should keep going, sentence after sentence, until the text runs out. "
    "Only then does the final statistics message arrive."
)


@pytest.fixture(scope="module")
async def channel(piper_worker: WorkerProcess) -> AsyncIterator[grpc.aio.Channel]:
    async with grpc.aio.insecure_channel(piper_worker.address) as ch:
        yield ch


async def test_first_frame_arrives_before_the_utterance_is_synthesized(
    channel: grpc.aio.Channel,
) -> None:
    """Never buffer a whole utterance: the first frame reaches the client before the engine
    has even produced the audio of the last clause."""
    stream = Stream(channel)
    await stream.send(config(utterance_id="order", sample_rate=24000), text(PARAGRAPH), END)
    received = await stream.read_all()
    assert received.stats is not None and not received.stats.cancelled
    last_produced = received.frames[-1].produced_unix_ns
    assert received.arrivals_ns[0] < last_produced
    # Frames are numbered, contiguous in time and 20 ms long (the last may be shorter).
    assert [f.sequence_number for f in received.frames] == list(range(len(received.frames)))
    for before, after in zip(received.frames, received.frames[1:], strict=False):
        assert after.start_seconds == pytest.approx(before.start_seconds + before.duration_seconds)
    assert {len(f.audio) for f in received.frames[:-1]} == {24000 * 20 // 1000 * 2}
    assert received.stats.frames == len(received.frames)
    assert received.stats.audio_seconds == pytest.approx(received.audio_seconds)
    # Several clauses, each frame pointing at the text it speaks.
    spans = {(f.text_span.start, f.text_span.end) for f in received.frames}
    assert len(spans) >= 4
    assert all(0 <= start < end <= len(PARAGRAPH) for start, end in spans)


async def test_incremental_text_starts_before_input_ends(channel: grpc.aio.Channel) -> None:
    """Text streamed like LLM tokens is spoken once a clause is complete, before END."""
    stream = Stream(channel)
    await stream.send(config(utterance_id="incremental"))
    words = "Hello there, my friend, this sentence arrives one word at a time. And"
    for word in words.split(" "):
        await stream.send(text(word + " "))
    first = await asyncio.wait_for(stream.read_one(), timeout=30)
    assert first is not None and first.HasField("frame")
    await stream.send(text("then it ends."), END)
    received = await stream.read_all()
    assert received.stats is not None and received.stats.frames == len(received.frames)


async def test_cancel_on_one_stream_leaves_the_other_untouched(channel: grpc.aio.Channel) -> None:
    """CANCEL ends only its own utterance: the concurrent one plays out in full."""
    a, b = Stream(channel), Stream(channel)
    await a.send(config(utterance_id="a"), text(PARAGRAPH), END)
    await b.send(config(utterance_id="b"), text(PARAGRAPH), END)
    await a.read_one()
    await b.read_one()
    await a.send(control(tts_pb2.CONTROL_COMMAND_CANCEL))
    received_a, received_b = await asyncio.gather(a.read_all(), b.read_all())
    assert received_a.stats is not None and received_a.stats.cancelled
    assert received_b.stats is not None and not received_b.stats.cancelled
    assert received_b.audio_seconds > 10.0  # the whole paragraph
    assert received_a.audio_seconds < received_b.audio_seconds / 2
    assert await a.call.code() == grpc.StatusCode.OK


async def test_pause_on_one_stream_leaves_the_other_untouched(channel: grpc.aio.Channel) -> None:
    """PAUSE holds only its own frames; RESUME continues at the exact next sample."""
    a, b = Stream(channel), Stream(channel)
    await a.send(config(utterance_id="pa"), text(PARAGRAPH), END)
    await a.read_one()
    await a.send(control(tts_pb2.CONTROL_COMMAND_PAUSE))
    reading_a = asyncio.create_task(a.read_all())
    await b.send(config(utterance_id="pb"), text(PARAGRAPH), END)
    received_b = await b.read_all()
    assert received_b.stats is not None and not received_b.stats.cancelled
    # While b ran from start to end (the bound of this check, not a fixed sleep), a
    # delivered at most what was already on the wire and did not end.
    assert not reading_a.done()
    assert a.received.audio_seconds < received_b.audio_seconds / 2
    await a.send(control(tts_pb2.CONTROL_COMMAND_RESUME))
    received_a = await reading_a
    assert received_a.stats is not None and not received_a.stats.cancelled
    sequence = [f.sequence_number for f in received_a.frames]
    assert sequence == list(range(len(sequence)))
    assert received_a.audio_seconds > 10.0


async def test_client_cancel_mid_stream_frees_the_slot(channel: grpc.aio.Channel) -> None:
    """A client that abandons the RPC releases its synthesis slot at once."""
    from tts_rpc.v1 import tts_pb2_grpc

    stub = tts_pb2_grpc.TextToSpeechStub(channel)
    stream = Stream(channel)
    await stream.send(config(utterance_id="abandon"), text(PARAGRAPH), END)
    await stream.read_one()
    stream.call.cancel()
    for _ in range(100):
        caps = await stub.GetCapabilities(tts_pb2.GetCapabilitiesRequest())
        if caps.active_streams == 0:
            break
        await asyncio.sleep(0.05)
    assert caps.active_streams == 0


async def test_cancel_right_after_the_stats_releases_the_slot(
    channel: grpc.aio.Channel, piper_worker: WorkerProcess
) -> None:
    """A client that cancels the moment it has the stats (as the orchestrator and the plugin
    do) cancels the worker's handler while it is still winding up: that second cancellation
    must not skip the release of the stream's slot."""
    for n in range(30):
        stream = Stream(channel)
        await stream.send(config(utterance_id=f"stats-then-cancel-{n}"), text("Short."), END)
        while stream.received.stats is None:
            assert await stream.read_one() is not None
        stream.call.cancel()
    assert await piper_worker.busy_streams(within=10.0) == {}


async def test_a_control_after_the_worker_finished_loses_no_frames(
    channel: grpc.aio.Channel, piper_worker: WorkerProcess
) -> None:
    """A control that crosses the worker's end (a pacing client's PAUSE while the last frames
    are in flight) costs nothing: the worker holds a finished stream open until the client
    half-closes, so the write is accepted and every frame and the stats are still read."""
    stream = Stream(channel)
    await stream.send(config(utterance_id="late-pause"), text("Hello there, late reader."), END)
    assert await stream.read_one() is not None  # started: the rest waits unread
    # The worker has finished (its slot is free) and the client has read one frame.
    assert await piper_worker.busy_streams(within=30) == {}
    await stream.send(control(tts_pb2.CONTROL_COMMAND_PAUSE))
    received = await stream.read_all()
    assert received.stats is not None and not received.stats.cancelled
    assert received.stats.frames == len(received.frames) > 1
    assert await stream.call.code() == grpc.StatusCode.OK
