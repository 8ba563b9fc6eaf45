"""The interface every synthesis engine implements. Adding an engine is one new module
plus one line in `tts_worker.engines.ENGINES`."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Protocol

import numpy as np
import numpy.typing as npt

FloatAudio = npt.NDArray[np.float32]

MIN_SPEED = 0.25
MAX_SPEED = 4.0


@dataclass(frozen=True)
class WordTime:
    """Where one word of the synthesized text is heard in one chunk of audio."""

    start: int
    """Code point offsets of the word in the text given to `synthesize()`."""
    end: int
    start_sample: int
    """Sample offsets in the chunk's audio, at the voice's native rate."""
    end_sample: int


@dataclass(frozen=True)
class TimedAudio:
    """A chunk of audio with the words it speaks, from the engine's own alignment."""

    audio: FloatAudio
    words: tuple[WordTime, ...]


# What engines yield: bare audio (the worker then times whole clauses) or timed audio.
EngineAudio = FloatAudio | TimedAudio


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
    supports_speed: bool
    """Whether synthesize() honours `speed`; the worker refuses other speeds otherwise."""

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

    def synthesize(self, voice: str, text: str, speed: float = 1.0) -> Iterator[EngineAudio]:
        """Yield mono float32 audio at the voice's native rate, chunk by chunk as produced,
        spoken at `speed` times the voice's pace (MIN_SPEED to MAX_SPEED, checked by the
        caller). A chunk may come as TimedAudio when the engine knows its word times.

        Each `next()` blocks while the engine computes; the caller runs it in a thread.
        """
        ...


def loaded(voice: str, started: float) -> float:
    """A voice finished loading (started at perf_counter `started`): log it, return seconds."""
    seconds = time.perf_counter() - started
    logging.getLogger("tts_worker.engines").info(
        "voice loaded", extra={"voice": voice, "seconds": round(seconds, 3)}
    )
    return seconds
