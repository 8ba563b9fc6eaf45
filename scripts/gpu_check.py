"""One short run on a GPU machine (scripts/gpu_check.sh calls it):

1. Piper first audio on the benchmark texts (bench/corpus.json), CUDA against CPU, through
   the worker's own engine and segmenter: the time from the text to the first chunk of its
   first segment, as the worker would cut it (median of a few runs, after a warm-up).
2. When CosyVoice 2 weights are mounted (COSYVOICE_MODEL_DIR, or
   TTS_WORKER_COSYVOICE_MODEL_DIR), CosyVoice first audio and real-time factor at 1, 2 and 4
   concurrent streams.

Writes JSON (`--out`, default $OUT/gpu_check.json or ./gpu_check.json) and prints a table.
Exits 2 with a clear message, measuring nothing, when no NVIDIA GPU answers.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
CORPUS = ROOT / "bench" / "corpus.json"
NO_GPU_EXIT = 2


def gpu_cards() -> list[dict[str, str]]:
    """Cards nvidia-smi lists; empty when there is no driver or no device."""
    smi = shutil.which("nvidia-smi")
    if smi is None:
        return []
    try:
        out = subprocess.run(
            [smi, "--query-gpu=name,memory.total,driver_version", "--format=csv,noheader"],
            capture_output=True,
            text=True,
            timeout=20,
            check=True,
        ).stdout
    except (subprocess.SubprocessError, OSError):
        return []
    cards = []
    for line in out.strip().splitlines():
        name, memory, driver = (part.strip() for part in line.split(","))
        cards.append({"name": name, "memory": memory, "driver": driver})
    return cards


def first_segment(text: str) -> str:
    from tts_worker.settings import WorkerSettings
    from tts_worker.text_segmenter import TextSegmenter

    s = WorkerSettings()
    segmenter = TextSegmenter(s.min_clause_chars, s.max_segment_chars)
    segments = [*segmenter.push(text), *segmenter.flush()]
    return segments[0].text


def segments(text: str) -> list[str]:
    from tts_worker.settings import WorkerSettings
    from tts_worker.text_segmenter import TextSegmenter

    s = WorkerSettings()
    segmenter = TextSegmenter(s.min_clause_chars, s.max_segment_chars)
    return [seg.text for seg in [*segmenter.push(text), *segmenter.flush()]]


def time_to_first(chunks: Iterator[Any]) -> float:
    started = time.perf_counter()
    next(chunks)
    seconds = time.perf_counter() - started
    for _ in chunks:  # drain, so the next run starts on an idle engine
        pass
    return seconds


def piper_first_audio(corpus: dict[str, str], runs: int) -> dict[str, Any]:
    from tts_worker.engines.piper import CUDA_PROVIDER, PiperEngine, packaged_voice_files

    voice = "en_US-joe-medium"
    result: dict[str, Any] = {"voice": voice, "runs": runs, "providers": {}}
    for provider in ("cpu", "cuda"):
        engine = PiperEngine(packaged_voice_files(), voice, 2, True, provider)
        engine.load_voice(voice)
        active = engine._loaded[voice].session.get_providers()
        on_gpu = CUDA_PROVIDER in active
        time_to_first(engine.synthesize(voice, "Warm up."))
        per_text = {}
        for name, text in corpus.items():
            segment = first_segment(text)
            samples = [time_to_first(engine.synthesize(voice, segment)) for _ in range(runs)]
            per_text[name] = {"first_segment_chars": len(segment), "ms": _ms(samples)}
        result["providers"][provider] = {
            "session_providers": active,
            "ran_on_gpu": on_gpu,
            "first_audio": per_text,
        }
        del engine  # one engine's threads at a time
        gc.collect()
    return result


def cosyvoice_load(model_dir: Path) -> Any:
    from tts_worker.engines.cosyvoice import CosyVoiceEngine, load_cosyvoice2

    return CosyVoiceEngine(model_dir, load_cosyvoice2)


def cosyvoice_streams(engine: Any, text: str, streams: int) -> dict[str, Any]:
    """`streams` utterances at once, each segment by segment as the worker would."""
    voice = engine.default_voice
    firsts: list[float] = []
    rtfs: list[float] = []
    errors: list[str] = []
    lock = threading.Lock()
    start = threading.Barrier(streams)

    def one() -> None:
        try:
            start.wait()
            began = time.perf_counter()
            first: float | None = None
            samples = 0
            for segment in segments(text):
                for chunk in engine.synthesize(voice, segment):
                    if first is None:
                        first = time.perf_counter() - began
                    samples += len(chunk)
            wall = time.perf_counter() - began
            with lock:
                firsts.append(first or wall)
                rtfs.append(wall / (samples / engine.sample_rate))
        except Exception as exc:  # reported in the JSON, not hidden
            with lock:
                errors.append(repr(exc))

    threads = [threading.Thread(target=one) for _ in range(streams)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return {
        "streams": streams,
        "first_audio_ms": _ms(firsts),
        "rtf_mean": round(statistics.fmean(rtfs), 3) if rtfs else None,
        "rtf_max": round(max(rtfs), 3) if rtfs else None,
        "errors": errors,
    }


def cosyvoice_check(model_dir: Path, corpus: dict[str, str]) -> dict[str, Any]:
    started = time.perf_counter()
    engine = cosyvoice_load(model_dir)
    load_seconds = time.perf_counter() - started
    text = corpus["paragraph"]
    for _ in engine.synthesize(engine.default_voice, "Warm up."):
        pass
    return {
        "model_dir": str(model_dir),
        "load_seconds": round(load_seconds, 1),
        "voice": engine.default_voice,
        "text": "paragraph",
        "concurrency": [cosyvoice_streams(engine, text, n) for n in (1, 2, 4)],
    }


def _ms(samples: list[float]) -> dict[str, float]:
    values = sorted(s * 1000 for s in samples)
    if not values:
        return {}
    return {
        "p50": round(statistics.median(values), 1),
        "min": round(values[0], 1),
        "max": round(values[-1], 1),
    }


def table(rows: list[list[str]]) -> str:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)) for row in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def piper_table(piper: dict[str, Any]) -> str:
    cpu, cuda = piper["providers"]["cpu"], piper["providers"]["cuda"]
    rows = [["text", "chars", "cpu p50 ms", "cuda p50 ms", "speed-up"]]
    for name, cpu_text in cpu["first_audio"].items():
        a, b = cpu_text["ms"]["p50"], cuda["first_audio"][name]["ms"]["p50"]
        rows.append(
            [name, str(cpu_text["first_segment_chars"]), f"{a:.1f}", f"{b:.1f}", f"{a / b:.2f}x"]
        )
    text = table(rows)
    if not cuda["ran_on_gpu"]:
        text += (
            "\nWARNING: Piper's CUDA session fell back to the CPU "
            f"({cuda['session_providers']}): is onnxruntime-gpu installed (extra piper-gpu)?"
        )
    return text


def report(result: dict[str, Any]) -> str:
    out = [f"GPU: {', '.join(c['name'] for c in result['gpus'])}"]
    piper = result["piper"]
    if isinstance(piper, dict):
        out += ["", "Piper first audio (first segment, median)", piper_table(piper)]
    else:
        out += ["", f"Piper: {piper}"]
    cosy = result.get("cosyvoice")
    if isinstance(cosy, dict):
        rows = [["streams", "first audio p50 ms", "max ms", "RTF mean", "RTF max", "errors"]]
        for c in cosy["concurrency"]:
            first = c["first_audio_ms"]
            rows.append(
                [
                    str(c["streams"]),
                    str(first.get("p50", "-")),
                    str(first.get("max", "-")),
                    str(c["rtf_mean"]),
                    str(c["rtf_max"]),
                    str(len(c["errors"])),
                ]
            )
        out += ["", f"CosyVoice 2 ({cosy['voice']}, paragraph)", table(rows)]
    else:
        out += ["", f"CosyVoice: {cosy}"]
    return "\n".join(out)


def main(
    argv: list[str] | None = None, cards: Callable[[], list[dict[str, str]]] = gpu_cards
) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--out", type=Path, default=Path(os.environ.get("OUT", ".")) / "gpu_check.json"
    )
    parser.add_argument("--runs", type=int, default=5, help="timed runs per text and provider")
    args = parser.parse_args(argv)
    found = cards()
    if not found:
        print(
            "gpu_check: no NVIDIA GPU found (nvidia-smi is missing or lists no device). "
            "This check only means something on a GPU machine; nothing was measured.",
            file=sys.stderr,
        )
        return NO_GPU_EXIT
    corpus: dict[str, str] = json.loads(CORPUS.read_text(encoding="utf-8"))
    result: dict[str, Any] = {
        "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "host": platform.node(),
        "python": platform.python_version(),
        "gpus": found,
    }
    try:
        result["piper"] = piper_first_audio(corpus, args.runs)
    except ImportError as exc:  # e.g. inside the CosyVoice image, which has no Piper
        result["piper"] = f"skipped: Piper is not installed here ({exc})"
    folder = os.environ.get("COSYVOICE_MODEL_DIR") or os.environ.get(
        "TTS_WORKER_COSYVOICE_MODEL_DIR"
    )
    if folder:
        result["cosyvoice"] = cosyvoice_check(Path(folder), corpus)
    else:
        result["cosyvoice"] = "skipped: set COSYVOICE_MODEL_DIR to the CosyVoice2-0.5B folder"
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    print(report(result))
    print(f"\nJSON: {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
