"""Assembles the orchestrator: its services, the public app and the ops app."""

from __future__ import annotations

from dataclasses import dataclass

from fastapi import FastAPI

from fleet.store import Store, open_store
from orchestrator.api.errors import install_error_handlers
from orchestrator.api.routes import router
from orchestrator.api.serving import SynthesisService
from orchestrator.api.session_routes import router as session_router
from orchestrator.auth import AuthMiddleware, parse_api_keys
from orchestrator.body_limit import BodyLimitMiddleware
from orchestrator.fleet_metrics import FleetMetrics, RequestMetricsMiddleware
from orchestrator.ops import create_ops_app
from orchestrator.registry import WorkerRegistry
from orchestrator.session_manager import SessionManager
from orchestrator.settings import OrchestratorSettings
from orchestrator.worker_channels import WorkerChannels


@dataclass
class Services:
    """Everything the apps share; started before and stopped after the HTTP servers."""

    settings: OrchestratorSettings
    store: Store
    channels: WorkerChannels
    registry: WorkerRegistry
    synthesis: SynthesisService
    sessions: SessionManager
    metrics: FleetMetrics

    @classmethod
    def create(cls, settings: OrchestratorSettings) -> Services:
        redis_url = settings.redis_url.get_secret_value() if settings.redis_url else None
        store = open_store(redis_url)
        channels = WorkerChannels()
        registry = WorkerRegistry(
            store,
            channels,
            refresh_seconds=settings.registry_refresh_seconds,
            static_workers=None if redis_url else settings.workers,
            static_ttl_seconds=settings.registry_ttl_seconds,
            default_voice=settings.default_voice,
        )
        metrics = FleetMetrics(
            store,
            settings.resolved_instance_id(),
            sla_first_audio_seconds=settings.sla_first_audio_seconds,
            flush_seconds=settings.metrics_flush_seconds,
            registry=registry,
        )
        return cls(
            settings,
            store,
            channels,
            registry,
            SynthesisService(settings, registry, channels, metrics=metrics),
            SessionManager(settings, store, registry, channels, metrics),
            metrics=metrics,
        )

    async def start(self) -> None:
        await self.metrics.start()
        await self.registry.start()
        await self.sessions.start()

    async def aclose(self) -> None:
        await self.sessions.aclose()
        await self.registry.aclose()
        await self.channels.aclose()
        await self.metrics.aclose()
        await self.store.aclose()


def create_public_app(services: Services) -> FastAPI:
    app = FastAPI(
        title="voice-orchestrator",
        summary="Streamed speech synthesis over HTTP and into LiveKit rooms.",
        version="0.1.0",
    )
    app.state.synthesis = services.synthesis
    app.state.sessions = services.sessions
    app.include_router(router)
    app.include_router(session_router)
    install_error_handlers(app)
    app.add_middleware(BodyLimitMiddleware, max_bytes=services.settings.max_body_bytes)
    settings = services.settings
    keys = parse_api_keys(settings.api_keys.get_secret_value()) if settings.api_keys else []
    # Before the body is read: a caller without a valid key learns nothing else.
    app.add_middleware(AuthMiddleware, keys=keys, rate_per_minute=settings.rate_limit_per_minute)
    # Outermost: counts every request, the body limit's 413s included.
    app.add_middleware(RequestMetricsMiddleware, metrics=services.metrics)
    return app


def create_apps(services: Services) -> tuple[FastAPI, FastAPI]:
    ops = create_ops_app(
        services.registry, services.metrics, draining=lambda: services.synthesis.draining
    )
    return create_public_app(services), ops
