"""The plugin's environment variables, `VOICEORCH_TTS_<NAME>`: read once by `WorkerTTS`
for every argument its caller leaves out. Values are checked by the option objects
(`options.py`), with the same messages whether they came from an argument or from here."""

from __future__ import annotations

from pathlib import Path

from pydantic import SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

from livekit_plugin.options import DEFAULT_SAMPLE_RATE


class PluginSettings(BaseSettings):
    """Settings of the LiveKit plugin (`livekit_plugin.WorkerTTS`); constructor arguments of
    the same names win over them."""

    model_config = SettingsConfigDict(
        env_prefix="VOICEORCH_TTS_", extra="ignore", use_attribute_docstrings=True
    )

    workers: list[str] = []
    """Worker addresses (host:port) to poll for their voices and load, as the orchestrator's
    embedded mode does. Set this or `redis_url`."""
    redis_url: SecretStr | None = None
    """The orchestrator's store (Redis), where the workers heartbeat: the plugin uses every
    worker registered there. Set this or `workers`."""
    voice: str = ""
    """Voice to speak with; empty: the fleet's default voice."""
    speed: float = 1.0
    """Speaking rate relative to the voice's own pace, 0.25 to 4.0."""
    normalize: bool = True
    """Read numbers, prices, times, URLs and markdown as a person would; false sends the text
    to the engine as written."""
    sample_rate: int = DEFAULT_SAMPLE_RATE
    """Output rate in Hz (8000, 16000, 22050, 24000, 44100 or 48000). 24000 is what
    AgentSession's room output publishes, so nothing is resampled."""
    max_lead_seconds: float = 3.0
    """How far a streamed utterance may be synthesized ahead of playback before the worker
    is paused (resumed when half has played); 0 turns pacing off."""
    tls: bool = False
    """Speak TLS to the workers, trusting the system's CAs unless `tls_ca_file` is set."""
    tls_ca_file: Path | None = None
    """PEM CA bundle that signed the workers' certificates (turns TLS on)."""
    tls_cert_file: Path | None = None
    """PEM client certificate, for workers that require one (mutual TLS)."""
    tls_key_file: Path | None = None
    """PEM private key of `tls_cert_file`."""
    registry_refresh_seconds: float = 1.0
    """How often the registry is re-read (or the workers polled): a worker or voice that
    joins is used within about this long. A polled worker that stops answering stays listed
    for 5 refreshes (5 s at least); failover skips it meanwhile."""
    max_attempts: int = 3
    """Workers tried for one utterance before its first audio."""
