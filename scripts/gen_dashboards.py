"""Generate the Grafana dashboards in monitoring/grafana/dashboards/ from code.

`python -m scripts.gen_dashboards` rewrites them; `--check` exits 1 when the committed
files differ from what this script generates (a test runs it). Built with
grafana-foundation-sdk for Grafana 11 (the version pinned in pyproject.toml).

Queries use Grafana's `$__rate_interval` and `$__range`; tests/monitoring substitutes them
and runs every query in a real Prometheus. Orchestrator counters are per replica (sum them);
`voiceorch_fleet_*` gauges are each replica's view of the same fleet (take the max). No
query selects on a scrape job's name: series every process exports (`process_*`) are
narrowed to our workers by joining `voiceorch_build_info{component="tts-worker"}`, which the
workers export themselves.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from grafana_foundation_sdk.builders import dashboard as dash
from grafana_foundation_sdk.builders import prometheus, stat, timeseries
from grafana_foundation_sdk.builders.common import GraphThresholdsStyleConfig, StackingConfig
from grafana_foundation_sdk.cog.builder import Builder
from grafana_foundation_sdk.cog.encoder import JSONEncoder
from grafana_foundation_sdk.cog.variants import Dataquery
from grafana_foundation_sdk.models.common import (
    BigValueColorMode,
    BigValueGraphMode,
    GraphThresholdsStyleMode,
    StackingMode,
)
from grafana_foundation_sdk.models.dashboard import (
    DashboardCursorSync,
    DataSourceRef,
    Threshold,
    ThresholdsMode,
)

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "monitoring" / "grafana" / "dashboards"

DATASOURCE = DataSourceRef(type_val="prometheus", uid="prometheus")
RATE = "$__rate_interval"

# Thresholds drawn on the panels (the alert rules in monitoring/alerts.yml use the same).
SLA_FIRST_AUDIO_SECONDS = 0.5  # ORCH_SLA_FIRST_AUDIO_SECONDS default
SLA_COMPLIANCE_PERCENT = 95.0
ERROR_RATE_RATIO = 0.1
UTILISATION_RATIO = 0.9
QUEUE_DEPTH = 50.0
REALTIME_FACTOR = 1.0  # slower than real time: audio cannot keep up with playback
# Target: the agent's audio stops within 150 ms of the first voiced sample reaching us (the
# listener's uplink and playout come on top: benchmarks measure those at a real listener).
BARGEIN_ONSET_TO_STOP_SECONDS = 0.15


def of_component(expr: str, component: str) -> str:
    """A per-target series narrowed to the targets of one of our components."""
    info = f'voiceorch_build_info{{component="{component}"}}'
    return f"{expr} * on (job, instance) group_left () {info}"


@dataclass(frozen=True)
class Q:
    """One panel query: PromQL and its legend."""

    expr: str
    legend: str = ""


def quantiles(metric: str, by: str = "", qs: Sequence[float] = (0.5, 0.95, 0.99)) -> list[Q]:
    """p50/p95/p99 of a histogram summed over replicas (and optionally split by a label)."""
    group = f"le, {by}" if by else "le"
    prefix = "{{" + by + "}} " if by else ""
    return [
        Q(
            f"histogram_quantile({q}, sum by ({group}) (rate({metric}_bucket[{RATE}])))",
            f"{prefix}p{round(q * 100)}",
        )
        for q in qs
    ]


def _thresholds(steps: Sequence[tuple[float | None, str]]) -> dash.ThresholdsConfig:
    return (
        dash.ThresholdsConfig()
        .mode(ThresholdsMode.ABSOLUTE)
        .steps([Threshold(value=v, color=c) for v, c in steps])
    )


def _targets(queries: Sequence[Q]) -> list[Builder[Dataquery]]:
    return [
        prometheus.Dataquery()
        .expr(q.expr)
        .legend_format(q.legend or "__auto")
        .ref_id(chr(ord("A") + i))
        .datasource(DATASOURCE)
        for i, q in enumerate(queries)
    ]


def graph(
    title: str,
    description: str,
    queries: Sequence[Q],
    *,
    unit: str = "short",
    limit: float | None = None,
    lower_is_better: bool = True,
    stack: bool = False,
    min_value: float | None = 0,
    max_value: float | None = None,
    span: int = 8,
) -> timeseries.Panel:
    """A time series; `limit` draws a dashed red threshold line (an SLA or alert level)."""
    panel = (
        timeseries.Panel()
        .title(title)
        .description(description)
        .datasource(DATASOURCE)
        .targets(_targets(queries))
        .unit(unit)
        .span(span)
        .height(8)
        .fill_opacity(10)
        .line_width(1)
    )
    if min_value is not None:
        panel = panel.min(min_value)
    if max_value is not None:
        panel = panel.max(max_value)
    if stack:
        panel = panel.stacking(StackingConfig().mode(StackingMode.NORMAL)).fill_opacity(60)
    if limit is not None:
        good, bad = ("green", "red") if lower_is_better else ("red", "green")
        panel = panel.thresholds(_thresholds([(None, good), (limit, bad)])).thresholds_style(
            GraphThresholdsStyleConfig().mode(GraphThresholdsStyleMode.DASHED)
        )
    return panel


def single(
    title: str,
    description: str,
    query: Q,
    *,
    unit: str = "short",
    steps: Sequence[tuple[float | None, str]] = ((None, "green"),),
    decimals: int | None = None,
    span: int = 4,
) -> stat.Panel:
    """A single big number, coloured by thresholds."""
    panel = (
        stat.Panel()
        .title(title)
        .description(description)
        .datasource(DATASOURCE)
        .targets(_targets([query]))
        .unit(unit)
        .span(span)
        .height(8)
        .thresholds(_thresholds(steps))
        .color_mode(BigValueColorMode.BACKGROUND)
        .graph_mode(BigValueGraphMode.AREA)
    )
    if decimals is not None:
        panel = panel.decimals(decimals)
    return panel


def _dashboard(uid: str, title: str, description: str, tags: list[str]) -> dash.Dashboard:
    return (
        dash.Dashboard(title)
        .uid(uid)
        .description(description)
        .tags(tags)
        .editable()
        .refresh("15s")
        .time("now-1h", "now")
        .timezone("browser")
        .tooltip(DashboardCursorSync.CROSSHAIR)
    )


def _assemble(board: dash.Dashboard, rows: Sequence[tuple[str, Sequence[object]]]) -> object:
    panel_id = 1
    for row_title, panels in rows:
        board = board.with_row(dash.Row(row_title).id(panel_id))
        panel_id += 1
        for panel in panels:
            assert isinstance(panel, timeseries.Panel | stat.Panel)
            board = board.with_panel(panel.id(panel_id))
            panel_id += 1
    return board.build()


def overview() -> object:
    """The operator's dashboard (DESIGN.md §4): SLA, traffic, workers, sessions, barge-in."""
    sla = SLA_FIRST_AUDIO_SECONDS
    requests = f"sum(rate(voiceorch_requests_total[{RATE}]))"
    latency = [
        graph(
            "Time to first audio (p50 / p95 / p99)",
            f"Request received to first audio byte sent, all replicas. Dashed: the "
            f"{sla * 1000:.0f} ms SLA.",
            quantiles("voiceorch_first_audio_seconds"),
            unit="s",
            limit=sla,
            span=12,
        ),
        single(
            "SLA compliance",
            f"Utterances whose first audio came within {sla * 1000:.0f} ms, over the "
            f"dashboard's time range. Red below {SLA_COMPLIANCE_PERCENT:.0f} %.",
            Q(
                "100 * (1 - sum(increase(voiceorch_sla_violations_total[$__range]))"
                " / sum(increase(voiceorch_first_audio_seconds_count[$__range])))",
                "compliance",
            ),
            unit="percent",
            steps=[(None, "red"), (SLA_COMPLIANCE_PERCENT, "green")],
            decimals=2,
        ),
        graph(
            "SLA violations",
            "Utterances per second whose first audio was over the SLA, by route.",
            [
                Q(
                    f"sum by (route) (rate(voiceorch_sla_violations_total[{RATE}]))",
                    "{{route}}",
                )
            ],
            unit="reqps",
        ),
        graph(
            "First audio by route (p95)",
            "95th percentile time to first audio per route (HTTP, OpenAI-compatible, session).",
            quantiles("voiceorch_first_audio_seconds", by="route", qs=(0.95,)),
            unit="s",
            limit=sla,
            span=12,
        ),
        graph(
            "Synthesis real-time factor (p50 / p95)",
            "Synthesis seconds per second of audio, per completed utterance. Above 1 the "
            "worker is slower than playback.",
            quantiles("voiceorch_realtime_factor", qs=(0.5, 0.95)),
            limit=REALTIME_FACTOR,
            span=12,
        ),
    ]
    traffic = [
        graph(
            "Requests",
            "Public API requests per second by route and status class, all replicas.",
            [
                Q(
                    f"sum by (route, status) (rate(voiceorch_requests_total[{RATE}]))",
                    "{{route}} {{status}}",
                )
            ],
            unit="reqps",
        ),
        graph(
            "Error rate",
            "Errors over requests. Server errors (5xx, audio cut off mid-stream) page above "
            f"{ERROR_RATE_RATIO:.0%}; client errors are the callers' mistakes.",
            [
                Q(
                    f'sum(rate(voiceorch_errors_total{{class="server"}}[{RATE}])) / {requests}',
                    "server",
                ),
                Q(
                    f'sum(rate(voiceorch_errors_total{{class="client"}}[{RATE}])) / {requests}',
                    "client",
                ),
            ],
            unit="percentunit",
            limit=ERROR_RATE_RATIO,
        ),
        graph(
            "Errors by kind",
            "Errors per second by kind (the `code` of the API's error body).",
            [
                Q(
                    f"sum by (kind) (rate(voiceorch_errors_total[{RATE}]))",
                    "{{kind}}",
                )
            ],
            unit="reqps",
            stack=True,
        ),
    ]
    workers = [
        graph(
            "Worker utilisation",
            "Active streams over capacity, per worker and for the fleet (the registry as the "
            "orchestrators see it).",
            [
                Q("max by (worker) (voiceorch_fleet_worker_utilisation_ratio)", "{{worker}}"),
                Q("max(voiceorch_fleet_utilisation_ratio)", "fleet"),
            ],
            unit="percentunit",
            limit=UTILISATION_RATIO,
            max_value=1,
        ),
        graph(
            "Active vs idle workers",
            "Registered workers that are synthesizing, idle, or draining.",
            [Q("max by (state) (voiceorch_fleet_workers)", "{{state}}")],
            stack=True,
        ),
        graph(
            "Queue depth",
            "Utterances waiting for a synthesis slot, fleet total and per worker.",
            [
                Q("max(voiceorch_fleet_queue_depth)", "fleet"),
                Q("max by (worker) (voiceorch_fleet_worker_queue_depth)", "{{worker}}"),
            ],
            limit=QUEUE_DEPTH,
        ),
        graph(
            "Queue time (p50 / p95)",
            "Time utterances waited for a synthesis slot on their worker.",
            quantiles("voiceorch_queue_seconds", qs=(0.5, 0.95)),
            unit="s",
            limit=sla,
            span=12,
        ),
        single(
            "Store (Redis) reachable",
            "Replicas that reach the store right now, of all replicas scraped.",
            Q("sum(voiceorch_store_up) / count(voiceorch_store_up)", "reachable"),
            unit="percentunit",
            steps=[(None, "red"), (1, "green")],
            span=12,
        ),
    ]
    sessions = [
        graph(
            "Active sessions",
            "LiveKit sessions running, all replicas.",
            [Q("sum(voiceorch_active_sessions)", "sessions")],
        ),
        graph(
            "Session duration (p50 / p95)",
            "Duration of ended sessions.",
            quantiles("voiceorch_session_duration_seconds", qs=(0.5, 0.95)),
            unit="s",
        ),
        graph(
            "Messages per session (p50 / p95)",
            "Utterances spoken per ended session.",
            quantiles("voiceorch_session_utterances", qs=(0.5, 0.95)),
        ),
        graph(
            "Barge-in: speech onset to agent stopped (p50 / p95)",
            "From the arrival of the listener's first voiced sample to the agent's audio "
            "stopping at its LiveKit source (the listener's uplink and playout are not in it). "
            f"Dashed: {BARGEIN_ONSET_TO_STOP_SECONDS * 1000:.0f} ms target.",
            quantiles("voiceorch_bargein_onset_to_stop_seconds", qs=(0.5, 0.95)),
            unit="s",
            limit=BARGEIN_ONSET_TO_STOP_SECONDS,
        ),
        graph(
            "Barge-in: pause to decision (p95)",
            "From the agent pausing for a barge-in to the decision to resume or cancel.",
            quantiles("voiceorch_bargein_pause_to_decision_seconds", by="decision", qs=(0.95,)),
            unit="s",
        ),
        single(
            "Session takeovers",
            "Sessions taken over by another replica after theirs stopped heartbeating, over "
            "the dashboard's time range (the room rejoined, speech goes on).",
            Q("sum(increase(voiceorch_session_takeovers_total[$__range]))", "takeovers"),
            steps=[(None, "green"), (1, "orange")],
        ),
        graph(
            "Barge-ins and false interruptions",
            "Barge-ins per second, and those resumed as false interruptions.",
            [
                Q(f"sum(rate(voiceorch_bargeins_total[{RATE}]))", "barge-ins"),
                Q(
                    f"sum(rate(voiceorch_false_interruptions_total[{RATE}]))",
                    "false interruptions",
                ),
            ],
            unit="reqps",
        ),
    ]
    board = _dashboard(
        "voiceorch-overview",
        "Voice orchestrator: overview",
        "SLA, traffic, errors, workers, sessions and barge-in across all orchestrator replicas.",
        ["voice-orchestrator"],
    )
    return _assemble(
        board,
        [
            ("Latency and SLA", latency),
            ("Traffic and errors", traffic),
            ("Workers", workers),
            ("Sessions and barge-in", sessions),
        ],
    )


def workers() -> object:
    """Per-worker view from the workers' own /metrics."""
    by = "instance"
    streams = [
        graph(
            "Active streams",
            "Utterances holding a synthesis slot, per worker.",
            [Q(f"sum by ({by}) (voiceorch_worker_active_streams)", "{{instance}}")],
        ),
        graph(
            "Utilisation",
            "Active streams over the worker's capacity (TTS_WORKER_MAX_CONCURRENT_STREAMS).",
            [
                Q(
                    f"sum by ({by}) (voiceorch_worker_active_streams)"
                    f" / sum by ({by}) (voiceorch_worker_max_streams)",
                    "{{instance}}",
                )
            ],
            unit="percentunit",
            limit=UTILISATION_RATIO,
            max_value=1,
        ),
        graph(
            "Queue depth",
            "Utterances waiting for a slot, per worker.",
            [Q(f"sum by ({by}) (voiceorch_worker_queue_depth)", "{{instance}}")],
        ),
        graph(
            "Queue wait (p95)",
            "Time utterances waited for a slot.",
            quantiles("voiceorch_worker_queue_seconds", by=by, qs=(0.95,)),
            unit="s",
        ),
        graph(
            "First frame (p50 / p95)",
            "First text received to first frame sent, on the worker.",
            quantiles("voiceorch_worker_first_frame_seconds", qs=(0.5, 0.95)),
            unit="s",
            limit=SLA_FIRST_AUDIO_SECONDS,
        ),
        graph(
            "Inference time per utterance (p50 / p95)",
            "Engine compute time per utterance, summed over its sentences and clauses.",
            quantiles("voiceorch_worker_inference_seconds", qs=(0.5, 0.95)),
            unit="s",
        ),
    ]
    output = [
        graph(
            "Real-time factor (p50 / p95)",
            "Synthesis seconds per second of audio. Above 1 the worker cannot keep up.",
            quantiles("voiceorch_worker_realtime_factor", qs=(0.5, 0.95)),
            limit=REALTIME_FACTOR,
        ),
        graph(
            "Streams by outcome",
            "Synthesize streams ended per second: completed, cancelled, rejected (queue full).",
            [
                Q(
                    f"sum by (outcome) (rate(voiceorch_worker_streams_total[{RATE}]))",
                    "{{outcome}}",
                )
            ],
            unit="reqps",
            stack=True,
        ),
        graph(
            "Audio produced",
            "Seconds of audio produced per second, per worker.",
            [
                Q(
                    f"sum by ({by}) (rate(voiceorch_worker_audio_seconds_total[{RATE}]))",
                    "{{instance}}",
                )
            ],
        ),
    ]
    resources = [
        graph(
            "Voice load time",
            "How long the last load of each voice took.",
            [
                Q(
                    f"max by ({by}, voice) (voiceorch_worker_voice_load_seconds)",
                    "{{instance}} {{voice}}",
                )
            ],
            unit="s",
        ),
        graph(
            "GPU memory",
            "GPU memory used and installed per device (CUDA workers only; a CPU worker has "
            "no GPU series).",
            [
                Q(
                    f"sum by ({by}, device) (voiceorch_worker_gpu_memory_used_bytes)",
                    "{{instance}} gpu{{device}} used",
                ),
                Q(
                    f"sum by ({by}, device) (voiceorch_worker_gpu_memory_total_bytes)",
                    "{{instance}} gpu{{device}} total",
                ),
            ],
            unit="bytes",
        ),
        graph(
            "GPU utilisation",
            "Share of time each GPU was running kernels, per worker and device (CUDA workers "
            "only; a CPU worker has no GPU series).",
            [
                Q(
                    f"max by ({by}, device) (voiceorch_worker_gpu_utilization_ratio)",
                    "{{instance}} gpu{{device}}",
                )
            ],
            unit="percentunit",
            limit=UTILISATION_RATIO,
            max_value=1,
        ),
        graph(
            "Process CPU",
            "CPU seconds per second used by each worker process (inference threads included).",
            [
                Q(
                    f"sum by ({by}) ("
                    + of_component(f"rate(process_cpu_seconds_total[{RATE}])", "tts-worker")
                    + ")",
                    "{{instance}} cpu",
                ),
            ],
        ),
        graph(
            "Process memory",
            "Resident memory of each worker process.",
            [
                Q(
                    f"sum by ({by}) ("
                    + of_component("process_resident_memory_bytes", "tts-worker")
                    + ")",
                    "{{instance}}",
                )
            ],
            unit="bytes",
        ),
    ]
    board = _dashboard(
        "voiceorch-workers",
        "Voice orchestrator: TTS workers",
        "Each TTS worker's own metrics: streams, queue, inference, real-time factor, voices.",
        ["voice-orchestrator", "tts-worker"],
    )
    return _assemble(
        board,
        [
            ("Streams and latency", streams),
            ("Output", output),
            ("Resources", resources),
        ],
    )


DASHBOARDS = {
    "voiceorch-overview.json": overview,
    "voiceorch-workers.json": workers,
}


def render() -> dict[str, str]:
    """Every dashboard's JSON text, by file name."""
    return {
        name: json.dumps(build(), cls=JSONEncoder, indent=2, sort_keys=True) + "\n"
        for name, build in DASHBOARDS.items()
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--check", action="store_true", help="fail when the files are stale")
    args = parser.parse_args()
    stale = []
    for name, text in render().items():
        path = OUT / name
        current = path.read_text(encoding="utf-8") if path.exists() else None
        if current == text:
            continue
        stale.append(name)
        if not args.check:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text, encoding="utf-8")
    if args.check and stale:
        print(f"stale dashboards: {stale}; run python -m scripts.gen_dashboards", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
