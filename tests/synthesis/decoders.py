"""Decode every response format with a library other than the FFmpeg that PyAV wrote it with:
libsndfile (mp3 through mpg123, Ogg Opus through libopus's decoder, G.711), miniaudio's
dr_flac, FAAD2's `faad` for ADTS AAC, and the standard library's wave reader."""

from __future__ import annotations

import io
import shutil
import subprocess
import tempfile
from pathlib import Path

import miniaudio
import numpy as np
import soundfile

from tests.audio_checks import Pcm, parse_pcm, parse_wav

CONTENT_TYPES = {
    "mp3": "audio/mpeg",
    "opus": "audio/ogg; codecs=opus",
    "aac": "audio/aac",
    "flac": "audio/flac",
    "wav": "audio/wav",
    "pcm": "audio/pcm",
    "mulaw": "audio/basic",
}
"""Each format's Content-Type, as written here independently of the encoders' table."""


def _mono_int16(audio: np.ndarray) -> np.ndarray:
    if audio.ndim == 2:
        audio = audio.mean(axis=1)
    return np.asarray(np.clip(audio, -1.0, 1.0) * 32767.0, dtype=np.int16)


def _libsndfile(body: bytes, **kwargs: object) -> Pcm:
    audio, rate = soundfile.read(io.BytesIO(body), dtype="float32", always_2d=True, **kwargs)
    return Pcm(_mono_int16(audio), int(rate))


def _faad(body: bytes) -> Pcm:
    binary = shutil.which("faad")
    if binary is None:
        raise RuntimeError("faad (FAAD2) is not installed: run scripts/system_deps.sh")
    with tempfile.TemporaryDirectory() as tmp:
        source, target = Path(tmp) / "in.aac", Path(tmp) / "out.wav"
        source.write_bytes(body)
        subprocess.run([binary, "-q", "-o", str(target), str(source)], check=True, timeout=60)
        # FAAD2 assumes implicit SBR below 32 kHz, so it may double the rate and upmix to
        # stereo: the content and the duration are what it must agree on.
        audio, rate = soundfile.read(target, dtype="float32", always_2d=True)
    return Pcm(_mono_int16(audio), int(rate))


def _flac(body: bytes) -> Pcm:
    # A streamed FLAC header cannot hold the total length; dr_flac reads to the end.
    decoded = miniaudio.flac_read_s16(body)
    samples = np.frombuffer(decoded.samples, dtype=np.int16).reshape(-1, decoded.nchannels)
    return Pcm(samples.mean(axis=1).astype(np.int16), decoded.sample_rate)


def decode(fmt: str, body: bytes, pcm_rate: int = 0) -> Pcm:
    """The audio in body, mono int16 at the rate the decoder reports."""
    if fmt in ("mp3", "opus"):
        return _libsndfile(body)
    if fmt == "aac":
        return _faad(body)
    if fmt == "flac":
        return _flac(body)
    if fmt == "mulaw":
        return _libsndfile(body, format="RAW", subtype="ULAW", samplerate=8000, channels=1)
    if fmt == "wav":
        return parse_wav(body)
    if fmt == "pcm":
        assert pcm_rate, "raw PCM needs its rate"
        return parse_pcm(body, pcm_rate)
    raise ValueError(f"no decoder for {fmt}")
