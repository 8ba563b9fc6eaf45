"""Bad requests get a specific 4xx naming the problem: never a 500, never a substitute voice."""

from __future__ import annotations

import httpx
import pytest

from orchestrator.cli import Orchestrator
from tests.conftest import orchestrator_settings


def error_of(response: httpx.Response) -> dict[str, str]:
    error: dict[str, str] = response.json()["error"]
    assert error["message"]
    return error


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"text": ""}, "text"),
        ({"text": "   \n "}, "text"),
        ({}, "text"),
        ({"text": 42}, "text"),
        ({"text": "hi", "sample_rate": 11025}, "sample_rate"),
        ({"text": "hi", "format": "ogg"}, "format"),
        ({"text": "hi", "speed": 0.2}, "speed"),
        ({"text": "hi", "speed": 4.01}, "speed"),
        ({"text": "hi", "speed": "fast"}, "speed"),
        ({"text": "hi", "normalize": "maybe"}, "normalize"),
        ({"text": "hi", "timestamps": "maybe"}, "timestamps"),
        ({"text": "hi", "voice": ""}, "voice"),
        ({"text": "hi", "unexpected": 1}, "unexpected"),
    ],
)
async def test_invalid_fields_are_422_naming_the_field(
    api: httpx.AsyncClient, body: dict[str, object], param: str
) -> None:
    response = await api.post("/synthesize", json=body)
    assert response.status_code == 422
    error = error_of(response)
    assert error["param"] == param
    assert param in error["message"]


async def test_unknown_voice_is_404_naming_the_voice(api: httpx.AsyncClient) -> None:
    response = await api.post("/synthesize", json={"text": "hello", "voice": "en_XX-nobody"})
    assert response.status_code == 404
    error = error_of(response)
    assert error["param"] == "voice"
    assert "en_XX-nobody" in error["message"]
    speech = await api.post(
        "/v1/audio/speech", json={"model": "tts-1", "input": "hello", "voice": "en_XX-nobody"}
    )
    assert speech.status_code == 404
    assert error_of(speech)["param"] == "voice"
    assert "en_XX-nobody" in error_of(speech)["message"]
    by_id = await api.post("/v1/audio/speech", json={"input": "hello", "voice": {"id": "nobody"}})
    assert by_id.status_code == 404
    assert "nobody" in error_of(by_id)["message"]


async def test_unknown_model_is_404_naming_the_model(api: httpx.AsyncClient) -> None:
    response = await api.post("/v1/audio/speech", json={"model": "whisper-9", "input": "hi"})
    assert response.status_code == 404
    error = error_of(response)
    assert error["param"] == "model"
    assert "whisper-9" in error["message"] and "tts-1" in error["message"]


async def test_text_over_the_limit_is_413(
    api: httpx.AsyncClient, orchestrator: Orchestrator
) -> None:
    limit = orchestrator.settings.max_text_chars
    response = await api.post("/synthesize", json={"text": "a" * (limit + 1)})
    assert response.status_code == 413
    assert error_of(response)["param"] == "text"


async def test_body_over_the_limit_is_413(
    api: httpx.AsyncClient, orchestrator: Orchestrator
) -> None:
    huge = b'{"text": "' + b"a" * orchestrator.settings.max_body_bytes + b'"}'
    response = await api.post(
        "/synthesize", content=huge, headers={"content-type": "application/json"}
    )
    assert response.status_code == 413


async def test_malformed_json_is_400(api: httpx.AsyncClient) -> None:
    response = await api.post(
        "/synthesize",
        content=b'{"text": "unterminated',
        headers={"content-type": "application/json"},
    )
    assert response.status_code == 400
    assert error_of(response)["code"] == "invalid_json"


@pytest.mark.parametrize("content_type", ["text/plain", "application/x-www-form-urlencoded", None])
async def test_wrong_content_type_is_415(api: httpx.AsyncClient, content_type: str | None) -> None:
    headers = {"content-type": content_type} if content_type else {}
    response = await api.post("/synthesize", content=b'{"text": "hi"}', headers=headers)
    assert response.status_code == 415
    assert error_of(response)["param"] == "content-type"


@pytest.mark.parametrize(
    ("extra", "param"),
    [
        ({"response_format": "ogg"}, "response_format"),
        ({"speed": 0.1}, "speed"),
        ({"speed": 5}, "speed"),
        ({"input": ""}, "input"),
        ({"input": " \n"}, "input"),
        ({"stream_format": "websocket"}, "stream_format"),
        ({"voice": ""}, "voice"),
        ({"instructions": "x" * 5000}, "instructions"),
    ],
)
async def test_openai_invalid_fields_are_422_naming_the_field(
    api: httpx.AsyncClient, extra: dict[str, object], param: str
) -> None:
    base = {"model": "tts-1", "input": "hello", "voice": "alloy"}
    response = await api.post("/v1/audio/speech", json={**base, **extra})
    assert response.status_code == 422
    assert error_of(response)["param"] == param


async def test_openai_route_ignores_fields_it_does_not_know(api: httpx.AsyncClient) -> None:
    """As OpenAI-compatible servers do: a newer client's extra fields do not fail the call
    (our own /synthesize stays strict, above)."""
    response = await api.post(
        "/v1/audio/speech",
        json={"model": "tts-1", "input": "Hello.", "voice": "alloy", "future_option": {"a": 1}},
    )
    assert response.status_code == 200
    assert response.headers["content-type"] == "audio/mpeg"


@pytest.mark.parametrize("path", ["/synthesize", "/v1/audio/speech"])
async def test_two_megabytes_of_markdown_are_413_not_5xx(api: httpx.AsyncClient, path: str) -> None:
    """A body far over the limit is refused before it is read whole."""
    block = "## Plan\n\n- **Pro**: $49.95 a month 🚀\n- See [docs](https://example.com)\n\n"
    text = (block * (2_000_000 // len(block) + 1))[:2_000_000]
    field = "text" if path == "/synthesize" else "input"
    response = await api.post(path, json={field: text})
    assert response.status_code == 413
    assert error_of(response)["code"] == "body_too_large"


@pytest.mark.parametrize("path", ["/synthesize", "/v1/audio/speech"])
async def test_markdown_over_the_text_limit_is_413_naming_the_text(
    api: httpx.AsyncClient, orchestrator: Orchestrator, path: str
) -> None:
    """Under the body limit but over the text limit: 413 naming the route's text field."""
    limit = orchestrator.settings.max_text_chars
    text = ("**bold** and `code` " * (limit // 10))[: limit + 1]
    field = "text" if path == "/synthesize" else "input"
    response = await api.post(path, json={field: text})
    assert response.status_code == 413
    assert error_of(response)["param"] == field


async def test_no_worker_is_503_with_a_reason() -> None:
    """An orchestrator whose only worker address answers nothing says so, and is not ready."""
    orch = Orchestrator(orchestrator_settings(workers=["127.0.0.1:9"]))
    await orch.start()
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{orch.settings.port}") as api:
            response = await api.post("/synthesize", json={"text": "hello"})
            assert response.status_code == 503
            assert "no TTS worker" in error_of(response)["message"]
            assert response.headers["retry-after"] == "1"
            voiced = await api.post("/synthesize", json={"text": "hello", "voice": "x"})
            assert voiced.status_code == 503
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{orch.settings.ops_port}") as ops:
            ready = await ops.get("/readyz")
            assert ready.status_code == 503
            assert ready.json()["reason"] == "no TTS worker is registered"
    finally:
        await orch.stop()
