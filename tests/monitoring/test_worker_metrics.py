"""The worker's own metrics: every series exists from start-up, and GPU memory is exported
through NVML when a driver answers and not at all when it does not (NVML is faked, present or
absent, so these hold on a machine with a GPU as on one without)."""

from __future__ import annotations

from typing import Any

from prometheus_client import REGISTRY, CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from tests.monitoring.fakes import FakeNvml, NvmlOnAMigSlice, NvmlWithoutDriver
from tts_worker import metrics


def families(registry: CollectorRegistry) -> dict[str, Any]:
    text = generate_latest(registry).decode()
    return {f.name: f for f in text_string_to_metric_families(text)}


def test_init_engine_creates_every_series_at_zero() -> None:
    metrics.init_engine("engine-under-test", 6, {"voice-a": 0.25})
    found = families(REGISTRY)

    def series(name: str, **labels: str) -> list[float]:
        return [
            s.value
            for s in found[name].samples
            if all(s.labels.get(k) == v for k, v in labels.items())
        ]

    outcomes = {
        s.labels["outcome"]
        for s in found["voiceorch_worker_streams"].samples
        if s.labels["engine"] == "engine-under-test"
    }
    assert outcomes == set(metrics.STREAM_OUTCOMES)
    assert series("voiceorch_worker_max_streams", engine="engine-under-test") == [6]
    # What dashboards and alerts find workers by, whatever their scrape job is called.
    assert series("voiceorch_build_info", component="tts-worker") == [1]
    assert series("voiceorch_worker_active_streams", engine="engine-under-test") == [0]
    assert series("voiceorch_worker_queue_depth", engine="engine-under-test") == [0]
    assert series("voiceorch_worker_voice_load_seconds", voice="voice-a") == [0.25]
    for histogram in ("inference_seconds", "queue_seconds", "first_frame_seconds"):
        counts = [
            s.value
            for s in found[f"voiceorch_worker_{histogram}"].samples
            if s.name.endswith("_count") and s.labels["engine"] == "engine-under-test"
        ]
        assert counts == [0], histogram


def test_gpu_memory_is_exported_per_device_through_nvml() -> None:
    registry = CollectorRegistry()
    registry.register(metrics.GpuMemoryCollector(nvml=FakeNvml()))
    found = families(registry)
    [used] = found["voiceorch_worker_gpu_memory_used_bytes"].samples
    [total] = found["voiceorch_worker_gpu_memory_total_bytes"].samples
    assert used.labels == {"device": "0"} and used.value == 3 * 2**30
    assert total.value == 16 * 2**30


def test_gpu_utilisation_is_exported_as_a_ratio_per_device() -> None:
    registry = CollectorRegistry()
    registry.register(metrics.GpuMemoryCollector(nvml=FakeNvml()))
    [busy] = families(registry)["voiceorch_worker_gpu_utilization_ratio"].samples
    assert busy.labels == {"device": "0"} and busy.value == 0.37


def test_a_device_without_utilisation_keeps_its_memory_series() -> None:
    registry = CollectorRegistry()
    registry.register(metrics.GpuMemoryCollector(nvml=NvmlOnAMigSlice()))
    found = families(registry)
    assert "voiceorch_worker_gpu_utilization_ratio" not in found
    assert found["voiceorch_worker_gpu_memory_used_bytes"].samples


def test_no_nvml_package_means_no_gpu_series() -> None:
    """Without nvidia-ml-py (a CPU-only install), the collector exports nothing."""

    def absent() -> None:
        raise ModuleNotFoundError("No module named 'pynvml'")

    registry = CollectorRegistry()
    registry.register(metrics.GpuMemoryCollector(load_nvml=absent))
    assert not any(name.startswith("voiceorch_worker_gpu") for name in families(registry))


def test_no_driver_means_no_gpu_series() -> None:
    """nvidia-ml-py but no driver: NVML fails to start, the collector exports nothing."""
    registry = CollectorRegistry()
    registry.register(metrics.GpuMemoryCollector(load_nvml=NvmlWithoutDriver))
    assert not any(name.startswith("voiceorch_worker_gpu") for name in families(registry))


def test_nvml_is_started_on_the_first_scrape() -> None:
    """The default path: NVML loaded and initialised lazily, then read per device."""
    registry = CollectorRegistry()
    registry.register(metrics.GpuMemoryCollector(load_nvml=FakeNvml))
    [used] = families(registry)["voiceorch_worker_gpu_memory_used_bytes"].samples
    assert used.value == 3 * 2**30


def test_a_driver_error_mid_scrape_does_not_fail_the_scrape() -> None:
    class Broken(FakeNvml):
        def nvmlDeviceGetMemoryInfo(self, handle: Any) -> Any:
            raise RuntimeError("NVML_ERROR_GPU_IS_LOST")

    registry = CollectorRegistry()
    registry.register(metrics.GpuMemoryCollector(nvml=Broken()))
    assert families(registry) == {}
