"""Ops endpoints, served on their own port so they never face the public network."""

from __future__ import annotations

from collections.abc import Callable

from fastapi import FastAPI
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST

from fleet.store import StoreUnavailable
from orchestrator.metrics.recorder import FleetMetrics
from orchestrator.workers.registry import WorkerRegistry


def create_ops_app(
    registry: WorkerRegistry,
    metrics: FleetMetrics | None = None,
    draining: Callable[[], bool] = lambda: False,
) -> FastAPI:
    app = FastAPI(title="voice-orchestrator ops", docs_url=None, redoc_url=None, openapi_url=None)

    @app.get("/livez")
    async def livez() -> dict[str, str]:
        """The process and its event loop are alive."""
        return {"status": "alive"}

    @app.get("/readyz")
    async def readyz() -> JSONResponse:
        """Ready when the store answers and at least one worker accepts streams."""
        accepting = [w for w in registry.workers if not w.draining]
        reason = None
        if draining():
            reason = "draining: this replica is shutting down"
        elif registry.store_error is not None:
            reason = f"store unavailable: {registry.store_error}"
        elif not registry.workers:
            reason = "no TTS worker is registered"
        elif not accepting:
            reason = "every registered worker is draining"
        body = {
            "ready": reason is None,
            "reason": reason,
            "workers": len(registry.workers),
            "accepting_workers": len(accepting),
        }
        return JSONResponse(body, status_code=200 if reason is None else 503)

    if metrics is not None:

        @app.get("/metrics")
        async def prometheus_metrics() -> Response:
            """This replica's series in Prometheus text format. Rendered on the event loop
            (about a millisecond, no store round trip) so it reads a consistent snapshot."""
            return Response(metrics.exposition(), media_type=CONTENT_TYPE_LATEST)

        @app.get("/metrics/summary")
        async def metrics_summary() -> JSONResponse:
            """The fleet view from the store: every replica's counts, SLA, percentiles."""
            try:
                return JSONResponse(await metrics.summary())
            except StoreUnavailable as exc:
                return JSONResponse({"error": f"store unavailable: {exc}"}, status_code=503)

    return app
