"""Resamples engine audio to the requested rate and cuts it into fixed-size PCM frames."""

from __future__ import annotations

import numpy as np
import soxr

from tts_worker.engines.base import FloatAudio

BYTES_PER_SAMPLE = 2


class AudioFramer:
    """Streaming resampler (soxr, high quality) followed by a fixed-size s16le framer.

    One instance per utterance: the resampler keeps its filter state across engine chunks,
    so clause boundaries join without clicks, and leftover samples carry to the next frame.
    """

    def __init__(self, in_rate: int, out_rate: int, frame_ms: int = 20) -> None:
        self.out_rate = out_rate
        self.frame_samples = out_rate * frame_ms // 1000
        self._resampler = (
            None
            if in_rate == out_rate
            else soxr.ResampleStream(in_rate, out_rate, 1, "float32", "HQ")
        )
        self._pending = b""

    def push(self, audio: FloatAudio) -> list[bytes]:
        """Add engine audio; return the complete frames now available."""
        if self._resampler is not None:
            audio = self._resampler.resample_chunk(audio, last=False)
        return self._frames(audio, final=False)

    def flush(self) -> list[bytes]:
        """End of utterance: drain the resampler; the last frame may be short."""
        tail = np.zeros(0, dtype=np.float32)
        if self._resampler is not None:
            tail = self._resampler.resample_chunk(tail, last=True)
        return self._frames(tail, final=True)

    def _frames(self, audio: FloatAudio, final: bool) -> list[bytes]:
        pcm = (np.clip(audio, -1.0, 1.0) * 32767.0).astype("<i2").tobytes()
        data = self._pending + pcm
        size = self.frame_samples * BYTES_PER_SAMPLE
        whole = len(data) - len(data) % size
        frames = [data[i : i + size] for i in range(0, whole, size)]
        self._pending = data[whole:]
        if final and self._pending:
            frames.append(self._pending)
            self._pending = b""
        return frames
