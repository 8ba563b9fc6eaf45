"""CosyVoice 2 (Apache-2.0) on a GPU, through CosyVoice's own Python API.

The model comes from a mounted folder (`TTS_WORKER_COSYVOICE_MODEL_DIR`), never from a model
hub. CosyVoice's source and torch are not part of the CPU install: they live only in the CUDA
image (docker/Dockerfile.tts-cosyvoice pins the CosyVoice commit), so both are imported
lazily, inside `load_cosyvoice2`, and nothing else in the worker needs them.

Voices: the model's built-in speakers (`list_available_spks()`, spoken with `inference_sft`)
and zero-shot voices, each a reference clip plus its transcript registered under a name
(`add_zero_shot_spk`, spoken with `inference_zero_shot(..., zero_shot_spk_id=name)`). Both
run with `stream=True`, so every chunk CosyVoice yields leaves the worker as soon as it
exists. Output is 24 kHz mono float32; the worker's framer resamples it to the requested rate.

Concurrency: run one worker per GPU. CosyVoice runs a stream's LLM in a thread of its own,
so the GPU is shared by as many generators as there are active utterances, which
`TTS_WORKER_MAX_CONCURRENT_STREAMS` bounds (more wait in the worker's queue).
"""

from __future__ import annotations

import importlib
import logging
import threading
import time
import wave
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from tts_worker.engines.base import FloatAudio, VoiceNotFoundError, VoiceSpec
from tts_worker.settings import WorkerSettings

log = logging.getLogger(__name__)

# What CosyVoice2(model_dir) opens (cosyvoice/cli/cosyvoice.py at the pinned commit).
REQUIRED_FILES = (
    "cosyvoice2.yaml",
    "llm.pt",
    "flow.pt",
    "hift.pt",
    "campplus.onnx",
    "speech_tokenizer_v2.onnx",
    "spk2info.pt",
)
PROMPT_SAMPLE_RATE = 16000  # CosyVoice takes its reference clips at 16 kHz
MIN_PROMPT_SECONDS = 1.0
MAX_PROMPT_SECONDS = 30.0  # CosyVoice's speech tokenizer refuses longer prompts
LANGUAGE = "mul"  # ISO 639 "multiple languages": CosyVoice 2 speaks zh, en, ja, ko, ...
PIPER_DEFAULT_VOICE = WorkerSettings.model_fields["default_voice"].default


class CosyVoiceModel(Protocol):
    """The part of `cosyvoice.cli.cosyvoice.CosyVoice2` this engine uses."""

    sample_rate: int

    def list_available_spks(self) -> list[str]: ...

    def add_zero_shot_spk(
        self, prompt_text: str, prompt_speech_16k: Any, zero_shot_spk_id: str
    ) -> bool: ...

    def inference_sft(
        self, tts_text: str, spk_id: str, stream: bool = False
    ) -> Iterator[dict[str, Any]]: ...

    def inference_zero_shot(
        self,
        tts_text: str,
        prompt_text: str,
        prompt_speech_16k: Any,
        zero_shot_spk_id: str = "",
        stream: bool = False,
    ) -> Iterator[dict[str, Any]]: ...


ModelFactory = Callable[[Path], CosyVoiceModel]


class CosyVoiceWeightsMissing(FileNotFoundError):
    """The configured model folder does not hold CosyVoice 2's weights."""


class ReferenceClipError(ValueError):
    """A zero-shot voice's reference clip or transcript cannot be used."""


def missing_weights(model_dir: Path) -> list[str]:
    """The files CosyVoice 2 needs that model_dir lacks (all of them if it is no folder)."""
    if not model_dir.is_dir():
        return list(REQUIRED_FILES)
    return [name for name in REQUIRED_FILES if not (model_dir / name).is_file()]


def check_weights(model_dir: Path) -> None:
    missing = missing_weights(model_dir)
    if not model_dir.is_dir():
        raise CosyVoiceWeightsMissing(
            f"CosyVoice model folder {model_dir} does not exist: mount the CosyVoice2-0.5B "
            "weights there (TTS_WORKER_COSYVOICE_MODEL_DIR); they are never downloaded"
        )
    if missing:
        raise CosyVoiceWeightsMissing(
            f"CosyVoice model folder {model_dir} lacks {', '.join(missing)}: "
            "it must hold the CosyVoice2-0.5B weights"
        )


def load_cosyvoice2(model_dir: Path, fp16: bool = False) -> CosyVoiceModel:
    """The real model: CosyVoice2(model_dir) from the CosyVoice source in the CUDA image."""
    check_weights(model_dir)
    try:
        module = importlib.import_module("cosyvoice.cli.cosyvoice")
    except ImportError as exc:
        raise RuntimeError(
            "the cosyvoice engine needs CosyVoice's source and torch, which only the CUDA "
            f"image installs (docker/Dockerfile.tts-cosyvoice): {exc}"
        ) from exc
    # An existing folder: CosyVoice2 reads it and never calls the model hub.
    model: CosyVoiceModel = module.CosyVoice2(str(model_dir), fp16=fp16)
    return model


def import_factory(path: str) -> ModelFactory:
    """`module:callable` -> the callable (the tests' stand-in model factory)."""
    module_name, _, attribute = path.partition(":")
    if not module_name or not attribute:
        raise ValueError(f"cosyvoice_model_factory {path!r} must look like 'module:callable'")
    factory: ModelFactory = getattr(importlib.import_module(module_name), attribute)
    return factory


@dataclass(frozen=True)
class ZeroShotVoice:
    """A reference clip and what is said in it."""

    clip: Path
    transcript: str


def read_reference_clip(clip: Path) -> FloatAudio:
    """A 16-bit PCM WAV as mono float32 at 16 kHz, checked for what CosyVoice accepts."""
    try:
        with wave.open(str(clip), "rb") as wav:
            width, channels, rate = wav.getsampwidth(), wav.getnchannels(), wav.getframerate()
            raw = wav.readframes(wav.getnframes())
    except (OSError, EOFError, wave.Error) as exc:
        raise ReferenceClipError(f"reference clip {clip} is not a readable WAV: {exc}") from exc
    if width != 2:
        raise ReferenceClipError(
            f"reference clip {clip} has {8 * width}-bit samples; use 16-bit PCM"
        )
    audio = np.frombuffer(raw, dtype="<i2").astype(np.float32) / 32768.0
    audio = audio.reshape(-1, channels).mean(axis=1, dtype=np.float32)
    seconds = len(audio) / rate
    if not MIN_PROMPT_SECONDS <= seconds <= MAX_PROMPT_SECONDS:
        raise ReferenceClipError(
            f"reference clip {clip} lasts {seconds:.2f} s; CosyVoice needs "
            f"{MIN_PROMPT_SECONDS:g} to {MAX_PROMPT_SECONDS:g} s"
        )
    if not np.any(np.abs(audio) > 1e-3):
        raise ReferenceClipError(f"reference clip {clip} is silent")
    if rate != PROMPT_SAMPLE_RATE:
        import soxr

        audio = soxr.resample(audio, rate, PROMPT_SAMPLE_RATE, quality="HQ")
    return np.ascontiguousarray(audio, dtype=np.float32)


def folder_zero_shot_voices(folder: Path) -> dict[str, ZeroShotVoice]:
    """Every `<name>.wav` with a `<name>.txt` transcript beside it in folder."""
    if not folder.is_dir():
        raise ValueError(f"cosyvoice_voices_dir {folder} is not a folder")
    found: dict[str, ZeroShotVoice] = {}
    for clip in sorted(folder.glob("*.wav")):
        transcript_path = clip.with_suffix(".txt")
        if not transcript_path.is_file():
            raise ReferenceClipError(
                f"reference clip {clip} has no transcript {transcript_path.name} beside it"
            )
        found[clip.stem] = ZeroShotVoice(clip, transcript_path.read_text(encoding="utf-8"))
    return found


def _as_prompt(audio: FloatAudio) -> Any:
    """CosyVoice takes a (1, samples) torch tensor. torch is imported here, lazily; without
    it (only possible with the tests' stand-in model, as CosyVoice needs torch) the
    (1, samples) numpy array is passed as it is."""
    prompt = audio.reshape(1, -1)
    try:
        torch = importlib.import_module("torch")
    except ImportError:
        return prompt
    return torch.from_numpy(prompt)


def _as_float_audio(speech: Any) -> FloatAudio:
    """A chunk's `tts_speech` (a (1, samples) CPU tensor) as flat float32."""
    if hasattr(speech, "detach"):
        speech = speech.detach().cpu().numpy()
    return np.ascontiguousarray(np.asarray(speech, dtype=np.float32).reshape(-1))


class CosyVoiceEngine:
    """CosyVoice 2 with its built-in speakers and named zero-shot voices."""

    name = "cosyvoice"

    def __init__(
        self,
        model_dir: Path,
        model_factory: ModelFactory = load_cosyvoice2,
        zero_shot: dict[str, ZeroShotVoice] | None = None,
        default_voice: str | None = None,
    ) -> None:
        if not model_dir.is_dir():
            raise CosyVoiceWeightsMissing(
                f"CosyVoice model folder {model_dir} does not exist: mount the CosyVoice2-0.5B "
                "weights there (TTS_WORKER_COSYVOICE_MODEL_DIR); they are never downloaded"
            )
        started = time.perf_counter()
        self._model = model_factory(model_dir)
        self.load_seconds: dict[str, float] = {}
        self.model_load_seconds = time.perf_counter() - started
        self.sample_rate = int(self._model.sample_rate)
        self._speakers = list(self._model.list_available_spks())
        self._zero_shot: dict[str, ZeroShotVoice] = {}
        self._loaded: set[str] = set(self._speakers)
        self._lock = threading.Lock()
        for name, spec in (zero_shot or {}).items():
            self.register_zero_shot_voice(name, spec.clip, spec.transcript)
        voices = self._all_names()
        if not voices:
            raise ValueError(
                f"CosyVoice model in {model_dir} has no built-in speakers and no zero-shot "
                "voice is configured (TTS_WORKER_COSYVOICE_VOICES_DIR)"
            )
        if default_voice is None:
            default_voice = voices[0]
        elif default_voice not in voices:
            raise ValueError(f"default voice {default_voice!r} not found; have {voices}")
        self._default = default_voice
        log.info(
            "cosyvoice model loaded",
            extra={
                "model_dir": str(model_dir),
                "seconds": round(self.model_load_seconds, 3),
                "speakers": len(self._speakers),
                "zero_shot_voices": len(self._zero_shot),
            },
        )

    @classmethod
    def from_settings(cls, settings: WorkerSettings) -> CosyVoiceEngine:
        if settings.cosyvoice_model_dir is None:
            raise ValueError(
                "the cosyvoice engine needs TTS_WORKER_COSYVOICE_MODEL_DIR (the folder holding "
                "the CosyVoice2-0.5B weights)"
            )
        factory: ModelFactory
        if settings.cosyvoice_model_factory:
            factory = import_factory(settings.cosyvoice_model_factory)
            log.warning(
                "cosyvoice model replaced by a test factory",
                extra={"factory": settings.cosyvoice_model_factory},
            )
        else:
            factory = partial(load_cosyvoice2, fp16=settings.cosyvoice_fp16)
        zero_shot = (
            folder_zero_shot_voices(settings.cosyvoice_voices_dir)
            if settings.cosyvoice_voices_dir is not None
            else {}
        )
        # The shared default names a Piper voice: unless it was set, take the first voice.
        explicit = "default_voice" in settings.model_fields_set
        engine = cls(
            settings.cosyvoice_model_dir,
            factory,
            zero_shot,
            settings.default_voice if explicit else None,
        )
        for name in [engine.default_voice, *settings.preload_voices]:
            engine.load_voice(name)
        if settings.inference_threads < settings.max_concurrent_streams:
            log.warning(
                "fewer inference threads than concurrent streams: CosyVoice streams will take "
                "turns (set TTS_WORKER_INFERENCE_THREADS to TTS_WORKER_MAX_CONCURRENT_STREAMS)",
                extra={
                    "inference_threads": settings.inference_threads,
                    "max_concurrent_streams": settings.max_concurrent_streams,
                },
            )
        return engine

    @property
    def default_voice(self) -> str:
        return self._default

    def register_zero_shot_voice(self, name: str, clip: Path, transcript: str) -> VoiceSpec:
        """Make a reference clip plus its transcript the voice `name` (loaded on first use).
        The clip is checked now, so a bad one fails here, naming the file."""
        if not name:
            raise ValueError("a zero-shot voice needs a name")
        if name in self._speakers:
            raise ValueError(f"zero-shot voice {name!r} would hide the built-in speaker")
        if not transcript.strip():
            raise ReferenceClipError(f"reference clip {clip} has an empty transcript")
        read_reference_clip(clip)
        with self._lock:
            self._zero_shot[name] = ZeroShotVoice(clip, transcript.strip())
            self._loaded.discard(name)
        return self.voice(name)

    def _all_names(self) -> list[str]:
        return [*self._speakers, *sorted(set(self._zero_shot) - set(self._speakers))]

    def voices(self) -> list[VoiceSpec]:
        return [self.voice(name) for name in self._all_names()]

    def voice(self, name: str) -> VoiceSpec:
        if name not in self._zero_shot and name not in self._speakers:
            raise VoiceNotFoundError(name)
        return VoiceSpec(name, self.sample_rate, LANGUAGE, name in self._loaded)

    def load_voice(self, name: str) -> VoiceSpec:
        """Built-in speakers are always loaded; a zero-shot voice computes its prompt
        features from the reference clip (speaker embedding and speech tokens)."""
        spec = self.voice(name)
        if spec.loaded:
            return spec
        with self._lock:
            if name not in self._loaded:
                started = time.perf_counter()
                voice = self._zero_shot[name]
                prompt = _as_prompt(read_reference_clip(voice.clip))
                self._model.add_zero_shot_spk(voice.transcript, prompt, name)
                self._loaded.add(name)
                self.load_seconds[name] = time.perf_counter() - started
                log.info(
                    "voice loaded",
                    extra={"voice": name, "seconds": round(self.load_seconds[name], 3)},
                )
        return self.voice(name)

    def unload_voice(self, name: str) -> None:
        self.voice(name)
        if name in self._zero_shot:
            with self._lock:
                self._loaded.discard(name)  # the next use registers the prompt again

    def synthesize(self, voice: str, text: str) -> Iterator[FloatAudio]:
        if voice not in self._loaded:
            self.load_voice(voice)
        if voice in self._zero_shot:
            outputs = self._model.inference_zero_shot(
                text, "", "", zero_shot_spk_id=voice, stream=True
            )
        else:
            outputs = self._model.inference_sft(text, voice, stream=True)
        try:
            for output in outputs:
                audio = _as_float_audio(output["tts_speech"])
                if audio.size:
                    yield audio
        finally:
            # Cancelled or finished: let CosyVoice release this stream's state now.
            close = getattr(outputs, "close", None)
            if close is not None:
                close()
