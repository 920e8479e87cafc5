"""FakeVendor: the base of every local vendor fake (Railway, Fly, Vercel, Kubernetes, PagerDuty, Slack, ...).

A fake is an aiohttp app on 127.0.0.1, port 0 (optionally TLS with a trustme CA, for clients such as
`pagerduty` that insist on https), served from the test's own event loop. It

- records every request (`requests`: method, path, query, headers, body text and parsed JSON);
- checks the credentials (`authorized`) and answers 401 in the vendor's shape (`unauthorized`);
- injects faults before the handler runs: `fail_next(status, headers=..., body=..., times=n)` answers
  that status, `stall_next(seconds)` holds the request (a timeout for the client);
- keeps its handlers in `routes(router)`, written by each vendor subclass with the vendor's real shapes.

    async with RailwayFake(token="t0k3n-secret") as fake:
        fake.fail_next(429, headers={"Retry-After": "3"})
"""

from __future__ import annotations

import asyncio
import json
import ssl
from collections import deque
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any

from aiohttp import web

__all__ = ["FakeVendor", "Fault", "Recorded"]


@dataclass
class Recorded:
    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    text: str
    json: Any = None


@dataclass
class Fault:
    status: int = 500
    headers: dict[str, str] = field(default_factory=dict)
    body: str = ""
    stall: float = 0.0


class FakeVendor:
    """Subclass: set `name`, implement `routes` (and `authorized` / `unauthorized` in the vendor's shape)."""

    name = "vendor"

    def __init__(self, *, token: str | None = None, tls: bool = False) -> None:
        self.token = token
        self.tls = tls
        self.requests: list[Recorded] = []
        self.faults: deque[Fault] = deque()
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

    # -- faults ------------------------------------------------------------------------------------
    def fail_next(self, status: int, *, headers: dict[str, str] | None = None, body: str | None = None,
                  times: int = 1) -> None:
        for _ in range(times):
            self.faults.append(Fault(status, dict(headers or {}), body if body is not None
                                     else json.dumps({"error": f"injected {status}"})))

    def stall_next(self, seconds: float, times: int = 1) -> None:
        for _ in range(times):
            self.faults.append(Fault(stall=seconds))

    def clear_faults(self) -> None:
        self.faults.clear()

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
        self.requests.append(Recorded(request.method, request.path, dict(request.query), dict(request.headers),
                                      text, parsed))
        if self.faults:
            fault = self.faults.popleft()
            if fault.stall:
                await asyncio.sleep(fault.stall)
            else:
                return web.Response(status=fault.status, headers=fault.headers, text=fault.body,
                                    content_type="application/json")
        if not self.authorized(request):
            return self.unauthorized()
        response: web.StreamResponse = await handler(request)
        return response

    @property
    def url(self) -> str:
        return f"{'https' if self.tls else 'http'}://127.0.0.1:{self.port}"

    def client_ssl_context(self) -> ssl.SSLContext:
        """An SSLContext that trusts this fake's CA (TLS fakes only)."""
        ctx = ssl.create_default_context()
        self.ca.configure_trust(ctx)
        return ctx

    async def start(self) -> FakeVendor:
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

    async def __aenter__(self) -> FakeVendor:
        return await self.start()

    async def __aexit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                        tb: TracebackType | None) -> None:
        await self.close()
