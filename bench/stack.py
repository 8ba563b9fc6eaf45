"""Starts the real stack for a benchmark: one Piper worker and the orchestrator, as the
processes `make run` starts, on free loopback ports."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from tests.livekit_server import LiveKitServer
from tests.processes import WorkerProcess, free_port

ROOT = Path(__file__).resolve().parent.parent


@dataclass
class Stack:
    worker: WorkerProcess
    api_url: str
    ops_url: str
    orchestrator: subprocess.Popen[bytes]
    worker_ready_seconds: float = 0.0
    """worker process start -> gRPC health SERVING"""
    orchestrator_ready_seconds: float = 0.0
    """orchestrator process start -> /readyz 200 (the worker already serving)"""


@contextmanager
def running_stack(orch_env: dict[str, str] | None = None, **worker_env: str) -> Iterator[Stack]:
    started = time.perf_counter()
    worker = WorkerProcess(env=dict(worker_env)).start()
    worker_ready = time.perf_counter() - started
    port, ops_port = free_port(), free_port()
    env = {
        **os.environ,
        "ORCH_PORT": str(port),
        "ORCH_OPS_PORT": str(ops_port),
        "ORCH_WORKERS": f'["{worker.address}"]',
        "ORCH_LOG_LEVEL": "warning",
        **(orch_env or {}),
    }
    started = time.perf_counter()
    orch = subprocess.Popen(
        [sys.executable, "-m", "orchestrator.cli"],
        env=env,
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    stack = Stack(
        worker,
        f"http://127.0.0.1:{port}",
        f"http://127.0.0.1:{ops_port}",
        orch,
        worker_ready_seconds=worker_ready,
    )
    try:
        wait_ready(stack.ops_url + "/readyz")
        stack.orchestrator_ready_seconds = time.perf_counter() - started
        yield stack
    finally:
        orch.terminate()
        orch.wait(10)
        worker.stop()


def wait_ready(url: str, timeout: float = 60.0) -> float:
    """Poll until the URL answers 200; return the seconds it took."""
    started = time.perf_counter()
    while time.perf_counter() - started < timeout:
        try:
            if urllib.request.urlopen(url, timeout=1).status == 200:
                return time.perf_counter() - started
        except OSError:
            pass
        time.sleep(0.02)
    raise RuntimeError(f"{url} not ready after {timeout}s")


def livekit_env(lk: LiveKitServer) -> dict[str, str]:
    """The orchestrator settings that point it at a running livekit-server."""
    return {
        "ORCH_LIVEKIT_URL": lk.url,
        "ORCH_LIVEKIT_API_KEY": lk.api_key,
        "ORCH_LIVEKIT_API_SECRET": lk.api_secret,
    }
