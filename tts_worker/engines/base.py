"""The interface every synthesis engine implements. Adding an engine is one new module
plus one line in `tts_worker.engines.ENGINES`."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Protocol

import numpy as np
import numpy.typing as npt

FloatAudio = npt.NDArray[np.float32]


class VoiceNotFoundError(LookupError):
    """The named voice is neither loaded nor available to load."""

    def __init__(self, voice: str) -> None:
        super().__init__(f"voice {voice!r} is not available on this worker")
        self.voice = voice


@dataclass(frozen=True)
class VoiceSpec:
    """A voice an engine can speak with."""

    name: str
    native_sample_rate: int
    language: str
    loaded: bool


class Engine(Protocol):
    """A synthesis engine. Blocking methods are called from the worker's inference pool."""

    name: str

    @property
    def default_voice(self) -> str: ...

    def voices(self) -> list[VoiceSpec]:
        """Every voice available, loaded or not."""
        ...

    def voice(self, name: str) -> VoiceSpec:
        """Describe one voice; raise VoiceNotFoundError when unknown."""
        ...

    def load_voice(self, name: str) -> VoiceSpec:
        """Load a voice into memory (blocking); a no-op when already loaded."""
        ...

    def unload_voice(self, name: str) -> None:
        """Free a loaded voice; streams still using it finish normally."""
        ...

    def synthesize(self, voice: str, text: str) -> Iterator[FloatAudio]:
        """Yield mono float32 audio at the voice's native rate, chunk by chunk as produced.

        Each `next()` blocks while the engine computes; the caller runs it in a thread.
        """
        ...
