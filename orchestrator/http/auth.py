"""API keys on the public API: who may call, what they may call, and how often.

With no key configured the API is open (the embedded single-node default on loopback).
With keys, every public route needs one (`Authorization: Bearer <key>` or `X-API-Key`):
401 without a valid key, 403 when the key lacks the route's scope, 429 with Retry-After
past the key's rate in that scope, counted for the whole fleet (`rate_limit.py`). Keys
are compared in constant time and never logged: logs and rate counts use a short
fingerprint instead.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import math
from dataclasses import dataclass

from starlette.types import ASGIApp, Receive, Scope, Send

from orchestrator import errors
from orchestrator.errors import ServiceError, Subject
from orchestrator.http.errors import render
from orchestrator.http.rate_limit import RateLimiter

SCOPES = ("synthesize", "sessions")
# Documentation and the browser page (GET / and its files under /web/) stay readable
# without a key: they hold no secrets, and the page asks for a key for every call it makes.
OPEN_PATHS = frozenset({"/", "/docs", "/docs/oauth2-redirect", "/redoc", "/openapi.json"})
OPEN_PREFIXES = ("/web/",)


@dataclass(frozen=True)
class ApiKey:
    secret: bytes
    scopes: frozenset[str]
    fingerprint: str


def parse_api_keys(raw: str) -> list[ApiKey]:
    """`{"<key>": ["synthesize", "sessions"], ...}` -> keys. Raises ValueError naming the
    problem (never the key itself)."""
    try:
        data = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise ValueError(f"ORCH_API_KEYS is not valid JSON (at position {exc.pos})") from None
    if not isinstance(data, dict) or not data:
        raise ValueError('ORCH_API_KEYS must be a JSON object {"<key>": ["<scope>", ...]}')
    keys = []
    for secret, scopes in data.items():
        fingerprint = hashlib.sha256(secret.encode()).hexdigest()[:8]
        if len(secret) < 16:
            raise ValueError(f"API key {fingerprint} is shorter than 16 characters")
        if not isinstance(scopes, list) or not set(scopes) <= set(SCOPES) or not scopes:
            raise ValueError(
                f"API key {fingerprint}: scopes must be a non-empty subset of {SCOPES}"
            )
        keys.append(ApiKey(secret.encode(), frozenset(scopes), fingerprint))
    return keys


def required_scope(path: str) -> str:
    return "sessions" if path == "/sessions" or path.startswith("/sessions/") else "synthesize"


class AuthMiddleware:
    """Checks the API key, its scope and its rate before anything else runs."""

    def __init__(self, app: ASGIApp, keys: list[ApiKey], limiter: RateLimiter | None) -> None:
        self.app = app
        self.keys = keys
        self.limiter = limiter

    def _find(self, presented: bytes) -> ApiKey | None:
        found = None
        for key in self.keys:  # compare with every key: no early exit to time
            if hmac.compare_digest(key.secret, presented):
                found = key
        return found

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not self.keys or _is_open(scope["path"]):
            await self.app(scope, receive, send)
            return
        refusal = await self._check(scope)
        if refusal is not None:
            error, headers = refusal
            await render(error, headers=headers)(scope, receive, send)
            return
        await self.app(scope, receive, send)

    async def _check(self, scope: Scope) -> tuple[ServiceError, dict[str, str] | None] | None:
        """Why the request is refused (and the headers that say how to do better), or None."""
        headers = dict(scope["headers"])
        presented = headers.get(b"x-api-key", b"")
        authorization = headers.get(b"authorization", b"")
        if authorization[:7].lower() == b"bearer ":
            presented = authorization[7:].strip()
        if not presented:
            return _unauthorized("an API key is required: send 'Authorization: Bearer <key>'")
        key = self._find(presented)
        if key is None:
            return _unauthorized("the API key is not valid")
        needed = required_scope(scope["path"])
        if needed not in key.scopes:
            message = f"this API key lacks the '{needed}' scope"
            return ServiceError(errors.FORBIDDEN, message, subject=Subject.CREDENTIALS), None
        if self.limiter is not None:
            wait = await self.limiter.retry_after(key.fingerprint, needed)
            if wait > 0:
                limit = self.limiter.options.limit(needed)
                message = f"rate limit of {limit} '{needed}' requests a minute reached"
                error = ServiceError(
                    errors.RATE_LIMITED, message, retry_after_seconds=max(1, math.ceil(wait))
                )
                return error, None
        return None


def _is_open(path: str) -> bool:
    return path in OPEN_PATHS or path.startswith(OPEN_PREFIXES)


def _unauthorized(message: str) -> tuple[ServiceError, dict[str, str]]:
    error = ServiceError(errors.UNAUTHORIZED, message, subject=Subject.CREDENTIALS)
    return error, {"WWW-Authenticate": "Bearer"}
