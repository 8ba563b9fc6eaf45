"""Request and response models of the public API."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, field_validator

from orchestrator.synthesis.encoders import ResponseFormat

SampleRate = Literal[8000, 16000, 22050, 24000, 44100, 48000]
MIN_SPEED = 0.25
MAX_SPEED = 4.0

_FORMATS = (
    "`mp3`, `opus` (Ogg), `aac` (ADTS), `flac`, `wav` (streaming header), `pcm` (raw s16le mono)"
)
_SPEED = f"Speaking rate, {MIN_SPEED} to {MAX_SPEED} (2.0 is twice as fast)."
_NORMALIZE = (
    "Read the text as a person would: markdown and emoji dropped; numbers, prices, dates, "
    "times, units and addresses spelled out (English voices). Omitted: the server's "
    "setting (on by default)."
)
Speed = Annotated[float, Field(ge=MIN_SPEED, le=MAX_SPEED, allow_inf_nan=False, description=_SPEED)]


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
        description="Voice name (or alias) from GET /v1/voices; the fleet's default voice "
        "when omitted.",
    )
    sample_rate: SampleRate | None = Field(
        default=None,
        description="Output rate in Hz; the voice's native rate when omitted. Formats whose "
        "codec takes fixed rates (opus, mulaw, mp3, aac) use the nearest one they take "
        "(X-Sample-Rate says which).",
    )
    format: ResponseFormat = Field(
        default=ResponseFormat.WAV,
        description=f"{_FORMATS}, or `mulaw` (8 kHz G.711, headerless, for telephony).",
    )
    speed: Speed = 1.0
    normalize: bool | None = Field(default=None, description=_NORMALIZE)
    timestamps: bool = Field(
        default=False,
        description="true: answer with server-sent events instead of a bare body: the audio "
        "in `speech.audio.delta` events and when each word is heard in "
        "`speech.audio.timestamps` (as on /v1/audio/speech with stream_format sse).",
    )

    _check_text = field_validator("text")(_must_say_something)


def _voice_by_id(value: object) -> object:
    """OpenAI's custom voice reference `{"id": "..."}` names the voice by its id."""
    if isinstance(value, dict) and set(value) == {"id"}:
        return value["id"]
    return value


class SpeechRequest(BaseModel):
    """POST /v1/audio/speech, as OpenAI's SDK sends it. Fields OpenAI may add later are
    ignored, as OpenAI-compatible servers do."""

    model_config = ConfigDict(extra="ignore")

    model: str | None = Field(
        default=None,
        min_length=1,
        max_length=200,
        description="tts-1, tts-1-hd or gpt-4o-mini-tts (no effect), an engine of the fleet "
        "(its voices only), or a voice name (used when `voice` is an OpenAI voice name).",
    )
    input: str = Field(min_length=1, description="Text to speak.")
    voice: Annotated[str | None, BeforeValidator(_voice_by_id)] = Field(
        default=None,
        min_length=1,
        max_length=200,
        description="Voice name, or an alias: OpenAI's voice names map to the default voice "
        'unless ORCH_VOICE_ALIASES says otherwise; `{"id": name}` works too. The default '
        "voice when omitted.",
    )
    instructions: str | None = Field(
        default=None,
        max_length=4096,
        description="Accepted; engines that cannot follow instructions ignore them, and the "
        "X-Instructions response header then says `ignored`.",
    )
    response_format: ResponseFormat = Field(
        default=ResponseFormat.MP3,
        description=f"{_FORMATS} (24 kHz s16le, as OpenAI's pcm), or `mulaw`. Default mp3, as "
        "OpenAI's.",
    )
    speed: Speed = 1.0
    stream_format: Literal["audio", "sse"] = Field(
        default="audio",
        description="`audio`: the encoded audio as the body. `sse`: server-sent events "
        "`speech.audio.delta` (base64 audio), `speech.audio.timestamps` (word times, beyond "
        "OpenAI) and `speech.audio.done`.",
    )
    normalize: bool | None = Field(default=None, description=_NORMALIZE)

    _check_input = field_validator("input")(_must_say_something)


class VoiceOut(BaseModel):
    name: str
    native_sample_rate: int
    language: str
    engines: list[str]
    workers: int


class VoicesResponse(BaseModel):
    default_voice: str | None
    voices: list[VoiceOut]


class AudioVoice(BaseModel):
    """A voice as OpenAI-compatible clients list them (Open WebUI reads id and name)."""

    id: str
    name: str
    language: str
    engines: list[str]
    alias_of: str | None = Field(default=None, description="The voice an alias speaks now.")


class AudioVoicesResponse(BaseModel):
    voices: list[AudioVoice]


class ModelOut(BaseModel):
    """One entry of GET /v1/models, in OpenAI's shape."""

    id: str
    object: Literal["model"] = "model"
    created: int = Field(description="When this orchestrator started serving it (Unix time).")
    owned_by: str


class ModelsResponse(BaseModel):
    object: Literal["list"] = "list"
    data: list[ModelOut]


class AudioModel(BaseModel):
    id: str


class AudioModelsResponse(BaseModel):
    """GET /v1/audio/models, as Open WebUI reads it."""

    models: list[AudioModel]
