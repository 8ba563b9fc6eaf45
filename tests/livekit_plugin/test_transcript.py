"""The plugin's aligned transcript hands out the text written to a worker as timed pieces
that add up to it, whatever unit the engine times."""

from __future__ import annotations

from livekit_plugin.tts import _Transcript
from tts_rpc.v1 import tts_pb2


def timing(
    start: int, end: int, at: float, until: float, clause: bool = False
) -> tts_pb2.TextTiming:
    return tts_pb2.TextTiming(
        text_span=tts_pb2.TextSpan(start=start, end=end),
        start_seconds=at,
        end_seconds=until,
        unit=tts_pb2.TIMING_UNIT_CLAUSE if clause else tts_pb2.TIMING_UNIT_WORD,
    )


def test_words_carry_the_text_before_them_and_their_times() -> None:
    transcript = _Transcript("Hello there, friend.")
    pieces = transcript.timed([timing(0, 5, 0.1, 0.4), timing(6, 11, 0.45, 0.8)])
    pieces += transcript.timed([timing(13, 19, 1.0, 1.3)])
    assert pieces == ["Hello", " there", ", friend"]
    assert [(p.start_time, p.end_time) for p in pieces] == [(0.1, 0.4), (0.45, 0.8), (1.0, 1.3)]
    rest = transcript.rest(1.5)  # the final "." was never timed
    assert rest == ["."] and rest[0].start_time == 1.5
    assert "".join(pieces + rest) == "Hello there, friend."


def test_clauses_come_whole_and_a_span_is_handed_out_once() -> None:
    transcript = _Transcript()
    transcript.text += "One clause, "
    first = transcript.timed([timing(0, 10, 0.0, 0.9, clause=True)])
    transcript.text += "and another."
    again = transcript.timed([timing(0, 10, 0.0, 0.9, clause=True)])
    second = transcript.timed([timing(12, 24, 1.0, 2.0, clause=True)])
    assert first == ["One clause"] and again == []
    assert second == [", and another."]
    assert transcript.rest(2.0) == []  # nothing left but spaces: no empty piece
