"""Prometheus exposition of the recorder's series, plus the gauges read live at scrape time
(active sessions, store health, the worker fleet as the registry cache sees it) and the
process's own name for itself (`voiceorch_build_info{component="orchestrator"}`), which
dashboards and alerts select on instead of a scrape job's name."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from typing import TYPE_CHECKING, Protocol

from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    InfoMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector

from fleet.process import package_version
from fleet.records import WorkerRecord
from orchestrator.metrics.catalogue import PREFIX, SPECS, Spec, le_text

if TYPE_CHECKING:
    from orchestrator.metrics.recorder import FleetMetrics, Series


def _family(spec: Spec, series: Iterable[Series]) -> Metric:
    full = PREFIX + spec.name
    if spec.kind == "counter":
        counter = CounterMetricFamily(full, spec.help, labels=list(spec.labels))
        for s in series:
            counter.add_metric(list(s.labels), s.totals()[0])
        return counter
    histogram = HistogramMetricFamily(full, spec.help, labels=list(spec.labels))
    les = [le_text(b) for b in spec.buckets] + ["+Inf"]
    for s in series:
        totals = s.totals()
        histogram.add_metric(
            list(s.labels), list(zip(les, totals[:-2], strict=True)), sum_value=totals[-2]
        )
    return histogram


def _registry_gauges(workers: Sequence[WorkerRecord]) -> Iterator[Metric]:
    """The worker fleet as this replica's registry cache sees it (every replica sees the
    same fleet: aggregate these with max or avg across replicas, never sum)."""
    states = GaugeMetricFamily(
        PREFIX + "fleet_workers",
        "Registered workers: active (streams running or queued), idle, or draining.",
        labels=["state"],
    )
    counts = {"active": 0, "idle": 0, "draining": 0}
    utilisation = GaugeMetricFamily(
        PREFIX + "fleet_worker_utilisation_ratio",
        "Active streams over the worker's concurrent-stream capacity.",
        labels=["worker"],
    )
    queue = GaugeMetricFamily(
        PREFIX + "fleet_worker_queue_depth",
        "Utterances waiting for a synthesis slot on the worker.",
        labels=["worker"],
    )
    active_total = queued_total = capacity = 0
    for w in workers:
        state = (
            "draining"
            if w.draining
            else "active"
            if w.active_streams or w.queued_streams
            else "idle"
        )
        counts[state] += 1
        utilisation.add_metric([w.worker_id], w.active_streams / max(w.max_streams, 1))
        queue.add_metric([w.worker_id], float(w.queued_streams))
        active_total += w.active_streams
        queued_total += w.queued_streams
        capacity += w.max_streams
    for state, n in counts.items():
        states.add_metric([state], float(n))
    fleet_utilisation = GaugeMetricFamily(
        PREFIX + "fleet_utilisation_ratio",
        "Active streams over the capacity of all registered workers (0 with no worker).",
    )
    fleet_utilisation.add_metric([], active_total / capacity if capacity else 0.0)
    fleet_queue = GaugeMetricFamily(
        PREFIX + "fleet_queue_depth", "Utterances waiting for a slot, all workers together."
    )
    fleet_queue.add_metric([], float(queued_total))
    fleet_active = GaugeMetricFamily(
        PREFIX + "fleet_active_streams", "Utterances being synthesized, all workers together."
    )
    fleet_active.add_metric([], float(active_total))
    fleet_capacity = GaugeMetricFamily(
        PREFIX + "fleet_capacity_streams", "Concurrent-stream capacity of all workers."
    )
    fleet_capacity.add_metric([], float(capacity))
    yield from (
        states,
        utilisation,
        queue,
        fleet_utilisation,
        fleet_queue,
        fleet_active,
        fleet_capacity,
    )


COMPONENT = "orchestrator"
BUILD_INFO = "voiceorch_build"
BUILD_INFO_HELP = "The process's component (orchestrator, tts-worker) and version."


class FleetView(Protocol):
    """What /metrics shows of the worker fleet: the registry cache (WorkerRegistry)."""

    @property
    def workers(self) -> list[WorkerRecord]: ...

    @property
    def store_error(self) -> str | None: ...


class FleetCollector(Collector):
    """This replica's store-backed series (once loaded) and its live gauges."""

    def __init__(self, metrics: FleetMetrics) -> None:
        self._metrics = metrics

    def collect(self) -> Iterator[Metric]:
        info = InfoMetricFamily(BUILD_INFO, BUILD_INFO_HELP)
        info.add_metric([], {"component": COMPONENT, "version": package_version()})
        yield info
        metrics = self._metrics
        if metrics.loaded:
            for spec in SPECS:
                yield _family(spec, metrics.series(spec.name).values())
        sessions = GaugeMetricFamily(
            PREFIX + "active_sessions", "LiveKit sessions running on this replica."
        )
        sessions.add_metric([], float(metrics.active_sessions))
        yield sessions
        store_up = GaugeMetricFamily(
            PREFIX + "store_up",
            "1 when the store (Redis, or the in-process store) answers this replica.",
            labels=["store"],
        )
        fleet = metrics.fleet
        fleet_ok = fleet is None or fleet.store_error is None
        up = 1.0 if metrics.store_ok and fleet_ok else 0.0
        store_up.add_metric([metrics.store.kind], up)
        yield store_up
        yield from _registry_gauges(fleet.workers if fleet is not None else [])
