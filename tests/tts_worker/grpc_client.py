"""A small test client for one Synthesize stream that records when each frame arrived."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import grpc

from tts_rpc.v1 import tts_pb2, tts_pb2_grpc


def config(**fields: object) -> tts_pb2.SynthesizeRequest:
    return tts_pb2.SynthesizeRequest(config=tts_pb2.SynthesisConfig(**fields))  # type: ignore[arg-type]


def text(chunk: str) -> tts_pb2.SynthesizeRequest:
    return tts_pb2.SynthesizeRequest(text=tts_pb2.TextChunk(text=chunk))


def control(command: int) -> tts_pb2.SynthesizeRequest:
    return tts_pb2.SynthesizeRequest(control=tts_pb2.Control(command=command))  # type: ignore[arg-type]


END = tts_pb2.SynthesizeRequest(end_of_input=tts_pb2.EndOfInput())


@dataclass
class Received:
    frames: list[tts_pb2.AudioFrame] = field(default_factory=list)
    arrivals_ns: list[int] = field(default_factory=list)
    stats: tts_pb2.SynthesisStats | None = None

    @property
    def audio_seconds(self) -> float:
        return sum(f.duration_seconds for f in self.frames)


class Stream:
    """Wraps a grpc.aio stream-stream call with explicit writes and reads."""

    def __init__(self, channel: grpc.aio.Channel) -> None:
        self.call = tts_pb2_grpc.TextToSpeechStub(channel).Synthesize()
        self.received = Received()

    async def send(self, *messages: tts_pb2.SynthesizeRequest) -> None:
        for message in messages:
            await self.call.write(message)

    async def read_one(self) -> tts_pb2.SynthesizeResponse | None:
        message = await self.call.read()
        if message is grpc.aio.EOF:
            return None
        if message.HasField("frame"):
            self.received.frames.append(message.frame)
            self.received.arrivals_ns.append(time.time_ns())
        else:
            self.received.stats = message.stats
            # As every client: the worker holds a finished stream open until this.
            await self.call.done_writing()
        return message

    async def read_all(self) -> Received:
        while await self.read_one() is not None:
            pass
        return self.received
