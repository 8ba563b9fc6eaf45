"""Routes of the sessions API: an agent in a LiveKit room, speaking on request."""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse, RedirectResponse, Response, StreamingResponse
from livekit import rtc

from orchestrator.api.errors import ERROR_RESPONSES, APIError
from orchestrator.api.routes import require_json
from orchestrator.api.session_protocol import (
    AppendTextRequest,
    CreateSessionRequest,
    SayRequest,
    SessionCreated,
    SessionOut,
    UtteranceAccepted,
    UtteranceOut,
)
from orchestrator.livekit_tokens import user_token
from orchestrator.session import SessionState, UtteranceClosed
from orchestrator.session_manager import (
    ReplicaUnreachable,
    SessionGone,
    SessionManager,
    SessionNotFound,
    SessionRecord,
)

FORWARDED_HEADER = "x-forwarded-by-replica"


def _manager(request: Request) -> SessionManager:
    manager: SessionManager = request.app.state.sessions
    return manager


Manager = Annotated[SessionManager, Depends(_manager)]
router = APIRouter(responses={**ERROR_RESPONSES, 409: {"description": "Session has ended"}})


async def _open_record(manager: SessionManager, session_id: str) -> SessionRecord:
    try:
        return await manager.check_open(session_id)
    except SessionNotFound:
        raise _not_found(session_id) from None
    except SessionGone as exc:
        raise APIError(409, "session_ended", str(exc), param="session_id") from None


async def _forward(
    manager: SessionManager, record: SessionRecord, request: Request, body: dict[str, object] | None
) -> Response:
    """Hand the call to the owner replica and relay its answer."""
    if request.headers.get(FORWARDED_HEADER):
        raise APIError(
            503, "owner_moved", "the session's owner changed; retry", headers={"Retry-After": "1"}
        )
    headers = {FORWARDED_HEADER: manager.instance_id}
    for name in ("authorization", "x-api-key"):
        if name in request.headers:
            headers[name] = request.headers[name]
    try:
        answer = await manager.forward(record, request.method, request.url.path, body, headers)
    except SessionGone as exc:
        raise APIError(409, "session_ended", str(exc), param="session_id") from None
    except ReplicaUnreachable as exc:
        raise APIError(503, "owner_unreachable", str(exc), headers={"Retry-After": "1"}) from None
    return Response(
        answer.content,
        status_code=answer.status_code,
        media_type=answer.headers.get("content-type"),
    )


@router.post(
    "/sessions",
    status_code=201,
    response_model=SessionCreated,
    dependencies=[Depends(require_json)],
    summary="Start an agent in a LiveKit room",
)
async def create_session(body: CreateSessionRequest, manager: Manager) -> SessionCreated:
    if manager.draining:
        raise APIError(
            503, "draining", "this replica is shutting down", headers={"Retry-After": "1"}
        )
    voice = body.voice or manager.registry.default_voice()
    if voice is None:
        raise APIError(
            503, "no_worker", "no TTS worker is registered", headers={"Retry-After": "1"}
        )
    voices = manager.registry.voices()
    if voice not in voices:
        raise APIError(
            404,
            "voice_not_found",
            f"voice {voice!r} is not available; available voices: {sorted(voices)}",
            param="voice",
        )
    settings = manager.settings
    try:
        session = await manager.create(body.room, voice)
    except (rtc.ConnectError, TimeoutError, OSError) as exc:
        raise APIError(
            503,
            "livekit_unreachable",
            f"cannot join LiveKit at {settings.livekit_url}: {type(exc).__name__}: {exc}",
            headers={"Retry-After": "2"},
        ) from None
    except ReplicaUnreachable as exc:
        raise APIError(503, "at_capacity", str(exc), headers={"Retry-After": "2"}) from None
    identity = f"user-{session.id[:12]}"
    ttl = settings.user_token_ttl_seconds
    token = user_token(
        settings.livekit_api_key,
        settings.livekit_api_secret.get_secret_value(),
        room=session.room_name,
        identity=identity,
        ttl_seconds=ttl,
    )
    return SessionCreated(
        session_id=session.id,
        room=session.room_name,
        url=settings.livekit_public_url or settings.livekit_url,
        token=token,
        identity=identity,
        expires_at=time.time() + ttl,
        voice=voice,
    )


@router.get("/sessions/{session_id}", response_model=SessionOut, summary="A session's state")
async def get_session(session_id: str, manager: Manager) -> SessionOut:
    try:
        record = await manager.record(session_id)
    except SessionNotFound:
        raise _not_found(session_id) from None
    session = manager.owned(session_id)
    utterances = None
    if session is not None:
        utterances = [
            UtteranceOut(utterance_id=u.id, state=u.state, interruptible=u.interruptible)
            for u in session.utterances.values()
        ]
    return _session_out(record, utterances)


@router.delete("/sessions/{session_id}", response_model=SessionOut, summary="End a session")
async def delete_session(session_id: str, manager: Manager) -> SessionOut:
    try:
        record = await manager.end(session_id)
    except SessionNotFound:
        raise _not_found(session_id) from None
    except (ReplicaUnreachable, SessionGone) as exc:
        raise APIError(503, "owner_unreachable", str(exc), headers={"Retry-After": "1"}) from None
    return _session_out(record)


@router.post(
    "/sessions/{session_id}/say",
    status_code=202,
    response_model=UtteranceAccepted,
    dependencies=[Depends(require_json)],
    summary="Speak text in the session",
)
async def say(session_id: str, body: SayRequest, request: Request, manager: Manager) -> Response:
    record = await _open_record(manager, session_id)
    session = manager.owned(session_id)
    if session is None:
        return await _forward(manager, record, request, body.model_dump())
    if manager.draining:
        raise APIError(
            503,
            "draining",
            "this replica is shutting down; no new utterances",
            headers={"Retry-After": "1"},
        )
    _check_length(manager, len(body.text))
    utterance = session.say(body.text, interruptible=body.interruptible, final=body.final)
    return JSONResponse(
        UtteranceAccepted(utterance_id=utterance.id, session_id=session.id).model_dump(),
        status_code=202,
    )


@router.post(
    "/sessions/{session_id}/utterances/{utterance_id}/text",
    status_code=202,
    response_model=UtteranceAccepted,
    dependencies=[Depends(require_json)],
    summary="Add streamed text to an open utterance",
)
async def append_text(
    session_id: str, utterance_id: str, body: AppendTextRequest, request: Request, manager: Manager
) -> Response:
    record = await _open_record(manager, session_id)
    session = manager.owned(session_id)
    if session is None:
        return await _forward(manager, record, request, body.model_dump())
    utterance = session.utterances.get(utterance_id)
    if utterance is None:
        raise APIError(
            404,
            "utterance_not_found",
            f"no utterance {utterance_id!r} in this session",
            param="utterance_id",
        )
    _check_length(manager, len(utterance.text) + len(body.text))
    try:
        session.append_text(utterance_id, body.text, body.final)
    except UtteranceClosed as exc:
        raise APIError(409, "utterance_closed", str(exc), param="utterance_id") from None
    return JSONResponse(
        UtteranceAccepted(utterance_id=utterance_id, session_id=session.id).model_dump(),
        status_code=202,
    )


@router.get(
    "/sessions/{session_id}/events",
    summary="Session events as server-sent events",
    response_class=StreamingResponse,
    responses={200: {"content": {"text/event-stream": {}}}},
)
async def events(session_id: str, manager: Manager) -> Response:
    session = manager.owned(session_id)
    if session is None:
        record = await _open_record(manager, session_id)
        # Events live on the owner: send the client there.
        return RedirectResponse(f"{record.owner_url}/sessions/{session_id}/events", status_code=307)
    if session.state is not SessionState.ACTIVE:
        raise APIError(409, "session_ended", f"session {session_id} has {session.state}")

    async def stream() -> AsyncIterator[bytes]:
        async for event in session.events():
            payload = json.dumps(event.as_dict())
            yield f"id: {event.seq}\nevent: {event.type}\ndata: {payload}\n\n".encode()

    return StreamingResponse(
        stream(),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
    )


def _not_found(session_id: str) -> APIError:
    return APIError(404, "session_not_found", f"no session {session_id!r}", param="session_id")


def _session_out(record: SessionRecord, utterances: list[UtteranceOut] | None = None) -> SessionOut:
    return SessionOut(
        session_id=record.session_id,
        room=record.room,
        voice=record.voice,
        state=record.state,
        owner=record.owner,
        created_at=record.created_at,
        error=record.error,
        utterances=utterances,
    )


def _check_length(manager: SessionManager, length: int) -> None:
    limit = manager.settings.max_text_chars
    if length > limit:
        raise APIError(
            413,
            "text_too_long",
            f"utterance text has {length} characters; the limit is {limit}",
            param="text",
        )
