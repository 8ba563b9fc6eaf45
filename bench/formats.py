"""Response formats and text normalization: what encoding and normalizing cost.

- First byte per format over POST /synthesize, divided by raw PCM's on the same text in
  the same iteration (formats alternate inside each iteration, so drift hits all alike).
  The target is <= 1.1 for mp3 and opus: encoding must not hold the first audio back.
- Encoder CPU per audio second: CPU time of the encoding thread for real Piper speech fed
  in 20 ms frames, as the orchestrator feeds it.
- Normalization cost per 1,000 characters, on the corpus and on LLM-style markdown: the
  whole text at once, and as the worker does it (segment by segment as the text streams in).

Run alone with `python -m bench.formats [--quick] [--out DIR]`; `bench/run.py` calls `run()`.
Nothing is asserted: the machines are shared and noisy.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

import httpx

from bench.stack import Stack, running_stack
from bench.stats import summary
from orchestrator.synthesis.encoders import ResponseFormat, create_encoder
from tts_worker.text import normalize
from tts_worker.text.segments import UtteranceText
from tts_worker.text_segmenter import TextSegmenter

ROOT = Path(__file__).resolve().parent.parent
CORPUS = json.loads((ROOT / "bench" / "corpus.json").read_text(encoding="utf-8"))
FORMATS = [f.value for f in ResponseFormat]
MARKDOWN = (
    "## Your order 🚀\n\nThanks for asking! Here is **what it costs** as of Jan 5, 2024:\n\n"
    "- The *basic* plan is $49.95 a month (12.5% off until 3:30 pm).\n"
    "- Mail sales@example.com or see [the docs](https://example.com/docs?ref=chat).\n"
    "- Shipping takes 3-5 days and weighs about 2.5 kg.\n\n"
    "> Note: version 3.11.2 is out, and the `api_key` goes in your settings. 👍\n"
)
FRAME_MS = 20


def first_byte_seconds(client: httpx.Client, body: dict[str, Any]) -> float:
    started = time.perf_counter()
    with client.stream("POST", "/synthesize", json=body) as response:
        response.raise_for_status()
        for chunk in response.iter_bytes():
            if chunk:
                return time.perf_counter() - started
    raise RuntimeError("empty body")


def first_byte_ratios(stack: Stack, text: str, iterations: int) -> dict[str, Any]:
    """First byte of every format and of raw PCM, alternating within each iteration."""
    samples: dict[str, list[float]] = {fmt: [] for fmt in FORMATS}
    ratios: dict[str, list[float]] = {fmt: [] for fmt in FORMATS if fmt != "pcm"}
    with httpx.Client(base_url=stack.api_url, timeout=60) as client:
        first_byte_seconds(client, {"text": text, "format": "pcm"})  # warm the voice
        for _ in range(iterations):
            for fmt in FORMATS:
                samples[fmt].append(first_byte_seconds(client, {"text": text, "format": fmt}))
            for fmt in ratios:
                ratios[fmt].append(samples[fmt][-1] / samples["pcm"][-1])
    return {
        "first_byte_seconds": {fmt: summary(v) for fmt, v in samples.items()},
        "first_byte_vs_pcm": {fmt: summary(v) for fmt, v in ratios.items()},
    }


def speech_pcm(stack: Stack, text: str, rate: int) -> bytes:
    with httpx.Client(base_url=stack.api_url, timeout=60) as client:
        response = client.post(
            "/synthesize", json={"text": text, "format": "pcm", "sample_rate": rate}
        )
        response.raise_for_status()
        return response.content


def encoder_cpu(pcm: bytes, rate: int, iterations: int) -> dict[str, Any]:
    """CPU seconds of encoding per second of audio, per format."""
    frame = rate * FRAME_MS // 1000 * 2
    frames = [pcm[i : i + frame] for i in range(0, len(pcm), frame)]
    audio_seconds = len(pcm) / 2 / rate
    result: dict[str, Any] = {}
    for fmt in ResponseFormat:
        costs = []
        for _ in range(iterations):
            started = time.thread_time()
            encoder = create_encoder(fmt, rate)
            size = sum(len(encoder.encode(f)) for f in frames) + len(encoder.close())
            costs.append((time.thread_time() - started) / audio_seconds)
        result[fmt.value] = {
            "cpu_seconds_per_audio_second": summary(costs),
            "bytes_per_audio_second": round(size / audio_seconds),
        }
    return result


def _worker_path_seconds(text: str, chunk: int = 40) -> float:
    """What the worker does with a streamed text: watch it arrive, normalize each segment
    (the segmenter's own cost is left out: it runs with normalization off too)."""
    words = UtteranceText()
    segments = []
    segmenter = TextSegmenter()
    for i in range(0, len(text), chunk):
        segments += segmenter.push(text[i : i + chunk])
    segments += segmenter.flush()
    started = time.perf_counter()
    for i in range(0, len(text), chunk):
        words.push(text[i : i + chunk])
    for segment in segments:
        words.spoken(segment)
    return time.perf_counter() - started


def normalization_cost(iterations: int) -> dict[str, Any]:
    """Seconds of normalization per 1,000 characters of input."""
    texts = {"corpus": " ".join(CORPUS.values()), "markdown": MARKDOWN * 20}
    result: dict[str, Any] = {}
    for name, text in texts.items():
        whole, streamed = [], []
        for _ in range(max(3, iterations)):
            started = time.perf_counter()
            normalize(text)
            whole.append((time.perf_counter() - started) / len(text) * 1000)
            streamed.append(_worker_path_seconds(text) / len(text) * 1000)
        result[name] = {
            "chars": len(text),
            "seconds_per_1000_chars": summary(whole),
            "worker_segments_seconds_per_1000_chars": summary(streamed),
        }
    return result


def run(stack: Stack, iterations: int, text: str) -> dict[str, Any]:
    rate = 24000
    return {
        "text_chars": len(text),
        **first_byte_ratios(stack, text, iterations),
        "encoder": encoder_cpu(speech_pcm(stack, CORPUS["paragraph"], rate), rate, iterations),
        "encoder_sample_rate": rate,
        "normalization": normalization_cost(iterations),
    }


def table(result: dict[str, Any]) -> str:
    rows = [f"{'format':8} {'first byte p50':>15} {'x pcm p50':>10} {'cpu/audio s':>12}"]
    for fmt in FORMATS:
        first = result["first_byte_seconds"][fmt]["p50"]
        ratio = result["first_byte_vs_pcm"].get(fmt, {"p50": 1.0})["p50"]
        cpu = result["encoder"][fmt]["cpu_seconds_per_audio_second"]["p50"]
        rows.append(f"{fmt:8} {first * 1000:13.1f}ms {ratio:10.2f} {cpu:12.4f}")
    for name, row in result["normalization"].items():
        cost = row["seconds_per_1000_chars"]["p50"] * 1000
        streamed = row["worker_segments_seconds_per_1000_chars"]["p50"] * 1000
        rows.append(
            f"normalization ({name}): {cost:.2f} ms per 1,000 characters whole, "
            f"{streamed:.2f} ms segment by segment as the worker does it"
        )
    return "\n".join(rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--iterations", type=int, default=15)
    parser.add_argument("--quick", action="store_true", help="one iteration (CI smoke)")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results")
    args = parser.parse_args()
    iterations = 1 if args.quick else args.iterations
    text = CORPUS["short" if args.quick else "long_sentence"]
    with running_stack() as stack:
        result = run(stack, iterations, text)
    print("Response formats (first byte over POST /synthesize; x pcm = ratio to raw PCM)")
    print(table(result))
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / f"formats-{time.strftime('%Y%m%dT%H%M%SZ', time.gmtime())}.json"
    path.write_text(json.dumps({"quick": args.quick, "formats": result}, indent=2) + "\n")
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
