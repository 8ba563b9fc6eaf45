"""Prometheus, Alertmanager (Debian packages) and a webhook receiver for the monitoring
tests: each on a free 127.0.0.1 port, with its data in a temporary folder, always stopped."""

from __future__ import annotations

import json
import shutil
import subprocess
import tempfile
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx

from tests.processes import _log_tail, _stop, free_port


def binary(name: str) -> str:
    found = shutil.which(name)
    if found is None:
        raise RuntimeError(f"{name} is not installed: run scripts/system_deps.sh")
    return found


def _wait_ready(url: str, proc: subprocess.Popen[bytes], log: Path, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{url} exited early:\n{_log_tail(log)}")
        try:
            if httpx.get(url, timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise RuntimeError(f"{url} not ready after {timeout}s:\n{_log_tail(log)}")


@dataclass
class PrometheusServer:
    """A real Prometheus with the given configuration (JSON is valid YAML)."""

    config: dict[str, Any]
    rules: dict[str, str] = field(default_factory=dict)  # file name -> text, beside config
    port: int = field(default_factory=free_port)
    folder: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="prom-")))
    proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> PrometheusServer:
        for name, text in self.rules.items():
            (self.folder / name).write_text(text, encoding="utf-8")
        config = self.folder / "prometheus.yml"
        config.write_text(json.dumps(self.config, indent=2), encoding="utf-8")
        log = self.folder / "prometheus.log"
        with log.open("wb") as out:
            self.proc = subprocess.Popen(
                [
                    binary("prometheus"),
                    f"--config.file={config}",
                    f"--storage.tsdb.path={self.folder / 'data'}",
                    f"--web.listen-address=127.0.0.1:{self.port}",
                    "--log.level=warn",
                ],
                stdout=out,
                stderr=out,
            )
        _wait_ready(self.url + "/-/ready", self.proc, log)
        return self

    def stop(self) -> None:
        if self.proc is not None:
            _stop(self.proc)
        shutil.rmtree(self.folder, ignore_errors=True)

    def log(self) -> str:
        return _log_tail(self.folder / "prometheus.log", 5000)


@dataclass
class AlertmanagerServer:
    """A real Alertmanager (clustering off) with the given configuration."""

    config: dict[str, Any]
    port: int = field(default_factory=free_port)
    folder: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="am-")))
    proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> AlertmanagerServer:
        config = self.folder / "alertmanager.yml"
        config.write_text(json.dumps(self.config, indent=2), encoding="utf-8")
        log = self.folder / "alertmanager.log"
        with log.open("wb") as out:
            self.proc = subprocess.Popen(
                [
                    binary("prometheus-alertmanager"),
                    f"--config.file={config}",
                    f"--storage.path={self.folder / 'data'}",
                    f"--web.listen-address=127.0.0.1:{self.port}",
                    "--cluster.listen-address=",
                    "--log.level=warn",
                ],
                stdout=out,
                stderr=out,
            )
        _wait_ready(self.url + "/-/ready", self.proc, log)
        return self

    def stop(self) -> None:
        if self.proc is not None:
            _stop(self.proc)
        shutil.rmtree(self.folder, ignore_errors=True)


class WebhookReceiver:
    """Records every JSON body POSTed to it: stands in for the on-call tool."""

    def __init__(self) -> None:
        self.received: list[dict[str, Any]] = []
        received = self.received

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("content-length", 0)))
                received.append(json.loads(body))
                self.send_response(200)
                self.end_headers()

            def log_message(self, format: str, *args: object) -> None:
                return

        self.server = ThreadingHTTPServer(("127.0.0.1", free_port()), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/alerts"

    def start(self) -> WebhookReceiver:
        self.thread.start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
