"""Word timings, ours and Whisper's, and how far apart they are."""

from __future__ import annotations

import difflib
import re
import statistics
from dataclasses import dataclass

import numpy as np
import soxr

from tests.audio_checks import Pcm, _whisper
from tts_rpc.v1 import tts_pb2


@dataclass(frozen=True)
class Word:
    text: str
    start: float
    end: float


def _key(word: str) -> str:
    return re.sub(r"[^a-z0-9']", "", word.lower())


def our_words(
    text: str, frames: list[tts_pb2.AudioFrame], stats: tts_pb2.SynthesisStats | None
) -> list[Word]:
    """Every timing the worker sent, on frames and in the stats, in order."""
    timings = [t for f in frames for t in f.timings] + list(stats.timings if stats else [])
    return [
        Word(text[t.text_span.start : t.text_span.end], t.start_seconds, t.end_seconds)
        for t in timings
    ]


def whisper_words(pcm: Pcm) -> list[Word]:
    """Whisper tiny.en's own word timestamps on the audio."""
    audio = pcm.samples.astype(np.float32) / 32768.0
    if pcm.sample_rate != 16000:
        audio = soxr.resample(audio, pcm.sample_rate, 16000)
    segments, _ = _whisper().transcribe(
        audio, language="en", beam_size=1, vad_filter=False, word_timestamps=True
    )
    return [Word(w.word.strip(), w.start, w.end) for s in segments for w in s.words or []]


def median_offset(ours: list[Word], theirs: list[Word]) -> tuple[float, int]:
    """Median |difference| of start and end times over the words both hear alike, and how
    many words matched."""
    matcher = difflib.SequenceMatcher(
        a=[_key(w.text) for w in ours], b=[_key(w.text) for w in theirs], autojunk=False
    )
    differences: list[float] = []
    matched = 0
    for block in matcher.get_matching_blocks():
        for k in range(block.size):
            a, b = ours[block.a + k], theirs[block.b + k]
            differences += [abs(a.start - b.start), abs(a.end - b.end)]
            matched += 1
    return (statistics.median(differences) if differences else float("inf")), matched
