"""The worker's own Prometheus metrics, served on its metrics port."""

from __future__ import annotations

import importlib
import logging
import math
from collections.abc import Callable, Iterator, Mapping
from typing import Any

from prometheus_client import REGISTRY, Counter, Gauge, Histogram, Info
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from fleet.process import package_version

log = logging.getLogger(__name__)

# Fine low buckets: first-frame and per-clause inference times live between 5 and 500 ms.
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.5, 0.75, 1.0, 2.0, 5.0)

STREAMS = Counter(
    "voiceorch_worker_streams_total",
    "Synthesize streams ended, by outcome.",
    ["engine", "outcome"],
)
ACTIVE_STREAMS = Gauge(
    "voiceorch_worker_active_streams", "Utterances holding a synthesis slot.", ["engine"]
)
QUEUED_STREAMS = Gauge(
    "voiceorch_worker_queue_depth", "Utterances waiting for a synthesis slot.", ["engine"]
)
QUEUE_SECONDS = Histogram(
    "voiceorch_worker_queue_seconds",
    "Time an utterance waited for a slot.",
    ["engine"],
    buckets=LATENCY_BUCKETS,
)
INFERENCE_SECONDS = Histogram(
    "voiceorch_worker_inference_seconds",
    "Engine compute time per utterance, summed over its sentences and clauses.",
    ["engine"],
    buckets=(0.01, 0.025, 0.05, 0.1, 0.2, 0.3, 0.5, 0.75, 1.0, 2.0, 5.0, 10.0, 30.0),
)
FIRST_FRAME_SECONDS = Histogram(
    "voiceorch_worker_first_frame_seconds",
    "First text received to first frame sent.",
    ["engine"],
    buckets=LATENCY_BUCKETS,
)
REALTIME_FACTOR = Histogram(
    "voiceorch_worker_realtime_factor",
    "Synthesis seconds per audio second, per utterance.",
    ["engine"],
    buckets=(0.01, 0.02, 0.05, 0.1, 0.2, 0.3, 0.5, 0.75, 1.0, 1.5, 2.0),
)
AUDIO_SECONDS = Counter(
    "voiceorch_worker_audio_seconds_total", "Seconds of audio produced.", ["engine"]
)
VOICE_LOAD_SECONDS = Gauge(
    "voiceorch_worker_voice_load_seconds",
    "Time the last load of a voice took.",
    ["engine", "voice"],
)
MAX_STREAMS = Gauge(
    "voiceorch_worker_max_streams",
    "Utterances the worker synthesizes at once (its capacity).",
    ["engine"],
)
CHUNK_SLACK_SECONDS = Histogram(
    "voiceorch_worker_chunk_slack_seconds",
    "For each chunk of a playing stream: its playback deadline (when the listener's audio "
    "would run dry) minus the moment the chunk's audio was ready; below 0, the listener's "
    "playback had run dry.",
    ["engine"],
    buckets=(-2.0, -1.0, -0.5, -0.25, -0.1, -0.05, -0.02, 0.0)
    + (0.02, 0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 3.0, 5.0, 10.0, 30.0),
)
CAPACITY = Gauge(
    "voiceorch_worker_capacity_ratio",
    "Audio seconds the worker synthesizes per second, measured over its recent engine calls "
    "(how many real-time streams it can carry); NaN until it has synthesized.",
    ["engine"],
)
BUILD = Info(
    "voiceorch_build",
    "The process's component (orchestrator, tts-worker) and version: dashboards and alerts "
    "find workers by it, whatever their scrape job is called.",
)
STREAM_OUTCOMES = ("completed", "cancelled", "client_cancelled", "invalid", "rejected", "error")


def init_engine(engine: str, max_streams: int, load_seconds: Mapping[str, float]) -> None:
    """Create every labelled series at zero, so a fresh worker's panels show flat lines
    instead of no data, and publish its capacity and the voices it loaded at start-up."""
    for outcome in STREAM_OUTCOMES:
        STREAMS.labels(engine, outcome)
    for metric in (
        ACTIVE_STREAMS,
        QUEUED_STREAMS,
        QUEUE_SECONDS,
        INFERENCE_SECONDS,
        FIRST_FRAME_SECONDS,
        REALTIME_FACTOR,
        AUDIO_SECONDS,
        CHUNK_SLACK_SECONDS,
    ):
        metric.labels(engine)
    MAX_STREAMS.labels(engine).set(max_streams)
    BUILD.info({"component": "tts-worker", "version": package_version()})
    note_voice_loads(engine, load_seconds)


def watch_capacity(engine: str, capacity: Callable[[], float | None]) -> None:
    """Export the scheduler's measured capacity, read at each scrape."""

    def read() -> float:
        value = capacity()
        return math.nan if value is None else value

    CAPACITY.labels(engine).set_function(read)


def note_voice_loads(engine: str, load_seconds: Mapping[str, float]) -> None:
    """Publish how long each loaded voice took to load (voices also load on first use)."""
    for voice, seconds in list(load_seconds.items()):
        VOICE_LOAD_SECONDS.labels(engine, voice).set(seconds)


class GpuMemoryCollector(Collector):
    """GPU memory and utilisation per CUDA device, read through NVML (the `nvidia-ml-py`
    package, in the `piper-gpu` and `cosyvoice` extras) when it is installed and a driver
    answers; no series at all on a CPU-only worker. Utilisation is left out for a device that
    does not report it (MIG slices, some virtual GPUs)."""

    def __init__(self, nvml: Any = None, load_nvml: Callable[[], Any] | None = None) -> None:
        """`nvml`: an NVML already initialised. `load_nvml`: how to import one, then
        initialised on the first scrape (default: the `pynvml` module of nvidia-ml-py)."""
        self._nvml = nvml
        self._load_nvml = load_nvml or (lambda: importlib.import_module("pynvml"))
        self._ready: bool | None = None if nvml is None else True

    def _init(self) -> bool:
        if self._ready is None:
            try:
                self._nvml = self._load_nvml()
                self._nvml.nvmlInit()
                self._ready = True
            except Exception:  # no package, no driver, no device: nothing to export
                self._ready = False
        return self._ready

    def collect(self) -> Iterator[Metric]:
        if not self._init():
            return
        used = GaugeMetricFamily(
            "voiceorch_worker_gpu_memory_used_bytes", "GPU memory in use.", labels=["device"]
        )
        total = GaugeMetricFamily(
            "voiceorch_worker_gpu_memory_total_bytes", "GPU memory installed.", labels=["device"]
        )
        utilization = GaugeMetricFamily(
            "voiceorch_worker_gpu_utilization_ratio",
            "Share of the last sample period the GPU was busy running kernels (0-1).",
            labels=["device"],
        )
        nvml = self._nvml
        try:
            for index in range(nvml.nvmlDeviceGetCount()):
                handle = nvml.nvmlDeviceGetHandleByIndex(index)
                info = nvml.nvmlDeviceGetMemoryInfo(handle)
                used.add_metric([str(index)], float(info.used))
                total.add_metric([str(index)], float(info.total))
                try:
                    busy = nvml.nvmlDeviceGetUtilizationRates(handle).gpu
                except Exception:  # not supported on this device: no utilisation series
                    continue
                utilization.add_metric([str(index)], float(busy) / 100.0)
        except Exception:  # a driver error mid-scrape must not fail the whole scrape
            log.warning("reading GPU memory through NVML failed", exc_info=True)
            return
        yield used
        yield total
        if utilization.samples:
            yield utilization


REGISTRY.register(GpuMemoryCollector())
