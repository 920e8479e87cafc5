"""FakeVendor: the base of every local vendor fake (Railway, Fly, Vercel, Kubernetes, PagerDuty, Slack, ...).

A fake is a `StandIn` (responder/demo/standins/base.py: an aiohttp app on 127.0.0.1, port 0, optionally
TLS with a trustme CA, for clients such as `pagerduty` that insist on https, served from the test's own
event loop) that

- records every request (`requests`: method, path, query, headers, body text and parsed JSON);
- checks the credentials (`authorized`) and answers 401 in the vendor's shape (`unauthorized`);
- injects faults before the handler runs: `fail_next(status, headers=..., body=..., times=n)` answers
  that status, `stall_next(seconds)` holds the request (a timeout for the client);
- keeps its handlers in `routes(router)`, written by each vendor subclass with the vendor's real shapes.

The Railway, Statuspage and PagerDuty fakes are the demo's stand-ins plus these faults
(`class RailwayFake(RailwayStandIn, FakeVendor)`).

    async with RailwayFake(token="t0k3n-secret") as fake:
        fake.fail_next(429, headers={"Retry-After": "3"})
"""

from __future__ import annotations

import asyncio
import json
import ssl
from collections import deque
from dataclasses import dataclass, field

from aiohttp import web

from responder.demo.standins.base import Recorded, StandIn

__all__ = ["FakeVendor", "Fault", "Recorded"]


@dataclass
class Fault:
    status: int = 500
    headers: dict[str, str] = field(default_factory=dict)
    body: str = ""
    stall: float = 0.0


class FakeVendor(StandIn):
    """Subclass: set `name`, implement `routes` (and `authorized` / `unauthorized` in the vendor's shape)."""

    def __init__(self, *, token: str | None = None, tls: bool = False) -> None:
        self.faults: deque[Fault] = deque()
        super().__init__(token=token, tls=tls)

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

    async def intercept(self, request: web.Request) -> web.StreamResponse | None:
        if not self.faults:
            return None
        fault = self.faults.popleft()
        if fault.stall:
            await asyncio.sleep(fault.stall)
            return None
        return web.Response(status=fault.status, headers=fault.headers, text=fault.body,
                            content_type="application/json")

    def client_ssl_context(self) -> ssl.SSLContext:
        """An SSLContext that trusts this fake's CA (TLS fakes only)."""
        ctx = ssl.create_default_context()
        self.ca.configure_trust(ctx)
        return ctx
