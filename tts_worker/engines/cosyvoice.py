"""CosyVoice 2 (Apache-2.0) on a GPU, through CosyVoice's own Python API at one pinned commit.

Upstream is FunAudioLLM/CosyVoice at `UPSTREAM_COMMIT` (docker/Dockerfile.tts-cosyvoice
installs that source; tests/fakes/cosyvoice.py enforces its behaviour). CosyVoice's source and
torch are not part of the CPU install, so both are imported lazily, inside `load_cosyvoice2`.

What this engine relies on, file and function at the pinned commit:

- cosyvoice/cli/cosyvoice.py `CosyVoice2.__init__(model_dir, load_jit, load_trt, fp16,
  use_flow_cache)`: reads `cosyvoice2.yaml` with `qwen_pretrain_path` set to
  `CosyVoice-BlankEN/`, from which transformers loads the Qwen LLM (cosyvoice/llm/llm.py
  `Qwen2Encoder.__init__`: `Qwen2ForCausalLM.from_pretrained`, config and weights) and its
  tokenizer (cosyvoice/tokenizer/tokenizer.py `QwenTokenizer.__init__`:
  `AutoTokenizer.from_pretrained`, vocab and merges); then `llm.pt`, `hift.pt`,
  `campplus.onnx`, `speech_tokenizer_v2.onnx`, and `flow.cache.pt` when `use_flow_cache` is
  set (`flow.pt` otherwise); `spk2info.pt` only if it exists (frontend.py
  `CosyVoiceFrontEnd.__init__`). A folder that does not exist is fetched from a model hub
  there: `check_weights` refuses it first, so that never happens.
- cosyvoice/cli/model.py `CosyVoice2Model.tts`: with `stream=True` it asserts
  `use_flow_cache is True` (and without it, that it is False). The worker always streams,
  so the model is built with `use_flow_cache=True`, which needs `flow.cache.pt`.
- `CosyVoice.list_available_spks` (the keys of `frontend.spk2info`): built-in speakers,
  none in the stock CosyVoice2-0.5B download, which ships no `spk2info.pt`.
- `CosyVoice.add_zero_shot_spk(prompt_text, prompt_speech_16k, zero_shot_spk_id)`: a
  reference clip (a (1, samples) tensor at 16 kHz, at most 30 s: frontend.py
  `_extract_speech_token`) and its transcript become `frontend.spk2info[id]`. This is how
  voices normally exist.
- `CosyVoice.inference_zero_shot(text, "", "", zero_shot_spk_id=id, stream=True)` for those,
  and `CosyVoice.inference_sft(text, spk_id, stream=True)` for a built-in `spk2info.pt`
  entry holding an `embedding` (frontend.py `frontend_sft`). Both split the text with
  `CosyVoiceFrontEnd.text_normalize` and yield `{"tts_speech": (1, n) tensor}` chunks at
  `CosyVoice2.sample_rate` (the yaml's `sample_rate`, 24 kHz), which the worker's framer
  resamples.
- `speed`: in streaming, model.py `CosyVoice2Model.tts` passes it to `token2wav` only in
  the non-streaming branch, so a streamed utterance ignores it: the engine declares
  `supports_speed = False` and the worker refuses other speeds.
- frontend.py: when `ttsfrd` is absent it normalizes text with WeTextProcessing (`tn`), and
  builds the Chinese grammar with `overwrite_cache=True`, i.e. anew at every start and
  written into the `tn` package (impossible on a read-only root). The image builds that
  grammar once with the same options (`prebuild_text_normalizer`), and `load_cosyvoice2`
  points upstream at it.

Two things upstream does not do, which this engine adds (see `_Generations`):

- Cancel. Upstream's `tts` generator has no cleanup when it is closed: its LLM thread
  (`CosyVoice2Model.llm_job`) runs to the end of the generation and the utterance's entries
  in `tts_speech_token_dict`, `llm_end_dict`, `hift_cache_dict` and `flow_cache_dict` (GPU
  tensors) stay. When an utterance stops early the engine drops those entries; the LLM
  thread, which looks its token list up for every token, then ends at its next token.
- Concurrent streams of one voice. `frontend_zero_shot` returns the voice's own
  `spk2info` entry and writes the utterance's text into it before `tts` reads it, so two
  streams of one voice could speak each other's text. Each utterance speaks through its own
  shallow copy of the entry, under a private id, removed when it ends.

Concurrency: run one worker per GPU. CosyVoice runs each stream's LLM in a thread of its own,
so the GPU is shared by as many generators as there are active utterances, which
`TTS_WORKER_MAX_CONCURRENT_STREAMS` bounds (more wait in the worker's queue).
"""

from __future__ import annotations

import itertools
import logging
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

from tts_worker.engines.base import FloatAudio, VoiceNotFoundError, VoiceSpec, loaded
from tts_worker.engines.cosyvoice_upstream import (
    ALIAS_SEPARATOR,
    LANGUAGE,
    MAX_PROMPT_SECONDS,
    MIN_PROMPT_SECONDS,
    OPTIONAL_FILES,
    PIPER_DEFAULT_VOICE,
    PROMPT_SAMPLE_RATE,
    QWEN_ALTERNATIVES,
    QWEN_DIR,
    REQUIRED_FILES,
    UPSTREAM_COMMIT,
    UPSTREAM_REPOSITORY,
    UPSTREAM_STATE,
    ZH_NORMALIZER_CACHE,
    ZH_NORMALIZER_FILES,
    ZH_NORMALIZER_OPTIONS,
    CosyVoice2Model,
    CosyVoiceFrontEnd,
    CosyVoiceModel,
    CosyVoiceWeightsMissing,
    ModelFactory,
    ReferenceClipError,
    ZeroShotVoice,
    as_float_audio,
    as_prompt,
    check_weights,
    folder_zero_shot_voices,
    import_factory,
    load_cosyvoice2,
    missing_weights,
    prebuild_text_normalizer,
    read_reference_clip,
    speaker_kind,
    use_prebuilt_text_normalizer,
)
from tts_worker.settings import WorkerSettings

log = logging.getLogger(__name__)

__all__ = [
    "ALIAS_SEPARATOR",
    "CosyVoice2Model",
    "CosyVoiceEngine",
    "CosyVoiceFrontEnd",
    "CosyVoiceModel",
    "CosyVoiceWeightsMissing",
    "LANGUAGE",
    "MAX_PROMPT_SECONDS",
    "MIN_PROMPT_SECONDS",
    "ModelFactory",
    "OPTIONAL_FILES",
    "PIPER_DEFAULT_VOICE",
    "PROMPT_SAMPLE_RATE",
    "QWEN_ALTERNATIVES",
    "QWEN_DIR",
    "REQUIRED_FILES",
    "ReferenceClipError",
    "UPSTREAM_COMMIT",
    "UPSTREAM_REPOSITORY",
    "UPSTREAM_STATE",
    "ZH_NORMALIZER_CACHE",
    "ZH_NORMALIZER_FILES",
    "ZH_NORMALIZER_OPTIONS",
    "ZeroShotVoice",
    "check_weights",
    "folder_zero_shot_voices",
    "import_factory",
    "load_cosyvoice2",
    "missing_weights",
    "prebuild_text_normalizer",
    "read_reference_clip",
    "use_prebuilt_text_normalizer",
]


@dataclass(eq=False)
class _Generation:
    """One utterance inside upstream: its private speaker id and entry, and the uuids upstream
    gave each segment's `tts` call (learnt in the LLM thread, see `_Generations`)."""

    alias: str
    key: Any  # this utterance's own view of the LLM embedding: its identity names the utterance
    uuids: list[str] = field(default_factory=list)
    stopped: bool = False


class _Generations:
    """Our cancel for upstream's generation, which has none.

    Each utterance speaks through a shallow copy of its voice's `spk2info` entry under a private
    id, whose LLM embedding is a fresh view of the same tensor (no copy of the data). Upstream
    hands that object unchanged to `CosyVoice2Model.llm_job` (as `llm_embedding`) in the thread
    it starts for every segment; `llm_job` is replaced on the model instance by `_llm_job`,
    which recognises the object, records the segment's uuid, and runs upstream's own job.

    `finish` (the utterance's generator ended, however) drops the utterance's state from the
    model's per-uuid dicts under the model's lock, as upstream does at the end of `tts`, and
    removes the private entry. A LLM thread still generating then finds its token list gone
    (a KeyError for its uuid at its next token) and ends there; `_llm_job` takes that as the
    stop and drops whatever the thread wrote after the drop. Each LLM thread of ours is
    tracked from its start to its end only, so nothing accumulates over a worker's life.
    """

    def __init__(self, model: CosyVoiceModel) -> None:
        self._cosy = model
        self._upstream_llm_job = model.model.llm_job
        self._by_key: dict[int, _Generation] = {}
        self._threads: set[threading.Thread] = set()  # our LLM threads, until they end
        self._lock = threading.Lock()
        self._counter = itertools.count()
        # An instance attribute: upstream's tts() reads `self.llm_job` when it starts a thread.
        model.model.llm_job = self._llm_job  # type: ignore[method-assign]

    def start(self, voice: str) -> _Generation:
        entry = self._cosy.frontend.spk2info[voice]
        kind = speaker_kind(entry)
        field_name = "embedding" if kind == "sft" else "llm_embedding"
        alias = f"{voice}{ALIAS_SEPARATOR}{next(self._counter)}"
        own = dict(entry)
        own[field_name] = entry[field_name][...]  # a new view object over the same data
        generation = _Generation(alias, own[field_name])
        with self._lock:
            self._by_key[id(generation.key)] = generation
        self._cosy.frontend.spk2info[alias] = own
        return generation

    def finish(self, generation: _Generation) -> None:
        with self._lock:
            generation.stopped = True
            uuids = list(generation.uuids)
        self._drop(uuids)
        self._cosy.frontend.spk2info.pop(generation.alias, None)
        with self._lock:
            self._by_key.pop(id(generation.key), None)

    def live_llm_threads(self) -> list[threading.Thread]:
        """LLM threads of this engine's utterances that have not ended yet."""
        with self._lock:
            return list(self._threads)

    def _drop(self, uuids: list[str]) -> None:
        model = self._cosy.model
        with model.lock:
            for name in UPSTREAM_STATE:
                state: dict[str, Any] = getattr(model, name)
                for uuid in uuids:
                    state.pop(uuid, None)

    def _llm_job(self, *job: Any) -> None:
        """Stands in for `CosyVoice2Model.llm_job(text, prompt_text, llm_prompt_speech_token,
        llm_embedding, uuid)`, which model.py `tts` starts as a thread with positional args."""
        llm_embedding, uuid = job[3], job[4]
        thread = threading.current_thread()
        with self._lock:
            generation = self._by_key.get(id(llm_embedding))
            if generation is not None and generation.key is not llm_embedding:
                generation = None
            if generation is not None:
                generation.uuids.append(uuid)
                self._threads.add(thread)
                stopped = generation.stopped
        if generation is None:  # not started by this engine: upstream's job, untouched
            self._upstream_llm_job(*job)
            return
        try:
            if stopped:
                return
            self._upstream_llm_job(*job)
        except KeyError as exc:
            if not (generation.stopped and exc.args == (uuid,)):
                raise
            log.debug("cosyvoice generation stopped", extra={"uuid": uuid})
        finally:
            if generation.stopped:
                self._drop([uuid])  # e.g. the end-of-generation flag set after finish()
            with self._lock:
                self._threads.discard(thread)


class CosyVoiceEngine:
    """CosyVoice 2 with zero-shot voices from reference clips, and built-in speakers when the
    model folder has any."""

    name = "cosyvoice"
    # Upstream's streaming path (model.py `tts` with stream=True) never applies `speed`, only
    # its non-streaming one does: the worker refuses a speed rather than ignore it.
    supports_speed = False

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
        self._generations = _Generations(self._model)
        # Built-in speakers: the entries of spk2info.pt, when the folder has one.
        self._builtin: dict[str, str] = {}
        for name in self._model.list_available_spks():
            kind = speaker_kind(self._model.frontend.spk2info[name])
            if kind is None:
                log.warning("spk2info.pt entry skipped: no embedding", extra={"voice": name})
            else:
                self._builtin[name] = kind
        self._zero_shot: dict[str, ZeroShotVoice] = {}
        self._loaded: set[str] = set(self._builtin)
        self._lock = threading.Lock()
        for name, spec in (zero_shot or {}).items():
            self.register_zero_shot_voice(name, spec.clip, spec.transcript)
        voices = self._all_names()
        if not voices:
            raise ValueError(
                f"CosyVoice model in {model_dir} has no built-in speakers (no spk2info.pt, as in "
                "the stock CosyVoice2-0.5B) and no zero-shot voice is configured "
                "(TTS_WORKER_COSYVOICE_VOICES_DIR: <name>.wav with <name>.txt)"
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
                "speakers": len(self._builtin),
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
        if not name or ALIAS_SEPARATOR in name:
            raise ValueError(f"{name!r} is no usable zero-shot voice name")
        if name in self._builtin:
            raise ValueError(f"zero-shot voice {name!r} would hide the built-in speaker")
        if not transcript.strip():
            raise ReferenceClipError(f"reference clip {clip} has an empty transcript")
        read_reference_clip(clip)
        with self._lock:
            self._zero_shot[name] = ZeroShotVoice(clip, transcript.strip())
            self._loaded.discard(name)
        return self.voice(name)

    def _all_names(self) -> list[str]:
        return [*self._builtin, *sorted(set(self._zero_shot) - set(self._builtin))]

    def voices(self) -> list[VoiceSpec]:
        return [self.voice(name) for name in self._all_names()]

    def voice(self, name: str) -> VoiceSpec:
        if name not in self._zero_shot and name not in self._builtin:
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
                prompt = as_prompt(read_reference_clip(voice.clip))
                self._model.add_zero_shot_spk(voice.transcript, prompt, name)
                self._loaded.add(name)
                self.load_seconds[name] = loaded(name, started)
        return self.voice(name)

    def unload_voice(self, name: str) -> None:
        """A zero-shot voice leaves `spk2info` (streams speaking it keep their own copy) and is
        registered again on its next use; built-in speakers stay."""
        self.voice(name)
        if name in self._zero_shot:
            with self._lock:
                self._loaded.discard(name)
                self._model.frontend.spk2info.pop(name, None)

    def synthesize(self, voice: str, text: str, speed: float = 1.0) -> Iterator[FloatAudio]:
        while True:  # an unload racing this start makes it load again
            self.load_voice(voice)
            with self._lock:
                if voice in self._loaded:
                    generation = self._generations.start(voice)
                    break
        try:
            outputs: Iterator[dict[str, Any]]
            if self._builtin.get(voice) == "sft":
                outputs = self._model.inference_sft(
                    text, generation.alias, stream=True, speed=speed
                )
            else:
                outputs = self._model.inference_zero_shot(
                    text, "", "", zero_shot_spk_id=generation.alias, stream=True, speed=speed
                )
            try:
                for output in outputs:
                    audio = as_float_audio(output["tts_speech"])
                    if audio.size:
                        yield audio
            finally:
                close = getattr(outputs, "close", None)
                if close is not None:
                    close()
        finally:
            # Finished, failed or closed early (cancel, barge-in, client gone): end upstream's
            # LLM thread and drop this utterance's state from the model.
            self._generations.finish(generation)

    def live_llm_threads(self) -> list[threading.Thread]:
        """Upstream LLM threads of this engine's utterances still running (tests, gpu_check)."""
        return self._generations.live_llm_threads()

    def upstream_state(self) -> dict[str, int]:
        """Entries left in upstream's per-utterance dicts and private speaker entries: all zero
        when no utterance runs (tests, gpu_check)."""
        model = self._model.model
        with model.lock:
            counts = {name: len(getattr(model, name)) for name in UPSTREAM_STATE}
        counts["spk2info_private"] = sum(
            ALIAS_SEPARATOR in key for key in list(self._model.frontend.spk2info)
        )
        return counts
