"""Streaming encoders: each format decodes, with another library, to the audio that went in,
bytes leave while PCM is still arriving, and a close at any moment is clean."""

from __future__ import annotations

import threading

import grpc
import numpy as np
import pytest

from orchestrator.synthesis.encoders import (
    EncoderClosedError,
    ResponseFormat,
    create_encoder,
    encoded_rate,
)
from tests.audio_checks import Pcm, transcribe, word_error_rate
from tests.processes import WorkerProcess
from tests.synthesis.decoders import CONTENT_TYPES, decode
from tests.tts_worker.grpc_client import END, Stream, config, text

SENTENCE = "The quick brown fox jumps over the lazy dog near the river bank."
RATE = 24000
FRAME_BYTES = RATE * 20 // 1000 * 2
# Codecs pad the start and the end to whole frames (LAME ~50 ms, AAC priming 1024 samples).
PADDING_SECONDS = 0.1


@pytest.fixture(scope="module")
async def speech(piper_worker: WorkerProcess) -> bytes:
    """Real Piper speech at 24 kHz, as the worker streams it."""
    async with grpc.aio.insecure_channel(piper_worker.address) as channel:
        stream = Stream(channel)
        await stream.send(config(utterance_id="encoders", sample_rate=RATE), text(SENTENCE), END)
        received = await stream.read_all()
    return b"".join(frame.audio for frame in received.frames)


def frames(pcm: bytes, size: int = FRAME_BYTES) -> list[bytes]:
    return [pcm[i : i + size] for i in range(0, len(pcm), size)]


def encode_all(fmt: ResponseFormat, pcm: bytes, rate: int = RATE) -> tuple[bytes, int]:
    encoder = create_encoder(fmt, rate)
    body = b"".join(encoder.encode(frame) for frame in frames(pcm)) + encoder.close()
    return body, encoder.sample_rate


def tone(seconds: float, hz: float = 440.0, rate: int = RATE) -> bytes:
    t = np.arange(int(seconds * rate)) / rate
    return (0.3 * 32767 * np.sin(2 * np.pi * hz * t)).astype("<i2").tobytes()


def dominant_hz(pcm: Pcm) -> float:
    samples = pcm.samples.astype(np.float64)
    spectrum = np.abs(np.fft.rfft(samples * np.hanning(len(samples))))
    return float(np.fft.rfftfreq(len(samples), 1 / pcm.sample_rate)[int(np.argmax(spectrum))])


def rms(pcm: Pcm) -> float:
    return float(np.sqrt(np.mean(pcm.samples.astype(np.float64) ** 2)))


@pytest.mark.parametrize("fmt", list(ResponseFormat))
def test_tone_keeps_its_pitch_level_and_length(fmt: ResponseFormat) -> None:
    """What a decoder other than FFmpeg reads back is the tone that went in: same pitch,
    same loudness within 25 %, same length within the codec's padding."""
    pcm = tone(2.0)
    body, rate = encode_all(fmt, pcm)
    decoded = decode(fmt, body, pcm_rate=rate)
    if fmt == "aac":
        assert decoded.sample_rate in (rate, 2 * rate)  # FAAD2's implicit-SBR reading
    else:
        assert decoded.sample_rate == rate
    assert decoded.seconds == pytest.approx(2.0, abs=PADDING_SECONDS)
    assert dominant_hz(decoded) == pytest.approx(440.0, abs=5.0)
    original = Pcm(np.frombuffer(pcm, dtype="<i2"), RATE)
    assert rms(decoded) == pytest.approx(rms(original), rel=0.25)


@pytest.mark.slow
@pytest.mark.parametrize("fmt", list(ResponseFormat))
def test_piper_speech_is_heard_in_every_format(speech: bytes, fmt: ResponseFormat) -> None:
    """Real speech, encoded frame by frame as the worker sends it, decoded by another library,
    is what Whisper hears: the right words, the right rate and length, the right type."""
    encoder = create_encoder(fmt, RATE)
    assert encoder.content_type == CONTENT_TYPES[fmt]
    body = b"".join(encoder.encode(frame) for frame in frames(speech)) + encoder.close()
    decoded = decode(fmt, body, pcm_rate=encoder.sample_rate)
    expected_rate = 8000 if fmt == "mulaw" else RATE
    assert encoder.sample_rate == expected_rate
    if fmt != "aac":
        assert decoded.sample_rate == expected_rate
    assert decoded.seconds == pytest.approx(len(speech) / 2 / RATE, abs=PADDING_SECONDS)
    assert word_error_rate(SENTENCE, transcribe(decoded)) <= 0.2


@pytest.mark.parametrize("fmt", [ResponseFormat.MP3, ResponseFormat.OPUS])
def test_audio_leaves_before_the_last_frame_is_fed(speech: bytes, fmt: ResponseFormat) -> None:
    """Incremental, not buffered: by the time the last PCM frame arrives, the bytes already
    released decode to all but a fraction of a second of the audio before it."""
    encoder = create_encoder(fmt, RATE)
    pieces = frames(speech)
    released = b"".join(encoder.encode(frame) for frame in pieces[:-1])
    fed_seconds = sum(len(p) for p in pieces[:-1]) / 2 / RATE
    prefix = decode(fmt, released)
    # LAME holds about two MPEG frames; Ogg holds at most one 100 ms page plus Opus lookahead.
    assert prefix.seconds >= fed_seconds - 0.3
    encoder.close()


@pytest.mark.parametrize("fmt", list(ResponseFormat))
def test_close_midway_ends_a_valid_stream(fmt: ResponseFormat) -> None:
    """A client that hangs up mid-utterance closes the encoder early: what it has is a
    well-formed file of the audio so far, a second close adds nothing, encode is refused."""
    encoder = create_encoder(fmt, RATE)
    body = b"".join(encoder.encode(frame) for frame in frames(tone(1.0)))
    body += encoder.close()
    assert encoder.close() == b""
    with pytest.raises(EncoderClosedError):
        encoder.encode(tone(0.02))
    decoded = decode(fmt, body, pcm_rate=encoder.sample_rate)
    assert decoded.seconds == pytest.approx(1.0, abs=PADDING_SECONDS)


@pytest.mark.parametrize("fmt", [ResponseFormat.MP3, ResponseFormat.OPUS, ResponseFormat.FLAC])
def test_close_while_another_thread_encodes(fmt: ResponseFormat) -> None:
    """The disconnect path closes from one thread while encode runs in another: the encoding
    thread sees EncoderClosedError, never a crash inside the codec."""
    encoder = create_encoder(fmt, RATE)
    running = threading.Event()
    errors: list[BaseException] = []

    def keep_encoding() -> None:
        frame = tone(0.02)
        try:
            while True:
                encoder.encode(frame)
                running.set()
        except BaseException as exc:
            errors.append(exc)

    worker = threading.Thread(target=keep_encoding)
    worker.start()
    assert running.wait(10)
    encoder.close()
    worker.join(10)
    assert not worker.is_alive()
    assert len(errors) == 1 and isinstance(errors[0], EncoderClosedError)


def test_rates_each_codec_cannot_take_go_to_the_nearest_it_can() -> None:
    """Opus has no 22.05/44.1 kHz mode; mu-law is 8 kHz by definition."""
    assert encoded_rate(ResponseFormat.OPUS, 22050) == 24000
    assert encoded_rate(ResponseFormat.OPUS, 44100) == 48000
    assert encoded_rate(ResponseFormat.OPUS, 16000) == 16000
    assert encoded_rate(ResponseFormat.MP3, 22050) == 22050
    assert encoded_rate(ResponseFormat.MULAW, 24000) == 8000
    assert encoded_rate(ResponseFormat.FLAC, 22050) == 22050


def test_half_a_sample_is_refused() -> None:
    encoder = create_encoder(ResponseFormat.MP3, RATE)
    with pytest.raises(ValueError, match="even"):
        encoder.encode(b"\x00\x01\x02")
    encoder.close()
