"""API errors and their JSON bodies. Every error names what went wrong and, when a field
is at fault, which one: `{"error": {"message", "type", "param", "code"}}` (OpenAI's shape)."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from starlette.exceptions import HTTPException as StarletteHTTPException


class ErrorDetail(BaseModel):
    message: str
    type: str
    param: str | None = None
    code: str


class ErrorBody(BaseModel):
    error: ErrorDetail


class APIError(Exception):
    """Raised anywhere in request handling; rendered as an ErrorBody with its status."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        *,
        param: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.param = param
        self.headers = headers

    def response(self) -> JSONResponse:
        error_type = "server_error" if self.status >= 500 else "invalid_request_error"
        body = ErrorBody(
            error=ErrorDetail(
                message=self.message, type=error_type, param=self.param, code=self.code
            )
        )
        return JSONResponse(body.model_dump(), status_code=self.status, headers=self.headers)


# Documented on every route that can produce them.
ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    status: {"model": ErrorBody, "description": description}
    for status, description in {
        400: "Malformed JSON body",
        401: "Missing or wrong API key",
        404: "Unknown voice",
        413: "Text or body over the configured limit",
        415: "Body is not JSON",
        422: "A field is invalid",
        503: "No worker can serve the request; the message says why",
    }.items()
}


def _validation_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    errors = exc.errors()
    if errors and errors[0].get("type") == "json_invalid":
        return APIError(
            400, "invalid_json", "request body is not valid JSON", param="body"
        ).response()
    problems = []
    for error in errors:
        where = ".".join(str(part) for part in error.get("loc", ()) if part != "body") or "body"
        problems.append((where, str(error.get("msg", "invalid value"))))
    param = problems[0][0] if problems else "body"
    message = "; ".join(f"{where}: {msg}" for where, msg in problems) or "invalid request"
    return APIError(422, "invalid_value", message, param=param).response()


def _api_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, APIError)
    return exc.response()


def _http_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http_error")
    headers = dict(exc.headers) if exc.headers else None
    return APIError(exc.status_code, code, str(exc.detail), headers=headers).response()


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(APIError, _api_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
