"""The worker's TLS settings: plaintext unless a certificate and its key are both set, a
half-configured TLS is refused at startup with the variables named, and a client CA turns
on required client certificates. (Served over a real channel: tests/livekit_plugin/test_fleet.)"""

from __future__ import annotations

import os
from pathlib import Path

import grpc
import pytest
from pydantic import ValidationError

from tts_worker.server import server_credentials
from tts_worker.settings import WorkerSettings


@pytest.fixture(autouse=True)
def no_worker_tls_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.startswith("TTS_WORKER_TLS_"):
            monkeypatch.delenv(name)


@pytest.fixture
def pem(tmp_path: Path) -> Path:
    # The settings check only that the files exist; their content is read by grpc later.
    path = tmp_path / "worker.pem"
    path.write_text("-----BEGIN CERTIFICATE-----\n-----END CERTIFICATE-----\n")
    return path


def test_plaintext_by_default() -> None:
    assert server_credentials(WorkerSettings()) is None


@pytest.mark.parametrize(
    ("field", "message"),
    [
        ("tls_cert_file", "tls_cert_file and tls_key_file go together"),
        ("tls_key_file", "tls_cert_file and tls_key_file go together"),
        ("tls_client_ca_file", "tls_client_ca_file needs TLS on"),
    ],
)
def test_half_configured_tls_is_refused(pem: Path, field: str, message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        WorkerSettings(**{field: pem})  # type: ignore[arg-type]


def test_a_missing_certificate_file_is_named(pem: Path, tmp_path: Path) -> None:
    with pytest.raises(ValidationError, match="tls_key_file"):
        WorkerSettings(tls_cert_file=pem, tls_key_file=tmp_path / "absent.key")


def test_variables_turn_tls_on(pem: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TTS_WORKER_TLS_CERT_FILE", str(pem))
    monkeypatch.setenv("TTS_WORKER_TLS_KEY_FILE", str(pem))
    settings = WorkerSettings()
    assert settings.tls_cert_file == pem and settings.tls_key_file == pem
    assert isinstance(server_credentials(settings), grpc.ServerCredentials)
