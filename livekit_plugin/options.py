"""The plugin's option objects, each checked when it is built so that a bad value fails at
once with its name, never at the first `say()`.

`TTSOptions` is what one utterance is spoken with (`WorkerTTS.update_options` replaces it
for the next utterance); `FleetOptions` is where the workers are and how to reach them.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import grpc

# What the workers accept (tts.proto SynthesisConfig); checked here so a bad value is
# refused by the constructor instead of by the first utterance.
SAMPLE_RATES = (8000, 16000, 22050, 24000, 44100, 48000)
MIN_SPEED = 0.25
MAX_SPEED = 4.0
# RoomIO publishes the agent's track at 24 kHz: a TTS at that rate is never resampled.
DEFAULT_SAMPLE_RATE = 24000

_ADDRESS = re.compile(r"^(?:\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9_.-]+):(\d{1,5})$")
_REDIS_SCHEMES = ("redis", "rediss", "unix")


@dataclass(frozen=True)
class TTSOptions:
    """How an utterance is spoken. Streams read it when they start, so a change reaches the
    next utterance and never the one being spoken."""

    voice: str = ""
    """A voice the workers list (`GET /v1/voices` on the orchestrator); empty: the fleet's
    default voice."""
    speed: float = 1.0
    """Speaking rate relative to the voice's own pace, 0.25 to 4.0."""
    max_lead_seconds: float = 3.0
    """How far a streamed utterance may be synthesized ahead of playback. Past it the worker
    is paused in band and resumed when half of it has played, so an interrupted reply leaves
    little synthesized for nothing. 0 lets the worker run ahead freely (offline rendering).
    `synthesize()` (a whole text, collected at once) is never paced."""
    normalize: bool = True
    """Read numbers, prices, times, URLs and markdown as a person would (the worker's text
    normalization); False sends the text to the engine as written."""

    def __post_init__(self) -> None:
        if not isinstance(self.voice, str) or self.voice != self.voice.strip():
            raise ValueError(f"voice must be a voice name without spaces around it: {self.voice!r}")
        if not (isinstance(self.speed, int | float) and MIN_SPEED <= self.speed <= MAX_SPEED):
            raise ValueError(
                f"speed {self.speed!r} is out of range: use {MIN_SPEED} to {MAX_SPEED}"
            )
        lead = self.max_lead_seconds
        if not (isinstance(lead, int | float) and math.isfinite(lead) and lead >= 0):
            raise ValueError(f"max_lead_seconds must be 0 or more seconds, got {lead!r}")


@dataclass(frozen=True)
class TLSOptions:
    """TLS on the gRPC channels to the workers: the CA that signed their certificates (None:
    the system's roots), and a client certificate with its key for workers that require one
    (mutual TLS)."""

    ca_file: Path | None = None
    cert_file: Path | None = None
    key_file: Path | None = None

    def __post_init__(self) -> None:
        for name in ("ca_file", "cert_file", "key_file"):
            path = getattr(self, name)
            if path is not None and not Path(path).is_file():
                raise ValueError(f"tls_{name} {str(path)!r} is not a readable file")
        if (self.cert_file is None) != (self.key_file is None):
            raise ValueError("tls_cert_file and tls_key_file go together: set both or neither")

    def credentials(self) -> grpc.ChannelCredentials:
        def read(path: Path | None) -> bytes | None:
            return Path(path).read_bytes() if path is not None else None

        return grpc.ssl_channel_credentials(
            root_certificates=read(self.ca_file),
            private_key=read(self.key_file),
            certificate_chain=read(self.cert_file),
        )


@dataclass(frozen=True)
class FleetOptions:
    """Where the workers are: the orchestrator's store (a Redis URL: the workers heartbeat
    into it) or a list of worker addresses (polled for their capabilities, as the
    orchestrator's embedded mode does). Exactly one of the two."""

    workers: tuple[str, ...] = ()
    redis_url: str | None = None
    tls: TLSOptions | None = None
    refresh_seconds: float = 1.0
    """How often the plugin re-reads the registry (or polls the listed workers): a worker or
    voice that joins is used within about this long. A polled worker that stops answering
    stays listed for 5 refreshes (5 s at least); failover skips it meanwhile."""
    max_attempts: int = 3
    """Workers tried for one utterance before its first audio."""

    def __post_init__(self) -> None:
        if bool(self.workers) == bool(self.redis_url):
            raise ValueError(
                "give the workers' addresses (workers=[...] or VOICEORCH_TTS_WORKERS) or the "
                "orchestrator's store (redis_url=... or VOICEORCH_TTS_REDIS_URL), not "
                + ("both" if self.workers else "neither")
            )
        for address in self.workers:
            match = _ADDRESS.match(address) if isinstance(address, str) else None
            if match is None or not 1 <= int(match.group(1)) <= 65535:
                raise ValueError(f"worker address {address!r} is not host:port")
        if self.redis_url and urlsplit(self.redis_url).scheme not in _REDIS_SCHEMES:
            # The URL may hold a password: name the scheme only.
            scheme = urlsplit(self.redis_url).scheme
            raise ValueError(
                f"redis_url must be a redis://, rediss:// or unix:// URL, not {scheme!r}"
            )
        if not (math.isfinite(self.refresh_seconds) and self.refresh_seconds > 0):
            raise ValueError(f"refresh_seconds must be positive, got {self.refresh_seconds!r}")
        if self.max_attempts < 1:
            raise ValueError(f"max_attempts must be at least 1, got {self.max_attempts!r}")


def check_sample_rate(sample_rate: int) -> int:
    if sample_rate not in SAMPLE_RATES:
        raise ValueError(f"sample_rate {sample_rate!r} is not one of {SAMPLE_RATES}")
    return sample_rate
