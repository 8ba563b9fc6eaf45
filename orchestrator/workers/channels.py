"""One long-lived gRPC channel per worker address, shared by every request; TLS (and client
certificates) when the owner passes channel credentials."""

from __future__ import annotations

from typing import TYPE_CHECKING

import grpc

from tts_rpc.v1 import tts_pb2_grpc

if TYPE_CHECKING:
    from tts_rpc.v1.tts_pb2_grpc import TextToSpeechAsyncStub

_CHANNEL_OPTIONS = [
    ("grpc.keepalive_time_ms", 10_000),
    ("grpc.keepalive_timeout_ms", 5_000),
    ("grpc.keepalive_permit_without_calls", 1),
    ("grpc.http2.max_pings_without_data", 0),
    # Reconnect quickly after a worker restart instead of backing off for seconds.
    ("grpc.initial_reconnect_backoff_ms", 200),
    ("grpc.max_reconnect_backoff_ms", 2_000),
    ("grpc.max_receive_message_length", 4 * 1024 * 1024),
]


class WorkerChannels:
    """Lazily opened channels keyed by address; closed together at shutdown. With
    `credentials` (from `grpc.ssl_channel_credentials`) every channel is TLS; without, plain."""

    def __init__(self, credentials: grpc.ChannelCredentials | None = None) -> None:
        self._channels: dict[str, grpc.aio.Channel] = {}
        self._credentials = credentials

    def stub(self, address: str) -> TextToSpeechAsyncStub:
        channel = self._channels.get(address)
        if channel is None:
            if self._credentials is None:
                channel = grpc.aio.insecure_channel(address, options=_CHANNEL_OPTIONS)
            else:
                channel = grpc.aio.secure_channel(
                    address, self._credentials, options=_CHANNEL_OPTIONS
                )
            self._channels[address] = channel
        return tts_pb2_grpc.TextToSpeechStub(channel)

    async def forget(self, address: str) -> None:
        """Close the channel of a worker that left the registry."""
        channel = self._channels.pop(address, None)
        if channel is not None:
            await channel.close(grace=None)

    async def aclose(self) -> None:
        for channel in self._channels.values():
            await channel.close(grace=None)
        self._channels.clear()
