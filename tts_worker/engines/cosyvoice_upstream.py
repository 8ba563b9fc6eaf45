"""CosyVoice's side of the contract, at the pinned upstream commit: model files, the loader,
the text normalizer, reference clips and the API the engine calls (`cosyvoice.py` says which
upstream function each use mirrors). Kept apart from the engine so each module holds one
thing: this one what upstream is, the engine what the worker does with it."""

from __future__ import annotations

import importlib
import importlib.util
import logging
import sys
import wave
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from tts_worker.engines.base import FloatAudio
from tts_worker.settings import WorkerSettings

log = logging.getLogger(__name__)


UPSTREAM_REPOSITORY = "FunAudioLLM/CosyVoice"
UPSTREAM_COMMIT = "37e48dd3184d19707372e8a8775e0f8a3a3ef0ac"
# What CosyVoice2(model_dir, use_flow_cache=True) opens (see the engine's docstring).
REQUIRED_FILES = (
    "cosyvoice2.yaml",
    "llm.pt",
    "flow.cache.pt",
    "hift.pt",
    "campplus.onnx",
    "speech_tokenizer_v2.onnx",
    "CosyVoice-BlankEN/config.json",
)
# The Qwen LLM and its tokenizer, which transformers reads from CosyVoice-BlankEN/ (llm.py
# `Qwen2Encoder.__init__`: `Qwen2ForCausalLM.from_pretrained`; tokenizer.py
# `QwenTokenizer.__init__`: `AutoTokenizer.from_pretrained`): each needs one of its sets of
# files, the first being the stock download's.
QWEN_DIR = "CosyVoice-BlankEN"
QWEN_ALTERNATIVES: dict[str, tuple[tuple[str, ...], ...]] = {
    "Qwen weights": (
        ("model.safetensors",),
        ("model.safetensors.index.json",),
        ("pytorch_model.bin",),
        ("pytorch_model.bin.index.json",),
    ),
    "Qwen tokenizer": (("vocab.json", "merges.txt"), ("tokenizer.json",)),
}
# Read when present: built-in speakers; `flow.pt` serves only the non-streaming mode.
OPTIONAL_FILES = ("spk2info.pt", "flow.pt")
PROMPT_SAMPLE_RATE = 16000  # CosyVoice takes its reference clips at 16 kHz
MIN_PROMPT_SECONDS = 1.0
MAX_PROMPT_SECONDS = 30.0  # frontend.py `_extract_speech_token` asserts at most 30 s
LANGUAGE = "mul"  # ISO 639 "multiple languages": CosyVoice 2 speaks zh, en, ja, ko, ...
PIPER_DEFAULT_VOICE = WorkerSettings.model_fields["default_voice"].default
# The Chinese text-normalization grammar as frontend.py `CosyVoiceFrontEnd.__init__` builds
# it (WeTextProcessing's `tn.chinese.normalizer.Normalizer` with these options), prebuilt
# into the image at ZH_NORMALIZER_CACHE.
ZH_NORMALIZER_OPTIONS: dict[str, bool] = {"remove_erhua": False, "full_to_half": False}
ZH_NORMALIZER_CACHE = Path(sys.prefix) / "share" / "cosyvoice-tn"
ZH_NORMALIZER_FILES = ("zh_tn_tagger.fst", "zh_tn_verbalizer.fst")
# Private ids of per-utterance speaker entries: "<voice><SEP><n>"; no voice name holds SEP.
ALIAS_SEPARATOR = "\x1f"
# The per-utterance state of cosyvoice/cli/model.py `CosyVoice2Model`, keyed by its uuid.
UPSTREAM_STATE = ("tts_speech_token_dict", "llm_end_dict", "hift_cache_dict", "flow_cache_dict")


class CosyVoiceFrontEnd(Protocol):
    """The part of `cosyvoice.cli.frontend.CosyVoiceFrontEnd` this engine reads."""

    spk2info: dict[str, dict[str, Any]]


class CosyVoice2Model(Protocol):
    """The part of `cosyvoice.cli.model.CosyVoice2Model` the cancel mechanism touches."""

    lock: AbstractContextManager[Any]
    tts_speech_token_dict: dict[str, Any]
    llm_end_dict: dict[str, Any]
    hift_cache_dict: dict[str, Any]
    flow_cache_dict: dict[str, Any]

    def llm_job(self, *job: Any) -> None:
        """(text, prompt_text, llm_prompt_speech_token, llm_embedding, uuid), positionally."""


class CosyVoiceModel(Protocol):
    """The part of `cosyvoice.cli.cosyvoice.CosyVoice2` this engine uses."""

    sample_rate: int
    frontend: CosyVoiceFrontEnd
    model: CosyVoice2Model

    def list_available_spks(self) -> list[str]: ...

    def add_zero_shot_spk(
        self, prompt_text: str, prompt_speech_16k: Any, zero_shot_spk_id: str
    ) -> bool: ...

    def inference_sft(
        self, tts_text: str, spk_id: str, stream: bool = False, speed: float = 1.0
    ) -> Iterator[dict[str, Any]]: ...

    def inference_zero_shot(
        self,
        tts_text: str,
        prompt_text: str,
        prompt_speech_16k: Any,
        zero_shot_spk_id: str = "",
        stream: bool = False,
        speed: float = 1.0,
    ) -> Iterator[dict[str, Any]]: ...


ModelFactory = Callable[[Path], CosyVoiceModel]


class CosyVoiceWeightsMissing(FileNotFoundError):
    """The configured model folder does not hold CosyVoice 2's weights."""


class ReferenceClipError(ValueError):
    """A zero-shot voice's reference clip or transcript cannot be used."""


def missing_weights(model_dir: Path) -> list[str]:
    """The files CosyVoice 2 needs that model_dir lacks (all of them if it is no folder); a
    Qwen file set with none of its alternatives present is named by its first one."""
    missing = [name for name in REQUIRED_FILES if not (model_dir / name).is_file()]
    for what, alternatives in QWEN_ALTERNATIVES.items():
        if not any(
            all((model_dir / QWEN_DIR / name).is_file() for name in files) for files in alternatives
        ):
            first, *others = (" + ".join(files) for files in alternatives)
            missing.append(f"{QWEN_DIR}/{first} ({what}; or {', '.join(others)})")
    return missing


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
            "it must hold the CosyVoice2-0.5B weights (streaming needs flow.cache.pt)"
        )


def prebuild_text_normalizer(cache_dir: Path = ZH_NORMALIZER_CACHE) -> None:
    """Build upstream's Chinese normalization grammar into cache_dir (the image does this once,
    at build time; minutes of CPU)."""
    module = importlib.import_module("tn.chinese.normalizer")
    cache_dir.mkdir(parents=True, exist_ok=True)
    module.Normalizer(cache_dir=str(cache_dir), overwrite_cache=True, **ZH_NORMALIZER_OPTIONS)


def use_prebuilt_text_normalizer(cache_dir: Path = ZH_NORMALIZER_CACHE) -> bool:
    """Make upstream's frontend load the prebuilt grammar instead of rebuilding it.

    Upstream's frontend imports `tn.chinese.normalizer.Normalizer` when it is first imported;
    replacing that class beforehand with one that reads cache_dir (same options, so the same
    grammar) is the whole change. Nothing happens when `ttsfrd` is installed (upstream then
    uses it instead), or when the prebuilt files are missing (upstream rebuilds, which needs
    a writable `tn` package). True when the prebuilt grammar will be used.
    """
    if importlib.util.find_spec("ttsfrd") is not None:
        return False
    if not all((cache_dir / name).is_file() for name in ZH_NORMALIZER_FILES):
        log.warning(
            "no prebuilt Chinese text normalizer: CosyVoice builds it at start-up",
            extra={"cache_dir": str(cache_dir)},
        )
        return False
    module: Any = importlib.import_module("tn.chinese.normalizer")
    upstream = module.Normalizer
    if getattr(upstream, "prebuilt_cache_dir", None) is not None:
        return True

    class PrebuiltNormalizer(upstream):  # type: ignore[misc, valid-type]
        prebuilt_cache_dir = str(cache_dir)

        def __init__(self, *args: Any, **kwargs: Any) -> None:
            kwargs["cache_dir"] = self.prebuilt_cache_dir
            kwargs["overwrite_cache"] = False
            super().__init__(*args, **kwargs)

    module.Normalizer = PrebuiltNormalizer
    return True


def load_cosyvoice2(model_dir: Path, fp16: bool = False) -> CosyVoiceModel:
    """The real model: CosyVoice2(model_dir) from the CosyVoice source in the CUDA image, in
    the streaming mode the worker uses (`use_flow_cache=True`)."""
    check_weights(model_dir)
    try:
        use_prebuilt_text_normalizer()
        module = importlib.import_module("cosyvoice.cli.cosyvoice")
    except ImportError as exc:
        raise RuntimeError(
            "the cosyvoice engine needs CosyVoice's source and its requirements (torch, "
            "WeTextProcessing, ...), which only the CUDA image installs "
            f"(docker/Dockerfile.tts-cosyvoice): {exc}"
        ) from exc
    # An existing folder: CosyVoice2 reads it and never calls the model hub.
    model: CosyVoiceModel = module.CosyVoice2(
        str(model_dir), load_jit=False, load_trt=False, fp16=fp16, use_flow_cache=True
    )
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


def as_prompt(audio: FloatAudio) -> Any:
    """CosyVoice takes a (1, samples) torch tensor. torch is imported here, lazily; without
    it (only possible with the tests' stand-in model, as CosyVoice needs torch) the
    (1, samples) numpy array is passed as it is."""
    prompt = audio.reshape(1, -1)
    try:
        torch = importlib.import_module("torch")
    except ImportError:
        return prompt
    return torch.from_numpy(prompt)


def as_float_audio(speech: Any) -> FloatAudio:
    """A chunk's `tts_speech` (a (1, samples) CPU tensor) as flat float32."""
    if hasattr(speech, "detach"):
        speech = speech.detach().cpu().numpy()
    return np.ascontiguousarray(np.asarray(speech, dtype=np.float32).reshape(-1))


def speaker_kind(entry: dict[str, Any]) -> str | None:
    """How upstream speaks a `spk2info` entry: `sft` needs an `embedding` (frontend.py
    `frontend_sft`); `zero_shot` the prompt features `add_zero_shot_spk` stores."""
    if "embedding" in entry:
        return "sft"
    if "llm_prompt_speech_token" in entry and "llm_embedding" in entry:
        return "zero_shot"
    return None
