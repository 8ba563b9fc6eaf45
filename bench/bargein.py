"""Barge-in through a real livekit-server, over the corpus: acknowledgements ("yeah",
"okay", "uh huh"...) and true interruptions ("wait", "hold on", questions...) in two
espeak-ng voices (tests/sessions/voices.py), spoken by an rtc listener over the agent at
varied moments, in one session of an orchestrator running as its own process.

Measured at the listener (its own clock; the speech onset is the clip's first audible
sample leaving its microphone source):
- how many acknowledgements resumed and how many interruptions cancelled, and by which rule;
- onset -> silence: to the arrival of the agent's last audible audio before it went quiet;
- onset -> cancel decision: to the `cancelled` event reaching the listener;
- the audible gap of a resumed acknowledgement: last audible agent audio before the pause
  to the first after the resume (it includes any pause in the agent's own speech there);
- transcript latency: the clip's last audible sample leaving the microphone to its final
  `user_transcript` event reaching the listener (the VAD's end-of-speech wait included).
And on the orchestrator: `onset_to_stop_seconds` of `interrupted` events (arrival of the
first voiced sample -> the agent's source cleared), `pause_seconds` of decisions, and the
process's CPU while one session listens: idle (a silent listener) and over the corpus.

The baseline, in the same run: the same corpus with speech recognition off
(`ORCH_ASR_ENABLED=false`), where barge-in goes by duration alone, as before transcripts.
"""

from __future__ import annotations

import argparse
import asyncio
import time
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import psutil

from bench.stack import livekit_env, running_stack
from bench.stats import summary
from tests.livekit_server import LiveKitServer, ensure_livekit_server_binary
from tests.sessions.events import EventLog
from tests.sessions.listener import Listener
from tests.sessions.voices import ACKNOWLEDGEMENTS, INTERRUPTIONS, VOICES, Clip, speak

AGENT_TEXT = (
    "Here is the full list of opening hours for every branch in the city. The central branch "
    "opens at eight in the morning and closes at six in the evening on weekdays, and on "
    "Saturdays it opens at nine and closes at one. The harbour branch keeps the same hours, "
    "but it stays closed on public holidays, and the airport branch never closes at all."
)
AUDIBLE = 1000  # |sample| of the agent's audio at the listener that counts as sound
QUIET_SECONDS = 0.15  # silence at the listener that counts as the agent having stopped
DELAYS = (1.6, 2.3, 1.9, 2.7, 2.1)  # seconds of agent speech before each clip
IDLE_SECONDS = 10.0


def _audible(chunk: np.ndarray) -> bool:
    return int(np.abs(chunk.astype(np.int32)).max(initial=0)) > AUDIBLE


def _quiet_after(listener: Listener, onset: float) -> tuple[float, float | None]:
    """(arrival of the agent's last audible audio before it fell quiet after onset, arrival
    of the first audible audio after that quiet, if any yet)."""
    recording = listener.recording
    last = onset
    quiet_from: float | None = None
    for chunk, arrived in zip(recording.chunks, recording.arrivals, strict=True):
        if arrived <= onset:
            continue
        if quiet_from is None:
            if _audible(chunk):
                last = arrived
            elif arrived - last >= QUIET_SECONDS:
                quiet_from = last
        elif _audible(chunk):
            return quiet_from, arrived
    return (quiet_from if quiet_from is not None else last), None


class Corpus:
    """One session's run through the corpus, clip by clip."""

    def __init__(
        self,
        api: httpx.AsyncClient,
        listener: Listener,
        events: EventLog,
        sid: str,
        transcribed: bool,
    ):
        self.api, self.listener, self.events, self.sid = api, listener, events, sid
        self.transcribed = transcribed  # the session recognizes speech (not the baseline)
        self.rows: list[dict[str, Any]] = []
        self.utterance: str | None = None

    async def speak_agent(self) -> str:
        said = await self.api.post(f"/sessions/{self.sid}/say", json={"text": AGENT_TEXT})
        utterance_id: str = said.json()["utterance_id"]
        await self.events.wait("speech_started", utterance_id=utterance_id)
        return utterance_id

    async def clip(self, clip: Clip, kind: str, delay: float) -> dict[str, Any]:
        if self.utterance is None:
            self.utterance = await self.speak_agent()
        await asyncio.sleep(delay)
        mark = self.events.last_seq
        start = await self.listener.say(clip.pcm)
        first, last = clip.audible()
        onset, speech_end = start + first, start + last
        interrupted = await self.events.wait("interrupted", within=15, after=mark)
        decision = await self._decision(mark)
        final = (
            await self.events.wait("user_transcript", within=20, after=mark, final=True)
            if self.transcribed
            else None
        )
        await self.events.wait("user_speech_stopped", within=15, after=mark)
        quiet, back = _quiet_after(self.listener, onset)
        row: dict[str, Any] = {
            "kind": kind,
            "voice": clip.voice,
            "text": clip.text,
            "heard_as": final["text"] if final else None,
            "decision": decision["type"],
            "reason": decision["reason"],
            "server_onset_to_stop_seconds": interrupted.get("onset_to_stop_seconds"),
            "onset_to_silence_seconds": quiet - onset,
            "pause_seconds": decision.get("pause_seconds"),
            "transcript_latency_seconds": final["received"] - speech_end if final else None,
        }
        if decision["type"] == "cancelled":
            row["onset_to_decision_seconds"] = decision["received"] - onset
            self.utterance = None
        else:
            while back is None:  # the agent's voice comes back after the resume
                await self.listener.recording.wait_for(
                    self.listener.recording.samples() + 4800, within=10
                )
                _, back = _quiet_after(self.listener, onset)
            row["resume_gap_seconds"] = back - quiet
            if kind == "interruption":  # wrongly resumed: let it end before the next clip
                await self.events.wait("finished", within=90, utterance_id=self.utterance)
                self.utterance = None
        self.rows.append(row)
        return row

    async def _decision(self, mark: int) -> dict[str, Any]:
        deadline = asyncio.get_running_loop().time() + 15
        while asyncio.get_running_loop().time() < deadline:
            for event in self.events.events:
                if event["seq"] > mark and event["type"] in ("resumed", "cancelled"):
                    return event
            await asyncio.sleep(0.01)
        raise AssertionError("no barge-in decision within 15 s")

    async def finish_utterance(self) -> None:
        if self.utterance is not None:
            await self.events.wait("finished", within=90, utterance_id=self.utterance)
            self.utterance = None


def _cpu_seconds(process: psutil.Process) -> float:
    times = process.cpu_times()
    return float(times.user + times.system)


async def _measure(
    api_url: str, process: psutil.Process, per_voice: int, transcribed: bool
) -> dict[str, Any]:
    async with httpx.AsyncClient(base_url=api_url, timeout=60) as api:
        created = (await api.post("/sessions", json={})).json()
        sid = created["session_id"]
        listener = Listener()
        events = EventLog(api, sid)
        await listener.join(created["url"], created["token"])
        await listener.subscribed.wait()
        corpus = Corpus(api, listener, events, sid, transcribed)
        try:
            cpu, wall = _cpu_seconds(process), time.perf_counter()
            await asyncio.sleep(IDLE_SECONDS)  # a session whose listener is silent
            idle_cores = (_cpu_seconds(process) - cpu) / (time.perf_counter() - wall)
            cpu, wall = _cpu_seconds(process), time.perf_counter()
            for voice in VOICES:
                for text, delay in list(zip(ACKNOWLEDGEMENTS[voice], DELAYS, strict=True))[
                    :per_voice
                ]:
                    await corpus.clip(speak(text, voice), "acknowledgement", delay)
                await corpus.finish_utterance()
                for text, delay in list(zip(INTERRUPTIONS[voice], DELAYS, strict=True))[:per_voice]:
                    await corpus.clip(speak(text, voice), "interruption", delay)
                    await corpus.finish_utterance()
            corpus_cores = (_cpu_seconds(process) - cpu) / (time.perf_counter() - wall)
            corpus_seconds = time.perf_counter() - wall
        finally:
            await listener.leave()
            await events.aclose()
            await api.delete(f"/sessions/{sid}")
    return _report(corpus.rows, idle_cores, corpus_cores, corpus_seconds)


def _report(
    rows: list[dict[str, Any]], idle_cores: float, corpus_cores: float, corpus_seconds: float
) -> dict[str, Any]:
    def of(kind: str) -> list[dict[str, Any]]:
        return [r for r in rows if r["kind"] == kind]

    def values(name: str, chosen: list[dict[str, Any]] = rows) -> list[float]:
        return [float(r[name]) for r in chosen if r.get(name) is not None]

    def reasons(chosen: list[dict[str, Any]]) -> dict[str, int]:
        counted: dict[str, int] = {}
        for r in chosen:
            key = f"{r['decision']}:{r['reason']}"
            counted[key] = counted.get(key, 0) + 1
        return counted

    acks, interruptions = of("acknowledgement"), of("interruption")
    cancelled = [r for r in rows if r["decision"] == "cancelled"]
    resumed = [r for r in rows if r["decision"] == "resumed"]
    return {
        "acknowledgements": {
            "spoken": len(acks),
            "resumed": sum(r["decision"] == "resumed" for r in acks),
            "decisions": reasons(acks),
        },
        "interruptions": {
            "spoken": len(interruptions),
            "cancelled": sum(r["decision"] == "cancelled" for r in interruptions),
            "decisions": reasons(interruptions),
        },
        "onset_to_silence_at_listener_seconds": summary(values("onset_to_silence_seconds")),
        "server_onset_to_stop_seconds": summary(values("server_onset_to_stop_seconds")),
        "onset_to_cancel_decision_seconds": summary(values("onset_to_decision_seconds")),
        "pause_to_cancel_seconds": summary(values("pause_seconds", cancelled)),
        "pause_to_resume_seconds": summary(values("pause_seconds", resumed)),
        "resumed_acknowledgement_gap_seconds": summary(values("resume_gap_seconds", acks)),
        "transcript_latency_seconds": summary(values("transcript_latency_seconds")),
        "orchestrator_cpu_cores": {
            "idle_listening_session": round(idle_cores, 4),
            "corpus_session": round(corpus_cores, 4),
            "corpus_over_idle": round(corpus_cores / idle_cores, 2) if idle_cores else None,
            "corpus_seconds": round(corpus_seconds, 1),
        },
        "clips": rows,
    }


def run(per_voice: int = 5, baseline: bool = True, **orch_env: str) -> dict[str, Any]:
    """The corpus, `per_voice` acknowledgements and interruptions in each voice; with
    `baseline`, then again with speech recognition off (result["baseline"]). orch_env adds
    ORCH_* settings of the orchestrator process."""
    binary = ensure_livekit_server_binary()
    with LiveKitServer(binary) as lk:
        env = {**livekit_env(lk), **orch_env}
        with running_stack(env) as stack:
            process = psutil.Process(stack.orchestrator.pid)
            result = asyncio.run(_measure(stack.api_url, process, per_voice, transcribed=True))
        if baseline:
            with running_stack({**env, "ORCH_ASR_ENABLED": "false"}) as stack:
                process = psutil.Process(stack.orchestrator.pid)
                result["baseline"] = asyncio.run(
                    _measure(stack.api_url, process, per_voice, transcribed=False)
                )
                result["baseline"]["settings"] = {"ORCH_ASR_ENABLED": "false"}
    result["settings"] = {"per_voice": per_voice, **orch_env}
    result["measured_at"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    return result


def table(result: dict[str, Any]) -> str:
    text = _table(result)
    if "baseline" in result:
        text += "\nBaseline, same corpus, speech recognition off (duration rule):\n"
        text += _table(result["baseline"])
    return text


def _table(result: dict[str, Any]) -> str:
    acks, cuts = result["acknowledgements"], result["interruptions"]
    lines = [
        f"acknowledgements resumed: {acks['resumed']}/{acks['spoken']} {acks['decisions']}",
        f"interruptions cancelled:  {cuts['cancelled']}/{cuts['spoken']} {cuts['decisions']}",
        f"{'measure':<40}{'n':>4}{'p50':>10}{'p95':>10}",
        "-" * 64,
    ]
    for name, key in (
        ("listener: onset -> silence", "onset_to_silence_at_listener_seconds"),
        ("server: onset -> agent stopped", "server_onset_to_stop_seconds"),
        ("listener: onset -> cancel decision", "onset_to_cancel_decision_seconds"),
        ("server: pause -> cancel", "pause_to_cancel_seconds"),
        ("server: pause -> resume", "pause_to_resume_seconds"),
        ("listener: resumed acknowledgement gap", "resumed_acknowledgement_gap_seconds"),
        ("listener: end of speech -> final", "transcript_latency_seconds"),
    ):
        s = result[key]
        lines.append(f"{name:<40}{s['n']:>4}{s['p50'] * 1000:>8.1f}ms{s['p95'] * 1000:>8.1f}ms")
    cpu = result["orchestrator_cpu_cores"]
    lines.append(
        f"orchestrator CPU (cores): idle listening {cpu['idle_listening_session']}, "
        f"over the corpus {cpu['corpus_session']} ({cpu['corpus_over_idle']}x)"
    )
    return "\n".join(lines)


def main() -> None:
    """`python -m bench.bargein`: this scenario alone, its JSON in bench/results/."""
    parser = argparse.ArgumentParser(description=main.__doc__)
    parser.add_argument("--per-voice", type=int, default=5, help="clips of each kind per voice")
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results")
    parser.add_argument(
        "--no-baseline", action="store_true", help="skip the corpus without recognition"
    )
    args = parser.parse_args()
    from bench.run import save_scenario  # bench.run imports this module: import it late

    result = run(args.per_voice, baseline=not args.no_baseline)
    print(table(result))
    print(f"wrote {save_scenario('bargein', result, args.out)}")


if __name__ == "__main__":
    main()
