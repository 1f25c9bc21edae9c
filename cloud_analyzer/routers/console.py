"""The web console: the static files of console/ at /console/, and the one thing they cannot know on
their own, where the reconstructor is (`/console/config.json`). Open, like /docs: they hold no data;
everything the console shows it fetches from the public REST API with the user's own key.

Every answer carries a strict Content-Security-Policy (scripts and styles from this origin only, no
inline script, connections only to this origin and the configured reconstructor); index.html is
`no-store` (a new version is picked up at once), the other files `no-cache` (revalidated by ETag: their
names are not hashed, so they must not be cached blind)."""

from __future__ import annotations

import logging
from pathlib import Path
from urllib.parse import urlsplit

from fastapi import APIRouter, FastAPI
from fastapi.responses import JSONResponse, RedirectResponse
from starlette.staticfiles import StaticFiles

from cloud_analyzer.settings import CONSOLE_DIR, AnalyzerSettings
from service_common.http import ASGIApp, Message, Receive, Scope, Send

log = logging.getLogger(__name__)
PREFIX = "/console"


def origin(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"


def content_security_policy(reconstructor_url: str | None) -> str:
    connect = "'self'" + (f" {origin(reconstructor_url)}" if reconstructor_url else "")
    return ("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' blob: data:; "
            f"connect-src {connect}; base-uri 'none'; form-action 'none'; frame-ancestors 'none'")


class ConsoleHeaders:
    """Security and cache headers on every file the console is served from (pure ASGI around StaticFiles)."""

    def __init__(self, app: ASGIApp, csp: str) -> None:
        self.app = app
        self.headers = [(b"content-security-policy", csp.encode()), (b"x-content-type-options", b"nosniff"),
                        (b"referrer-policy", b"no-referrer"), (b"x-frame-options", b"DENY")]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        index = scope["path"].rstrip("/") in (PREFIX, f"{PREFIX}/index.html")
        cache = b"no-store" if index else b"no-cache"

        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                kept = [(k, v) for k, v in message.get("headers", []) if k.lower() != b"cache-control"]
                message = {**message, "headers": [*kept, *self.headers, (b"cache-control", cache)]}
            await send(message)

        await self.app(scope, receive, with_headers)


def mount_console(app: FastAPI, settings: AnalyzerSettings) -> None:
    """Serve the console at /console/ (unless turned off or its folder is missing)."""
    folder = Path(settings.console_dir or CONSOLE_DIR)
    if not settings.console_enabled:
        return
    if not (folder / "index.html").is_file():
        log.warning("console: no index.html in %s; /console/ is not served", folder)
        return
    csp = content_security_policy(settings.console_reconstructor_url)
    router = APIRouter(tags=["console"], include_in_schema=False)

    @router.get(PREFIX)
    def console_root() -> RedirectResponse:
        return RedirectResponse(f"{PREFIX}/", status_code=308)

    @router.get(f"{PREFIX}/config.json")
    def console_config() -> JSONResponse:
        """Where the console finds the reconstructor (for face pixels); null: it shows none."""
        url = settings.console_reconstructor_url
        return JSONResponse({"reconstructor_url": url.rstrip("/") if url else None},
                            headers={"cache-control": "no-store", "content-security-policy": csp})

    app.include_router(router)
    app.mount(PREFIX, ConsoleHeaders(StaticFiles(directory=folder, html=True), csp), name="console")
