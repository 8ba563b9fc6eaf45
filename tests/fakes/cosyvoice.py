"""FAKE CosyVoice 2: the one stand-in for the CosyVoice weights (gigabytes on model hubs,
unreachable here) in the tests.

`FakeCosyVoice2` has the surface of `cosyvoice.cli.cosyvoice.CosyVoice2` that the engine
uses (`sample_rate`, `list_available_spks`, `add_zero_shot_spk`, `inference_sft`,
`inference_zero_shot`) and behaves like it where the engine depends on it: built-in speakers
in `spk2info`, zero-shot speakers added under an id, generators of `{"tts_speech": (1, n)}`
chunks at 24 kHz produced one at a time (a delay per chunk stands for the GPU), a KeyError for
an unknown speaker. The audio is a tone per voice, not speech. It records every call and chunk
so tests can see what the engine asked for and when.

The worker loads it through `TTS_WORKER_COSYVOICE_MODEL_FACTORY=tests.fakes.cosyvoice:load`.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

SAMPLE_RATE = 24000
PROMPT_RATE = 16000
SPEAKERS = ("english_female", "english_male")
CHUNK_SECONDS = 0.24
CHARS_PER_CHUNK = 12


@dataclass
class Call:
    method: str
    text: str
    speaker: str
    stream: bool
    chunks: int = 0
    started: float = field(default_factory=time.perf_counter)
    finished: float | None = None  # when the last chunk was produced
    closed_early: bool = False


class FakeCosyVoice2:
    """FAKE: stands in for CosyVoice2(model_dir); see the module docstring."""

    sample_rate = SAMPLE_RATE

    def __init__(self, model_dir: str | Path, chunk_delay: float = 0.05) -> None:
        self.model_dir = Path(model_dir)
        self.chunk_delay = chunk_delay
        self.spk2info: dict[str, dict[str, Any]] = {name: {"kind": "sft"} for name in SPEAKERS}
        self.calls: list[Call] = []
        self.prompts: dict[str, tuple[str, Any]] = {}
        self._lock = threading.Lock()

    def list_available_spks(self) -> list[str]:
        return list(self.spk2info)

    def add_zero_shot_spk(
        self, prompt_text: str, prompt_speech_16k: Any, zero_shot_spk_id: str
    ) -> bool:
        assert zero_shot_spk_id != "", "do not use empty zero_shot_spk_id"
        shape = tuple(prompt_speech_16k.shape)
        assert len(shape) == 2 and shape[0] == 1, f"prompt must be (1, samples), got {shape}"
        self.prompts[zero_shot_spk_id] = (prompt_text, prompt_speech_16k)
        self.spk2info[zero_shot_spk_id] = {"kind": "zero_shot", "samples": shape[1]}
        return True

    def inference_sft(
        self,
        tts_text: str,
        spk_id: str,
        stream: bool = False,
        speed: float = 1.0,
        text_frontend: bool = True,
    ) -> Iterator[dict[str, Any]]:
        return self._speak("inference_sft", tts_text, spk_id, stream)

    def inference_zero_shot(
        self,
        tts_text: str,
        prompt_text: str,
        prompt_speech_16k: Any,
        zero_shot_spk_id: str = "",
        stream: bool = False,
        speed: float = 1.0,
        text_frontend: bool = True,
    ) -> Iterator[dict[str, Any]]:
        return self._speak("inference_zero_shot", tts_text, zero_shot_spk_id, stream)

    @staticmethod
    def chunks_for(text: str) -> int:
        return max(2, len(text) // CHARS_PER_CHUNK)

    def tone_hz(self, speaker: str) -> float:
        return 200.0 + 40.0 * sorted(self.spk2info).index(speaker)

    def _speak(
        self, method: str, text: str, speaker: str, stream: bool
    ) -> Iterator[dict[str, Any]]:
        call = Call(method, text, speaker, stream)
        with self._lock:
            self.calls.append(call)
        info = self.spk2info[speaker]  # KeyError for an unknown speaker, as CosyVoice raises
        if method == "inference_zero_shot":
            assert info["kind"] == "zero_shot", f"{speaker} is no zero-shot speaker"
        total = self.chunks_for(text)
        n = int(CHUNK_SECONDS * SAMPLE_RATE)
        hz = self.tone_hz(speaker)
        pieces = []
        try:
            for index in range(total):
                time.sleep(self.chunk_delay)
                t = (np.arange(n) + index * n) / SAMPLE_RATE
                piece = (0.3 * np.sin(2 * np.pi * hz * t)).astype(np.float32).reshape(1, -1)
                call.chunks += 1
                if stream:
                    if index == total - 1:
                        call.finished = time.perf_counter()
                    yield {"tts_speech": piece}
                else:
                    pieces.append(piece)
            if not stream:
                call.finished = time.perf_counter()
                yield {"tts_speech": np.concatenate(pieces, axis=1)}
        except GeneratorExit:
            call.closed_early = call.chunks < total or call.finished is None
            raise


def load(model_dir: Path) -> FakeCosyVoice2:
    """The factory named by TTS_WORKER_COSYVOICE_MODEL_FACTORY in the tests."""
    return FakeCosyVoice2(model_dir, float(os.environ.get("FAKE_COSYVOICE_CHUNK_DELAY", "0.05")))
