"""Barge-in decisions on exact VAD timelines (no wall clock): pause at onset, resume after a
short burst and silence, cancel on real speech, ignore non-interruptible speech."""

from __future__ import annotations

from orchestrator.sessions.bargein import (
    Action,
    AgentState,
    BargeInController,
    BargeInSettings,
    TurnSpeech,
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
