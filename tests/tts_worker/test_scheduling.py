"""Deadline scheduling on the real Piper worker: a new utterance's first chunk goes ahead of
streams far ahead of their listeners, the first chunk ends at the first natural break after
a few words, a cancelled utterance's remaining text is never synthesized (and the worker
counts it cancelled), and admission refuses a stream its measured capacity cannot carry."""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from functools import partial

import grpc
import pytest

from fleet.aio import poll_until
from tests.processes import WorkerProcess, running_worker
from tests.tts_worker.grpc_client import END, Received, Stream, config, control, text
from tts_rpc.v1 import tts_pb2, tts_pb2_grpc

PARAGRAPH = (
    "Thanks for calling the support line. I have pulled up your account and I can see the "
    "payment from last week. It went through on Monday, but the confirmation email bounced, "
    "which is why you never received it. I have updated your address and sent the receipt "
    "again, so it should be in your inbox within a few minutes. Is there anything else I can "
    "help you with today?"
)


@pytest.fixture(scope="module")
async def channel(piper_worker: WorkerProcess) -> AsyncIterator[grpc.aio.Channel]:
    async with grpc.aio.insecure_channel(piper_worker.address) as ch:
        yield ch


async def until(check: Callable[[], Awaitable[bool]], seconds: float = 10.0) -> bool:
    """Poll an asynchronous condition, up to a bound."""
    deadline = time.monotonic() + seconds
    while not await check():
        if time.monotonic() > deadline:
            return False
        await asyncio.sleep(0.02)
    return True


async def first_span(channel: grpc.aio.Channel, words: str) -> str:
    stream = Stream(channel)
    await stream.send(config(utterance_id="first-chunk"), text(words), END)
    received = await stream.read_all()
    span = received.frames[0].text_span
    return words[span.start : span.end]


async def test_the_first_chunk_ends_at_the_first_natural_break_after_a_few_words(
    channel: grpc.aio.Channel,
) -> None:
    assert (
        await first_span(channel, "Your order has shipped and should arrive by Thursday.")
        == "Your order has shipped"
    )
    assert (
        await first_span(channel, "If the parcel is late, call us back, and we will send one.")
        == "If the parcel is late,"
    )
    # A sentence that ends a few words after the break stays whole.
    assert await first_span(channel, "Sure, I can help with that.") == "Sure, I can help with that."


def chunks_with_slack_above_one_second(worker: WorkerProcess) -> float:
    slack = "voiceorch_worker_chunk_slack_seconds"
    return worker.metric(f"{slack}_count") - worker.metric(f"{slack}_bucket", le="1.0")


async def test_a_new_utterance_goes_ahead_of_streams_far_ahead_of_their_listeners(
    channel: grpc.aio.Channel, piper_worker: WorkerProcess
) -> None:
    """Four streams synthesize a long text as fast as the worker allows (their listeners
    have seconds of audio left); a fifth arrives: its first chunk waits at most for the call
    already running (and one that may start before its text is read), not for the others'.
    The worker's slack histogram records the far streams' chunks made with more than a
    second of audio still to play."""
    slack_before = chunks_with_slack_above_one_second(piper_worker)
    far = [Stream(channel) for _ in range(4)]
    for n, stream in enumerate(far):
        await stream.send(config(utterance_id=f"far-{n}"), text(PARAGRAPH * 3), END)
    for stream in far:
        await stream.read_one()
    readers = [asyncio.create_task(stream.read_all()) for stream in far]

    def lead(got: Received) -> float:
        return got.audio_seconds - (time.time_ns() - got.arrivals_ns[0]) / 1e9

    # Each far stream's listener has more than a second of audio left to play.
    assert await poll_until(
        lambda: all(lead(stream.received) > 1.0 for stream in far), timeout_seconds=15
    )
    new = Stream(channel)
    asked_ns = time.time_ns()
    await new.send(config(utterance_id="new"), text("Hello there, this is the new one."), END)
    message = await new.read_one()
    assert message is not None and message.HasField("frame")
    ready_ns = message.frame.produced_unix_ns
    for stream in far:
        await stream.send(control(tts_pb2.CONTROL_COMMAND_CANCEL))
    received: list[Received] = await asyncio.gather(*readers)
    await new.read_all()
    chunks_between = {
        (n, frame.produced_unix_ns)
        for n, got in enumerate(received)
        for frame in got.frames
        if asked_ns < frame.produced_unix_ns < ready_ns
    }
    assert all(got.stats is not None and got.stats.cancelled for got in received), (
        "the far streams must still have had text left when the new one came"
    )
    assert len(chunks_between) <= 2, sorted(chunks_between)
    assert chunks_with_slack_above_one_second(piper_worker) > slack_before


async def test_a_cancelled_utterance_never_synthesizes_the_rest_of_its_text(
    channel: grpc.aio.Channel, piper_worker: WorkerProcess
) -> None:
    cancelled_before = piper_worker.metric("voiceorch_worker_streams_total", outcome="cancelled")
    words = PARAGRAPH * 2
    stream = Stream(channel)
    await stream.send(config(utterance_id="lead", max_lead_seconds=1.0), text(words), END)
    await stream.read_one()  # the listener starts playing now (as the worker sees it)
    await stream.send(control(tts_pb2.CONTROL_COMMAND_CANCEL))
    received = await stream.read_all()
    assert received.stats is not None and received.stats.cancelled
    # Without the bound the worker synthesizes the whole text in about a second; with it,
    # only what the listener could reach before the cancel (plus 1 s) was synthesized.
    assert 0 < received.stats.text_synthesized_end < len(words) // 2
    assert received.stats.synthesized_seconds < received.audio_seconds + 10.0
    cancelled_after = piper_worker.metric("voiceorch_worker_streams_total", outcome="cancelled")
    assert cancelled_after == cancelled_before + 1


async def test_a_bad_lead_bound_is_invalid_argument(channel: grpc.aio.Channel) -> None:
    for bad in (-1.0, math.nan, math.inf):
        stream = Stream(channel)
        await stream.send(config(utterance_id="bad-lead", max_lead_seconds=bad))
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await stream.read_all()
        assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert "max_lead_seconds" in (caught.value.details() or "")


async def test_admission_refuses_a_stream_the_measured_capacity_cannot_carry() -> None:
    """With a fifth of its capacity usable, the worker takes floor(capacity x 0.2) streams
    that each need real time, refuses the next with RESOURCE_EXHAUSTED (so the orchestrator
    places it elsewhere), and takes one again once a stream has ended."""
    with running_worker(TTS_WORKER_MAX_UTILIZATION="0.2") as worker:
        async with grpc.aio.insecure_channel(worker.address) as ch:
            warm = Stream(ch)
            await warm.send(config(utterance_id="warm"), text(PARAGRAPH), END)
            await warm.read_all()  # several engine calls: the capacity is measured
            capacity = worker.metric("voiceorch_worker_capacity_ratio")
            assert capacity > 0
            fits = math.floor(capacity * 0.2)
            stub = tts_pb2_grpc.TextToSpeechStub(ch)

            async def active_is(count: int) -> bool:
                caps = await stub.GetCapabilities(tts_pb2.GetCapabilitiesRequest())
                return int(caps.active_streams) == count

            held: list[Stream] = []
            for n in range(fits):
                stream = Stream(ch)
                await stream.send(config(utterance_id=f"held-{n}"))  # text to follow
                held.append(stream)
                assert await until(partial(active_is, n + 1))
            refused = Stream(ch)
            await refused.send(config(utterance_id="one-too-many"))
            with pytest.raises(grpc.aio.AioRpcError) as caught:
                await refused.read_all()
            assert caught.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
            assert "capacity" in (caught.value.details() or "")
            for stream in held:
                await stream.send(END)
                await stream.read_all()
            again = Stream(ch)
            await again.send(config(utterance_id="room-again"), text("Hello."), END)
            got = await again.read_all()
            assert got.stats is not None and got.audio_seconds > 0
