"""Build and run a real ``livekit-server`` for integration tests (stdlib only).

``ensure_livekit_server_binary()`` runs ``scripts/livekit_server.sh`` (which builds the pinned
release once into a cache outside the repository) and ``LiveKitServer`` runs it on free loopback
ports::

    with LiveKitServer() as lk:
        ...  # lk.url, lk.http_url, lk.api_key, lk.api_secret
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path
from types import TracebackType

REPO_ROOT = Path(__file__).resolve().parent.parent
BUILD_SCRIPT = REPO_ROOT / "scripts" / "livekit_server.sh"
BUILD_TIMEOUT_S = 1800.0
STARTUP_TIMEOUT_S = 30.0
STOP_GRACE_S = 5.0
HOST = "127.0.0.1"


def _tail(text: str, lines: int = 40) -> str:
    """Return the last ``lines`` lines of ``text``."""
    return "\n".join(text.strip().splitlines()[-lines:])


def _kill_group(proc: subprocess.Popen[str] | subprocess.Popen[bytes]) -> None:
    """SIGKILL the process group led by ``proc`` (started with ``start_new_session``)."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()


def ensure_livekit_server_binary() -> Path:
    """Build the pinned livekit-server if needed and return the binary's absolute path."""
    try:
        proc = subprocess.Popen(
            [str(BUILD_SCRIPT)],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            start_new_session=True,  # so a timeout can also stop the `go build` children
        )
    except OSError as exc:
        raise RuntimeError(f"cannot run {BUILD_SCRIPT}: {exc}") from exc
    try:
        out, err = proc.communicate(timeout=BUILD_TIMEOUT_S)
    except subprocess.TimeoutExpired as exc:
        _kill_group(proc)
        out, err = proc.communicate()
        raise RuntimeError(
            f"{BUILD_SCRIPT} timed out after {BUILD_TIMEOUT_S:.0f} s:\n{_tail(err)}"
        ) from exc
    except BaseException:
        _kill_group(proc)
        raise
    if proc.returncode != 0:
        raise RuntimeError(f"{BUILD_SCRIPT} failed (exit {proc.returncode}):\n{_tail(err)}")
    lines = out.strip().splitlines()
    path = Path(lines[-1]) if lines else None
    if path is None or not path.is_file() or not os.access(path, os.X_OK):
        raise RuntimeError(f"{BUILD_SCRIPT} printed no usable binary path: {out!r}\n{_tail(err)}")
    return path


def free_port(kind: socket.SocketKind = socket.SOCK_STREAM) -> int:
    """Return a port on 127.0.0.1 that is free right now for ``kind`` (TCP or UDP)."""
    with socket.socket(socket.AF_INET, kind) as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


class LiveKitServer:
    """Run ``livekit-server --dev`` on loopback ports for the duration of a ``with`` block.

    Ports are set through a temporary YAML config (the CLI only has ``--udp-port``): ``port``
    (HTTP/WebSocket signalling), ``rtc.tcp_port`` (ICE/TCP) and ``rtc.udp_port`` (ICE/UDP mux).
    Any port left as ``None`` is picked free. Note: upstream binds ICE/TCP on all interfaces.
    """

    def __init__(
        self,
        binary: Path | None = None,
        *,
        port: int | None = None,
        tcp_port: int | None = None,
        udp_port: int | None = None,
        api_key: str = "devkey",
        api_secret: str = "secret",
        startup_timeout_s: float = STARTUP_TIMEOUT_S,
    ) -> None:
        self.binary = binary
        self.port = port if port is not None else free_port()
        self.tcp_port = tcp_port if tcp_port is not None else free_port()
        while self.tcp_port == self.port:
            self.tcp_port = free_port()
        self.udp_port = udp_port if udp_port is not None else free_port(socket.SOCK_DGRAM)
        self.api_key = api_key
        self.api_secret = api_secret
        self.startup_timeout_s = startup_timeout_s
        self.url = f"ws://{HOST}:{self.port}"
        self.http_url = f"http://{HOST}:{self.port}"
        self._proc: subprocess.Popen[bytes] | None = None
        self._tmpdir: Path | None = None
        self.log_path: Path | None = None

    def orchestrator_env(self) -> dict[str, str]:
        """The environment an orchestrator process needs to put its agents in this server."""
        return {
            "ORCH_LIVEKIT_URL": self.url,
            "ORCH_LIVEKIT_API_KEY": self.api_key,
            "ORCH_LIVEKIT_API_SECRET": self.api_secret,
        }

    def _config_yaml(self) -> str:
        """Return the server config: loopback only, fixed ports, one API key."""
        return (
            f"port: {self.port}\n"
            f"bind_addresses: [{HOST}]\n"
            "rtc:\n"
            f"  tcp_port: {self.tcp_port}\n"
            f"  udp_port: {self.udp_port}\n"
            "  use_external_ip: false\n"
            f"  node_ip: {HOST}\n"
            "  enable_loopback_candidate: true\n"
            "  ips:\n"
            f"    includes: [{HOST}/32]\n"
            "keys:\n"
            f"  {self.api_key}: {self.api_secret}\n"
        )

    def log_tail(self, lines: int = 40) -> str:
        """Return the last ``lines`` lines of the server log (empty if there is none)."""
        if self.log_path is None or not self.log_path.exists():
            return ""
        return _tail(self.log_path.read_text(errors="replace"), lines)

    def _answers(self) -> bool:
        """Return True once the signalling port answers HTTP."""
        try:
            with urllib.request.urlopen(self.http_url + "/", timeout=1.0) as resp:
                status: int = resp.status
                return 200 <= status < 500
        except urllib.error.HTTPError as exc:
            return exc.code < 500
        except (urllib.error.URLError, OSError):
            return False

    def __enter__(self) -> LiveKitServer:
        try:
            self._start()
        except BaseException:
            self._stop()
            raise
        return self

    def _start(self) -> None:
        """Start the server and wait (bounded) until HTTP answers."""
        binary = self.binary if self.binary is not None else ensure_livekit_server_binary()
        self._tmpdir = Path(tempfile.mkdtemp(prefix="livekit-server-"))
        config = self._tmpdir / "livekit.yaml"
        config.write_text(self._config_yaml())
        self.log_path = self._tmpdir / "livekit-server.log"
        cmd = [str(binary), "--dev", "--config", str(config), "--bind", HOST]
        with self.log_path.open("wb") as log:
            self._proc = subprocess.Popen(
                cmd,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        deadline = time.monotonic() + self.startup_timeout_s
        while not self._answers():
            # The binary prints config/listen errors and may still exit 0: any exit is a failure.
            if self._proc.poll() is not None:
                raise RuntimeError(
                    f"livekit-server exited ({self._proc.returncode}) during startup:\n"
                    f"{self.log_tail()}"
                )
            if time.monotonic() > deadline:
                raise RuntimeError(
                    f"livekit-server did not answer on {self.http_url} within "
                    f"{self.startup_timeout_s:.0f} s:\n{self.log_tail()}"
                )
            time.sleep(0.1)
        # Upstream ignores a SIGTERM that arrives in the ~100 ms between listening and
        # marking itself running; let that window pass so a quick exit stays graceful.
        time.sleep(0.3)

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._stop()

    def _stop(self) -> None:
        """SIGTERM the server, SIGKILL it after the grace period, and remove temp files."""
        proc, self._proc = self._proc, None
        if proc is not None:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                try:
                    proc.wait(timeout=STOP_GRACE_S)
                except subprocess.TimeoutExpired:
                    _kill_group(proc)
            proc.wait()
        if self._tmpdir is not None:
            shutil.rmtree(self._tmpdir, ignore_errors=True)
            self._tmpdir = None
