"""Where a listener's speech began in the audio the agent received.

Silero reports an onset only once whole 32 ms windows look voiced, and its smoothing lags
the sound by about a window, so "the first voiced window" is late by a variable amount that
depends on how the word starts. The VAD's start event carries the audio it buffered (its
prefix padding plus the voiced run), so the onset is found in the samples themselves: from
the first voiced window, walk back over 10 ms blocks while they stay above the background
level measured in the padding. That is where the sound started, to within one block. (When
the first voiced window is itself quiet, the onset is the first block of sound after it.)
"""

from __future__ import annotations

import numpy as np

BLOCK_SECONDS = 0.010
MIN_LEVEL = 30.0
"""Lowest RMS (int16 scale, about -60 dBFS) that counts as sound, even over digital silence."""
FLOOR_FACTOR = 3.0
"""A block is sound when its RMS is this many times the background level."""
FLOOR_PERCENTILE = 20.0
"""The background level: this percentile of the padding's block levels."""
MAX_LOOKBACK_SECONDS = 0.25
"""How far before the first voiced window the sound may have started."""


def speech_onset(
    buffered: np.ndarray, sample_rate: int, *, end_seconds: float, first_voiced_seconds: float
) -> float:
    """The onset, in seconds of the listener's audio, of the speech whose first voiced window
    starts at first_voiced_seconds. `buffered` is the int16 audio the VAD kept, ending at
    end_seconds (the start event's timestamp)."""
    block = max(1, round(BLOCK_SECONDS * sample_rate))
    start_seconds = end_seconds - len(buffered) / sample_rate
    voiced_at = round((first_voiced_seconds - start_seconds) * sample_rate)
    if voiced_at <= 0 or voiced_at > len(buffered):
        return first_voiced_seconds
    # Blocks aligned so that one starts exactly at the first voiced sample.
    head = voiced_at % block
    count = (len(buffered) - head) // block
    voiced = (voiced_at - head) // block
    levels = _rms(buffered[head : head + count * block].reshape(count, block))
    lookback = min(voiced, round(MAX_LOOKBACK_SECONDS / BLOCK_SECONDS))
    padding = levels[: voiced - lookback]
    floor = float(np.percentile(padding, FLOOR_PERCENTILE)) if len(padding) else 0.0
    threshold = max(MIN_LEVEL, FLOOR_FACTOR * floor)
    onset = voiced
    if onset < count and levels[onset] < threshold:
        louder = np.flatnonzero(levels[onset:] >= threshold)
        onset = onset + int(louder[0]) if len(louder) else voiced
    else:
        while onset > voiced - lookback and levels[onset - 1] >= threshold:
            onset -= 1
    return start_seconds + (head + onset * block) / sample_rate


def _rms(blocks: np.ndarray) -> np.ndarray:
    values = blocks.astype(np.float64)
    result: np.ndarray = np.sqrt(np.mean(values * values, axis=1))
    return result
