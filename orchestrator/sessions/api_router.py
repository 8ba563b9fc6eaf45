"""Routes of the sessions API: an agent in a LiveKit room, speaking on request.

Any replica answers: calls for a session owned elsewhere are forwarded to its owner, and
event streams are redirected there.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable
from dataclasses import asdict
from typing import Annotated, Any, TypeVar

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse, RedirectResponse, Response, StreamingResponse
from pydantic import BaseModel

from orchestrator import errors
from orchestrator.http.errors import ERROR_RESPONSES, require_json
from orchestrator.sessions.manager import SessionManager, SessionRecord
from orchestrator.sessions.protocol import (
    AppendTextRequest,
    CreateSessionRequest,
    SayRequest,
    SessionCreated,
    SessionOut,
    UtteranceAccepted,
    UtteranceOut,
)
from orchestrator.sessions.session import SessionState, VoiceSession
from orchestrator.sessions.speech_handle import SpeechHandle

FORWARDED_HEADER = "x-forwarded-by-replica"


def _manager(request: Request) -> SessionManager:
    manager: SessionManager = request.app.state.sessions
    return manager


Manager = Annotated[SessionManager, Depends(_manager)]
router = APIRouter(responses={**ERROR_RESPONSES, 409: {"description": "Session has ended"}})


async def _forward(
    manager: SessionManager, record: SessionRecord, request: Request, body: dict[str, object] | None
) -> Response:
    """Hand the call to the owner replica and relay its answer."""
    if request.headers.get(FORWARDED_HEADER):
        raise errors.owner_moved()
    headers = {FORWARDED_HEADER: manager.instance_id}
    for name in ("authorization", "x-api-key"):
        if name in request.headers:
            headers[name] = request.headers[name]
    answer = await manager.forward(record, request.method, request.url.path, body, headers)
    return Response(
        answer.content,
        status_code=answer.status_code,
        media_type=answer.headers.get("content-type"),
    )


Route = TypeVar("Route", bound=Callable[..., Any])


def _post_json(
    path: str, status: int, model: type[BaseModel], summary: str
) -> Callable[[Route], Route]:
    """A route taking a JSON body (415 otherwise)."""
    return router.post(
        path,
        status_code=status,
        response_model=model,
        dependencies=[Depends(require_json)],
        summary=summary,
    )


@_post_json("/sessions", 201, SessionCreated, "Start an agent in a LiveKit room")
async def create_session(body: CreateSessionRequest, manager: Manager) -> SessionCreated:
    return SessionCreated(**asdict(await manager.create(body.room, body.voice)))


@router.get("/sessions/{session_id}", response_model=SessionOut, summary="A session's state")
async def get_session(session_id: str, manager: Manager) -> SessionOut:
    record = await manager.record(session_id)
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
    except errors.ServiceError as exc:
        if exc.code is errors.SESSION_ENDED:  # its owner died under it: nobody can end it now
            raise errors.owner_unreachable(exc.message) from None
        raise
    return _session_out(record)


async def _on_owner(
    manager: SessionManager,
    session_id: str,
    request: Request,
    body: BaseModel,
    speak: Callable[[VoiceSession], SpeechHandle],
) -> Response:
    """Run `speak` here if this replica owns the session, else forward the call to its owner."""
    record = await manager.check_open(session_id)
    session = manager.owned(session_id)
    if session is None:
        return await _forward(manager, record, request, body.model_dump())
    handle = speak(session)
    accepted = UtteranceAccepted(utterance_id=handle.id, session_id=session.id)
    return JSONResponse(accepted.model_dump(), status_code=202)


@_post_json("/sessions/{session_id}/say", 202, UtteranceAccepted, "Speak text in the session")
async def say(session_id: str, body: SayRequest, request: Request, manager: Manager) -> Response:
    return await _on_owner(
        manager,
        session_id,
        request,
        body,
        lambda s: manager.say(
            s,
            body.text,
            interruptible=body.interruptible,
            final=body.final,
            speed=body.speed,
            normalize=body.normalize,
        ),
    )


@_post_json(
    "/sessions/{session_id}/utterances/{utterance_id}/text",
    202,
    UtteranceAccepted,
    "Add streamed text to an open utterance",
)
async def append_text(
    session_id: str, utterance_id: str, body: AppendTextRequest, request: Request, manager: Manager
) -> Response:
    return await _on_owner(
        manager,
        session_id,
        request,
        body,
        lambda s: manager.append_text(s, utterance_id, body.text, body.final),
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
        record = await manager.check_open(session_id)
        # Events live on the owner: send the client there.
        return RedirectResponse(f"{record.owner_url}/sessions/{session_id}/events", status_code=307)
    if session.state is not SessionState.ACTIVE:
        raise errors.session_ended(f"session {session_id} has {session.state}")

    async def stream() -> AsyncIterator[bytes]:
        async for event in session.events.follow():
            payload = json.dumps(event.as_dict())
            yield f"id: {event.seq}\nevent: {event.kind.value}\ndata: {payload}\n\n".encode()

    return StreamingResponse(
        stream(),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
    )


def _session_out(record: SessionRecord, utterances: list[UtteranceOut] | None = None) -> SessionOut:
    fields = asdict(record)
    del fields["owner_url"]  # internal: where replicas forward calls
    return SessionOut(**fields, utterances=utterances)
