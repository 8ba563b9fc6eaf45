"""Worker CPU spent on an interrupted utterance: a LiveKit session speaks a ~20 s text and
the listener talks over it 3 s in, so the utterance is cancelled.

The worker runs as its own process; its CPU seconds (psutil, user + system) are counted from
just before `POST /sessions/{id}/say` to the moment it has no stream left. Three cases, each
`repeats` times, in one run:
- `bounded`: the session's default lead (`ORCH_SYNTHESIS_LEAD_SECONDS`): the worker
  synthesizes a few seconds ahead of what the listener heard, and the cancel stops it;
- `unbounded`: no lead bound (`ORCH_SYNTHESIS_LEAD_SECONDS=0`), the behaviour before
  deadline scheduling: the worker synthesizes the whole text at once, so the cancel saves
  nothing;
- `whole`: the same text played to its end, uninterrupted (the whole utterance's cost).
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import httpx
import numpy as np
import psutil

from bench.stats import summary
from orchestrator.cli import Orchestrator
from tests.audio_checks import parse_wav
from tests.conftest import orchestrator_settings
from tests.livekit_server import LiveKitServer, ensure_livekit_server_binary
from tests.processes import WorkerProcess
from tests.sessions.events import EventLog
from tests.sessions.listener import RATE, Listener

AGENT_TEXT = (
    "Thanks for calling the support line. I have pulled up your account and I can see the "
    "payment from last week. It went through on Monday, but the confirmation email bounced, "
    "which is why you never received it. I have updated your address and sent the receipt "
    "again, so it should be in your inbox within a few minutes. If anything else comes up, "
    "you can reach us by chat or email at any time of the day."
)
USER_TEXT = "Sorry to interrupt, but I only need the address of the harbour branch."
INTERRUPT_AFTER_SECONDS = 3.0


def _cpu_seconds(proc: psutil.Process) -> float:
    times = proc.cpu_times()
    return float(times.user + times.system)


async def _one(
    api: httpx.AsyncClient,
    worker: WorkerProcess,
    listener: Listener,
    events: EventLog,
    session_id: str,
    user: np.ndarray | None,
) -> dict[str, float]:
    """One utterance; interrupted when user speech is given. CPU seconds of the worker."""
    assert worker.proc is not None
    proc = psutil.Process(worker.proc.pid)
    mark = events.last_seq
    cpu = _cpu_seconds(proc)
    said = await api.post(f"/sessions/{session_id}/say", json={"text": AGENT_TEXT})
    said.raise_for_status()
    utterance_id = said.json()["utterance_id"]
    await events.wait("speech_started", within=30, utterance_id=utterance_id)
    result: dict[str, float] = {}
    if user is not None:
        await asyncio.sleep(INTERRUPT_AFTER_SECONDS)
        listener.talk(user)
        cancelled = await events.wait("cancelled", within=15, utterance_id=utterance_id)
        result["heard_seconds"] = float(cancelled["position_seconds"])
        await events.wait("user_speech_stopped", within=15, after=mark)
    else:
        finished = await events.wait("finished", within=120, utterance_id=utterance_id)
        result["heard_seconds"] = float(finished["position_seconds"])
    busy = await worker.busy_streams(within=15.0)
    assert not busy, f"the worker still has streams: {busy}"
    result["worker_cpu_seconds"] = _cpu_seconds(proc) - cpu
    return result


async def _case(
    worker: WorkerProcess, lk: LiveKitServer, lead: float | None, interrupt: bool, repeats: int
) -> dict[str, Any]:
    overrides: dict[str, Any] = {} if lead is None else {"synthesis_lead_seconds": lead}
    orch = Orchestrator(
        orchestrator_settings(
            workers=[worker.address],
            livekit_url=lk.url,
            livekit_api_key=lk.api_key,
            livekit_api_secret=lk.api_secret,
            **overrides,
        )
    )
    await orch.start()
    try:
        base = f"http://127.0.0.1:{orch.settings.port}"
        async with httpx.AsyncClient(base_url=base, timeout=60) as api:
            user = None
            if interrupt:
                reply = await api.post("/synthesize", json={"text": USER_TEXT, "sample_rate": RATE})
                user = parse_wav(reply.content).samples
            created = (await api.post("/sessions", json={})).json()
            listener = Listener()
            events = EventLog(api, created["session_id"])
            await listener.join(created["url"], created["token"])
            await listener.subscribed.wait()
            runs = []
            try:
                for _ in range(repeats):
                    runs.append(
                        await _one(api, worker, listener, events, created["session_id"], user)
                    )
            finally:
                await listener.leave()
                await events.aclose()
                await api.delete(f"/sessions/{created['session_id']}")
        return {
            "synthesis_lead_seconds": orch.settings.synthesis_lead_seconds,
            "worker_cpu_seconds": summary([r["worker_cpu_seconds"] for r in runs]),
            "heard_seconds": summary([r["heard_seconds"] for r in runs]),
        }
    finally:
        await orch.stop()


async def _run(repeats: int) -> dict[str, Any]:
    binary = ensure_livekit_server_binary()
    worker = WorkerProcess().start()
    try:
        with LiveKitServer(binary) as lk:
            bounded = await _case(worker, lk, None, True, repeats)
            unbounded = await _case(worker, lk, 0.0, True, repeats)
            whole = await _case(worker, lk, None, False, repeats)
    finally:
        worker.stop()
    return {
        "interrupt_after_seconds": INTERRUPT_AFTER_SECONDS,
        "utterance_seconds": whole["heard_seconds"]["p50"],
        "bounded": bounded,
        "unbounded": unbounded,
        "whole": whole,
        "ratio_bounded_vs_unbounded_p50": (
            bounded["worker_cpu_seconds"]["p50"] / unbounded["worker_cpu_seconds"]["p50"]
        ),
        "ratio_bounded_vs_whole_p50": (
            bounded["worker_cpu_seconds"]["p50"] / whole["worker_cpu_seconds"]["p50"]
        ),
        "measured_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }


def run(repeats: int = 3) -> dict[str, Any]:
    return asyncio.run(_run(repeats))


def table(result: dict[str, Any]) -> str:
    lines = [
        f"utterance {result['utterance_seconds']:.1f} s, listener interrupts after "
        f"{result['interrupt_after_seconds']:.0f} s",
        f"{'case':<34}{'lead':>6}{'heard p50':>11}{'worker CPU p50':>16}{'n':>4}",
        "-" * 71,
    ]
    for key, label in (
        ("bounded", "interrupted, lead bound (default)"),
        ("unbounded", "interrupted, no bound (before)"),
        ("whole", "played to the end"),
    ):
        row = result[key]
        lines.append(
            f"{label:<34}{row['synthesis_lead_seconds']:>5.1f}s"
            f"{row['heard_seconds']['p50']:>10.2f}s"
            f"{row['worker_cpu_seconds']['p50']:>15.2f}s{row['worker_cpu_seconds']['n']:>4}"
        )
    lines.append(
        f"bounded / unbounded: {result['ratio_bounded_vs_unbounded_p50']:.2f}; "
        f"bounded / whole: {result['ratio_bounded_vs_whole_p50']:.2f}"
    )
    return "\n".join(lines)
