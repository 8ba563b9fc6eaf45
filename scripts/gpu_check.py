"""The GPU check: one command (scripts/gpu_check.sh runs it) on a machine with an NVIDIA GPU.

1. Piper first audio, CPU against CUDA, over texts of varied lengths. Every text has a length
   the session has not seen, so it is a new input shape for onnxruntime: its first run is
   timed apart from the median of the repeats (without Piper's `cudnn_conv_algo_search:
   HEURISTIC`, onnxruntime would benchmark convolution algorithms on each new shape).
2. CosyVoice 2 first audio and real-time factor at 1, 2 and 4 concurrent streams, with a
   zero-shot voice the check registers itself from a reference clip (`--reference-clip` and
   `--reference-text`, else a sentence Piper speaks), the worker's way: its segmenter, its
   engine. Then a cancel: a stream closed mid-sentence must leave no LLM thread running and
   nothing in upstream's per-utterance state.

A part its environment cannot run (no Piper, no CosyVoice source, no weights) is reported as
skipped, with the reason. Writes JSON (`--out`, default $OUT/gpu_check.json or
./gpu_check.json) and prints tables. Exits 2 with a clear message, measuring nothing, when no
NVIDIA GPU answers.
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
import tempfile
import threading
import time
import wave
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
CORPUS = ROOT / "bench" / "corpus.json"
NO_GPU_EXIT = 2
PIPER_VOICE = "en_US-joe-medium"
# Lengths (characters) of the Piper texts: each a new input shape, short to a long segment.
TEXT_LENGTHS = (12, 31, 57, 88, 126, 171, 240)
REFERENCE_TEXT = (
    "This is the reference voice for the check. It speaks plainly, at an even pace, "
    "for a few seconds."
)
STREAM_COUNTS = (1, 2, 4)
ZERO_SHOT_VOICE = "gpu-check"


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


def varied_texts(source: str, lengths: Iterable[int] = TEXT_LENGTHS) -> list[str]:
    """Prefixes of source cut at a word boundary near each length, every one a distinct
    length, each ending in a full stop."""
    words = source.split()
    texts: list[str] = []
    for target in lengths:
        text = ""
        for word in words:
            if text and len(text) + 1 + len(word) > target:
                break
            text = f"{text} {word}" if text else word
        text = text.rstrip(",;:.") + "."
        if texts and len(text) <= len(texts[-1]):
            raise ValueError(f"source text too short for a {target}-character text")
        texts.append(text)
    return texts


def segments(text: str) -> list[str]:
    """The text cut as the worker cuts it before synthesis."""
    from tts_worker.settings import WorkerSettings
    from tts_worker.text_segmenter import TextSegmenter

    s = WorkerSettings()
    segmenter = TextSegmenter(s.min_clause_chars, s.max_segment_chars)
    return [seg.text for seg in [*segmenter.push(text), *segmenter.flush()]]


def _audio(chunk: Any) -> Any:
    return getattr(chunk, "audio", chunk)  # TimedAudio or bare audio


def time_to_first(chunks: Iterator[Any]) -> float:
    started = time.perf_counter()
    next(chunks)
    seconds = time.perf_counter() - started
    for _ in chunks:  # drain, so the next run starts on an idle engine
        pass
    return seconds


def piper_first_audio(
    texts: list[str], runs: int, providers: Iterable[str] = ("cpu", "cuda")
) -> dict[str, Any]:
    """Per provider: the first audio of each text on its first run (a new shape) and the
    median of `runs` repeats."""
    from tts_worker.engines.piper import CUDA_PROVIDER, PiperEngine, packaged_voice_files

    result: dict[str, Any] = {"voice": PIPER_VOICE, "runs": runs, "providers": {}}
    for provider in providers:
        engine = PiperEngine(packaged_voice_files(), PIPER_VOICE, 2, True, provider)  # type: ignore[arg-type]
        engine.load_voice(PIPER_VOICE)
        session = engine._loaded[PIPER_VOICE].session
        active = session.get_providers()
        time_to_first(engine.synthesize(PIPER_VOICE, "Warm up."))
        per_text = []
        for text in texts:
            new_shape = time_to_first(engine.synthesize(PIPER_VOICE, text))
            repeats = [time_to_first(engine.synthesize(PIPER_VOICE, text)) for _ in range(runs)]
            per_text.append(
                {
                    "chars": len(text),
                    "new_shape_ms": _round_ms(new_shape),
                    "repeat_ms": _ms(repeats),
                }
            )
        result["providers"][provider] = {
            "session_providers": active,
            "provider_options": session.get_provider_options(),
            "ran_on_gpu": CUDA_PROVIDER in active,
            "first_audio": per_text,
        }
        del engine, session  # one engine's threads at a time
        gc.collect()
    return result


def piper_reference_clip(folder: Path) -> tuple[Path, str]:
    """REFERENCE_TEXT spoken by Piper's packaged voice, as a 16-bit WAV."""
    import numpy as np

    from tts_worker.engines.piper import PiperEngine, packaged_voice_files

    engine = PiperEngine(packaged_voice_files(), PIPER_VOICE, 2, True, "cpu")
    rate = engine.voice(PIPER_VOICE).native_sample_rate
    audio = np.concatenate([_audio(c) for c in engine.synthesize(PIPER_VOICE, REFERENCE_TEXT)])
    clip = folder / "reference.wav"
    with wave.open(str(clip), "wb") as wav:
        wav.setnchannels(1)
        wav.setsampwidth(2)
        wav.setframerate(rate)
        wav.writeframes((np.clip(audio, -1, 1) * 32767).astype("<i2").tobytes())
    return clip, REFERENCE_TEXT


def cosyvoice_streams(engine: Any, voice: str, text: str, streams: int) -> dict[str, Any]:
    """`streams` utterances at once, each segment by segment as the worker would."""
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
                    samples += len(_audio(chunk))
            wall = time.perf_counter() - began
            with lock:
                firsts.append(first if first is not None else wall)
                rtfs.append(wall / (samples / engine.sample_rate))
        except Exception as exc:  # reported in the JSON, not hidden
            with lock:
                errors.append(repr(exc))

    threads = [threading.Thread(target=one, name=f"gpu-check-{n}") for n in range(streams)]
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


def _gpu_memory_bytes() -> int | None:
    torch = sys.modules.get("torch")  # only where CosyVoice brought it in
    if torch is None or not torch.cuda.is_available():
        return None
    return int(torch.cuda.memory_allocated())


def cosyvoice_cancel(engine: Any, voice: str, text: str, bound: float = 10.0) -> dict[str, Any]:
    """Close a stream after its first chunk: its LLM thread must end and upstream's
    per-utterance state must empty, within `bound` seconds."""
    before = _gpu_memory_bytes()
    chunks = engine.synthesize(voice, text)
    next(chunks)
    closed = time.perf_counter()
    chunks.close()
    while engine.live_llm_threads() and time.perf_counter() - closed < bound:
        time.sleep(0.005)
    ended = time.perf_counter() - closed
    return {
        "llm_threads_left": len(engine.live_llm_threads()),
        "ended_ms": _round_ms(ended),
        "state_left": engine.upstream_state(),
        "gpu_memory_allocated_before": before,
        "gpu_memory_allocated_after": _gpu_memory_bytes(),
    }


def cosyvoice_check(
    model_dir: Path,
    reference: tuple[Path, str],
    text: str,
    load: Callable[[Path], Any] | None = None,
    stream_counts: Iterable[int] = STREAM_COUNTS,
) -> dict[str, Any]:
    """Load CosyVoice 2 from model_dir with the engine's own loader (or `load`), register
    the reference as a zero-shot voice, then measure."""
    from tts_worker.engines.cosyvoice import CosyVoiceEngine, ZeroShotVoice, load_cosyvoice2

    clip, transcript = reference
    started = time.perf_counter()
    engine = CosyVoiceEngine(
        model_dir, load or load_cosyvoice2, {ZERO_SHOT_VOICE: ZeroShotVoice(clip, transcript)}
    )
    load_seconds = time.perf_counter() - started
    engine.load_voice(ZERO_SHOT_VOICE)
    for _ in engine.synthesize(ZERO_SHOT_VOICE, "Warm up, please."):
        pass
    return {
        "model_dir": str(model_dir),
        "load_seconds": round(load_seconds, 1),
        "voice_register_seconds": round(engine.load_seconds[ZERO_SHOT_VOICE], 3),
        "voice": ZERO_SHOT_VOICE,
        "text_chars": len(text),
        "concurrency": [cosyvoice_streams(engine, ZERO_SHOT_VOICE, text, n) for n in stream_counts],
        "cancel": cosyvoice_cancel(engine, ZERO_SHOT_VOICE, text),
    }


def _round_ms(seconds: float) -> float:
    return round(seconds * 1000, 1)


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
    providers = piper["providers"]
    names = list(providers)
    header = ["chars"]
    for name in names:
        header += [f"{name} new ms", f"{name} repeat ms"]
    rows = [header]
    for index, first in enumerate(providers[names[0]]["first_audio"]):
        row = [str(first["chars"])]
        for name in names:
            measured = providers[name]["first_audio"][index]
            row += [f"{measured['new_shape_ms']:.1f}", f"{measured['repeat_ms']['p50']:.1f}"]
        rows.append(row)
    text = table(rows)
    cuda = providers.get("cuda")
    if cuda is not None and not cuda["ran_on_gpu"]:
        text += (
            "\nWARNING: Piper's CUDA session fell back to the CPU "
            f"({cuda['session_providers']}): is onnxruntime-gpu installed (extra piper-gpu)?"
        )
    return text


def report(result: dict[str, Any]) -> str:
    out = [f"GPU: {', '.join(c['name'] for c in result['gpus'])}"]
    piper = result["piper"]
    if isinstance(piper, dict):
        out += [
            "",
            "Piper first audio (new input shape, then median of repeats)",
            piper_table(piper),
        ]
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
        cancel = cosy["cancel"]
        out += [
            "",
            f"CosyVoice 2 (zero-shot voice, {cosy['text_chars']} characters)",
            table(rows),
            f"cancel: {cancel['llm_threads_left']} LLM threads left after {cancel['ended_ms']} ms, "
            f"upstream state left {cancel['state_left']}",
        ]
    else:
        out += ["", f"CosyVoice: {cosy}"]
    return "\n".join(out)


def main(
    argv: list[str] | None = None, cards: Callable[[], list[dict[str, str]]] = gpu_cards
) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument(
        "--out", type=Path, default=Path(os.environ.get("OUT", ".")) / "gpu_check.json"
    )
    parser.add_argument("--runs", type=int, default=5, help="repeats per text and provider")
    parser.add_argument(
        "--cosyvoice-model-dir",
        type=Path,
        default=os.environ.get("COSYVOICE_MODEL_DIR")
        or os.environ.get("TTS_WORKER_COSYVOICE_MODEL_DIR"),
        help="the CosyVoice2-0.5B folder (default: $COSYVOICE_MODEL_DIR)",
    )
    parser.add_argument("--reference-clip", type=Path, help="16-bit WAV, 1-30 s, of one voice")
    parser.add_argument("--reference-text", help="what is said in --reference-clip")
    args = parser.parse_args(argv)
    if (args.reference_clip is None) != (args.reference_text is None):
        parser.error("--reference-clip and --reference-text go together")
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
        result["piper"] = piper_first_audio(varied_texts(corpus["paragraph"]), args.runs)
    except ImportError as exc:  # e.g. inside the CosyVoice image, which has no Piper
        result["piper"] = f"skipped: Piper is not installed here ({exc})"
    with tempfile.TemporaryDirectory(prefix="gpu-check-") as scratch:
        result["cosyvoice"] = _cosyvoice_part(args, corpus["paragraph"], Path(scratch))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    print(report(result))
    print(f"\nJSON: {args.out}")
    return 0


def _cosyvoice_part(args: argparse.Namespace, text: str, scratch: Path) -> dict[str, Any] | str:
    if args.cosyvoice_model_dir is None:
        return "skipped: pass --cosyvoice-model-dir (or set COSYVOICE_MODEL_DIR)"
    if args.reference_clip is not None:
        reference = (args.reference_clip, args.reference_text)
    else:
        try:
            reference = piper_reference_clip(scratch)
        except ImportError as exc:
            return f"skipped: no reference clip (pass --reference-clip/--reference-text): {exc}"
    try:
        return cosyvoice_check(Path(args.cosyvoice_model_dir), reference, text)
    except RuntimeError as exc:  # CosyVoice's source or torch missing in this environment
        return f"skipped: {exc}"


if __name__ == "__main__":
    sys.exit(main())
