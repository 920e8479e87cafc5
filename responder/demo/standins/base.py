"""StandIn: a vendor API on 127.0.0.1 (port 0) that records every request it receives.

The base of the demo's stand-ins (Railway, Statuspage, PagerDuty, Slack) and of the test suite's vendor
fakes (tests/fakes/vendor.py adds fault injection on top). A stand-in is an aiohttp app served from the
caller's event loop, optionally over TLS with a throwaway CA (`trustme`: clients such as `pagerduty`
insist on https; write `ca.cert_pem` to a file and trust it). Subclasses write `routes(router)` with the
vendor's real shapes and `authorized` / `unauthorized` in the vendor's style.

    async with RailwayStandIn(token="t0k3n") as railway:
        railway.listeners.append(lambda received, status: print(received.path, status))
"""

from __future__ import annotations

import json
import ssl
from collections.abc import Callable
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Self

from aiohttp import web

__all__ = ["Recorded", "StandIn"]


@dataclass
class Recorded:
    """One request as received: method, path, query, headers, body text and (when it is JSON) the parsed body."""

    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    text: str
    json: Any = None


#: hears each request after it was answered: (the request, the HTTP status sent back)
Listener = Callable[[Recorded, int], None]


class StandIn:
    """Subclass: set `name`, implement `routes` (and `authorized` / `unauthorized` in the vendor's shape)."""

    name = "vendor"

    def __init__(self, *, token: str | None = None, tls: bool = False) -> None:
        self.token = token
        self.tls = tls
        self.requests: list[Recorded] = []
        self.listeners: list[Listener] = []
        self.port = 0
        self._runner: web.AppRunner | None = None
        self.ca: Any = None
        app = web.Application(middlewares=[self._middleware])
        self.routes(app.router)
        self.app = app

    # -- for subclasses ----------------------------------------------------------------------------
    def routes(self, router: web.UrlDispatcher) -> None:
        raise NotImplementedError

    def authorized(self, request: web.Request) -> bool:
        """Default: `Authorization: Bearer <token>` when a token is set."""
        return self.token is None or request.headers.get("Authorization") == f"Bearer {self.token}"

    def unauthorized(self) -> web.Response:
        return web.json_response({"error": "unauthorized"}, status=401)

    async def intercept(self, request: web.Request) -> web.StreamResponse | None:
        """Called after the request is recorded, before the credentials are checked: a response ends it there."""
        return None

    # -- what was received -------------------------------------------------------------------------
    def calls(self, method: str | None = None, path: str | None = None) -> list[Recorded]:
        return [r for r in self.requests
                if (method is None or r.method == method) and (path is None or r.path == path)]

    # -- serving -----------------------------------------------------------------------------------
    @web.middleware
    async def _middleware(self, request: web.Request, handler: Any) -> web.StreamResponse:
        text = (await request.read()).decode(errors="replace")
        try:
            parsed = json.loads(text) if text else None
        except ValueError:
            parsed = None
        received = Recorded(request.method, request.path, dict(request.query), dict(request.headers), text, parsed)
        self.requests.append(received)
        response = await self.intercept(request)
        if response is None:
            response = self.unauthorized() if not self.authorized(request) else await handler(request)
        for listener in self.listeners:
            listener(received, response.status)
        return response

    @property
    def url(self) -> str:
        return f"{'https' if self.tls else 'http'}://127.0.0.1:{self.port}"

    async def start(self) -> Self:
        server_ctx = None
        if self.tls:
            import trustme

            self.ca = trustme.CA()
            server_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
            self.ca.issue_cert("127.0.0.1", "localhost").configure_cert(server_ctx)
        self._runner = web.AppRunner(self.app, handle_signals=False, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0, ssl_context=server_ctx)
        await site.start()
        self.port = self._runner.addresses[0][1]
        return self

    async def close(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> Self:
        return await self.start()

    async def __aexit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                        tb: TracebackType | None) -> None:
        await self.close()
