"""What the orchestrator and the LiveKit plugin both need on a worker's Synthesize stream:
writes that leave errors to the read side, the half-close that lets the worker end a
finished stream, and which failures another worker may retry."""

from __future__ import annotations

import asyncio
import contextlib

import grpc

from tts_rpc.v1 import tts_pb2

SynthesizeCall = grpc.aio.StreamStreamCall[tts_pb2.SynthesizeRequest, tts_pb2.SynthesizeResponse]

_RETRYABLE = frozenset(
    {
        grpc.StatusCode.UNAVAILABLE,
        grpc.StatusCode.RESOURCE_EXHAUSTED,
        grpc.StatusCode.DEADLINE_EXCEEDED,
        grpc.StatusCode.ABORTED,
    }
)
# What grpc-core reports when a write races the worker's own end of the stream: the worker's
# real status is lost, so this says nothing against trying another worker.
_LOCAL_CORE_ERROR = "Internal error from Core"


def retryable(code: grpc.StatusCode, details: str) -> bool:
    """Whether a failure before the first audio may move to another worker."""
    return code in _RETRYABLE or _local_core_error(code, details)


def at_capacity(code: grpc.StatusCode, details: str) -> bool:
    """Whether the worker refused the stream for its load (the same worker may take it a
    moment later). grpc-core's local error counts: a refusal at admission is what ends a
    stream while its client still writes the first text."""
    return code == grpc.StatusCode.RESOURCE_EXHAUSTED or _local_core_error(code, details)


def _local_core_error(code: grpc.StatusCode, details: str) -> bool:
    return code == grpc.StatusCode.INTERNAL and details == _LOCAL_CORE_ERROR


async def write(call: SynthesizeCall, message: tts_pb2.SynthesizeRequest) -> None:
    """Write one message. A failed write is not an error here: the worker already ended the
    stream, and the next read reports its status."""
    with contextlib.suppress(grpc.RpcError, asyncio.InvalidStateError, grpc.aio.UsageError):
        await call.write(message)


async def done_writing(call: SynthesizeCall) -> None:
    """Half-close once the stats are read. A worker holds a finished stream open until then
    (bounded), because grpc drops every response the client has not read yet when one of its
    writes meets an ended call: a PAUSE written while the last frames are in flight would
    lose them. Failing here is harmless: the stats are already in."""
    with contextlib.suppress(grpc.RpcError, asyncio.InvalidStateError, grpc.aio.UsageError):
        await call.done_writing()
