"""Captions of the agent's speech that advance with its voice.

A caption is the text the listener has heard so far (`UtteranceAudio.text_heard` at the
playout's heard position), written as deltas while the utterance plays: a word appears when
its audio starts playing (word timings from the worker; without them, clauses revealed as
their audio plays). A pause stops it with the voice; a cancel ends it at the heard
position, so a caption never shows a word the listener did not hear.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from typing import Protocol

from orchestrator.sessions.utterance_audio import UtteranceAudio

POLL_SECONDS = 0.02
"""How often the caption looks again when no word timing says when it changes next (one
frame of playout: clause-timed engines, a paused or starving utterance)."""


class CaptionWriter(Protocol):
    async def write(self, delta: str) -> None:
        """Append text to the caption."""

    async def close(self) -> None:
        """The caption is complete (its segment is final)."""


class AgentCaptions:
    """One utterance's caption: run() writes it until finish() or stop_at() ends it."""

    def __init__(
        self, audio: UtteranceAudio, heard: Callable[[], int], writer: CaptionWriter
    ) -> None:
        self._audio = audio
        self._heard = heard
        self._writer = writer
        self._limit: int | None = None  # samples heard when the utterance ended
        self._complete = False
        self._ended = asyncio.Event()
        self.text = ""
        """The caption as written so far."""

    def finish(self) -> None:
        """The utterance played out entirely: write the rest and close."""
        self._complete = self._limit is None
        self.stop_at(self._audio.samples)

    def stop_at(self, heard_samples: int) -> None:
        """The utterance ended (cancelled) after heard_samples: the caption ends there."""
        if self._limit is None:
            self._limit = heard_samples
            self._ended.set()

    async def run(self) -> None:
        try:
            while True:
                limit = self._limit
                position = self._heard() if limit is None else limit
                await self._write_up_to(position)
                if limit is not None:
                    return
                await self._wait_for_change(position)
        finally:
            await self._writer.close()

    async def _write_up_to(self, samples: int) -> None:
        # Played out: all of it, with what follows the last timed word (its punctuation).
        heard = self._audio.text.strip() if self._complete else self._audio.text_heard(samples)
        if len(heard) > len(self.text) and heard.startswith(self.text):
            delta, self.text = heard[len(self.text) :], heard
            await self._writer.write(delta)

    async def _wait_for_change(self, position: int) -> None:
        """Until the next word starts playing (or the utterance ends)."""
        wait = POLL_SECONDS
        upcoming = self._audio.next_word_start(position)
        if upcoming is not None:
            # Heard advances in real time while playing; looking again a frame later at
            # most keeps a pause (which stops it) from being slept through.
            wait = max(min((upcoming - position) / self._audio.sample_rate, POLL_SECONDS), 0.005)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._ended.wait(), wait)
