"""Speech as server-sent events: OpenAI's `speech.audio.delta`/`speech.audio.done`, and word
times that are monotonic, cover the audio, agree with Whisper's own word timings, and
point into the text as the caller sent it (also when normalization rewrote it)."""

from __future__ import annotations

import base64
import json
from typing import Any

import httpx
import pytest

from tests.audio_checks import Pcm, parse_pcm, transcribe
from tests.synthesis.decoders import decode
from tests.tts_worker.word_times import Word, median_offset, whisper_words

TEXT = (
    "The quick brown fox jumps over the lazy dog near the river bank. "
    "Seven happy children were singing loudly in the garden."
)
RATE = 24000


def parse_events(body: str) -> list[dict[str, Any]]:
    """The JSON of every `data:` line, in order."""
    return [
        json.loads(line.removeprefix("data:").strip())
        for line in body.splitlines()
        if line.startswith("data:")
    ]


def audio_of(events: list[dict[str, Any]]) -> bytes:
    return b"".join(
        base64.b64decode(e["audio"]) for e in events if e["type"] == "speech.audio.delta"
    )


def words_of(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [t for e in events if e["type"] == "speech.audio.timestamps" for t in e["timestamps"]]


async def speech_events(api: httpx.AsyncClient, **fields: Any) -> list[dict[str, Any]]:
    body = {"voice": "alloy", "response_format": "pcm", "stream_format": "sse", **fields}
    response = await api.post("/v1/audio/speech", json=body)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/event-stream")
    return parse_events(response.text)


async def test_sse_word_times_cover_the_audio_and_agree_with_whisper(
    api: httpx.AsyncClient,
) -> None:
    """Every word of the text is timed once, in order, inside the audio; Whisper's word
    timestamps on the same audio differ by at most 120 ms (median over starts and ends)."""
    events = await speech_events(api, input=TEXT)
    assert events[0]["type"] == "speech.audio.delta"
    assert events[-1]["type"] == "speech.audio.done"
    pcm = parse_pcm(audio_of(events), RATE)
    assert events[-1]["audio_seconds"] == pytest.approx(pcm.seconds, abs=0.001)
    words = words_of(events)
    assert [w["text"] for w in words] == TEXT.split()
    assert all(TEXT[w["text_start"] : w["text_end"]] == w["text"] for w in words)
    assert {w["unit"] for w in words} == {"word"}
    for before, after in zip(words, words[1:], strict=False):
        assert before["start"] < before["end"] <= after["start"] < after["end"]
    assert 0 <= words[0]["start"] < 0.3
    assert pcm.seconds - 0.5 < words[-1]["end"] <= pcm.seconds + 0.001
    assert sum(w["end"] - w["start"] for w in words) > 0.7 * pcm.seconds
    ours = [Word(w["text"], w["start"], w["end"]) for w in words]
    median, matched = median_offset(ours, whisper_words(pcm))
    assert matched >= 0.8 * len(ours)
    assert median <= 0.12, median


async def test_spans_point_into_the_text_as_sent(api: httpx.AsyncClient) -> None:
    """The worker says "$49.95" as words, and the timing of those words covers "$49.95" in
    the caller's text, once, between its neighbours; markdown markers are not timed."""
    text = "It costs **$49.95** today."
    events = await speech_events(api, input=text)
    words = words_of(events)
    assert [w["text"] for w in words] == ["It", "costs", "$49.95", "today."]
    assert [text[w["text_start"] : w["text_end"]] for w in words] == [w["text"] for w in words]
    price = words[2]
    # Five spoken words ("forty-nine dollars and ninety-five cents") take a while.
    assert price["end"] - price["start"] > 3 * (words[0]["end"] - words[0]["start"])
    # Piper alone says "asterisk" and "dollar forty-nine point nine five" (see below).
    heard = transcribe(parse_pcm(audio_of(events), RATE)).lower()
    assert "asterisk" not in heard and "dollar" not in heard, heard


async def test_normalize_false_sends_the_text_as_it_is(api: httpx.AsyncClient) -> None:
    """normalize: false reaches the worker: Piper's own reading spells the markers out."""
    events = await speech_events(api, input="It costs **$49.95** today.", normalize=False)
    heard = transcribe(parse_pcm(audio_of(events), RATE)).lower()
    assert "asterisk" in heard, heard


async def test_synthesize_returns_the_same_events_on_request(api: httpx.AsyncClient) -> None:
    """POST /synthesize with timestamps: true answers with the same events, in any format."""
    response = await api.post(
        "/synthesize", json={"text": "Hello there, friend.", "format": "mp3", "timestamps": True}
    )
    assert response.status_code == 200
    events = parse_events(response.text)
    audio: Pcm = decode("mp3", audio_of(events))
    assert audio.seconds > 0.5
    assert [w["text"] for w in words_of(events)] == ["Hello", "there,", "friend."]
    assert events[-1]["type"] == "speech.audio.done"
