"""Every error the orchestrator reports, by code, in one place.

Services raise a `ServiceError` made by one of the named constructors below; they never
know HTTP status codes or request field names. The HTTP layer (`orchestrator.http.errors`)
maps each code to a status and each `Subject` to the field of the route at hand. The
metrics' catalogue of error kinds is `CATALOGUE`, derived from the codes defined here.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass


class Fault(enum.StrEnum):
    """Whose fault an error is: client errors do not count toward the error-rate alert."""

    CLIENT = "client"
    SERVER = "server"


class Subject(enum.StrEnum):
    """The input an error is about, in domain terms; routes name the matching field."""

    BODY = "body"
    TEXT = "text"
    VOICE = "voice"
    MODEL = "model"
    SPEED = "speed"
    FORMAT = "format"
    SESSION = "session_id"
    UTTERANCE = "utterance_id"
    CREDENTIALS = "authorization"
    CONTENT_TYPE = "content-type"
    LAST_EVENT_ID = "last-event-id"


@dataclass(frozen=True)
class ErrorCode:
    code: str
    fault: Fault


CATALOGUE: dict[str, ErrorCode] = {}
"""Every error code, by name: the `code` of JSON error bodies and the `kind` label of
voiceorch_errors_total."""


def _code(name: str, fault: Fault) -> ErrorCode:
    code = ErrorCode(name, fault)
    CATALOGUE[name] = code
    return code


# Request shape (raised by the HTTP layer itself).
INVALID_JSON = _code("invalid_json", Fault.CLIENT)
INVALID_VALUE = _code("invalid_value", Fault.CLIENT)
UNSUPPORTED_MEDIA_TYPE = _code("unsupported_media_type", Fault.CLIENT)
BODY_TOO_LARGE = _code("body_too_large", Fault.CLIENT)
NOT_FOUND = _code("not_found", Fault.CLIENT)
METHOD_NOT_ALLOWED = _code("method_not_allowed", Fault.CLIENT)
HTTP_ERROR = _code("http_error", Fault.CLIENT)
UNAUTHORIZED = _code("unauthorized", Fault.CLIENT)
FORBIDDEN = _code("forbidden", Fault.CLIENT)
RATE_LIMITED = _code("rate_limited", Fault.CLIENT)
# Synthesis.
TEXT_TOO_LONG = _code("text_too_long", Fault.CLIENT)
VOICE_NOT_FOUND = _code("voice_not_found", Fault.CLIENT)
MODEL_NOT_FOUND = _code("model_not_found", Fault.CLIENT)
NO_AUDIO = _code("no_audio", Fault.CLIENT)
NO_WORKER = _code("no_worker", Fault.SERVER)
WORKER_UNAVAILABLE = _code("worker_unavailable", Fault.SERVER)
SYNTHESIS_FAILED = _code("synthesis_failed", Fault.SERVER)
DRAINING = _code("draining", Fault.SERVER)
# Sessions.
SESSION_NOT_FOUND = _code("session_not_found", Fault.CLIENT)
SESSION_ENDED = _code("session_ended", Fault.CLIENT)
UTTERANCE_NOT_FOUND = _code("utterance_not_found", Fault.CLIENT)
UTTERANCE_CLOSED = _code("utterance_closed", Fault.CLIENT)
AT_CAPACITY = _code("at_capacity", Fault.SERVER)
LIVEKIT_UNREACHABLE = _code("livekit_unreachable", Fault.SERVER)
OWNER_UNREACHABLE = _code("owner_unreachable", Fault.SERVER)
OWNER_MOVED = _code("owner_moved", Fault.SERVER)
STORE_UNAVAILABLE = _code("store_unavailable", Fault.SERVER)
# Failures without an error body.
INTERNAL_ERROR = _code("internal_error", Fault.SERVER)
"""An exception before the response started (HTTP 500)."""
STREAM_INTERRUPTED = _code("stream_interrupted", Fault.SERVER)
"""Audio had started, then the response was cut off."""
SESSION_ERROR = _code("session_error", Fault.SERVER)
"""A LiveKit session's utterance failed."""
OTHER = _code("other", Fault.SERVER)
"""Any kind not in this catalogue (kept out of the label set)."""


class ServiceError(Exception):
    """An error with a catalogued code; `subject` names the input at fault, if any."""

    def __init__(
        self,
        code: ErrorCode,
        message: str,
        *,
        subject: Subject | None = None,
        retry_after_seconds: int | None = None,
    ) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.subject = subject
        self.retry_after_seconds = retry_after_seconds


class VoiceNotFound(ServiceError):
    """No registered worker has the voice."""

    def __init__(self, voice: str, known: list[str]) -> None:
        super().__init__(
            VOICE_NOT_FOUND,
            f"voice {voice!r} is not available; available voices: {known}",
            subject=Subject.VOICE,
        )
        self.voice = voice
        self.known = known


class NoWorkerAvailable(ServiceError):
    """No worker can take the utterance right now; the message says why."""

    def __init__(self, reason: str) -> None:
        super().__init__(NO_WORKER, reason, retry_after_seconds=1)


# -- named constructors -------------------------------------------------------------------


def invalid_value(message: str, subject: Subject = Subject.BODY) -> ServiceError:
    return ServiceError(INVALID_VALUE, message, subject=subject)


def voice_not_found(voice: str, known: list[str]) -> VoiceNotFound:
    return VoiceNotFound(voice, known)


def model_not_found(model: str, known: list[str]) -> ServiceError:
    return ServiceError(
        MODEL_NOT_FOUND,
        f"model {model!r} is not available; available models: {known}",
        subject=Subject.MODEL,
    )


def voice_refused(detail: str) -> ServiceError:
    """A worker refused the voice (it was unloaded after the registry listed it)."""
    return ServiceError(VOICE_NOT_FOUND, detail, subject=Subject.VOICE)


def no_worker(reason: str = "no TTS worker is registered") -> NoWorkerAvailable:
    return NoWorkerAvailable(reason)


def draining(what: str = "this replica is shutting down; retry on another") -> ServiceError:
    return ServiceError(DRAINING, what, retry_after_seconds=1)


def text_too_long(length: int, limit: int) -> ServiceError:
    return ServiceError(
        TEXT_TOO_LONG,
        f"the text has {length} characters; the limit is {limit}",
        subject=Subject.TEXT,
    )


def no_audio() -> ServiceError:
    return ServiceError(NO_AUDIO, "the text produced no audio", subject=Subject.TEXT)


def worker_unavailable(detail: str) -> ServiceError:
    return ServiceError(
        WORKER_UNAVAILABLE,
        f"no worker could synthesize the request ({detail})",
        retry_after_seconds=1,
    )


def synthesis_failed(detail: str) -> ServiceError:
    return ServiceError(SYNTHESIS_FAILED, f"the worker could not synthesize this text ({detail})")


def session_not_found(session_id: str) -> ServiceError:
    return ServiceError(SESSION_NOT_FOUND, f"no session {session_id!r}", subject=Subject.SESSION)


def session_ended(message: str) -> ServiceError:
    return ServiceError(SESSION_ENDED, message, subject=Subject.SESSION)


def utterance_not_found(utterance_id: str) -> ServiceError:
    return ServiceError(
        UTTERANCE_NOT_FOUND,
        f"no utterance {utterance_id!r} in this session",
        subject=Subject.UTTERANCE,
    )


def utterance_closed(message: str) -> ServiceError:
    return ServiceError(UTTERANCE_CLOSED, message, subject=Subject.UTTERANCE)


def at_capacity(message: str) -> ServiceError:
    return ServiceError(AT_CAPACITY, message, retry_after_seconds=2)


def livekit_unreachable(message: str) -> ServiceError:
    return ServiceError(LIVEKIT_UNREACHABLE, message, retry_after_seconds=2)


def owner_unreachable(message: str) -> ServiceError:
    return ServiceError(OWNER_UNREACHABLE, message, retry_after_seconds=1)


def owner_moved() -> ServiceError:
    return ServiceError(OWNER_MOVED, "the session's owner changed; retry", retry_after_seconds=1)


def store_unavailable(detail: str) -> ServiceError:
    """The fleet's store does not answer, and the call needs it (a session hosted elsewhere)."""
    return ServiceError(STORE_UNAVAILABLE, detail, retry_after_seconds=1)
