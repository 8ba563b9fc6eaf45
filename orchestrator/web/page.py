"""Serves the page: GET / and its static files under /web/, open without an API key (they
hold no secrets; every call the page makes carries the key). When the bundle has not been
built, GET / says how to build it instead."""

from __future__ import annotations

import html
import os
from dataclasses import dataclass
from pathlib import Path

from fastapi import FastAPI
from fastapi.responses import FileResponse, HTMLResponse, Response
from fastapi.staticfiles import StaticFiles
from starlette.staticfiles import PathLike
from starlette.types import Scope

HERE = Path(__file__).resolve().parent
STATIC_DIR = HERE / "static"
BUNDLE = Path("build") / "app.js"
PREFIX = "/web"

# The page loads only its own files; it talks to this server and to the LiveKit server the
# session names (any host: LiveKit's URL is the operator's choice), and plays blobs and
# media streams. No inline script or style, no framing.
CSP = "; ".join(
    (
        "default-src 'self'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self' data:",
        "media-src 'self' blob: mediastream:",
        "connect-src 'self' ws: wss: http: https:",
        "worker-src 'self' blob:",
        "frame-ancestors 'none'",
        "base-uri 'none'",
        "form-action 'none'",
    )
)
SECURITY_HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    # Files change when the page is rebuilt under the same name: revalidate (ETag) each time.
    "Cache-Control": "no-cache",
}

NOT_BUILT = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>voice-orchestrator: page not built</title>
<link rel="icon" href="data:,"></head>
<body><main>
<h1>The page has not been built</h1>
<p>The orchestrator is running, but the browser page's script ({bundle}) is missing. It is
built from <code>orchestrator/web/package-lock.json</code> with Node.js 18 or newer and npm:</p>
<pre>npm ci --prefix orchestrator/web
npm run build --prefix orchestrator/web</pre>
<p><code>make run</code> does this by itself when Node.js is installed (on Debian:
<code>apt-get install nodejs npm</code>). Then reload this page. The API works meanwhile:
see <a href="/docs">/docs</a>.</p>
</main></body></html>
"""


@dataclass(frozen=True)
class PageOptions:
    """Where the page's files are, and whether to serve them at all."""

    enabled: bool = True
    static_dir: Path = STATIC_DIR

    @property
    def built(self) -> bool:
        return (self.static_dir / BUNDLE).is_file()


class _StaticFiles(StaticFiles):
    """Static files with the page's security and caching headers."""

    def file_response(
        self,
        full_path: PathLike,
        stat_result: os.stat_result,
        scope: Scope,
        status_code: int = 200,
    ) -> Response:
        response = super().file_response(full_path, stat_result, scope, status_code)
        response.headers.update(SECURITY_HEADERS)
        return response


def mount_page(app: FastAPI, options: PageOptions) -> None:
    """GET / and /web/*, when the page is enabled."""
    if not options.enabled:
        return

    @app.get("/", include_in_schema=False)
    async def page() -> Response:
        if not options.built:
            body = NOT_BUILT.format(bundle=html.escape(f"{PREFIX}/{BUNDLE.as_posix()}"))
            return HTMLResponse(body, status_code=503, headers=SECURITY_HEADERS)
        return FileResponse(options.static_dir / "index.html", headers=SECURITY_HEADERS)

    app.mount(PREFIX, _StaticFiles(directory=options.static_dir), name="web")
