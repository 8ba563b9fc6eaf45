"""OpenAI's own Python SDK, unchanged, against the orchestrator's /v1: every response format
with OpenAI's voice names, speed, instructions and errors work as they do against OpenAI,
and the audio, decoded by another library than the encoder's, says the words."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import openai
import pytest

from tests.audio_checks import Pcm, transcribe, word_error_rate
from tests.synthesis.decoders import CONTENT_TYPES, decode

SENTENCE = "The quick brown fox jumps over the lazy dog near the river bank."
OPENAI_FORMATS = ["mp3", "opus", "aac", "flac", "wav", "pcm"]


@pytest.fixture
async def client(api: httpx.AsyncClient) -> AsyncIterator[openai.AsyncOpenAI]:
    async with openai.AsyncOpenAI(
        base_url=f"{api.base_url}/v1", api_key="unused-on-an-open-server", max_retries=0
    ) as sdk:
        yield sdk


async def speech(client: openai.AsyncOpenAI, **fields: Any) -> tuple[bytes, httpx.Headers]:
    """Stream a speech response the way OpenAI's docs show, and keep every byte."""
    request: dict[str, Any] = {"model": "tts-1", "voice": "alloy", "input": SENTENCE, **fields}
    async with client.audio.speech.with_streaming_response.create(**request) as response:
        body = b"".join([chunk async for chunk in response.iter_bytes()])
        return body, response.headers


def heard(fmt: str, body: bytes) -> tuple[Pcm, str]:
    audio = decode(fmt, body, pcm_rate=24000)
    return audio, transcribe(audio)


@pytest.mark.parametrize("fmt", OPENAI_FORMATS)
async def test_every_format_streams_speech_that_says_the_words(
    client: openai.AsyncOpenAI, fmt: str
) -> None:
    """voice="alloy" speaks (through the default alias), in the format asked, with OpenAI's
    Content-Type; another library decodes it and Whisper hears the sentence."""
    body, headers = await speech(client, response_format=fmt)
    assert headers["content-type"] == CONTENT_TYPES[fmt]
    audio, words = heard(fmt, body)
    assert 1.5 < audio.seconds < 8.0
    assert word_error_rate(SENTENCE, words) <= 0.2, words


async def test_the_default_format_is_mp3_as_on_openai(client: openai.AsyncOpenAI) -> None:
    """A client that saves `speech.mp3` without naming a format gets an MP3 file."""
    body, headers = await speech(client)
    assert headers["content-type"] == "audio/mpeg"
    # An MPEG audio frame starts with 11 set sync bits; no ID3 tag, no RIFF header.
    assert body[0] == 0xFF and body[1] & 0xE0 == 0xE0
    _, words = heard("mp3", body)
    assert word_error_rate(SENTENCE, words) <= 0.2, words


async def test_speed_makes_the_audio_shorter(client: openai.AsyncOpenAI) -> None:
    """speed=1.5 reaches Piper: the same sentence is clearly shorter, and still heard."""
    normal, _ = await speech(client, response_format="wav")
    fast, _ = await speech(client, response_format="wav", speed=1.5)
    normal_audio, fast_audio = decode("wav", normal), decode("wav", fast)
    # Piper draws durations with a little noise; 1.5x leaves about two thirds.
    assert fast_audio.seconds < 0.8 * normal_audio.seconds
    assert word_error_rate(SENTENCE, transcribe(fast_audio)) <= 0.2


async def test_instructions_are_accepted_and_said_to_be_ignored(
    client: openai.AsyncOpenAI,
) -> None:
    """gpt-4o-mini-tts's `instructions` do not fail the call; Piper cannot follow them, and
    the response header says so."""
    body, headers = await speech(
        client, model="gpt-4o-mini-tts", instructions="Speak in a cheerful tone."
    )
    assert headers["x-instructions"] == "ignored; engine=piper"
    _, words = heard("mp3", body)
    assert word_error_rate(SENTENCE, words) <= 0.2, words
    _, plain = await speech(client, response_format="pcm")
    assert "x-instructions" not in plain


async def test_errors_are_the_sdks_own_exceptions(client: openai.AsyncOpenAI) -> None:
    """Each failure raises the SDK's class for its status, with the field in `param`."""
    cases: list[tuple[dict[str, Any], type[openai.APIStatusError], str]] = [
        ({"voice": "en_XX-nobody"}, openai.NotFoundError, "voice"),
        ({"model": "no-such-model"}, openai.NotFoundError, "model"),
        ({"speed": 4.5}, openai.UnprocessableEntityError, "speed"),
        ({"speed": 0.1}, openai.UnprocessableEntityError, "speed"),
        ({"response_format": "ogg"}, openai.UnprocessableEntityError, "response_format"),
        ({"input": ""}, openai.UnprocessableEntityError, "input"),
    ]
    for fields, error, param in cases:
        with pytest.raises(error) as caught:
            await speech(client, **fields)
        body = caught.value.body
        assert isinstance(body, dict) and body["param"] == param, (fields, body)


async def test_models_list_through_the_sdk(client: openai.AsyncOpenAI) -> None:
    """client.models.list() parses our /v1/models: OpenAI's speech models and the engine."""
    ids = [model.id async for model in client.models.list()]
    assert {"tts-1", "tts-1-hd", "gpt-4o-mini-tts", "piper"} <= set(ids)
