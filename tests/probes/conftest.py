"""Real local servers for probes: an aiohttp /health that toggles, a TCP listener, a TLS server (trustme)."""

from __future__ import annotations

import asyncio
import datetime as dt
import ssl
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import trustme
from aiohttp import web
from aiohttp.test_utils import TestServer

HEALTHY = {"status": "healthy", "timestamp": "2025-10-24T10:00:00Z", "version": "1.2.3", "uptime": 3600,
           "checks": {"database": "healthy", "redis": "healthy", "stripe": "healthy", "hostaway": "healthy"}}


class HealthServer:
    """The API's /health of the deployment documents; `healthy` toggles the database check (and the status)."""

    def __init__(self) -> None:
        self.healthy = True
        self.status = 200
        self.delay = 0.0
        self.hits = 0
        self.active = 0
        self.peak = 0
        self.headers: list[dict[str, str]] = []
        app = web.Application()
        app.router.add_get("/health", self.health)
        app.router.add_get("/slow", self.slow)
        self.server = TestServer(app, host="127.0.0.1")

    async def health(self, request: web.Request) -> web.Response:
        self.hits += 1
        self.headers.append(dict(request.headers))
        self.active += 1
        self.peak = max(self.peak, self.active)
        try:
            if self.delay:
                await asyncio.sleep(self.delay)
        finally:
            self.active -= 1
        doc: dict[str, Any] = {**HEALTHY, "checks": dict(HEALTHY["checks"])}  # type: ignore[call-overload]
        if not self.healthy:
            doc["status"] = "unhealthy"
            doc["checks"]["database"] = "unhealthy"
        return web.json_response(doc, status=self.status)

    async def slow(self, request: web.Request) -> web.Response:
        await asyncio.sleep(5)
        return web.json_response(HEALTHY)

    @property
    def url(self) -> str:
        return str(self.server.make_url("/health"))


@pytest.fixture
async def health() -> AsyncIterator[HealthServer]:
    server = HealthServer()
    await server.server.start_server()
    yield server
    await server.server.close()


class TcpListener:
    """A listener that accepts and closes; `stop()` makes it go away."""

    def __init__(self) -> None:
        self.server: asyncio.Server | None = None
        self.port = 0

    async def start(self, port: int = 0) -> None:
        async def accept(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            writer.close()

        self.server = await asyncio.start_server(accept, "127.0.0.1", port)
        self.port = self.server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        if self.server is not None:
            self.server.close()
            await self.server.wait_closed()
            self.server = None


@pytest.fixture
async def tcp_listener() -> AsyncIterator[TcpListener]:
    listener = TcpListener()
    await listener.start()
    yield listener
    await listener.stop()


class TlsServer:
    """A TLS listener whose leaf certificate (for 127.0.0.1 and localhost) expires in `days`."""

    def __init__(self, ca: trustme.CA, ca_file: Path) -> None:
        self.ca = ca
        self.ca_file = ca_file
        self.server: asyncio.Server | None = None
        self.port = 0

    async def start(self, days: float) -> None:
        now = dt.datetime.now(dt.UTC)
        cert = self.ca.issue_cert("127.0.0.1", "localhost", not_before=now - dt.timedelta(days=30),
                                  not_after=now + dt.timedelta(days=days))
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        cert.configure_cert(context)

        async def accept(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            writer.close()

        self.server = await asyncio.start_server(accept, "127.0.0.1", 0, ssl=context)
        self.port = self.server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        if self.server is not None:
            self.server.close()
            await self.server.wait_closed()
            self.server = None


@pytest.fixture
async def tls_server(tmp_path: Path) -> AsyncIterator[TlsServer]:
    ca = trustme.CA()
    ca_file = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(ca_file))
    server = TlsServer(ca, ca_file)
    yield server
    await server.stop()
