"""When a listener's speech is recognized, on exact timelines of audio and VAD readings
(a scripted recognizer, no clock): partials at each interval and at the first pause, a
final that reuses the last partial when nothing was said after it, partials dropped (and
counted) while a recognition runs but finals never, long turns cut into bounded segments."""

from __future__ import annotations

import asyncio

import numpy as np
import numpy.typing as npt
import pytest

from orchestrator.sessions.bargein import VadUpdate
from orchestrator.sessions.recognizer import Recognized
from orchestrator.sessions.transcriber import (
    PRE_ROLL_SECONDS,
    Transcriber,
    TranscriberOptions,
    Transcript,
)

RATE = 16000
WINDOW = 512  # one Silero window
W = WINDOW / RATE  # 0.032 s
OPTIONS = TranscriberOptions(partial_interval_seconds=0.4, pause_seconds=0.1)


class ScriptedRecognizer:
    """Answers each recognition with "w<n>" (n = its call number), at once or when the
    test releases it."""

    def __init__(self, hold: bool = False) -> None:
        self.calls: list[int] = []  # samples of audio each call got
        self.hold = hold
        self.release = asyncio.Event()

    async def __call__(self, pcm: npt.NDArray[np.int16]) -> Recognized:
        self.calls.append(len(pcm))
        number = len(self.calls)
        if self.hold:
            await self.release.wait()
            self.release.clear()
        return Recognized(f"w{number}", len(pcm) / RATE, 0.05)


class Sink:
    def __init__(self) -> None:
        self.transcripts: list[Transcript] = []
        self.dropped = 0

    def transcript(self, transcript: Transcript) -> None:
        self.transcripts.append(transcript)

    def partial_dropped(self) -> None:
        self.dropped += 1


class Timeline:
    """Audio arrives one 32 ms VAD window at a time, each followed by its reading: voiced
    or silent."""

    def __init__(self, transcriber: Transcriber) -> None:
        self.t = transcriber
        self.windows = 0
        self.speech = 0.0
        self.silence = 0.0

    @property
    def now(self) -> float:
        return round(self.windows * W, 3)

    async def run(self, windows: int, speaking: bool) -> None:
        for _ in range(windows):
            self.t.received(np.full(WINDOW, 1000, np.int16).tobytes())
            self.windows += 1
            if speaking:
                self.speech, self.silence = self.speech + W, 0.0
            else:
                self.silence += W
            self.t.reading(VadUpdate(self.now, self.speech, round(self.silence, 3)))
            await asyncio.sleep(0)  # let the recognition task run, as the loop would


async def settle() -> None:
    for _ in range(5):
        await asyncio.sleep(0)


def t(windows: int) -> float:
    return round(windows * W, 3)


async def test_partials_at_each_interval_and_the_pause_then_the_final_reuses_the_last() -> None:
    recognizer, sink = ScriptedRecognizer(), Sink()
    transcriber = Transcriber(recognizer, sink, OPTIONS)
    line = Timeline(transcriber)
    await line.run(32, speaking=False)
    transcriber.speech_started(at=t(34), onset=t(32))
    await line.run(30, speaking=True)  # speech from window 32 to 62
    await line.run(20, speaking=False)
    transcriber.speech_stopped(at=t(82), speech_end=t(62))
    await settle()
    # Partials once 0.4 s of audio is new (windows 45 and 58), one at the pause (the 4th
    # silent window, 66: silence >= 0.1 s), and no fourth recognition: the final reuses it.
    audio_from = t(32) - PRE_ROLL_SECONDS
    assert [round(n / RATE, 3) for n in recognizer.calls] == [
        round(t(45) - audio_from, 3),
        round(t(58) - audio_from, 3),
        round(t(66) - audio_from, 3),
    ]
    kinds = [(t.text, t.final, t.start, t.end) for t in sink.transcripts]
    assert kinds == [
        ("w1", False, t(32), t(45)),
        ("w2", False, t(32), t(58)),
        ("w3", False, t(32), t(66)),
        ("w3", True, t(32), t(62)),
    ]
    assert len({t.segment_id for t in sink.transcripts}) == 1
    assert sink.transcripts[-1].compute_seconds == 0.0  # nothing recognized for it
    assert sink.transcripts[-1].turn == t(34)
    assert transcriber.buffered_seconds <= 2 * PRE_ROLL_SECONDS
    await transcriber.aclose()


async def test_a_partial_due_while_one_runs_is_dropped_but_a_final_waits() -> None:
    recognizer, sink = ScriptedRecognizer(hold=True), Sink()
    transcriber = Transcriber(recognizer, sink, OPTIONS)
    line = Timeline(transcriber)
    await line.run(16, speaking=False)
    transcriber.speech_started(at=t(16), onset=t(16))
    await line.run(40, speaking=True)  # due at windows 29 (runs), 42 and 55 (both dropped)
    assert len(recognizer.calls) == 1
    assert sink.dropped == 2
    transcriber.speech_stopped(at=t(56), speech_end=t(56))  # past the running partial
    assert transcriber.busy
    recognizer.release.set()
    await settle()
    recognizer.release.set()
    await settle()
    assert [(t.text, t.final) for t in sink.transcripts] == [("w1", False), ("w2", True)]
    assert sink.transcripts[-1].end == t(56)
    assert not transcriber.busy
    await transcriber.aclose()


async def test_speech_after_the_last_partial_gets_its_own_final() -> None:
    recognizer, sink = ScriptedRecognizer(), Sink()
    transcriber = Transcriber(recognizer, sink, OPTIONS)
    line = Timeline(transcriber)
    transcriber.speech_started(at=t(2), onset=0.0)
    await line.run(16, speaking=True)  # one partial at window 13
    transcriber.speech_stopped(at=t(16), speech_end=t(16))  # no pause partial came
    await settle()
    assert [(t.text, t.final, t.end) for t in sink.transcripts] == [
        ("w1", False, t(13)),
        ("w2", True, t(16)),
    ]
    await transcriber.aclose()


async def test_a_long_turn_is_cut_into_segments_with_a_final_each() -> None:
    recognizer, sink = ScriptedRecognizer(), Sink()
    options = TranscriberOptions(partial_interval_seconds=0.4, max_segment_seconds=2.0)
    transcriber = Transcriber(recognizer, sink, options)
    line = Timeline(transcriber)
    transcriber.speech_started(at=t(2), onset=0.0)
    peak = 0.0
    for _ in range(200):  # 6.4 s of speech
        await line.run(1, speaking=True)
        peak = max(peak, transcriber.buffered_seconds)
    transcriber.speech_stopped(at=t(200), speech_end=t(200))
    await settle()
    finals = [t for t in sink.transcripts if t.final]
    # A segment is cut at exactly 2.0 s of its audio, at the first reading past it.
    assert [(t.start, t.end) for t in finals] == [
        (0.0, 2.0),
        (2.0, 4.0),
        (4.0, 6.0),
        (6.0, t(200)),
    ]
    assert len({t.segment_id for t in finals}) == 4
    assert peak <= t(63)
    assert max(recognizer.calls) <= 63 * WINDOW
    await transcriber.aclose()


async def test_between_turns_only_the_pre_roll_is_kept() -> None:
    transcriber = Transcriber(ScriptedRecognizer(), Sink(), OPTIONS)
    line = Timeline(transcriber)
    await line.run(1000, speaking=False)  # 32 s
    assert transcriber.buffered_seconds <= 2 * PRE_ROLL_SECONDS
    await transcriber.aclose()


def test_options_are_checked() -> None:
    with pytest.raises(ValueError, match="max_segment_seconds"):
        TranscriberOptions(max_segment_seconds=29.5)
