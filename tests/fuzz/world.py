"""A live responder for fuzzing and security tests: the real app on a real redis-server, served on 127.0.0.1 by
its own event loop in a thread, so synchronous clients (Hypothesis examples, schemathesis) can call it.

Every secret is configured (API tokens, every webhook source's secret, Slack's signing secret and bot token), and
every outbound URL the configuration names is a loopback sink: nothing a fuzzed request makes the daemon do
can reach beyond this machine.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import http.client
import json
import threading
from collections.abc import Callable, Coroutine, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import redis as sync_redis
from aiohttp import web

from responder.app import create_app
from responder.clock import FakeClock
from responder.config.loader import LoadedConfig, load_config
from responder.keys import SERVICES
from responder.services import Services
from tests.conftest import PAYLOADS, free_port, write_config

T = TypeVar("T")

READ_TOKEN = "read-token-4b7c1e93d2"
WRITE_TOKEN = "write-token-8e2f60a1c7"
SENTRY_SECRET = "sentry-client-secret-2a9f4c"
GRAFANA_SECRET = "grafana-hmac-secret-71d3be"
ALERTMANAGER_TOKEN = "alertmanager-bearer-c40e8f"
UPTIMEROBOT_TOKEN = "uptimerobot-token-9b15d7"
PAGERDUTY_SECRET = "pagerduty-signing-secret-6e03aa"
SLACK_SIGNING_SECRET = "slack-signing-secret-f28c41"
SLACK_BOT_TOKEN = "xoxb-slack-bot-token-5d90e2"
HTTP_CREDENTIAL = "http-credential-secret-0c7b3f"

SECRETS = (READ_TOKEN, WRITE_TOKEN, SENTRY_SECRET, GRAFANA_SECRET, ALERTMANAGER_TOKEN, UPTIMEROBOT_TOKEN,
           PAGERDUTY_SECRET, SLACK_SIGNING_SECRET, SLACK_BOT_TOKEN, HTTP_CREDENTIAL)

CONFIG = f"""
server:
  api_tokens: {{read: {READ_TOKEN}, write: {WRITE_TOKEN}}}
  max_body_bytes: 65536
ingest:
  sentry: {{client_secret: {SENTRY_SECRET}}}
  grafana: {{hmac_secret: {GRAFANA_SECRET}}}
  alertmanager: {{bearer_token: {ALERTMANAGER_TOKEN}}}
  uptimerobot: {{token: {UPTIMEROBOT_TOKEN}}}
  pagerduty: {{signing_secrets: [{PAGERDUTY_SECRET}]}}
  rate_limits: {{per_ip: {{requests: 1000000, per: 1m}}}}   # the fuzzers send thousands from 127.0.0.1
providers:
  slack: {{bot_token: {SLACK_BOT_TOKEN}, signing_secret: {SLACK_SIGNING_SECRET}, channel: "#incidents",
           base_url: "${{SINK}}/slack/api/"}}
  http:
    credentials:
      sink: {{headers: {{Authorization: "Bearer {HTTP_CREDENTIAL}"}}}}
status_page:
  components: [{{id: api, name: API}}]
silences:
  - id: weekly-maintenance
    matchers: {{service: batch}}
    recurrence: {{days: [sun], start: "02:00", end: "03:00"}}
"""

RULES = """
rules:
  - id: api-error-rate
    match: {source: sentry, name: {regex: "(?i).*error rate.*"}}
    when: {value: "> 0.05"}
    severity: critical
    group_by: [service]
    playbook: notify
"""

PLAYBOOKS = """
playbooks:
  - id: notify
    steps:
      - name: announce
        action: http.request
        with: {url: "${SINK}/announce", credentials: sink, json: {text: "{{ incident.title }}"}}
      - name: fail
        action: http.request
        with: {url: "${SINK}/fail", credentials: sink}
"""

PROBES = """
probes:
  - id: api-health
    http: {url: "${SINK}/health"}
    every: 30s
    service: api
    component: api
"""


class LoopbackSink:
    """A local HTTP server answering every request (200, or 500 under /fail); records the requests."""

    def __init__(self) -> None:
        self.requests: list[dict[str, Any]] = []
        self.app = web.Application()
        self.app.router.add_route("*", "/{tail:.*}", self.handle)
        self.port = free_port()
        self.runner: web.AppRunner | None = None

    async def handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        self.requests.append({"method": request.method, "path": request.path, "headers": dict(request.headers),
                              "body": body.decode(errors="replace")})
        if request.path.startswith("/fail"):  # echoes the credentials it was sent: redaction must catch them
            sent = request.headers.get("Authorization", "")
            return web.json_response({"error": f"sink refuses key {sent.partition(' ')[2]}", "you_sent": sent},
                                     status=500)
        return web.json_response({"ok": True, "channel": "C0INC0001", "ts": "1700000000.000100"})

    async def start(self) -> None:
        self.runner = web.AppRunner(self.app)
        await self.runner.setup()
        await web.TCPSite(self.runner, "127.0.0.1", self.port).start()

    async def stop(self) -> None:
        if self.runner is not None:
            await self.runner.cleanup()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


@dataclass
class Reply:
    status: int
    headers: dict[str, str]
    body: bytes

    @property
    def content_type(self) -> str:
        return self.headers.get("content-type", "").split(";")[0].strip().lower()

    def json(self) -> Any:
        return json.loads(self.body)


class LiveApp:
    """The app on 127.0.0.1:<free port>, run by a private event loop in a daemon thread."""

    def __init__(self, loaded: LoadedConfig, redis_url: str, clock: FakeClock, sink: LoopbackSink) -> None:
        self.loaded = loaded
        self.redis_url = redis_url
        self.clock = clock
        self.sink = sink
        self.port = free_port()
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="live-app", daemon=True)
        self.runner: web.AppRunner | None = None
        self.app: web.Application | None = None
        self._conn: http.client.HTTPConnection | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def services(self) -> Services:
        assert self.app is not None
        return self.app[SERVICES]

    def call(self, coro: Coroutine[Any, Any, T], timeout: float = 30) -> T:
        """Run `coro` on the app's loop and wait for its result."""
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def start(self) -> None:
        self.thread.start()
        self.call(self.sink.start())
        self.call(self._start())

    async def _start(self) -> None:
        self.app = create_app(self.loaded, env={"REDIS_URL": self.redis_url}, clock=self.clock, background=False)
        self.runner = web.AppRunner(self.app, access_log=None)
        await self.runner.setup()
        await web.TCPSite(self.runner, "127.0.0.1", self.port).start()
        await self.services.events.ensure_group(self.services.keys.engine_group)

    def stop(self) -> None:
        if self._conn is not None:
            self._conn.close()
        if self.runner is not None:
            self.call(self.runner.cleanup())
        self.call(self.sink.stop())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
        self.loop.close()

    def reset(self) -> None:
        """Start the next request on a new connection."""
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def request(self, method: str, path: str, *, body: bytes | None = None,
                headers: Iterable[tuple[str, str | bytes]] = ()) -> Reply:
        """One request; `headers` may repeat a name. Header values that are bytes go on the wire as they are."""
        for attempt in range(2):
            if self._conn is None:
                self._conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=15)
            conn = self._conn
            try:
                conn.putrequest(method, path, skip_accept_encoding=True)
                for name, value in headers:
                    conn.putheader(name, value)
                if body is not None and not any(str(name).lower() == "transfer-encoding" for name, _ in headers):
                    conn.putheader("Content-Length", str(len(body)))
                conn.endheaders(body)
                response = conn.getresponse()
                data = response.read()
                reply = Reply(response.status, {k.lower(): v for k, v in response.getheaders()}, data)
                if response.will_close:
                    conn.close()
                    self._conn = None
                return reply
            except (ConnectionError, http.client.BadStatusLine):  # a kept-alive connection the server closed
                conn.close()
                self._conn = None
                if attempt:
                    raise
            except BaseException:
                conn.close()
                self._conn = None
                raise
        raise AssertionError("unreachable")

    # -- helpers for the world's state

    def seed_incident(self) -> str:
        """Post the realistic Sentry error-rate alert and let the engine open its incident; returns its id."""
        body = (PAYLOADS / "sentry" / "metric_alert_error_rate_critical.json").read_bytes()
        reply = self.request("POST", "/hooks/sentry", body=body, headers=[
            ("Content-Type", "application/json"), ("Sentry-Hook-Resource", "metric_alert"),
            ("Sentry-Hook-Signature", hmac.new(SENTRY_SECRET.encode(), body, hashlib.sha256).hexdigest())])
        assert reply.status == 202, reply.body

        async def process() -> str:
            await self.services.consumer.poll(block_ms=100)
            await self.services.runner.drain()
            incidents = await self.services.incidents.store.list(None, 10)
            return incidents[0].id

        return self.call(process())


def world_config(root: Path, sink_url: str, extra: str = "") -> LoadedConfig:
    files = {"responder.yaml": CONFIG + extra, "rules/rules.yaml": RULES, "playbooks/notify.yaml": PLAYBOOKS,
             "probes/probes.yaml": PROBES}
    return load_config(write_config(root, files), env={"SINK": sink_url})


def live_world(root: Path, redis_server: str, extra: str = "") -> Iterator[LiveApp]:
    """A started LiveApp on an emptied Redis (a generator for fixtures)."""
    client = sync_redis.Redis.from_url(redis_server)
    client.flushall()
    client.close()
    sink = LoopbackSink()
    live = LiveApp(world_config(root, sink.url, extra), redis_server, FakeClock(), sink)
    live.start()
    try:
        yield live
    finally:
        live.stop()


def assert_well_formed(reply: Reply, what: str = "") -> None:
    """No 5xx; a 4xx is JSON {"error": non-empty text, "field": text or null}."""
    assert reply.status < 500, f"{what}: {reply.status} {reply.body[:500]!r}"
    if 400 <= reply.status < 500:
        assert reply.content_type == "application/json", f"{what}: {reply.status} {reply.content_type} " \
                                                         f"{reply.body[:300]!r}"
        doc = reply.json()
        assert isinstance(doc, dict) and set(doc) >= {"error", "field"}, f"{what}: {doc}"
        assert isinstance(doc["error"], str) and doc["error"].strip(), f"{what}: {doc}"
        assert doc["field"] is None or isinstance(doc["field"], str), f"{what}: {doc}"


def auth(token: str) -> tuple[str, str]:
    return ("Authorization", f"Bearer {token}")


Signer = Callable[[bytes], list[tuple[str, str]]]
