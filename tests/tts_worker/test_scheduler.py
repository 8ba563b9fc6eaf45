"""The scheduler serves the stream whose playback runs dry first, holds a stream at its lead
bound until its listener catches up, and admits a stream only when every deadline still
fits the measured capacity. Time is a fake clock and every engine call ends when the test
says: the transitions asserted here are exact."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import pytest

from tests.fakes.scheduling import FakeClock, ManualExecutor
from tts_worker.scheduler import HORIZONS, Playback, Scheduler, SchedulerOptions


class Bench:
    """A scheduler on a fake clock, with a log of the calls it ran."""

    def __init__(self, **options: float) -> None:
        self.clock = FakeClock()
        self.executor = ManualExecutor()
        self.slack: list[float] = []
        self.ran: list[str] = []
        self.scheduler = Scheduler(
            self.executor,
            SchedulerOptions(**options),  # type: ignore[arg-type]
            clock=self.clock,
            call_later=self.clock.call_later,
            on_slack=self.slack.append,
        )
        self.tasks: list[asyncio.Task[tuple[None, float]]] = []

    def call(self, playback: Playback, name: str) -> asyncio.Task[tuple[None, float]]:
        task = asyncio.create_task(self.scheduler.run(playback, self._logger(name)))
        self.tasks.append(task)
        return task

    def _logger(self, name: str) -> Callable[[], None]:
        return lambda: self.ran.append(name)

    async def finish(self) -> None:
        """End the engine call now running, and let the scheduler hand out the next turn."""
        await settle()
        self.executor.finish()
        await settle()

    async def aclose(self) -> None:
        for task in self.tasks:
            task.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)


async def settle() -> None:
    """Let every callback already due run (no time passes on the fake clock)."""
    for _ in range(10):
        await asyncio.sleep(0)


def playing(bench: Bench, seconds_left: float, max_lead_seconds: float = 0.0) -> Playback:
    """A stream that has sent its first audio: its listener has seconds_left to play."""
    playback = bench.scheduler.open(max_lead_seconds)
    playback.sent(seconds_left)
    return playback


async def test_the_stream_that_runs_dry_first_is_served_first() -> None:
    bench = Bench()
    busy = bench.scheduler.open()
    a, b, c = playing(bench, 3.0), playing(bench, 1.0), playing(bench, 2.0)
    bench.call(busy, "busy")  # holds the engine while the others line up
    await settle()
    bench.call(a, "a")
    bench.call(b, "b")
    bench.call(c, "c")
    for _ in range(4):
        await bench.finish()
    assert bench.ran == ["busy", "b", "c", "a"]
    await bench.aclose()


async def test_a_new_stream_goes_ahead_of_streams_with_more_than_the_first_audio_target_left() -> (
    None
):
    bench = Bench(first_audio_target_seconds=0.25)
    busy = bench.scheduler.open()
    far, near, new = playing(bench, 2.0), playing(bench, 0.1), bench.scheduler.open()
    bench.call(busy, "busy")
    await settle()
    bench.call(far, "far")
    bench.call(new, "new")
    bench.call(near, "near")
    for _ in range(4):
        await bench.finish()
    assert bench.ran == ["busy", "near", "new", "far"]
    await bench.aclose()


async def test_equal_deadlines_are_served_in_arrival_order() -> None:
    bench = Bench()
    busy = bench.scheduler.open()
    first, second = bench.scheduler.open(), bench.scheduler.open()
    bench.call(busy, "busy")
    await settle()
    bench.clock.advance(0.1)  # both new streams ask at the same instant
    bench.call(second, "second")
    bench.call(first, "first")
    for _ in range(3):
        await bench.finish()
    assert bench.ran == ["busy", "second", "first"]
    await bench.aclose()


async def test_a_stream_at_its_lead_bound_waits_until_its_listener_catches_up() -> None:
    bench = Bench()
    stream = playing(bench, 3.0, max_lead_seconds=1.0)
    started = bench.clock.now
    bench.call(stream, "next")
    await settle()
    assert not bench.executor.pending  # 3 s ahead of the listener: held back
    assert bench.clock.next_due == pytest.approx(started + 2.0)
    bench.clock.advance(1.999)
    await settle()
    assert not bench.executor.pending
    bench.clock.advance(0.001)  # the listener is now exactly 1 s behind the audio sent
    await settle()
    assert len(bench.executor.pending) == 1
    await bench.finish()
    assert bench.ran == ["next"]
    await bench.aclose()


async def test_a_playout_report_moves_the_listener() -> None:
    bench = Bench()
    stream = playing(bench, 3.0, max_lead_seconds=1.0)
    bench.call(stream, "next")
    bench.clock.advance(0.5)
    await settle()
    assert not bench.executor.pending
    stream.report(2.5)  # the client says its listener is further on than real time says
    await settle()
    assert len(bench.executor.pending) == 1
    assert stream.lead(bench.clock.now) == pytest.approx(0.5)
    await bench.finish()
    await bench.aclose()


async def test_pause_freezes_the_listener_until_resume() -> None:
    bench = Bench()
    stream = playing(bench, 3.0, max_lead_seconds=1.0)
    bench.clock.advance(1.5)
    stream.pause()
    bench.call(stream, "next")
    bench.clock.advance(60.0)
    await settle()
    assert not bench.executor.pending  # still 1.5 s ahead of a listener who does not move
    assert stream.position(bench.clock.now) == pytest.approx(1.5)
    stream.resume()
    bench.clock.advance(0.499)
    await settle()
    assert not bench.executor.pending
    bench.clock.advance(0.001)
    await settle()
    assert len(bench.executor.pending) == 1
    await bench.finish()
    await bench.aclose()


async def test_a_paused_stream_goes_after_every_playing_one_but_is_not_starved() -> None:
    bench = Bench()
    busy = bench.scheduler.open()
    paused, far = playing(bench, 0.5), playing(bench, 20.0)
    paused.pause()
    bench.call(busy, "busy")
    await settle()
    bench.call(paused, "paused")
    bench.call(far, "far")
    for _ in range(3):
        await bench.finish()
    assert bench.ran == ["busy", "far", "paused"]
    await bench.aclose()


async def test_slack_is_the_deadline_minus_when_the_audio_was_ready() -> None:
    bench = Bench()
    stream = playing(bench, 1.0)
    bench.clock.advance(1.5)  # the listener ran dry half a second ago
    assert stream.lead(bench.clock.now) == 0.0
    bench.call(stream, "late")
    await settle()
    bench.clock.advance(0.2)
    await bench.finish()
    assert bench.slack == [pytest.approx(-0.7)]
    stream.sent(2.0)  # playback restarts from where it stopped
    assert stream.position(bench.clock.now) == pytest.approx(1.0)
    assert stream.deadline() == pytest.approx(bench.clock.now + 2.0)
    await bench.aclose()


async def test_a_caller_cancelled_in_line_leaves_it() -> None:
    bench = Bench()
    busy, gone, next_one = bench.scheduler.open(), playing(bench, 0.1), playing(bench, 5.0)
    bench.call(busy, "busy")
    await settle()
    waiting = bench.call(gone, "gone")
    bench.call(next_one, "next")
    await settle()
    assert bench.scheduler.waiting == 2
    waiting.cancel()
    await settle()
    assert bench.scheduler.waiting == 1
    for _ in range(2):
        await bench.finish()
    assert bench.ran == ["busy", "next"]
    await bench.aclose()


async def test_a_call_abandoned_while_running_frees_the_engine_only_when_it_ends() -> None:
    bench = Bench()
    first, second = playing(bench, 0.1), playing(bench, 0.2)
    running = bench.call(first, "first")
    await settle()
    bench.call(second, "second")
    running.cancel()
    await settle()
    assert len(bench.executor.pending) == 1  # the thread still computes the first call
    await bench.finish()
    assert len(bench.executor.pending) == 1  # now the second one
    await bench.finish()
    assert bench.ran == ["first", "second"]
    await bench.aclose()


async def test_admission_refuses_when_the_deadlines_exceed_the_measured_capacity() -> None:
    bench = Bench(max_utilization=0.9)
    scheduler = bench.scheduler
    assert scheduler.refusal() is None  # nothing measured yet: no grounds to refuse
    for _ in range(3):
        scheduler.measured(audio_seconds=10.0, compute_seconds=1.0)
    assert scheduler.capacity == pytest.approx(10.0)
    # Streams whose length is unknown (text still coming, no history) need real time over
    # every horizon: 9 fit in 0.9 x 10, so eight open and a ninth may come.
    streams = [scheduler.open() for _ in range(8)]
    assert scheduler.refusal() is None
    streams.append(scheduler.open())
    refusal = scheduler.refusal()
    assert refusal is not None and "9 streams" in refusal
    # One whose text is complete and synthesized needs nothing more: room again.
    streams[0].input_ended = True
    assert scheduler.refusal() is None


async def test_admission_counts_short_utterances_by_what_their_text_holds() -> None:
    """A burst of short utterances is no overload: with their text complete, twenty streams
    of 0.5 s each need 10 s of audio, which fits the shortest horizon of a 10x worker at 0.9."""
    bench = Bench(max_utilization=0.9)
    scheduler = bench.scheduler
    for _ in range(3):
        scheduler.measured(audio_seconds=10.0, compute_seconds=1.0)
    for _ in range(20):
        short = scheduler.open()
        short.unsynthesized_chars = 10
        short.seconds_per_char = 0.05
        short.input_ended = True
    shortest = HORIZONS[0]
    new = shortest  # a new stream of unknown length counts as long as the horizon
    assert 20 * 0.5 + new <= 0.9 * 10 * shortest
    assert scheduler.refusal() is None
    for _ in range(60):  # more than the shortest horizon can make
        short = scheduler.open()
        short.unsynthesized_chars = 10
        short.seconds_per_char = 0.05
        short.input_ended = True
    assert 80 * 0.5 + new > 0.9 * 10 * shortest
    assert scheduler.refusal() is not None


async def test_a_stream_still_receiving_text_counts_as_long_as_recent_utterances() -> None:
    bench = Bench(max_utilization=0.9)
    scheduler = bench.scheduler
    for _ in range(3):
        scheduler.measured(audio_seconds=10.0, compute_seconds=1.0)
    done = scheduler.open()
    done.input_ended = True
    done.sent(3.0)
    scheduler.close(done)
    assert scheduler.typical_seconds == pytest.approx(3.0)
    open_ended = [scheduler.open() for _ in range(11)]  # no text complete yet
    assert open_ended[0].remaining_seconds(scheduler.typical_seconds) == pytest.approx(3.0)
    # 11 x 3 s + 3 s within the shortest horizon: 36 = 0.9 x 10 x 4, still fits.
    assert scheduler.refusal() is None
    scheduler.open()
    assert scheduler.refusal() is not None  # 39 > 36


async def test_capacity_is_measured_over_the_recent_calls_and_all_parallel_calls() -> None:
    bench = Bench(capacity_window=3, parallelism=2)
    scheduler = bench.scheduler
    for _ in range(3):
        scheduler.measured(audio_seconds=5.0, compute_seconds=1.0)
    assert scheduler.capacity == pytest.approx(10.0)  # two calls at once, 5x each
    for _ in range(3):
        scheduler.measured(audio_seconds=2.0, compute_seconds=1.0)
    assert scheduler.capacity == pytest.approx(4.0)  # the older calls left the window


async def test_chunks_are_cut_only_under_contention_and_grow_with_the_lead() -> None:
    bench = Bench(min_chunk_seconds=1.0, chunk_growth=2.0)
    scheduler = bench.scheduler
    alone = playing(bench, 0.2)
    assert scheduler.chunk_budget(alone) is None  # nobody to wait for it
    other = playing(bench, 4.0)
    assert scheduler.chunk_budget(alone) == pytest.approx(1.0)  # the floor
    assert scheduler.chunk_budget(other) == pytest.approx(8.0)  # twice its lead
    new = scheduler.open()
    assert scheduler.chunk_budget(new) == pytest.approx(1.0)
    other.pause()
    new.pause()
    assert scheduler.chunk_budget(alone) is None  # paused streams do not compete
