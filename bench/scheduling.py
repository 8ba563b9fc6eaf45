"""`python -m bench.scheduling`: the deadline-scheduling scenarios of `make bench` alone, in
one run, their JSON and plots in bench/results/<timestamp>-scheduling.*.

- first audio of `/synthesize` against raw in-process Piper's first chunk, one request at a
  time, on the short, medium, multi-clause and long texts;
- the same texts with 8 `/synthesize` streams started together;
- the levels of simultaneous paragraph streams (ours only: Piper's HTTP server is the full
  run's baseline), the worker's measured throughput beside them;
- worker CPU on a LiveKit session utterance interrupted after 3 s (bench/interrupted.py).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

from bench import concurrency, first_audio, interrupted, plots
from bench.stack import running_stack

TEXTS = ("short", "medium", "multi_clause", "long_sentence")
RATE = 22050


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--iterations", type=int, default=10, help="sequential first audio")
    parser.add_argument("--rounds", type=int, default=3, help="rounds of the 8 streams")
    parser.add_argument("--levels", default="1,4,8,12,16,20,24")
    parser.add_argument("--repeats", type=int, default=3, help="interrupted utterances")
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results")
    args = parser.parse_args()
    # bench.run imports the scenario modules: import it late, as bench.bargein does
    from bench.run import CORPUS, environment, worker_capacity

    report: dict[str, Any] = {
        "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "iterations": args.iterations,
        "environment": environment(),
        "scenarios": {},
        "wall_seconds": {},
    }
    texts = {k: CORPUS[k] for k in TEXTS}
    mark = time.perf_counter()
    with running_stack() as stack:
        alone = first_audio.run(stack, texts, args.iterations)
        report["scenarios"]["first_audio"] = alone
        print(first_audio.table(alone), flush=True)
        at_once = first_audio.run_concurrent(stack, texts, 8, args.rounds, raw=alone)
        report["scenarios"]["first_audio_concurrent"] = at_once
        print(first_audio.concurrent_table(at_once), flush=True)
        report["wall_seconds"]["first_audio"] = round(time.perf_counter() - mark, 1)
        mark = time.perf_counter()

        levels = [int(n) for n in args.levels.split(",")]
        conc = concurrency.run(stack.api_url, None, CORPUS["paragraph"], RATE, levels)
        conc["text"] = "paragraph"
        conc["worker_capacity_ratio"] = worker_capacity(stack)
        report["scenarios"]["concurrency"] = conc
        print(concurrency.table(conc), flush=True)
        report["wall_seconds"]["concurrency"] = round(time.perf_counter() - mark, 1)
        mark = time.perf_counter()

    cut = interrupted.run(args.repeats)
    report["scenarios"]["interrupted"] = cut
    print(interrupted.table(cut), flush=True)
    report["wall_seconds"]["interrupted"] = round(time.perf_counter() - mark, 1)

    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / f"{time.strftime('%Y%m%dT%H%M%SZ', time.gmtime())}-scheduling.json"
    path.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    for p in [path, *plots.write_all(report, path)]:
        print(f"wrote {p}")


if __name__ == "__main__":
    main()
