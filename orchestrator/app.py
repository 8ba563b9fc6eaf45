"""Assembles the orchestrator: narrow options from the settings, the services, the public
app and the ops app. Nothing else reads the settings object."""

from __future__ import annotations

from dataclasses import dataclass

from fastapi import FastAPI

from fleet.backends import open_store
from fleet.store import Store
from orchestrator.http.auth import SCOPES, AuthMiddleware, parse_api_keys
from orchestrator.http.body_limit import BodyLimitMiddleware
from orchestrator.http.errors import install_error_handlers
from orchestrator.http.ops import create_ops_app
from orchestrator.http.rate_limit import RateLimiter, RateLimitOptions
from orchestrator.http.request_metrics import RequestMetricsMiddleware
from orchestrator.metrics.recorder import FleetMetrics
from orchestrator.sessions.api_router import router as sessions_router
from orchestrator.sessions.backchannel import DEFAULT_ACKNOWLEDGEMENTS, acknowledgements_for
from orchestrator.sessions.bargein import BargeInSettings
from orchestrator.sessions.event_history import EventHistoryOptions
from orchestrator.sessions.listening import VadOptions
from orchestrator.sessions.manager import ManagerOptions, SessionManager
from orchestrator.sessions.recognizer import RecognizerOptions
from orchestrator.sessions.session import LiveKitOptions, SessionOptions
from orchestrator.sessions.transcriber import TranscriberOptions
from orchestrator.settings import OrchestratorSettings
from orchestrator.synthesis.api_router import router as synthesis_router
from orchestrator.synthesis.serving import SynthesisOptions, SynthesisService
from orchestrator.web.page import PageOptions, mount_page
from orchestrator.workers.channels import WorkerChannels
from orchestrator.workers.registry import WorkerRegistry
from orchestrator.workers.stream import StreamOptions


def stream_options(settings: OrchestratorSettings) -> StreamOptions:
    return StreamOptions(
        first_audio_timeout_seconds=settings.first_audio_timeout_seconds,
        max_attempts=settings.max_attempts,
    )


def synthesis_options(settings: OrchestratorSettings) -> SynthesisOptions:
    return SynthesisOptions(
        max_text_chars=settings.max_text_chars,
        voice_aliases=dict(settings.voice_aliases),
        normalize_text=settings.normalize_text,
        stream=stream_options(settings),
    )


# Settings the session manager takes under the same names.
_MANAGER_LIMITS = {
    "max_sessions",
    "max_text_chars",
    "replica_ttl_seconds",
    "user_token_ttl_seconds",
    "livekit_public_url",
    "normalize_text",
}


def manager_options(settings: OrchestratorSettings) -> ManagerOptions:
    livekit = LiveKitOptions(
        url=settings.livekit_url,
        api_key=settings.livekit_api_key,
        api_secret=settings.livekit_api_secret.get_secret_value(),
        connect_timeout_seconds=settings.livekit_connect_timeout_seconds,
        reconnect_grace_seconds=settings.livekit_reconnect_grace_seconds,
    )
    lists = {**DEFAULT_ACKNOWLEDGEMENTS, **settings.bargein_acknowledgements}
    # Fails at start-up (KeyError) when the listeners' language has no list.
    acknowledgements = tuple(acknowledgements_for(settings.asr_language, lists))
    session = SessionOptions(
        livekit=livekit,
        bargein=BargeInSettings(
            settings.bargein_min_interruption_seconds,
            settings.bargein_false_interruption_silence_seconds,
            settings.bargein_min_interruption_words,
            settings.bargein_words_timeout_seconds,
        ),
        stream=stream_options(settings),
        listener_wait_seconds=settings.listener_wait_seconds,
        playout_queue_ms=settings.playout_queue_ms,
        synthesis_lead_seconds=settings.synthesis_lead_seconds,
        transcription=TranscriberOptions(
            partial_interval_seconds=settings.asr_partial_interval_seconds,
            max_segment_seconds=settings.asr_max_segment_seconds,
        ),
        acknowledgements=acknowledgements,
    )
    return ManagerOptions(
        instance_id=settings.resolved_instance_id(),
        url=settings.advertise_url or f"http://{settings.host}:{settings.port}",
        session=session,
        vad=VadOptions(
            activation_threshold=settings.vad_activation_threshold,
            min_speech_seconds=settings.vad_min_speech_seconds,
        ),
        events=EventHistoryOptions(
            history=settings.events_history,
            ttl_seconds=settings.events_ttl_seconds,
            keepalive_seconds=settings.events_keepalive_seconds,
        ),
        recognizer=RecognizerOptions(
            enabled=settings.asr_enabled,
            model_path=settings.asr_model_path,
            device=settings.asr_device,
            compute_type=settings.asr_compute_type,
            cpu_threads=settings.asr_cpu_threads,
            workers=settings.asr_workers,
            language=settings.asr_language,
            no_speech_threshold=settings.asr_no_speech_threshold,
        ),
        **settings.model_dump(include=_MANAGER_LIMITS),
    )


def rate_limit_options(settings: OrchestratorSettings, redis_url: str | None) -> RateLimitOptions:
    unknown = set(settings.rate_limit_scopes) - set(SCOPES)
    if unknown:
        raise ValueError(f"ORCH_RATE_LIMIT_SCOPES names unknown scopes {sorted(unknown)}")
    return RateLimitOptions(
        per_minute=settings.rate_limit_per_minute,
        scopes=dict(settings.rate_limit_scopes),
        redis_url=redis_url,
    )


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
    rate_limiter: RateLimiter | None = None

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
            fleet=registry,
        )
        limits = rate_limit_options(settings, redis_url)
        return cls(
            settings,
            store,
            channels,
            registry,
            SynthesisService(synthesis_options(settings), registry, channels, metrics=metrics),
            SessionManager(manager_options(settings), store, registry, channels, metrics),
            metrics=metrics,
            rate_limiter=RateLimiter(limits) if settings.api_keys and limits.enabled else None,
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
        if self.rate_limiter is not None:
            await self.rate_limiter.aclose()
        await self.store.aclose()


def create_public_app(services: Services) -> FastAPI:
    app = FastAPI(
        title="voice-orchestrator",
        summary="Streamed speech synthesis over HTTP and into LiveKit rooms.",
        version="0.1.0",
    )
    app.state.synthesis = services.synthesis
    app.state.sessions = services.sessions
    app.include_router(synthesis_router)
    app.include_router(sessions_router)
    mount_page(app, PageOptions(enabled=services.settings.web_page))
    install_error_handlers(app)
    app.add_middleware(BodyLimitMiddleware, max_bytes=services.settings.max_body_bytes)
    settings = services.settings
    keys = parse_api_keys(settings.api_keys.get_secret_value()) if settings.api_keys else []
    # Before the body is read: a caller without a valid key learns nothing else.
    app.add_middleware(AuthMiddleware, keys=keys, limiter=services.rate_limiter)
    # Outermost: counts every request, the body limit's 413s included.
    app.add_middleware(RequestMetricsMiddleware, metrics=services.metrics)
    return app


def create_apps(services: Services) -> tuple[FastAPI, FastAPI]:
    ops = create_ops_app(
        services.registry, services.metrics, draining=lambda: services.synthesis.draining
    )
    return create_public_app(services), ops
