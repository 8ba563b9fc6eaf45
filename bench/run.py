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
from importlib import metadata
from pathlib import Path
from typing import Any

from bench import bargein, first_audio, metrics_overhead
from bench.stack import running_stack

ROOT = Path(__file__).resolve().parent.parent
CORPUS = json.loads((ROOT / "bench" / "corpus.json").read_text(encoding="utf-8"))


def environment() -> dict[str, Any]:
    versions = {}
    for dist in ("voice-orchestrator", "piper-tts", "onnxruntime", "grpcio", "fastapi", "uvicorn"):
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
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "python": platform.python_version(),
        "versions": versions,
    }


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
    args = parser.parse_args()

    iterations = 1 if args.quick else args.iterations
    corpus = {k: CORPUS[k] for k in ("short", "long_sentence")} if args.quick else CORPUS
    report: dict[str, Any] = {
        "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "quick": args.quick,
        "iterations": iterations,
        "environment": environment(),
        "scenarios": {},
    }
    with running_stack(**dict(e.split("=", 1) for e in args.worker_env)) as stack:
        results = first_audio.run(stack, corpus, iterations)
        report["scenarios"]["first_audio"] = results
        print("\nFirst audio, p50 (ours = POST /synthesize over loopback; raw = in-process Piper)")
        print(first_audio.table(results))

    interruptions, false_interruptions = (2, 1) if args.quick else (20, 5)
    bargein_result = bargein.run(interruptions, false_interruptions)
    report["scenarios"]["bargein"] = bargein_result
    print("\nBarge-in through a real livekit-server (default settings)")
    print(bargein.table(bargein_result))

    overhead = metrics_overhead.run(scrapes=50 if args.quick else 500)
    report["scenarios"]["metrics_overhead"] = overhead
    print("\nMetrics overhead")
    print(metrics_overhead.table(overhead))

    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / f"{time.strftime('%Y%m%dT%H%M%SZ', time.gmtime())}.json"
    path.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    print(f"\nwrote {path.relative_to(ROOT) if path.is_relative_to(ROOT) else path}")


if __name__ == "__main__":
    main()
