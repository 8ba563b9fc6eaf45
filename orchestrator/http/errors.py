"""Errors as HTTP answers. Every error names what went wrong and, when an input is at fault,
which field: `{"error": {"message", "type", "param", "code"}}` (OpenAI's shape).

Services raise `orchestrator.errors.ServiceError`; this module alone knows each code's
status and how a `Subject` is spelled as a field of the route at hand.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from starlette.exceptions import HTTPException as StarletteHTTPException

from orchestrator import errors
from orchestrator.errors import ServiceError, Subject


class ErrorDetail(BaseModel):
    message: str
    type: str
    param: str | None = None
    code: str


class ErrorBody(BaseModel):
    error: ErrorDetail


STATUS: dict[str, int] = {
    errors.INVALID_JSON.code: 400,
    errors.INVALID_VALUE.code: 422,
    errors.UNSUPPORTED_MEDIA_TYPE.code: 415,
    errors.BODY_TOO_LARGE.code: 413,
    errors.NOT_FOUND.code: 404,
    errors.METHOD_NOT_ALLOWED.code: 405,
    errors.UNAUTHORIZED.code: 401,
    errors.FORBIDDEN.code: 403,
    errors.RATE_LIMITED.code: 429,
    errors.TEXT_TOO_LONG.code: 413,
    errors.VOICE_NOT_FOUND.code: 404,
    errors.MODEL_NOT_FOUND.code: 404,
    errors.NO_AUDIO.code: 422,
    errors.NO_WORKER.code: 503,
    errors.WORKER_UNAVAILABLE.code: 503,
    errors.SYNTHESIS_FAILED.code: 502,
    errors.DRAINING.code: 503,
    errors.SESSION_NOT_FOUND.code: 404,
    errors.SESSION_ENDED.code: 409,
    errors.UTTERANCE_NOT_FOUND.code: 404,
    errors.UTTERANCE_CLOSED.code: 409,
    errors.AT_CAPACITY.code: 503,
    errors.LIVEKIT_UNREACHABLE.code: 503,
    errors.OWNER_UNREACHABLE.code: 503,
    errors.OWNER_MOVED.code: 503,
    errors.STORE_UNAVAILABLE.code: 503,
}
"""The HTTP status of every code that has an error body (http_error keeps its own)."""

FieldNames = Mapping[Subject, str]
DEFAULT_FIELDS: FieldNames = {}
"""Subjects are spelled as their own value unless a route says otherwise."""


class HTTPError(Exception):
    """A ServiceError with its HTTP status and field name decided: rendered as is."""

    def __init__(
        self,
        status: int,
        error: ServiceError,
        param: str | None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(error.message)
        self.status = status
        self.error = error
        self.param = param
        self.headers = headers

    def response(self) -> JSONResponse:
        error_type = "server_error" if self.status >= 500 else "invalid_request_error"
        body = ErrorBody(
            error=ErrorDetail(
                message=self.error.message,
                type=error_type,
                param=self.param,
                code=self.error.code.code,
            )
        )
        return JSONResponse(body.model_dump(), status_code=self.status, headers=self.headers)


def to_http(
    error: ServiceError,
    fields: FieldNames = DEFAULT_FIELDS,
    *,
    status: int | None = None,
    headers: dict[str, str] | None = None,
) -> HTTPError:
    """The HTTP answer to a service error, its subject spelled as the route's field."""
    param = None
    if error.subject is not None:
        param = fields.get(error.subject, error.subject.value)
    all_headers = dict(headers or {})
    if error.retry_after_seconds is not None:
        all_headers["Retry-After"] = str(error.retry_after_seconds)
    return HTTPError(status or STATUS[error.code.code], error, param, headers=all_headers or None)


def render(error: ServiceError, **kwargs: Any) -> JSONResponse:
    """A JSON error response, for middleware that answers before routing."""
    return to_http(error, **kwargs).response()


# Documented on every route that can produce them.
ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    status: {"model": ErrorBody, "description": description}
    for status, description in {
        400: "Malformed JSON body",
        401: "Missing or wrong API key",
        404: "Unknown voice (or model)",
        413: "Text or body over the configured limit",
        415: "Body is not JSON",
        422: "A field is invalid",
        503: "No worker can serve the request; the message says why",
    }.items()
}


def require_json(request: Request) -> None:
    """415 unless the body is declared as JSON (a FastAPI dependency)."""
    mime = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if mime != "application/json" and not mime.endswith("+json"):
        raise ServiceError(
            errors.UNSUPPORTED_MEDIA_TYPE,
            f"body must be application/json, got {mime or 'no content type'}",
            subject=Subject.CONTENT_TYPE,
        )


def _validation_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    found = exc.errors()
    if found and found[0].get("type") == "json_invalid":
        return render(
            ServiceError(
                errors.INVALID_JSON, "request body is not valid JSON", subject=Subject.BODY
            )
        )
    problems = []
    for error in found:
        where = ".".join(str(part) for part in error.get("loc", ()) if part != "body") or "body"
        problems.append((where, str(error.get("msg", "invalid value"))))
    param = problems[0][0] if problems else "body"
    message = "; ".join(f"{where}: {msg}" for where, msg in problems) or "invalid request"
    return HTTPError(422, ServiceError(errors.INVALID_VALUE, message), param).response()


def _service_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, ServiceError)
    return to_http(exc).response()


def _http_error(request: Request, exc: Exception) -> JSONResponse:
    if isinstance(exc, HTTPError):
        return exc.response()
    assert isinstance(exc, StarletteHTTPException)
    code = {404: errors.NOT_FOUND, 405: errors.METHOD_NOT_ALLOWED}.get(
        exc.status_code, errors.HTTP_ERROR
    )
    headers = dict(exc.headers) if exc.headers else None
    return HTTPError(
        exc.status_code, ServiceError(code, str(exc.detail)), None, headers=headers
    ).response()


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(ServiceError, _service_error)
    app.add_exception_handler(HTTPError, _http_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
