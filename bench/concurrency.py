"""Concurrency: N simultaneous streams of the same text against our /synthesize (raw PCM at the
voice's native rate) and against Piper's own HTTP server, alternating level by level.

Per stream, every network read is timed. First audio is the read holding the first audible
sample. Playback starts then; a read is an underrun when it arrives after its playback
deadline: first-audio time + seconds of audio received so far (from the first audible read).
Per level: per-stream real-time factor (request -> last byte, over audio seconds), first audio
p50/p95, underruns, p99 of the gaps between reads.

A server that answers a whole file (Piper's HTTP server) never underruns by this measure: all
its audio has arrived by its first audio. So each system also gets the largest level that is
real time in every sense: no underrun, no refused stream and every stream's real-time factor
<= 1 (its whole text synthesized in less time than it takes to play).

The headline figure is the largest level (it and every level below it) with zero underruns,
nothing refused and first audio p95 <= 1 s, beside the theoretical limit: the aggregate
throughput measured at each level (audio seconds of all streams over the time from the first
request to the last byte, in real-time seconds per second), whose maximum is how many
real-time streams the worker's CPU could carry if every chunk came exactly in time.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from typing import Any

import httpx
import numpy as np

from bench.stats import percentile, summary

AUDIBLE = int(0.01 * 32767)
WAV_HEADER_BYTES = 44
FIRST_AUDIO_P95_LIMIT = 1.0


@dataclass
class Stream:
    started: float
    arrivals: list[float] = field(default_factory=list)
    sizes: list[int] = field(default_factory=list)  # bytes of PCM in each read
    first_audible: int | None = None  # index of the read holding the first audible sample
    error: str | None = None  # the HTTP status and body when the request was refused


async def _one_stream(
    client: httpx.AsyncClient, path: str, body: dict[str, Any], header_bytes: int
) -> Stream:
    stream = Stream(time.perf_counter())
    skip = header_bytes
    pending = b""
    async with client.stream("POST", path, json=body) as response:
        if response.status_code != 200:
            detail = (await response.aread())[:200].decode(errors="replace")
            stream.error = f"{response.status_code} {detail}"
            return stream
        async for chunk in response.aiter_raw():
            now = time.perf_counter()
            if skip:
                taken = min(skip, len(chunk))
                chunk, skip = chunk[taken:], skip - taken
            if not chunk:
                continue
            stream.arrivals.append(now)
            stream.sizes.append(len(chunk))
            if stream.first_audible is None:
                data = pending + chunk
                usable = len(data) - len(data) % 2
                pending = data[usable:]
                pcm = np.frombuffer(data[:usable], dtype="<i2").astype(np.int32)
                if bool(np.any(np.abs(pcm) > AUDIBLE)):
                    stream.first_audible = len(stream.arrivals) - 1
    return stream


def _analyse(all_streams: list[Stream], rate: int) -> dict[str, Any]:
    streams = [s for s in all_streams if s.error is None and s.arrivals]
    failed = [s.error or "no audio" for s in all_streams if s.error is not None or not s.arrivals]
    if not streams:
        return {"streams": len(all_streams), "failed": len(failed), "errors": sorted(set(failed))}
    first_audio, rtf, gaps = [], [], []
    underruns = streams_with_underrun = 0
    late_seconds: list[float] = []
    for s in streams:
        total_seconds = sum(s.sizes) / 2 / rate
        rtf.append((s.arrivals[-1] - s.started) / total_seconds)
        gaps += list(np.diff(s.arrivals))
        k = s.first_audible if s.first_audible is not None else 0
        first_audio.append(s.arrivals[k] - s.started)
        played_from = s.arrivals[k]
        received = 0.0
        count = 0
        for i in range(k, len(s.arrivals)):
            deadline = played_from + received
            if s.arrivals[i] > deadline + 1e-4:
                count += 1
                late_seconds.append(s.arrivals[i] - deadline)
            received += s.sizes[i] / 2 / rate
        underruns += count
        streams_with_underrun += count > 0
    total_audio = sum(sum(s.sizes) for s in streams) / 2 / rate
    span = max(s.arrivals[-1] for s in streams) - min(s.started for s in streams)
    return {
        "streams": len(all_streams),
        "failed": len(failed),
        "errors": sorted(set(failed))[:5],
        "throughput_realtime": total_audio / span,
        "audio_seconds_per_stream": max(sum(s.sizes) for s in streams) / 2 / rate,
        "rtf": summary(rtf) | {"max": max(rtf)},
        "first_audio_seconds": summary(first_audio),
        "underruns": underruns,
        "streams_with_underrun": streams_with_underrun,
        "worst_late_seconds": max(late_seconds, default=0.0),
        "gap_p99_seconds": percentile(gaps, 99),
        "reads_per_stream": float(np.mean([len(s.arrivals) for s in streams])),
    }


async def _level(
    url: str, path: str, body: dict[str, Any], header_bytes: int, n: int
) -> list[Stream]:
    limits = httpx.Limits(max_connections=n + 4, max_keepalive_connections=n + 4)
    async with httpx.AsyncClient(base_url=url, timeout=300, limits=limits) as client:
        # One warm request opens a connection; the streams then start together.
        await _one_stream(client, path, {**body, "text": "Warm up."}, header_bytes)
        return list(
            await asyncio.gather(*(_one_stream(client, path, body, header_bytes) for _ in range(n)))
        )


def run(
    api_url: str,
    piper_http_url: str | None,
    text: str,
    rate: int,
    levels: list[int],
    rounds: int = 1,
    baseline_max_level: int | None = None,
) -> dict[str, Any]:
    """baseline_max_level: Piper's HTTP server runs the levels up to this one only (its
    first audio grows with the level: past 16 streams a level takes minutes)."""
    systems: dict[str, tuple[str, str, dict[str, Any], int]] = {
        "ours": (api_url, "/synthesize", {"text": text, "format": "pcm", "sample_rate": rate}, 0),
    }
    if piper_http_url:
        systems["piper_http"] = (piper_http_url, "/synthesize", {"text": text}, WAV_HEADER_BYTES)
    collected: dict[str, dict[int, list[Stream]]] = {
        name: {n: [] for n in levels} for name in systems
    }
    ran = {
        name: [n for n in levels if name == "ours" or n <= (baseline_max_level or n)]
        for name in systems
    }
    for n in levels:
        for _ in range(rounds):
            for name, (url, path, body, header) in systems.items():
                if n in ran[name]:
                    collected[name][n] += asyncio.run(_level(url, path, body, header, n))
    results: dict[str, Any] = {"text_words": len(text.split()), "rounds": rounds, "levels": levels}
    for name in systems:
        per_level = {str(n): _analyse(collected[name][n], rate) for n in ran[name]}
        clean = [
            n
            for n in levels
            if per_level[str(n)]["failed"] == 0 and per_level[str(n)]["underruns"] == 0
        ]
        # the largest level such that it and every level below it ran every stream to the end
        # without underruns
        largest = 0
        for n in ran[name]:
            if n not in clean:
                break
            largest = n
        real_time = 0
        for n in ran[name]:
            row = per_level[str(n)]
            if n not in clean or row["rtf"]["max"] > 1.0:
                break
            real_time = n
        prompt = 0
        for n in ran[name]:
            row = per_level[str(n)]
            if n not in clean or row["first_audio_seconds"]["p95"] > FIRST_AUDIO_P95_LIMIT:
                break
            prompt = n
        throughputs = [row["throughput_realtime"] for row in per_level.values() if "rtf" in row]
        results[name] = {
            "per_level": per_level,
            "largest_level_without_underruns": largest,
            "largest_level_real_time": real_time,
            "largest_level_no_underrun_first_audio_p95_1s": prompt,
            "throughput_realtime_max": max(throughputs, default=0.0),
        }
    return results


def table(result: dict[str, Any]) -> str:
    head = (
        f"{'system':<11}{'streams':>8}{'rtf p50':>9}{'rtf max':>9}{'first p50':>11}"
        f"{'first p95':>11}{'underruns':>10}{'gap p99':>10}{'failed':>8}{'x rt':>7}"
    )
    lines = [head, "-" * len(head)]
    for name in ("ours", "piper_http"):
        if name not in result:
            continue
        for n, row in result[name]["per_level"].items():
            if "rtf" not in row:
                failed = f"all {row['streams']} streams failed: {row['errors']}"
                lines.append(f"{name:<11}{n:>8}  {failed}")
                continue
            lines.append(
                f"{name:<11}{n:>8}{row['rtf']['p50']:>9.3f}{row['rtf']['max']:>9.3f}"
                f"{row['first_audio_seconds']['p50'] * 1000:>9.0f}ms"
                f"{row['first_audio_seconds']['p95'] * 1000:>9.0f}ms"
                f"{row['underruns']:>10}{row['gap_p99_seconds'] * 1000:>8.0f}ms"
                f"{row['failed']:>8}{row['throughput_realtime']:>7.1f}"
            )
            if row["failed"]:
                lines.append(f"    refused: {row['errors']}")
        lines.append(
            f"  {name}: largest level with zero underruns and no refusals (this and all below): "
            f"{result[name]['largest_level_without_underruns']}; also every stream's rtf <= 1: "
            f"{result[name]['largest_level_real_time']}; also first audio p95 <= 1 s: "
            f"{result[name]['largest_level_no_underrun_first_audio_p95_1s']}; "
            f"throughput (most over the levels): "
            f"{result[name]['throughput_realtime_max']:.1f}x real time"
        )
    return "\n".join(lines)
