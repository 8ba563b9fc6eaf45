"""Piper's onnxruntime provider (TTS_WORKER_ONNX_PROVIDER) and the GPU series in the worker's
metrics. No GPU here: `cuda` and `auto` must fall back to the CPU, saying so in the log."""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime
import pytest
from prometheus_client import CollectorRegistry
from prometheus_client.exposition import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from tests.monitoring.fakes import FakeNvml
from tests.processes import ROOT
from tts_worker import metrics
from tts_worker.engines.piper import (
    CPU_PROVIDER,
    CUDA_PROVIDER,
    PiperEngine,
    packaged_voice_files,
    select_providers,
)
from tts_worker.settings import WorkerSettings

VOICE = "en_US-joe-medium"


def test_cpu_is_the_default_and_never_warns(caplog: pytest.LogCaptureFixture) -> None:
    assert WorkerSettings().onnx_provider == "cpu"
    with caplog.at_level(logging.WARNING):
        assert select_providers("cpu", [CUDA_PROVIDER, CPU_PROVIDER]) == [CPU_PROVIDER]
    assert not caplog.records


@pytest.mark.parametrize("wanted", ["cuda", "auto"])
def test_cuda_first_with_cpu_behind_it_when_available(wanted: Any) -> None:
    assert select_providers(wanted, [CUDA_PROVIDER, CPU_PROVIDER]) == [CUDA_PROVIDER, CPU_PROVIDER]


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


def test_cuda_requested_on_this_cpu_machine_still_speaks(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The real engine and voice: onnxruntime here has no CUDA provider."""
    assert CUDA_PROVIDER not in onnxruntime.get_available_providers()
    with caplog.at_level(logging.WARNING, logger="tts_worker.engines.piper"):
        engine = PiperEngine(packaged_voice_files(), VOICE, 1, False, "cuda")
        audio = np.concatenate(list(engine.synthesize(VOICE, "Hello.")))
    assert engine.providers == [CPU_PROVIDER]
    assert audio.size > 0
    assert any("Piper runs on the CPU" in r.getMessage() for r in caplog.records)


def test_cuda_listed_but_failing_to_start_is_reported(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """onnxruntime lists CUDA but cannot start it (no device, no cuDNN): the session runs on
    the CPU and the worker says so."""
    monkeypatch.setattr(
        onnxruntime, "get_available_providers", lambda: [CUDA_PROVIDER, CPU_PROVIDER]
    )
    engine = PiperEngine(packaged_voice_files(), VOICE, 1, False, "auto")
    assert engine.providers == [CUDA_PROVIDER, CPU_PROVIDER]
    with (
        caplog.at_level(logging.WARNING, logger="tts_worker.engines.piper"),
        pytest.warns(UserWarning, match="CUDAExecutionProvider"),
    ):
        engine.load_voice(VOICE)
    assert any("failed to start" in r.getMessage() for r in caplog.records)
    assert np.concatenate(list(engine.synthesize(VOICE, "Hi."))).size > 0


class NvmlWithUtilization(FakeNvml):
    class _Rates:
        gpu = 37
        memory = 12

    def nvmlDeviceGetUtilizationRates(self, handle: Any) -> Any:
        return self._Rates()


def _samples(nvml: Any) -> dict[str, float]:
    registry = CollectorRegistry()
    registry.register(metrics.GpuMemoryCollector(nvml=nvml))
    text = generate_latest(registry).decode()
    return {s.name: s.value for f in text_string_to_metric_families(text) for s in f.samples}


def test_gpu_utilisation_is_exported_beside_memory() -> None:
    found = _samples(NvmlWithUtilization())
    assert found["voiceorch_worker_gpu_utilization_ratio"] == pytest.approx(0.37)
    assert found["voiceorch_worker_gpu_memory_used_bytes"] == 3 * 2**30


def test_device_without_utilisation_still_reports_memory() -> None:
    """MIG slices answer NotSupported for utilisation: memory stays, utilisation is absent."""
    found = _samples(FakeNvml())
    assert "voiceorch_worker_gpu_utilization_ratio" not in found
    assert found["voiceorch_worker_gpu_memory_total_bytes"] == 16 * 2**30


def test_gpu_check_says_plainly_that_there_is_no_gpu(tmp_path: Path) -> None:
    """scripts/gpu_check.sh on a machine without nvidia-smi: a clear message, exit 2,
    nothing written."""
    result = subprocess.run(
        [str(ROOT / "scripts" / "gpu_check.sh"), "--out", str(tmp_path / "gpu.json")],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "PATH": "/usr/bin:/bin"},
    )
    assert shutil.which("nvidia-smi", path="/usr/bin:/bin") is None
    assert result.returncode == 2, result.stderr
    assert "no NVIDIA GPU found" in result.stderr and "nothing was measured" in result.stderr
    assert not (tmp_path / "gpu.json").exists()
