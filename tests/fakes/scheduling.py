"""Controllable time and engine calls for the scheduler's tests: a clock that moves only
when told (with the timers it fires), an executor that runs each call only when told, and a
fake engine that speaks a fixed number of samples per character and records what it was
asked to say. None of them is the real thing: the real-Piper tests cover the contract."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from concurrent.futures import Executor, Future
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from tts_worker.engines.base import EngineAudio, VoiceNotFoundError, VoiceSpec


@dataclass(eq=False)
class FakeTimer:
    due: float
    callback: Callable[[], None]
    cancelled: bool = False

    def cancel(self) -> None:
        self.cancelled = True


@dataclass
class FakeClock:
    """Seconds that pass only through `advance()`, which fires the timers that fall due."""

    now: float = 100.0
    timers: list[FakeTimer] = field(default_factory=list)

    def __call__(self) -> float:
        return self.now

    def call_later(self, delay: float, callback: Callable[[], None]) -> FakeTimer:
        timer = FakeTimer(self.now + delay, callback)
        self.timers.append(timer)
        return timer

    @property
    def next_due(self) -> float | None:
        due = [t.due for t in self.timers if not t.cancelled]
        return min(due) if due else None

    def advance(self, seconds: float) -> None:
        self.now += seconds
        while True:
            due = [t for t in self.timers if not t.cancelled and t.due <= self.now + 1e-12]
            if not due:
                return
            timer = min(due, key=lambda t: t.due)
            self.timers.remove(timer)
            timer.callback()


class ManualExecutor(Executor):
    """A call starts the moment it is submitted (as on a free thread: it can no longer be
    cancelled) and ends only when `finish()` runs the oldest one, in the caller's thread, so
    a test decides exactly when each engine call ends."""

    def __init__(self) -> None:
        self.pending: list[tuple[Callable[[], Any], Future[Any]]] = []

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Future[Any]:
        future: Future[Any] = Future()
        future.set_running_or_notify_cancel()
        self.pending.append((lambda: fn(*args, **kwargs), future))
        return future

    def finish(self) -> None:
        """Run the oldest call to its end."""
        call, future = self.pending.pop(0)
        future.set_result(call())


class FakeEngine:
    """Speaks `samples_per_char` samples of a quiet tone per character of text, as one chunk
    per call of `synthesize`, and records every text it was asked to say."""

    name = "fake"
    supports_speed = True

    def __init__(self, sample_rate: int = 16000, samples_per_char: int = 1000) -> None:
        self.sample_rate = sample_rate
        self.samples_per_char = samples_per_char
        self.texts: list[str] = []

    @property
    def default_voice(self) -> str:
        return "fake-voice"

    def voices(self) -> list[VoiceSpec]:
        return [self.voice("fake-voice")]

    def voice(self, name: str) -> VoiceSpec:
        if name != "fake-voice":
            raise VoiceNotFoundError(name)
        return VoiceSpec(name, self.sample_rate, "en", True)

    def load_voice(self, name: str) -> VoiceSpec:
        return self.voice(name)

    def unload_voice(self, name: str) -> None:
        self.voice(name)

    def synthesize(self, voice: str, text: str, speed: float = 1.0) -> Iterator[EngineAudio]:
        self.texts.append(text)
        samples = int(len(text) * self.samples_per_char / speed)
        t = np.arange(samples) / self.sample_rate
        yield (0.1 * np.sin(2 * np.pi * 220 * t)).astype(np.float32)
