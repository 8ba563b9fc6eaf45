"""FleetMetrics: recording, flushing to the store, export and the fleet summary, against
both stores (the embedded one and a real Redis)."""

from __future__ import annotations

from collections.abc import Mapping

import pytest
from prometheus_client.parser import text_string_to_metric_families

from fleet.memory_store import MemoryStore
from fleet.redis_store import RedisStore
from fleet.store import Store, StoreUnavailable
from orchestrator.metrics.catalogue import COUNTERS_KEY, ERROR_KINDS, FIRST_AUDIO_ROUTES
from orchestrator.metrics.recorder import FleetMetrics
from orchestrator.metrics.summary import bucket_quantile
from tests.processes import RedisServer, free_port

STORE_BACKED = {
    "voiceorch_requests",
    "voiceorch_errors",
    "voiceorch_first_audio_seconds",
    "voiceorch_sla_violations",
    "voiceorch_realtime_factor",
    "voiceorch_queue_seconds",
    "voiceorch_bargeins",
    "voiceorch_false_interruptions",
    "voiceorch_bargein_onset_to_stop_seconds",
    "voiceorch_bargein_pause_to_decision_seconds",
    "voiceorch_sessions_started",
    "voiceorch_sessions_ended",
    "voiceorch_session_takeovers",
    "voiceorch_session_duration_seconds",
    "voiceorch_session_utterances",
}


def samples(metrics: FleetMetrics) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    """Every sample of the exposition, keyed by (sample name, labels)."""
    out = {}
    for family in text_string_to_metric_families(metrics.exposition().decode()):
        for s in family.samples:
            out[(s.name, frozenset(s.labels.items()))] = s.value
    return out


def value(metrics: FleetMetrics, name: str, **labels: str) -> float:
    return samples(metrics)[(name, frozenset(labels.items()))]


async def test_every_series_exists_at_zero_from_start(store: Store) -> None:
    """Panels need a series to draw before the first event: all of them, at zero."""
    metrics = FleetMetrics(store, f"fresh-{free_port()}")
    await metrics.start()
    try:
        families = {
            f.name: f for f in text_string_to_metric_families(metrics.exposition().decode())
        }
        assert set(families) >= STORE_BACKED | {"voiceorch_active_sessions", "voiceorch_store_up"}
        for name in STORE_BACKED:
            assert families[name].samples, name
            assert all(s.value == 0 for s in families[name].samples), name
        kinds = {s.labels["kind"] for s in families["voiceorch_errors"].samples}
        assert kinds == set(ERROR_KINDS)
        routes = {s.labels["route"] for s in families["voiceorch_first_audio_seconds"].samples}
        assert routes == set(FIRST_AUDIO_ROUTES)
        assert value(metrics, "voiceorch_store_up", store=store.kind) == 1
    finally:
        await metrics.aclose()


async def test_recordings_reach_the_store_and_the_exposition(store: Store) -> None:
    """A flush writes cumulative buckets, sum and count under this replica's key; /metrics
    and the store agree."""
    metrics = FleetMetrics(store, f"rec-{free_port()}", sla_first_audio_seconds=0.5)
    await metrics.start()
    try:
        for seconds in (0.12, 0.3, 0.3, 0.7):
            metrics.observe_first_audio(seconds, "synthesize")
        metrics.observe_first_audio(0.05, "session")
        metrics.observe_synthesis(audio_seconds=2.0, synthesis_seconds=0.5, queue_seconds=0.02)
        metrics.count_request("synthesize", 200)
        metrics.count_request("voices", 404)
        metrics.count_error("voice_not_found")
        assert await metrics.flush()

        stored = (await store.read_counters(metrics.key))[""]
        fa = 'voiceorch_first_audio_seconds_bucket{route="synthesize",le="%s"}'
        assert fa % "0.1" not in stored  # only changed fields are written
        assert stored[fa % "0.15"] == 1
        assert stored[fa % "0.3"] == 3
        assert stored[fa % "0.5"] == 3
        assert stored[fa % "+Inf"] == 4
        assert stored['voiceorch_first_audio_seconds_count{route="synthesize"}'] == 4
        assert stored['voiceorch_first_audio_seconds_sum{route="synthesize"}'] == pytest.approx(
            1.42
        )
        assert stored['voiceorch_sla_violations_total{route="synthesize"}'] == 1
        assert 'voiceorch_sla_violations_total{route="session"}' not in stored  # only changes
        assert stored['voiceorch_requests_total{route="voices",status="4xx"}'] == 1
        assert stored['voiceorch_errors_total{kind="voice_not_found",class="client"}'] == 1
        assert stored["voiceorch_realtime_factor_sum"] == 0.25

        assert value(metrics, "voiceorch_first_audio_seconds_count", route="synthesize") == 4
        assert (
            value(metrics, "voiceorch_first_audio_seconds_bucket", route="synthesize", le="0.3")
            == 3
        )
        assert value(metrics, "voiceorch_sla_violations_total", route="synthesize") == 1
        assert value(metrics, "voiceorch_queue_seconds_count") == 1
        assert value(metrics, "voiceorch_requests_total", route="synthesize", status="2xx") == 1

        # A second flush adds only what is new.
        metrics.count_request("synthesize", 200)
        assert await metrics.flush()
        stored = (await store.read_counters(metrics.key))[""]
        assert stored['voiceorch_requests_total{route="synthesize",status="2xx"}'] == 2
        assert stored[fa % "+Inf"] == 4
    finally:
        await metrics.aclose()


async def test_session_and_bargein_recording(store: Store) -> None:
    """The session API the LiveKit code calls: gauges move at once, histograms on end."""
    metrics = FleetMetrics(store, f"sess-{free_port()}")
    await metrics.start()
    try:
        metrics.session_started()
        metrics.session_started()
        assert value(metrics, "voiceorch_active_sessions") == 2
        metrics.observe_bargein_stop(0.14)
        metrics.observe_bargein_decision("cancel", 0.015)
        metrics.observe_bargein_stop(None)  # onset no longer placeable; then resumed:
        metrics.observe_bargein_decision("resume", 0.45)
        metrics.session_ended(duration_seconds=42.0, utterances=3)
        assert value(metrics, "voiceorch_active_sessions") == 1
        assert value(metrics, "voiceorch_bargeins_total") == 2
        assert value(metrics, "voiceorch_false_interruptions_total") == 1
        assert value(metrics, "voiceorch_bargein_onset_to_stop_seconds_count") == 1
        assert value(metrics, "voiceorch_bargein_onset_to_stop_seconds_sum") == 0.14
        pause = "voiceorch_bargein_pause_to_decision_seconds"
        assert value(metrics, f"{pause}_count", decision="cancel") == 1
        assert value(metrics, f"{pause}_bucket", decision="cancel", le="0.02") == 1
        assert value(metrics, f"{pause}_bucket", decision="resume", le="0.3") == 0
        assert value(metrics, f"{pause}_bucket", decision="resume", le="0.5") == 1
        assert value(metrics, "voiceorch_session_utterances_bucket", le="3.0") == 1
        assert value(metrics, "voiceorch_session_utterances_bucket", le="2.0") == 0
        assert value(metrics, "voiceorch_session_duration_seconds_sum") == 42
        metrics.session_taken_over()  # runs here now, but is not a new session
        assert value(metrics, "voiceorch_active_sessions") == 2
        assert value(metrics, "voiceorch_session_takeovers_total") == 1
        assert value(metrics, "voiceorch_sessions_started_total") == 2
        [build] = [v for (name, _), v in samples(metrics).items() if name == "voiceorch_build_info"]
        assert build == 1
        assert ("component", "orchestrator") in next(
            labels for (name, labels) in samples(metrics) if name == "voiceorch_build_info"
        )
        summary = await metrics.summary()
        assert summary["sessions"]["active"] == 2
        assert summary["sessions"]["started"] == 2
        assert summary["bargein"]["count"] == 2
        assert summary["bargein"]["false_interruptions"] == 1
    finally:
        await metrics.aclose()


async def test_unknown_labels_stay_bounded(store: Store) -> None:
    """An unlisted error kind or route never creates a new series."""
    metrics = FleetMetrics(store, f"bounded-{free_port()}")
    await metrics.start()
    try:
        before = set(samples(metrics))
        metrics.count_error("some new failure")
        metrics.count_request("/sessions/abc123/say", 200)
        metrics.observe_first_audio(0.1, "webrtc-room-42")
        assert set(samples(metrics)) == before
        assert value(metrics, "voiceorch_errors_total", kind="other", **{"class": "server"}) == 1
        assert value(metrics, "voiceorch_requests_total", route="other", status="2xx") == 1
    finally:
        await metrics.aclose()


async def test_counters_survive_a_restart(redis_server: RedisServer) -> None:
    """A replica that restarts under the same instance id goes on from its stored totals
    (Redis), so Prometheus sees a counter that kept counting, not a reset."""
    prefix = f"restart{free_port()}:"
    first = FleetMetrics(RedisStore(redis_server.url, prefix=prefix), "orch-a")
    await first.start()
    for _ in range(3):
        first.count_request("synthesize", 200)
    first.observe_first_audio(0.2, "synthesize")
    await first.aclose()  # the final flush writes what is pending
    await first.store.aclose()

    second = FleetMetrics(RedisStore(redis_server.url, prefix=prefix), "orch-a")
    await second.start()
    try:
        assert value(second, "voiceorch_requests_total", route="synthesize", status="2xx") == 3
        second.count_request("synthesize", 200)
        assert value(second, "voiceorch_requests_total", route="synthesize", status="2xx") == 4
        assert value(second, "voiceorch_first_audio_seconds_count", route="synthesize") == 1
    finally:
        await second.aclose()
        await second.store.aclose()


async def test_replicas_export_their_own_and_the_summary_adds_them_up(
    redis_server: RedisServer,
) -> None:
    """Two replicas on one Redis (ids that share a prefix): each /metrics exports only its
    own counts, so scraping both never double counts; the summary is the fleet total."""
    prefix = f"replicas{free_port()}:"
    a = FleetMetrics(RedisStore(redis_server.url, prefix=prefix), "orch-1")
    b = FleetMetrics(RedisStore(redis_server.url, prefix=prefix), "orch-10")
    await a.start()
    await b.start()
    try:
        for _ in range(3):
            a.count_request("synthesize", 200)
            a.observe_first_audio(0.2, "synthesize")
        for _ in range(5):
            b.count_request("synthesize", 200)
            b.observe_first_audio(0.9, "synthesize")
        b.count_request("synthesize", 503)
        b.count_error("no_worker")
        assert await a.flush()
        assert await b.flush()
        assert value(a, "voiceorch_requests_total", route="synthesize", status="2xx") == 3
        assert value(b, "voiceorch_requests_total", route="synthesize", status="2xx") == 5

        # Recorded but not flushed yet: the summary still counts it (own pending part).
        a.count_request("synthesize", 200)
        for summary in (await a.summary(), await b.summary()):
            assert summary["instances"] == ["orch-1", "orch-10"]
            assert summary["requests"]["total"] >= 9
            assert summary["first_audio_seconds"]["count"] == 8
            assert summary["first_audio_seconds"]["sla_violations"] == 5
            assert summary["first_audio_seconds"]["sla_compliance_percent"] == 37.5
            assert summary["errors"]["by_kind"] == {"no_worker": 1}
            assert summary["errors"]["server"] == 1
        assert (await a.summary())["requests"]["total"] == 10
        assert (await a.summary())["requests"]["by_status"]["5xx"] == 1
    finally:
        for m in (a, b):
            await m.aclose()
            await m.store.aclose()


async def test_a_failed_flush_keeps_its_deltas_until_redis_is_back() -> None:
    """Redis down: recording goes on, flushes fail and keep every delta; when Redis is back
    the next flush writes each of them exactly once."""
    server = RedisServer().start()
    store = RedisStore(server.url, timeout_seconds=0.3)
    metrics = FleetMetrics(store, "orch-outage", flush_seconds=3600)
    try:
        await metrics.start()
        metrics.count_request("synthesize", 200)
        assert await metrics.flush()
        server.stop()

        metrics.count_request("synthesize", 200)
        metrics.observe_first_audio(0.3, "synthesize")
        assert not await metrics.flush()
        metrics.count_request("synthesize", 200)
        assert not await metrics.flush()
        assert value(metrics, "voiceorch_store_up", store="redis") == 0
        # /metrics keeps answering from memory while the store is down.
        assert value(metrics, "voiceorch_requests_total", route="synthesize", status="2xx") == 3

        # Same port, empty (no persistence): what lands is exactly the unflushed part.
        server = RedisServer(port=server.port).start()
        assert await metrics.flush()
        stored = (await store.read_counters(COUNTERS_KEY))["orch-outage"]
        assert stored['voiceorch_requests_total{route="synthesize",status="2xx"}'] == 2
        assert stored['voiceorch_first_audio_seconds_count{route="synthesize"}'] == 1
        assert value(metrics, "voiceorch_store_up", store="redis") == 1
        assert await metrics.flush()  # nothing new: nothing added twice
        stored = (await store.read_counters(COUNTERS_KEY))["orch-outage"]
        assert stored['voiceorch_requests_total{route="synthesize",status="2xx"}'] == 2
    finally:
        await metrics.aclose()
        await store.aclose()
        server.stop()


class LostAnswers(MemoryStore):
    """A store whose writes land but whose answers can be lost on the way back, as a Redis
    command that timed out after Redis ran it (the first try's effect stays)."""

    def __init__(self) -> None:
        super().__init__()
        self.lose_counters = 0
        self.lose_records = 0

    async def add_counters(self, key: str, deltas: Mapping[str, float], *, batch: str) -> bool:
        added = await super().add_counters(key, deltas, batch=batch)
        if self.lose_counters:
            self.lose_counters -= 1
            raise StoreUnavailable("answer lost")
        return added

    async def put_record(self, kind: str, key: str, value: str, ttl_seconds: float | None) -> None:
        await super().put_record(kind, key, value, ttl_seconds)
        if self.lose_records:
            self.lose_records -= 1
            raise StoreUnavailable("answer lost")


async def test_a_flush_whose_answer_was_lost_counts_once() -> None:
    """A flush that reached the store but failed to answer (its counters written, then the
    connection lost; or its replica record not written) is retried without counting
    twice, and what was recorded meanwhile is added once too."""
    store = LostAnswers()
    metrics = FleetMetrics(store, "orch-lost", flush_seconds=3600)
    ok = 'voiceorch_requests_total{route="synthesize",status="2xx"}'
    try:
        await metrics.start()
        metrics.count_request("synthesize", 200)
        store.lose_counters = 1
        assert not await metrics.flush()
        assert (await metrics.summary())["requests"]["total"] == 1  # in the store, once
        metrics.count_request("synthesize", 200)
        store.lose_records = 1
        assert not await metrics.flush()
        metrics.count_request("synthesize", 200)
        assert await metrics.flush()
        assert (await store.read_counters(COUNTERS_KEY))["orch-lost"][ok] == 3
        assert (await metrics.summary())["requests"]["total"] == 3
    finally:
        await metrics.aclose()


async def test_stored_series_wait_for_the_first_load() -> None:
    """Started while Redis is down, a replica cannot know its stored totals: it leaves those
    series out (a gap) rather than export from zero and jump later (a fake traffic burst)."""
    port = free_port()
    store = RedisStore(f"redis://127.0.0.1:{port}/0", timeout_seconds=0.3)
    metrics = FleetMetrics(store, "orch-late", flush_seconds=3600)
    server: RedisServer | None = None
    try:
        await metrics.start()
        metrics.count_request("synthesize", 200)
        names = {name for name, _ in samples(metrics)}
        assert "voiceorch_requests_total" not in names
        assert value(metrics, "voiceorch_store_up", store="redis") == 0

        server = RedisServer(port=port).start()
        await store.add_counters(
            metrics.key,
            {'voiceorch_requests_total{route="synthesize",status="2xx"}': 7.0},
            batch="earlier-run:1",
        )
        assert not await metrics.flush()  # nothing is flushed before the load
        assert await metrics.load()
        assert value(metrics, "voiceorch_requests_total", route="synthesize", status="2xx") == 8
    finally:
        await metrics.aclose()
        await store.aclose()
        if server is not None:
            server.stop()


@pytest.mark.parametrize(
    ("q", "expected"),
    [
        (0.5, 0.25),  # rank 5 of 10: halfway through the (0, 0.5] bucket holding all 10
        (0.95, 0.475),
    ],
)
def test_bucket_quantile_interpolates_like_prometheus(q: float, expected: float) -> None:
    assert bucket_quantile(q, (0.5, 1.0), [10.0, 10.0, 10.0]) == pytest.approx(expected)


def test_bucket_quantile_edges() -> None:
    assert bucket_quantile(0.5, (0.5, 1.0), [0.0, 0.0, 0.0]) is None
    assert bucket_quantile(0.99, (0.5, 1.0), [0.0, 0.0, 4.0]) == 1.0  # +Inf: highest bound
    assert bucket_quantile(0.5, (0.5, 1.0), [2.0, 6.0, 6.0]) == pytest.approx(0.625)
