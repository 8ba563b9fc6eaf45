"""Fleet metrics: counters and histograms kept in the store, exported at /metrics.

Recording is synchronous and cheap: a method adds to in-memory numbers and returns. A
background task flushes what changed to the store every `flush_seconds`, as atomic hash
increments under this replica's own key (`metrics:<instance_id>`); a flush that fails keeps
its deltas for the next try, so nothing is lost while Redis is down.

Two readers, two views:
- `/metrics` (Prometheus) exports *this replica's* series: the totals found under its key at
  start-up plus everything recorded since. Counters so survive a restart (with Redis), and
  N replicas scraped together never double count: each exports only its own share.
- `/metrics/summary` reads *every* replica's hash from the store: the fleet view.

Histograms are stored as cumulative `_bucket{le=...}` counters plus `_sum` and `_count`
fields, the shape Prometheus exports. Every series is defined up front with all its label
values, so each exists at zero from start-up and dashboards show a flat line, not a gap.

Record from the event loop thread only (the orchestrator is asyncio end to end).
"""

from __future__ import annotations

import asyncio
import bisect
import contextlib
import json
import logging
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from prometheus_client import CollectorRegistry, ProcessCollector, generate_latest
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector
from prometheus_client.utils import floatToGoString
from starlette.requests import ClientDisconnect
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from fleet.records import WorkerRecord
from fleet.store import Store, StoreUnavailable
from orchestrator.registry import WorkerRegistry

log = logging.getLogger(__name__)

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
    "/sessions": "session_create",
    "/sessions/{session_id}": "session",
    "/sessions/{session_id}/say": "session_say",
    "/sessions/{session_id}/utterances/{utterance_id}/text": "session_text",
    "/sessions/{session_id}/events": "session_events",
}
"""The `route` label of each public route template; unmatched paths count as "other"."""
STATUS_CLASSES: tuple[str, ...] = ("2xx", "3xx", "4xx", "5xx")

ERROR_KINDS: dict[str, Literal["client", "server"]] = {
    # The API's error codes (the `code` of its JSON error body).
    "invalid_json": "client",
    "invalid_value": "client",
    "unsupported_media_type": "client",
    "body_too_large": "client",
    "text_too_long": "client",
    "voice_not_found": "client",
    "not_found": "client",
    "method_not_allowed": "client",
    "no_audio": "client",
    "http_error": "client",
    "session_not_found": "client",
    "session_ended": "client",
    "utterance_not_found": "client",
    "utterance_closed": "client",
    "unauthorized": "client",
    "forbidden": "client",
    "rate_limited": "client",
    "no_worker": "server",
    "worker_unavailable": "server",
    "synthesis_failed": "server",
    "draining": "server",
    "at_capacity": "server",
    "livekit_unreachable": "server",
    "owner_unreachable": "server",
    "owner_moved": "server",
    # Failures without an error body.
    "internal_error": "server",  # an exception before the response started (HTTP 500)
    "stream_interrupted": "server",  # audio had started, then the response was cut off
    "session_error": "server",  # a LiveKit session failed
    "other": "server",  # any kind not listed here (kept out of the label set)
}
"""Every `kind` label value of voiceorch_errors_total, with its class: client errors are the
caller's fault (4xx); server errors count toward the error-rate alert."""

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
"""Barge-in latencies: one 20 ms frame is the target for decision -> last frame."""
RTF_BUCKETS = (0.01, 0.02, 0.05, 0.1, 0.2, 0.3, 0.5, 0.75, 1.0, 1.5, 2.0)
SESSION_SECONDS_BUCKETS = (1.0, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0, 3600.0, 7200.0)
UTTERANCE_COUNT_BUCKETS = (0.0, 1.0, 2.0, 3.0, 5.0, 10.0, 20.0, 50.0, 100.0, 200.0, 500.0)


# -- series definitions -----------------------------------------------------------------


@dataclass(frozen=True)
class _Spec:
    name: str  # without the prefix; counters without `_total`
    help: str
    kind: Literal["counter", "histogram"]
    labels: tuple[str, ...] = ()
    label_values: tuple[tuple[str, ...], ...] = ((),)
    buckets: tuple[float, ...] = ()


_SPECS: tuple[_Spec, ...] = (
    _Spec(
        "requests",
        "Public API requests, by route and HTTP status class.",
        "counter",
        ("route", "status"),
        tuple((r, s) for r in (*REQUEST_ROUTES.values(), "other") for s in STATUS_CLASSES),
    ),
    _Spec(
        "errors",
        "Errors by kind; class=client (the caller's fault) or server.",
        "counter",
        ("kind", "class"),
        tuple(ERROR_KINDS.items()),
    ),
    _Spec(
        "first_audio_seconds",
        "Request received to first audio byte sent (HTTP), or text to first frame (session).",
        "histogram",
        ("route",),
        tuple((r,) for r in FIRST_AUDIO_ROUTES),
        LATENCY_BUCKETS,
    ),
    _Spec(
        "sla_violations",
        "Utterances whose first audio came later than the configured SLA.",
        "counter",
        ("route",),
        tuple((r,) for r in FIRST_AUDIO_ROUTES),
    ),
    _Spec(
        "realtime_factor",
        "Synthesis seconds per audio second, per completed utterance (worker-reported).",
        "histogram",
        buckets=RTF_BUCKETS,
    ),
    _Spec(
        "queue_seconds",
        "Time an utterance waited for a synthesis slot on its worker.",
        "histogram",
        buckets=LATENCY_BUCKETS,
    ),
    _Spec(
        "bargeins",
        "Barge-ins: the listener spoke over the agent and its audio was paused.",
        "counter",
    ),
    _Spec(
        "false_interruptions",
        "Barge-ins that turned out short and were resumed instead of cancelled.",
        "counter",
    ),
    _Spec(
        "bargein_onset_to_silence_seconds",
        "Listener speech onset to the agent's audio stopping.",
        "histogram",
        buckets=BARGEIN_BUCKETS,
    ),
    _Spec(
        "bargein_decision_to_last_frame_seconds",
        "Decision to cancel an interrupted utterance to its last frame leaving.",
        "histogram",
        buckets=BARGEIN_BUCKETS,
    ),
    _Spec("sessions_started", "LiveKit sessions started.", "counter"),
    _Spec("sessions_ended", "LiveKit sessions ended.", "counter"),
    _Spec(
        "session_duration_seconds",
        "Duration of ended sessions.",
        "histogram",
        buckets=SESSION_SECONDS_BUCKETS,
    ),
    _Spec(
        "session_utterances",
        "Utterances (messages spoken) per ended session.",
        "histogram",
        buckets=UTTERANCE_COUNT_BUCKETS,
    ),
)


def _le(bound: float) -> str:
    """A bucket bound as Prometheus writes it (Go float formatting: 1.0, 0.005, +Inf)."""
    text: str = floatToGoString(bound)  # type: ignore[no-untyped-call]  # untyped upstream
    return text


def _labels_text(names: Sequence[str], values: Sequence[str], extra: str = "") -> str:
    parts = [f'{n}="{v}"' for n, v in zip(names, values, strict=True)]
    if extra:
        parts.append(extra)
    return "{" + ",".join(parts) + "}" if parts else ""


class _Series:
    """One labelled series. `values` are totals since this process started: for a counter
    `[n]`, for a histogram the per-bucket (non-cumulative) counts, +Inf last, then sum and
    count. `flushed` is the part of `values` already in the store; `base` holds the store's
    totals (cumulative, in `fields` order) found at start-up."""

    __slots__ = ("base", "bounds", "fields", "flushed", "labels", "spec", "values")

    def __init__(self, spec: _Spec, labels: tuple[str, ...]) -> None:
        self.spec = spec
        self.labels = labels
        self.bounds = spec.buckets
        full = PREFIX + spec.name
        if spec.kind == "counter":
            self.fields = [f"{full}_total{_labels_text(spec.labels, labels)}"]
        else:
            les = [_le(b) for b in spec.buckets] + ["+Inf"]
            self.fields = [
                f"{full}_bucket{_labels_text(spec.labels, labels, 'le=' + json.dumps(le))}"
                for le in les
            ]
            self.fields += [
                f"{full}_sum{_labels_text(spec.labels, labels)}",
                f"{full}_count{_labels_text(spec.labels, labels)}",
            ]
        self.values = [0.0] * len(self.fields)
        self.flushed = [0.0] * len(self.fields)
        self.base = [0.0] * len(self.fields)

    def cumulative(self, values: Sequence[float]) -> list[float]:
        """Per-bucket counts as the store and Prometheus hold them (cumulative buckets)."""
        if self.spec.kind == "counter":
            return list(values)
        out: list[float] = []
        running = 0.0
        for count in values[:-2]:
            running += count
            out.append(running)
        return [*out, values[-2], values[-1]]

    def totals(self) -> list[float]:
        """Cumulative totals: the store's at start-up plus everything recorded since."""
        return [b + v for b, v in zip(self.base, self.cumulative(self.values), strict=True)]


# -- the recorder -----------------------------------------------------------------------


class FleetMetrics:
    """The orchestrator's metrics: record synchronously, flushed to the store by `start()`'s
    background task, exported by `exposition()` and summarised fleet-wide by `summary()`."""

    def __init__(
        self,
        store: Store,
        instance_id: str,
        *,
        sla_first_audio_seconds: float = 0.5,
        flush_seconds: float = 1.0,
        registry: WorkerRegistry | None = None,
    ) -> None:
        self.store = store
        self.instance_id = instance_id
        self.sla_first_audio_seconds = sla_first_audio_seconds
        self.flush_seconds = flush_seconds
        self.registry = registry
        self.key = COUNTERS_KEY + instance_id
        self.active_sessions = 0
        self.loaded = False
        """True once this replica's stored totals were read; until then /metrics leaves the
        stored series out, so a late load never shows up as a burst of traffic."""
        self.store_ok = True
        self._series: dict[str, dict[tuple[str, ...], _Series]] = {}
        self._all: list[_Series] = []
        for spec in _SPECS:
            by_labels = {labels: _Series(spec, labels) for labels in spec.label_values}
            self._series[spec.name] = by_labels
            self._all.extend(by_labels.values())
        self._field_index = {f: (s, i) for s in self._all for i, f in enumerate(s.fields)}
        # Hot-path shortcuts: one dict lookup per recording call.
        self._first_audio = self._series["first_audio_seconds"]
        self._sla = self._series["sla_violations"]
        self._requests = self._series["requests"]
        self._errors = self._series["errors"]
        self._rtf = self._series["realtime_factor"][()]
        self._queue = self._series["queue_seconds"][()]
        self._bargeins = self._series["bargeins"][()]
        self._false = self._series["false_interruptions"][()]
        self._onset = self._series["bargein_onset_to_silence_seconds"][()]
        self._decision = self._series["bargein_decision_to_last_frame_seconds"][()]
        self._started = self._series["sessions_started"][()]
        self._ended = self._series["sessions_ended"][()]
        self._duration = self._series["session_duration_seconds"][()]
        self._utterances = self._series["session_utterances"][()]
        self._lock = asyncio.Lock()
        self._task: asyncio.Task[None] | None = None
        self.prometheus = CollectorRegistry(auto_describe=False)
        self.prometheus.register(_FleetCollector(self))
        ProcessCollector(registry=self.prometheus)

    # -- recording (synchronous, cheap) -------------------------------------------------

    @staticmethod
    def _observe(series: _Series, value: float) -> None:
        values = series.values
        values[bisect.bisect_left(series.bounds, value)] += 1.0
        values[-2] += value
        values[-1] += 1.0

    def observe_first_audio(self, seconds: float, route: str) -> None:
        """Time to first audio of one utterance. `route` is "synthesize", "openai_speech"
        or "session" (a LiveKit session: text given to first frame published). Counts an SLA
        violation when it is over the configured SLA."""
        series = self._first_audio.get((route,))
        if series is None:
            log.warning("first audio for an unknown route dropped", extra={"route": route})
            return
        self._observe(series, seconds)
        if seconds > self.sla_first_audio_seconds:
            self._sla[(route,)].values[0] += 1.0

    def observe_synthesis(
        self, audio_seconds: float, synthesis_seconds: float, queue_seconds: float
    ) -> None:
        """A completed utterance's worker stats: real-time factor and queue time."""
        self.observe_queue_time(queue_seconds)
        if audio_seconds > 0:
            self.observe_realtime_factor(synthesis_seconds / audio_seconds)

    def observe_realtime_factor(self, rtf: float) -> None:
        """Synthesis seconds per audio second of one completed utterance."""
        self._observe(self._rtf, rtf)

    def observe_queue_time(self, seconds: float) -> None:
        """Time one utterance waited for a synthesis slot (as its worker reports it)."""
        self._observe(self._queue, seconds)

    def observe_bargein(
        self,
        onset_to_silence_seconds: float | None,
        decision_to_last_frame_seconds: float | None = None,
    ) -> None:
        """One barge-in (the agent's audio was paused because the listener spoke).

        onset_to_silence_seconds: from the listener's speech onset (VAD) to the agent's audio
        stopping; None when there was no VAD onset to measure from.
        decision_to_last_frame_seconds: from the decision to cancel to the last frame leaving;
        None when the barge-in was not cancelled (a false interruption: call
        `count_false_interruption()` as well).
        """
        self._bargeins.values[0] += 1.0
        if onset_to_silence_seconds is not None:
            self._observe(self._onset, onset_to_silence_seconds)
        if decision_to_last_frame_seconds is not None:
            self._observe(self._decision, decision_to_last_frame_seconds)

    def count_false_interruption(self) -> None:
        """A paused utterance resumed because the interruption was short (then silence)."""
        self._false.values[0] += 1.0

    def session_started(self) -> None:
        """A LiveKit session started on this replica (raises the active-sessions gauge)."""
        self.active_sessions += 1
        self._started.values[0] += 1.0

    def session_ended(self, duration_seconds: float, utterances: int) -> None:
        """A session started with `session_started()` ended after duration_seconds, having
        spoken `utterances` utterances (messages)."""
        self.active_sessions = max(self.active_sessions - 1, 0)
        self._ended.values[0] += 1.0
        self._observe(self._duration, duration_seconds)
        self._observe(self._utterances, float(utterances))

    def count_request(self, route: str, status: int) -> None:
        """One public API request; route is a label of REQUEST_ROUTES or "other"."""
        klass = f"{status // 100}xx"
        series = self._requests.get((route, klass)) or self._requests.get(("other", klass))
        if series is not None:
            series.values[0] += 1.0

    def count_error(self, kind: str) -> None:
        """One error of a kind listed in ERROR_KINDS (others are counted as "other")."""
        klass = ERROR_KINDS.get(kind)
        if klass is None:
            log.warning("error kind not in ERROR_KINDS counted as other", extra={"kind": kind})
            kind, klass = "other", ERROR_KINDS["other"]
        self._errors[(kind, klass)].values[0] += 1.0

    # -- lifecycle ------------------------------------------------------------------------

    async def start(self) -> None:
        """Load this replica's stored totals (if the store answers) and start flushing."""
        await self.load()
        self._task = asyncio.create_task(self._flush_forever(), name="metrics-flush")

    async def aclose(self) -> None:
        """Stop flushing, then flush what is left (best effort: the store may be down)."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        if self.loaded:
            await self.flush()
        with contextlib.suppress(StoreUnavailable):
            await self.store.remove_record(REPLICA_KIND, self.instance_id)

    async def load(self) -> bool:
        """Read this replica's stored totals (once); False while the store is down. start()
        calls it and the flush loop retries it; nothing is flushed before it succeeds."""
        if self.loaded:
            return True
        try:
            stored = await self.store.read_counters(self.key)
        except StoreUnavailable as exc:
            self.store_ok = False
            log.warning("metrics not loaded yet: store unavailable", extra={"reason": str(exc)})
            return False
        # The prefix read also returns `metrics:<id>x`: only the exact key is ours.
        for field, value in stored.get("", {}).items():
            found = self._field_index.get(field)
            if found is not None:
                series, index = found
                series.base[index] = value
        self.loaded = True
        self.store_ok = True
        return True

    async def _flush_forever(self) -> None:
        while True:
            await asyncio.sleep(self.flush_seconds)
            try:
                if await self.load():
                    await self.flush()
            except Exception:
                log.exception("metrics flush failed")

    def _pending(self) -> tuple[dict[str, float], list[tuple[_Series, list[float]]]]:
        """What was recorded and not yet stored: store fields (cumulative) and raw deltas."""
        fields: dict[str, float] = {}
        raw: list[tuple[_Series, list[float]]] = []
        for series in self._all:
            if series.values == series.flushed:
                continue
            delta = [v - f for v, f in zip(series.values, series.flushed, strict=True)]
            raw.append((series, delta))
            for field, value in zip(series.fields, series.cumulative(delta), strict=True):
                if value:
                    fields[field] = value
        return fields, raw

    async def flush(self) -> bool:
        """Add what changed since the last successful flush to the store; False when the
        store is down (the deltas stay for the next try) or this replica's stored totals
        are not loaded yet (writing first would count them twice once loaded)."""
        if not self.loaded:
            return False
        async with self._lock:
            fields, raw = self._pending()
            try:
                if fields:
                    await self.store.add_counters(self.key, fields)
                await self.store.put_record(
                    REPLICA_KIND,
                    self.instance_id,
                    json.dumps({"active_sessions": self.active_sessions}),
                    max(self.flush_seconds * 3, 5.0),
                )
            except StoreUnavailable as exc:
                if self.store_ok:
                    log.warning(
                        "metrics flush failed; kept for the next try", extra={"reason": str(exc)}
                    )
                self.store_ok = False
                return False
            # Written: only now do those deltas count as flushed (recording went on meanwhile).
            for series, delta in raw:
                series.flushed = [f + d for f, d in zip(series.flushed, delta, strict=True)]
            self.store_ok = True
            return True

    # -- export ---------------------------------------------------------------------------

    def exposition(self) -> bytes:
        """Prometheus text format of this replica's series (no store round trip)."""
        return generate_latest(self.prometheus)

    def families(self) -> Iterator[Metric]:
        """This replica's store-backed series (once loaded) and its live gauges."""
        if self.loaded:
            for spec in _SPECS:
                yield _family(spec, self._series[spec.name].values())
        yield from self._gauges()

    def _gauges(self) -> Iterator[Metric]:
        sessions = GaugeMetricFamily(
            PREFIX + "active_sessions", "LiveKit sessions running on this replica."
        )
        sessions.add_metric([], float(self.active_sessions))
        yield sessions
        store_up = GaugeMetricFamily(
            PREFIX + "store_up",
            "1 when the store (Redis, or the in-process store) answers this replica.",
            labels=["store"],
        )
        registry_ok = self.registry is None or self.registry.store_error is None
        store_up.add_metric([self.store.kind], 1.0 if self.store_ok and registry_ok else 0.0)
        yield store_up
        yield from _registry_gauges(self.registry.workers if self.registry else [])

    async def summary(self) -> dict[str, Any]:
        """The fleet view: every replica's stored series (plus this one's unflushed part)."""
        async with self._lock:
            stored = await self.store.read_counters(COUNTERS_KEY)
            replicas = await self.store.list_records(REPLICA_KIND)
            own_pending, _ = self._pending()
        own = stored.setdefault(self.instance_id, {})
        for field, value in own_pending.items():
            own[field] = own.get(field, 0.0) + value
        totals: dict[int, list[float]] = {}
        for fields in stored.values():
            for field, value in fields.items():
                found = self._field_index.get(field)
                if found is None:
                    continue
                series, index = found
                totals.setdefault(id(series), [0.0] * len(series.fields))[index] += value
        active = self.active_sessions  # this replica's own count is exact; others' may lag
        for instance, raw in replicas.items():
            if instance != self.instance_id:
                with contextlib.suppress(ValueError, TypeError, KeyError):
                    active += int(json.loads(raw)["active_sessions"])
        return _Summary(self, totals).render(sorted(stored), active)


# -- exposition helpers -----------------------------------------------------------------


def _family(spec: _Spec, series: Iterable[_Series]) -> Metric:
    full = PREFIX + spec.name
    if spec.kind == "counter":
        counter = CounterMetricFamily(full, spec.help, labels=list(spec.labels))
        for s in series:
            counter.add_metric(list(s.labels), s.totals()[0])
        return counter
    histogram = HistogramMetricFamily(full, spec.help, labels=list(spec.labels))
    les = [_le(b) for b in spec.buckets] + ["+Inf"]
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


class _FleetCollector(Collector):
    def __init__(self, metrics: FleetMetrics) -> None:
        self._metrics = metrics

    def collect(self) -> Iterable[Metric]:
        return self._metrics.families()


# -- summary ------------------------------------------------------------------------------


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
    def __init__(self, metrics: FleetMetrics, totals: Mapping[int, list[float]]) -> None:
        self._metrics = metrics
        self._totals = totals

    def _values(self, name: str, labels: tuple[str, ...] = ()) -> list[float]:
        series = self._metrics._series[name][labels]
        return self._totals.get(id(series), [0.0] * len(series.fields))

    def _count(self, name: str, labels: tuple[str, ...] = ()) -> float:
        return self._values(name, labels)[0]

    def _histogram(self, name: str, labels: Sequence[tuple[str, ...]] = ((),)) -> dict[str, Any]:
        spec = self._metrics._series[name][labels[0]].spec
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
        requests = {
            labels: int(self._count("requests", labels)) for labels in m._series["requests"]
        }
        by_route_requests: dict[str, int] = {}
        by_status: dict[str, int] = {}
        for (route, status), n in requests.items():
            by_route_requests[route] = by_route_requests.get(route, 0) + n
            by_status[status] = by_status.get(status, 0) + n
        errors = {
            kind: int(self._count("errors", (kind, klass))) for kind, klass in ERROR_KINDS.items()
        }
        server_errors = sum(n for k, n in errors.items() if ERROR_KINDS[k] == "server")
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
                "onset_to_silence_seconds": self._histogram("bargein_onset_to_silence_seconds"),
                "decision_to_last_frame_seconds": self._histogram(
                    "bargein_decision_to_last_frame_seconds"
                ),
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


# -- the public app's request middleware ----------------------------------------------------


class RequestMetricsMiddleware:
    """Counts every public request by route and status class, errors by the `code` of
    their JSON body, and time to first audio: request received to the first audio bytes
    handed to the server. Outermost, so it also sees the body-limit middleware's 413s."""

    def __init__(self, app: ASGIApp, metrics: FleetMetrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        metrics = self.metrics
        started = time.perf_counter()
        status = 0
        audio = False
        error_body: bytearray | None = None

        async def measured_send(message: Message) -> None:
            nonlocal status, audio, error_body
            kind = message["type"]
            if kind == "http.response.start":
                status = int(message["status"])
                metrics.count_request(_route(scope), status)
                if status >= 400:
                    error_body = bytearray()
                elif status == 200 and _route(scope) in FIRST_AUDIO_ROUTES:
                    audio = any(
                        k == b"content-type" and v.startswith(b"audio/")
                        for k, v in message.get("headers", ())
                    )
            elif kind == "http.response.body":
                if audio and message.get("body"):
                    audio = False  # only the first chunk
                    metrics.observe_first_audio(time.perf_counter() - started, _route(scope))
                elif error_body is not None:
                    error_body += message.get("body", b"")
                    if not message.get("more_body", False):
                        metrics.count_error(_error_code(bytes(error_body), status))
                        error_body = None
            await send(message)

        try:
            await self.app(scope, receive, measured_send)
        except ClientDisconnect:
            raise  # the caller left before a response: neither a request served nor an error
        except Exception:
            if status == 0:
                metrics.count_request(_route(scope), 500)
                metrics.count_error("internal_error")
            else:
                metrics.count_error("stream_interrupted")
            raise


def _route(scope: Scope) -> str:
    """The route label: the matched route's template (the router puts it in the scope), or
    the path itself when a middleware answered before routing (the body limit's 413)."""
    template = getattr(scope.get("route"), "path", None) or scope["path"]
    return REQUEST_ROUTES.get(template, "other")


def _error_code(body: bytes, status: int) -> str:
    try:
        code = json.loads(body)["error"]["code"]
    except (ValueError, KeyError, TypeError):
        return "internal_error" if status >= 500 else "http_error"
    return code if isinstance(code, str) and code in ERROR_KINDS else "other"
