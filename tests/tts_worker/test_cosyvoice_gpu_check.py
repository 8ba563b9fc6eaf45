"""scripts/gpu_check.py's CosyVoice part, which needs a GPU and weights to mean anything, run
here over the contract fake of upstream (tests/fakes/cosyvoice.py) so that the code the GPU
machine runs is the code tested: the engine's own loader, a zero-shot voice the check
registers itself, 1, 2 and 4 concurrent streams, and the cancel check."""

from __future__ import annotations

from pathlib import Path

import pytest

from scripts import gpu_check
from tests.fakes import cosyvoice as fake
from tests.fakes.clips import write_clip

TEXT = (
    "The check speaks this paragraph as the worker would, clause by clause. It has a few "
    "sentences, so that every stream runs for a while. And then it stops."
)


def test_cosyvoice_part_measures_each_concurrency_with_its_own_voice(tmp_path: Path) -> None:
    model_dir = fake.write_model_dir(tmp_path / "CosyVoice2-0.5B")
    reference = (write_clip(tmp_path / "ref.wav", seconds=3.0), "A reference sentence.")
    with fake.installed() as built:
        result = gpu_check.cosyvoice_check(model_dir, reference, TEXT)
    [model] = built
    assert model.model.use_flow_cache is True  # built by the engine's own loader
    assert gpu_check.ZERO_SHOT_VOICE in model.frontend.spk2info
    assert [c["streams"] for c in result["concurrency"]] == list(gpu_check.STREAM_COUNTS)
    for measured in result["concurrency"]:
        assert measured["errors"] == []
        assert 0 < measured["first_audio_ms"]["p50"] <= measured["first_audio_ms"]["max"]
        assert measured["rtf_mean"] > 0
    assert result["cancel"]["llm_threads_left"] == 0
    assert not any(result["cancel"]["state_left"].values())
    printed = gpu_check.report(
        {"gpus": [{"name": "stand-in"}], "piper": "skipped", "cosyvoice": result}
    )
    assert "RTF mean" in printed and "0 LLM threads left" in printed


def test_cosyvoice_part_is_skipped_with_the_reason(tmp_path: Path) -> None:
    """No weights named, or no CosyVoice source here: skipped, saying why (not an error)."""
    args = gpu_check.argparse.Namespace(
        cosyvoice_model_dir=None, reference_clip=None, reference_text=None
    )
    assert "skipped: pass --cosyvoice-model-dir" in str(
        gpu_check._cosyvoice_part(args, TEXT, tmp_path)
    )
    args.cosyvoice_model_dir = fake.write_model_dir(tmp_path / "m")
    args.reference_clip = write_clip(tmp_path / "ref.wav")
    args.reference_text = "A reference sentence."
    skipped = str(gpu_check._cosyvoice_part(args, TEXT, tmp_path))
    assert skipped.startswith("skipped:") and "only the CUDA image installs" in skipped


def test_reference_clip_and_text_go_together(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        gpu_check.main(["--reference-clip", "x.wav"], cards=lambda: [{"name": "stand-in"}])
    assert "go together" in capsys.readouterr().err
