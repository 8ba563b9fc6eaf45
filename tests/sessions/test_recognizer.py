"""Speech recognition on real Whisper tiny.en (faster-whisper, weights from their package):
a listener's sentences in two espeak-ng voices come back as their words, silence and noise
as none, and a model that cannot load says why."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import numpy as np
import pytest

from orchestrator.sessions.recognizer import (
    Recognizer,
    RecognizerOptions,
    RecognizerUnavailable,
)
from tests.audio_checks import word_error_rate
from tests.sessions.voices import VOICES, speak

SENTENCES = (
    "Could you tell me when the central branch opens on Saturdays?",
    "I would like to book a table for two people tomorrow evening.",
)


@pytest.fixture(scope="module")
async def recognizer() -> AsyncIterator[Recognizer]:
    loaded = Recognizer.load(RecognizerOptions())
    yield loaded
    loaded.close()


@pytest.mark.parametrize("voice", VOICES)
@pytest.mark.parametrize("sentence", SENTENCES)
async def test_sentences_come_back_as_their_words(
    recognizer: Recognizer, voice: str, sentence: str
) -> None:
    clip = speak(sentence, voice, rate=16000)
    recognized = await recognizer.recognize(clip.pcm)
    assert word_error_rate(sentence, recognized.text) <= 0.3, recognized.text
    assert recognized.audio_seconds == pytest.approx(clip.seconds)
    assert recognized.compute_seconds > 0


async def test_silence_and_noise_have_no_words(recognizer: Recognizer) -> None:
    """Whisper says "you" to silence; its no-speech probability is what gives it away."""
    silence = np.zeros(16000, np.int16)
    noise = np.random.default_rng(7).normal(0, 300, 16000).astype(np.int16)
    assert (await recognizer.recognize(silence)).text == ""
    assert (await recognizer.recognize(noise)).text == ""


def test_a_folder_without_a_model_is_refused_by_name(tmp_path: Path) -> None:
    with pytest.raises(RecognizerUnavailable, match=r"no Whisper model \(model\.bin\) in"):
        Recognizer.load(RecognizerOptions(model_path=str(tmp_path)))


def test_a_corrupt_model_is_refused_with_the_engine_s_reason(tmp_path: Path) -> None:
    (tmp_path / "model.bin").write_bytes(b"not a model")
    with pytest.raises(RecognizerUnavailable, match="^RuntimeError: .*model binary version"):
        Recognizer.load(RecognizerOptions(model_path=str(tmp_path)))
