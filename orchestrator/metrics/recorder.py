"""The recorder: counters and histograms kept in memory, flushed to the store.

Recording is synchronous and cheap: a method adds to in-memory numbers and returns. A
background task flushes what changed to the store every `flush_seconds`, as atomic hash
increments under this replica's own key (`metrics:<instance_id>`). Each flush is a numbered
batch that is resent, unchanged, until the store acknowledges it: nothing is lost while
Redis is down, and a batch whose answer was lost (it may have been added) counts once.

Two readers, two views:
- `/metrics` (Prometheus) exports *this replica's* series: the totals found under its key at
  start-up plus everything recorded since. Counters so survive a restart (with Redis), and
  N replicas scraped together never double count: each exports only its own share.
- `/metrics/summary` reads *every* replica's hash from the store: the fleet view.

Histograms are stored as cumulative `_bucket{le=...}` counters plus `_sum` and `_count`
fields, the shape Prometheus exports. Record from the event loop thread only.
"""

from __future__ import annotations

import asyncio
import bisect
import contextlib
import json
import logging
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from prometheus_client import CollectorRegistry, ProcessCollector, generate_latest

from fleet import aio
from fleet.aio import TaskSet
from fleet.store import Store, StoreUnavailable
from orchestrator.metrics.catalogue import (
    COUNTERS_KEY,
    ERROR_KINDS,
    PREFIX,
    REPLICA_KIND,
    SPECS,
    Spec,
    le_text,
)
from orchestrator.metrics.exposition import FleetCollector, FleetView
from orchestrator.metrics.summary import render_summary

log = logging.getLogger(__name__)


def _labels_text(names: Sequence[str], values: Sequence[str], extra: str = "") -> str:
    parts = [f'{n}="{v}"' for n, v in zip(names, values, strict=True)]
    if extra:
        parts.append(extra)
    return "{" + ",".join(parts) + "}" if parts else ""


class Series:
    """One labelled series. `values` are totals since this process started: for a counter
    `[n]`, for a histogram the per-bucket (non-cumulative) counts, +Inf last, then sum and
    count. `flushed` is the part of `values` sent to the store (acknowledged, or in the
    batch being resent); `base` holds the store's totals (cumulative, in `fields` order)
    found at start-up."""

    __slots__ = ("base", "bounds", "fields", "flushed", "labels", "spec", "values")

    def __init__(self, spec: Spec, labels: tuple[str, ...]) -> None:
        self.spec = spec
        self.labels = labels
        self.bounds = spec.buckets
        full = PREFIX + spec.name
        if spec.kind == "counter":
            self.fields = [f"{full}_total{_labels_text(spec.labels, labels)}"]
        else:
            les = [le_text(b) for b in spec.buckets] + ["+Inf"]
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


@dataclass(frozen=True)
class _Batch:
    """Deltas sent to the store under one id, not acknowledged yet."""

    id: str
    fields: dict[str, float]


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
        fleet: FleetView | None = None,
    ) -> None:
        self.store = store
        self.instance_id = instance_id
        self.sla_first_audio_seconds = sla_first_audio_seconds
        self.flush_seconds = flush_seconds
        self.fleet = fleet
        self.key = COUNTERS_KEY + instance_id
        self.active_sessions = 0
        self.loaded = False
        """True once this replica's stored totals were read; until then /metrics leaves the
        stored series out, so a late load never shows up as a burst of traffic."""
        self.store_ok = True
        # Batch ids: unique to this process, numbered in the order sent.
        self._run = uuid.uuid4().hex
        self._batches = 0
        self._unacked: _Batch | None = None
        self._series: dict[str, dict[tuple[str, ...], Series]] = {}
        self._all: list[Series] = []
        for spec in SPECS:
            by_labels = {labels: Series(spec, labels) for labels in spec.label_values}
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
        self._onset_to_stop = self._series["bargein_onset_to_stop_seconds"][()]
        self._pause_to_decision = self._series["bargein_pause_to_decision_seconds"]
        self._decisions = self._series["bargein_decisions"]
        self._transcripts = self._series["user_transcripts"]
        self._dropped = self._series["user_transcript_partials_dropped"][()]
        self._transcript_latency = self._series["user_transcript_latency_seconds"][()]
        self._recognition = self._series["recognition_seconds"][()]
        self._started = self._series["sessions_started"][()]
        self._ended = self._series["sessions_ended"][()]
        self._takeovers = self._series["session_takeovers"][()]
        self._duration = self._series["session_duration_seconds"][()]
        self._utterances = self._series["session_utterances"][()]
        self._lock = asyncio.Lock()
        self._tasks = TaskSet("metrics")
        self.prometheus = CollectorRegistry(auto_describe=False)
        self.prometheus.register(FleetCollector(self))
        ProcessCollector(registry=self.prometheus)

    # -- recording (synchronous, cheap) -------------------------------------------------

    @staticmethod
    def _observe(series: Series, value: float) -> None:
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

    def observe_bargein_stop(self, onset_to_stop_seconds: float | None) -> None:
        """One barge-in: the listener spoke over the agent and its audio stopped.

        onset_to_stop_seconds: from the arrival of the listener's first voiced sample to the
        agent's source being cleared; None when the onset could not be placed in the received
        audio (its arrival time was no longer known)."""
        self._bargeins.values[0] += 1.0
        if onset_to_stop_seconds is not None:
            self._observe(self._onset_to_stop, onset_to_stop_seconds)

    def observe_bargein_decision(
        self, decision: str, pause_to_decision_seconds: float, reason: str | None = None
    ) -> None:
        """How a paused utterance ended: "resume" (a false interruption, also counted as such)
        or "cancel", by which rule (`reason`), and how long after the pause that was decided."""
        series = self._pause_to_decision.get((decision,))
        if series is None:
            log.warning("barge-in decision of an unknown kind dropped", extra={"kind": decision})
            return
        self._observe(series, pause_to_decision_seconds)
        if decision == "resume":
            self._false.values[0] += 1.0
        by_reason = self._decisions.get((decision, str(reason)))
        if by_reason is not None:
            by_reason.values[0] += 1.0

    def observe_transcript(
        self, final: bool, compute_seconds: float, latency_seconds: float | None
    ) -> None:
        """A listener's transcript was published. compute_seconds: its recognition (0 for a
        final that reuses the last partial's); latency_seconds (finals): from the arrival
        of the turn's last voiced sample, None when no longer known."""
        self._transcripts[("final" if final else "partial",)].values[0] += 1.0
        if compute_seconds > 0:
            self._observe(self._recognition, compute_seconds)
        if latency_seconds is not None:
            self._observe(self._transcript_latency, latency_seconds)

    def count_partial_dropped(self) -> None:
        """A partial transcript was skipped: the previous recognition was still running."""
        self._dropped.values[0] += 1.0

    def session_started(self) -> None:
        """A LiveKit session started on this replica (raises the active-sessions gauge)."""
        self.active_sessions += 1
        self._started.values[0] += 1.0

    def session_taken_over(self) -> None:
        """A session whose replica stopped heartbeating goes on here: it raises the
        active-sessions gauge and counts as a takeover, not as a new session."""
        self.active_sessions += 1
        self._takeovers.values[0] += 1.0

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
        self._tasks.spawn(
            aio.every(self.flush_seconds, self._flush_step, what="metrics flush"), "flush"
        )

    async def aclose(self) -> None:
        """Stop flushing, then flush what is left (best effort: the store may be down)."""
        await self._tasks.aclose()
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

    async def _flush_step(self) -> None:
        if await self.load():
            await self.flush()

    def _pending(self) -> dict[str, float]:
        """What was recorded and not yet sent: store fields (cumulative deltas)."""
        fields: dict[str, float] = {}
        for series in self._all:
            if series.values == series.flushed:
                continue
            delta = [v - f for v, f in zip(series.values, series.flushed, strict=True)]
            for field, value in zip(series.fields, series.cumulative(delta), strict=True):
                if value:
                    fields[field] = value
        return fields

    def _take_batch(self) -> _Batch | None:
        """Move what was recorded since the last batch into a new one (None: nothing)."""
        fields = self._pending()
        for series in self._all:
            series.flushed = list(series.values)
        if not fields:
            return None
        self._batches += 1
        return _Batch(f"{self._run}:{self._batches}", fields)

    async def _send_unacked(self) -> None:
        """Resend the batch sent last until the store acknowledges it (added now or before:
        the store adds one id once)."""
        if self._unacked is not None:
            await self.store.add_counters(self.key, self._unacked.fields, batch=self._unacked.id)
            self._unacked = None

    async def flush(self) -> bool:
        """Add what changed since the last flush to the store; False when the store is
        down (the batch is resent by the next try) or this replica's stored totals are not
        loaded yet (writing first would count them twice once loaded)."""
        if not self.loaded:
            return False
        async with self._lock:
            try:
                await self._send_unacked()
                self._unacked = self._take_batch()
                await self._send_unacked()
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
            self.store_ok = True
            return True

    # -- export ---------------------------------------------------------------------------

    def exposition(self) -> bytes:
        """Prometheus text format of this replica's series (no store round trip)."""
        return generate_latest(self.prometheus)

    def series(self, name: str) -> dict[tuple[str, ...], Series]:
        """Every labelled series of one metric, by label values."""
        return self._series[name]

    def field(self, name: str) -> tuple[Series, int] | None:
        """The series and value index a stored hash field belongs to."""
        return self._field_index.get(name)

    async def summary(self) -> dict[str, Any]:
        """The fleet view: every replica's stored series (plus this one's unflushed part)."""
        async with self._lock:
            await self._send_unacked()  # in the store or not: settle it before reading
            stored = await self.store.read_counters(COUNTERS_KEY)
            replicas = await self.store.list_records(REPLICA_KIND)
            own_pending = self._pending()
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
        return render_summary(self, totals, sorted(stored), active)
