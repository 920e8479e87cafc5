"""Shared fixtures: a real redis-server on a free port, a recording HTTP sink, config and app factories."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import redis as sync_redis
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from responder.app import create_app
from responder.clock import FakeClock
from responder.config.loader import LoadedConfig, load_config
from responder.keys import SERVICES
from responder.services import Services
from responder.store.redis import parse_redis_url

PAYLOADS = Path(__file__).parent / "payloads"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(autouse=True)
def _own_state_dir(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    """Each test's outage spool (and anything else under $XDG_STATE_HOME) lives in a folder of its own, never
    in the home directory, so no test replays another's spooled events."""
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path_factory.mktemp("state")))


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real redis-server for the whole session (Debian's package; .ci/run installs it).

    `RESPONDER_TEST_REDIS=cluster python3 -m pytest` runs the same tests on a local 3-master Redis Cluster
    (tests/reliability/servers.py): every script and MULTI/EXEC of the store then has to stay in one slot."""
    if os.environ.get("RESPONDER_TEST_REDIS") == "cluster":
        from tests.reliability.servers import Cluster

        cluster = Cluster.start(tmp_path_factory.mktemp("cluster"))
        yield cluster.url
        cluster.stop()
        return
    binary = shutil.which("redis-server")
    if binary is None:
        pytest.fail("redis-server is not installed: run `apt-get install -y redis-server` (bash .ci/run does)")
    port = free_port()
    proc = subprocess.Popen([binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
                             "--protected-mode", "yes"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    client = sync_redis.Redis(port=port)
    for _ in range(100):
        try:
            client.ping()
            break
        except sync_redis.ConnectionError:
            time.sleep(0.05)
    else:
        proc.kill()
        pytest.fail("redis-server did not start")
    yield f"redis://127.0.0.1:{port}/0"
    client.close()
    proc.terminate()
    proc.wait(5)


@pytest.fixture
def redis_url(redis_server: str) -> str:
    """The session server, emptied before each test."""
    if redis_server.startswith("redis+cluster://"):
        for host, port in parse_redis_url(redis_server).nodes:
            with sync_redis.Redis(host=host, port=port) as node:
                node.flushall()
        return redis_server
    client = sync_redis.Redis.from_url(redis_server)
    client.flushall()
    client.close()
    return redis_server


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


def write_config(root: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return root / "responder.yaml"


#: responder.yaml of make_config unless a test writes its own
TEST_RESPONDER_YAML = "ingest: {rate_limits: {per_ip: {requests: 1000000, per: 1m}}}\n"


@pytest.fixture
def make_config(tmp_path: Path) -> Callable[..., LoadedConfig]:
    """Write responder.yaml + rules/ + playbooks/ into a temp folder and load them.

    The default responder.yaml raises the per-IP webhook limit (100/min by default) out of reach: tests send many
    webhooks from 127.0.0.1 on a clock that hardly moves. tests/security/test_rate_limits.py tests the default."""

    def make(files: dict[str, str], env: dict[str, str] | None = None) -> LoadedConfig:
        files = {"responder.yaml": TEST_RESPONDER_YAML, **files}
        return load_config(write_config(tmp_path, files), env=env or {})

    return make


class Sink:
    """A local HTTP server that records every request (the far end of http.request steps)."""

    def __init__(self) -> None:
        self.requests: list[dict[str, Any]] = []
        self.status = 200
        #: optional scripted reply: called after the request is recorded
        self.script: Callable[[web.Request], Awaitable[web.Response]] | None = None
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self.handle)
        self.server = TestServer(app, host="127.0.0.1")

    async def handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        self.requests.append({"method": request.method, "path": request.path, "headers": dict(request.headers),
                              "body": body.decode(errors="replace")})
        if self.script is not None:
            return await self.script(request)
        return web.json_response({"ok": self.status < 400}, status=self.status)

    @property
    def url(self) -> str:
        return str(self.server.make_url("")).rstrip("/")

    @property
    def paths(self) -> list[str]:
        return [r["path"] for r in self.requests]


@pytest.fixture
async def sink() -> AsyncIterator[Sink]:
    s = Sink()
    await s.server.start_server()
    yield s
    await s.server.close()


AppFactory = Callable[..., Awaitable[tuple[TestClient[Any, Any], Services]]]


@pytest.fixture
async def make_app(redis_url: str, clock: FakeClock) -> AsyncIterator[AppFactory]:
    """Start the real app on the real Redis, with the fake clock and no background loops (tests drive them)."""
    clients: list[TestClient[Any, Any]] = []

    async def make(loaded: LoadedConfig, env: dict[str, str] | None = None,
                   **kwargs: Any) -> tuple[TestClient[Any, Any], Services]:
        app = create_app(loaded, env={"REDIS_URL": redis_url, **(env or {})}, clock=clock,
                         background=kwargs.pop("background", False), **kwargs)
        client = TestClient(TestServer(app, host="127.0.0.1"))
        await client.start_server()
        clients.append(client)
        services = app[SERVICES]
        await services.events.ensure_group(services.keys.engine_group)
        return client, services

    yield make
    for client in clients:
        await client.close()
