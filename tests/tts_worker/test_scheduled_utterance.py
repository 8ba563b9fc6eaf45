"""An utterance synthesizes only its lead ahead of the listener: text past it waits, and
once the utterance is cancelled it is never synthesized at all. The clock is fake (the
listener moves only when the test says) and the engine a fake that records its texts."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor

import pytest

from fleet.aio import poll_until
from tests.fakes.scheduling import FakeClock, FakeEngine
from tts_rpc.v1 import tts_pb2
from tts_worker.scheduler import Scheduler, SchedulerOptions
from tts_worker.utterance import Limits, Utterance

# 16 kHz, 1000 samples per character: every character is 62.5 ms of audio.
SECONDS_PER_CHAR = 1000 / 16000
TEXT = "One two three four. Five six seven eight. Nine ten eleven twelve. Thirteen fourteen."
FIRST = "One two three four."


@pytest.fixture
async def executor() -> AsyncIterator[ThreadPoolExecutor]:
    pool = ThreadPoolExecutor(1, thread_name_prefix="test-inference")
    yield pool
    pool.shutdown(wait=True)


def utterance(engine: FakeEngine, scheduler: Scheduler, max_lead_seconds: float) -> Utterance:
    config = tts_pb2.SynthesisConfig(utterance_id="lead", max_lead_seconds=max_lead_seconds)
    limits = Limits(30, 250, 4000, 20000, first_segment_words=3)
    return Utterance(config, engine.voice("fake-voice"), engine, scheduler, limits)


def request(**fields: object) -> tts_pb2.SynthesizeRequest:
    return tts_pb2.SynthesizeRequest(**fields)  # type: ignore[arg-type]


async def collect(utt: Utterance, into: list[tts_pb2.SynthesizeResponse]) -> None:
    async for response in utt.responses():
        into.append(response)


async def test_text_past_the_lead_waits_for_the_listener_and_a_cancel_drops_it(
    executor: ThreadPoolExecutor,
) -> None:
    clock = FakeClock()
    scheduler = Scheduler(executor, SchedulerOptions(), clock=clock, call_later=clock.call_later)
    engine = FakeEngine()
    utt = utterance(engine, scheduler, max_lead_seconds=1.0)
    utt.accept(request(text=tts_pb2.TextChunk(text=TEXT)))
    utt.accept(request(end_of_input=tts_pb2.EndOfInput()))
    out: list[tts_pb2.SynthesizeResponse] = []
    reading = asyncio.create_task(collect(utt, out))

    # The first segment (1.19 s of audio) is sent; the next waits for the listener.
    assert await poll_until(lambda: scheduler.waiting == 1, timeout_seconds=5)
    assert engine.texts == [FIRST]
    sent = sum(r.frame.duration_seconds for r in out)
    assert sent == pytest.approx(len(FIRST) * SECONDS_PER_CHAR, abs=0.02)
    clock.advance(sent - 1.0 - 0.001)  # not yet within 1 s of the end of the audio
    await asyncio.sleep(0)
    assert scheduler.waiting == 1 and engine.texts == [FIRST]

    utt.accept(request(control=tts_pb2.Control(command=tts_pb2.CONTROL_COMMAND_CANCEL)))
    await asyncio.wait_for(reading, 5)
    stats = out[-1].stats
    assert stats.cancelled
    assert engine.texts == [FIRST]  # the rest of the text was never synthesized
    assert stats.text_synthesized_end == len(FIRST)
    assert stats.synthesized_seconds == pytest.approx(len(FIRST) * SECONDS_PER_CHAR)
    utt.close()
    assert scheduler.streams == 0


async def test_the_next_segment_goes_once_the_listener_is_within_the_lead(
    executor: ThreadPoolExecutor,
) -> None:
    clock = FakeClock()
    scheduler = Scheduler(executor, SchedulerOptions(), clock=clock, call_later=clock.call_later)
    engine = FakeEngine()
    utt = utterance(engine, scheduler, max_lead_seconds=1.0)
    utt.accept(request(text=tts_pb2.TextChunk(text=TEXT)))
    utt.accept(request(end_of_input=tts_pb2.EndOfInput()))
    out: list[tts_pb2.SynthesizeResponse] = []
    reading = asyncio.create_task(collect(utt, out))
    assert await poll_until(lambda: scheduler.waiting == 1, timeout_seconds=5)
    # The client reports its listener 0.2 s from the end of what was sent: within the lead.
    sent = sum(r.frame.duration_seconds for r in out)
    utt.accept(request(playout=tts_pb2.PlayoutPosition(played_seconds=sent - 0.2)))
    assert await poll_until(lambda: len(engine.texts) == 2, timeout_seconds=5)
    assert engine.texts == [FIRST, "Five six seven eight."]
    utt.cancel()
    await asyncio.wait_for(reading, 5)
    utt.close()


async def test_without_a_bound_the_whole_text_is_synthesized_at_once(
    executor: ThreadPoolExecutor,
) -> None:
    clock = FakeClock()
    scheduler = Scheduler(executor, SchedulerOptions(), clock=clock, call_later=clock.call_later)
    engine = FakeEngine()
    utt = utterance(engine, scheduler, max_lead_seconds=0.0)
    utt.accept(request(text=tts_pb2.TextChunk(text=TEXT)))
    utt.accept(request(end_of_input=tts_pb2.EndOfInput()))
    out: list[tts_pb2.SynthesizeResponse] = []
    await asyncio.wait_for(collect(utt, out), 5)
    assert "".join(engine.texts).replace(".", ". ").split() == TEXT.split()
    assert out[-1].stats.text_synthesized_end == len(TEXT)
    assert not out[-1].stats.cancelled
    utt.close()


async def test_a_bad_playout_position_is_refused() -> None:
    clock = FakeClock()
    with ThreadPoolExecutor(1) as pool:
        scheduler = Scheduler(pool, SchedulerOptions(), clock=clock, call_later=clock.call_later)
        utt = utterance(FakeEngine(), scheduler, max_lead_seconds=1.0)
        for bad in (-1.0, float("nan"), float("inf")):
            with pytest.raises(Exception, match="played_seconds"):
                utt.accept(request(playout=tts_pb2.PlayoutPosition(played_seconds=bad)))
        utt.close()
