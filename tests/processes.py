"""Real servers for tests, each started on a free 127.0.0.1 port and always stopped."""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from tts_rpc.v1 import tts_pb2, tts_pb2_grpc

ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _stop(proc: subprocess.Popen[bytes], timeout: float = 10.0) -> int:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    return proc.returncode


def _log_tail(path: Path, chars: int = 3000) -> str:
    with contextlib.suppress(OSError):
        return path.read_text(errors="replace")[-chars:]
    return ""


@dataclass
class RedisServer:
    """redis-server from Debian, no persistence, loopback only."""

    port: int = field(default_factory=free_port)
    proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> RedisServer:
        binary = shutil.which("redis-server")
        if binary is None:
            raise RuntimeError("redis-server is not installed: run scripts/system_deps.sh")
        self.proc = subprocess.Popen(
            [
                binary,
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--protected-mode",
                "yes",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            with (
                contextlib.suppress(OSError),
                socket.create_connection(("127.0.0.1", self.port), 0.2),
            ):
                return self
            time.sleep(0.05)
        self.stop()
        raise RuntimeError("redis-server did not start")

    def stop(self) -> None:
        if self.proc is not None:
            _stop(self.proc)


@dataclass
class WorkerProcess:
    """A real `tts-worker` (Piper) process."""

    env: dict[str, str] = field(default_factory=dict)
    port: int = field(default_factory=free_port)
    metrics_port: int = field(default_factory=free_port)
    proc: subprocess.Popen[bytes] | None = None
    log_path: Path = field(default_factory=lambda: Path(tempfile.mkstemp(suffix=".log")[1]))

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def worker_id(self) -> str:
        return self.env.get("TTS_WORKER_WORKER_ID", f"test-worker-{self.port}")

    def start(self, wait: bool = True) -> WorkerProcess:
        env = {
            **os.environ,
            "TTS_WORKER_PORT": str(self.port),
            "TTS_WORKER_METRICS_PORT": str(self.metrics_port),
            "TTS_WORKER_WORKER_ID": self.worker_id,
            **self.env,
        }
        with self.log_path.open("wb") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "tts_worker"], env=env, cwd=ROOT, stdout=log, stderr=log
            )
        if wait:
            self.wait_serving()
        return self

    def wait_serving(self, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        with grpc.insecure_channel(self.address) as channel:
            stub = health_pb2_grpc.HealthStub(channel)
            while time.monotonic() < deadline:
                assert self.proc is not None
                if self.proc.poll() is not None:
                    raise RuntimeError(f"worker exited early:\n{_log_tail(self.log_path)}")
                with contextlib.suppress(grpc.RpcError):
                    reply = stub.Check(health_pb2.HealthCheckRequest(), timeout=0.5)
                    if reply.status == health_pb2.HealthCheckResponse.SERVING:
                        return
                time.sleep(0.1)
        raise RuntimeError(f"worker not serving after {timeout}s:\n{_log_tail(self.log_path)}")

    async def busy_streams(self, within: float) -> dict[str, int]:
        """Active and queued streams once they have wound down (up to `within` seconds);
        empty when the worker is idle or no longer running."""
        deadline = time.monotonic() + within
        async with grpc.aio.insecure_channel(self.address) as channel:
            stub = tts_pb2_grpc.TextToSpeechStub(channel)
            while True:
                if self.proc is None or self.proc.poll() is not None:
                    return {}
                caps = await stub.GetCapabilities(tts_pb2.GetCapabilitiesRequest(), timeout=5)
                busy = {"active": caps.active_streams, "queued": caps.queued_streams}
                if not any(busy.values()) or time.monotonic() >= deadline:
                    return {k: v for k, v in busy.items() if v}
                await asyncio.sleep(0.1)

    def metric(self, name: str, **labels: str) -> float:
        """One sample of the worker's own /metrics (its metrics port)."""
        import urllib.request

        from prometheus_client.parser import text_string_to_metric_families

        url = f"http://127.0.0.1:{self.metrics_port}/metrics"
        with urllib.request.urlopen(url, timeout=5) as response:
            body = response.read().decode()
        for family in text_string_to_metric_families(body):
            for sample in family.samples:
                if sample.name == name and all(
                    sample.labels.get(k) == v for k, v in labels.items()
                ):
                    return float(sample.value)
        raise AssertionError(f"{name} {labels} is not exported")

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()

    def stop(self) -> int:
        return _stop(self.proc) if self.proc is not None else 0

    def log(self) -> str:
        return _log_tail(self.log_path, 20000)


@contextlib.contextmanager
def running_worker(**env: str) -> Iterator[WorkerProcess]:
    worker = WorkerProcess(env=dict(env))
    try:
        yield worker.start()
    finally:
        worker.stop()


@dataclass
class OrchestratorProcess:
    """A real `voice-orchestrator` process (for signals: SIGTERM drains)."""

    env: dict[str, str] = field(default_factory=dict)
    port: int = field(default_factory=free_port)
    ops_port: int = field(default_factory=free_port)
    proc: subprocess.Popen[bytes] | None = None
    log_path: Path = field(default_factory=lambda: Path(tempfile.mkstemp(suffix=".log")[1]))

    @property
    def api(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def ops(self) -> str:
        return f"http://127.0.0.1:{self.ops_port}"

    def start(self) -> OrchestratorProcess:
        env = {
            **os.environ,
            "ORCH_PORT": str(self.port),
            "ORCH_OPS_PORT": str(self.ops_port),
            **self.env,
        }
        with self.log_path.open("wb") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "orchestrator.cli"],
                env=env,
                cwd=ROOT,
                stdout=log,
                stderr=log,
            )
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"orchestrator exited early:\n{_log_tail(self.log_path)}")
            with contextlib.suppress(OSError):
                import urllib.request

                if urllib.request.urlopen(self.ops + "/readyz", timeout=1).status == 200:
                    return self
            time.sleep(0.1)
        raise RuntimeError(f"orchestrator not ready:\n{_log_tail(self.log_path)}")

    def kill(self) -> None:
        """SIGKILL: the process dies at once, with no drain and no goodbye to the store."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()

    def stop(self) -> int:
        return _stop(self.proc) if self.proc is not None else 0

    def log(self) -> str:
        return _log_tail(self.log_path, 20000)
