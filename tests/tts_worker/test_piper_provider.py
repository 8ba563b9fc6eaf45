"""Piper's onnxruntime provider (TTS_WORKER_ONNX_PROVIDER), with CUDA set up as Piper itself
does it (the GPU series in the worker's metrics: tests/monitoring/test_worker_metrics.py).
The tests hold on a GPU runner too: the CPU-only paths force the CPU (onnxruntime's provider
list, or a session that cannot start CUDA), they never assume that the machine lacks a GPU."""

from __future__ import annotations

import json
import logging
import shutil
import subprocess
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime
import pytest
from piper import PiperVoice

from scripts import gpu_check
from tts_worker.engines.base import TimedAudio
from tts_worker.engines.piper import (
    CPU_PROVIDER,
    CUDA_PROVIDER,
    CUDA_PROVIDER_OPTIONS,
    PiperEngine,
    packaged_voice_files,
    provider_names,
    select_providers,
)
from tts_worker.settings import WorkerSettings

VOICE = "en_US-joe-medium"


def spoken(engine: PiperEngine, text: str) -> np.ndarray:
    chunks = engine.synthesize(VOICE, text)
    return np.concatenate([c.audio if isinstance(c, TimedAudio) else c for c in chunks])


def test_cpu_is_the_default_and_never_warns(caplog: pytest.LogCaptureFixture) -> None:
    assert WorkerSettings().onnx_provider == "cpu"
    with caplog.at_level(logging.WARNING):
        assert select_providers("cpu", [CUDA_PROVIDER, CPU_PROVIDER]) == [CPU_PROVIDER]
    assert not caplog.records


@pytest.mark.parametrize("wanted", ["cuda", "auto"])
def test_cuda_first_with_cpu_behind_it_when_available(wanted: Any) -> None:
    providers = select_providers(wanted, [CUDA_PROVIDER, CPU_PROVIDER])
    assert providers == [(CUDA_PROVIDER, CUDA_PROVIDER_OPTIONS), CPU_PROVIDER]
    assert provider_names(providers) == [CUDA_PROVIDER, CPU_PROVIDER]


class _SessionArguments(Exception):
    """Raised by a stand-in InferenceSession to hand back what it was called with."""


def test_cuda_provider_options_are_pipers_own(monkeypatch: pytest.MonkeyPatch) -> None:
    """The installed piper-tts, asked for CUDA (PiperVoice.load(use_cuda=True)), passes the
    same CUDA provider and options as the worker; this fails if Piper changes them."""

    def capture(*args: Any, **kwargs: Any) -> None:
        raise _SessionArguments(kwargs["providers"])

    monkeypatch.setattr(onnxruntime, "InferenceSession", capture)
    model = packaged_voice_files()[VOICE].model
    with pytest.raises(_SessionArguments) as caught:
        PiperVoice.load(model, use_cuda=True)
    [pipers] = caught.value.args
    ours = select_providers("cuda", [CUDA_PROVIDER, CPU_PROVIDER])
    assert [tuple(p) if not isinstance(p, str) else p for p in pipers] == ours[:1]
    assert ours[1:] == [CPU_PROVIDER]  # ours keeps the CPU behind it for unsupported nodes


def test_a_real_session_takes_pipers_cuda_providers() -> None:
    """onnxruntime accepts the provider list as given (names with options), on a CPU build
    (CUDA unknown: it runs on the CPU) as on a GPU one (CUDA with Piper's options)."""
    model = str(packaged_voice_files()[VOICE].model)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # a CPU build warns that CUDA is not available
        session = onnxruntime.InferenceSession(
            model, providers=select_providers("cuda", [CUDA_PROVIDER, CPU_PROVIDER])
        )
    assert session.get_providers()[-1] == CPU_PROVIDER
    if CUDA_PROVIDER in session.get_providers():  # a GPU runner with onnxruntime-gpu
        options = session.get_provider_options()[CUDA_PROVIDER]
        assert options["cudnn_conv_algo_search"] == CUDA_PROVIDER_OPTIONS["cudnn_conv_algo_search"]


@pytest.mark.parametrize("wanted", ["cuda", "auto"])
def test_falls_back_to_cpu_with_a_warning(wanted: Any, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="tts_worker.engines.piper"):
        assert select_providers(wanted, [CPU_PROVIDER]) == [CPU_PROVIDER]
    [record] = caplog.records
    assert "CUDA execution provider unavailable" in record.getMessage()


def test_setting_reads_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TTS_WORKER_ONNX_PROVIDER", "auto")
    assert WorkerSettings().onnx_provider == "auto"
    monkeypatch.setenv("TTS_WORKER_ONNX_PROVIDER", "tpu")
    with pytest.raises(ValueError, match="onnx_provider"):
        WorkerSettings()


def test_cuda_requested_without_a_cuda_provider_still_speaks(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """The real engine and voice, on an onnxruntime that lists no CUDA provider (forced, so
    this holds on a GPU runner too): Piper runs on the CPU and says so."""
    monkeypatch.setattr(onnxruntime, "get_available_providers", lambda: [CPU_PROVIDER])
    with caplog.at_level(logging.WARNING, logger="tts_worker.engines.piper"):
        engine = PiperEngine(packaged_voice_files(), VOICE, 1, False, "cuda")
        audio = spoken(engine, "Hello.")
    assert engine.providers == [CPU_PROVIDER]
    assert engine.session_providers(VOICE) == [CPU_PROVIDER]
    assert audio.size > 0
    assert any("Piper runs on the CPU" in r.getMessage() for r in caplog.records)


class _SessionWithoutCuda(onnxruntime.InferenceSession):  # type: ignore[misc]
    """A real session that cannot start CUDA (no device, no cuDNN): onnxruntime then runs
    the model on the CPU and leaves CUDA out of get_providers(), which this mimics."""

    def __init__(self, model: Any, sess_options: Any = None, providers: Any = None) -> None:
        cpu_only = [p for p in providers or [] if provider_names([p]) != [CUDA_PROVIDER]]
        super().__init__(model, sess_options=sess_options, providers=cpu_only)


def test_cuda_listed_but_failing_to_start_is_reported(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """onnxruntime lists CUDA but cannot start it: the session runs on the CPU and the
    worker says so."""
    monkeypatch.setattr(
        onnxruntime, "get_available_providers", lambda: [CUDA_PROVIDER, CPU_PROVIDER]
    )
    engine = PiperEngine(packaged_voice_files(), VOICE, 1, False, "auto")
    assert provider_names(engine.providers) == [CUDA_PROVIDER, CPU_PROVIDER]
    monkeypatch.setattr(onnxruntime, "InferenceSession", _SessionWithoutCuda)
    with caplog.at_level(logging.WARNING, logger="tts_worker.engines.piper"):
        engine.load_voice(VOICE)
    assert any("failed to start" in r.getMessage() for r in caplog.records)
    assert spoken(engine, "Hi.").size > 0


# -- scripts/gpu_check.py: its parts that run without a GPU --------------------------------------


def test_gpu_check_without_a_gpu_says_so_and_measures_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """No card answers (forced, so this holds on a GPU runner): exit 2, a plain message,
    nothing written."""
    out = tmp_path / "gpu.json"
    assert gpu_check.main(["--out", str(out)], cards=lambda: []) == gpu_check.NO_GPU_EXIT
    error = capsys.readouterr().err
    assert "no NVIDIA GPU found" in error and "nothing was measured" in error
    assert not out.exists()


def test_the_one_command_without_a_gpu_exits_with_its_message(tmp_path: Path) -> None:
    """scripts/gpu_check.sh itself, on a PATH that holds no nvidia-smi (forced, so this holds
    on a GPU runner too): exit 2 with the message, nothing measured or written."""
    tools = tmp_path / "bin"
    tools.mkdir()
    for tool in ("bash", "dirname"):  # what the script runs before Python
        found = shutil.which(tool)
        assert found is not None
        (tools / tool).symlink_to(found)
    out = tmp_path / "gpu.json"
    done = subprocess.run(
        [str(gpu_check.ROOT / "scripts" / "gpu_check.sh"), "--out", str(out)],
        env={"PATH": str(tools)},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == gpu_check.NO_GPU_EXIT, done.stderr
    assert "gpu_check: no NVIDIA GPU found" in done.stderr
    assert "nothing was measured" in done.stderr
    assert not out.exists()


def test_gpu_cards_reads_nvidia_smi(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The cards as a stand-in nvidia-smi lists them; none when it fails or is absent."""
    smi = tmp_path / "nvidia-smi"
    smi.write_text("#!/bin/sh\necho 'NVIDIA H200, 143771 MiB, 570.86.15'\n", encoding="utf-8")
    smi.chmod(0o755)
    monkeypatch.setenv("PATH", str(tmp_path))
    assert gpu_check.gpu_cards() == [
        {"name": "NVIDIA H200", "memory": "143771 MiB", "driver": "570.86.15"}
    ]
    smi.write_text("#!/bin/sh\nexit 9\n", encoding="utf-8")
    assert gpu_check.gpu_cards() == []
    monkeypatch.setenv("PATH", str(tmp_path / "nowhere"))
    assert gpu_check.gpu_cards() == []


def test_gpu_check_texts_are_each_a_new_length() -> None:
    corpus = json.loads(gpu_check.CORPUS.read_text(encoding="utf-8"))
    texts = gpu_check.varied_texts(corpus["paragraph"])
    lengths = [len(t) for t in texts]
    assert lengths == sorted(set(lengths)) and len(texts) == len(gpu_check.TEXT_LENGTHS)
    assert all(len(t) <= n + 1 for t, n in zip(texts, gpu_check.TEXT_LENGTHS, strict=True))
    assert all(t.endswith(".") and corpus["paragraph"].startswith(t[:-1]) for t in texts)
    with pytest.raises(ValueError, match="too short"):
        gpu_check.varied_texts("Two words.", (20, 50))


def test_gpu_check_piper_part_on_the_cpu() -> None:
    """The real engine on the CPU provider: one row per text, new shape and repeats timed,
    and the table the check prints."""
    texts = ["Short one.", "A somewhat longer sentence than that."]
    piper = gpu_check.piper_first_audio(texts, runs=1, providers=("cpu",))
    cpu = piper["providers"]["cpu"]
    assert cpu["session_providers"] == [CPU_PROVIDER] and cpu["ran_on_gpu"] is False
    assert [row["chars"] for row in cpu["first_audio"]] == [len(t) for t in texts]
    assert all(
        row["new_shape_ms"] > 0 and row["repeat_ms"]["p50"] > 0 for row in cpu["first_audio"]
    )
    printed = gpu_check.piper_table(piper)
    assert "cpu new ms" in printed and str(len(texts[1])) in printed


def test_gpu_check_makes_its_reference_clip_with_piper(tmp_path: Path) -> None:
    """The zero-shot voice's default reference: a real sentence, as the engine accepts it."""
    from tts_worker.engines.cosyvoice import read_reference_clip

    clip, transcript = gpu_check.piper_reference_clip(tmp_path)
    assert transcript == gpu_check.REFERENCE_TEXT
    assert 3 < len(read_reference_clip(clip)) / 16000 < 30
