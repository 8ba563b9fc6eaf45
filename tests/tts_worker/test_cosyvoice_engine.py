"""The CosyVoice engine against the contract fake of upstream at the pinned commit
(tests/fakes/cosyvoice.py, rules R1-R8): the model folder it needs, the streaming mode it
builds, voices, cancel, concurrent streams of one voice, and the text normalizer the image
prebuilds. No weights, torch or CosyVoice source here."""

from __future__ import annotations

import importlib.machinery
import logging
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest

from tests.fakes import cosyvoice as fake
from tests.fakes.clips import dominant_hz, write_clip
from tts_worker.engines import ENGINES, create_engine
from tts_worker.engines.base import VoiceNotFoundError
from tts_worker.engines.cosyvoice import (
    OPTIONAL_FILES,
    QWEN_ALTERNATIVES,
    QWEN_DIR,
    REQUIRED_FILES,
    UPSTREAM_COMMIT,
    ZH_NORMALIZER_FILES,
    CosyVoiceEngine,
    CosyVoiceWeightsMissing,
    ReferenceClipError,
    ZeroShotVoice,
    folder_zero_shot_voices,
    load_cosyvoice2,
    prebuild_text_normalizer,
    use_prebuilt_text_normalizer,
)
from tts_worker.settings import WorkerSettings

FACTORY = "tests.fakes.cosyvoice:load"
SENTENCE = "CosyVoice streams this sentence chunk by chunk."
LONG_SENTENCE = "This sentence keeps the model busy " + "for a good while longer " * 12 + "."


@pytest.fixture
def model_dir(tmp_path: Path) -> Path:
    """The stock CosyVoice2-0.5B layout: no spk2info.pt, so no built-in speakers."""
    return fake.write_model_dir(tmp_path / "CosyVoice2-0.5B")


@pytest.fixture
def builtin_dir(tmp_path: Path) -> Path:
    """A folder with a spk2info.pt of two built-in speakers (not the stock download)."""
    speakers = {"english_female": 200.0, "english_male": 240.0}
    return fake.write_model_dir(tmp_path / "with-speakers", spk2info=speakers)


@pytest.fixture
def upstream() -> Iterator[list[fake.FakeCosyVoice2]]:
    """The fake importable as CosyVoice's source, so the engine's own loader runs."""
    with fake.installed() as built:
        yield built


@pytest.fixture
def slow_upstream() -> Iterator[list[fake.FakeCosyVoice2]]:
    """As `upstream`, with an LLM slow enough that a long sentence takes seconds."""
    with fake.installed(token_seconds=0.01) as built:
        yield built


def narrator(tmp_path: Path, seconds: float = 2.5) -> ZeroShotVoice:
    clip = write_clip(tmp_path / f"narrator-{seconds}.wav", seconds=seconds, rate=22050)
    return ZeroShotVoice(clip, " Hello, I narrate.\n")


def pcm16(chunks: list[np.ndarray]) -> bytes:
    return (np.concatenate(chunks) * 32767).astype("<i2").tobytes()


def wait_until_ended(threads: list[threading.Thread], seconds: float = 5.0) -> None:
    deadline = time.monotonic() + seconds
    for thread in threads:
        thread.join(max(0.0, deadline - time.monotonic()))
    assert not [t for t in threads if t.is_alive()], "upstream's LLM thread is still running"


# -- the pinned commit and its model folder (R1, R2, R3) ---------------------------------------


def test_the_fake_mirrors_the_commit_the_engine_pins() -> None:
    """The fake's rules were read at one commit: pinning another means reading them again."""
    assert UPSTREAM_COMMIT == fake.PINNED_COMMIT


@pytest.mark.parametrize("name", REQUIRED_FILES)
def test_each_required_file_is_one_upstream_needs(model_dir: Path, name: str) -> None:
    """R1: without any file the engine requires, upstream's loader fails too (and the engine
    says so first, naming the file)."""
    (model_dir / name).unlink()
    with pytest.raises(CosyVoiceWeightsMissing, match=name.replace(".", r"\.")):
        load_cosyvoice2(model_dir)
    with pytest.raises((OSError, ValueError, RuntimeError)):
        fake.FakeCosyVoice2(str(model_dir), use_flow_cache=True)


def test_optional_files_are_not_required(tmp_path: Path, upstream: list[object]) -> None:
    """R1, R2: spk2info.pt (absent from the stock download), flow.pt (non-streaming only) and
    the Qwen files transformers reads only when present may be missing; every other stock
    file is one the engine requires, alone or as one of a Qwen file set."""
    if_present = tuple(f"{QWEN_DIR}/{name}" for name in fake.QWEN_READ_IF_PRESENT)
    folder = fake.write_model_dir(tmp_path / "m", without=OPTIONAL_FILES + if_present)
    model = load_cosyvoice2(folder)
    assert model.list_available_spks() == []
    in_qwen_sets = {
        f"{QWEN_DIR}/{name}"
        for alternatives in QWEN_ALTERNATIVES.values()
        for files in alternatives
        for name in files
    }
    classified = set(REQUIRED_FILES) | set(OPTIONAL_FILES) | in_qwen_sets | set(if_present)
    assert set(fake.STOCK_FILES) <= classified


@pytest.mark.parametrize("what", sorted(QWEN_ALTERNATIVES))
def test_the_qwen_folder_holds_what_transformers_reads(
    tmp_path: Path, upstream: list[object], what: str
) -> None:
    """R1: the Qwen LLM's weights and its tokenizer in CosyVoice-BlankEN/. With none of a
    part's file sets, the engine refuses the folder naming the part, and upstream fails too;
    any one set satisfies both."""
    alternatives = QWEN_ALTERNATIVES[what]
    every = tuple(f"{QWEN_DIR}/{name}" for files in alternatives for name in files)
    for n, files in enumerate(alternatives):
        folder = fake.write_model_dir(tmp_path / f"set-{n}", without=every)
        with pytest.raises(CosyVoiceWeightsMissing, match=what):
            load_cosyvoice2(folder)
        with pytest.raises(OSError, match="R1"):
            fake.FakeCosyVoice2(str(folder), use_flow_cache=True)
        for name in files:
            (folder / QWEN_DIR / name).write_bytes(b"")
        assert load_cosyvoice2(folder).list_available_spks() == []


def test_loader_builds_the_streaming_mode(
    model_dir: Path, upstream: list[fake.FakeCosyVoice2]
) -> None:
    """R3: the worker streams, so the model is built with use_flow_cache=True (flow.cache.pt)."""
    load_cosyvoice2(model_dir)
    [model] = upstream
    assert model.model.use_flow_cache is True
    assert model.model_dir == str(model_dir)


def test_a_model_built_without_flow_cache_cannot_stream(model_dir: Path, tmp_path: Path) -> None:
    """R3: what upstream does with the default use_flow_cache=False and stream=True: an
    AssertionError on the first chunk (and its LLM thread left running)."""
    model = fake.FakeCosyVoice2(str(model_dir))
    engine = CosyVoiceEngine(model_dir, lambda _: model, {"narrator": narrator(tmp_path)})
    with pytest.raises(AssertionError, match="use_flow_cache=True"):
        next(engine.synthesize("narrator", SENTENCE))
    wait_until_ended(model.model.llm_threads)


def test_upstream_ignores_speed_when_streaming(model_dir: Path) -> None:
    """R3, why the engine declares no speed control (the worker then refuses a speed): in
    streaming upstream never hands `speed` to token2wav; only its non-streaming mode does."""

    def samples(model: fake.FakeCosyVoice2, stream: bool, speed: float) -> int:
        outputs = model.inference_zero_shot(
            SENTENCE, "", "", zero_shot_spk_id="voice", stream=stream, speed=speed
        )
        return sum(c["tts_speech"].shape[1] for c in outputs)

    streaming = fake.FakeCosyVoice2(str(model_dir), use_flow_cache=True)
    whole = fake.FakeCosyVoice2(str(model_dir), use_flow_cache=False)
    for model in (streaming, whole):
        model.add_zero_shot_spk("Hi.", np.ones((1, 32000), dtype=np.float32), "voice")
    assert samples(streaming, True, 2.0) == samples(streaming, True, 1.0)
    assert samples(whole, False, 2.0) < samples(whole, False, 1.0)
    assert CosyVoiceEngine.supports_speed is False


def test_stock_weights_without_voices_are_refused(model_dir: Path, upstream: list[object]) -> None:
    """R2: no built-in speakers in the stock layout: a worker needs a zero-shot voice."""
    with pytest.raises(ValueError, match="no built-in speakers .* no zero-shot voice"):
        CosyVoiceEngine(model_dir)


def test_missing_model_folder_is_named(tmp_path: Path) -> None:
    """R1: upstream would download a folder that does not exist; the engine refuses it."""
    absent = tmp_path / "not-mounted"
    with pytest.raises(CosyVoiceWeightsMissing, match=f"{absent} does not exist"):
        CosyVoiceEngine(absent)
    with pytest.raises(CosyVoiceWeightsMissing, match=f"{absent} does not exist"):
        load_cosyvoice2(absent)


def test_real_loader_without_cosyvoice_installed_says_where_it_comes_from(
    model_dir: Path,
) -> None:
    """Weights present (stand-in files) but no CosyVoice source: the CPU install."""
    assert "cosyvoice" not in sys.modules
    with pytest.raises(RuntimeError, match="only the CUDA image installs"):
        load_cosyvoice2(model_dir)


# -- voices (R2, R5, R6, R7, R8) ----------------------------------------------------------------


def test_zero_shot_voice_from_clip_and_transcript(
    model_dir: Path, tmp_path: Path, upstream: list[fake.FakeCosyVoice2]
) -> None:
    """R6: the normal path. The clip becomes upstream's speaker entry on first use, mono at
    16 kHz shaped (1, samples); the voice speaks through inference_zero_shot, streaming."""
    engine = CosyVoiceEngine(model_dir, zero_shot={"narrator": narrator(tmp_path)})
    [model] = upstream
    assert engine.name == "cosyvoice" and engine.default_voice == "narrator"
    assert engine.voice("narrator").loaded is False
    assert "narrator" not in model.frontend.spk2info
    spec = engine.load_voice("narrator")
    assert spec.loaded and spec.native_sample_rate == 24000
    entry = model.frontend.spk2info["narrator"]
    assert float(entry["llm_embedding"][0, 0]) == fake.prompt_hz(int(2.5 * 16000))
    assert "narrator" in engine.load_seconds
    chunks = list(engine.synthesize("narrator", SENTENCE))
    assert model.model.texts_spoken == [SENTENCE]
    assert all(c.dtype == np.float32 and c.ndim == 1 for c in chunks)
    tokens = round(len(SENTENCE) * fake.TOKENS_PER_CHAR)
    assert sum(len(c) for c in chunks) == tokens * fake.TOKEN_SAMPLES
    assert len(chunks) == tokens // fake.TOKEN_HOP_LEN + 1  # one per hop, then the rest
    hz = dominant_hz(pcm16(chunks), 24000)
    assert hz == pytest.approx(fake.prompt_hz(int(2.5 * 16000)), abs=1.0)


def test_each_sentence_is_its_own_upstream_call(
    model_dir: Path, tmp_path: Path, upstream: list[fake.FakeCosyVoice2]
) -> None:
    """R8: upstream cuts the text into sentences; the engine yields every chunk of each."""
    engine = CosyVoiceEngine(model_dir, zero_shot={"narrator": narrator(tmp_path)})
    chunks = list(engine.synthesize("narrator", "First one here. And a second one."))
    [model] = upstream
    assert model.model.texts_spoken == ["First one here.", "And a second one."]
    total = sum(round(len(t) * fake.TOKENS_PER_CHAR) for t in model.model.texts_spoken)
    assert sum(len(c) for c in chunks) == total * fake.TOKEN_SAMPLES


def test_builtin_speakers_only_when_spk2info_is_present(
    builtin_dir: Path, upstream: list[fake.FakeCosyVoice2]
) -> None:
    """R2, R7: a folder with spk2info.pt lists its speakers, loaded, spoken through
    inference_sft in the speaker's own voice."""
    engine = CosyVoiceEngine(builtin_dir)
    assert [v.name for v in engine.voices()] == ["english_female", "english_male"]
    assert all(v.loaded and v.native_sample_rate == 24000 for v in engine.voices())
    assert engine.default_voice == "english_female"
    chunks = list(engine.synthesize("english_male", SENTENCE))
    assert dominant_hz(pcm16(chunks), 24000) == pytest.approx(240.0, abs=1.0)
    engine.unload_voice("english_male")  # built-in speakers live in the model: stay loaded
    assert engine.voice("english_male").loaded


def test_zero_shot_voice_may_not_hide_a_builtin_speaker(
    builtin_dir: Path, tmp_path: Path, upstream: list[object]
) -> None:
    engine = CosyVoiceEngine(builtin_dir)
    with pytest.raises(ValueError, match="built-in speaker"):
        engine.register_zero_shot_voice("english_male", write_clip(tmp_path / "a.wav"), "Hi.")


def test_unload_removes_the_speaker_entry_and_the_next_use_registers_again(
    model_dir: Path, tmp_path: Path, upstream: list[fake.FakeCosyVoice2]
) -> None:
    engine = CosyVoiceEngine(model_dir, zero_shot={"guide": narrator(tmp_path)})
    [model] = upstream
    assert list(engine.synthesize("guide", "First words."))
    engine.unload_voice("guide")
    assert engine.voice("guide").loaded is False
    assert "guide" not in model.frontend.spk2info
    assert list(engine.synthesize("guide", "Again."))
    assert engine.voice("guide").loaded and "guide" in model.frontend.spk2info
    engine.register_zero_shot_voice("later", write_clip(tmp_path / "later.wav"), "Later.")
    assert engine.voice("later").loaded is False


def test_unknown_voice_is_voice_not_found(
    model_dir: Path, tmp_path: Path, upstream: list[object]
) -> None:
    engine = CosyVoiceEngine(model_dir, zero_shot={"narrator": narrator(tmp_path)})
    with pytest.raises(VoiceNotFoundError, match="nobody"):
        engine.voice("nobody")
    with pytest.raises(VoiceNotFoundError, match="nobody"):
        next(engine.synthesize("nobody", "Hello."))
    with pytest.raises(VoiceNotFoundError):
        engine.load_voice("nobody")
    with pytest.raises(VoiceNotFoundError):
        engine.unload_voice("nobody")


def test_two_streams_of_one_voice_each_speak_their_own_text(
    model_dir: Path, tmp_path: Path, upstream: list[fake.FakeCosyVoice2]
) -> None:
    """R5: upstream writes each utterance's text into the voice's shared entry; two streams
    of one voice, interleaved chunk by chunk, must not go through that one entry."""
    engine = CosyVoiceEngine(model_dir, zero_shot={"narrator": narrator(tmp_path)})
    [model] = upstream
    first, second = "A first utterance of some length.", "The second one, a bit longer than it."
    a, b = engine.synthesize("narrator", first), engine.synthesize("narrator", second)
    got: dict[str, list[np.ndarray]] = {first: [next(a)], second: [next(b)]}
    got[first] += list(a)
    got[second] += list(b)
    assert sorted(model.model.texts_spoken) == sorted([first, second])
    for text, chunks in got.items():
        tokens = round(len(text) * fake.TOKENS_PER_CHAR)
        assert sum(len(c) for c in chunks) == tokens * fake.TOKEN_SAMPLES, text
    assert engine.upstream_state()["spk2info_private"] == 0


def test_upstream_itself_refuses_two_streams_through_one_entry(
    model_dir: Path, tmp_path: Path
) -> None:
    """The fake's R5 bites: what the engine avoids, done straight on upstream's API."""
    model = fake.FakeCosyVoice2(str(model_dir), use_flow_cache=True)
    model.add_zero_shot_spk("Hi.", np.ones((1, 32000), dtype=np.float32), "voice")
    a = model.inference_zero_shot(SENTENCE, "", "", zero_shot_spk_id="voice", stream=True)
    b = model.inference_zero_shot(SENTENCE, "", "", zero_shot_spk_id="voice", stream=True)
    next(a)
    with pytest.raises(fake.SharedSpeakerEntry):
        next(b)
    a.close()
    wait_until_ended(model.model.llm_threads)


# -- cancel (R4) -------------------------------------------------------------------------------


def test_upstream_alone_keeps_generating_after_close(model_dir: Path) -> None:
    """The fake's R4 bites: closing upstream's generator stops neither its LLM thread nor
    frees its state (what the engine's cancel must do itself)."""
    model = fake.FakeCosyVoice2(str(model_dir), use_flow_cache=True, token_seconds=0.01)
    model.add_zero_shot_spk("Hi.", np.ones((1, 32000), dtype=np.float32), "voice")
    outputs = model.inference_zero_shot(
        LONG_SENTENCE, "", "", zero_shot_spk_id="voice", stream=True
    )
    next(outputs)
    outputs.close()
    [thread] = model.model.llm_threads
    assert thread.is_alive()  # hundreds of tokens still to go
    wait_until_ended([thread], seconds=30)
    [uuid] = model.model.tokens_generated
    assert model.model.tokens_generated[uuid] == round(len(LONG_SENTENCE) * fake.TOKENS_PER_CHAR)
    assert model.model.leftover_state() == dict.fromkeys(fake.UPSTREAM_STATE, 1)


def test_closing_the_stream_ends_upstreams_thread_and_drops_its_state(
    model_dir: Path, tmp_path: Path, slow_upstream: list[fake.FakeCosyVoice2]
) -> None:
    """Cancel, barge-in or client gone: the engine's generator is closed mid-sentence; the
    LLM thread ends within a token and upstream's per-utterance dicts are empty again."""
    engine = CosyVoiceEngine(model_dir, zero_shot={"narrator": narrator(tmp_path)})
    [model] = slow_upstream
    chunks = engine.synthesize("narrator", LONG_SENTENCE)
    next(chunks)
    [thread] = model.model.llm_threads
    assert thread.is_alive() and engine.live_llm_threads() == [thread]
    chunks.close()
    wait_until_ended([thread], seconds=2)
    assert engine.live_llm_threads() == []
    assert model.model.leftover_state() == dict.fromkeys(fake.UPSTREAM_STATE, 0)
    assert engine.upstream_state() == {
        **dict.fromkeys(fake.UPSTREAM_STATE, 0),
        "spk2info_private": 0,
    }
    [uuid] = model.model.tokens_generated
    budget = round(len(LONG_SENTENCE) * fake.TOKENS_PER_CHAR)
    assert model.model.tokens_generated[uuid] < budget / 2


def test_a_finished_utterance_leaves_nothing_behind(
    model_dir: Path, tmp_path: Path, upstream: list[fake.FakeCosyVoice2]
) -> None:
    engine = CosyVoiceEngine(model_dir, zero_shot={"narrator": narrator(tmp_path)})
    [model] = upstream
    for _ in range(3):
        assert list(engine.synthesize("narrator", "One sentence. Then another."))
    wait_until_ended(model.model.llm_threads)
    assert len(model.model.llm_threads) == 6
    assert engine.live_llm_threads() == []  # none kept once ended: nothing accumulates
    assert engine.upstream_state() == {
        **dict.fromkeys(fake.UPSTREAM_STATE, 0),
        "spk2info_private": 0,
    }
    assert set(model.frontend.spk2info) == {"narrator"}


def test_a_generation_of_someone_else_runs_untouched(
    model_dir: Path, tmp_path: Path, upstream: list[fake.FakeCosyVoice2]
) -> None:
    """The engine's LLM-thread wrapper passes calls it did not start straight to upstream."""
    engine = CosyVoiceEngine(model_dir, zero_shot={"narrator": narrator(tmp_path)})
    engine.load_voice("narrator")
    [model] = upstream
    direct = list(
        model.inference_zero_shot(SENTENCE, "", "", zero_shot_spk_id="narrator", stream=True)
    )
    tokens = round(len(SENTENCE) * fake.TOKENS_PER_CHAR)
    assert sum(c["tts_speech"].shape[1] for c in direct) == tokens * fake.TOKEN_SAMPLES


# -- reference clips ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("make", "transcript", "message"),
    [
        (lambda p: p.write_bytes(b"not a wav at all") and p, "Hi.", "not a readable WAV"),
        (lambda p: write_clip(p, width=1), "Hi.", "8-bit samples"),
        (lambda p: write_clip(p, seconds=0.4), "Hi.", "lasts 0.40 s"),
        (lambda p: write_clip(p, seconds=31), "Hi.", "lasts 31.00 s"),
        (lambda p: write_clip(p, silent=True), "Hi.", "is silent"),
        (lambda p: write_clip(p), "  \n", "empty transcript"),
        (lambda p: p, "Hi.", "not a readable WAV"),  # no file at all
    ],
)
def test_bad_reference_clip_is_refused_naming_the_file(
    model_dir: Path,
    tmp_path: Path,
    upstream: list[object],
    make: object,
    transcript: str,
    message: str,
) -> None:
    clip = tmp_path / "bad.wav"
    make(clip)  # type: ignore[operator]
    engine = CosyVoiceEngine(model_dir, zero_shot={"narrator": narrator(tmp_path)})
    with pytest.raises(ReferenceClipError, match=message) as caught:
        engine.register_zero_shot_voice("bad", clip, transcript)
    assert str(clip) in str(caught.value)
    with pytest.raises(VoiceNotFoundError):
        engine.voice("bad")


def test_voices_folder_needs_a_transcript_per_clip(tmp_path: Path) -> None:
    write_clip(tmp_path / "ana.wav")
    (tmp_path / "ana.txt").write_text("Ana speaks.", encoding="utf-8")
    assert folder_zero_shot_voices(tmp_path) == {
        "ana": ZeroShotVoice(tmp_path / "ana.wav", "Ana speaks.")
    }
    write_clip(tmp_path / "ben.wav")
    with pytest.raises(ReferenceClipError, match=r"ben\.wav has no transcript ben\.txt"):
        folder_zero_shot_voices(tmp_path)


# -- settings and registry ---------------------------------------------------------------------


def test_settings_without_model_folder_are_refused() -> None:
    with pytest.raises(ValueError, match="TTS_WORKER_COSYVOICE_MODEL_DIR"):
        create_engine(WorkerSettings(engine="cosyvoice"))


def test_registered_and_built_from_settings(model_dir: Path, tmp_path: Path) -> None:
    assert "cosyvoice" in ENGINES
    voices = tmp_path / "voices"
    voices.mkdir()
    for name in ("guide", "narrator"):
        write_clip(voices / f"{name}.wav")
        (voices / f"{name}.txt").write_text("I narrate.", encoding="utf-8")
    settings = WorkerSettings(
        engine="cosyvoice",
        cosyvoice_model_dir=model_dir,
        cosyvoice_voices_dir=voices,
        cosyvoice_model_factory=FACTORY,
        preload_voices=["narrator"],
    )
    engine = create_engine(settings)
    assert isinstance(engine, CosyVoiceEngine)
    # The Piper default name was not set: the first voice is the default, loaded.
    assert engine.default_voice == "guide" and engine.voice("guide").loaded
    assert engine.voice("narrator").loaded  # preloaded
    assert "cosyvoice" not in sys.modules  # the fake was importable only while loading


def test_default_voice_from_settings(model_dir: Path, tmp_path: Path) -> None:
    voices = tmp_path / "voices"
    voices.mkdir()
    for name in ("guide", "narrator"):
        write_clip(voices / f"{name}.wav")
        (voices / f"{name}.txt").write_text("I narrate.", encoding="utf-8")
    base = {
        "engine": "cosyvoice",
        "cosyvoice_model_dir": model_dir,
        "cosyvoice_voices_dir": voices,
        "cosyvoice_model_factory": FACTORY,
    }
    assert create_engine(WorkerSettings(**base, default_voice="narrator")).default_voice == (
        "narrator"
    )
    with pytest.raises(ValueError, match="default voice 'nobody' not found"):
        create_engine(WorkerSettings(**base, default_voice="nobody"))


def test_factory_path_must_name_a_callable(model_dir: Path) -> None:
    settings = WorkerSettings(
        engine="cosyvoice", cosyvoice_model_dir=model_dir, cosyvoice_model_factory="tests.fakes"
    )
    with pytest.raises(ValueError, match="module:callable"):
        create_engine(settings)


# -- WeTextProcessing's Chinese grammar, prebuilt in the image ---------------------------------


@pytest.fixture
def tn(monkeypatch: pytest.MonkeyPatch) -> type[fake.FakeZhNormalizer]:
    for name, module in fake.tn_modules().items():
        monkeypatch.setitem(sys.modules, name, module)
    monkeypatch.setattr(fake.FakeZhNormalizer, "builds", 0)
    return fake.FakeZhNormalizer


def upstream_frontend_normalizer() -> fake.FakeZhNormalizer:
    """What frontend.py `CosyVoiceFrontEnd.__init__` constructs when ttsfrd is absent."""
    from tn.chinese.normalizer import Normalizer  # type: ignore[import-not-found]

    normalizer: fake.FakeZhNormalizer = Normalizer(
        remove_erhua=False, full_to_half=False, overwrite_cache=True
    )
    return normalizer


def test_upstream_rebuilds_the_grammar_into_its_package_unless_prebuilt(
    tn: type[fake.FakeZhNormalizer], tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Without the prebuilt files upstream is left as it is: it builds the grammar anew and
    writes it into the `tn` package, which fails on the image's read-only root."""
    with caplog.at_level(logging.WARNING, logger="tts_worker.engines.cosyvoice"):
        assert use_prebuilt_text_normalizer(tmp_path / "empty") is False
    assert "no prebuilt Chinese text normalizer" in caplog.text
    with pytest.raises(OSError, match="Read-only file system"):
        upstream_frontend_normalizer()


def test_prebuilt_grammar_is_loaded_with_upstreams_options(
    tn: type[fake.FakeZhNormalizer], tmp_path: Path
) -> None:
    """The image builds the grammar once with the frontend's own options; upstream's frontend
    then reads it instead of building and writing it at every start."""
    cache = tmp_path / "cosyvoice-tn"
    prebuild_text_normalizer(cache)
    assert sorted(p.name for p in cache.iterdir()) == sorted(ZH_NORMALIZER_FILES)
    assert tn.builds == 1
    assert use_prebuilt_text_normalizer(cache) is True
    assert use_prebuilt_text_normalizer(cache) is True  # applied once, not wrapped twice
    normalizer = upstream_frontend_normalizer()
    assert tn.builds == 1
    assert normalizer.grammar == {"remove_erhua": False, "full_to_half": False}
    assert normalizer.cache_dir == str(cache) and normalizer.overwrite_cache is False


def test_ttsfrd_when_installed_is_left_to_upstream(
    tn: type[fake.FakeZhNormalizer], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Upstream prefers ttsfrd when it imports; the grammar is then not touched."""
    ttsfrd = ModuleType("ttsfrd")
    ttsfrd.__spec__ = importlib.machinery.ModuleSpec("ttsfrd", None)
    monkeypatch.setitem(sys.modules, "ttsfrd", ttsfrd)
    cache = tmp_path / "cosyvoice-tn"
    prebuild_text_normalizer(cache)
    assert use_prebuilt_text_normalizer(cache) is False
    assert sys.modules["tn.chinese.normalizer"].Normalizer is fake.FakeZhNormalizer
