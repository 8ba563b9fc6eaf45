"""The CosyVoice engine against the fake model: voices, routing to CosyVoice's streaming
calls, error paths and the engine registry. No weights, torch or CosyVoice source here."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from tests.fakes.clips import write_clip
from tests.fakes.cosyvoice import CHUNK_SECONDS, SAMPLE_RATE, SPEAKERS, FakeCosyVoice2
from tts_worker.engines import ENGINES, create_engine
from tts_worker.engines.base import VoiceNotFoundError
from tts_worker.engines.cosyvoice import (
    REQUIRED_FILES,
    CosyVoiceEngine,
    CosyVoiceWeightsMissing,
    ReferenceClipError,
    ZeroShotVoice,
    folder_zero_shot_voices,
    load_cosyvoice2,
)
from tts_worker.settings import WorkerSettings

FACTORY = "tests.fakes.cosyvoice:load"


class Models:
    """A factory that keeps the fake it built, so a test can look at its calls."""

    def __init__(self, chunk_delay: float = 0.0) -> None:
        self.chunk_delay = chunk_delay
        self.built: list[FakeCosyVoice2] = []

    def __call__(self, model_dir: Path) -> FakeCosyVoice2:
        model = FakeCosyVoice2(model_dir, self.chunk_delay)
        self.built.append(model)
        return model

    @property
    def model(self) -> FakeCosyVoice2:
        [model] = self.built
        return model


@pytest.fixture
def model_dir(tmp_path: Path) -> Path:
    folder = tmp_path / "CosyVoice2-0.5B"
    folder.mkdir()
    return folder


def test_builtin_speakers_are_listed_loaded_at_24_khz(model_dir: Path) -> None:
    engine = CosyVoiceEngine(model_dir, Models())
    assert engine.name == "cosyvoice"
    assert [v.name for v in engine.voices()] == list(SPEAKERS)
    assert all(v.loaded and v.native_sample_rate == 24000 for v in engine.voices())
    assert engine.default_voice == SPEAKERS[0]


def test_builtin_speaker_streams_through_inference_sft(model_dir: Path) -> None:
    models = Models()
    engine = CosyVoiceEngine(model_dir, models)
    text = "A sentence long enough for several chunks of audio."
    chunks = list(engine.synthesize("english_male", text))
    [call] = models.model.calls
    assert (call.method, call.speaker, call.text, call.stream) == (
        "inference_sft",
        "english_male",
        text,
        True,
    )
    # One float32 mono array per chunk CosyVoice yielded, none merged.
    assert len(chunks) == FakeCosyVoice2.chunks_for(text) >= 3
    assert all(c.dtype == np.float32 and c.ndim == 1 for c in chunks)
    assert sum(len(c) for c in chunks) == len(chunks) * int(CHUNK_SECONDS * SAMPLE_RATE)


def test_zero_shot_voice_from_clip_and_transcript(model_dir: Path, tmp_path: Path) -> None:
    models = Models()
    clip = write_clip(tmp_path / "narrator.wav", seconds=2.5, rate=22050, channels=2)
    engine = CosyVoiceEngine(
        model_dir, models, {"narrator": ZeroShotVoice(clip, " Hello, I narrate.\n")}
    )
    # Registered as a named voice, its prompt computed on first use.
    assert engine.voice("narrator").loaded is False
    assert "narrator" in [v.name for v in engine.voices()]
    assert models.model.prompts == {}
    spec = engine.load_voice("narrator")
    assert spec.loaded and spec.native_sample_rate == 24000
    transcript, prompt = models.model.prompts["narrator"]
    assert transcript == "Hello, I narrate."
    # Mono, resampled to CosyVoice's 16 kHz prompt rate, shaped (1, samples).
    assert prompt.shape == (1, 2.5 * 16000)
    assert "narrator" in engine.load_seconds
    list(engine.synthesize("narrator", "Now the narrator speaks."))
    [call] = models.model.calls
    assert (call.method, call.speaker, call.stream) == ("inference_zero_shot", "narrator", True)


def test_zero_shot_voice_loads_on_first_use_and_again_after_unload(
    model_dir: Path, tmp_path: Path
) -> None:
    models = Models()
    clip = write_clip(tmp_path / "guide.wav")
    engine = CosyVoiceEngine(model_dir, models, {"guide": ZeroShotVoice(clip, "Hi.")})
    assert list(engine.synthesize("guide", "First words."))
    engine.unload_voice("guide")
    assert engine.voice("guide").loaded is False
    engine.unload_voice("english_male")  # built-in speakers live in the model: stay loaded
    assert engine.voice("english_male").loaded
    engine.register_zero_shot_voice("later", write_clip(tmp_path / "later.wav"), "Later.")
    assert engine.voice("later").loaded is False


def test_unknown_speaker_is_voice_not_found(model_dir: Path) -> None:
    engine = CosyVoiceEngine(model_dir, Models())
    with pytest.raises(VoiceNotFoundError, match="nobody"):
        engine.voice("nobody")
    with pytest.raises(VoiceNotFoundError, match="nobody"):
        next(engine.synthesize("nobody", "Hello."))
    with pytest.raises(VoiceNotFoundError):
        engine.load_voice("nobody")
    with pytest.raises(VoiceNotFoundError):
        engine.unload_voice("nobody")


def test_closing_the_stream_closes_cosyvoice_generator(model_dir: Path) -> None:
    """A cancelled utterance drops its chunk iterator: CosyVoice's generator is closed too,
    so it stops producing audio for nobody."""
    models = Models()
    engine = CosyVoiceEngine(model_dir, models)
    chunks = engine.synthesize("english_female", "x" * 240)
    next(chunks)
    chunks.close()
    [call] = models.model.calls
    assert call.chunks == 1 and call.closed_early


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
    model_dir: Path, tmp_path: Path, make: object, transcript: str, message: str
) -> None:
    clip = tmp_path / "bad.wav"
    make(clip)  # type: ignore[operator]
    engine = CosyVoiceEngine(model_dir, Models())
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


def test_zero_shot_voice_may_not_hide_a_builtin_speaker(model_dir: Path, tmp_path: Path) -> None:
    engine = CosyVoiceEngine(model_dir, Models())
    with pytest.raises(ValueError, match="built-in speaker"):
        engine.register_zero_shot_voice("english_male", write_clip(tmp_path / "a.wav"), "Hi.")


def test_missing_model_folder_is_named(tmp_path: Path) -> None:
    absent = tmp_path / "not-mounted"
    with pytest.raises(CosyVoiceWeightsMissing, match=f"{absent} does not exist"):
        CosyVoiceEngine(absent, Models())
    with pytest.raises(CosyVoiceWeightsMissing, match=f"{absent} does not exist"):
        load_cosyvoice2(absent)


def test_folder_without_weights_names_the_folder_and_the_missing_files(model_dir: Path) -> None:
    (model_dir / "cosyvoice2.yaml").write_text("{}", encoding="utf-8")
    with pytest.raises(CosyVoiceWeightsMissing) as caught:
        load_cosyvoice2(model_dir)
    message = str(caught.value)
    assert str(model_dir) in message
    assert "llm.pt" in message and "cosyvoice2.yaml" not in message


def test_real_loader_without_cosyvoice_installed_says_where_it_comes_from(
    model_dir: Path,
) -> None:
    """Weights present (empty stand-in files) but no CosyVoice source: the CPU install."""
    for name in REQUIRED_FILES:
        (model_dir / name).write_bytes(b"")
    with pytest.raises(RuntimeError, match="only the CUDA image installs"):
        load_cosyvoice2(model_dir)


def test_settings_without_model_folder_are_refused() -> None:
    with pytest.raises(ValueError, match="TTS_WORKER_COSYVOICE_MODEL_DIR"):
        create_engine(WorkerSettings(engine="cosyvoice"))


def test_registered_and_built_from_settings(model_dir: Path, tmp_path: Path) -> None:
    assert "cosyvoice" in ENGINES
    voices = tmp_path / "voices"
    voices.mkdir()
    write_clip(voices / "narrator.wav")
    (voices / "narrator.txt").write_text("I narrate.", encoding="utf-8")
    settings = WorkerSettings(
        engine="cosyvoice",
        cosyvoice_model_dir=model_dir,
        cosyvoice_voices_dir=voices,
        cosyvoice_model_factory=FACTORY,
        preload_voices=["narrator"],
    )
    engine = create_engine(settings)
    assert isinstance(engine, CosyVoiceEngine)
    # The Piper default name was not set: the first built-in speaker is the default.
    assert engine.default_voice == SPEAKERS[0]
    assert engine.voice("narrator").loaded  # preloaded


def test_default_voice_from_settings(model_dir: Path) -> None:
    base = {"engine": "cosyvoice", "cosyvoice_model_dir": model_dir}
    settings = WorkerSettings(**base, cosyvoice_model_factory=FACTORY, default_voice="english_male")
    assert create_engine(settings).default_voice == "english_male"
    wrong = WorkerSettings(**base, cosyvoice_model_factory=FACTORY, default_voice="nobody")
    with pytest.raises(ValueError, match="default voice 'nobody' not found"):
        create_engine(wrong)


def test_factory_path_must_name_a_callable(model_dir: Path) -> None:
    settings = WorkerSettings(
        engine="cosyvoice", cosyvoice_model_dir=model_dir, cosyvoice_model_factory="tests.fakes"
    )
    with pytest.raises(ValueError, match="module:callable"):
        create_engine(settings)
