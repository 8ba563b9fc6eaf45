"""FAKE CosyVoice: the one stand-in, in the tests, for FunAudioLLM/CosyVoice and its weights
(gigabytes on model hubs, and torch, neither of which exists here).

It is a contract fake: it mirrors upstream at the commit the image pins (PINNED_COMMIT, the
same as `tts_worker.engines.cosyvoice.UPSTREAM_COMMIT`), so that a test fails whenever the
engine drifts from what upstream does. Its rules, each with the upstream file and function it
mirrors (paths are inside the CosyVoice repository at that commit):

R1 layout. cosyvoice/cli/cosyvoice.py `CosyVoice2.__init__`: `model_dir` is a str (it does
   `'-Instruct' in model_dir`); a folder that does not exist would be downloaded from a model
   hub (`snapshot_download`): refused here; no `cosyvoice2.yaml` is a ValueError; the yaml's
   `qwen_pretrain_path` is overridden with `CosyVoice-BlankEN/`, from which transformers
   reads the Qwen LLM (cosyvoice/llm/llm.py `Qwen2Encoder.__init__`:
   `Qwen2ForCausalLM.from_pretrained` needs `config.json` and one weights file,
   model.safetensors first) and its tokenizer (cosyvoice/tokenizer/tokenizer.py
   `QwenTokenizer.__init__`, built by frontend.py `CosyVoiceFrontEnd.__init__` through the
   yaml's `get_tokenizer`: `AutoTokenizer.from_pretrained` needs `vocab.json` with
   `merges.txt`, or `tokenizer.json`); loading fails without them (here an OSError);
   `campplus.onnx` and `speech_tokenizer_v2.onnx` open in onnxruntime sessions (frontend.py
   `CosyVoiceFrontEnd.__init__`); `llm.pt`, `hift.pt`, and `flow.cache.pt` with
   `use_flow_cache=True` or `flow.pt` without it, go through `torch.load` (model.py
   `CosyVoiceModel.load`): a FileNotFoundError for any missing one.
R2 optional speakers. frontend.py `CosyVoiceFrontEnd.__init__`: `spk2info.pt` is loaded when
   it exists, else `spk2info` is empty. The stock CosyVoice2-0.5B layout (`write_model_dir`)
   has none, so `list_available_spks()` (cosyvoice.py) is empty.
R3 stream mode. model.py `CosyVoice2Model.tts`: after starting the LLM thread, `stream=True`
   asserts `use_flow_cache is True` and `stream=False` asserts it is False; `speed` reaches
   `token2wav` only in the non-streaming branch (a streamed utterance ignores it).
R4 the generation thread. model.py `CosyVoice2Model.tts` starts `threading.Thread(target=
   self.llm_job, ...)` (the attribute read on the instance) per call; `llm_job` appends every
   token to `self.tts_speech_token_dict[uuid]` until the LLM's budget is spent (llm.py
   `Qwen2LM.inference`: up to 20 tokens per text token), then sets `llm_end_dict[uuid]`.
   Nothing stops it: closing the `tts` generator runs no cleanup, so the thread keeps going
   and the uuid's entries in `tts_speech_token_dict`, `llm_end_dict`, `hift_cache_dict` and
   `flow_cache_dict` stay; they are popped only when `tts` runs to its end.
R5 the shared speaker entry. frontend.py `frontend_zero_shot`: with a `zero_shot_spk_id` it
   returns `spk2info[id]` itself and writes the utterance's `text` into it, which `tts` reads
   later; two inferences holding one entry at once would speak each other's text. Upstream
   mixes them silently; the fake raises SharedSpeakerEntry.
R6 zero-shot voices. cosyvoice.py `add_zero_shot_spk`: asserts a non-empty id, stores the
   frontend's prompt features without `text`/`text_len` in `spk2info[id]`; the prompt is a
   (1, samples) 16 kHz tensor of at most 30 s (frontend.py `_extract_speech_token`).
R7 built-in speakers. frontend.py `frontend_sft`: `spk2info[spk_id]['embedding']`, a
   KeyError for anything else.
R8 text. frontend.py `text_normalize(split=True)` cuts the text into sentences
   (`split_paragraph`), each spoken by its own `tts` call; `inference_sft` and
   `inference_zero_shot` (cosyvoice.py) yield `{"tts_speech": (1, n)}` chunks, n samples at
   24 kHz; in streaming, one per `token_hop_len` (25) tokens once `token_hop_len +
   pre_lookahead_len` (3) are there, then the rest (model.py `CosyVoice2Model.tts`).

Stand-ins, not rules: tensors are numpy arrays; a token is 40 ms of a tone whose pitch is the
speaker's "embedding" (so tests can tell voices apart by frequency); the LLM spends
TOKEN_SECONDS per token and `tts` polls every POLL_SECONDS (upstream: 0.1 s); `spk2info.pt`
is JSON ({name: {"embedding_hz": hz}}). FakeZhNormalizer stands in for WeTextProcessing.

The worker loads it through `TTS_WORKER_COSYVOICE_MODEL_FACTORY=tests.fakes.cosyvoice:load`,
which runs the engine's own loader (`load_cosyvoice2`) against these classes.
"""

from __future__ import annotations

import json
import os
import sys
import threading
import time
import uuid as uuid_module
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np

PINNED_COMMIT = "37e48dd3184d19707372e8a8775e0f8a3a3ef0ac"
SAMPLE_RATE = 24000
PROMPT_RATE = 16000
TOKEN_SAMPLES = 960  # 25 tokens/s at 24 kHz (token_frame_rate 25, token_mel_ratio 2, hop 480)
TOKEN_HOP_LEN = 25
PRE_LOOKAHEAD_LEN = 3
TOKENS_PER_CHAR = 5 / 3  # about 15 characters a second, as speech goes
TOKEN_SECONDS = 0.002
POLL_SECONDS = 0.005
# What the stock CosyVoice2-0.5B folder holds, as far as CosyVoice2() reads it (R1, R2).
STOCK_FILES = (
    "cosyvoice2.yaml",
    "llm.pt",
    "flow.pt",
    "flow.cache.pt",
    "hift.pt",
    "campplus.onnx",
    "speech_tokenizer_v2.onnx",
    "CosyVoice-BlankEN/config.json",
    "CosyVoice-BlankEN/generation_config.json",
    "CosyVoice-BlankEN/model.safetensors",
    "CosyVoice-BlankEN/tokenizer_config.json",
    "CosyVoice-BlankEN/vocab.json",
    "CosyVoice-BlankEN/merges.txt",
)
# R1: what transformers 4.40.1 (the commit's pin) accepts in the Qwen folder, in its order:
# `PreTrainedModel.from_pretrained` and `PreTrainedTokenizerFast.__init__`.
QWEN_WEIGHTS = (
    "model.safetensors",
    "model.safetensors.index.json",
    "pytorch_model.bin",
    "pytorch_model.bin.index.json",
)
QWEN_TOKENIZER = (("vocab.json", "merges.txt"), ("tokenizer.json",))
# Read only when present: `GenerationConfig.from_pretrained` (in a try) and the tokenizer's
# `tokenizer_config.json` (its class then comes from config.json's `model_type`).
QWEN_READ_IF_PRESENT = ("generation_config.json", "tokenizer_config.json")
UPSTREAM_STATE = ("tts_speech_token_dict", "llm_end_dict", "hift_cache_dict", "flow_cache_dict")


class SharedSpeakerEntry(AssertionError):
    """R5: two inferences at once through one `spk2info` entry."""


def write_model_dir(
    folder: Path, spk2info: dict[str, float] | None = None, without: tuple[str, ...] = ()
) -> Path:
    """The stock CosyVoice2-0.5B layout as empty stand-in files; `spk2info` adds built-in
    speakers (name -> tone Hz), which the stock download does not have."""
    for name in STOCK_FILES:
        if name in without:
            continue
        path = folder / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"")
    if spk2info is not None:
        (folder / "spk2info.pt").write_text(
            json.dumps({name: {"embedding_hz": hz} for name, hz in spk2info.items()}),
            encoding="utf-8",
        )
    return folder


def _tone(hz: float, start: int, samples: int) -> np.ndarray:
    t = (np.arange(samples) + start) / SAMPLE_RATE
    return (0.3 * np.sin(2 * np.pi * hz * t)).astype(np.float32).reshape(1, -1)


def prompt_hz(samples: int) -> float:
    """The fake's "speaker embedding" of a reference clip: a pitch from its length."""
    return round(150.0 + 20.0 * samples / PROMPT_RATE, 3)


class FakeFrontEnd:
    """FAKE cosyvoice/cli/frontend.py `CosyVoiceFrontEnd` (R2, R5, R6, R7, R8)."""

    def __init__(self, spk2info: Path) -> None:
        self.spk2info: dict[str, dict[str, Any]] = {}
        if spk2info.exists():  # R2
            for name, info in json.loads(spk2info.read_text(encoding="utf-8")).items():
                self.spk2info[name] = {"embedding": np.array([[info["embedding_hz"]]])}

    def text_normalize(
        self, text: str, split: bool = True, text_frontend: bool = True
    ) -> list[str] | str:
        """R8: sentences (upstream: WeTextProcessing, then `split_paragraph`)."""
        if text_frontend is False or text == "":
            return [text] if split is True else text
        text = text.strip()
        texts, current = [], ""
        for word in text.split(" "):
            current = f"{current} {word}" if current else word
            if current.endswith((".", "!", "?")):
                texts.append(current)
                current = ""
        if current:
            texts.append(current)
        texts = [t for t in texts if any(c.isalnum() for c in t)]
        return texts if split is True else text

    def _extract_text_token(self, text: str) -> tuple[np.ndarray, np.ndarray]:
        token = np.array([[ord(c) for c in text]], dtype=np.int32)
        return token, np.array([token.shape[1]], dtype=np.int32)

    def frontend_sft(self, tts_text: str, spk_id: str) -> dict[str, Any]:
        tts_text_token, tts_text_token_len = self._extract_text_token(tts_text)
        embedding = self.spk2info[spk_id]["embedding"]  # R7: KeyError for anything else
        return {
            "text": tts_text_token,
            "text_len": tts_text_token_len,
            "llm_embedding": embedding,
            "flow_embedding": embedding,
        }

    def frontend_zero_shot(
        self,
        tts_text: str,
        prompt_text: str,
        prompt_speech_16k: Any,
        resample_rate: int,
        zero_shot_spk_id: str,
    ) -> dict[str, Any]:
        tts_text_token, tts_text_token_len = self._extract_text_token(tts_text)
        if zero_shot_spk_id == "":
            shape = tuple(np.shape(prompt_speech_16k))
            assert len(shape) == 2 and shape[0] == 1, f"prompt must be (1, samples), got {shape}"
            assert shape[1] / PROMPT_RATE <= 30, (
                "do not support extract speech token for audio longer than 30s"
            )
            prompt_text_token, prompt_text_token_len = self._extract_text_token(prompt_text)
            speech_token = np.zeros((1, shape[1] // 640), dtype=np.int32)  # 25 tokens a second
            embedding = np.array([[prompt_hz(shape[1])]])
            model_input: dict[str, Any] = {
                "prompt_text": prompt_text_token,
                "prompt_text_len": prompt_text_token_len,
                "llm_prompt_speech_token": speech_token,
                "llm_prompt_speech_token_len": np.array([speech_token.shape[1]]),
                "flow_prompt_speech_token": speech_token,
                "flow_prompt_speech_token_len": np.array([speech_token.shape[1]]),
                "prompt_speech_feat": np.zeros((1, 2 * speech_token.shape[1], 80)),
                "prompt_speech_feat_len": np.array([2 * speech_token.shape[1]]),
                "llm_embedding": embedding,
                "flow_embedding": embedding,
            }
        else:
            model_input = self.spk2info[zero_shot_spk_id]  # R5: the shared entry itself
        model_input["text"] = tts_text_token
        model_input["text_len"] = tts_text_token_len
        return model_input


class FakeCosyVoice2Model:
    """FAKE cosyvoice/cli/model.py `CosyVoice2Model` (R3, R4, R8)."""

    def __init__(self, use_flow_cache: bool, token_seconds: float, poll_seconds: float) -> None:
        self.use_flow_cache = use_flow_cache
        self.token_seconds = token_seconds
        self.poll_seconds = poll_seconds
        self.lock = threading.Lock()
        self.tts_speech_token_dict: dict[str, list[int]] = {}
        self.llm_end_dict: dict[str, bool] = {}
        self.hift_cache_dict: dict[str, Any] = {}
        self.flow_cache_dict: dict[str, Any] = {}
        # For the tests: every LLM thread started and how many tokens each uuid got.
        self.llm_threads: list[threading.Thread] = []
        self.tokens_generated: dict[str, int] = {}
        self.llm_finished_ns: dict[str, int] = {}
        self.texts_spoken: list[str] = []

    def llm_job(
        self,
        text: Any,
        prompt_text: Any,
        llm_prompt_speech_token: Any,
        llm_embedding: Any,
        uuid: str,
    ) -> None:
        """R4: every token lands in the uuid's list, whoever listens, to the end."""
        budget = max(1, round(text.shape[1] * TOKENS_PER_CHAR))
        self.tokens_generated[uuid] = 0
        for i in range(budget):
            time.sleep(self.token_seconds)
            self.tts_speech_token_dict[uuid].append(i % 6561)
            self.tokens_generated[uuid] += 1
        self.llm_end_dict[uuid] = True
        self.llm_finished_ns[uuid] = time.time_ns()

    def _token2wav(self, tokens: int, embedding: Any, uuid: str) -> np.ndarray:
        start = self.hift_cache_dict[uuid] or 0  # stands in for the hift cache
        self.hift_cache_dict[uuid] = start + tokens * TOKEN_SAMPLES
        return _tone(float(np.asarray(embedding).reshape(-1)[0]), start, tokens * TOKEN_SAMPLES)

    def tts(
        self,
        text: Any = None,
        flow_embedding: Any = None,
        llm_embedding: Any = None,
        prompt_text: Any = None,
        llm_prompt_speech_token: Any = None,
        flow_prompt_speech_token: Any = None,
        prompt_speech_feat: Any = None,
        source_speech_token: Any = None,
        stream: bool = False,
        speed: float = 1.0,
        **kwargs: Any,
    ) -> Iterator[dict[str, Any]]:
        this_uuid = str(uuid_module.uuid1())
        self.texts_spoken.append("".join(chr(c) for c in np.asarray(text).reshape(-1)))
        with self.lock:
            self.tts_speech_token_dict[this_uuid], self.llm_end_dict[this_uuid] = [], False
            self.hift_cache_dict[this_uuid] = None
            self.flow_cache_dict[this_uuid] = {"cache": "stands in for GPU tensors"}
        p = threading.Thread(
            target=self.llm_job,  # R4: looked up on the instance, as upstream does
            args=(text, prompt_text, llm_prompt_speech_token, llm_embedding, this_uuid),
        )
        p.start()
        self.llm_threads.append(p)
        if stream is True:
            assert self.use_flow_cache is True, (  # R3
                "set use_flow_cache=True if you want to use stream inference to avoid OOM"
            )
            while True:
                time.sleep(self.poll_seconds)
                if len(self.tts_speech_token_dict[this_uuid]) >= TOKEN_HOP_LEN + PRE_LOOKAHEAD_LEN:
                    speech = self._token2wav(TOKEN_HOP_LEN, flow_embedding, this_uuid)
                    yield {"tts_speech": speech}  # R4: no cleanup if closed here
                    with self.lock:
                        self.tts_speech_token_dict[this_uuid] = self.tts_speech_token_dict[
                            this_uuid
                        ][TOKEN_HOP_LEN:]
                if (
                    self.llm_end_dict[this_uuid] is True
                    and len(self.tts_speech_token_dict[this_uuid])
                    < TOKEN_HOP_LEN + PRE_LOOKAHEAD_LEN
                ):
                    break
            p.join()
            rest = len(self.tts_speech_token_dict[this_uuid])
            yield {"tts_speech": self._token2wav(rest, flow_embedding, this_uuid)}
        else:
            assert self.use_flow_cache is False, "set use_flow_cache=False for nonstream inference"
            p.join()
            rest = len(self.tts_speech_token_dict[this_uuid])
            speech = self._token2wav(rest, flow_embedding, this_uuid)
            if speed != 1.0:  # R3: only here (upstream interpolates the mel)
                speech = (
                    speech[:, :: max(1, round(speed))]
                    if speed > 1
                    else np.repeat(speech, round(1 / speed), axis=1)
                )
            yield {"tts_speech": speech}
        with self.lock:
            for name in UPSTREAM_STATE:
                getattr(self, name).pop(this_uuid)

    def leftover_state(self) -> dict[str, int]:
        with self.lock:
            return {name: len(getattr(self, name)) for name in UPSTREAM_STATE}


class FakeCosyVoice2:
    """FAKE cosyvoice/cli/cosyvoice.py `CosyVoice2` (R1, R2, R5, R6, R8)."""

    def __init__(
        self,
        model_dir: str,
        load_jit: bool = False,
        load_trt: bool = False,
        fp16: bool = False,
        use_flow_cache: bool = False,
        token_seconds: float = TOKEN_SECONDS,
        poll_seconds: float = POLL_SECONDS,
    ) -> None:
        self.instruct = "-Instruct" in model_dir  # R1: a TypeError for a Path
        folder = Path(model_dir)
        if not folder.exists():
            raise RuntimeError(f"R1: CosyVoice2 would download {model_dir} from a model hub")
        if not (folder / "cosyvoice2.yaml").exists():
            raise ValueError(f"{folder / 'cosyvoice2.yaml'} not found!")
        qwen = folder / "CosyVoice-BlankEN"
        if not (qwen / "config.json").exists():
            raise OSError(f"R1: no Qwen config in {qwen}")
        if not any((qwen / name).exists() for name in QWEN_WEIGHTS):
            raise OSError(f"R1: Error no file named {', '.join(QWEN_WEIGHTS)} found in {qwen}")
        if not any(all((qwen / name).exists() for name in files) for files in QWEN_TOKENIZER):
            raise OSError(f"R1: no Qwen tokenizer files in {qwen}")
        for name in ("campplus.onnx", "speech_tokenizer_v2.onnx"):
            if not (folder / name).exists():
                raise RuntimeError(f"R1: onnxruntime cannot open {folder / name}")
        flow = "flow.cache.pt" if use_flow_cache else "flow.pt"
        for name in ("llm.pt", flow, "hift.pt"):
            if not (folder / name).exists():
                raise FileNotFoundError(f"R1: torch.load: no {folder / name}")
        if load_jit or load_trt:
            raise AssertionError("the fake has no JIT or TensorRT files: call with False")
        self.model_dir = model_dir
        self.fp16 = fp16
        self.frontend = FakeFrontEnd(folder / "spk2info.pt")
        self.sample_rate = SAMPLE_RATE
        self.model = FakeCosyVoice2Model(use_flow_cache, token_seconds, poll_seconds)
        self._entries_in_use: set[int] = set()
        self._entries_lock = threading.Lock()

    def list_available_spks(self) -> list[str]:
        return list(self.frontend.spk2info.keys())

    def add_zero_shot_spk(
        self, prompt_text: str, prompt_speech_16k: Any, zero_shot_spk_id: str
    ) -> bool:
        assert zero_shot_spk_id != "", "do not use empty zero_shot_spk_id"  # R6
        model_input = self.frontend.frontend_zero_shot(
            "", prompt_text, prompt_speech_16k, self.sample_rate, ""
        )
        del model_input["text"]
        del model_input["text_len"]
        self.frontend.spk2info[zero_shot_spk_id] = model_input
        return True

    @contextmanager
    def _holding(self, entry: dict[str, Any]) -> Iterator[None]:
        """R5: one inference at a time per speaker entry."""
        with self._entries_lock:
            if id(entry) in self._entries_in_use:
                raise SharedSpeakerEntry(
                    "two inferences through one spk2info entry: frontend.py frontend_zero_shot "
                    "writes each one's text into it"
                )
            self._entries_in_use.add(id(entry))
        try:
            yield
        finally:
            with self._entries_lock:
                self._entries_in_use.discard(id(entry))

    def inference_sft(
        self,
        tts_text: str,
        spk_id: str,
        stream: bool = False,
        speed: float = 1.0,
        text_frontend: bool = True,
    ) -> Iterator[dict[str, Any]]:
        for i in self.frontend.text_normalize(tts_text, split=True, text_frontend=text_frontend):
            model_input = self.frontend.frontend_sft(i, spk_id)
            yield from self.model.tts(**model_input, stream=stream, speed=speed)

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
        prompt_text = str(
            self.frontend.text_normalize(prompt_text, split=False, text_frontend=text_frontend)
        )
        for i in self.frontend.text_normalize(tts_text, split=True, text_frontend=text_frontend):
            model_input = self.frontend.frontend_zero_shot(
                i, prompt_text, prompt_speech_16k, self.sample_rate, zero_shot_spk_id
            )
            with self._holding(model_input):
                yield from self.model.tts(**model_input, stream=stream, speed=speed)


def upstream_modules() -> dict[str, ModuleType]:
    """`cosyvoice`, `cosyvoice.cli` and `cosyvoice.cli.cosyvoice` made of the fakes, for
    sys.modules, so that the engine's own loader imports them."""
    package, cli, cosyvoice = (
        ModuleType("cosyvoice"),
        ModuleType("cosyvoice.cli"),
        ModuleType("cosyvoice.cli.cosyvoice"),
    )
    package.__path__ = []
    cli.__path__ = []
    cosyvoice.CosyVoice2 = FakeCosyVoice2  # type: ignore[attr-defined]
    return {"cosyvoice": package, "cosyvoice.cli": cli, "cosyvoice.cli.cosyvoice": cosyvoice}


@contextmanager
def installed(**options: Any) -> Iterator[list[FakeCosyVoice2]]:
    """The fakes importable as CosyVoice while the block runs; yields the models built.
    `options` (token_seconds, poll_seconds) go to every FakeCosyVoice2."""
    built: list[FakeCosyVoice2] = []

    class Configured(FakeCosyVoice2):
        def __init__(self, model_dir: str, *args: Any, **kwargs: Any) -> None:
            super().__init__(model_dir, *args, **{**kwargs, **options})
            built.append(self)

    modules = upstream_modules()
    modules["cosyvoice.cli.cosyvoice"].CosyVoice2 = Configured  # type: ignore[attr-defined]
    saved = {name: sys.modules.get(name) for name in modules}
    sys.modules.update(modules)
    try:
        yield built
    finally:
        for name, module in saved.items():
            if module is None:
                sys.modules.pop(name, None)
            else:
                sys.modules[name] = module


def load(model_dir: Path) -> Any:
    """The factory named by TTS_WORKER_COSYVOICE_MODEL_FACTORY in the tests: the engine's own
    loader, with the fakes standing in for CosyVoice's source."""
    from tts_worker.engines.cosyvoice import load_cosyvoice2

    token_seconds = float(os.environ.get("FAKE_COSYVOICE_TOKEN_SECONDS", TOKEN_SECONDS))
    with installed(token_seconds=token_seconds):
        return load_cosyvoice2(model_dir)


# ---------------------------------------------------------------- WeTextProcessing's `tn`


@dataclass
class FakeZhNormalizer:
    """FAKE WeTextProcessing 1.0.3 `tn.chinese.normalizer.Normalizer`, as far as its grammar
    cache goes (tn/processor.py `Processor.build_fst`): with both FST files in `cache_dir` and
    `overwrite_cache` False it reads them; otherwise it builds the grammar and writes them
    there. `cache_dir` defaults to the package folder, which is read-only in the image: the
    fake has no such folder and raises as a read-only filesystem would."""

    cache_dir: str | None = None
    overwrite_cache: bool = False
    remove_interjections: bool = True
    remove_erhua: bool = True
    traditional_to_simple: bool = True
    remove_puncts: bool = False
    full_to_half: bool = True
    tag_oov: bool = False

    builds = 0

    def __post_init__(self) -> None:
        if self.cache_dir is None:
            raise OSError(30, "Read-only file system: the tn package folder")
        folder = Path(self.cache_dir)
        files = [folder / "zh_tn_tagger.fst", folder / "zh_tn_verbalizer.fst"]
        options = {"remove_erhua": self.remove_erhua, "full_to_half": self.full_to_half}
        if all(f.exists() for f in files) and not self.overwrite_cache:
            self.grammar = json.loads(files[0].read_text(encoding="utf-8"))
            return
        type(self).builds += 1
        folder.mkdir(parents=True, exist_ok=True)
        for f in files:
            f.write_text(json.dumps(options), encoding="utf-8")
        self.grammar = options


def tn_modules() -> dict[str, ModuleType]:
    """`tn`, `tn.chinese` and `tn.chinese.normalizer` made of FakeZhNormalizer."""
    package, chinese, normalizer = (
        ModuleType("tn"),
        ModuleType("tn.chinese"),
        ModuleType("tn.chinese.normalizer"),
    )
    package.__path__ = []
    chinese.__path__ = []
    normalizer.Normalizer = FakeZhNormalizer  # type: ignore[attr-defined]
    return {"tn": package, "tn.chinese": chinese, "tn.chinese.normalizer": normalizer}
