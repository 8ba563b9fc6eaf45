"""The listener's voices: espeak-ng from Debian, two voices unlike the agent's Piper voice,
and the clips the barge-in tests and benchmark speak over the agent (made here, not taken
from anywhere)."""

from __future__ import annotations

import io
import subprocess
import wave
from dataclasses import dataclass
from functools import cache

import numpy as np
import numpy.typing as npt
import soxr

VOICES = ("en-us+m3", "en-gb+f3")
"""An American male and a British female voice."""

ACKNOWLEDGEMENTS = {
    "en-us+m3": ("yeah", "okay", "right", "uh huh", "got it"),
    "en-gb+f3": ("yeah", "okay", "sure", "all right", "I see"),
}
"""What a listener says to show they follow (5 per voice)."""
INTERRUPTIONS = {
    "en-us+m3": (
        "wait",
        "stop",
        "hold on a second",
        "Sorry to interrupt, but I only need the address.",
        "Could you tell me when the central branch opens?",
    ),
    "en-gb+f3": (
        "wait",
        "no, that's wrong",
        "hold on",
        "Actually, I have a question about the harbour branch.",
        "What time does it close on Sundays?",
    ),
}
"""What a listener says to take the turn (5 per voice)."""


@dataclass(frozen=True)
class Clip:
    text: str
    voice: str
    pcm: npt.NDArray[np.int16]
    rate: int

    @property
    def seconds(self) -> float:
        return len(self.pcm) / self.rate

    def audible(self, level: int = 500) -> tuple[float, float]:
        """Seconds from the clip's start to its first and last audible sample."""
        loud = np.flatnonzero(np.abs(self.pcm.astype(np.int32)) > level)
        return float(loud[0]) / self.rate, float(loud[-1] + 1) / self.rate


@cache
def speak(text: str, voice: str, rate: int = 48000) -> Clip:
    """`text` said by espeak-ng's `voice`, as s16le mono at `rate`."""
    wav = subprocess.run(
        ["espeak-ng", "-v", voice, "--stdout", text], capture_output=True, check=True
    ).stdout
    with wave.open(io.BytesIO(wav)) as reader:
        native = reader.getframerate()
        pcm = np.frombuffer(reader.readframes(reader.getnframes()), np.int16)
    audio = soxr.resample(pcm.astype(np.float32) / 32768.0, native, rate)
    return Clip(text, voice, (np.clip(audio, -1.0, 1.0) * 32767).astype(np.int16), rate)
