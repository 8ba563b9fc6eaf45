"""Deadline-aware scheduling of engine calls: the stream whose playback runs dry first is
synthesized next (earliest deadline first).

Each stream has a `Playback`: the audio sent to its client and where its listener is. The
listener's position is the client's last `PlayoutPosition` report advanced in real time (or,
without reports, real time since the first frame), never past the audio sent and frozen while
paused. A stream's deadline is the moment its playback runs dry: the time of that position
plus the audio still ahead of it. A stream that has sent nothing yet is due
`first_audio_target_seconds` after it asked for its first chunk, so a new utterance goes
ahead of every stream with more than that left to play.

- `run()` waits for the stream's turn, then makes one engine call in the executor; at most
  `parallelism` calls run at once.
- A stream with a lead bound (`max_lead_seconds`) is not served while more than that much
  audio is ahead of its listener: its text waits until the listener gets near it, so an
  utterance cancelled half-way was never synthesized past that point.
- `chunk_budget()`: while more streams compete than calls can run at once, a chunk holds at most
  max(`min_chunk_seconds`, `chunk_growth` x the stream's lead) of audio, so no one call holds
  the engine while others run dry, and chunks grow back to whole clauses as the lead grows.
- `refusal()`: admission. Over horizons from 4 s to half a minute, the audio every stream
  needs before its playback runs dry, plus a new stream's, must fit in the worker's measured
  capacity (audio seconds per second of engine time, over its recent calls) times
  `max_utilization`; otherwise the new stream is refused (and placed on another worker). A
  stream needs no more than the audio its text still holds: known once its text is complete,
  otherwise taken as at least as long as the worker's recent utterances. Horizons start at
  4 s: a burst of short utterances delays first audio by a second or so, which is no reason
  to turn any of them away; more streams than the worker can keep playing is.
"""

from __future__ import annotations

import asyncio
import itertools
import math
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import Executor
from concurrent.futures import Future as ThreadFuture
from dataclasses import dataclass, field
from typing import Protocol, TypeVar

T = TypeVar("T")

Clock = Callable[[], float]
HORIZONS = (4.0, 8.0, 16.0, 32.0)
"""Seconds ahead over which admission checks that every deadline can be met."""
DEFAULT_SECONDS_PER_CHAR = 0.065
"""Spoken seconds per character before a voice has been measured (English at about 15
characters a second)."""


class Timer(Protocol):
    def cancel(self) -> None: ...


CallLater = Callable[[float, Callable[[], None]], Timer]


@dataclass(frozen=True)
class SchedulerOptions:
    """How the worker orders and sizes engine calls, and when it refuses a stream."""

    parallelism: int = 1
    """Engine calls running at once (the executor's size)."""
    first_audio_target_seconds: float = 0.25
    """A new stream's first chunk is due this long after it was asked for."""
    min_chunk_seconds: float = 1.0
    """Under contention a chunk holds at most max(this, chunk_growth x lead) of audio."""
    chunk_growth: float = 2.0
    """How fast chunks grow back with the stream's lead (see min_chunk_seconds)."""
    max_utilization: float = 0.9
    """Share of the measured capacity admission lets the deadlines take."""
    capacity_window: int = 64
    """Recent engine calls the capacity is measured over."""

    def __post_init__(self) -> None:
        if self.parallelism < 1:
            raise ValueError("parallelism must be at least 1")
        if self.first_audio_target_seconds < 0:
            raise ValueError("first_audio_target_seconds must not be negative")
        if self.min_chunk_seconds <= 0 or self.chunk_growth <= 0:
            raise ValueError("min_chunk_seconds and chunk_growth must be positive")
        if not 0 < self.max_utilization <= 1:
            raise ValueError("max_utilization must be within (0, 1]")
        if self.capacity_window < 1:
            raise ValueError("capacity_window must be at least 1")


class Playback:
    """One stream as the scheduler sees it: audio sent, and where its listener is."""

    def __init__(self, scheduler: Scheduler, max_lead_seconds: float, opened_at: float) -> None:
        self._scheduler = scheduler
        self.max_lead = max_lead_seconds if max_lead_seconds > 0 else None
        self.sent_seconds = 0.0
        self.started = False
        self.paused = False
        self.asked_at = opened_at  # when its first chunk was asked for
        self._position = 0.0  # the listener's position at _since
        self._since = opened_at
        self.unsynthesized_chars = 0
        """Characters of text received and not synthesized yet."""
        self.input_ended = False
        """All of the stream's text has arrived."""
        self.seconds_per_char = DEFAULT_SECONDS_PER_CHAR

    # -- what the stream does -----------------------------------------------------------

    def sent(self, seconds: float) -> None:
        """Audio went out; the first frame starts the listener's clock. (The stream has no
        call waiting while it sends, so nothing else needs to be reconsidered.)"""
        now = self._scheduler.now()
        if not self.started:
            self.started = True
            self._since = now
        else:
            self._position, self._since = self.position(now), now
        self.sent_seconds += seconds

    def report(self, played_seconds: float) -> None:
        """The client's own playout position."""
        self._position = min(max(played_seconds, 0.0), self.sent_seconds)
        self._since = self._scheduler.now()
        self._scheduler.changed()

    def pause(self) -> None:
        now = self._scheduler.now()
        self._position, self._since = self.position(now), now
        self.paused = True
        self._scheduler.changed()

    def resume(self) -> None:
        self._since = self._scheduler.now()
        self.paused = False
        self._scheduler.changed()

    # -- what the scheduler reads -------------------------------------------------------

    def position(self, now: float) -> float:
        """Seconds of audio the listener has played by now."""
        if not self.started or self.paused:
            return self._position
        return min(self.sent_seconds, self._position + (now - self._since))

    def lead(self, now: float) -> float:
        """Seconds of audio sent and not played yet."""
        return self.sent_seconds - self.position(now)

    def deadline(self) -> float:
        """When the listener's playback runs (or ran) dry; infinite while paused (a paused
        stream is served only when no other stream needs the engine)."""
        if self.paused:
            return math.inf
        if not self.started:
            return self.asked_at + self._scheduler.options.first_audio_target_seconds
        return self._since + (self.sent_seconds - self._position)

    def eligible_at(self) -> float:
        """When the lead bound lets the stream have its next chunk."""
        if self.max_lead is None or not self.started:
            return -math.inf
        if self.paused:  # the listener does not move: within the bound now, or not at all
            return -math.inf if self.sent_seconds - self._position <= self.max_lead else math.inf
        return self.deadline() - self.max_lead

    def remaining_seconds(self, typical: float | None) -> float:
        """Audio still to synthesize: what its text holds once complete; until then at least
        a typical utterance (unknown: as long as any horizon)."""
        known = self.unsynthesized_chars * self.seconds_per_char
        if self.input_ended:
            return known
        return max(known, math.inf if typical is None else typical - self.sent_seconds)

    def demand(self, now: float, horizon: float, typical: float | None) -> float:
        """Audio seconds the stream needs within horizon to keep playing."""
        ahead = self.lead(now) if self.started else 0.0
        return max(0.0, min(horizon - ahead, self.remaining_seconds(typical)))


@dataclass(eq=False)
class _Job:
    playback: Playback
    order: int
    go: asyncio.Future[None]


@dataclass
class _Capacity:
    """Audio seconds per second of engine time over the recent calls."""

    window: int
    calls: deque[tuple[float, float]] = field(default_factory=deque)
    audio: float = 0.0
    compute: float = 0.0

    def add(self, audio_seconds: float, compute_seconds: float) -> None:
        self.calls.append((audio_seconds, compute_seconds))
        self.audio += audio_seconds
        self.compute += compute_seconds
        while len(self.calls) > self.window:
            old_audio, old_compute = self.calls.popleft()
            self.audio -= old_audio
            self.compute -= old_compute

    def ratio(self) -> float | None:
        if len(self.calls) < 3 or self.compute <= 0 or self.audio <= 0:
            return None
        return self.audio / self.compute


class Scheduler:
    """Earliest-deadline-first dispatch of engine calls over one executor."""

    def __init__(
        self,
        executor: Executor,
        options: SchedulerOptions,
        *,
        clock: Clock = time.monotonic,
        call_later: CallLater | None = None,
        on_slack: Callable[[float], None] | None = None,
    ) -> None:
        """clock and call_later are the scheduler's time (a fake clock in tests);
        on_slack gets, for each chunk of a playing stream, its deadline minus the moment
        its audio was ready (negative: the listener's playback had run dry)."""
        self.options = options
        self._executor = executor
        self._clock = clock
        self._call_later = call_later
        self._on_slack = on_slack
        self._streams: list[Playback] = []
        self._waiting: list[_Job] = []
        self._running = 0
        self._order = itertools.count()
        self._timer: Timer | None = None
        self._timer_due = math.inf
        self._capacity = _Capacity(options.capacity_window)
        self._seconds_per_char: dict[str, float] = {}
        self.typical_seconds: float | None = None
        """Audio seconds of the recent complete utterances (a moving average)."""

    def now(self) -> float:
        return self._clock()

    @property
    def streams(self) -> int:
        return len(self._streams)

    @property
    def waiting(self) -> int:
        """Engine calls waiting for their turn."""
        return len(self._waiting)

    @property
    def capacity(self) -> float | None:
        """Measured audio seconds the worker synthesizes per second, all calls together;
        None until it has made a few calls."""
        ratio = self._capacity.ratio()
        return None if ratio is None else ratio * self.options.parallelism

    # -- streams ------------------------------------------------------------------------

    def open(self, max_lead_seconds: float = 0.0, voice: str = "") -> Playback:
        playback = Playback(self, max_lead_seconds, self._clock())
        playback.seconds_per_char = self.seconds_per_char(voice)
        self._streams.append(playback)
        return playback

    def close(self, playback: Playback) -> None:
        if playback in self._streams:
            self._streams.remove(playback)
            if playback.input_ended and playback.unsynthesized_chars == 0:
                seconds, old = playback.sent_seconds, self.typical_seconds
                self.typical_seconds = seconds if old is None else 0.9 * old + 0.1 * seconds
        self.changed()

    def refusal(self) -> str | None:
        """Why one more stream would make some stream miss its deadlines; None if it fits."""
        capacity = self.capacity
        if capacity is None:
            return None
        now = self._clock()
        usable = capacity * self.options.max_utilization
        typical = self.typical_seconds
        for horizon in HORIZONS:
            new = min(horizon, math.inf if typical is None else typical)
            needed = new + sum(p.demand(now, horizon, typical) for p in self._streams)
            if needed > usable * horizon:
                return (
                    f"{len(self._streams)} streams need {needed / horizon:.1f}x real time "
                    f"over the next {horizon:g}s; the worker makes {capacity:.1f}x"
                )
        return None

    def chunk_budget(self, playback: Playback) -> float | None:
        """Most audio seconds the stream's next chunk should hold; None: no limit (no more
        streams compete for the engine than calls can run at once)."""
        playing = sum(1 for p in self._streams if not p.paused)
        if playing <= self.options.parallelism:
            return None
        if not playback.started:
            return self.options.min_chunk_seconds
        lead = max(0.0, playback.lead(self._clock()))
        return max(self.options.min_chunk_seconds, self.options.chunk_growth * lead)

    def seconds_per_char(self, voice: str) -> float:
        """Measured spoken seconds per character of the voice, at speed 1."""
        return self._seconds_per_char.get(voice, DEFAULT_SECONDS_PER_CHAR)

    def note_segment(self, voice: str, chars: int, seconds_at_speed_one: float) -> None:
        """A segment of chars characters made this much audio: refine the estimate."""
        if chars < 10 or seconds_at_speed_one <= 0:
            return  # too short to say much (a pause, a number read out)
        sample = seconds_at_speed_one / chars
        old = self._seconds_per_char.get(voice)
        self._seconds_per_char[voice] = sample if old is None else 0.8 * old + 0.2 * sample

    # -- engine calls -------------------------------------------------------------------

    async def run(self, playback: Playback, call: Callable[[], T]) -> tuple[T, float]:
        """Wait for the stream's turn, then run call in the executor; return its result and
        the seconds it took. A caller cancelled while waiting leaves the line; one cancelled
        while its call runs gives up the result, and the slot is freed when the call ends."""
        loop = asyncio.get_running_loop()
        if not playback.started:
            playback.asked_at = self._clock()
        job = _Job(playback, next(self._order), loop.create_future())
        self._waiting.append(job)
        self.changed()
        try:
            await job.go
        except BaseException:
            if job in self._waiting:
                self._waiting.remove(job)
            elif job.go.done() and not job.go.cancelled():
                self._running -= 1  # given the turn, gone before using it
            self.changed()
            raise
        deadline = playback.deadline()
        clock = self._clock

        def timed() -> tuple[T, float]:
            started = clock()
            result = call()
            return result, clock() - started

        try:
            submitted: ThreadFuture[tuple[T, float]] = self._executor.submit(timed)
        except BaseException:
            self._running -= 1
            self.changed()
            raise
        submitted.add_done_callback(lambda _: _call_soon(loop, self._call_ended))
        result, seconds = await asyncio.wrap_future(submitted, loop=loop)
        if playback.started and self._on_slack is not None:
            self._on_slack(deadline - self._clock())
        return result, seconds

    def measured(self, audio_seconds: float, compute_seconds: float) -> None:
        """One engine call made this much audio in this much time."""
        self._capacity.add(audio_seconds, compute_seconds)

    def _call_ended(self) -> None:
        self._running -= 1
        self.changed()

    def changed(self) -> None:
        """Something that orders or frees the engine changed: hand out free turns."""
        now = self._clock()
        while self._running < self.options.parallelism:
            job = self._pick(now)
            if job is None:
                break
            self._waiting.remove(job)
            if job.go.cancelled():
                continue
            self._running += 1
            job.go.set_result(None)
        self._arm_timer(now)

    def _pick(self, now: float) -> _Job | None:
        ready = [j for j in self._waiting if j.playback.eligible_at() <= now]
        if not ready:
            return None
        return min(ready, key=lambda j: (j.playback.deadline(), j.order))

    def _arm_timer(self, now: float) -> None:
        """Wake up when the next held-back stream may go (its listener has caught up)."""
        due = math.inf
        if self._running < self.options.parallelism:
            later = (j.playback.eligible_at() for j in self._waiting)
            due = min((t for t in later if now < t), default=math.inf)
        if due == self._timer_due:
            return
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._timer_due = due
        if due < math.inf:
            call_later = self._call_later or asyncio.get_running_loop().call_later
            self._timer = call_later(due - now, self._fire)

    def _fire(self) -> None:
        self._timer, self._timer_due = None, math.inf
        self.changed()


def _call_soon(loop: asyncio.AbstractEventLoop, callback: Callable[[], None]) -> None:
    # From the executor's thread; a call that outlives the loop (a worker shutting down
    # mid-call) has nobody left to tell.
    if not loop.is_closed():
        loop.call_soon_threadsafe(callback)
