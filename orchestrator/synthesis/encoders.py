"""Streaming audio encoders: s16le mono PCM in, one response format's bytes out, as it goes.

Each encoder is a plain synchronous object, so a caller runs `encode()` and `close()` in a
thread and the event loop never waits on a codec. `encode(pcm)` returns whatever encoded
bytes the codec and container released for that PCM (often nothing for the first few
milliseconds: codecs work in frames); `close()` flushes the rest. Every encoder may be
closed at any point, also before any audio, or while another thread is inside `encode()`
(a client that hangs up mid-utterance): a lock orders the two, and a second close is a
no-op.

The compressed formats use FFmpeg's encoders through PyAV, writing into a sink that is not
seekable, so every container streams (no header to rewrite at the end): mp3 (LAME, a bare
MPEG audio stream), opus (libopus in Ogg), aac (FFmpeg's AAC-LC in ADTS), flac, and mulaw
(G.711 mu-law at 8 kHz, headerless, for telephony). wav and pcm need no codec.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from enum import StrEnum
from fractions import Fraction
from typing import Protocol

import av
import numpy as np
from av.audio.stream import AudioStream
from av.container import OutputContainer

from orchestrator.synthesis.wav import wav_header

BYTES_PER_SAMPLE = 2


class ResponseFormat(StrEnum):
    """A response format: what the body of a synthesis response holds."""

    MP3 = "mp3"
    OPUS = "opus"
    AAC = "aac"
    FLAC = "flac"
    WAV = "wav"
    PCM = "pcm"
    MULAW = "mulaw"


@dataclass(frozen=True)
class FormatSpec:
    """How one format is written."""

    content_type: str
    """The response's Content-Type."""
    rates: tuple[int, ...] | None
    """Sample rates the codec takes (None: any); other rates are resampled to the nearest."""
    container: str | None = None
    """FFmpeg muxer name; None for the formats written here without FFmpeg."""
    codec: str | None = None
    bit_rate: int | None = None
    codec_options: tuple[tuple[str, str], ...] = ()
    container_options: tuple[tuple[str, str], ...] = ()


_MPEG_RATES = (8000, 11025, 12000, 16000, 22050, 24000, 32000, 44100, 48000)

FORMATS: dict[ResponseFormat, FormatSpec] = {
    ResponseFormat.MP3: FormatSpec(
        "audio/mpeg",
        _MPEG_RATES,
        container="mp3",
        codec="libmp3lame",
        bit_rate=64_000,
        # A bare MPEG stream: no ID3 tag, and no Xing frame (it needs a seek at the end).
        container_options=(("id3v2_version", "0"), ("write_xing", "0")),
    ),
    ResponseFormat.OPUS: FormatSpec(
        "audio/ogg; codecs=opus",
        (8000, 12000, 16000, 24000, 48000),
        container="ogg",
        codec="libopus",
        bit_rate=32_000,
        codec_options=(("application", "voip"),),
        # Ogg's default page of one second would hold the first audio back that long;
        # 100 ms pages cost about 8 % overhead at 32 kbit/s.
        container_options=(("page_duration", "100000"),),
    ),
    ResponseFormat.AAC: FormatSpec(
        "audio/aac",
        _MPEG_RATES,
        container="adts",
        codec="aac",
        bit_rate=64_000,
    ),
    ResponseFormat.FLAC: FormatSpec("audio/flac", None, container="flac", codec="flac"),
    ResponseFormat.MULAW: FormatSpec("audio/basic", (8000,), container="mulaw", codec="pcm_mulaw"),
    ResponseFormat.WAV: FormatSpec("audio/wav", None),
    ResponseFormat.PCM: FormatSpec("audio/pcm", None),
}


def encoded_rate(fmt: ResponseFormat, sample_rate: int) -> int:
    """The rate `fmt` carries for PCM at `sample_rate`: the same where the codec takes it,
    else the nearest rate it does take (a caller asks the worker for that rate directly,
    so nothing is resampled twice)."""
    rates = FORMATS[fmt].rates
    if rates is None or sample_rate in rates:
        return sample_rate
    higher = [r for r in rates if r >= sample_rate]
    return min(higher) if higher else max(rates)


class EncoderClosedError(RuntimeError):
    """encode() after close(): the response is over."""


class StreamEncoder(Protocol):
    """PCM in, encoded bytes out; see the module docstring for the threading contract."""

    @property
    def content_type(self) -> str: ...

    @property
    def sample_rate(self) -> int:
        """The rate of the encoded audio."""
        ...

    @property
    def closed(self) -> bool:
        """close() has run: the codec is released."""
        ...

    def encode(self, pcm: bytes) -> bytes:
        """Add s16le mono PCM; return the encoded bytes now ready (maybe none)."""
        ...

    def close(self) -> bytes:
        """Flush and release the codec; return the last bytes. Idempotent."""
        ...


def create_encoder(fmt: ResponseFormat, input_rate: int) -> StreamEncoder:
    """An encoder for PCM at input_rate."""
    spec = FORMATS[ResponseFormat(fmt)]
    if spec.container is None:
        if fmt == ResponseFormat.WAV:
            return _WavEncoder(input_rate)
        return _PcmEncoder(input_rate)
    return _FfmpegEncoder(spec, input_rate, encoded_rate(fmt, input_rate))


def _check_pcm(pcm: bytes) -> None:
    if len(pcm) % BYTES_PER_SAMPLE:
        raise ValueError(f"s16le PCM needs an even byte count, got {len(pcm)}")


class _PcmEncoder:
    """Raw s16le: the bytes as they are."""

    def __init__(self, sample_rate: int) -> None:
        self.sample_rate = sample_rate
        self.content_type = FORMATS[ResponseFormat.PCM].content_type
        self._closed = False

    @property
    def closed(self) -> bool:
        return self._closed

    def encode(self, pcm: bytes) -> bytes:
        if self._closed:
            raise EncoderClosedError("encoder is closed")
        _check_pcm(pcm)
        return pcm

    def close(self) -> bytes:
        self._closed = True
        return b""


class _WavEncoder(_PcmEncoder):
    """A streaming WAV header (sizes unknown, so set to the maximum) before the PCM."""

    def __init__(self, sample_rate: int) -> None:
        super().__init__(sample_rate)
        self.content_type = FORMATS[ResponseFormat.WAV].content_type
        self._header_sent = False

    def encode(self, pcm: bytes) -> bytes:
        body = super().encode(pcm)
        return self._header() + body

    def close(self) -> bytes:
        # Even with no audio at all the body is a valid (empty) WAV file.
        tail = b"" if self._closed else self._header()
        super().close()
        return tail

    def _header(self) -> bytes:
        if self._header_sent:
            return b""
        self._header_sent = True
        return wav_header(self.sample_rate)


class _Sink:
    """A write-only file for FFmpeg's muxer. It has no seek(), so PyAV tells FFmpeg the
    output is not seekable and every muxer writes in streaming mode."""

    def __init__(self) -> None:
        self._buffer = bytearray()

    def write(self, data: bytes) -> int:
        self._buffer += data
        return len(data)

    def flush(self) -> None:
        """Nothing to do: the bytes are taken by take()."""

    def take(self) -> bytes:
        data = bytes(self._buffer)
        self._buffer.clear()
        return data


class _FfmpegEncoder:
    """One FFmpeg encoder and muxer, fed 16-bit mono PCM frames as they arrive."""

    def __init__(self, spec: FormatSpec, input_rate: int, output_rate: int) -> None:
        assert spec.container is not None and spec.codec is not None
        self.content_type = spec.content_type
        self.sample_rate = output_rate
        self._input_rate = input_rate
        self._time_base = Fraction(1, input_rate)
        self._samples = 0
        self._lock = threading.Lock()
        self._sink = _Sink()
        self._container: OutputContainer | None = av.open(
            self._sink, mode="w", format=spec.container, options=dict(spec.container_options)
        )
        try:
            stream = self._container.add_stream(
                spec.codec, rate=output_rate, options=dict(spec.codec_options)
            )
            assert isinstance(stream, AudioStream)
            stream.layout = "mono"
            if spec.bit_rate is not None:
                stream.bit_rate = spec.bit_rate
            self._stream: AudioStream = stream
        except BaseException:
            self._container.close()
            raise

    @property
    def closed(self) -> bool:
        return self._container is None

    def encode(self, pcm: bytes) -> bytes:
        _check_pcm(pcm)
        with self._lock:
            if self._container is None:
                raise EncoderClosedError("encoder is closed")
            if not pcm:
                return b""
            samples = np.frombuffer(pcm, dtype="<i2").reshape(1, -1)
            frame = av.AudioFrame.from_ndarray(samples, format="s16", layout="mono")
            frame.sample_rate = self._input_rate
            frame.time_base = self._time_base
            frame.pts = self._samples
            self._samples += samples.shape[1]
            for packet in self._stream.encode(frame):
                self._container.mux(packet)
            return self._sink.take()

    def close(self) -> bytes:
        with self._lock:
            container, self._container = self._container, None
            if container is None:
                return b""
            try:
                for packet in self._stream.encode(None):
                    container.mux(packet)
            finally:
                # Also when the flush failed: the codec and muxer are freed here.
                container.close()
            return self._sink.take()
