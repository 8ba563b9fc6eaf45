"""Configuration of the orchestrator. Every field is an environment variable `ORCH_<NAME>`."""

from __future__ import annotations

from pydantic import AliasChoices, Field, SecretStr
from pydantic_settings import SettingsConfigDict

from fleet.logs import LogSettings


class OrchestratorSettings(LogSettings):
    """Settings of one orchestrator replica; defaults suit the embedded single-node mode."""

    model_config = SettingsConfigDict(
        env_prefix="ORCH_", extra="ignore", use_attribute_docstrings=True
    )

    host: str = "127.0.0.1"
    """Address of the public API (use 0.0.0.0 in containers)."""
    port: int = Field(default=8080, ge=1, le=65535)
    """Public API port: /synthesize, /v1/audio/speech, /v1/voices."""
    ops_host: str = "127.0.0.1"
    """Address of the ops endpoints."""
    ops_port: int = Field(default=8081, ge=1, le=65535)
    """Ops port: /livez, /readyz (and /metrics)."""
    instance_id: str | None = None
    """Stable name of this replica; defaults to <hostname>-<port>."""

    redis_url: SecretStr | None = Field(
        default=None, validation_alias=AliasChoices("ORCH_REDIS_URL", "REDIS_URL")
    )
    """Redis shared by the fleet. Unset: the in-process single-node store."""
    workers: list[str] = Field(default_factory=lambda: ["127.0.0.1:7001"])
    """Worker addresses polled when there is no Redis (embedded mode); ignored with Redis."""
    registry_refresh_seconds: float = Field(default=0.5, gt=0)
    """How often the cached worker registry is refreshed from the store."""
    registry_ttl_seconds: float = Field(default=5.0, gt=0)
    """Embedded mode: how long a polled worker stays registered after its last answer."""
    default_voice: str | None = None
    """Voice used when a request names none; defaults to the first worker's default voice."""
    voice_aliases: dict[str, str] = Field(default_factory=dict)
    """Extra names for voices, e.g. {"alloy": "en_US-joe-medium"} for OpenAI clients."""

    max_text_chars: int = Field(default=5000, ge=1)
    """Longest text accepted by /synthesize and /v1/audio/speech (longer: 413)."""
    max_body_bytes: int = Field(default=65536, ge=1024)
    """Largest request body accepted (larger: 413)."""
    first_audio_timeout_seconds: float = Field(default=20.0, gt=0)
    """How long to wait for a worker's first frame before trying another worker. A dead
    worker is noticed at once (connection reset); this only guards against a hung one, so
    it is generous: under overload a queued stream must not be given up on."""
    max_attempts: int = Field(default=3, ge=1)
    """Workers tried for one utterance before its first audio (retry on failure)."""

    api_keys: SecretStr | None = None
    """JSON object of API keys and their scopes, e.g. {"<key>": ["synthesize", "sessions"]}.
    Unset: the public API is open (fine on loopback; the production compose file requires
    keys). Keys must be 16+ characters."""
    rate_limit_per_minute: int = Field(default=0, ge=0)
    """Requests a minute allowed per API key (bursts up to the same number); 0 disables."""
    web_page: bool = True
    """Serve the browser page at GET / (and its files under /web/, open without a key)."""
    advertise_url: str | None = None
    """URL other replicas use to reach this one's public API (forwarded session calls);
    defaults to http://<host>:<port>."""
    replica_ttl_seconds: float = Field(default=5.0, gt=0)
    """How long a replica's heartbeat outlives it; its sessions are then marked failed."""

    livekit_url: str = "ws://127.0.0.1:7880"
    """LiveKit server the agent connects to."""
    livekit_public_url: str | None = None
    """LiveKit URL handed to clients with their token; defaults to livekit_url."""
    livekit_api_key: str = "devkey"
    """LiveKit API key (the dev server's key by default; set a real one in production)."""
    livekit_api_secret: SecretStr = SecretStr("secret")
    """LiveKit API secret (the dev server's secret by default; set a real one in production)."""
    livekit_connect_timeout_seconds: float = Field(default=5.0, gt=0)
    """How long joining a room may take before POST /sessions answers 503."""
    livekit_reconnect_grace_seconds: float = Field(default=15.0, gt=0)
    """How long a session may stay cut off from LiveKit (the rtc client retrying) before it
    fails with an error event."""
    user_token_ttl_seconds: int = Field(default=600, ge=10, le=86400)
    """Lifetime of the user token returned by POST /sessions."""
    listener_wait_seconds: float = Field(default=30.0, gt=0)
    """How long an utterance waits for someone to subscribe to the agent's audio."""
    playout_queue_ms: int = Field(default=100, ge=20, le=1000)
    """Audio buffered inside LiveKit's source; the most that can play after a pause."""
    bargein_min_interruption_seconds: float = Field(default=0.3, gt=0)
    """Voiced user speech (silent gaps left out) at least this long cancels the paused
    utterance; shorter is a false interruption."""
    bargein_false_interruption_silence_seconds: float = Field(default=0.4, gt=0)
    """Silence after a short interruption that resumes the utterance."""
    vad_activation_threshold: float = Field(default=0.5, gt=0, lt=1)
    """Silero speech probability that counts as speech."""
    vad_min_speech_seconds: float = Field(default=0.032, ge=0.032)
    """Speech needed before the VAD reports an onset: one 32 ms Silero window by default, so
    the agent pauses sooner (a false onset costs only a pause and a resume); 0.064 waits for
    two windows."""
    drain_timeout_seconds: float = Field(default=30.0, ge=0)
    """On SIGTERM, how long streams and utterances already under way may finish before the
    process exits (new requests get 503 meanwhile). Give containers a longer stop grace."""
    max_sessions: int = Field(default=100, ge=1)
    """Sessions this replica hosts at once; more get 503."""

    sla_first_audio_seconds: float = Field(default=0.5, gt=0)
    """First audio later than this counts as an SLA violation (voiceorch_sla_violations_total)."""
    metrics_flush_seconds: float = Field(default=1.0, gt=0)
    """How often this replica adds its new metric counts to the store (kept while it is down)."""

    def resolved_instance_id(self) -> str:
        import socket

        return self.instance_id or f"{socket.gethostname()}-{self.port}"
