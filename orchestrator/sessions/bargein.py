"""Barge-in decisions: when the listener talks over the agent, pause at once, then either
resume (a false interruption: a short sound, then silence) or cancel (real speech).

Pure logic driven by voice-activity updates; every time is in seconds on the VAD's clock
(seconds of user audio processed), so tests replay exact timelines without a real clock.
"""

from __future__ import annotations

import enum
import time
from collections.abc import Callable
from dataclasses import dataclass

from orchestrator.metrics.recorder import FleetMetrics


class Action(enum.Enum):
    NONE = "none"
    PAUSE = "pause"
    RESUME = "resume"
    CANCEL = "cancel"


class AgentState(enum.Enum):
    IDLE = "idle"  # nothing to say
    SPEAKING = "speaking"
    PAUSED = "paused"  # the listener started talking; deciding between resume and cancel


@dataclass(frozen=True)
class BargeInSettings:
    min_interruption_seconds: float = 0.3
    """User speech at least this long turns a pause into a cancel."""
    false_interruption_silence_seconds: float = 0.4
    """Silence after shorter speech that resumes the paused utterance."""

    def __post_init__(self) -> None:
        if self.min_interruption_seconds <= 0 or self.false_interruption_silence_seconds <= 0:
            raise ValueError("barge-in thresholds must be positive")


@dataclass(frozen=True)
class VadUpdate:
    """One voice-activity reading of the listener's audio."""

    at: float
    speech_seconds: float  # voiced time in the current user turn, silent gaps excluded
    silence_seconds: float  # consecutive silence up to now


class TurnSpeech:
    """Voiced seconds in the listener's current turn, from the VAD's run of consecutive
    speech windows (which restarts at zero after every silent window).

    Summing runs, rather than taking the time since onset minus the trailing silence, keeps
    a short sound followed by a stray voiced window a few hundred ms later from counting the
    silent gap between them as speech, which would turn a false interruption into a cancel.
    """

    def __init__(self) -> None:
        self._ended_runs = 0.0
        self._run = 0.0

    def turn_started(self) -> None:
        self._ended_runs = 0.0

    def update(self, run_seconds: float) -> float:
        """Take the VAD's current run of speech; return the voiced seconds of the turn."""
        if run_seconds < self._run:  # the previous run ended with a silent window
            self._ended_runs += self._run
        self._run = run_seconds
        return self._ended_runs + self._run


class BargeInController:
    """State machine for one session's agent speech."""

    def __init__(self, settings: BargeInSettings) -> None:
        self.settings = settings
        self.state = AgentState.IDLE
        self.interruptible = True
        self.paused_at: float | None = None
        self.user_speaking = False

    def agent_started(self, interruptible: bool) -> None:
        self.state = AgentState.SPEAKING
        self.interruptible = interruptible
        self.paused_at = None

    def agent_finished(self) -> None:
        self.state = AgentState.IDLE
        self.paused_at = None

    def user_speech_started(self, at: float) -> Action:
        """Speech onset from the VAD: pause an interruptible utterance at once."""
        self.user_speaking = True
        if self.state is AgentState.SPEAKING and self.interruptible:
            self.state = AgentState.PAUSED
            self.paused_at = at
            return Action.PAUSE
        return Action.NONE

    def user_speech_stopped(self, at: float) -> None:
        self.user_speaking = False

    def update(self, reading: VadUpdate) -> Action:
        """Decide from each VAD reading instead of waiting for its end-of-speech event, which
        only comes after the VAD's own (longer) silence window."""
        if self.state is not AgentState.PAUSED:
            return Action.NONE
        if reading.speech_seconds >= self.settings.min_interruption_seconds:
            self.state = AgentState.IDLE
            return Action.CANCEL
        if reading.silence_seconds >= self.settings.false_interruption_silence_seconds:
            self.state = AgentState.SPEAKING
            self.paused_at = None
            return Action.RESUME
        return Action.NONE


class BargeInMeter:
    """Times one session's barge-ins on the server's own clock, as the metrics report them:
    onset (arrival of the first voiced sample) -> the agent's source cleared, and pause ->
    the decision to resume or cancel. What the server cannot see, the listener's uplink
    before arrival and its playout after, is left to benchmarks measured at a listener."""

    def __init__(self, metrics: FleetMetrics, clock: Callable[[], float] = time.perf_counter):
        self._metrics = metrics
        self._clock = clock
        self._paused_at: float | None = None

    def stopped(self, onset_arrival: float | None) -> float | None:
        """The agent's audio was just stopped for an onset whose first voiced sample arrived
        at onset_arrival (None: unknown). Returns onset -> stop in seconds, if known."""
        now = self._clock()
        self._paused_at = now
        onset_to_stop = None if onset_arrival is None else max(0.0, now - onset_arrival)
        self._metrics.observe_bargein_stop(onset_to_stop)
        return onset_to_stop

    def decided(self, action: Action) -> float | None:
        """The paused utterance was just resumed or cancelled; returns pause -> decision."""
        if self._paused_at is None or action not in (Action.RESUME, Action.CANCEL):
            return None
        seconds = self._clock() - self._paused_at
        self._paused_at = None
        self._metrics.observe_bargein_decision(action.value, seconds)
        return seconds
