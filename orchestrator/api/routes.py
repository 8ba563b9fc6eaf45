"""Routes of the public API."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request

from orchestrator.api.errors import ERROR_RESPONSES, APIError
from orchestrator.api.protocol import SpeechRequest, SynthesizeRequest, VoicesResponse
from orchestrator.api.serving import AudioStreamResponse, SynthesisService

OPENAI_PCM_RATE = 24000


def require_json(request: Request) -> None:
    """415 unless the body is declared as JSON."""
    mime = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if mime != "application/json" and not mime.endswith("+json"):
        raise APIError(
            415,
            "unsupported_media_type",
            f"body must be application/json, got {mime or 'no content type'}",
            param="content-type",
        )


def _synthesis(request: Request) -> SynthesisService:
    service: SynthesisService = request.app.state.synthesis
    return service


Synthesis = Annotated[SynthesisService, Depends(_synthesis)]


AUDIO_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {
        "description": "Streamed audio; X-Sample-Rate and X-Audio-Format name the format.",
        "content": {"audio/wav": {}, "audio/pcm": {}},
    },
    **ERROR_RESPONSES,
}

router = APIRouter()


@router.post(
    "/synthesize",
    response_class=AudioStreamResponse,
    status_code=200,  # AudioStreamResponse takes no status_code for FastAPI to infer
    responses=AUDIO_RESPONSES,
    dependencies=[Depends(require_json)],
    summary="Stream speech for a text",
)
async def synthesize(body: SynthesizeRequest, service: Synthesis) -> AudioStreamResponse:
    return await service.stream(
        text=body.text,
        voice=body.voice,
        sample_rate=body.sample_rate,
        fmt=body.format,
        text_param="text",
        voice_param="voice",
    )


@router.post(
    "/v1/audio/speech",
    response_class=AudioStreamResponse,
    status_code=200,  # AudioStreamResponse takes no status_code for FastAPI to infer
    responses=AUDIO_RESPONSES,
    dependencies=[Depends(require_json)],
    summary="OpenAI-compatible speech endpoint",
)
async def openai_speech(body: SpeechRequest, service: Synthesis) -> AudioStreamResponse:
    return await service.stream(
        text=body.input,
        voice=body.voice,
        sample_rate=OPENAI_PCM_RATE,
        fmt=body.response_format,
        text_param="input",
        voice_param="voice",
    )


@router.get("/v1/voices", response_model=VoicesResponse, summary="Voices the fleet can speak")
async def list_voices(service: Synthesis) -> VoicesResponse:
    return service.voices()
