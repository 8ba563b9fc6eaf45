"""The barge-in figure starts at the listener's first voiced sample as it arrived, not at the
VAD's report of it: speech placed at a known point of the received audio (over digital
silence or a noise floor), run through real Silero VAD and the session's own listener and
meter, is timed to within one VAD window."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import numpy as np
import pytest
from livekit import rtc
from livekit.plugins import silero

from fleet.memory_store import MemoryStore
from orchestrator.metrics.recorder import FleetMetrics
from orchestrator.sessions.bargein import BargeInMeter, VadUpdate
from orchestrator.sessions.listening import VAD_RATE, Listener
from tests.audio_checks import parse_wav

FRAME = VAD_RATE // 100  # 10 ms, as LiveKit delivers them
WINDOW_SECONDS = 0.032  # one Silero window
AUDIBLE = 1000
# Silence before the speech: not multiples of a frame or a window, so the onset falls at
# different points of Silero's windows.
LEADS = (0.8, 1.237, 2.011)
NOISE_RMS = 60.0  # a quiet room, about -55 dBFS


class FrameClock:
    """The receiving side's clock: each delivered frame arrives 10 ms after the previous
    one, as in real time, but without waiting for it."""

    def __init__(self) -> None:
        self.frames = 0

    def __call__(self) -> float:
        return self.frames * FRAME / VAD_RATE


class Sink:
    """The session's side of the listener: it stops the agent (the meter) at each onset."""

    def __init__(self, meter: BargeInMeter, clock: FrameClock) -> None:
        self.meter = meter
        self.clock = clock
        self.stops: list[tuple[float, float | None]] = []  # (stopped at, onset arrival)

    def user_speech_started(self, identity: str, at: float, onset_arrival: float | None) -> None:
        self.stops.append((self.clock(), onset_arrival))
        self.meter.stopped(onset_arrival)

    def user_audio_started(self, identity: str) -> None:
        pass

    def user_speech_update(self, identity: str, reading: VadUpdate) -> None:
        pass

    def user_speech_stopped(self, identity: str, at: float, speech_seconds: float) -> None:
        pass


@pytest.fixture(scope="module")
async def speech(api: httpx.AsyncClient) -> np.ndarray:
    """A spoken sentence that starts at its first sample: Piper's quiet lead-in (whose
    audible start no one could pin to a sample) is cut, so the onset is known exactly."""
    said = await api.post(
        "/synthesize",
        json={"text": "Sorry, could you say that again?", "sample_rate": VAD_RATE},
    )
    samples = parse_wav(said.content).samples
    return samples[int(np.flatnonzero(np.abs(samples.astype(np.int32)) > AUDIBLE)[0]) :]


@pytest.mark.parametrize("noise_rms", [0.0, NOISE_RMS])
@pytest.mark.parametrize("lead_seconds", LEADS)
@pytest.mark.parametrize("min_speech_seconds", [0.032, 0.096])
async def test_onset_to_stop_counts_from_the_arrival_of_the_first_voiced_sample(
    speech: np.ndarray, min_speech_seconds: float, lead_seconds: float, noise_rms: float
) -> None:
    lead = np.zeros(round(lead_seconds * VAD_RATE), np.int16)
    onset_sample = len(lead)
    audio = np.concatenate([lead, speech, np.zeros(VAD_RATE, np.int16)]).astype(np.float64)
    audio += np.random.default_rng(7).normal(0.0, noise_rms, len(audio))
    audio = np.clip(audio, -32768, 32767).astype(np.int16)
    clock = FrameClock()
    # The truth: the frame holding the first audible sample arrived when it was delivered.
    onset_arrival = (onset_sample // FRAME + 1) * FRAME / VAD_RATE

    metrics = FleetMetrics(MemoryStore(), "onset-test")
    sink = Sink(BargeInMeter(metrics, clock), clock)
    vad = silero.VAD.load(min_speech_duration=min_speech_seconds)
    listener = Listener(vad, "user", sink, clock)

    async def frames() -> AsyncIterator[rtc.AudioFrame]:
        for start in range(0, len(audio) - FRAME + 1, FRAME):
            clock.frames += 1
            chunk = audio[start : start + FRAME]
            yield rtc.AudioFrame(chunk.tobytes(), VAD_RATE, 1, FRAME)

    await listener.run(frames())

    assert sink.stops, "the VAD heard no onset"
    stopped_at, placed = sink.stops[0]
    assert placed is not None
    recorded = metrics.series("bargein_onset_to_stop_seconds")[()].totals()[-2]  # the sum
    truth = stopped_at - onset_arrival
    assert abs(recorded - truth) <= WINDOW_SECONDS, (recorded, truth)
    # Not the VAD's own delay: the onset is reported only after min_speech_seconds of it.
    assert recorded >= min_speech_seconds - WINDOW_SECONDS
