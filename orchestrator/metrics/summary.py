"""The fleet view of /metrics/summary: every replica's stored counts added up, with SLA
compliance and p50/p95/p99 interpolated from the histogram buckets."""

from __future__ import annotations

import bisect
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from orchestrator.errors import Fault
from orchestrator.metrics.catalogue import BARGEIN_DECISIONS, ERROR_KINDS, FIRST_AUDIO_ROUTES

if TYPE_CHECKING:
    from orchestrator.metrics.recorder import FleetMetrics


def bucket_quantile(q: float, bounds: Sequence[float], cumulative: Sequence[float]) -> float | None:
    """Quantile q from cumulative bucket counts (+Inf last), interpolated within a bucket
    as Prometheus's histogram_quantile does; None with no observations."""
    total = cumulative[-1]
    if total <= 0:
        return None
    rank = q * total
    index = bisect.bisect_left(cumulative, rank)
    if index >= len(bounds):
        return bounds[-1]  # in the +Inf bucket: the highest finite bound, as Prometheus does
    lower = bounds[index - 1] if index > 0 else 0.0
    below = cumulative[index - 1] if index > 0 else 0.0
    in_bucket = cumulative[index] - below
    if in_bucket <= 0:
        return bounds[index]
    return lower + (bounds[index] - lower) * (rank - below) / in_bucket


class _Summary:
    """Quantiles and totals from per-series cumulative sums (indexed by id(series))."""

    def __init__(self, metrics: FleetMetrics, totals: Mapping[int, list[float]]) -> None:
        self._metrics = metrics
        self._totals = totals

    def _values(self, name: str, labels: tuple[str, ...] = ()) -> list[float]:
        series = self._metrics.series(name)[labels]
        return self._totals.get(id(series), [0.0] * len(series.fields))

    def _count(self, name: str, labels: tuple[str, ...] = ()) -> float:
        return self._values(name, labels)[0]

    def _histogram(self, name: str, labels: Sequence[tuple[str, ...]] = ((),)) -> dict[str, Any]:
        spec = self._metrics.series(name)[labels[0]].spec
        merged = [0.0] * (len(spec.buckets) + 3)
        for label in labels:
            merged = [m + v for m, v in zip(merged, self._values(name, label), strict=True)]
        cumulative = merged[:-2]
        out: dict[str, Any] = {"count": int(merged[-1])}
        out["mean"] = merged[-2] / merged[-1] if merged[-1] else None
        for q in (0.5, 0.95, 0.99):
            value = bucket_quantile(q, spec.buckets, cumulative)
            out[f"p{round(q * 100)}"] = None if value is None else round(value, 6)
        return out

    def render(self, instances: list[str], active_sessions: int) -> dict[str, Any]:
        m = self._metrics
        routes = [(r,) for r in FIRST_AUDIO_ROUTES]
        first_audio = self._histogram("first_audio_seconds", routes)
        violations = sum(self._count("sla_violations", r) for r in routes)
        count = first_audio["count"]
        compliance = None if not count else round(100.0 * (1 - violations / count), 3)
        by_route = {}
        for labels in routes:
            row = self._histogram("first_audio_seconds", [labels])
            row["sla_violations"] = int(self._count("sla_violations", labels))
            by_route[labels[0]] = row
        requests = {labels: int(self._count("requests", labels)) for labels in m.series("requests")}
        by_route_requests: dict[str, int] = {}
        by_status: dict[str, int] = {}
        for (route, status), n in requests.items():
            by_route_requests[route] = by_route_requests.get(route, 0) + n
            by_status[status] = by_status.get(status, 0) + n
        errors = {
            kind: int(self._count("errors", (kind, klass))) for kind, klass in ERROR_KINDS.items()
        }
        server_errors = sum(n for k, n in errors.items() if ERROR_KINDS[k] is Fault.SERVER)
        return {
            "instances": instances,
            "sla_first_audio_seconds": m.sla_first_audio_seconds,
            "first_audio_seconds": {
                **first_audio,
                "sla_violations": int(violations),
                "sla_compliance_percent": compliance,
                "by_route": by_route,
            },
            "bargein": {
                "count": int(self._count("bargeins")),
                "false_interruptions": int(self._count("false_interruptions")),
                "onset_to_stop_seconds": self._histogram("bargein_onset_to_stop_seconds"),
                "pause_to_decision_seconds": {
                    decision: self._histogram("bargein_pause_to_decision_seconds", [(decision,)])
                    for decision in BARGEIN_DECISIONS
                },
            },
            "sessions": {
                "active": active_sessions,
                "started": int(self._count("sessions_started")),
                "ended": int(self._count("sessions_ended")),
                "duration_seconds": self._histogram("session_duration_seconds"),
                "utterances_per_session": self._histogram("session_utterances"),
            },
            "requests": {
                "total": sum(requests.values()),
                "by_route": by_route_requests,
                "by_status": by_status,
            },
            "errors": {
                "total": sum(errors.values()),
                "server": server_errors,
                "by_kind": {k: n for k, n in errors.items() if n},
            },
            "realtime_factor": self._histogram("realtime_factor"),
            "queue_seconds": self._histogram("queue_seconds"),
        }


def render_summary(
    metrics: FleetMetrics,
    totals: Mapping[int, list[float]],
    instances: list[str],
    active_sessions: int,
) -> dict[str, Any]:
    """The JSON of /metrics/summary from fleet-wide totals of each series."""
    return _Summary(metrics, totals).render(instances, active_sessions)
