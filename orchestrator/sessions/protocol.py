"""Request and response models of the sessions API."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, field_validator

ROOM_PATTERN = r"^[A-Za-z0-9_.\-]{1,128}$"


class CreateSessionRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    room: str | None = Field(
        default=None,
        pattern=ROOM_PATTERN,
        description="Room to join; a new unique room when omitted.",
    )
    voice: str | None = Field(
        default=None,
        min_length=1,
        max_length=200,
        description="Voice for everything this session says.",
    )


class SessionCreated(BaseModel):
    session_id: str
    room: str
    url: str = Field(description="LiveKit URL the client connects to.")
    token: str = Field(description="User token: this room only, microphone and data only.")
    identity: str = Field(description="Identity the token carries.")
    expires_at: float = Field(description="Unix time at which the token expires.")
    voice: str


class SayRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    text: str = Field(
        min_length=1, description="Text to speak (the first chunk when final is false)."
    )
    interruptible: bool = Field(default=True, description="Whether the listener can barge in.")
    final: bool = Field(
        default=True,
        description="false keeps the utterance open for more text, sent as an LLM streams it "
        "through POST /sessions/{id}/utterances/{utterance_id}/text.",
    )
    speed: float = Field(
        default=1.0,
        ge=0.25,
        le=4.0,
        allow_inf_nan=False,
        description="Speaking rate, 0.25 to 4.0 (2.0 is twice as fast).",
    )
    normalize: bool | None = Field(
        default=None,
        description="Read the text as a person would (markdown and emoji dropped, numbers "
        "and the like spelled out); omitted: the server's setting (on by default).",
    )

    @field_validator("text")
    @classmethod
    def _not_blank(cls, text: str) -> str:
        if not text.strip():
            raise ValueError("must contain text to speak, not only whitespace")
        return text


class AppendTextRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    text: str = Field(default="", description="More text for the open utterance.")
    final: bool = Field(default=False, description="true when no more text follows.")


class UtteranceAccepted(BaseModel):
    utterance_id: str
    session_id: str


class UtteranceOut(BaseModel):
    utterance_id: str
    state: str
    interruptible: bool


class SessionOut(BaseModel):
    session_id: str
    room: str
    voice: str
    state: str
    owner: str
    created_at: float
    error: str | None = None
    utterances: list[UtteranceOut] | None = Field(
        default=None, description="Present when this replica owns the session."
    )
