"""Request and response models of the public API."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

SampleRate = Literal[8000, 16000, 22050, 24000, 44100, 48000]
AudioFormat = Literal["wav", "pcm"]


def _must_say_something(text: str) -> str:
    if not text.strip():
        raise ValueError("must contain text to speak, not only whitespace")
    return text


class SynthesizeRequest(BaseModel):
    """POST /synthesize."""

    model_config = ConfigDict(extra="forbid")

    text: str = Field(min_length=1, description="Text to speak.")
    voice: str | None = Field(
        default=None,
        min_length=1,
        max_length=200,
        description="Voice name from GET /v1/voices; the fleet's default voice when omitted.",
    )
    sample_rate: SampleRate | None = Field(
        default=None, description="Output rate in Hz; the voice's native rate when omitted."
    )
    format: AudioFormat = Field(
        default="wav", description="`wav` (streaming header) or `pcm` (raw s16le mono)."
    )

    _check_text = field_validator("text")(_must_say_something)


class SpeechRequest(BaseModel):
    """POST /v1/audio/speech (OpenAI-compatible)."""

    model_config = ConfigDict(extra="forbid")

    model: str = Field(min_length=1, max_length=200, description="Accepted for compatibility.")
    input: str = Field(min_length=1, description="Text to speak.")
    voice: str = Field(
        min_length=1, max_length=200, description="Voice name (or a configured alias)."
    )
    response_format: AudioFormat = Field(
        default="wav", description="`wav` or `pcm` (24 kHz s16le mono, as OpenAI's pcm)."
    )
    speed: float = Field(default=1.0, description="Only 1.0 is supported.")

    _check_input = field_validator("input")(_must_say_something)

    @field_validator("speed")
    @classmethod
    def _only_normal_speed(cls, speed: float) -> float:
        if speed != 1.0:
            raise ValueError("only 1.0 is supported")
        return speed


class VoiceOut(BaseModel):
    name: str
    native_sample_rate: int
    language: str
    engines: list[str]
    workers: int


class VoicesResponse(BaseModel):
    default_voice: str | None
    voices: list[VoiceOut]
