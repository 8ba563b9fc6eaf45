"""`make bench` still runs end to end (one quick iteration); its numbers are not asserted."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from tests.processes import ROOT


def test_bench_quick_run_writes_results(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "bench.run", "--quick", "--out", str(tmp_path)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    [result] = list(tmp_path.glob("*.json"))
    report = json.loads(result.read_text())
    rows = report["scenarios"]["first_audio"]
    assert set(rows) == {"short", "long_sentence"}
    for row in rows.values():
        assert row["synthesize_first_audio"]["n"] == 1
        assert row["synthesize_first_audio"]["p50"] > 0
    assert report["scenarios"]["bargein"]["onset_to_last_frame_seconds"]["n"] == 2
    assert report["scenarios"]["bargein"]["false_interruption_resume_delay_seconds"]["n"] == 1
    assert "metrics_overhead" in report["scenarios"]
    assert "First audio" in done.stdout and "Barge-in" in done.stdout
