"""What text the listener heard, from the samples played and the text span of each frame:
whole clauses, then the share of the current clause cut back to a word boundary."""

from __future__ import annotations

from orchestrator.sessions.utterance_audio import UtteranceAudio
from tts_rpc.v1 import tts_pb2

RATE = 1000  # one sample a millisecond keeps the arithmetic readable
TEXT = "Good morning. The central branch opens at eight."
FIRST = (0, 14)  # "Good morning. "
SECOND = (14, len(TEXT))


def utterance(frames: list[tuple[tuple[int, int], int]]) -> UtteranceAudio:
    """Frames of (text span, samples), in order."""
    audio = UtteranceAudio(RATE)
    audio.text = TEXT
    for (start, end), samples in frames:
        audio.append(
            tts_pb2.AudioFrame(
                audio=b"\x00\x00" * samples,
                sample_rate=RATE,
                text_span=tts_pb2.TextSpan(start=start, end=end),
            )
        )
    audio.finish()
    return audio


# The first clause takes 1 s in two frames, the second 2 s in four.
AUDIO = utterance([(FIRST, 500)] * 2 + [(SECOND, 500)] * 4)


def test_nothing_heard_is_no_text() -> None:
    assert AUDIO.text_heard(0) == ""


def test_a_whole_clause_heard() -> None:
    assert AUDIO.text_heard(1000) == "Good morning."


def test_part_of_a_clause_is_cut_back_to_a_word() -> None:
    # Half of the second clause's audio: half its characters, back to the last space.
    heard = AUDIO.text_heard(2000)
    assert heard == "Good morning. The central"  # 17 of 34 characters: "...branc"


def test_little_of_a_clause_rounds_down_to_its_start() -> None:
    assert AUDIO.text_heard(1050) == "Good morning."


def test_all_of_it() -> None:
    assert AUDIO.text_heard(3000) == TEXT
    assert AUDIO.text_heard(10_000) == TEXT
