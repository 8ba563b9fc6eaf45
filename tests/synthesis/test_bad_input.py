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
        ({"text": "hi", "format": "mp3"}, "format"),
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
        "/v1/audio/speech", json={"model": "tts-1", "input": "hello", "voice": "alloy"}
    )
    assert speech.status_code == 404
    assert "alloy" in error_of(speech)["message"]


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


async def test_openai_unsupported_options_are_422(api: httpx.AsyncClient) -> None:
    base = {"model": "tts-1", "input": "hello", "voice": "en_US-joe-medium"}
    for extra, param in [
        ({"response_format": "mp3"}, "response_format"),
        ({"speed": 1.5}, "speed"),
    ]:
        response = await api.post("/v1/audio/speech", json={**base, **extra})
        assert response.status_code == 422
        assert error_of(response)["param"] == param


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
