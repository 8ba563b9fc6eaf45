"""GET / serves the page and /web/ its files, open without an API key (every API route still
needs one) and with a strict content security policy; an unbuilt page says how to build it."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI

from orchestrator.app import Services, create_public_app
from orchestrator.web.page import PageOptions, mount_page
from tests.conftest import orchestrator_settings

KEY = "page-serving-test-key-0123456789"


async def client_for(app: FastAPI) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test")


@pytest.fixture
async def secured(page_bundle: None) -> AsyncIterator[httpx.AsyncClient]:
    """The real public app, with API keys required."""
    services = Services.create(orchestrator_settings(api_keys=json.dumps({KEY: ["synthesize"]})))
    async with await client_for(create_public_app(services)) as client:
        yield client
    await services.aclose()


async def test_page_and_files_need_no_key_but_the_api_does(secured: httpx.AsyncClient) -> None:
    page = await secured.get("/")
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    assert '<script type="module" src="/web/build/app.js">' in page.text
    csp = page.headers["content-security-policy"]
    assert "script-src 'self'" in csp and "frame-ancestors 'none'" in csp
    assert "unsafe-inline" not in csp

    bundle = await secured.get("/web/build/app.js")
    assert bundle.status_code == 200
    assert "javascript" in bundle.headers["content-type"]
    assert bundle.headers["x-content-type-options"] == "nosniff"
    assert "registerTextStreamHandler" in bundle.text  # livekit-client is bundled in
    assert (await secured.get("/web/style.css")).status_code == 200

    assert (await secured.get("/v1/voices")).status_code == 401
    # Only the page's own prefix is open, not every path that starts alike.
    assert (await secured.get("/webhooks")).status_code == 401
    assert (await secured.get("/web/../v1/voices")).status_code in (401, 404)
    answer = await secured.get("/v1/voices", headers={"Authorization": f"Bearer {KEY}"})
    assert answer.status_code == 200


async def test_unbuilt_page_says_how_to_build_it(tmp_path: Path) -> None:
    (tmp_path / "index.html").write_text("<!doctype html><title>not this</title>")
    app = FastAPI()
    mount_page(app, PageOptions(static_dir=tmp_path))
    async with await client_for(app) as client:
        page = await client.get("/")
    assert page.status_code == 503
    assert "npm ci --prefix orchestrator/web" in page.text
    assert "npm run build --prefix orchestrator/web" in page.text
    assert "not this" not in page.text


async def test_page_can_be_turned_off() -> None:
    app = FastAPI()
    mount_page(app, PageOptions(enabled=False))
    async with await client_for(app) as client:
        assert (await client.get("/")).status_code == 404
        assert (await client.get("/web/style.css")).status_code == 404
