"""Overheads: start-up time to ready, worker memory per loaded voice, orchestrator CPU and
memory per active LiveKit session (idle and speaking).

- Start-up: process start -> gRPC health SERVING (worker), process start -> /readyz 200
  (orchestrator, its worker already serving).
- Worker memory per voice: only one voice ships, so the worker gets a voices folder holding a
  second name for the same model files; RSS before and after LoadVoice of that name, and after
  one synthesis with it (onnxruntime grows its arenas on first run). The default voice is loaded
  at start-up and cannot be unloaded, so its own footprint is the same model's.
- Per session: the orchestrator runs as its own process against a real livekit-server; a
  listener (rtc SDK, in this process) joins each session and publishes continuous silence, as
  a user's microphone does. CPU seconds and RSS of the orchestrator process (psutil) over a
  fixed window with 0 sessions, N idle sessions, and N sessions speaking; per session is the
  difference over N.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import tempfile
import time
from pathlib import Path
from typing import Any

import grpc
import httpx
import psutil

from bench.stack import livekit_env, running_stack
from bench.stats import summary

AGENT_TEXT = (
    "Here is the full list of opening hours for every branch in the city. The central branch "
    "opens at eight in the morning and closes at six in the evening on weekdays, and at noon "
    "on Saturdays. The harbour branch keeps the same hours but closes for lunch."
)
MIB = 1024 * 1024


def startup(starts: int, first: tuple[float, float] | None = None) -> dict[str, Any]:
    """`first`: (worker, orchestrator) seconds of a stack the caller already started."""
    worker, orch = ([first[0]], [first[1]]) if first else ([], [])
    for _ in range(starts - len(worker)):
        with running_stack() as stack:
            worker.append(stack.worker_ready_seconds)
            orch.append(stack.orchestrator_ready_seconds)
    return {
        "worker_to_serving_seconds": summary(worker),
        "orchestrator_to_readyz_seconds": summary(orch),
    }


def worker_voice_memory() -> dict[str, Any]:
    from bench.baselines import voice_path
    from tests.processes import WorkerProcess
    from tts_rpc.v1 import tts_pb2, tts_pb2_grpc

    model = voice_path()
    folder = Path(tempfile.mkdtemp(prefix="bench-voices-"))
    name = "en_US-benchcopy-medium"
    (folder / f"{name}.onnx").symlink_to(model)
    (folder / f"{name}.onnx.json").symlink_to(Path(f"{model}.json"))
    worker = WorkerProcess(env={"TTS_WORKER_VOICES_DIR": str(folder)}).start()
    try:
        assert worker.proc is not None
        proc = psutil.Process(worker.proc.pid)
        time.sleep(0.5)
        ready = proc.memory_info().rss
        with grpc.insecure_channel(worker.address) as channel:
            stub = tts_pb2_grpc.TextToSpeechStub(channel)
            reply = stub.LoadVoice(tts_pb2.LoadVoiceRequest(name=name), timeout=60)
            time.sleep(0.3)
            loaded = proc.memory_info().rss
        return {
            "model_file_bytes": model.stat().st_size,
            "worker_rss_ready_mib": ready / MIB,
            "worker_rss_after_second_voice_mib": loaded / MIB,
            "rss_per_loaded_voice_mib": (loaded - ready) / MIB,
            "load_seconds": reply.load_seconds,
        }
    finally:
        worker.stop()


def _cpu_seconds(proc: psutil.Process) -> float:
    times = proc.cpu_times()
    return float(times.user + times.system)


async def _window(proc: psutil.Process, seconds: float) -> dict[str, float]:
    cpu = _cpu_seconds(proc)
    started = time.perf_counter()
    await asyncio.sleep(seconds)
    elapsed = time.perf_counter() - started
    return {
        "cpu_percent": (_cpu_seconds(proc) - cpu) / elapsed * 100,
        "rss_mib": proc.memory_info().rss / MIB,
    }


async def _sessions(api_url: str, pid: int, n: int, window: float) -> dict[str, Any]:
    from tests.sessions.listener import Listener

    proc = psutil.Process(pid)
    settle = min(1.0, window / 2)
    listeners: list[Listener] = []
    ids: list[str] = []
    async with httpx.AsyncClient(base_url=api_url, timeout=60) as api:
        await asyncio.sleep(settle)
        none = await _window(proc, window)
        try:
            for _ in range(n):
                created = (await api.post("/sessions", json={})).json()
                ids.append(created["session_id"])
                listener = Listener()
                await listener.join(created["url"], created["token"])
                await asyncio.wait_for(listener.subscribed.wait(), 15)
                listeners.append(listener)
            await asyncio.sleep(settle)
            idle = await _window(proc, window)
            for session_id in ids:
                said = await api.post(f"/sessions/{session_id}/say", json={"text": AGENT_TEXT})
                said.raise_for_status()
            await asyncio.sleep(settle)  # first audio, then steady speech
            speaking = await _window(proc, window)
        finally:
            for listener in listeners:
                await listener.leave()
            for session_id in ids:
                # the stack is torn down next anyway; a slow delete must not hang the run
                with contextlib.suppress(httpx.HTTPError):
                    await api.delete(f"/sessions/{session_id}", timeout=10)
    return {
        "sessions": n,
        "window_seconds": window,
        "no_sessions": none,
        "idle": idle,
        "speaking": speaking,
        "per_idle_session": {
            "cpu_percent": (idle["cpu_percent"] - none["cpu_percent"]) / n,
            "rss_mib": (idle["rss_mib"] - none["rss_mib"]) / n,
        },
        "per_speaking_session": {
            "cpu_percent": (speaking["cpu_percent"] - none["cpu_percent"]) / n,
            "rss_mib": (speaking["rss_mib"] - none["rss_mib"]) / n,
        },
    }


def orchestrator_per_session(n: int, window: float) -> dict[str, Any]:
    from tests.livekit_server import LiveKitServer, ensure_livekit_server_binary

    binary = ensure_livekit_server_binary()
    with LiveKitServer(binary) as lk, running_stack(orch_env=livekit_env(lk)) as stack:
        return asyncio.run(_sessions(stack.api_url, stack.orchestrator.pid, n, window))


def run(quick: bool = False, first_startup: tuple[float, float] | None = None) -> dict[str, Any]:
    return {
        "startup": startup(1 if quick else 5, first_startup),
        "worker_voice_memory": worker_voice_memory(),
        "orchestrator_sessions": orchestrator_per_session(1 if quick else 4, 1.0 if quick else 5.0),
        "cores": os.cpu_count(),
    }


def table(result: dict[str, Any]) -> str:
    st, mem, ses = (
        result["startup"],
        result["worker_voice_memory"],
        result["orchestrator_sessions"],
    )
    w, o = st["worker_to_serving_seconds"], st["orchestrator_to_readyz_seconds"]
    lines = [
        f"start-up   worker -> SERVING p50 {w['p50']:.2f} s (n={w['n']}),"
        f"  orchestrator -> /readyz p50 {o['p50']:.2f} s",
        f"worker     RSS at ready {mem['worker_rss_ready_mib']:.0f} MiB, +"
        f"{mem['rss_per_loaded_voice_mib']:.0f} MiB per loaded voice "
        f"(model file {mem['model_file_bytes'] / MIB:.0f} MiB, load {mem['load_seconds']:.2f} s)",
        f"orchestrator with {ses['sessions']} session(s), {ses['window_seconds']:.0f} s windows:",
    ]
    for key in ("no_sessions", "idle", "speaking"):
        lines.append(
            f"  {key:<12} CPU {ses[key]['cpu_percent']:6.1f} %   RSS {ses[key]['rss_mib']:6.0f} MiB"
        )
    for key in ("per_idle_session", "per_speaking_session"):
        lines.append(
            f"  {key:<21} CPU {ses[key]['cpu_percent']:+6.1f} % of a core"
            f"   RSS {ses[key]['rss_mib']:+6.1f} MiB"
        )
    return "\n".join(lines)
