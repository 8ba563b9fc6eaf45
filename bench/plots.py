"""PNG plots of a results JSON, written next to it as <stem>-<plot>.png (small, committable)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

FIRST_AUDIO_SERIES = (
    ("raw_piper_first_chunk", "raw Piper (in-process)"),
    ("synthesize_first_audio", "ours /synthesize"),
    ("openai_speech_first_audio", "ours /v1/audio/speech"),
    ("piper_http_first_audio", "Piper HTTP server"),
    ("wyoming_piper_first_audio", "wyoming-piper"),
)


def first_audio(
    results: dict[str, Any], path: Path, concurrent: dict[str, Any] | None = None
) -> Path:
    texts = list(results)
    series = [(k, label) for k, label in FIRST_AUDIO_SERIES if k in results[texts[0]]]
    values = {key: [results[t][key]["p50"] * 1000 for t in texts] for key, _ in series}
    if concurrent is not None:
        # Texts not run at once get no bar (0 on the log scale is left out).
        rows = concurrent["texts"]
        key = f"ours /synthesize, {concurrent['streams']} at once"
        values[key] = [rows[t]["first_audio"]["p50"] * 1000 if t in rows else 0 for t in texts]
        series.append((key, key))
    width = 0.8 / len(series)
    fig, ax = plt.subplots(figsize=(8, 4), dpi=80)
    for i, (key, label) in enumerate(series):
        xs = [t + (i - (len(series) - 1) / 2) * width for t in range(len(texts))]
        ax.bar(xs, values[key], width, label=label)
    ax.set_xticks(range(len(texts)), [f"{t}\n({results[t]['words']} words)" for t in texts])
    ax.set_ylabel("first audible sample, p50 (ms)")
    ax.set_yscale("log")
    ax.set_title("First audio (lower is better)")
    ax.legend(fontsize=8)
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path


def concurrency(result: dict[str, Any], path: Path) -> Path:
    fig, (left, right) = plt.subplots(1, 2, figsize=(9, 3.8), dpi=80)
    for name, label in (("ours", "ours /synthesize"), ("piper_http", "Piper HTTP server")):
        if name not in result:
            continue
        rows = result[name]["per_level"]
        levels = [int(n) for n in rows if "rtf" in rows[n]]
        left.plot(
            levels,
            [rows[str(n)]["first_audio_seconds"]["p50"] * 1000 for n in levels],
            "o-",
            label=f"{label} p50",
        )
        left.plot(
            levels,
            [rows[str(n)]["first_audio_seconds"]["p95"] * 1000 for n in levels],
            "x--",
            label=f"{label} p95",
        )
        right.plot(levels, [rows[str(n)]["rtf"]["max"] for n in levels], "o-", label=label)
    left.axhline(1000, color="grey", linestyle=":")
    levels = [int(n) for n in result["levels"]]
    for ax in (left, right):
        ax.set_xscale("log", base=2)
        ax.set_xticks(levels, [str(n) for n in levels])
    left.set_yscale("log")
    left.set_xlabel("concurrent streams")
    left.set_ylabel("first audio (ms)")
    left.set_title("First audio under load")
    left.legend(fontsize=7)
    left.grid(alpha=0.3)
    right.axhline(1.0, color="grey", linestyle=":")
    right.set_xlabel("concurrent streams")
    right.set_ylabel("real-time factor, worst stream")
    right.set_title("Synthesis time / audio time")
    right.legend(fontsize=7)
    right.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path


def write_all(report: dict[str, Any], json_path: Path) -> list[Path]:
    stem = json_path.with_suffix("")
    written = []
    scenarios = report["scenarios"]
    if "first_audio" in scenarios:
        written.append(
            first_audio(
                scenarios["first_audio"],
                Path(f"{stem}-first-audio.png"),
                scenarios.get("first_audio_concurrent"),
            )
        )
    if "concurrency" in scenarios:
        written.append(concurrency(scenarios["concurrency"], Path(f"{stem}-concurrency.png")))
    return written
