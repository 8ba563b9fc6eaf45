"""The worker's own Prometheus metrics, served on its metrics port."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

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
    "Engine compute time per produced chunk.",
    ["engine"],
    buckets=LATENCY_BUCKETS,
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
