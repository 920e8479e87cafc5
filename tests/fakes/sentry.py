"""A fake Sentry ingestion server that records what the real sentry-sdk sends.

    with FakeSentry() as fake:             # or: fake = FakeSentry().start(); ...; fake.close()
        init_sentry(fake.dsn)              # inside the test's running loop
        ...
        shutdown_sentry()                  # or sentry_sdk.flush(): blocks until everything sent is recorded
        assert fake.errors()[0]["tags"]["incident_id"] == "42"

The server runs on 127.0.0.1, port 0, in its own thread with its own event loop. It has to: sentry-sdk
sends from a worker thread with blocking urllib3, and `flush()`/`close()` block the calling thread. Served
from the test's loop, the fake could not answer while `shutdown_sentry()` waits, and events would be lost.

Recorded, in arrival order:
- `events`: each `event` item (errors and messages) as a parsed dict; `/store/` bodies too.
- `items`: every envelope item as `(item_header, payload_bytes)`, including sessions and transactions.
- `bodies`: each request body after gzip decoding, to assert a secret never went over the wire.
"""

from __future__ import annotations

import asyncio
import gzip
import json
import threading
from types import TracebackType
from typing import Any

from aiohttp import web

__all__ = ["FakeSentry"]


class FakeSentry:
    """Records Sentry envelopes posted to `/api/<project>/envelope/` (and `/store/`), answering 200."""

    def __init__(self) -> None:
        self.events: list[dict[str, Any]] = []
        self.items: list[tuple[dict[str, Any], bytes]] = []
        self.bodies: list[bytes] = []
        self.port = 0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._runner: web.AppRunner | None = None

    @property
    def dsn(self) -> str:
        """DSN pointing the sdk at this server: `http://public@127.0.0.1:<port>/1`."""
        return f"http://public@127.0.0.1:{self.port}/1"

    def errors(self) -> list[dict[str, Any]]:
        """The recorded events that carry an exception or have level error/fatal."""
        return [e for e in self.events if e.get("exception") or e.get("level") in ("error", "fatal")]

    def start(self) -> FakeSentry:
        """Start serving in a background thread; returns self."""
        loop = asyncio.new_event_loop()
        self._loop = loop
        self._thread = threading.Thread(target=loop.run_forever, name="fake-sentry", daemon=True)
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self._serve(), loop).result(timeout=10)
        return self

    def close(self) -> None:
        """Stop the server and its thread; safe to call twice."""
        loop, self._loop = self._loop, None
        if loop is None or self._thread is None:
            return
        if self._runner is not None:
            asyncio.run_coroutine_threadsafe(self._runner.cleanup(), loop).result(timeout=10)
        loop.call_soon_threadsafe(loop.stop)
        self._thread.join(timeout=10)
        loop.close()

    def __enter__(self) -> FakeSentry:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    async def __aenter__(self) -> FakeSentry:
        return self.start()

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    async def _serve(self) -> None:
        app = web.Application()
        app.router.add_post(r"/api/{project}/envelope/", self._envelope)
        app.router.add_post(r"/api/{project}/store/", self._store)
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=1.0)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.port = self._runner.addresses[0][1]

    async def _envelope(self, request: web.Request) -> web.Response:
        body = _decode(await request.read(), request.headers.get("Content-Encoding", ""))
        self.bodies.append(body)
        for header, payload in _parse_envelope(body):
            self.items.append((header, payload))
            if header.get("type") == "event":
                self.events.append(json.loads(payload))
        return web.json_response({"id": "0" * 32})

    async def _store(self, request: web.Request) -> web.Response:
        body = _decode(await request.read(), request.headers.get("Content-Encoding", ""))
        self.bodies.append(body)
        self.events.append(json.loads(body))
        return web.json_response({"id": "0" * 32})


def _decode(body: bytes, encoding: str) -> bytes:
    # aiohttp's server already decodes gzip/deflate/br request bodies; this is a fallback for raw gzip.
    if body[:2] == b"\x1f\x8b" or (encoding == "gzip" and body[:1] not in (b"{", b"\n")):
        return gzip.decompress(body)
    return body


def _parse_envelope(body: bytes) -> list[tuple[dict[str, Any], bytes]]:
    """Split an envelope into `(item_header, payload)` pairs; the first line is the envelope header."""
    _, _, rest = body.partition(b"\n")
    items = []
    while rest.strip():
        line, _, rest = rest.partition(b"\n")
        if not line.strip():
            continue
        header = json.loads(line)
        length = header.get("length")
        if length is None:
            payload, _, rest = rest.partition(b"\n")
        else:
            payload, rest = rest[:length], rest[length + 1 :]
        items.append((header, payload))
    return items
