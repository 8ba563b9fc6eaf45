"""Barge-in through a real livekit-server: the listener (rtc SDK) talks over the agent.

Two views of the same interruptions, in one run:
- server (internal): `onset_to_stop_seconds` of each `interrupted` event, the figure behind
  voiceorch_bargein_onset_to_stop_seconds: from the arrival of the first voiced sample at
  the orchestrator to the agent's LiveKit source being cleared.
- listener (end to end): from the moment the listener's speech leaves its microphone source
  to the arrival of the agent's last audible audio at the listener; it adds the uplink into
  the agent, the way back and the listener's jitter buffer.
Also pause -> decision (the `pause_seconds` of `cancelled` and `resumed` events, the figure
behind voiceorch_bargein_pause_to_decision_seconds) and the resume delay: from the end of a
~150 ms burst to the `resumed` event reaching the listener.
"""

from __future__ import annotations

import argparse
import asyncio
import time
from pathlib import Path
from typing import Any

import httpx
import numpy as np

from bench.stats import summary
from orchestrator.cli import Orchestrator
from tests.audio_checks import parse_wav
from tests.conftest import orchestrator_settings
from tests.livekit_server import LiveKitServer, ensure_livekit_server_binary
from tests.processes import WorkerProcess
from tests.sessions.events import EventLog
from tests.sessions.listener import RATE, Listener

AGENT_TEXT = (
    "Here is the full list of opening hours for every branch in the city. The central branch "
    "opens at eight in the morning and closes at six in the evening on weekdays."
)
USER_TEXT = "Sorry to interrupt, but I only need the address of the harbour branch."
AUDIBLE = 1000


def _last_audible_arrival(listener: Listener, after: float) -> float:
    recording = listener.recording
    last = after
    for chunk, arrived in zip(recording.chunks, recording.arrivals, strict=True):
        if arrived > after and int(np.abs(chunk.astype(np.int32)).max(initial=0)) > AUDIBLE:
            last = arrived
    return last


async def _one_barge_in(
    api: httpx.AsyncClient,
    listener: Listener,
    events: EventLog,
    session_id: str,
    user: np.ndarray,
    delay: float,
) -> tuple[float, float, float]:
    """(server onset -> stop, listener onset -> silence at the listener, pause -> cancel)."""
    mark = events.last_seq
    said = await api.post(f"/sessions/{session_id}/say", json={"text": AGENT_TEXT})
    utterance_id = said.json()["utterance_id"]
    await events.wait("speech_started", utterance_id=utterance_id)
    await asyncio.sleep(delay)
    listener.talk(user)
    interrupted = await events.wait("interrupted", within=15, utterance_id=utterance_id)
    cancelled = await events.wait("cancelled", within=15, utterance_id=utterance_id)
    # The listener must be done talking before the next utterance starts.
    await events.wait("user_speech_stopped", within=15, after=mark)
    # Whatever agent audio was still on its way has arrived after 0.3 s more of the track.
    await listener.recording.wait_for(listener.recording.samples() + int(0.3 * RATE), within=10)
    onset = listener.speech_onset_at
    assert onset is not None
    return (
        float(interrupted["onset_to_stop_seconds"]),
        _last_audible_arrival(listener, onset) - onset,
        float(cancelled["pause_seconds"]),
    )


async def _one_false_interruption(
    api: httpx.AsyncClient,
    listener: Listener,
    events: EventLog,
    session_id: str,
    burst: np.ndarray,
    pause_to_resume: list[float],
) -> float | None:
    """Burst end -> `resumed` at the listener; None when the VAD did not take the burst
    for speech (no pause at all)."""
    mark = events.last_seq
    said = await api.post(f"/sessions/{session_id}/say", json={"text": AGENT_TEXT})
    utterance_id = said.json()["utterance_id"]
    await events.wait("speech_started", utterance_id=utterance_id)
    await asyncio.sleep(1.5)
    listener.talk(burst)
    await events.wait("finished", within=60, utterance_id=utterance_id)
    resumes = [e for e in events.of("resumed") if e["utterance_id"] == utterance_id]
    if not resumes:
        return None
    resumed = resumes[0]
    await events.wait("user_speech_stopped", within=15, after=mark)
    assert listener.speech_onset_at is not None
    burst_end = listener.speech_onset_at + len(burst) / RATE
    pause_to_resume.append(float(resumed["pause_seconds"]))
    return float(resumed["received"]) - burst_end


async def _run(
    interruptions: int, false_interruptions: int, overrides: dict[str, Any]
) -> dict[str, Any]:
    binary = ensure_livekit_server_binary()
    worker = WorkerProcess().start()
    try:
        with LiveKitServer(binary) as lk:
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
                return await _measure(orch, interruptions, false_interruptions)
            finally:
                await orch.stop()
    finally:
        worker.stop()


async def _measure(
    orch: Orchestrator, interruptions: int, false_interruptions: int
) -> dict[str, Any]:
    base = f"http://127.0.0.1:{orch.settings.port}"
    async with httpx.AsyncClient(base_url=base, timeout=60) as api:
        user = parse_wav(
            (await api.post("/synthesize", json={"text": USER_TEXT, "sample_rate": RATE})).content
        )
        loudness = np.convolve(np.abs(user.samples.astype(np.float32)), np.ones(7200), "valid")
        start = int(np.argmax(loudness))
        burst = user.samples[start : start + 7200]
        created = (await api.post("/sessions", json={})).json()
        session_id = created["session_id"]
        listener = Listener()
        events = EventLog(api, session_id)
        await listener.join(created["url"], created["token"])
        await listener.subscribed.wait()
        onset_to_stop: list[float] = []
        onset_to_silence: list[float] = []
        pause_to_cancel: list[float] = []
        pause_to_resume: list[float] = []
        resume_delay: list[float] = []
        bursts_ignored = 0  # bursts the VAD did not take for speech: no pause, nothing to resume
        try:
            for i in range(interruptions):
                to_stop, to_silence, to_cancel = await _one_barge_in(
                    api, listener, events, session_id, user.samples, 1.0 + (i % 5) * 0.3
                )
                onset_to_stop.append(to_stop)
                onset_to_silence.append(to_silence)
                pause_to_cancel.append(to_cancel)
            for _ in range(false_interruptions):
                delay = await _one_false_interruption(
                    api, listener, events, session_id, burst, pause_to_resume
                )
                if delay is None:
                    bursts_ignored += 1
                else:
                    resume_delay.append(delay)
        finally:
            await listener.leave()
            await events.aclose()
            await api.delete(f"/sessions/{session_id}")
    settings = orch.settings
    return {
        "interruptions": interruptions,
        "server_onset_to_stop_seconds": summary(onset_to_stop),
        "onset_to_silence_at_listener_seconds": summary(onset_to_silence),
        "pause_to_cancel_seconds": summary(pause_to_cancel),
        "pause_to_resume_seconds": summary(pause_to_resume),
        "false_interruption_resume_delay_seconds": summary(resume_delay),
        "false_interruption_bursts_ignored_by_vad": bursts_ignored,
        "settings": {
            "vad_min_speech_seconds": settings.vad_min_speech_seconds,
            "bargein_min_interruption_seconds": settings.bargein_min_interruption_seconds,
            "bargein_false_interruption_silence_seconds": (
                settings.bargein_false_interruption_silence_seconds
            ),
            "playout_queue_ms": settings.playout_queue_ms,
        },
        "measured_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }


def run(interruptions: int = 20, false_interruptions: int = 5, **settings: Any) -> dict[str, Any]:
    """settings override orchestrator settings (e.g. vad_min_speech_seconds=0.032)."""
    return asyncio.run(_run(interruptions, false_interruptions, settings))


def table(result: dict[str, Any]) -> str:
    rows = [
        ("server: onset -> agent stopped", result["server_onset_to_stop_seconds"]),
        ("listener: onset -> silence", result["onset_to_silence_at_listener_seconds"]),
        ("pause -> cancel", result["pause_to_cancel_seconds"]),
        ("pause -> resume", result["pause_to_resume_seconds"]),
        ("false interruption resume delay", result["false_interruption_resume_delay_seconds"]),
    ]
    lines = [f"{'measure':<34}{'n':>4}{'p50':>10}{'p95':>10}", "-" * 58]
    for name, s in rows:
        lines.append(f"{name:<34}{s['n']:>4}{s['p50'] * 1000:>8.1f}ms{s['p95'] * 1000:>8.1f}ms")
    return "\n".join(lines)


def main() -> None:
    """`python -m bench.bargein`: this scenario alone, its JSON in bench/results/."""
    parser = argparse.ArgumentParser(description=main.__doc__)
    parser.add_argument("--interruptions", type=int, default=20)
    parser.add_argument("--bursts", type=int, default=5, help="false interruptions")
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results")
    args = parser.parse_args()
    from bench.run import save_scenario  # bench.run imports this module: import it late

    result = run(args.interruptions, args.bursts)
    print(table(result))
    print(f"wrote {save_scenario('bargein', result, args.out)}")


if __name__ == "__main__":
    main()
