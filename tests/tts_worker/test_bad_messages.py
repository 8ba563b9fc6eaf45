"""Malformed or out-of-order messages end their own stream with a precise gRPC status."""

from __future__ import annotations

from collections.abc import AsyncIterator

import grpc
import pytest

from tests.processes import WorkerProcess
from tests.tts_worker.grpc_client import END, Stream, config, control, text
from tts_rpc.v1 import tts_pb2


@pytest.fixture(scope="module")
async def channel(piper_worker: WorkerProcess) -> AsyncIterator[grpc.aio.Channel]:
    async with grpc.aio.insecure_channel(piper_worker.address) as ch:
        yield ch


async def status_of(
    channel: grpc.aio.Channel, *messages: tts_pb2.SynthesizeRequest
) -> grpc.aio.AioRpcError:
    stream = Stream(channel)
    await stream.send(*messages)
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await stream.read_all()
    return caught.value


@pytest.mark.parametrize(
    ("messages", "code", "words"),
    [
        ([text("hello")], grpc.StatusCode.INVALID_ARGUMENT, "first message must be a config"),
        ([END], grpc.StatusCode.INVALID_ARGUMENT, "first message must be a config"),
        ([config(voice="nobody")], grpc.StatusCode.NOT_FOUND, "nobody"),
        ([config(sample_rate=12345)], grpc.StatusCode.INVALID_ARGUMENT, "sample_rate"),
        ([config(encoding=7)], grpc.StatusCode.INVALID_ARGUMENT, "encoding"),
        ([config(), config()], grpc.StatusCode.INVALID_ARGUMENT, "config"),
        ([config(), control(0)], grpc.StatusCode.INVALID_ARGUMENT, "control"),
        ([config(), control(42)], grpc.StatusCode.INVALID_ARGUMENT, "control"),
        ([config(), text("a" * 5000)], grpc.StatusCode.INVALID_ARGUMENT, "limit"),
        (
            [config(), text("Still speaking this sentence."), END, text("late")],
            grpc.StatusCode.INVALID_ARGUMENT,
            "after end_of_input",
        ),
        ([config(), tts_pb2.SynthesizeRequest()], grpc.StatusCode.INVALID_ARGUMENT, "empty"),
    ],
)
async def test_bad_stream_gets_a_precise_status(
    channel: grpc.aio.Channel,
    messages: list[tts_pb2.SynthesizeRequest],
    code: grpc.StatusCode,
    words: str,
) -> None:
    error = await status_of(channel, *messages)
    assert error.code() == code
    assert words in (error.details() or "")


async def test_bad_stream_does_not_disturb_a_good_one(channel: grpc.aio.Channel) -> None:
    """A stream killed for bad input leaves a concurrent utterance intact."""
    good = Stream(channel)
    await good.send(
        config(utterance_id="good"), text("One sentence that must survive intact."), END
    )
    await status_of(channel, config(), text("x" * 5000))
    received = await good.read_all()
    assert received.stats is not None and not received.stats.cancelled
    assert received.audio_seconds > 1.0


async def test_empty_stream_ends_cleanly(channel: grpc.aio.Channel) -> None:
    """Config then end of input, no text: no frames, stats, OK."""
    stream = Stream(channel)
    await stream.send(config(), END)
    received = await stream.read_all()
    assert received.frames == [] and received.stats is not None
    assert await stream.call.code() == grpc.StatusCode.OK


async def test_control_characters_are_spoken_around_not_choked_on(
    channel: grpc.aio.Channel,
) -> None:
    """A NUL in the text (found by fuzzing the HTTP API) once made espeak raise; control
    characters now become spaces and the rest is spoken."""
    stream = Stream(channel)
    await stream.send(config(), text("Hello\x00 there,\x07 friend."), END)
    received = await stream.read_all()
    assert received.stats is not None and received.audio_seconds > 0.5
