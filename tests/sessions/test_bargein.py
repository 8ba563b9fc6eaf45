"""Barge-in decisions on exact VAD timelines (no wall clock): pause at onset, resume after a
short burst and silence, cancel on real speech, ignore non-interruptible speech; with words,
resume on acknowledgements, cancel on any other word at once, and fall back to the duration
rule when the transcript is late."""

from __future__ import annotations

from orchestrator.sessions.backchannel import ENGLISH_ACKNOWLEDGEMENTS, AcknowledgementRules
from orchestrator.sessions.bargein import (
    Action,
    AgentState,
    BargeInController,
    BargeInSettings,
    Reason,
    TurnSpeech,
    TurnWords,
    VadUpdate,
)

SETTINGS = BargeInSettings(min_interruption_seconds=0.3, false_interruption_silence_seconds=0.4)


def timeline(
    controller: BargeInController, readings: list[tuple[float, float, float]]
) -> list[tuple[float, Action]]:
    """Feed (at, speech, silence) readings; return the non-trivial decisions with their time."""
    decisions = []
    for at, speech, silence in readings:
        action = controller.update(VadUpdate(at, speech, silence))
        if action is not Action.NONE:
            decisions.append((at, action))
    return decisions


def window_readings(
    start: float, speech: float, then_silence: float
) -> list[tuple[float, float, float]]:
    """Silero-like readings every 32 ms: `speech` seconds of voice, then silence."""
    readings = []
    t, spoken, quiet = start, 0.0, 0.0
    while spoken < speech - 1e-9:
        t, spoken = t + 0.032, spoken + 0.032
        readings.append((round(t, 3), round(spoken, 3), 0.0))
    while quiet < then_silence - 1e-9:
        t, quiet = t + 0.032, quiet + 0.032
        readings.append((round(t, 3), round(spoken, 3), round(quiet, 3)))
    return readings


def test_onset_pauses_immediately() -> None:
    controller = BargeInController(SETTINGS)
    controller.agent_started(interruptible=True)
    assert controller.user_speech_started(at=1.064) is Action.PAUSE
    assert controller.state is AgentState.PAUSED
    assert controller.paused_at == 1.064


def test_short_burst_then_silence_resumes_exactly_at_the_silence_threshold() -> None:
    """150 ms of speech, then silence: resume on the first reading with 0.4 s of silence."""
    controller = BargeInController(SETTINGS)
    controller.agent_started(interruptible=True)
    controller.user_speech_started(at=1.0)
    decisions = timeline(controller, window_readings(1.0, speech=0.15, then_silence=0.6))
    # 5 windows of speech (0.16 s) end at 1.16; 13 windows of silence reach 0.416 s at 1.576.
    assert decisions == [(1.576, Action.RESUME)]
    assert controller.state is AgentState.SPEAKING


def test_real_speech_cancels_once_it_reaches_the_minimum() -> None:
    controller = BargeInController(SETTINGS)
    controller.agent_started(interruptible=True)
    controller.user_speech_started(at=2.0)
    decisions = timeline(controller, window_readings(2.0, speech=1.0, then_silence=1.0))
    # 10 windows = 0.32 s of speech >= 0.3 s, at 2.32; nothing after the cancel.
    assert decisions == [(2.32, Action.CANCEL)]
    assert controller.state is AgentState.IDLE


def test_speech_resuming_within_the_silence_window_still_cancels() -> None:
    """Two short words separated by a short gap add up to a real interruption."""
    controller = BargeInController(SETTINGS)
    controller.agent_started(interruptible=True)
    controller.user_speech_started(at=0.0)
    readings = [
        (0.1, 0.1, 0.0),
        (0.2, 0.15, 0.05),
        (0.3, 0.15, 0.15),
        (0.4, 0.25, 0.0),
        (0.5, 0.35, 0.0),
    ]
    assert timeline(controller, readings) == [(0.5, Action.CANCEL)]


def test_non_interruptible_speech_is_never_paused() -> None:
    controller = BargeInController(SETTINGS)
    controller.agent_started(interruptible=False)
    assert controller.user_speech_started(at=1.0) is Action.NONE
    assert timeline(controller, window_readings(1.0, speech=2.0, then_silence=0.5)) == []
    assert controller.state is AgentState.SPEAKING


def test_user_speech_while_idle_changes_nothing() -> None:
    controller = BargeInController(SETTINGS)
    assert controller.user_speech_started(at=1.0) is Action.NONE
    assert timeline(controller, window_readings(1.0, speech=1.0, then_silence=1.0)) == []


def test_a_second_interruption_after_a_resume_pauses_again() -> None:
    controller = BargeInController(SETTINGS)
    controller.agent_started(interruptible=True)
    controller.user_speech_started(at=1.0)
    assert timeline(controller, window_readings(1.0, 0.1, 0.5))[-1][1] is Action.RESUME
    controller.user_speech_stopped(at=1.7)
    assert controller.user_speech_started(at=3.0) is Action.PAUSE
    assert timeline(controller, window_readings(3.0, 0.5, 0.0)) == [(3.32, Action.CANCEL)]


def vad_runs(pattern: str) -> list[tuple[float, float]]:
    """Silero's runs of consecutive speech and of consecutive silence as each reading reports
    them (as they stood before that window): one character per 32 ms window of the pattern,
    'x' voiced, '.' silent."""
    readings, speech, silence = [], 0.0, 0.0
    for window in pattern:
        readings.append((round(speech, 3), round(silence, 3)))
        voiced = window == "x"
        speech, silence = (speech + 0.032, 0.0) if voiced else (0.0, silence + 0.032)
    return readings


def test_turn_speech_sums_voiced_runs_and_leaves_out_the_gaps() -> None:
    turn = TurnSpeech()
    turn.turn_started()
    seen = [turn.update(speech) for speech, _ in vad_runs("xxxxx......x..xx.")]
    # 5 + 1 + 2 voiced windows; the 6 and 2 silent windows between them do not count.
    assert round(seen[-1], 3) == round(8 * 0.032, 3)
    assert turn.update(0.0) == seen[-1]  # silence adds nothing
    turn.turn_started()
    assert turn.update(0.032) == 0.032  # a new turn starts from its own speech


def test_burst_then_stray_voiced_window_is_still_a_false_interruption() -> None:
    """150 ms of speech, 200 ms of silence, one stray voiced window, then silence. Counting
    from the onset, minus the trailing silence, would call the 380 ms since the onset speech
    and cancel; only 6 windows were voiced, so the pause resumes."""
    controller = BargeInController(SETTINGS)
    controller.agent_started(interruptible=True)
    controller.user_speech_started(at=1.0)
    turn = TurnSpeech()
    turn.turn_started()
    readings = [
        (round(1.032 + 0.032 * i, 3), turn.update(speech), silence)
        for i, (speech, silence) in enumerate(vad_runs("xxxxx" + "." * 6 + "x" + "." * 16))
    ]
    assert [action for _, action in timeline(controller, readings)] == [Action.RESUME]


# -- with words -----------------------------------------------------------------------------

RULES = AcknowledgementRules(ENGLISH_ACKNOWLEDGEMENTS)
WORDS = BargeInSettings(
    min_interruption_seconds=0.3,
    false_interruption_silence_seconds=0.4,
    min_interruption_words=1,
    words_timeout_seconds=1.0,
)
Event = tuple[float, float, float] | tuple[float, str, float]


def words_timeline(
    controller: BargeInController, turn: float, events: list[Event]
) -> list[tuple[float, Action, Reason | None]]:
    """Feed VAD readings (at, speech, silence) and transcripts (at, text, covers) in order;
    return the decisions with their time and rule."""
    decisions = []
    for at, second, third in events:
        if isinstance(second, str):
            action = controller.transcript(TurnWords(turn, third, RULES.hear(second)))
        else:
            action = controller.update(VadUpdate(at, second, third))
        if action is not Action.NONE:
            decisions.append((at, action, controller.reason))
    return decisions


def paused(settings: BargeInSettings = WORDS, at: float = 1.0) -> BargeInController:
    controller = BargeInController(settings, words=True)
    controller.agent_started(interruptible=True)
    assert controller.user_speech_started(at=at) is Action.PAUSE
    return controller


def test_an_acknowledgement_resumes_once_the_listener_is_silent() -> None:
    """A 0.45 s "yeah" (past the duration rule's 0.3 s) resumes: its words are only an
    acknowledgement. The decision comes with the first reading of 0.4 s silence that follows
    a transcript covering the speech."""
    controller = paused()
    readings = [(1.0 + 0.032 * i, 0.032 * i, 0.0) for i in range(1, 15)]  # to 1.448
    events: list[Event] = [
        *readings,
        (1.45, "Yeah.", 1.40),  # a partial
        (1.48, 0.448, 0.032),
        (1.60, 0.448, 0.152),
        (1.65, "Yeah.", 1.62),  # the partial at the pause: covers the end of speech (1.448)
        (1.70, 0.448, 0.252),
        (1.85, 0.448, 0.402),
        (1.90, 0.448, 0.452),
    ]
    assert words_timeline(controller, 1.0, events) == [(1.85, Action.RESUME, Reason.BACKCHANNEL)]
    assert controller.state is AgentState.SPEAKING


def test_a_partial_with_another_word_cancels_at_once() -> None:
    controller = paused()
    events: list[Event] = [
        (1.2, 0.2, 0.0),
        (1.35, "Sorry", 1.3),
        (1.4, 0.4, 0.0),  # the duration rule would have cancelled here
    ]
    assert words_timeline(controller, 1.0, events) == [(1.35, Action.CANCEL, Reason.WORDS)]
    assert controller.state is AgentState.IDLE


def test_no_words_resumes_as_noise() -> None:
    controller = paused()
    events: list[Event] = [(1.5, 0.5, 0.0), (1.62, "", 1.6), (1.9, 0.5, 0.4)]
    assert words_timeline(controller, 1.0, events) == [(1.9, Action.RESUME, Reason.NOISE)]


def test_a_question_of_acknowledgements_cancels() -> None:
    controller = paused()
    assert words_timeline(controller, 1.0, [(1.4, 0.4, 0.0), (1.5, "Right?", 1.45)]) == [
        (1.5, Action.CANCEL, Reason.WORDS)
    ]


def test_resume_waits_for_words_that_cover_the_end_of_speech() -> None:
    """Silence is long enough, but the last transcript stopped before the speech did (the
    listener said more after it): no resume until a transcript covers the end."""
    controller = paused()
    events: list[Event] = [
        (1.4, 0.4, 0.0),
        (1.45, "Okay", 1.4),
        (1.6, 0.6, 0.0),  # still speaking past the transcript
        (2.0, 0.6, 0.4),  # silent since 1.6: covered only to 1.4
        (2.1, 0.6, 0.5),
        (2.15, "Okay, sure.", 2.05),
        (2.2, 0.6, 0.6),
    ]
    assert words_timeline(controller, 1.0, events) == [(2.15, Action.RESUME, Reason.BACKCHANNEL)]


def test_a_late_transcript_falls_back_to_the_duration_rule() -> None:
    """No transcript covers the speech by words_timeout after the moment it would resume
    (silence from 1.5, resumable at 1.9): at 2.9 the 0.5 s of speech cancels."""
    controller = paused()
    events: list[Event] = [(1.5, 0.5, 0.0), (1.9, 0.5, 0.4), (2.88, 0.5, 1.38), (2.9, 0.5, 1.4)]
    assert words_timeline(controller, 1.0, events) == [(2.9, Action.CANCEL, Reason.DURATION)]


def test_the_fallback_resumes_a_short_sound_by_silence() -> None:
    controller = paused()
    events: list[Event] = [(1.1, 0.1, 0.0), (1.5, 0.1, 0.4), (2.5, 0.1, 1.4)]
    assert words_timeline(controller, 1.0, events) == [(2.5, Action.RESUME, Reason.SILENCE)]


def test_speech_with_no_transcript_at_all_cancels_by_duration_after_the_timeout() -> None:
    """The listener talks on, but no transcript comes (recognition stalled): 1.0 s after
    the onset the duration rule decides."""
    controller = paused()
    events: list[Event] = [(1.5, 0.5, 0.0), (1.96, 0.96, 0.0), (2.0, 1.0, 0.0)]
    assert words_timeline(controller, 1.0, events) == [(2.0, Action.CANCEL, Reason.DURATION)]


def test_acknowledgements_keep_the_pause_while_the_listener_goes_on() -> None:
    """Transcripts keep up with a long run of acknowledgements: no decision while speaking."""
    controller = paused()
    events: list[Event] = []
    for k in range(1, 8):
        at = 1.0 + 0.4 * k
        events += [(at, 0.4 * k, 0.0), (at + 0.05, "yeah " * k, at)]
    assert words_timeline(controller, 1.0, events) == []
    assert controller.state is AgentState.PAUSED


def test_fewer_words_than_the_minimum_resume_like_a_backchannel() -> None:
    settings = BargeInSettings(min_interruption_words=2)
    controller = paused(settings)
    events: list[Event] = [(1.4, 0.4, 0.0), (1.5, "Stop.", 1.45), (1.85, 0.4, 0.45)]
    assert words_timeline(controller, 1.0, events) == [(1.85, Action.RESUME, Reason.BACKCHANNEL)]
    controller = paused(settings)
    events = [(1.4, 0.4, 0.0), (1.5, "Stop now.", 1.45)]
    assert words_timeline(controller, 1.0, events) == [(1.5, Action.CANCEL, Reason.WORDS)]


def test_transcripts_of_another_turn_are_ignored() -> None:
    controller = paused(at=3.0)
    assert controller.transcript(TurnWords(1.0, 3.5, RULES.hear("Stop."))) is Action.NONE
    assert controller.state is AgentState.PAUSED


def test_without_words_the_rules_are_duration_and_silence() -> None:
    controller = BargeInController(SETTINGS)
    controller.agent_started(interruptible=True)
    controller.user_speech_started(at=1.0)
    assert controller.transcript(TurnWords(1.0, 1.1, RULES.hear("Stop."))) is Action.NONE
    timeline(controller, window_readings(1.0, speech=0.15, then_silence=0.6))
    assert controller.reason is Reason.SILENCE
    controller.agent_started(interruptible=True)
    controller.user_speech_started(at=3.0)
    timeline(controller, window_readings(3.0, speech=1.0, then_silence=0.0))
    assert controller.reason is Reason.DURATION
