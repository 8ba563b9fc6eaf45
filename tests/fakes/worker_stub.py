"""A fake of one worker's Synthesize stream as grpc.aio's client sees it, for unit tests of
the retrying stream. It keeps grpc.aio's contract where our code depends on it: read()
returns grpc.aio.EOF after the last message, raises AioRpcError with the call's status, and
raises asyncio.CancelledError once the call is cancelled (and cancelling a read cancels the
call); write() on a finished call raises grpc.aio.UsageError. Each call plays a script of
responses, errors and hangs."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass, field

import grpc

from tts_rpc.v1 import tts_pb2

HANG = object()
"""A script step: read() waits until the call is cancelled (a hung worker)."""
UNTIL_CANCEL = object()
"""A script step: read() waits until the client writes an in-band CANCEL (a worker holding
synthesis at its lead bound), then goes on with the script."""


def frame(text_start: int = 0, text_end: int = 1, samples: int = 480) -> tts_pb2.SynthesizeResponse:
    return tts_pb2.SynthesizeResponse(
        frame=tts_pb2.AudioFrame(
            audio=b"\x01\x00" * samples,
            sample_rate=24000,
            text_span=tts_pb2.TextSpan(start=text_start, end=text_end),
        )
    )


def stats(audio_seconds: float = 0.02) -> tts_pb2.SynthesizeResponse:
    return tts_pb2.SynthesizeResponse(stats=tts_pb2.SynthesisStats(audio_seconds=audio_seconds))


def status(code: grpc.StatusCode, details: str = "") -> grpc.aio.AioRpcError:
    return grpc.aio.AioRpcError(code, grpc.aio.Metadata(), grpc.aio.Metadata(), details=details)


class FakeCall:
    def __init__(self, script: Sequence[object]) -> None:
        self._script = list(script)
        self.written: list[tts_pb2.SynthesizeRequest] = []
        self.cancelled = False
        self.half_closed = False
        self.overlapped = False
        self._writing = False
        self._finished = False
        self._cancel = asyncio.Event()
        self._cancel_written = asyncio.Event()

    def done(self) -> bool:
        return self._finished or self.cancelled

    def cancel(self) -> bool:
        if self.done():
            return False
        self.cancelled = True
        self._cancel.set()
        return True

    async def write(self, message: tts_pb2.SynthesizeRequest) -> None:
        if self.done():
            raise grpc.aio.UsageError("write after the call finished")
        if self._writing:
            # grpc takes one write at a time: a second one fails, and the call with it.
            self.overlapped = True
            raise grpc.aio.UsageError("a write while another one is in flight")
        self._writing = True
        self.written.append(message)
        if message.control.command == tts_pb2.CONTROL_COMMAND_CANCEL:
            self._cancel_written.set()
        try:
            await asyncio.sleep(0)  # a real write yields to the event loop
        finally:
            self._writing = False

    async def done_writing(self) -> None:
        self.half_closed = True

    async def read(self) -> object:
        if self.cancelled:
            raise asyncio.CancelledError
        if not self._script:
            self._finished = True
            return grpc.aio.EOF
        step = self._script.pop(0)
        if step is UNTIL_CANCEL:
            waiter = asyncio.ensure_future(self._cancel_written.wait())
            try:
                await asyncio.wait(
                    [waiter, asyncio.ensure_future(self._cancel.wait())],
                    return_when=asyncio.FIRST_COMPLETED,
                )
            except asyncio.CancelledError:
                self.cancel()  # as grpc.aio does: a cancelled read cancels the call
                raise
            if not waiter.done():
                raise asyncio.CancelledError
            return await self.read()
        if step is HANG:
            try:
                await self._cancel.wait()
            except asyncio.CancelledError:
                self.cancel()  # as grpc.aio does: a cancelled read cancels the call
                raise
            raise asyncio.CancelledError
        if isinstance(step, grpc.aio.AioRpcError):
            self._finished = True
            raise step
        return step


@dataclass
class FakeWorker:
    """One address: each Synthesize() opens the next scripted call."""

    scripts: list[Sequence[object]]
    calls: list[FakeCall] = field(default_factory=list)

    def Synthesize(self) -> FakeCall:  # the gRPC method is named so
        call = FakeCall(self.scripts[len(self.calls)])
        self.calls.append(call)
        return call


class FakeChannels:
    """Stands in for WorkerChannels: a fake stub per address."""

    def __init__(self, workers: dict[str, FakeWorker]) -> None:
        self.workers = workers

    def stub(self, address: str) -> FakeWorker:
        return self.workers[address]
