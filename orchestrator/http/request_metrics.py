"""The public app's outermost middleware: requests by route and status class, errors by the
`code` of their JSON body, and time to first audio of the synthesis routes."""

from __future__ import annotations

import json
import time

from starlette.requests import ClientDisconnect
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from orchestrator.metrics.catalogue import ERROR_KINDS, FIRST_AUDIO_ROUTES, REQUEST_ROUTES
from orchestrator.metrics.recorder import FleetMetrics


class RequestMetricsMiddleware:
    """Counts every public request by route and status class, errors by the `code` of
    their JSON body, and time to first audio: request received to the first audio bytes
    handed to the server. Outermost, so it also sees the body-limit middleware's 413s."""

    def __init__(self, app: ASGIApp, metrics: FleetMetrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        metrics = self.metrics
        started = time.perf_counter()
        status = 0
        audio = False
        error_body: bytearray | None = None

        async def measured_send(message: Message) -> None:
            nonlocal status, audio, error_body
            kind = message["type"]
            if kind == "http.response.start":
                status = int(message["status"])
                metrics.count_request(_route(scope), status)
                if status >= 400:
                    error_body = bytearray()
                elif status == 200 and _route(scope) in FIRST_AUDIO_ROUTES:
                    # Audio bodies, and speech as server-sent events (its first event is
                    # the first audio).
                    audio = any(
                        k == b"content-type"
                        and (v.startswith(b"audio/") or v.startswith(b"text/event-stream"))
                        for k, v in message.get("headers", ())
                    )
            elif kind == "http.response.body":
                if audio and message.get("body"):
                    audio = False  # only the first chunk
                    metrics.observe_first_audio(time.perf_counter() - started, _route(scope))
                elif error_body is not None:
                    error_body += message.get("body", b"")
                    if not message.get("more_body", False):
                        metrics.count_error(_error_code(bytes(error_body), status))
                        error_body = None
            await send(message)

        try:
            await self.app(scope, receive, measured_send)
        except ClientDisconnect:
            raise  # the caller left before a response: neither a request served nor an error
        except Exception:
            if status == 0:
                metrics.count_request(_route(scope), 500)
                metrics.count_error("internal_error")
            else:
                metrics.count_error("stream_interrupted")
            raise


def _route(scope: Scope) -> str:
    """The route label: the matched route's template (the router puts it in the scope), or
    the path itself when a middleware answered before routing (the body limit's 413)."""
    template = getattr(scope.get("route"), "path", None) or scope["path"]
    return REQUEST_ROUTES.get(template, "other")


def _error_code(body: bytes, status: int) -> str:
    try:
        code = json.loads(body)["error"]["code"]
    except (ValueError, KeyError, TypeError):
        return "internal_error" if status >= 500 else "http_error"
    return code if isinstance(code, str) and code in ERROR_KINDS else "other"
