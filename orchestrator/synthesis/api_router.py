"""Routes of the synthesis API: `/synthesize`, OpenAI's `/v1/audio/speech`, `/v1/voices`.

Routes only fetch the service, spell service errors as their own fields, and wrap the
started stream in a streaming response.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request

from orchestrator.errors import ServiceError, Subject
from orchestrator.http.errors import ERROR_RESPONSES, FieldNames, require_json, to_http
from orchestrator.synthesis.audio_response import AudioStreamResponse
from orchestrator.synthesis.protocol import (
    AudioFormat,
    SpeechRequest,
    SynthesizeRequest,
    VoicesResponse,
)
from orchestrator.synthesis.serving import SynthesisService

OPENAI_PCM_RATE = 24000
OPENAI_FIELDS: FieldNames = {Subject.TEXT: "input", Subject.FORMAT: "response_format"}


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


async def _respond(
    service: SynthesisService,
    fields: FieldNames,
    *,
    text: str,
    voice: str | None,
    sample_rate: int | None,
    fmt: AudioFormat,
) -> AudioStreamResponse:
    try:
        started = await service.start(text=text, voice=voice, sample_rate=sample_rate)
    except ServiceError as exc:
        raise to_http(exc, fields) from None
    return AudioStreamResponse(started, fmt, service.metrics, on_close=service.finished)


@router.post(
    "/synthesize",
    response_class=AudioStreamResponse,
    status_code=200,  # AudioStreamResponse takes no status_code for FastAPI to infer
    responses=AUDIO_RESPONSES,
    dependencies=[Depends(require_json)],
    summary="Stream speech for a text",
)
async def synthesize(body: SynthesizeRequest, service: Synthesis) -> AudioStreamResponse:
    return await _respond(
        service, {}, text=body.text, voice=body.voice, sample_rate=body.sample_rate, fmt=body.format
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
    return await _respond(
        service,
        OPENAI_FIELDS,
        text=body.input,
        voice=body.voice,
        sample_rate=OPENAI_PCM_RATE,
        fmt=body.response_format,
    )


@router.get("/v1/voices", response_model=VoicesResponse, summary="Voices the fleet can speak")
async def list_voices(service: Synthesis) -> VoicesResponse:
    return service.voices()
