"""Builds and runs the worker: gRPC server, health service, heartbeat, metrics, drain."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from concurrent.futures import ThreadPoolExecutor

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from prometheus_client import start_http_server

from fleet.aio import cancel_and_wait
from fleet.backends import open_store
from fleet.process import serve_until_signalled
from fleet.workers import remove_worker
from tts_rpc.v1 import tts_pb2_grpc
from tts_worker import metrics
from tts_worker.admission import Admission
from tts_worker.engines import create_engine
from tts_worker.heartbeat import heartbeat_forever
from tts_worker.scheduler import Scheduler, SchedulerOptions
from tts_worker.service import TextToSpeechService
from tts_worker.settings import WorkerSettings
from tts_worker.utterance import Limits

log = logging.getLogger(__name__)

SERVICE_NAME = "tts.v1.TextToSpeech"
MAX_MESSAGE_BYTES = 4 * 1024 * 1024


class Worker:
    """One worker process. `start()` binds and serves; `drain()` stops it gracefully."""

    def __init__(self, settings: WorkerSettings) -> None:
        self.settings = settings
        self.worker_id = settings.resolved_worker_id()
        self.address = settings.resolved_advertise_address()
        self.executor = ThreadPoolExecutor(
            settings.inference_threads, thread_name_prefix="inference"
        )
        self.server = grpc.aio.server(
            options=[
                ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
                ("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
                ("grpc.keepalive_permit_without_calls", 1),
                ("grpc.http2.min_ping_interval_without_data_ms", 5000),
            ]
        )
        # grpc_health ships an asyncio servicer that its type stubs do not know about.
        self.health = health.aio.HealthServicer()  # type: ignore[attr-defined]
        self.service: TextToSpeechService | None = None
        self.port = 0
        self._tasks: list[asyncio.Task[None]] = []
        self._store = open_store(
            settings.redis_url.get_secret_value() if settings.redis_url else None
        )

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        # Loading a voice blocks for a few hundred ms: keep it off the event loop.
        engine = await loop.run_in_executor(self.executor, create_engine, self.settings)
        s = self.settings
        slack = metrics.CHUNK_SLACK_SECONDS.labels(engine.name)
        scheduler = Scheduler(
            self.executor,
            SchedulerOptions(
                parallelism=s.inference_threads,
                first_audio_target_seconds=s.first_audio_target_seconds,
                min_chunk_seconds=s.min_chunk_seconds,
                chunk_growth=s.chunk_growth,
                max_utilization=s.max_utilization,
            ),
            on_slack=slack.observe,
        )
        metrics.watch_capacity(engine.name, lambda: scheduler.capacity)
        self.service = TextToSpeechService(
            engine,
            self.executor,
            scheduler,
            Admission(s.max_concurrent_streams, s.max_queued_streams),
            Limits(
                s.min_clause_chars,
                s.max_segment_chars,
                s.max_text_chunk_chars,
                s.max_utterance_chars,
                s.first_segment_words,
            ),
            self.worker_id,
        )
        tts_pb2_grpc.add_TextToSpeechServicer_to_server(self.service, self.server)
        health_pb2_grpc.add_HealthServicer_to_server(self.health, self.server)
        credentials = server_credentials(s)
        bind = f"{s.host}:{s.port}"
        if credentials is None:
            self.port = self.server.add_insecure_port(bind)
        else:
            self.port = self.server.add_secure_port(bind, credentials)
        if self.port == 0:
            raise OSError(f"cannot bind gRPC to {s.host}:{s.port}")
        await self.server.start()
        for name in ("", SERVICE_NAME):
            await self.health.set(name, health_pb2.HealthCheckResponse.SERVING)
        if s.metrics_port:
            start_http_server(s.metrics_port, addr=s.host)
        if self._store.kind != "memory":
            self._tasks.append(
                asyncio.create_task(
                    heartbeat_forever(
                        self._store,
                        self.service.capabilities,
                        self.address,
                        s.heartbeat_interval_seconds,
                        s.registry_ttl_seconds,
                    ),
                    name="heartbeat",
                )
            )
        log.info(
            "worker ready",
            extra={
                "worker_id": self.worker_id,
                "address": self.address,
                "engine": engine.name,
                "port": self.port,
                "tls": credentials is not None,
            },
        )

    async def drain(self) -> None:
        """Refuse new streams, let active ones finish within the grace period, then stop."""
        log.info("draining", extra={"grace_seconds": self.settings.drain_grace_seconds})
        if self.service is not None:
            self.service.draining = True
        for name in ("", SERVICE_NAME):
            await self.health.set(name, health_pb2.HealthCheckResponse.NOT_SERVING)
        # Stay reachable while streams finish: health answers NOT_SERVING, new streams get
        # UNAVAILABLE, and the heartbeat says "draining" so orchestrators route elsewhere.
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.settings.drain_grace_seconds
        if self.service is not None:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(
                    self.service.admission.wait_idle(), self.settings.drain_grace_seconds
                )
        await self.server.stop(max(0.0, deadline - loop.time()))
        await cancel_and_wait(*self._tasks)
        with contextlib.suppress(Exception):
            await remove_worker(self._store, self.worker_id)
        await self._store.aclose()
        self.executor.shutdown(wait=False, cancel_futures=True)
        log.info("stopped")


def server_credentials(settings: WorkerSettings) -> grpc.ServerCredentials | None:
    """TLS for the gRPC port when a certificate is configured (client certificates required
    when a client CA is); None for plaintext."""
    if settings.tls_cert_file is None or settings.tls_key_file is None:
        return None
    client_ca = settings.tls_client_ca_file
    return grpc.ssl_server_credentials(
        [(settings.tls_key_file.read_bytes(), settings.tls_cert_file.read_bytes())],
        root_certificates=client_ca.read_bytes() if client_ca else None,
        require_client_auth=client_ca is not None,
    )


async def serve(settings: WorkerSettings) -> None:
    """Run until SIGTERM or SIGINT, then drain and return."""
    await serve_until_signalled(Worker(settings))
