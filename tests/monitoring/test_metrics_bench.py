"""bench/metrics_overhead.py runs end to end (few scrapes); its numbers are reported by
`make bench`, not asserted here: the machines are shared and noisy."""

from __future__ import annotations

from bench import metrics_overhead


def test_metrics_bench_runs_and_reports() -> None:
    result = metrics_overhead.run(scrapes=20)
    assert result["scrape_http_ms"]["n"] == 20
    assert result["scrape_http_ms"]["p95"] > 0
    assert result["exposition_lines"] > 200
    assert set(result["record_ns"]) >= {"observe_first_audio", "one_utterance"}
    assert "scrape over HTTP" in metrics_overhead.table(result)
