"""Reference clips (real WAV files, a tone, not speech) for the CosyVoice tests."""

from __future__ import annotations

import wave
from pathlib import Path

import numpy as np


def write_clip(
    path: Path,
    seconds: float = 3.0,
    rate: int = 22050,
    width: int = 2,
    channels: int = 1,
    silent: bool = False,
) -> Path:
    """A tone (or silence) as a PCM WAV with the given format."""
    t = np.arange(int(seconds * rate)) / rate
    audio = np.zeros_like(t) if silent else 0.3 * np.sin(2 * np.pi * 180 * t)
    # 8-bit PCM is unsigned.
    pcm = (audio * 32767).astype("<i2") if width == 2 else ((audio + 1) * 127.5).astype(np.uint8)
    data = np.repeat(pcm, channels)
    with wave.open(str(path), "wb") as wav:
        wav.setnchannels(channels)
        wav.setsampwidth(width)
        wav.setframerate(rate)
        wav.writeframes(data.tobytes())
    return path


def dominant_hz(pcm_s16le: bytes, rate: int) -> float:
    samples = np.frombuffer(pcm_s16le, dtype="<i2").astype(np.float32)
    spectrum = np.abs(np.fft.rfft(samples))
    return float(np.fft.rfftfreq(len(samples), 1 / rate)[int(np.argmax(spectrum))])
