"""Routes of the synthesis API: `/synthesize`; OpenAI's `/v1/audio/speech`, `/v1/models`,
`/v1/audio/voices` and `/v1/audio/models`; and `/v1/voices`.

Routes only fetch the service, spell service errors as their own fields, and wrap the
started stream in a streaming response (plain audio, or server-sent events).
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from starlette.responses import Response

from orchestrator.errors import ServiceError, Subject
from orchestrator.http.errors import ERROR_RESPONSES, FieldNames, require_json, to_http
from orchestrator.synthesis.audio_response import AudioStreamResponse, EncodedSpeech
from orchestrator.synthesis.encoders import FORMATS
from orchestrator.synthesis.event_stream import SpeechEventsResponse
from orchestrator.synthesis.protocol import (
    AudioModelsResponse,
    AudioVoicesResponse,
    ModelsResponse,
    SpeechRequest,
    SynthesizeRequest,
    VoicesResponse,
)
from orchestrator.synthesis.serving import SpeechJob, SynthesisService

OPENAI_PCM_RATE = 24000
OPENAI_FIELDS: FieldNames = {Subject.TEXT: "input", Subject.FORMAT: "response_format"}


def _synthesis(request: Request) -> SynthesisService:
    service: SynthesisService = request.app.state.synthesis
    return service


Synthesis = Annotated[SynthesisService, Depends(_synthesis)]


AUDIO_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {
        "description": "Streamed audio (X-Sample-Rate and X-Audio-Format name it), or "
        "server-sent events when timestamps or stream_format sse are asked for.",
        "content": {
            **{spec.content_type: {} for spec in FORMATS.values()},
            "text/event-stream": {},
        },
    },
    **ERROR_RESPONSES,
}

router = APIRouter()


async def _respond(
    service: SynthesisService,
    fields: FieldNames,
    job: SpeechJob,
    *,
    events: bool,
    instructions: str | None = None,
) -> Response:
    try:
        started = await service.start(job)
    except ServiceError as exc:
        raise to_http(exc, fields) from None
    headers = {}
    if instructions and not started.follows_instructions():
        headers["X-Instructions"] = f"ignored; engine={started.engine}"
    try:
        speech = EncodedSpeech(started, job.format, service.metrics)
    except BaseException:
        await started.stream.aclose()
        service.finished()
        raise
    if events:
        return SpeechEventsResponse(speech, job.text, on_close=service.finished, headers=headers)
    return AudioStreamResponse(speech, on_close=service.finished, headers=headers)


@router.post(
    "/synthesize",
    response_class=AudioStreamResponse,
    status_code=200,  # AudioStreamResponse takes no status_code for FastAPI to infer
    responses=AUDIO_RESPONSES,
    dependencies=[Depends(require_json)],
    summary="Stream speech for a text",
)
async def synthesize(body: SynthesizeRequest, service: Synthesis) -> Response:
    job = SpeechJob(
        text=body.text,
        voice=body.voice,
        sample_rate=body.sample_rate,
        format=body.format,
        speed=body.speed,
        normalize=body.normalize,
    )
    return await _respond(service, {}, job, events=body.timestamps)


@router.post(
    "/v1/audio/speech",
    response_class=AudioStreamResponse,
    status_code=200,  # AudioStreamResponse takes no status_code for FastAPI to infer
    responses=AUDIO_RESPONSES,
    dependencies=[Depends(require_json)],
    summary="OpenAI-compatible speech endpoint",
)
async def openai_speech(body: SpeechRequest, service: Synthesis) -> Response:
    job = SpeechJob(
        text=body.input,
        voice=body.voice,
        model=body.model,
        sample_rate=OPENAI_PCM_RATE,
        format=body.response_format,
        speed=body.speed,
        normalize=body.normalize,
    )
    return await _respond(
        service,
        OPENAI_FIELDS,
        job,
        events=body.stream_format == "sse",
        instructions=body.instructions,
    )


@router.get("/v1/voices", response_model=VoicesResponse, summary="Voices the fleet can speak")
async def list_voices(service: Synthesis) -> VoicesResponse:
    return service.voices()


@router.get(
    "/v1/audio/voices",
    response_model=AudioVoicesResponse,
    summary="Voices and aliases, as OpenAI-compatible clients list them",
)
async def list_audio_voices(service: Synthesis) -> AudioVoicesResponse:
    return service.audio_voices()


@router.get("/v1/models", response_model=ModelsResponse, summary="Models (OpenAI's shape)")
async def list_models(service: Synthesis) -> ModelsResponse:
    return service.models()


@router.get(
    "/v1/audio/models",
    response_model=AudioModelsResponse,
    summary="Speech models, as OpenAI-compatible clients list them",
)
async def list_audio_models(service: Synthesis) -> AudioModelsResponse:
    return service.audio_models()
