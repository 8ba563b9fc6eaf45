"""The plugin finds its workers as the orchestrator does (the store's registry, or polled
addresses), sees voices that join later, switches voice between utterances, and speaks TLS
(with client certificates) to workers that require it."""

from __future__ import annotations

import asyncio
import subprocess
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import grpc
import numpy as np
import pytest
from livekit.agents import APIConnectionError, APIStatusError

from livekit_plugin import WorkerTTS
from tests.audio_checks import Pcm, transcribe, word_error_rate
from tests.livekit_plugin.conftest import SLOW_LENGTH_SCALE, SLOW_VOICE
from tests.processes import WorkerProcess
from tts_worker import healthcheck

TEXT = "Seven happy children were singing loudly in the garden behind the old school."


async def spoken(plugin: WorkerTTS, text: str = TEXT) -> Pcm:
    frame = await plugin.synthesize(text).collect()
    return Pcm(np.frombuffer(frame.data, dtype=np.int16), frame.sample_rate)


@pytest.fixture
async def redis_plugin(
    fleet_redis_url: str, worker_pair: list[WorkerProcess]
) -> AsyncIterator[WorkerTTS]:
    plugin = WorkerTTS(redis_url=fleet_redis_url)
    yield plugin
    await plugin.aclose()


async def test_the_store_lists_the_fleet(redis_plugin: WorkerTTS) -> None:
    """Given only the orchestrator's store, the plugin speaks through the workers that
    heartbeat there, and refuses a voice none of them has, naming it."""
    redis_plugin.update_options(voice=SLOW_VOICE)
    await redis_plugin.prewarm()
    assert word_error_rate(TEXT, transcribe(await spoken(redis_plugin))) <= 0.2
    redis_plugin.update_options(voice="en_XX-nobody")
    with pytest.raises(APIStatusError, match="'en_XX-nobody' is not available"):
        await redis_plugin.prewarm()


async def test_update_options_voice_reaches_the_next_utterance(redis_plugin: WorkerTTS) -> None:
    """The second voice is the first one slowed by its own config: after update_options the
    same text comes out that much longer, and still intelligible."""
    normal = await spoken(redis_plugin)
    redis_plugin.update_options(voice=SLOW_VOICE)
    slow = await spoken(redis_plugin)
    # Piper draws durations with a little noise; the config asks for 1.6x.
    assert slow.seconds / normal.seconds > 0.8 * SLOW_LENGTH_SCALE
    assert word_error_rate(TEXT, transcribe(slow)) <= 0.2


async def test_a_voice_that_joins_later_is_accepted(
    piper_worker: WorkerProcess, voices_dir: Path
) -> None:
    """The voice list is the live registry's, not a copy taken at first use: a voice no
    worker had is refused, then accepted once a worker that has it answers."""
    late = WorkerProcess(env={"TTS_WORKER_VOICES_DIR": str(voices_dir)})
    plugin = WorkerTTS(
        workers=[piper_worker.address, late.address],
        voice=SLOW_VOICE,
        registry_refresh_seconds=0.2,
    )
    try:
        with pytest.raises(APIStatusError, match=SLOW_VOICE):
            await plugin.prewarm()
        # Started from a thread: start() waits for the worker to serve, and on the event
        # loop that wait would stop the plugin's polls (the first worker's record would
        # lapse), which no real deployment does to a running agent.
        await asyncio.to_thread(late.start)

        async def accepted() -> bool:
            try:
                await plugin.prewarm()
            except APIStatusError:
                return False
            return True

        deadline = time.monotonic() + 10
        while not await accepted():
            assert time.monotonic() < deadline, "the new voice was never accepted"
            await asyncio.sleep(0.1)  # a bounded poll: the registry refreshes every 0.2 s
        assert word_error_rate(TEXT, transcribe(await spoken(plugin))) <= 0.2
    finally:
        await plugin.aclose()
        late.stop()


# -- TLS ---------------------------------------------------------------------------------


def self_signed(folder: Path) -> tuple[Path, Path]:
    """A certificate for localhost and 127.0.0.1 that is its own CA, and its key."""
    key, cert = folder / "worker.key", folder / "worker.pem"
    subprocess.run(
        [
            *("openssl", "req", "-x509", "-newkey", "ec"),
            *("-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-days", "1"),
            *("-keyout", str(key), "-out", str(cert), "-subj", "/CN=localhost"),
            *("-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1"),
        ],
        check=True,
        capture_output=True,
    )
    return cert, key


@pytest.fixture(scope="module")
def tls_worker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[WorkerProcess]:
    """A worker that speaks only TLS and requires a client certificate signed by its CA
    (here: its own self-signed certificate)."""
    cert, key = self_signed(tmp_path_factory.mktemp("tls"))
    worker = WorkerProcess(
        env={
            "TTS_WORKER_TLS_CERT_FILE": str(cert),
            "TTS_WORKER_TLS_KEY_FILE": str(key),
            "TTS_WORKER_TLS_CLIENT_CA_FILE": str(cert),
        }
    )
    worker.start(wait=False)
    try:
        # WorkerProcess waits over plaintext: wait here over TLS, as a client it accepts.
        own = grpc.ssl_channel_credentials(cert.read_bytes(), key.read_bytes(), cert.read_bytes())
        deadline = time.monotonic() + 60
        while not healthcheck.check(worker.address, credentials=own)[0]:
            assert worker.proc is not None and worker.proc.poll() is None, worker.log()
            assert time.monotonic() < deadline, f"TLS worker not serving:\n{worker.log()}"
            time.sleep(0.1)
        yield worker
    finally:
        worker.stop()


def tls_files(worker: WorkerProcess) -> tuple[Path, Path]:
    return Path(worker.env["TTS_WORKER_TLS_CERT_FILE"]), Path(worker.env["TTS_WORKER_TLS_KEY_FILE"])


async def test_the_container_probe_speaks_the_workers_tls(
    tls_worker: WorkerProcess, monkeypatch: pytest.MonkeyPatch
) -> None:
    """From the worker's own TLS variables the probe reports it serving (trusting its
    certificate, presenting it as the client's); over plaintext it gets no answer."""
    for name, value in tls_worker.env.items():
        monkeypatch.setenv(name, value)
    assert healthcheck.main([tls_worker.address]) == 0
    assert not healthcheck.check(tls_worker.address)[0]


async def test_tls_with_a_client_certificate_speaks(tls_worker: WorkerProcess) -> None:
    cert, key = tls_files(tls_worker)
    plugin = WorkerTTS(
        workers=[tls_worker.address], tls_ca_file=cert, tls_cert_file=cert, tls_key_file=key
    )
    try:
        await plugin.prewarm()
        assert word_error_rate(TEXT, transcribe(await spoken(plugin))) <= 0.2
    finally:
        await plugin.aclose()


@pytest.mark.parametrize("client", ["plaintext", "no client certificate", "system CAs"])
async def test_a_client_without_the_right_credentials_gets_no_worker(
    tls_worker: WorkerProcess, client: str
) -> None:
    cert, _ = tls_files(tls_worker)
    arguments: dict[str, object] = {
        "plaintext": {},
        "no client certificate": {"tls_ca_file": cert},
        "system CAs": {"tls": True},
    }[client]  # type: ignore[assignment]
    plugin = WorkerTTS(workers=[tls_worker.address], **arguments)  # type: ignore[arg-type]
    try:
        with pytest.raises(APIConnectionError, match="no TTS worker"):
            await plugin.prewarm()
    finally:
        await plugin.aclose()
