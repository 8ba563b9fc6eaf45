"""Ops endpoints live on their own port and tell the truth about readiness."""

from __future__ import annotations

import httpx


async def test_livez_and_readyz(ops: httpx.AsyncClient) -> None:
    assert (await ops.get("/livez")).json() == {"status": "alive"}
    ready = await ops.get("/readyz")
    assert ready.status_code == 200
    assert ready.json()["ready"] is True
    assert ready.json()["workers"] == 1


async def test_ops_routes_are_not_on_the_public_port(api: httpx.AsyncClient) -> None:
    assert (await api.get("/readyz")).status_code == 404
    assert (await api.get("/livez")).status_code == 404


async def test_openapi_schema_is_served(api: httpx.AsyncClient) -> None:
    """The schema (used by clients and by fuzzing) builds: every route documents itself."""
    schema = (await api.get("/openapi.json")).json()
    for path in (
        "/synthesize",
        "/v1/audio/speech",
        "/v1/voices",
        "/sessions",
        "/sessions/{session_id}/say",
    ):
        assert path in schema["paths"], path
