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
    bargein = report["scenarios"]["bargein"]
    assert bargein["acknowledgements"]["spoken"] == 2  # one of each kind in each voice
    assert bargein["interruptions"]["spoken"] == 2
    assert bargein["onset_to_silence_at_listener_seconds"]["n"] == 4
    assert bargein["transcript_latency_seconds"]["n"] == 4
    assert bargein["orchestrator_cpu_cores"]["corpus_session"] > 0
    for row in rows.values():
        assert row["piper_http_first_audio"]["n"] == 1
        assert row["speedup_vs_piper_http_p50"] > 0
    at_once = report["scenarios"]["first_audio_concurrent"]
    assert at_once["streams"] == 2
    assert set(at_once["texts"]) == {"short", "long_sentence"}
    for row in at_once["texts"].values():
        assert row["first_audio"]["n"] == 2
        assert row["ratio_p50_vs_raw"] > 0
    fleet = report["scenarios"]["fleet"]
    assert fleet["takeover"]["kill_to_next_utterance_audible_seconds"]["n"] == 1
    assert fleet["resume"]["reconnects"] == 5
    assert set(fleet["rate_limit"]["overhead_per_request_us"]) == {"in_process", "redis"}
    levels = report["scenarios"]["concurrency"]
    for system in ("ours", "piper_http"):
        assert set(levels[system]["per_level"]) == {"1", "2"}
        assert levels[system]["per_level"]["2"]["streams"] == 2
        assert "largest_level_without_underruns" in levels[system]
        assert "largest_level_real_time" in levels[system]
        assert "largest_level_no_underrun_first_audio_p95_1s" in levels[system]
        assert levels[system]["throughput_realtime_max"] > 0
    assert levels["worker_capacity_ratio"] > 0
    cut = report["scenarios"]["interrupted"]
    for case in ("bounded", "unbounded", "whole"):
        assert cut[case]["worker_cpu_seconds"]["n"] == 1
        assert cut[case]["worker_cpu_seconds"]["p50"] > 0
    overheads = report["scenarios"]["overheads"]
    assert overheads["startup"]["worker_to_serving_seconds"]["n"] == 1
    assert overheads["worker_voice_memory"]["rss_per_loaded_voice_mib"] is not None
    assert overheads["orchestrator_sessions"]["sessions"] == 1
    assert report["wyoming_piper"]["ran"] is False  # skipped in --quick
    assert "metrics_overhead" in report["scenarios"]
    formats = report["scenarios"]["formats"]
    assert formats["first_byte_vs_pcm"]["mp3"]["n"] == 1
    assert formats["encoder"]["opus"]["cpu_seconds_per_audio_second"]["n"] == 1
    assert {p.name.removeprefix(result.stem) for p in tmp_path.glob("*.png")} == {
        "-first-audio.png",
        "-concurrency.png",
    }
    headings = ("First audio", "Concurrency", "Response formats", "Barge-in", "interrupted")
    for heading in (*headings, "Overheads"):
        assert heading in done.stdout
