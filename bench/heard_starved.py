"""The heard position when the native audio thread is starved.

rtc's AudioSource plays its queue out on a native thread, 10 ms per tick. Under CPU load
that thread can stall while the event loop runs on; rtc's own estimate of what is queued
(wall time) then reads short, and a heard position taken from it reads long. This scenario
makes that happen on purpose and measures both against the truth:

- the playout runs through the session's real `AgentSource` (queue 100 ms), on CPU 0;
- the source's native tick thread is pinned to CPU 1, next to a real-time (SCHED_FIFO)
  process that spins 120 ms and sleeps 130 ms, so ticks stall and then catch up;
- the truth is what the source actually played: a sink on its own track (an rtc
  AudioStream on the local track) receives every sample it sends, and the utterance is a
  ramp, so the last sample received says exactly where playout stopped;
- each trial pauses after a random 0.4-1.2 s and compares, with the truth, the heard
  position from rtc's estimate alone (`rtc_estimate`) and from `Playout.pause()` (`ours`).

Needs root (SCHED_FIFO, CPU affinity) and two CPUs. `python -m bench.heard_starved`.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import subprocess
from pathlib import Path
from typing import Any

import numpy as np
from livekit import rtc

from bench.stats import summary
from orchestrator.sessions.playout import AgentSource, Playout
from orchestrator.sessions.utterance_audio import UtteranceAudio
from tts_rpc.v1 import tts_pb2

RATE = 24000
QUEUE_MS = 100
HOG = (
    "import time\n"
    "while True:\n"
    "    t = time.monotonic()\n"
    "    while time.monotonic() - t < 0.12: pass\n"
    "    time.sleep(0.13)\n"
)


class Played:
    """The last ramp value the source's own track sent (0: none yet)."""

    def __init__(self, source: AgentSource) -> None:
        track = rtc.LocalAudioTrack.create_audio_track("truth", source.rtc)
        self._stream = rtc.AudioStream(track, sample_rate=RATE, num_channels=1)
        self.last = 0
        self._task = asyncio.create_task(self._read())

    async def _read(self) -> None:
        async for event in self._stream:
            samples = np.frombuffer(event.frame.data, np.int16)
            sent = np.flatnonzero(samples)
            if len(sent):
                self.last = int(samples[sent[-1]])

    async def aclose(self) -> None:
        self._task.cancel()
        await self._stream.aclose()


def pin_native_thread() -> None:
    """This process on CPU 0, the source's tick thread alone on CPU 1."""
    for tid in os.listdir("/proc/self/task"):
        with open(f"/proc/self/task/{tid}/comm") as comm:
            name = comm.read().strip()
        cpus = {1} if name.startswith("AudioSource") else {0}
        os.sched_setaffinity(int(tid), cpus)


async def trial(source: AgentSource, played: Played, delay: float) -> tuple[float, float]:
    """One utterance paused after `delay` s: (rtc_estimate, ours) minus the truth, in ms."""
    ramp = (np.arange(int(1.5 * RATE)) % 32000 + 1).astype(np.int16)
    audio = UtteranceAudio(RATE)
    audio.append(tts_pb2.AudioFrame(audio=ramp.tobytes(), sample_rate=RATE))
    audio.finish()
    playout = Playout(source, audio)
    playout.start()
    await asyncio.sleep(delay)
    # What the session computed before: everything given to capture, less rtc's estimate.
    rtc_estimate = playout._position - round(source.rtc.queued_duration * RATE)
    ours = playout.pause()
    await asyncio.sleep(0.4)  # the sink has received all that was sent before the pause
    truth = played.last
    await playout.aclose()
    return (rtc_estimate - truth) * 1000 / RATE, (ours - truth) * 1000 / RATE


async def run(trials: int) -> dict[str, Any]:
    source = AgentSource(RATE, QUEUE_MS)
    played = Played(source)
    await asyncio.sleep(0.3)
    pin_native_thread()
    errors: dict[str, list[float]] = {"rtc_estimate": [], "ours": []}
    try:
        for _ in range(trials):
            old, new = await trial(source, played, random.uniform(0.4, 1.2))
            errors["rtc_estimate"].append(round(old, 1))
            errors["ours"].append(round(new, 1))
    finally:
        await played.aclose()
        await source.aclose()
    return {
        "trials": trials,
        "queue_ms": QUEUE_MS,
        "frame_ms": 20,
        "errors_ms": errors,
        "late_over_one_frame": {k: sum(e > 20.5 for e in v) for k, v in errors.items()},
        "early_over_one_frame": {k: sum(e < -20.5 for e in v) for k, v in errors.items()},
        "abs_error_ms": {k: summary([abs(e) for e in v]) for k, v in errors.items()},
    }


def main() -> None:
    """`python -m bench.heard_starved`: this scenario alone, its JSON in bench/results/."""
    parser = argparse.ArgumentParser(description=main.__doc__)
    parser.add_argument("--trials", type=int, default=20)
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results")
    args = parser.parse_args()
    from bench.run import save_scenario

    # Under `timeout`, a benchmark killed half-way cannot leave the spinner running.
    spin = ["timeout", "600", "chrt", "-f", "50", "taskset", "-c", "1", "python3", "-c", HOG]
    spinner = subprocess.Popen(spin)
    try:
        result = asyncio.run(run(args.trials))
    finally:
        spinner.terminate()  # `timeout` passes it on
        spinner.wait()
    for name, errors in result["errors_ms"].items():
        print(f"{name}: {errors}")
    print(f"late by more than a frame: {result['late_over_one_frame']}")
    print(f"early by more than a frame: {result['early_over_one_frame']}")
    print(f"wrote {save_scenario('heard_starved', result, args.out)}")


if __name__ == "__main__":
    main()
