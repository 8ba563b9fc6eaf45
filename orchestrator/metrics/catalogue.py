"""What the orchestrator measures: every series, its labels and buckets, defined up front.

Each series exists at zero from start-up with all its label values, so dashboards show a
flat line, not a gap. The error kinds come from `orchestrator.errors`, never a hand list.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from prometheus_client.utils import floatToGoString

from orchestrator.errors import CATALOGUE, Fault

PREFIX = "voiceorch_"
COUNTERS_KEY = "metrics:"
"""Store key prefix of the per-replica counter hashes: `metrics:<instance_id>`."""
REPLICA_KIND = "metrics-replica"
"""Store record kind holding each live replica's gauges (active sessions), with a TTL."""

FIRST_AUDIO_ROUTES: tuple[str, ...] = ("synthesize", "openai_speech", "session")
"""Where first audio is measured: the two HTTP synthesis routes and LiveKit sessions."""

REQUEST_ROUTES: dict[str, str] = {
    "/synthesize": "synthesize",
    "/v1/audio/speech": "openai_speech",
    "/v1/voices": "voices",
    "/v1/audio/voices": "voices",
    "/v1/models": "models",
    "/v1/audio/models": "models",
    "/sessions": "session_create",
    "/sessions/{session_id}": "session",
    "/sessions/{session_id}/say": "session_say",
    "/sessions/{session_id}/utterances/{utterance_id}/text": "session_text",
    "/sessions/{session_id}/events": "session_events",
}
"""The `route` label of each public route template; unmatched paths count as "other"."""
STATUS_CLASSES: tuple[str, ...] = ("2xx", "3xx", "4xx", "5xx")

ERROR_KINDS: dict[str, Fault] = {code.code: code.fault for code in CATALOGUE.values()}
"""Every `kind` label value of voiceorch_errors_total, with its class, derived from the error
catalogue: client errors are the caller's fault (4xx); server errors count toward the
error-rate alert."""

LATENCY_BUCKETS = (
    0.005,
    0.01,
    0.025,
    0.05,
    0.075,
    0.1,
    0.15,
    0.2,
    0.25,
    0.3,
    0.4,
    0.5,
    0.75,
    1.0,
    1.5,
    2.5,
    5.0,
    10.0,
)
"""Time to first audio and queue time: fine below the 0.5 s SLA, which is a bucket bound."""
BARGEIN_BUCKETS = (
    0.001,
    0.0025,
    0.005,
    0.01,
    0.02,
    0.03,
    0.05,
    0.075,
    0.1,
    0.15,
    0.2,
    0.3,
    0.5,
    0.75,
    1.0,
    2.0,
)
"""Barge-in latencies, from a few ms (a pause) to the decision window (a second or so)."""
BARGEIN_DECISIONS: tuple[str, ...] = ("resume", "cancel")
"""How a paused utterance ends: resumed (a false interruption) or cancelled."""
BARGEIN_REASONS: tuple[tuple[str, str], ...] = (
    ("resume", "backchannel"),
    ("resume", "noise"),
    ("resume", "silence"),
    ("cancel", "words"),
    ("cancel", "duration"),
)
"""Each decision with the rule that made it (sessions/bargein.py, `Reason`)."""
TRANSCRIPT_KINDS: tuple[str, ...] = ("partial", "final")
RTF_BUCKETS = (0.01, 0.02, 0.05, 0.1, 0.2, 0.3, 0.5, 0.75, 1.0, 1.5, 2.0)
SESSION_SECONDS_BUCKETS = (1.0, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0, 3600.0, 7200.0)
UTTERANCE_COUNT_BUCKETS = (0.0, 1.0, 2.0, 3.0, 5.0, 10.0, 20.0, 50.0, 100.0, 200.0, 500.0)


@dataclass(frozen=True)
class Spec:
    """One metric: its name, help, type and every label value it will ever have."""

    name: str  # without the prefix; counters without `_total`
    help: str
    kind: Literal["counter", "histogram"]
    labels: tuple[str, ...] = ()
    label_values: tuple[tuple[str, ...], ...] = ((),)
    buckets: tuple[float, ...] = ()


SPECS: tuple[Spec, ...] = (
    Spec(
        "requests",
        "Public API requests, by route and HTTP status class.",
        "counter",
        ("route", "status"),
        tuple(
            (r, s)
            for r in dict.fromkeys([*REQUEST_ROUTES.values(), "other"])
            for s in STATUS_CLASSES
        ),
    ),
    Spec(
        "errors",
        "Errors by kind; class=client (the caller's fault) or server.",
        "counter",
        ("kind", "class"),
        tuple(ERROR_KINDS.items()),
    ),
    Spec(
        "first_audio_seconds",
        "Request received to first audio byte sent (HTTP), or text to first frame (session).",
        "histogram",
        ("route",),
        tuple((r,) for r in FIRST_AUDIO_ROUTES),
        LATENCY_BUCKETS,
    ),
    Spec(
        "sla_violations",
        "Utterances whose first audio came later than the configured SLA.",
        "counter",
        ("route",),
        tuple((r,) for r in FIRST_AUDIO_ROUTES),
    ),
    Spec(
        "realtime_factor",
        "Synthesis seconds per audio second, per completed utterance (worker-reported).",
        "histogram",
        buckets=RTF_BUCKETS,
    ),
    Spec(
        "queue_seconds",
        "Time an utterance waited for a synthesis slot on its worker.",
        "histogram",
        buckets=LATENCY_BUCKETS,
    ),
    Spec(
        "bargeins",
        "Barge-ins: the listener spoke over the agent and its audio was paused.",
        "counter",
    ),
    Spec(
        "false_interruptions",
        "Barge-ins that turned out short and were resumed instead of cancelled.",
        "counter",
    ),
    Spec(
        "bargein_onset_to_stop_seconds",
        "Arrival of the listener's first voiced sample (the VAD's onset, placed in the "
        "received audio) to the agent's audio stopping at its LiveKit source.",
        "histogram",
        buckets=BARGEIN_BUCKETS,
    ),
    Spec(
        "bargein_pause_to_decision_seconds",
        "Agent paused by a barge-in to the decision to resume or cancel the utterance.",
        "histogram",
        ("decision",),
        tuple((d,) for d in BARGEIN_DECISIONS),
        BARGEIN_BUCKETS,
    ),
    Spec(
        "bargein_decisions",
        "Barge-in decisions by the rule that made them: resume (backchannel, noise, silence) "
        "or cancel (words, duration).",
        "counter",
        ("decision", "reason"),
        BARGEIN_REASONS,
    ),
    Spec(
        "user_transcripts",
        "Transcripts of listeners' speech published, partial or final.",
        "counter",
        ("kind",),
        tuple((k,) for k in TRANSCRIPT_KINDS),
    ),
    Spec(
        "user_transcript_partials_dropped",
        "Partial transcripts skipped because the listener's previous recognition was still "
        "running (recognition not keeping up); finals are never skipped.",
        "counter",
    ),
    Spec(
        "user_transcript_latency_seconds",
        "Arrival of the last voiced sample of a listener's turn to its final transcript.",
        "histogram",
        buckets=LATENCY_BUCKETS,
    ),
    Spec(
        "recognition_seconds",
        "Time one speech recognition took in the recognizer's pool (not its wait there).",
        "histogram",
        buckets=LATENCY_BUCKETS,
    ),
    Spec("sessions_started", "LiveKit sessions started.", "counter"),
    Spec("sessions_ended", "LiveKit sessions ended.", "counter"),
    Spec(
        "session_takeovers",
        "Sessions this replica took over from a replica that stopped heartbeating.",
        "counter",
    ),
    Spec(
        "session_duration_seconds",
        "Duration of ended sessions.",
        "histogram",
        buckets=SESSION_SECONDS_BUCKETS,
    ),
    Spec(
        "session_utterances",
        "Utterances (messages spoken) per ended session.",
        "histogram",
        buckets=UTTERANCE_COUNT_BUCKETS,
    ),
)


def le_text(bound: float) -> str:
    """A bucket bound as Prometheus writes it (Go float formatting: 1.0, 0.005, +Inf)."""
    text: str = floatToGoString(bound)  # type: ignore[no-untyped-call]  # untyped upstream
    return text
