"""The plugin checks every argument and environment variable when it is built: a bad one is
refused at once with its name, and left-out arguments come from VOICEORCH_TTS_*."""

from __future__ import annotations

import math
import os
from pathlib import Path

import pytest

from livekit_plugin import TTSOptions, WorkerTTS
from livekit_plugin.options import DEFAULT_SAMPLE_RATE

WORKERS = ["127.0.0.1:7001"]


@pytest.fixture(autouse=True)
def no_plugin_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """Each test sets the plugin's variables it means to; none leak in from the machine."""
    for name in list(os.environ):
        if name.startswith("VOICEORCH_TTS_"):
            monkeypatch.delenv(name)


@pytest.mark.parametrize(
    ("arguments", "named"),
    [
        ({"sample_rate": 44000}, "sample_rate 44000"),
        ({"speed": 0.1}, "speed 0.1"),
        ({"speed": 4.5}, "speed 4.5"),
        ({"speed": math.nan}, "speed nan"),
        ({"voice": " en_US-joe-medium"}, "voice"),
        ({"max_lead_seconds": -1.0}, "max_lead_seconds"),
        ({"max_attempts": 0}, "max_attempts"),
        ({"registry_refresh_seconds": 0.0}, "refresh_seconds"),
        ({"workers": ["tts-worker"]}, "'tts-worker' is not host:port"),
        ({"workers": ["tts-worker:99999"]}, "'tts-worker:99999' is not host:port"),
        ({"tls_ca_file": "/nonexistent/ca.pem"}, "tls_ca_file '/nonexistent/ca.pem'"),
    ],
)
def test_a_bad_argument_is_refused_by_the_constructor(
    arguments: dict[str, object], named: str
) -> None:
    with pytest.raises(ValueError, match=named):
        WorkerTTS(**{"workers": WORKERS, **arguments})  # type: ignore[arg-type]


def test_the_fleet_is_named_once() -> None:
    """Addresses or the store, not both and not neither: either way the message says how."""
    with pytest.raises(ValueError, match="not neither"):
        WorkerTTS()
    with pytest.raises(ValueError, match="not both"):
        WorkerTTS(workers=WORKERS, redis_url="redis://127.0.0.1:6379/0")


def test_a_store_url_that_is_not_redis_is_refused_without_echoing_it() -> None:
    with pytest.raises(ValueError, match="'http'") as caught:
        WorkerTTS(redis_url="http://user:secret@127.0.0.1:6379")
    assert "secret" not in str(caught.value)


def test_a_client_certificate_needs_its_key(tmp_path: Path) -> None:
    cert = tmp_path / "client.pem"
    cert.write_text("not checked here")
    with pytest.raises(ValueError, match="tls_cert_file and tls_key_file go together"):
        WorkerTTS(workers=WORKERS, tls_cert_file=cert)


def test_defaults_match_roomio_and_the_voice_is_the_fleets() -> None:
    plugin = WorkerTTS(workers=WORKERS)
    assert plugin.sample_rate == DEFAULT_SAMPLE_RATE == 24000
    assert plugin.options == TTSOptions(voice="", speed=1.0, max_lead_seconds=3.0)
    assert plugin.capabilities.streaming and plugin.capabilities.aligned_transcript


def test_left_out_arguments_come_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VOICEORCH_TTS_WORKERS", '["10.0.0.5:7001", "10.0.0.6:7001"]')
    monkeypatch.setenv("VOICEORCH_TTS_VOICE", "en_US-joe-medium")
    monkeypatch.setenv("VOICEORCH_TTS_SPEED", "1.25")
    monkeypatch.setenv("VOICEORCH_TTS_SAMPLE_RATE", "48000")
    plugin = WorkerTTS()
    assert plugin.options.voice == "en_US-joe-medium" and plugin.options.speed == 1.25
    assert plugin.sample_rate == 48000
    # An argument wins over its variable.
    assert WorkerTTS(speed=2.0).options.speed == 2.0


def test_a_bad_environment_value_is_refused_with_its_value(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("VOICEORCH_TTS_REDIS_URL", "redis://127.0.0.1:6379/0")
    monkeypatch.setenv("VOICEORCH_TTS_SAMPLE_RATE", "96000")
    with pytest.raises(ValueError, match="sample_rate 96000"):
        WorkerTTS()
    monkeypatch.setenv("VOICEORCH_TTS_SAMPLE_RATE", "fast")
    with pytest.raises(ValueError, match="sample_rate"):
        WorkerTTS()


def test_update_options_checks_and_keeps_the_old_options_on_error() -> None:
    plugin = WorkerTTS(workers=WORKERS, voice="en_US-joe-medium")
    plugin.update_options(speed=1.5)
    assert plugin.options == TTSOptions(voice="en_US-joe-medium", speed=1.5)
    with pytest.raises(ValueError, match="speed 9"):
        plugin.update_options(voice="other", speed=9)
    assert plugin.options == TTSOptions(voice="en_US-joe-medium", speed=1.5)
    plugin.update_options(voice="other")
    assert plugin.options.voice == "other" and plugin.model == "other"
