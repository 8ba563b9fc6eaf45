"""Routes of the sessions API: an agent in a LiveKit room, speaking on request.

Any replica answers: calls for a session owned elsewhere are forwarded to its owner (or,
when its replica is gone, the session is taken over first), and any replica serves its
event stream, resumable with Last-Event-ID.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from dataclasses import asdict
from typing import Annotated, Any, TypeVar

from fastapi import APIRouter, Depends, Header, Query, Request
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel
from sse_starlette import EventSourceResponse, ServerSentEvent

from orchestrator import errors
from orchestrator.http.errors import ERROR_RESPONSES, require_json
from orchestrator.sessions.events import SessionEvent
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
from orchestrator.sessions.session import VoiceSession
from orchestrator.sessions.speech_handle import SpeechHandle

FORWARDED_HEADER = "x-forwarded-by-replica"
RECONNECT_MS = 1000
"""How soon an EventSource reconnects after its stream breaks (a replica going away)."""
SSE_SEPARATOR = "\n"


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
    session = manager.owned(session_id) if record.owner == manager.instance_id else None
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
    found = await manager.locate(session_id)
    if not isinstance(found, VoiceSession):
        return await _forward(manager, found, request, body.model_dump())
    session = found
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
    summary="Session events as server-sent events, resumable with Last-Event-ID",
    response_class=EventSourceResponse,
    responses={200: {"content": {"text/event-stream": {}}}},
)
async def events(
    session_id: str,
    manager: Manager,
    last_event_id: Annotated[
        str | None,
        Header(description="Resume after this event id (sent by EventSource on reconnect)."),
    ] = None,
    after: Annotated[
        int | None,
        Query(
            ge=-1,
            description="Resume after this event id, for clients that cannot set "
            "the header; the header wins.",
        ),
    ] = None,
) -> Response:
    resume = _resume_point(last_event_id, after)
    stream = await manager.events(session_id, resume)
    return EventSourceResponse(
        _encoded(stream),
        ping=manager.options.events.keepalive_seconds,
        sep=SSE_SEPARATOR,
        headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
    )


def _resume_point(last_event_id: str | None, after: int | None) -> int:
    """The seq a reader has seen last: -1 (everything kept) when it names none."""
    if last_event_id is None or not last_event_id.strip():
        return -1 if after is None else after
    try:
        seen = int(last_event_id.strip())
    except ValueError:
        seen = -2
    if seen < -1:
        raise errors.invalid_value(
            "Last-Event-ID must be an event id this API sent (an integer)",
            errors.Subject.LAST_EVENT_ID,
        )
    return seen


async def _encoded(stream: AsyncIterator[SessionEvent]) -> AsyncIterator[ServerSentEvent]:
    yield ServerSentEvent(retry=RECONNECT_MS, sep=SSE_SEPARATOR)
    async for event in stream:
        yield ServerSentEvent(
            event.to_json(), event=str(event.kind), id=str(event.seq), sep=SSE_SEPARATOR
        )


def _session_out(record: SessionRecord, utterances: list[UtteranceOut] | None = None) -> SessionOut:
    fields = asdict(record)
    # Internal: where replicas forward calls, and the owner's ownership bookkeeping.
    for internal in ("owner_url", "epoch", "playing_utterance", "playing_heard_seconds"):
        del fields[internal]
    return SessionOut(**fields, utterances=utterances)
