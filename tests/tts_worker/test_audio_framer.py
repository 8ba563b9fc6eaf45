"""The framer resamples with soxr and emits exact 20 ms s16le frames, carrying leftovers."""

from __future__ import annotations

import numpy as np
import pytest

from tts_worker.audio_framer import AudioFramer


def tone(seconds: float, rate: int, hz: float = 440.0) -> np.ndarray:
    t = np.arange(int(seconds * rate)) / rate
    return (0.5 * np.sin(2 * np.pi * hz * t)).astype(np.float32)


@pytest.mark.parametrize("out_rate", [8000, 16000, 22050, 24000, 48000])
def test_frames_are_exact_and_length_is_preserved(out_rate: int) -> None:
    framer = AudioFramer(22050, out_rate, frame_ms=20)
    frames = []
    for _ in range(7):  # uneven chunks, as clauses come out of the engine
        frames += framer.push(tone(0.3137, 22050))
    frames += framer.flush()
    size = out_rate * 20 // 1000 * 2
    assert all(len(f) == size for f in frames[:-1])
    assert 0 < len(frames[-1]) <= size
    total = sum(len(f) for f in frames) // 2
    assert total == pytest.approx(7 * 0.3137 * out_rate, abs=out_rate * 0.005)


def test_resampled_tone_keeps_its_pitch() -> None:
    framer = AudioFramer(22050, 48000)
    pcm = b"".join(framer.push(tone(1.0, 22050, hz=1000.0)) + framer.flush())
    samples = np.frombuffer(pcm, dtype="<i2").astype(np.float32)
    spectrum = np.abs(np.fft.rfft(samples))
    peak_hz = np.argmax(spectrum) * 48000 / len(samples)
    assert peak_hz == pytest.approx(1000.0, abs=5.0)
