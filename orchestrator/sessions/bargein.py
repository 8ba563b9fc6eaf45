"""Barge-in decisions: when the listener talks over the agent, pause at once, then either
resume or cancel, from what the listener said as well as how long they spoke.

- Words (when a recognizer transcribes the listener): a transcript holding any word that is
  not an acknowledgement, or a question, cancels at once, partial or not (reason `words`);
  a turn whose words are only acknowledgements ("yeah", "uh-huh") resumes once the listener
  is silent (`backchannel`), and one with no words at all resumes too (`noise`).
- Duration (today's rule, and the fallback): voiced speech past a minimum cancels
  (`duration`); a short sound followed by silence resumes (`silence`). It decides when no
  recognizer runs, or when the transcript the decision waits for is later than a bound.

Pure logic driven by voice-activity readings and transcripts; every time is in seconds on
the VAD's clock (seconds of the listener's audio processed), so tests replay exact timelines
without a real clock.
"""

from __future__ import annotations

import enum
import time
from collections.abc import Callable
from dataclasses import dataclass

from orchestrator.metrics.recorder import FleetMetrics
from orchestrator.sessions.backchannel import Heard, Verdict


class Action(enum.Enum):
    NONE = "none"
    PAUSE = "pause"
    RESUME = "resume"
    CANCEL = "cancel"


class AgentState(enum.Enum):
    IDLE = "idle"  # nothing to say
    SPEAKING = "speaking"
    PAUSED = "paused"  # the listener started talking; deciding between resume and cancel


class Reason(enum.StrEnum):
    """Which rule decided a barge-in (the `reason` of `resumed` and `cancelled` events)."""

    BACKCHANNEL = "backchannel"  # resumed: only acknowledgements were said
    NOISE = "noise"  # resumed: the recognizer heard no words
    SILENCE = "silence"  # resumed: a short sound, then silence (no words to go by)
    WORDS = "words"  # cancelled: a word other than an acknowledgement, or a question
    DURATION = "duration"  # cancelled: voiced speech past the minimum (no words to go by)


@dataclass(frozen=True)
class BargeInSettings:
    min_interruption_seconds: float = 0.3
    """User speech at least this long turns a pause into a cancel (the duration rule)."""
    false_interruption_silence_seconds: float = 0.4
    """Silence after a short interruption (or after acknowledgements) that resumes."""
    min_interruption_words: int = 1
    """Words a transcript needs before anything other than acknowledgements cancels (as
    LiveKit Agents' min_interruption_words); fewer resume like a backchannel."""
    words_timeout_seconds: float = 1.0
    """How long a decision waits for the transcript it needs before the duration rule
    decides instead."""

    def __post_init__(self) -> None:
        if self.min_interruption_seconds <= 0 or self.false_interruption_silence_seconds <= 0:
            raise ValueError("barge-in thresholds must be positive")
        if self.min_interruption_words < 1:
            raise ValueError("min_interruption_words must be at least 1")
        if self.words_timeout_seconds <= 0:
            raise ValueError("words_timeout_seconds must be positive")


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


@dataclass(frozen=True)
class TurnWords:
    """A transcript of the listener's current turn, as the decision needs it."""

    turn: float
    """The `at` of the onset that started the turn (transcripts of other turns are stale)."""
    covers: float
    """Position (VAD clock) up to which the turn's audio was transcribed."""
    heard: Heard


class BargeInController:
    """State machine for one session's agent speech. With `words` off (no recognizer) it
    decides by duration alone."""

    def __init__(self, settings: BargeInSettings, *, words: bool = False) -> None:
        self.settings = settings
        self.words = words
        self.state = AgentState.IDLE
        self.interruptible = True
        self.paused_at: float | None = None
        self.user_speaking = False
        self.reason: Reason | None = None
        """The rule behind the last RESUME or CANCEL."""
        self._heard: Heard | None = None
        self._covers = 0.0
        self._reading = VadUpdate(0.0, 0.0, 0.0)
        self._speech = 0.0  # most voiced seconds the turn reached (the VAD's count resets)

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
            self._heard = None
            self._covers = at
            self._reading = VadUpdate(at, 0.0, 0.0)
            self._speech = 0.0
            return Action.PAUSE
        return Action.NONE

    def user_speech_stopped(self, at: float) -> None:
        self.user_speaking = False

    def update(self, reading: VadUpdate) -> Action:
        """Decide from each VAD reading instead of waiting for its end-of-speech event, which
        only comes after the VAD's own (longer) silence window."""
        if self.state is not AgentState.PAUSED:
            return Action.NONE
        self._reading = reading
        self._speech = max(self._speech, reading.speech_seconds)
        return self._decide()

    def transcript(self, words: TurnWords) -> Action:
        """Decide from a (partial or final) transcript of the listener's turn."""
        if self.state is not AgentState.PAUSED or not self.words or words.turn != self.paused_at:
            return Action.NONE
        if words.covers >= self._covers:
            self._heard, self._covers = words.heard, words.covers
        return self._decide()

    def _decide(self) -> Action:
        settings, reading, heard = self.settings, self._reading, self._heard
        silent = reading.silence_seconds >= settings.false_interruption_silence_seconds
        if self.words:
            if (
                heard is not None
                and heard.verdict is Verdict.INTERRUPTION
                and heard.words >= settings.min_interruption_words
            ):
                return self._decided(Action.CANCEL, Reason.WORDS)
            if silent:
                speech_end = reading.at - reading.silence_seconds
                if heard is not None and self._covers >= speech_end:
                    nothing = heard.verdict is Verdict.NOTHING
                    return self._decided(
                        Action.RESUME, Reason.NOISE if nothing else Reason.BACKCHANNEL
                    )
                # Waiting for the words of the turn's end: bounded, then by duration.
                needed_at = speech_end + settings.false_interruption_silence_seconds
                if reading.at - needed_at < settings.words_timeout_seconds:
                    return Action.NONE
            elif reading.at - self._covers < settings.words_timeout_seconds:
                return Action.NONE  # transcripts are keeping up: wait for the words
        if self._speech >= settings.min_interruption_seconds:
            return self._decided(Action.CANCEL, Reason.DURATION)
        if silent:
            return self._decided(Action.RESUME, Reason.SILENCE)
        return Action.NONE

    def _decided(self, action: Action, reason: Reason) -> Action:
        self.reason = reason
        if action is Action.CANCEL:
            self.state = AgentState.IDLE
        else:
            self.state = AgentState.SPEAKING
        self.paused_at = None
        return action


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

    def decided(self, action: Action, reason: Reason | None = None) -> float | None:
        """The paused utterance was just resumed or cancelled (by the rule `reason`);
        returns pause -> decision."""
        if self._paused_at is None or action not in (Action.RESUME, Action.CANCEL):
            return None
        seconds = self._clock() - self._paused_at
        self._paused_at = None
        self._metrics.observe_bargein_decision(action.value, seconds, reason)
        return seconds
